"""Vertex AI's own API description, as the pre-flight checks request bodies against it.

google-api-python-client ships the discovery document of ``aiplatform.v1`` (every schema
of the REST API: field names in camelCase, their types, enums, read-only fields).  The
client it builds checks path parameters but not request bodies, so `body_problems` walks a
body through the document's schemas and names every field Vertex AI would refuse: an
unknown or read-only field, a snake_case key where the wire wants camelCase, a wrong type
or a value outside an enum.  No network: the document is read from the installed package.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

__all__ = ["CUSTOM_JOB", "body_problems", "document", "enum_of"]

CUSTOM_JOB = "GoogleCloudAiplatformV1CustomJob"
_PREFIX = "GoogleCloudAiplatformV1"


@functools.cache
def document() -> dict[str, Any]:
    """The ``aiplatform.v1`` discovery document shipped with google-api-python-client."""
    import googleapiclient

    path = (
        Path(googleapiclient.__file__).parent
        / "discovery_cache"
        / "documents"
        / "aiplatform.v1.json"
    )
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def enum_of(schema: str, field: str) -> tuple[str, ...]:
    """The values a field's enum allows (without the ``*_UNSPECIFIED`` placeholder)."""
    values = document()["schemas"][schema]["properties"][field].get("enum", ())
    return tuple(v for v in values if not v.endswith("_UNSPECIFIED"))


def body_problems(body: Any, schema: str = CUSTOM_JOB, path: str = "") -> list[str]:
    """Every way ``body`` breaks ``schema``, one line each, with the field's path."""
    return _check(body, {"$ref": schema}, path or schema.removeprefix(_PREFIX))


def _check(value: Any, spec: dict[str, Any], path: str) -> list[str]:
    schemas = document()["schemas"]
    if "$ref" in spec:
        spec = schemas[spec["$ref"]]
    kind = spec.get("type")
    if kind == "object" or "properties" in spec:
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        return _check_object(value, spec, path)
    if kind == "array":
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        problems: list[str] = []
        for index, item in enumerate(value):
            problems += _check(item, spec.get("items", {}), f"{path}[{index}]")
        return problems
    if kind == "string":
        # int64 fields travel as strings; a JSON number is accepted for them too.
        if spec.get("format") in ("int64", "uint64") and isinstance(value, int):
            return []
        if not isinstance(value, str):
            return [f"{path}: expected a string, got {type(value).__name__} {value!r}"]
        allowed = spec.get("enum")
        if allowed and value not in allowed:
            return [f"{path}: {value!r} is not one of {', '.join(allowed)}"]
        return []
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected an integer, got {value!r}"]
    if kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected a number, got {value!r}"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: expected true or false, got {value!r}"]
    return []  # "any"


def _check_object(value: dict[str, Any], spec: dict[str, Any], path: str) -> list[str]:
    problems: list[str] = []
    properties: dict[str, Any] = spec.get("properties", {})
    extra = spec.get("additionalProperties")
    for key, item in value.items():
        where = f"{path}.{key}"
        if key in properties:
            field = properties[key]
            if field.get("readOnly"):
                problems.append(f"{where}: read-only, set by Vertex AI; remove it")
                continue
            problems += _check(item, field, where)
        elif extra is not None:
            problems += _check(item, extra, where)
        else:
            hint = _camel(key)
            known = f"; did you mean {hint!r}?" if hint != key and hint in properties else ""
            problems.append(f"{where}: unknown field{known}")
    return problems


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
