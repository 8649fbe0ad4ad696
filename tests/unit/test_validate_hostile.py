"""`cadre validate` on hostile input: every file it is pointed at gets one clear sentence and
exit status 1 (or 0 when it is fine), never a traceback or a hang.

Files: empty, comments only, non-mappings, duplicate keys, a "billion laughs", an alias
into itself, nesting thousands deep, integers of 5,000 digits, a quantity that overflows
the operator's arithmetic, timestamps and YAML-only tags, Latin-1, UTF-16 with and without
a byte-order mark, binaries, a missing file, a directory, /dev/zero, standard input. Then
properties (hypothesis): any bytes and any mutation of the examples give a verdict, never
an exception.
"""

from __future__ import annotations

import codecs
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cadre.tools.cli import main
from cadre.tools.validation import validate_stream
from cadre.tools.validation.reading import MAX_DEPTH, SourceError, decode

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
JOB = """\
apiVersion: cadre.dev/v1alpha1
kind: TrainingJob
metadata: {name: resnet}
spec:
  image: ghcr.io/acme/train:1.4
  resources: {flavor: t4, gpus: 1}
"""


BILLION_LAUGHS = (
    JOB
    + "  podMetadata:\n    labels:\n"
    + "".join(
        f"      l{n}: &l{n} [" + ", ".join([f"*l{n - 1}" if n else '"lol"'] * 9) + "]\n"
        for n in range(9)
    )
)
"""Nine levels of nine aliases: 1 KB of YAML, 9^9 (387 million) strings once expanded."""

CASES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "no YAML documents in it"),
    ("comments", b"# nothing here\n# at all\n", "no YAML documents in it"),
    ("separators", b"---\n---\n...\n", "no YAML documents in it"),
    ("a list", b"- apiVersion: v1\n- kind: Pod\n", "a manifest must be a mapping"),
    ("a string", b"just some words\n", "a manifest must be a mapping"),
    ("a number", b"42\n", "a manifest must be a mapping"),
    (
        "duplicate key",
        JOB.replace("  image:", "  image: a\n  image:").encode(),
        "found the key 'image' twice",
    ),
    (
        "duplicate kind",
        b"apiVersion: cadre.dev/v1alpha1\nkind: TrainingJob\nkind: ResourceBudget\n",
        "found the key 'kind' twice",
    ),
    ("billion laughs", BILLION_LAUGHS.encode(), "billion laughs"),
    (
        "an alias into itself",
        JOB.replace("spec:\n", "spec: &s\n  args: [*s]\n").encode(),
        "an alias refers to a node that contains it",
    ),
    ("a deep list", ("a: " + "[" * 5000 + "]" * 5000 + "\n").encode(), "nested more than"),
    (
        "a deep map",
        (JOB + "  podMetadata: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n").encode(),
        "nested more than",
    ),
    (
        "an integer of 5000 digits",
        JOB.replace("gpus: 1", "gpus: " + "9" * 5000).encode(),
        "has 5000 digits",
    ),
    (
        "a cpu that overflows the operator's arithmetic",
        JOB.replace("gpus: 1", "gpus: 1, cpu: 1e1000000").encode(),
        "too large for a quantity",
    ),
    (
        "a Python tag",
        JOB.replace("spec:\n", "spec: !!python/object:os.system\n").encode(),
        "could not determine a constructor",
    ),
    ("a YAML syntax error", b"spec: [unclosed\n", "not valid YAML at line 2"),
    ("a tab for indent", b"spec:\n\timage: x\n", "not valid YAML"),
    (
        "Latin-1",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\xe9}\n".encode("latin-1"),
        "is not UTF-8 text: byte 0xe9 at line 3, column 21",
    ),
    ("a binary", bytes(range(256)) * 4, "is a binary file, not YAML text"),
    ("a PNG", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "is a binary file"),
    ("UTF-16 without a mark", JOB.encode("utf-16-le"), "is a binary file"),
    ("a bad UTF-16 mark", codecs.BOM_UTF16_LE + b"\x00\xd8", "byte-order mark but is not"),
    ("NUL in the text", JOB.encode() + b"\x00", "is a binary file"),
]


@pytest.mark.parametrize(("content", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_file_gets_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    path = tmp_path / "input.yaml"
    path.write_bytes(content)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err
    assert err.splitlines()[-1].endswith("with errors")


@pytest.mark.parametrize(
    "content",
    [
        codecs.BOM_UTF8 + JOB.encode(),
        JOB.encode("utf-16"),  # with its byte-order mark, as YAML allows
        JOB.encode("utf-32"),
        ("---\n" + JOB + "---\n---\n").encode(),  # empty documents around one are fine
        JOB.replace("resources:", "maxRuntime: 2026-01-31\n  resources:").encode(),
    ],
    ids=["utf-8 mark", "utf-16 mark", "utf-32 mark", "empty documents", "timestamp"],
)
def test_what_kubectl_reads_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "input.yaml"
    path.write_bytes(content)
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    if b"2026-01-31" in content:
        # A timestamp stays a string, as kubectl sends it: the duration pattern speaks.
        assert code == 1
        assert "spec.maxRuntime: '2026-01-31' is not a duration" in err
    else:
        assert code == 0, err


def test_merge_keys_are_not_duplicates() -> None:
    """A key given again after a merge (<<) overrides the merged one: no duplicate."""
    text = JOB.replace(
        "resources: {flavor: t4, gpus: 1}",
        "defaults: &d {flavor: a100, gpus: 1}\n  resources: {<<: *d, flavor: t4}",
    )
    (result,) = validate_stream(text)
    assert [e.path for e in result.errors] == ["spec.defaults"], result.errors  # unknown field
    assert "twice" not in str(result.errors)


def test_missing_file_and_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml"), str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory" in err
    assert f"{tmp_path}: is a directory: name the files in it, for example {tmp_path}/*.yaml" in err
    assert err.splitlines()[-1] == "0 Cadre document(s) checked, 2 with errors"


class _Stdin(io.TextIOWrapper):
    """Standard input with bytes behind it, as a pipe gives."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="utf-8")


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        (JOB.encode(), 0, "1 Cadre document(s) checked, 0 with errors"),
        (b"", 1, "standard input[0]: no YAML documents in it"),
        (b"caf\xe9: 1\n", 1, "standard input: is not UTF-8 text: byte 0xe9 at line 1"),
        (b"\x00\x01\x02", 1, "standard input: is a binary file"),
        (BILLION_LAUGHS.encode(), 1, "standard input[0]: not valid YAML"),
    ],
    ids=["a manifest", "nothing", "latin-1", "binary", "billion laughs"],
)
def test_standard_input(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    data: bytes,
    code: int,
    message: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(data))
    assert main(["validate", "-"]) == code
    out = capsys.readouterr()
    assert message in out.out + out.err


def test_closed_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", None)
    assert main(["validate", "-"]) == 1
    assert "standard input: standard input is closed" in capsys.readouterr().err


def _cadre(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """The real command, as a user runs it. The timeout only guards against a hang."""
    return subprocess.run(
        [sys.executable, "-m", "cadre.tools.cli", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )


def test_the_command_never_shows_a_traceback(tmp_path: Path) -> None:
    files = []
    for index, (_, content, _) in enumerate(CASES):
        path = tmp_path / f"case-{index}.yaml"
        path.write_bytes(content)
        files.append(str(path))
    done = _cadre("validate", *files, str(tmp_path / "missing.yaml"), str(tmp_path), "/dev/zero")
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "Traceback" not in err
    assert "/dev/zero: is larger than 64 MiB: not a manifest" in err
    assert err.splitlines()[-1].endswith(f"{len(CASES) + 3} with errors")


def test_the_command_reads_a_pipe() -> None:
    done = _cadre("validate", "-", stdin=(EXAMPLES / "budgets.yaml").read_bytes())
    assert done.returncode == 0, done.stderr.decode()
    done = _cadre("validate", "-", stdin=BILLION_LAUGHS.encode())
    assert done.returncode == 1
    assert b"billion laughs" in done.stderr


# -- properties ------------------------------------------------------------------------------


def _verdicts(text: str) -> list[Any]:
    results = validate_stream(text)
    assert results, "always a verdict, at least on the stream"
    for result in results:
        for error in result.errors:
            assert error.message.strip()
    return results


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_any_bytes_are_decoded_or_refused(data: bytes) -> None:
    try:
        text = decode(data)
    except SourceError as err:
        assert str(err)
    else:
        _verdicts(text)


YAML_BITS = st.sampled_from(
    [
        "\n",
        " ",
        "  ",
        "-",
        ": ",
        ",",
        "[",
        "]",
        "{",
        "}",
        "&a ",
        "*a",
        "!!str ",
        "!!binary ",
        "!!set ",
        "!!omap ",
        "!!timestamp ",
        "<<: ",
        "? ",
        "|",
        ">",
        "'",
        '"',
        "#",
        "---\n",
        "...\n",
        "%YAML 1.1\n",
        "~",
        "null",
        "1e1000000",
        "9" * 40,
        ".nan",
        "2026-01-31",
        "\t",
        "\x00",
        "\ufeff",
        "💥",
        "\\",
        "apiVersion: cadre.dev/v1alpha1\n",
        "kind: TrainingJob\n",
        "kind: ResourceBudget\n",
        "metadata: {name: x}\n",
        "spec:\n",
    ]
)
EXAMPLE_TEXTS = [p.read_text() for p in sorted(EXAMPLES.glob("*.yaml"))]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(EXAMPLE_TEXTS),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3), YAML_BITS), max_size=6),
)
def test_any_mutation_of_an_example_gets_a_verdict(
    text: str, edits: list[tuple[int, int, str]]
) -> None:
    for position, cut, bit in edits:
        at = position % (len(text) + 1)
        text = text[:at] + bit + text[at + cut :]
    _verdicts(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(YAML_BITS, max_size=40).map("".join))
def test_any_yaml_soup_gets_a_verdict(text: str) -> None:
    _verdicts(text)


def test_depth_just_under_the_limit_is_read() -> None:
    depth = MAX_DEPTH - 5
    text = JOB + "  podMetadata: " + "{a: " * depth + "1" + "}" * depth + "\n"
    errors = validate_stream(text)[0].errors
    assert errors, "a nested podMetadata is wrong, and says so"
    assert not any("nested" in e.message for e in errors)
