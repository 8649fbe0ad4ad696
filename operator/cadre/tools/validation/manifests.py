"""`cadre validate`: check a YAML stream of manifests the way the API server would."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

import yaml
from pydantic import BaseModel, ValidationError

from cadre.core.api import API_VERSION, GROUP, KINDS
from cadre.core.api.config import CONFIG_API_VERSION, CONFIG_KIND, OperatorConfig
from cadre.tools.crdgen import openapi_schema, to_structural
from cadre.tools.validation.cel import check_rules
from cadre.tools.validation.reading import load_documents, yaml_problem
from cadre.tools.validation.schema import FieldError, Schema, apply_defaults, check, join

_DNS_SUBDOMAIN: Final = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


_EMPTY: Final = "empty document"
_NO_DOCUMENTS: Final = "no YAML documents in it (it is empty, or only comments and '---')"


@dataclass(slots=True)
class DocumentResult:
    """The verdict on one document of a stream (index counts from 0)."""

    index: int
    kind: str | None = None
    name: str | None = None
    errors: list[FieldError] = field(default_factory=list)
    skipped: str | None = None  # why a document was not checked (not a Cadre kind)

    @property
    def ok(self) -> bool:
        return not self.errors


@cache
def _schema_for(kind: str) -> Schema:
    if kind == CONFIG_KIND:
        full = OperatorConfig.model_json_schema(by_alias=True, mode="validation")
        return to_structural(full, full.get("$defs", {}))
    return openapi_schema(KINDS[kind])


def _model_for(kind: str) -> type[BaseModel]:
    return OperatorConfig if kind == CONFIG_KIND else KINDS[kind].model


def validate_document(document: Any, index: int = 0) -> DocumentResult:
    """Check one parsed document. Non-Cadre kinds are skipped, not failed."""
    result = DocumentResult(index=index)
    if document is None:
        result.skipped = _EMPTY
        return result
    if not isinstance(document, dict):
        result.errors.append(
            FieldError("", "a manifest must be a mapping with apiVersion and kind")
        )
        return result
    api_version, kind = document.get("apiVersion"), document.get("kind")
    result.kind = kind if isinstance(kind, str) else None
    metadata = document.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
        result.name = metadata["name"]
    if not isinstance(api_version, str) or not isinstance(kind, str):
        result.errors.append(
            FieldError("apiVersion" if not isinstance(api_version, str) else "kind", "is required")
        )
        return result
    if api_version == CONFIG_API_VERSION and kind == CONFIG_KIND:
        result.errors.extend(_check_against(document, kind, with_metadata=False))
        return result
    if api_version.split("/")[0] in (GROUP, CONFIG_API_VERSION.split("/")[0]):
        if kind not in KINDS:
            known = ", ".join([*KINDS, CONFIG_KIND])
            result.errors.append(FieldError("kind", f"unknown kind {kind!r}: Cadre has {known}"))
            return result
        if api_version != API_VERSION:
            result.errors.append(
                FieldError("apiVersion", f"{api_version!r} is not served: use {API_VERSION}")
            )
            return result
        result.errors.extend(_check_against(document, kind, with_metadata=True))
        return result
    result.skipped = f"{api_version} {kind} is not a Cadre kind"
    return result


def _check_against(document: dict[str, Any], kind: str, *, with_metadata: bool) -> list[FieldError]:
    schema = _schema_for(kind)
    defaulted = apply_defaults(document, schema)
    errors = list(_check_metadata(document)) if with_metadata else []
    # The general name check already spoke about metadata.name: keep one message.
    errors.extend(
        e for e in check(defaulted, schema, "") if not (errors and e.path == "metadata.name")
    )
    if not any(e.blocks_rules for e in errors):
        # As the API server does: CEL runs unless a blocking schema error was found.
        errors.extend(check_rules(defaulted, schema, ""))
    errors.extend(_model_errors(document, kind, errors))
    return sorted(set(errors), key=lambda e: (e.path, e.message))


def _check_metadata(document: dict[str, Any]) -> list[FieldError]:
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        return [FieldError("metadata.name", "is required", blocks_rules=True)]
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        return [FieldError("metadata.name", "is required", blocks_rules=True)]
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        return [
            FieldError(
                "metadata.name",
                f"{name!r} is not a valid name: use lowercase letters, digits, '-' and '.'",
            )
        ]
    return []


def _model_errors(document: dict[str, Any], kind: str, found: list[FieldError]) -> list[FieldError]:
    """What the operator's own models reject that the schema layers did not already say."""
    try:
        _model_for(kind).model_validate(document)
    except ArithmeticError as err:  # a number the operator's arithmetic cannot hold
        return [
            FieldError(
                "",
                f"a number in it is too large for the operator ({type(err).__name__}); "
                "look at the quantities (cpu, memory)",
            )
        ]
    except ValidationError as err:
        extra = []
        for problem in err.errors():
            path = _loc_to_path(problem["loc"])
            if any(_related(path, f.path) for f in found):
                continue
            extra.append(FieldError(path, _plain(problem)))
        return extra
    return []


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path = join(path, part)
    return path


def _related(a: str, b: str) -> bool:
    return a == b or a.startswith((b + ".", b + "[")) or b.startswith((a + ".", a + "["))


def _plain(problem: Any) -> str:
    kind, message = problem["type"], str(problem["msg"])
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown field"
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return message[:1].lower() + message[1:]


def validate_stream(text: str) -> list[DocumentResult]:
    """Check every document of a YAML stream. A YAML error (syntax, a duplicate key,
    excessive aliasing, too deep) is one error, for the document where it is, after the
    verdicts on the documents before it; a stream without any document is an error too
    (as `kubectl apply` says: no objects)."""
    results: list[DocumentResult] = []
    try:
        for index, document in enumerate(load_documents(text)):
            results.append(_validate_safely(document, index))
    except yaml.YAMLError as err:
        results.append(
            DocumentResult(index=len(results), errors=[FieldError("", yaml_problem(err))])
        )
    if not results or all(r.skipped == _EMPTY for r in results):
        return [DocumentResult(index=0, errors=[FieldError("", _NO_DOCUMENTS)])]
    return results


def _validate_safely(document: Any, index: int) -> DocumentResult:
    """validate_document, with a last line of defence: whatever it cannot handle becomes
    an error on the document, never a traceback."""
    try:
        return validate_document(document, index)
    except RecursionError:
        return DocumentResult(index=index, errors=[FieldError("", "nested too deep to check")])
    except (ArithmeticError, ValueError, TypeError) as err:
        return DocumentResult(
            index=index,
            errors=[FieldError("", f"could not be checked ({type(err).__name__}: {err})")],
        )
