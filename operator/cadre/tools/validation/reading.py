"""Reading manifests safely: bytes from a file or standard input, text, YAML documents.

`cadre validate` is given whatever a user points it at: a binary, a file in another
encoding, a directory, /dev/zero, a YAML "billion laughs" or a document nested thousands
deep. Each is refused with one clear sentence, never a traceback or a hang:

- at most `MAX_BYTES` are read (the API server takes 3 MiB per object);
- text is UTF-8 (a UTF-8, UTF-16 or UTF-32 byte-order mark is honoured, as YAML allows);
  a NUL byte means a binary file;
- the YAML is read as kubectl reads it into JSON: timestamps stay strings, keys become
  strings, `!!set` is a mapping and `!!binary` a string; a duplicate key is an error (as
  for kubectl); an integer too long for Python is an error, not a crash;
- nesting deeper than `MAX_DEPTH` and aliases that expand a document past
  `MAX_EXPANDED_NODES` values (or into itself) are refused before the document is built.
"""

from __future__ import annotations

import base64
import codecs
import sys
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES: Final = 64 * 1024 * 1024
MAX_DEPTH: Final = 100
"""Levels of nesting; a Cadre manifest has about ten. (Python's own recursion limit is
what a deeper document would hit first.)"""
MAX_EXPANDED_NODES: Final = 100_000
"""Values a document may have once its aliases are expanded, when aliases make up most of
them: a billion laughs of nine levels expands 1,000 characters to 10^9 values."""

_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_TIMESTAMP: Final = "tag:yaml.org,2002:timestamp"
_MERGE: Final = "tag:yaml.org,2002:merge"


class SourceError(Exception):
    """A file or standard input that cannot be read as manifests; the message says why."""


def read_source(name: str) -> str:
    """The text of file `name` ('-': standard input)."""
    if name == "-":
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:
            raise SourceError("standard input is closed")
        try:
            data = stream.read(MAX_BYTES + 1)
        except OSError as err:
            raise SourceError(f"cannot read standard input: {err.strerror or err}") from err
    else:
        path = Path(name)
        if path.is_dir():
            raise SourceError(
                f"is a directory: name the files in it, for example {name.rstrip('/')}/*.yaml"
            )
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except OSError as err:
            raise SourceError(f"cannot read: {err.strerror or err}") from err
    if len(data) > MAX_BYTES:
        raise SourceError(
            f"is larger than {MAX_BYTES // (1024 * 1024)} MiB: not a manifest "
            "(the API server takes at most 3 MiB per object)"
        )
    return decode(data)


def decode(data: bytes) -> str:
    """Text of manifest bytes: UTF-8, or UTF-16/32 with a byte-order mark."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as err:
                name = encoding.upper().removesuffix("-SIG")
                raise SourceError(
                    f"starts with a {name} byte-order mark but is not {name} text (byte "
                    f"{err.start} cannot be decoded): save the file as UTF-8"
                ) from err
    if b"\x00" in data:
        return _binary(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise SourceError(
            f"is not UTF-8 text: byte 0x{data[err.start]:02x} at line {line}, column "
            f"{column} is not UTF-8 (save the file as UTF-8)"
        ) from err


def _binary(data: bytes) -> str:
    offset = data.index(b"\x00")
    raise SourceError(f"is a binary file, not YAML text (a NUL byte at offset {offset})")


# -- YAML ------------------------------------------------------------------------------------


def _without_timestamps() -> dict[Any, list[tuple[str, Any]]]:
    return {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


class ManifestLoader(yaml.SafeLoader):
    """PyYAML's safe loader, made to read as kubectl does and to refuse hostile input."""

    yaml_implicit_resolvers = _without_timestamps()

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(
                    None,
                    None,
                    f"nested more than {MAX_DEPTH} levels deep: not a manifest",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: Node) -> Any:
        _check_aliases(node)
        return super().construct_document(node)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if not isinstance(node, MappingNode):  # e.g. !!set on a scalar: PyYAML says so
            return super().construct_mapping(node, deep=deep)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE:
                continue
            key = _json_key(self.construct_object(key_node, deep=True))
            if key in seen:
                raise ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice (kubectl refuses duplicate keys)",
                    key_node.start_mark,
                )
            seen.add(key)
        mapping = super().construct_mapping(node, deep=deep)
        return {_json_key(k): v for k, v in mapping.items()}

    def construct_yaml_int(self, node: ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError as err:
            raise ConstructorError(
                None,
                None,
                f"the number {str(node.value)[:20]}... has {len(str(node.value))} digits: too "
                "long for any field",
                node.start_mark,
            ) from err

    def construct_yaml_binary(self, node: ScalarNode) -> str:  # type: ignore[override]
        raw = self.construct_scalar(node)
        try:
            data = base64.decodebytes(str(raw).encode("ascii"))
        except (ValueError, UnicodeEncodeError) as err:
            raise ConstructorError(
                None, None, f"!!binary is not base64: {err}", node.start_mark
            ) from err
        return data.decode("utf-8", errors="replace")

    def construct_yaml_set(self, node: MappingNode) -> Iterator[dict[Hashable, Any]]:  # type: ignore[override]
        data: dict[Hashable, Any] = {}
        yield data
        data.update(self.construct_mapping(node))

    def construct_as_string(self, node: ScalarNode) -> str:
        return str(self.construct_scalar(node))

    def construct_as_list(self, node: SequenceNode) -> Iterator[list[Any]]:
        data: list[Any] = []
        yield data
        data.extend(self.construct_sequence(node))


ManifestLoader.add_constructor("tag:yaml.org,2002:int", ManifestLoader.construct_yaml_int)
ManifestLoader.add_constructor("tag:yaml.org,2002:binary", ManifestLoader.construct_yaml_binary)
ManifestLoader.add_constructor("tag:yaml.org,2002:set", ManifestLoader.construct_yaml_set)
ManifestLoader.add_constructor(_TIMESTAMP, ManifestLoader.construct_as_string)
ManifestLoader.add_constructor("tag:yaml.org,2002:omap", ManifestLoader.construct_as_list)
ManifestLoader.add_constructor("tag:yaml.org,2002:pairs", ManifestLoader.construct_as_list)


def _json_key(key: Any) -> Any:
    """A mapping key as it is in JSON: a string (true -> "true", 1 -> "1", ~ -> "null")."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int | float):
        return str(key)
    return key


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_aliases(root: Node) -> None:
    """Refuse a document whose aliases make it refer to itself or expand it past
    MAX_EXPANDED_NODES values. Iterative (a deep document cannot exhaust the stack), and
    each node is counted once (a billion laughs costs its own size, not its expansion)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            continue
        if key in sizes:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise ComposerError(
                    None,
                    None,
                    "an alias refers to a node that contains it: the document would be infinite",
                    child.start_mark,
                )
            if id(child) not in sizes:
                stack.append((child, False))
    expanded, distinct = sizes[id(root)], len(sizes)
    if expanded > MAX_EXPANDED_NODES and expanded > 2 * distinct:
        raise ComposerError(
            None,
            None,
            f"aliases expand this document from {distinct} to {expanded} values "
            f"(more than {MAX_EXPANDED_NODES}): refused, as a 'billion laughs'",
            root.start_mark,
        )


def load_documents(text: str) -> Iterator[Any]:
    """The documents of a YAML stream, one at a time (a YAMLError at the first bad one)."""
    loader = ManifestLoader(text)
    try:
        while loader.check_data():  # type: ignore[no-untyped-call]
            yield loader.get_data()
    finally:
        loader.dispose()


def yaml_problem(err: yaml.YAMLError) -> str:
    """One line for a YAML error: where, and what."""
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        context = f"{err.context}: " if err.context and err.problem else ""
        return f"not valid YAML{where}: {context}{err.problem or err.context}"
    return f"not valid YAML: {err}"
