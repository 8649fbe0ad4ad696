"""Hostile input: thousands of generated TrainingJob, ModelDeployment and ResourceBudget
documents sent to a real kube-apiserver (the CRDs of crds/) while the operator runs.

Every document is either rejected with a message (a 4xx whose Status has a message; a
5xx, a timeout or a 4xx without a message fails the test) or accepted, and then every
accepted document is reported by the operator: a TrainingJob or a ModelDeployment gets a
phase and a condition (Queued with a reason such as InvalidSpec, UnknownFlavour or
ExceedsQuota, Admitted, Failed with what to fix, Stopped), a ResourceBudget gets a status
with conditions. After each batch a healthy job
must be admitted, the operator process is alive and answers /healthz, and it has not
logged a failed admission pass or budget round.

The documents come from hypothesis strategies (`document()`): valid examples of
examples/ with one field mutated (near-valid: a bound crossed by one, a wrong type, a
deleted required field, an unknown field, a hostile string), documents built from the
CRD's own schema with junk mixed in at every level, and documents of junk (huge and
negative numbers, unicode, NUL, lone surrogates, strings of 4 KB to 3.2 MB, nesting
3,000 to 20,000 deep, NaN, invalid UTF-8, raw NUL, duplicate keys, not an object at all),
a third of them sent with fieldValidation=Strict as kubectl does. They are drawn with
`@seed(SEED)` (override with CADRE_HOSTILE_SEED=n to explore), generation phase only, no
example database, duplicates rejected; hypothesis's engine decides what it draws next
from what it drew before, so the list is the same run after run on one machine and
Python, not byte for byte everywhere: a failure prints the document itself. They are sent
16 at a time, in three batches.

The operator bugs this test found at first (F1: quantities that overflowed Decimal and
stopped every admission pass; F2: specs whose Job the API server refuses, never reported;
F3, F4 in test_crd_upgrade.py; quantities of a megabyte) are fixed, each with its own
test below; nothing is set aside.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import http.client
import itertools
import json
import os
import re
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from hypothesis import HealthCheck, Phase, assume, given, seed, settings
from hypothesis import strategies as st

from cadre.core.api.config import parse_config
from cadre_process import EXAMPLE_CONFIG, OperatorProcess, operator_kubeconfig
from localcluster import LocalCluster
from trainingjobs import BUDGETS, TJS, condition, get, trainingjob
from waiting import eventually

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
CRDS = REPO / "crds"
SEED: Final = int(os.environ.get("CADRE_HOSTILE_SEED", "20261129"))
PER_KIND: Final = {"TrainingJob": 950, "ResourceBudget": 650, "ModelDeployment": 600}
BATCHES: Final = 3
SENDERS: Final = 16
GUARD_LABEL: Final = "cadre-test/hostile-guard"
"""Added to every generated namespaceSelector: no namespace has it, so a generated budget
never claims the test's namespaces (an empty selector would claim them all and make the
healthy job wait with NamespaceConflict, rightly)."""
NAMES: Final = itertools.count()
MDS = "/apis/cadre.dev/v1alpha1/namespaces/{ns}/modeldeployments"
REPORT_TIMEOUT: Final = 90

# -- junk ------------------------------------------------------------------------------------

EXTREME_INTS: Final = [
    -1,
    0,
    1,
    -(2**31),
    2**31 - 1,
    2**31,
    2**32,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64,
    10**30,
    -(10**30),
    10**400,
]
HOSTILE_STRINGS: Final = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",  # a lone surrogate: JSON may escape it, UTF-8 cannot encode it
    "\ufeff",
    "\u202eevil",
    "💥" * 16,
    "ǅungla",
    "Ⅻ",
    "\n",
    "\t x \t",
    "x\r\ny",
    "${HOME}",
    "$(rm -rf /)",
    "'; DROP TABLE jobs; --",
    "%s%n%x",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "-1",
    "NaN",
    "Infinity",
    "0x10",
    "1_000",
    "1e1000000",
    "1e999999",
    "1e" + "9" * 5000,
    "9" * 5000,
    "0.000000001m",
    "-48h",
    "9999999999999999999h",
    "48H",
    "1h-1m",
    "true",
    "null",
    "{}",
    "[]",
    "a" * 63,
    "a" * 64,
    "a" * 254,
    "UPPER",
    "t4 ",
    "default",
    "kube-system",
]
BIG_SIZES: Final = [4097, 65_537, 1_000_000, 3_200_000]
"""Bytes on the wire: 3.2 MB is over the API server's 3 MiB request limit."""
BIG_CHARS: Final = ["a", "9", "é", "\x00", "💥"]


def big_strings() -> st.SearchStrategy[str]:
    """Strings too large for hypothesis to generate byte by byte, `size` bytes long once
    written as JSON (where é is \\u00e9, six bytes)."""
    return st.builds(
        lambda ch, size: ch * (size // (len(json.dumps(ch)) - 2)),
        st.sampled_from(BIG_CHARS),
        st.sampled_from(BIG_SIZES),
    )


RAW_MARKS: Final = {
    "@@deep-list-5000@@": "[" * 5000 + "]" * 5000,
    "@@deep-list-20000@@": "[" * 20000 + "]" * 20000,
    "@@deep-map-3000@@": '{"a":' * 3000 + "null" + "}" * 3000,
    "@@nan@@": "NaN",
    "@@infinity@@": "-Infinity",
    "@@bad-utf8@@": '"\udcff\udcfe-not-utf8"',  # surrogateescape: the bytes ff fe
    "@@raw-nul@@": '"a\x00b"',  # a raw control character inside a JSON string
    "@@dup-key@@": '{"image": "x", "image": "y"}',
}
"""Placeholders replaced in the encoded body by what `json.dumps` cannot write: nesting
deeper than Python's recursion limit, NaN, bytes that are not UTF-8, raw NUL, duplicate keys."""


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from(EXTREME_INTS),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
        st.sampled_from(HOSTILE_STRINGS),
        st.sampled_from(list(RAW_MARKS)),
    )


def junk() -> st.SearchStrategy[Any]:
    keys = st.one_of(
        st.text(max_size=12), st.sampled_from(["spec", "image", "gpus", "flavor", "quota"])
    )
    return st.recursive(
        scalars(),
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=12,
    )


# -- documents from the CRD's schema -------------------------------------------------------


@functools.cache
def _spec_strategy(kind: str) -> st.SearchStrategy[Any]:
    return from_schema(_crd_schema(kind)["properties"]["spec"])


def _crd_schema(kind: str) -> dict[str, Any]:
    plural = {
        "TrainingJob": "trainingjobs",
        "ResourceBudget": "resourcebudgets",
        "ModelDeployment": "modeldeployments",
    }[kind]
    crd = yaml.safe_load((CRDS / f"cadre.dev_{plural}.yaml").read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def _mostly(
    valid: st.SearchStrategy[Any], crossing: st.SearchStrategy[Any] | None = None
) -> st.SearchStrategy[Any]:
    """A valid value 26 times in 30, one just across a bound 3 times, junk once. (The
    rare branches are in the middle of the range: hypothesis favours its ends.)"""

    def pick(n: int) -> st.SearchStrategy[Any]:
        if n == 17:
            return junk()
        if n in (4, 11, 23) and crossing is not None:
            return crossing
        return valid

    return st.integers(0, 29).flatmap(pick)


QUANTITY_EXAMPLES: Final = ["500m", "4", "200Gi", "1.5G", "0.5", "1e3", "64Ki"]


def from_schema(schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values the schema accepts (pattern matches, enum members, integers in range,
    required fields present), values just across its bounds, and junk, at every level."""
    if schema.get("x-kubernetes-int-or-string"):
        return _mostly(
            st.one_of(
                st.integers(0, 10**6),
                st.from_regex(schema["pattern"], fullmatch=True),
                st.sampled_from(QUANTITY_EXAMPLES),
            ),
            st.sampled_from(["-1", -1, "8Gb", "1.5", 1.5, 2**63, "9" * 5000, "1e1000000"]),
        )
    if "enum" in schema:
        return _mostly(
            st.sampled_from(schema["enum"]),
            st.sampled_from([str(v).lower() for v in schema["enum"]] + ["", "Other"]),
        )
    kind = schema.get("type")
    if kind == "integer":
        low, high = schema.get("minimum", -(2**63)), schema.get("maximum", 2**63 - 1)
        return _mostly(
            st.one_of(st.integers(low, high), st.sampled_from([low, high])),
            st.sampled_from([low - 1, high + 1, 1.5, str(low)]),
        )
    if kind == "number":
        return _mostly(
            st.floats(schema.get("minimum"), schema.get("maximum")), st.sampled_from([-1, 2, "1"])
        )
    if kind == "boolean":
        return _mostly(st.booleans(), st.sampled_from(["true", 0, None]))
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 80)
        if "pattern" in schema:
            valid = st.from_regex(schema["pattern"], fullmatch=True).filter(
                lambda v: low <= len(v) <= high
            )
        else:
            valid = st.one_of(st.text(min_size=low, max_size=min(high, 80)), st.just("a" * high))
        return _mostly(valid, st.one_of(st.just("a" * (high + 1)), st.text(max_size=20)))
    if kind == "array":
        items = from_schema(schema.get("items", {}), depth + 1)
        low = schema.get("minItems", 0)
        return _mostly(
            st.lists(items, min_size=low, max_size=max(low, 3)),
            st.one_of(st.just([]), st.just([None]), items),
        )
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        if depth > 6 or not properties:
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                return _mostly(
                    st.dictionaries(
                        st.from_regex(r"[a-z][a-z0-9./-]{0,40}", fullmatch=True),
                        from_schema(extra, depth + 1),
                        max_size=4,
                    )
                )
            return junk()
        required = [n for n in schema.get("required", []) if n in properties]
        optional = {
            n: from_schema(s, depth + 1) for n, s in properties.items() if n not in required
        }
        whole = st.fixed_dictionaries(
            {n: from_schema(properties[n], depth + 1) for n in required}, optional=optional
        )
        return _mostly(whole, st.fixed_dictionaries({}, optional=optional))  # required gone
    return junk()


# -- near-valid documents: an example with one field mutated -------------------------------


def _examples() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in PER_KIND}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") in out:
                doc["metadata"].pop("namespace", None)
                out[doc["kind"]].append(doc)
    return out


EXAMPLE_DOCS: Final = _examples()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _mutate(doc: Any, path: tuple[Any, ...], op: str, value: Any) -> Any:
    """The example with one change at `path`: replaced by value, deleted, given an unknown
    field, its first list item repeated."""
    doc = copy.deepcopy(doc)
    if not path:
        return value
    parent: Any = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "add-field" and isinstance(parent[last], dict):
        parent[last]["unknownField"] = value
    elif op == "duplicate" and isinstance(parent[last], list) and parent[last]:
        parent[last].append(copy.deepcopy(parent[last][0]))
    else:
        parent[last] = value
    return doc


def _crossings(value: Any) -> list[Any]:
    """Values just across the bounds an integer field may have, or the wrong type."""
    if isinstance(value, bool):
        return [not value, "true", 1, None]
    if isinstance(value, int):
        return [value + 1, value - 1, -value, -1, 0, value * 1000, 2**31, 2**63, 10**30, 1.5]
    if isinstance(value, str):
        return [value + "x", value.upper(), " " + value, value * 100, value + "\x00", ""]
    return [None, [], {}, ""]


@st.composite
def near_valid(draw: st.DrawFn, kind: str) -> Any:
    doc = draw(st.sampled_from(EXAMPLE_DOCS[kind]))
    paths = [p for p in _paths(doc) if p[:2] != ("metadata", "name")]
    path = draw(st.sampled_from(paths))
    op = draw(st.sampled_from(["replace", "cross", "cross", "delete", "add-field", "duplicate"]))
    current: Any = doc
    for part in path:
        current = current[part]
    if op == "cross":
        value = draw(st.sampled_from(_crossings(current)))
        op = "replace"
    else:
        value = draw(st.one_of(scalars(), junk()))
    return _mutate(doc, path, op, value)


@st.composite
def from_crd(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    spec = draw(_spec_strategy(kind))
    if kind == "ResourceBudget" and isinstance(spec, dict) and draw(st.integers(0, 4)):
        # Its CEL rule wants exactly one of namespaces and namespaceSelector: mostly obey.
        if "namespaces" in spec and "namespaceSelector" in spec:
            del spec[draw(st.sampled_from(["namespaces", "namespaceSelector"]))]
        elif "namespaces" not in spec and "namespaceSelector" not in spec:
            spec["namespaces"] = [f"nobody-{draw(st.integers(0, 99))}"]
    doc: dict[str, Any] = {"apiVersion": "cadre.dev/v1alpha1", "kind": kind, "spec": spec}
    if draw(st.integers(0, 9)) == 0:
        doc["status"] = draw(junk())
    return doc


@st.composite
def junk_document(draw: st.DrawFn, kind: str) -> Any:
    shape = draw(st.integers(0, 9))
    if shape == 5:
        return draw(junk())  # not even an object, most of the time
    doc = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "apiVersion": st.one_of(
                    st.just("cadre.dev/v1alpha1"), st.sampled_from(["cadre.dev/v1", "v1", ""])
                ),
                "kind": st.one_of(st.just(kind), scalars()),
                "spec": junk(),
                "status": junk(),
            },
        )
    )
    return doc


@st.composite
def document(draw: st.DrawFn, kind: str) -> tuple[Any, bool]:
    """One document, named uniquely unless its metadata is what is fuzzed, and whether it
    is sent with fieldValidation=Strict (as kubectl apply does) or the default (Warn:
    unknown fields are dropped)."""
    make = draw(st.sampled_from([near_valid, near_valid, from_crd, from_crd, junk_document]))
    doc = draw(make(kind))
    if isinstance(doc, dict):
        if "metadata" not in doc:
            doc["metadata"] = {}
        metadata = doc["metadata"]
        if isinstance(metadata, dict):
            name = f"h{next(NAMES)}"
            what = draw(st.integers(0, 29))  # 5..9 fuzz the metadata, the rest do not
            metadata["name"] = name
            if what == 5:
                metadata["name"] = draw(
                    st.one_of(scalars(), st.from_regex(r"[a-z][-a-z0-9]{0,70}", fullmatch=True))
                )
            elif what == 6:
                del metadata["name"]
                metadata["generateName"] = draw(st.one_of(st.just("h-"), scalars()))
            elif what == 7:
                labels = st.dictionaries(st.text(max_size=70), scalars(), max_size=3)
                metadata["labels"] = draw(labels)
            elif what == 8:
                metadata["annotations"] = draw(st.dictionaries(st.text(max_size=20), scalars()))
            elif what == 9:
                metadata["namespace"] = draw(st.one_of(scalars(), st.just("kube-system")))
    if draw(st.integers(0, 24)) == 13:
        # One huge string somewhere, in one document of 25 (more would only cost time).
        doc = _mutate(doc, draw(st.sampled_from(list(_paths(doc)))), "replace", draw(big_strings()))
    if kind == "ResourceBudget":
        _guard_selector(doc)
    return doc, draw(st.integers(0, 2)) == 1


def _guard_selector(doc: Any) -> None:
    spec = doc.get("spec") if isinstance(doc, dict) else None
    selector = spec.get("namespaceSelector") if isinstance(spec, dict) else None
    if isinstance(selector, dict):
        labels = selector.get("matchLabels")
        if labels is None or isinstance(labels, dict):
            selector["matchLabels"] = {**(labels or {}), GUARD_LABEL: "never"}


def generate(kind: str, count: int) -> list[tuple[Any, bool]]:
    """`count` distinct documents of `kind`, drawn by hypothesis with a fixed seed:
    generation only (no shrinking, no example database). Hypothesis mutates what it drew
    before, so about a third of its draws repeat one: those are rejected (`assume`)."""
    out: list[tuple[Any, bool]] = []
    seen: set[bytes] = set()

    @seed(SEED)
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(document(kind))
    def collect(item: tuple[Any, bool]) -> None:
        doc, strict = item
        body = encode(doc)
        key = hashlib.sha1(re.sub(rb'"h[0-9]+"', b"", body) + bytes([strict])).digest()
        assume(key not in seen)
        seen.add(key)
        out.append(item)

    collect()
    return out[:count]


CONFIG: Final = parse_config(EXAMPLE_CONFIG.read_text())


# -- sending ---------------------------------------------------------------------------------


def encode(doc: Any) -> bytes:
    text = json.dumps(doc)
    for mark, raw in RAW_MARKS.items():
        text = text.replace(json.dumps(mark), raw)
    return text.encode("utf-8", errors="surrogateescape")


@dataclass
class Verdict:
    kind: str
    index: int
    status: int  # 0: no answer (a timeout or a dropped connection)
    message: str = ""
    name: str | None = None
    error: str = ""

    @property
    def accepted(self) -> bool:
        return self.status in (200, 201)

    @property
    def rejected(self) -> bool:
        return 400 <= self.status < 500 and bool(self.message.strip())


@dataclass
class Sender:
    """Raw POSTs on a keep-alive connection per thread (bodies that json.dumps cannot
    write, answers of any status)."""

    cluster: LocalCluster
    local: threading.local = field(default_factory=threading.local)

    def _conn(self) -> http.client.HTTPSConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            api = self.cluster.api
            conn = http.client.HTTPSConnection(api.host, api.port, context=api.tls, timeout=30)
            self.local.conn = conn
        return conn

    def post(self, path: str, body: bytes) -> tuple[int, Any]:
        for attempt in range(5):
            conn = self._conn()
            try:
                conn.request(
                    "POST",
                    path,
                    body=body,
                    headers={"Content-Type": "application/json", "Accept": "application/json"},
                )
                resp = conn.getresponse()
                raw = resp.read()
            except (http.client.HTTPException, OSError) as err:
                conn.close()
                self.local.conn = None
                if attempt == 4 or isinstance(err, TimeoutError):
                    return 0, str(err)
                continue
            if resp.status == 429:  # the API server's flow control: not a verdict
                continue
            try:
                return resp.status, json.loads(raw) if raw else None
            except ValueError:
                return resp.status, raw.decode(errors="replace")
        return 0, "429 five times"


def send_all(
    sender: Sender, items: list[tuple[str, int, Any, bool]], paths: dict[str, str]
) -> list[Verdict]:
    """Send each document, 16 at a time."""

    def one(item: tuple[str, int, Any, bool]) -> Verdict:
        kind, index, doc, strict = item
        path = paths[kind] + ("?fieldValidation=Strict" if strict else "")
        status, answer = sender.post(path, encode(doc))
        verdict = Verdict(kind, index, status)
        if isinstance(answer, dict):
            verdict.message = str(answer.get("message") or "")
            if verdict.accepted:
                verdict.name = (answer.get("metadata") or {}).get("name")
        else:
            verdict.error = str(answer)[:300]
        return verdict

    with ThreadPoolExecutor(SENDERS) as pool:
        return list(pool.map(one, items))


# -- the operator ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def operator(
    apiserver: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("hostile")
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    # Queued statuses of hundreds of waiting jobs within seconds, budgets refreshed often.
    config["admission"]["queueStatusWritesPerSecond"] = 1000
    config["accounting"]["refreshSeconds"] = 5
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    kubeconfig = operator_kubeconfig(apiserver, workdir / "kubeconfig")
    op = OperatorProcess(kubeconfig, workdir, path).start()
    try:
        yield op
    finally:
        op.stop()


def healthz(op: OperatorProcess) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{op.health_port}/healthz", timeout=5) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def operator_failures(op: OperatorProcess, since: int = 0) -> list[str]:
    """Log lines (after the first `since` records) that mean a loop of the operator failed
    a round: it retries, but a document that makes it fail every round stalls it."""
    bad = ("admission pass failed", "budget round failed", "queue status round failed")
    return [
        str(r.get("event"))
        for r in op.log_records()[since:]
        if any(b in str(r.get("event", "")) for b in bad)
        or (r.get("level") in ("critical",) or "Traceback" in str(r.get("exception", "")))
    ]


def reported_trainingjob(obj: dict[str, Any]) -> tuple[str, str] | None:
    status = obj.get("status") or {}
    phase = status.get("phase")
    admitted = condition(obj, "Admitted")
    if not phase or admitted is None:
        return None
    return str(phase), str(admitted.get("reason"))


def reported_modeldeployment(obj: dict[str, Any]) -> tuple[str, str] | None:
    status = obj.get("status") or {}
    phase = status.get("phase")
    admitted = condition(obj, "Admitted") or condition(obj, "Ready")
    if not phase or admitted is None:
        return None
    return str(phase), str(admitted.get("reason"))


def reported_budget(obj: dict[str, Any]) -> bool:
    return bool((obj.get("status") or {}).get("conditions"))


@pytest.fixture
def fuzz_namespace(apiserver: LocalCluster) -> Iterator[str]:
    """A namespace of its own for the generated jobs, with a budget that keeps them from
    taking what the healthy job needs (the t4 node has 8 GPUs and 48 CPUs)."""
    name = apiserver.create_namespace(f"hostile-{uuid.uuid4().hex[:6]}")
    apiserver.api.create(
        BUDGETS,
        {
            "apiVersion": "cadre.dev/v1alpha1",
            "kind": "ResourceBudget",
            "metadata": {"name": name},
            "spec": {
                "namespaces": [name],
                "quota": [
                    {"flavor": "t4", "gpus": 4, "cpu": "16", "memory": "64Gi"},
                    {"flavor": "a100", "gpus": 64},
                    {"flavor": "cpu-only", "cpu": "64", "memory": "256Gi"},
                ],
            },
        },
    )
    yield name
    # No controllers here: delete what the fuzz left (a Terminating namespace keeps it).
    for path in (
        TJS.format(ns=name),
        MDS.format(ns=name),
        f"/apis/batch/v1/namespaces/{name}/jobs",
    ):
        apiserver.api.call("DELETE", path, ok=(404,))
    apiserver.api.call("DELETE", f"{BUDGETS}/{name}", ok=(404,))
    apiserver.delete_namespace(name)


@pytest.mark.usefixtures("team", "t4_node")
def test_hostile_documents_are_rejected_or_reported(
    operator: OperatorProcess,
    apiserver: LocalCluster,
    namespace: str,
    fuzz_namespace: str,
    record_property: Callable[[str, object], None],
) -> None:
    started = time.monotonic()
    documents: list[tuple[str, int, Any, bool]] = []
    for kind, count in PER_KIND.items():
        for doc, strict in generate(kind, count):
            documents.append((kind, len(documents), doc, strict))
    generated = time.monotonic() - started
    to_send = list(documents)
    to_send.sort(key=lambda d: (d[1] * 7919) % len(documents))  # the kinds interleaved
    paths = {
        "TrainingJob": TJS.format(ns=fuzz_namespace),
        "ModelDeployment": MDS.format(ns=fuzz_namespace),
        "ResourceBudget": BUDGETS,
    }
    sender = Sender(apiserver)
    verdicts: list[Verdict] = []
    budgets_made: list[str] = []
    reasons: Counter[tuple[str, str, str]] = Counter()
    timings: Counter[str] = Counter()
    logged_before = len(operator.log_records())
    try:
        for number in range(BATCHES):
            batch = to_send[number::BATCHES]
            mark = time.monotonic()
            results = send_all(sender, batch, paths)
            timings["send"] += time.monotonic() - mark
            verdicts += results
            budgets_made += [
                v.name for v in results if v.accepted and v.kind == "ResourceBudget" and v.name
            ]
            failed = [v for v in results if not (v.accepted or v.rejected)]
            assert not failed, "\n".join(
                f"{v.kind} #{v.index}: {v.status} {v.message or v.error}"
                f"\n  {encode(_doc(documents, v.index))[:600]!r}"
                for v in failed[:10]
            )
            mark = time.monotonic()
            _wait_reported(operator, apiserver, fuzz_namespace, results, reasons)
            timings["reported"] += time.monotonic() - mark
            mark = time.monotonic()
            _healthy_job_admitted(apiserver, namespace, f"healthy-{number}")
            timings["healthy"] += time.monotonic() - mark
            assert operator.alive(), operator.log_tail()
            assert healthz(operator), operator.log_tail()
            assert operator_failures(operator, logged_before) == [], operator.log_tail()
    finally:
        for name in budgets_made:
            apiserver.api.call("DELETE", f"{BUDGETS}/{name}", ok=(404,))

    sent = verdicts
    accepted = Counter(v.kind for v in sent if v.accepted)
    rejected = Counter(v.kind for v in sent if v.rejected)
    _summary(
        f"hostile input: {len(documents)} documents generated (hypothesis, seed {SEED}) in "
        f"{generated:.0f}s; {len(sent)} sent, {sum(rejected.values())} rejected with a "
        f"message, {sum(accepted.values())} accepted and reported (TrainingJob "
        f"{accepted['TrainingJob']}, ResourceBudget {accepted['ResourceBudget']}, "
        f"ModelDeployment {accepted['ModelDeployment']}); "
        f"sending {timings['send']:.0f}s, "
        f"waiting for status {timings['reported']:.0f}s, healthy jobs {timings['healthy']:.0f}s, "
        f"{time.monotonic() - started:.0f}s in all"
    )
    _summary(f"hostile input: answers {dict(sorted(Counter(v.status for v in sent).items()))}")
    biggest = max(
        ((len(encode(_doc(documents, v.index))), v.kind, v.name) for v in sent if v.accepted),
        default=(0, "", ""),
    )
    _summary(f"hostile input: the largest accepted document: {biggest[0]} bytes ({biggest[1]})")
    for kind in ("TrainingJob", "ModelDeployment"):
        counts = {(p, r): n for (k, p, r), n in reasons.items() if k == kind}
        _summary(f"hostile input: {kind} (phase, reason) {counts}")
    record_property("hostile_sent", len(sent))
    record_property("hostile_rejected", sum(rejected.values()))
    record_property("hostile_accepted", sum(accepted.values()))
    assert len(documents) >= 2000
    assert len(sent) >= 2000
    assert accepted["TrainingJob"] >= 100, accepted
    assert accepted["ResourceBudget"] >= 50, accepted
    assert accepted["ModelDeployment"] >= 20, accepted
    assert sum(rejected.values()) >= 500, rejected


def _doc(documents: list[tuple[str, int, Any, bool]], index: int) -> Any:
    return next(d for _, i, d, _ in documents if i == index)


SUMMARY: list[str] = []


def _summary(line: str) -> None:
    SUMMARY.append(line)


@pytest.fixture(scope="module", autouse=True)
def _print_summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """The figures on the terminal after the module's tests, with or without -s (as the
    cluster's start-up progress is), so a CI log shows them."""
    yield
    capman = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if not SUMMARY or reporter is None:
        return
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        reporter.write_line("")
        for line in SUMMARY:
            reporter.write_line(line)
    SUMMARY.clear()


def _wait_reported(
    op: OperatorProcess,
    apiserver: LocalCluster,
    namespace: str,
    results: list[Verdict],
    reasons: Counter[tuple[str, str, str]],
) -> None:
    jobs = {v.name for v in results if v.accepted and v.kind == "TrainingJob"}
    models = {v.name for v in results if v.accepted and v.kind == "ModelDeployment"}
    budgets = {v.name for v in results if v.accepted and v.kind == "ResourceBudget"}
    missing: dict[str, set[str | None]] = {}

    def all_reported() -> bool:
        items = apiserver.api.get(TJS.format(ns=namespace))["items"]
        seen = {o["metadata"]["name"]: reported_trainingjob(o) for o in items}
        served = {
            o["metadata"]["name"]: reported_modeldeployment(o)
            for o in apiserver.api.get(MDS.format(ns=namespace))["items"]
        }
        listed = apiserver.api.get(BUDGETS)["items"]
        done = {o["metadata"]["name"] for o in listed if reported_budget(o)}
        missing["TrainingJob"] = {n for n in jobs if not seen.get(str(n))}
        missing["ModelDeployment"] = {n for n in models if not served.get(str(n))}
        missing["ResourceBudget"] = budgets - done
        if any(missing.values()):
            return False
        reasons.update(("TrainingJob", *seen[str(n)]) for n in jobs)  # type: ignore[misc]
        reasons.update(("ModelDeployment", *served[str(n)]) for n in models)  # type: ignore[misc]
        return True

    try:
        eventually("every accepted document reported", all_reported, timeout=REPORT_TIMEOUT)
    except AssertionError as err:
        lines = [f"{err}: not reported: {missing}"]
        for name in sorted(str(n) for n in missing["TrainingJob"])[:5]:
            obj = get(apiserver, f"{TJS.format(ns=namespace)}/{name}") or {}
            key = f"{namespace}/{name}"
            logged = [r for r in op.log_records() if key in json.dumps(r)][-3:]
            lines.append(f"{key}: spec {json.dumps(obj.get('spec'))[:500]}")
            lines += [f"    log: {json.dumps(r)[:700]}" for r in logged]
        for name in sorted(str(n) for n in missing["ModelDeployment"])[:5]:
            obj = get(apiserver, f"{MDS.format(ns=namespace)}/{name}") or {}
            lines.append(f"modeldeployment {name}: {json.dumps(obj)[:700]}")
        for name in sorted(str(n) for n in missing["ResourceBudget"])[:5]:
            obj = get(apiserver, f"{BUDGETS}/{name}") or {}
            lines.append(f"budget {name}: spec {json.dumps(obj.get('spec'))[:500]}")
        raise AssertionError("\n".join(lines)) from None


def _healthy_job_admitted(apiserver: LocalCluster, namespace: str, name: str) -> None:
    path = f"{TJS.format(ns=namespace)}/{name}"
    apiserver.api.create(TJS.format(ns=namespace), trainingjob(name, workers=1, gpus=1))
    eventually(
        f"{name} admitted",
        lambda: ((get(apiserver, path) or {}).get("status") or {}).get("phase") == "Admitted",
        timeout=60,
    )
    apiserver.api.call("DELETE", path)  # its quota back for the next batch
    apiserver.api.call("DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}", ok=(404,))


# -- the bugs the fuzz found, one test each: the input, and what must hold ---------------------

QUICK: Final = 20  # seconds: a healthy job is admitted within about two normally


def _admitted(apiserver: LocalCluster, namespace: str, name: str, timeout: float) -> None:
    path = f"{TJS.format(ns=namespace)}/{name}"
    eventually(
        f"{name} admitted",
        lambda: ((get(apiserver, path) or {}).get("status") or {}).get("phase") == "Admitted",
        timeout=timeout,
    )


def _delete_trainingjobs(apiserver: LocalCluster, namespace: str, *names: str) -> None:
    """No garbage collector here: the Jobs go with their TrainingJobs by hand."""
    for name in names:
        apiserver.api.call("DELETE", f"{TJS.format(ns=namespace)}/{name}", ok=(404,))
        apiserver.api.call(
            "DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}", ok=(404,)
        )
        apiserver.api.call("DELETE", f"/api/v1/namespaces/{namespace}/services/{name}", ok=(404,))


def _reported(apiserver: LocalCluster, namespace: str, name: str) -> tuple[str, str] | None:
    return reported_trainingjob(get(apiserver, f"{TJS.format(ns=namespace)}/{name}") or {})


@pytest.mark.usefixtures("team", "t4_node")
def test_f1_one_job_with_an_overflowing_cpu_stops_no_admission(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str
) -> None:
    poison = trainingjob("poison", workers=1, gpus=1)
    poison["spec"]["resources"]["cpu"] = "1e999999"
    apiserver.api.create(TJS.format(ns=namespace), poison)
    try:
        apiserver.api.create(TJS.format(ns=namespace), trainingjob("healthy", workers=1, gpus=1))
        _admitted(apiserver, namespace, "healthy", QUICK)
        eventually("poison reported", lambda: _reported(apiserver, namespace, "poison"), QUICK)
    finally:
        _delete_trainingjobs(apiserver, namespace, "poison", "healthy")


@pytest.mark.usefixtures("team")
def test_f1_a_cpu_the_model_cannot_parse_is_reported(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str
) -> None:
    doc = trainingjob("overflow", workers=1, gpus=1)
    doc["spec"]["resources"]["cpu"] = "1e1000000"
    apiserver.api.create(TJS.format(ns=namespace), doc)
    try:
        eventually("overflow reported", lambda: _reported(apiserver, namespace, "overflow"), QUICK)
    finally:
        _delete_trainingjobs(apiserver, namespace, "overflow")


@pytest.mark.usefixtures("team", "t4_node")
def test_f1_a_budget_with_an_overflowing_cpu_stops_no_admission(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str
) -> None:
    name = f"poison-{uuid.uuid4().hex[:6]}"
    apiserver.api.create(
        BUDGETS,
        {
            "apiVersion": "cadre.dev/v1alpha1",
            "kind": "ResourceBudget",
            "metadata": {"name": name},
            "spec": {
                "namespaces": [f"nobody-{name}"],
                "quota": [{"flavor": "cpu-only", "cpu": "1e1000000"}],
            },
        },
    )
    try:
        apiserver.api.create(TJS.format(ns=namespace), trainingjob("healthy", workers=1, gpus=1))
        _admitted(apiserver, namespace, "healthy", QUICK)
        eventually(
            "the budget's status says InvalidSpec",
            lambda: any(
                c["type"] == "InvalidSpec" and c["status"] == "True"
                for c in (apiserver.api.get(f"{BUDGETS}/{name}").get("status") or {}).get(
                    "conditions"
                )
                or ()
            ),
            QUICK,
        )
    finally:
        apiserver.api.call("DELETE", f"{BUDGETS}/{name}", ok=(404,))
        _delete_trainingjobs(apiserver, namespace, "healthy")


F2_CASES: Final[dict[str, Callable[[dict[str, Any]], None]]] = {
    "env-valuefrom-empty": lambda spec: spec.update(env=[{"name": "X", "valueFrom": {}}]),
    "env-valuefrom-both": lambda spec: spec.update(
        env=[
            {
                "name": "X",
                "valueFrom": {
                    "secretKeyRef": {"name": "s", "key": "k"},
                    "configMapKeyRef": {"name": "c", "key": "k"},
                },
            }
        ]
    ),
    "env-secret-key-slash": lambda spec: spec.update(
        env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "a/b"}}}]
    ),
    "label-key-space": lambda spec: spec.update(podMetadata={"labels": {"a b": "x"}}),
    "label-value-space": lambda spec: spec.update(podMetadata={"labels": {"a": "x y"}}),
    "annotation-key-space": lambda spec: spec.update(podMetadata={"annotations": {"a b": "x"}}),
    "mountpath-dev-shm": lambda spec: spec.update(
        checkpoint={"volumeClaim": "ckpt", "mountPath": "/dev/shm"}
    ),
    "maxruntime-over-int64": lambda spec: spec.update(maxRuntime="99999999999999999999h"),
}
"""TrainingJobs the CRD accepts whose Job the API server rejects (each field is a schema
gap: a pattern or a CEL rule that the Job's own validation has and the CRD has not)."""


@pytest.mark.usefixtures("team")
def test_f2_a_job_the_api_server_rejects_is_reported(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str
) -> None:
    for name, change in F2_CASES.items():
        doc = trainingjob(name, workers=1, gpus=1)
        change(doc["spec"])
        apiserver.api.create(TJS.format(ns=namespace), doc)
    try:
        eventually(
            "each reported",
            lambda: all(_reported(apiserver, namespace, name) for name in F2_CASES),
            QUICK,
        )
    finally:
        _delete_trainingjobs(apiserver, namespace, *F2_CASES)


QUANTITY_FIELDS: Final = {
    "TrainingJob": ["spec.resources.cpu", "spec.resources.memory"],
    "ModelDeployment": ["spec.resources.cpu", "spec.resources.memory"],
    "ResourceBudget": [
        "spec.quota[0].cpu",
        "spec.quota[0].memory",
        "spec.quota[0].borrowingLimit.cpu",
        "spec.quota[0].borrowingLimit.memory",
        "spec.quota[0].lendingLimit.cpu",
        "spec.quota[0].lendingLimit.memory",
    ],
}


def _set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    parts = [int(p) if p.isdigit() else p for p in re.split(r"\.|\[|\]\.?", path) if p]
    node: Any = doc
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def test_a_quantity_of_a_megabyte_is_refused(apiserver: LocalCluster, namespace: str) -> None:
    accepted = []
    examples = {kind: docs[0] for kind, docs in EXAMPLE_DOCS.items()}
    examples["ResourceBudget"] = copy.deepcopy(examples["ResourceBudget"])
    examples["ResourceBudget"]["spec"]["quota"][0].update(borrowingLimit={}, lendingLimit={})
    paths = {
        "TrainingJob": TJS.format(ns=namespace),
        "ModelDeployment": MDS.format(ns=namespace),
        "ResourceBudget": BUDGETS,
    }
    for kind, fields in QUANTITY_FIELDS.items():
        for path in fields:
            doc = copy.deepcopy(examples[kind])
            doc["metadata"]["name"] = f"megabyte-{uuid.uuid4().hex[:6]}"
            _set_path(doc, path, "9" * 1_000_000)
            status, _ = apiserver.api.request("POST", f"{paths[kind]}?dryRun=All", doc)
            if status == 201:
                accepted.append(f"{kind} {path}")
    assert accepted == []
