"""Vertex AI's discovery document as JSON Schema, for jsonschema to validate request bodies.

An independent check of what stepframe sends: the product walks the discovery document
itself (stepframe_gcp._vertex.discovery); the tests convert the same document to JSON
Schema here and let ``jsonschema`` judge.  Objects refuse unknown fields (Vertex AI
refuses them: "Invalid JSON payload received. Unknown name"), enums are enforced,
read-only fields are refused in requests, int64 fields travel as strings (or numbers).
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["validator"]

_SIMPLE = {"integer": "integer", "number": "number", "boolean": "boolean"}


def _convert(spec: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in spec:
        return {"$ref": f"#/$defs/{spec['$ref']}"}
    kind = spec.get("type")
    if kind == "object" or "properties" in spec:
        properties = {
            name: (False if field.get("readOnly") else _convert(field))
            for name, field in spec.get("properties", {}).items()
        }
        extra = spec.get("additionalProperties")
        return {
            "type": "object",
            "properties": properties,
            "additionalProperties": _convert(extra) if extra is not None else False,
        }
    if kind == "array":
        return {"type": "array", "items": _convert(spec.get("items", {}))}
    if kind == "string":
        if spec.get("format") in ("int64", "uint64"):
            return {"type": ["string", "integer"], "pattern": "^-?[0-9]+$"}
        schema: dict[str, Any] = {"type": "string"}
        if "enum" in spec:
            schema["enum"] = list(spec["enum"])
        return schema
    if kind in _SIMPLE:
        return {"type": _SIMPLE[kind]}
    return {}


@functools.cache
def validator(schema_name: str = "GoogleCloudAiplatformV1CustomJob") -> Any:
    """A jsonschema validator of ``schema_name`` from the shipped ``aiplatform.v1`` document."""
    import jsonschema
    from stepframe_gcp._vertex.discovery import document

    schemas = document()["schemas"]
    root = {
        "$ref": f"#/$defs/{schema_name}",
        "$defs": {name: _convert(spec) for name, spec in schemas.items()},
    }
    return jsonschema.Draft202012Validator(root)
