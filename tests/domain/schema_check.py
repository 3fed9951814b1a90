"""A structural check of draft 2020-12 JSON Schema, shared by the domain
tests (``jsonschema`` is not a dependency; when it happens to be installed
its metaschema check runs too)."""

from __future__ import annotations

from typing import Any

TYPES = {"string", "integer", "number", "boolean", "object", "array", "null"}
KEYWORDS = {
    "$defs", "$ref", "additionalProperties", "anyOf", "default", "description", "enum",
    "const", "format", "items", "maxLength", "minLength", "maximum", "minimum",
    "properties", "required", "title", "type", "pattern", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "oneOf", "allOf", "not", "contentEncoding",
    "minItems", "maxItems", "uniqueItems",
}


def check_schema(schema: Any, root: dict[str, Any] | None = None, path: str = "#") -> None:
    """A structural check of draft 2020-12 JSON Schema (the keywords pydantic
    emits, with the types each must have)."""
    root = schema if root is None else root
    if isinstance(schema, bool):
        return
    assert isinstance(schema, dict), path
    unknown = set(schema) - KEYWORDS
    assert not unknown, f"{path}: unknown keywords {unknown}"
    t = schema.get("type")
    if t is not None:
        assert (t in TYPES) if isinstance(t, str) else (set(t) <= TYPES), path
    for k in ("maxLength", "minLength"):
        if k in schema:
            assert isinstance(schema[k], int) and schema[k] >= 0, path
    for k in ("minimum", "maximum"):
        if k in schema:
            assert isinstance(schema[k], (int, float)) and not isinstance(schema[k], bool), path
    if "enum" in schema:
        assert isinstance(schema["enum"], list) and schema["enum"], path
    if "format" in schema:
        assert isinstance(schema["format"], str), path
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/") and ref[8:] in root.get("$defs", {}), path
    for k in ("anyOf", "oneOf", "allOf"):
        if k in schema:
            assert isinstance(schema[k], list) and schema[k], path
            for i, s in enumerate(schema[k]):
                check_schema(s, root, f"{path}/{k}/{i}")
    for k in ("items", "additionalProperties", "not"):
        if k in schema:
            check_schema(schema[k], root, f"{path}/{k}")
    for k in ("properties", "$defs"):
        if k in schema:
            assert isinstance(schema[k], dict), path
            for name, s in schema[k].items():
                check_schema(s, root, f"{path}/{k}/{name}")
    if "required" in schema:
        req = schema["required"]
        assert isinstance(req, list) and len(set(req)) == len(req), path
        assert set(req) <= set(schema.get("properties", {})), path
    if "default" in schema and isinstance(schema.get("type"), str):
        d = schema["default"]
        py = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
              "null": type(None), "object": dict, "array": list}[schema["type"]]
        assert isinstance(d, py), f"{path}: default {d!r} is not a {schema['type']}"
        if "enum" in schema:
            assert d in schema["enum"], path


def draft_2020_12_check(schema: dict[str, Any]) -> None:
    try:
        import jsonschema  # type: ignore[import-untyped,unused-ignore]  # optional
    except ImportError:
        return
    jsonschema.Draft202012Validator.check_schema(schema)
