"""JSON Schema checks shared by ``json_schema`` and ``tool_args_valid`` (via ``jsonschema``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import unquote

import orjson
from jsonschema import exceptions as schema_exceptions
from jsonschema import validators
from jsonschema.protocols import Validator
from referencing.exceptions import Unresolvable

from tracegrade.graders._common import excerpt

_MESSAGE_CHARS = 160


class SchemaUnusable(Exception):
    """A schema that cannot be used: invalid itself, or holding a ``$ref`` that cannot resolve."""


def check_schema(schema: Any) -> None:
    """Raise :class:`SchemaUnusable` when ``schema`` is not a valid JSON Schema.

    The metaschema is chosen from the schema's ``$schema`` (2020-12 when absent).
    """
    if not isinstance(schema, dict):
        raise SchemaUnusable(f"a JSON Schema here is an object, not {excerpt(schema)}")
    _check_keys(schema, "$")
    try:
        validators.validator_for(schema).check_schema(schema)
    except schema_exceptions.SchemaError as exc:
        raise SchemaUnusable(
            f"invalid JSON Schema at {exc.json_path}: {_short(exc.message)}"
        ) from exc
    if not _has_nested_id(schema, top=True):  # a nested $id moves the base of the refs below it
        _check_local_refs(schema, schema, "$")


def _has_nested_id(value: Any, *, top: bool = False) -> bool:
    if isinstance(value, dict):
        if not top and isinstance(value.get("$id"), str):
            return True
        return any(_has_nested_id(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_nested_id(item) for item in value)
    return False


def _check_local_refs(root: dict[str, Any], value: Any, where: str) -> None:
    """Raise :class:`SchemaUnusable` for a ``$ref`` to a JSON pointer in the schema itself that
    leads nowhere (``#/$defs/missing``): caught when the grader is built, not on the spans whose
    output happens to reach it."""
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")) \
                and _local_target(root, ref) is _NOWHERE:
            raise SchemaUnusable(f"schema reference {ref!r} at {where} points to nothing "
                                 "in the schema")
        for key, item in value.items():
            _check_local_refs(root, item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_local_refs(root, item, f"{where}[{index}]")


_OBJECT_KEYWORDS = frozenset({"properties", "required", "additionalProperties",
                              "patternProperties", "minProperties", "maxProperties",
                              "dependentRequired", "dependentSchemas", "propertyNames",
                              "unevaluatedProperties"})
_ARRAY_KEYWORDS = frozenset({"items", "prefixItems", "contains", "minItems", "maxItems",
                             "uniqueItems", "unevaluatedItems"})


def expected_container(schema: Any, root: Any = None, depth: int = 0) -> str | None:
    """``object`` or ``array`` when a schema without a top-level ``type`` only constrains that
    kind of value (directly, through a local ``$ref`` or through ``allOf``), else None.

    JSON Schema lets ``{"required": ["status"]}`` accept any string, number or array (the
    keyword applies to objects only), so a reply that is no object at all would pass a schema
    plainly written for one.
    """
    if not isinstance(schema, dict) or "type" in schema or depth > _MAX_REF_DEPTH:
        return None
    root = schema if root is None else root
    keys = set(schema)
    found: set[str] = set()
    if keys & _OBJECT_KEYWORDS and not keys & _ARRAY_KEYWORDS:
        found.add("object")
    if keys & _ARRAY_KEYWORDS and not keys & _OBJECT_KEYWORDS:
        found.add("array")
    ref = schema.get("$ref")
    if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")):
        found.add(expected_container(_local_target(root, ref), root, depth + 1) or "")
    for part in schema.get("allOf") or () if isinstance(schema.get("allOf"), list) else ():
        found.add(expected_container(part, root, depth + 1) or "")
    found.discard("")
    return found.pop() if len(found) == 1 else None


_MAX_REF_DEPTH = 20


_NOWHERE = object()
"""What a local ``$ref`` that leads nowhere resolves to."""


def _local_target(root: Any, ref: str) -> Any:
    """What a local ``$ref`` ("#", "#/$defs/reply") points to in ``root``, or
    :data:`_NOWHERE`."""
    target = root
    for raw in ref[2:].split("/") if ref != "#" else ():
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return _NOWHERE
    return target


def _check_keys(value: Any, where: str) -> None:
    # jsonschema accepts {1: ...} as a schema but could never match it against JSON, whose keys
    # are strings; and the validator cache (keyed by the schema's JSON) could not hold it.
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SchemaUnusable(f"key {key!r} at {where} is not a string: JSON Schema keys "
                                     "are text")
            _check_keys(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_keys(item, f"{where}[{index}]")


def first_violation(schema: Any, instance: Any) -> str | None:
    """The most relevant way ``instance`` breaks ``schema`` as "path: message", or None.

    Raises:
        SchemaUnusable: when the schema is invalid or a ``$ref`` in it cannot be resolved.
    """
    validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    try:
        error = schema_exceptions.best_match(validator.iter_errors(instance))
    except Unresolvable as exc:
        raise SchemaUnusable(f"schema reference cannot be resolved: {exc}") from exc
    if error is None:
        return None
    return f"{error.json_path}: {_short(error.message)}"


@lru_cache(maxsize=256)
def _validator(schema_json: bytes) -> Validator:
    schema = orjson.loads(schema_json)
    check_schema(schema)
    validator: Validator = validators.validator_for(schema)(schema)
    return validator


def _short(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= _MESSAGE_CHARS else message[: _MESSAGE_CHARS - 1] + "…"
