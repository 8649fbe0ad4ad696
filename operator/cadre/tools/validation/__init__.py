"""Offline validation of Cadre manifests, agreeing with the API server.

Layers, in the order the API server applies them: schema defaults, the
structural schema, the CEL rules; then the pydantic models the operator itself
uses, for what a schema cannot say (the exact value of a quantity).
"""

from cadre.tools.validation.manifests import DocumentResult, validate_document, validate_stream
from cadre.tools.validation.schema import FieldError

__all__ = ["DocumentResult", "FieldError", "validate_document", "validate_stream"]
