"""Zod schemas read statically and turned into JSON Schema (the subset apps use for LLM I/O).

``z.object``, ``z.string``, ``z.number``, ``z.boolean``, ``z.array``, ``z.enum``, ``z.literal``,
``z.union``, ``z.record``, ``z.any`` and ``z.date``, with ``.optional()``, ``.nullable()``,
``.default()``, ``.int()``, ``.min()`` / ``.max()``, ``.email()`` / ``.url()`` / ``.uuid()``,
``.regex()`` (without flags), ``.or()``, ``.partial()``, ``.array()`` and ``.describe()``.
Anything else becomes ``{}`` (accept anything), so a converted schema is never stricter than
the Zod one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tree_sitter import Node

from tracegrade.synth._pyvalues import UNKNOWN
from tracegrade.synth._tsvalues import (
    Zod,
    arguments_of,
    member_parts,
    object_entries,
    text,
    unwrap,
)

if TYPE_CHECKING:
    from tracegrade.synth._tsvalues import TsScope

_LEAVES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "number": {"type": "number"},
    "bigint": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date-time"},
    "null": {"type": "null"},
    "any": {},
    "unknown": {},
    "int": {"type": "integer"},
    "email": {"type": "string", "format": "email"},
    "url": {"type": "string", "format": "uri"},
    "uuid": {"type": "string", "format": "uuid"},
}
_FORMATS = {"email": "email", "url": "uri", "uuid": "uuid", "datetime": "date-time"}
_BOUNDS = {
    "string": ("minLength", "maxLength"),
    "array": ("minItems", "maxItems"),
    "number": ("minimum", "maximum"),
    "integer": ("minimum", "maximum"),
}


def zod_value(node: Node, scope: TsScope, depth: int) -> Zod | None:
    """The schema of a Zod expression (``z.…`` chain), or None when ``node`` is not one."""
    node = unwrap(node)
    if node.type != "call_expression":
        return None
    parts = member_parts(node)
    if not parts or parts[0] not in ("z", "zod"):
        return None
    return _Converter(scope, depth).call(node)


class _Converter:
    def __init__(self, scope: TsScope, depth: int) -> None:
        self.scope = scope
        self.depth = depth

    def schema_of(self, node: Node) -> Zod:
        value = self.scope.value(node, self.depth + 1)
        return value if isinstance(value, Zod) else Zod({})

    def call(self, node: Node) -> Zod:
        function = node.child_by_field_name("function")
        if function is None or function.type != "member_expression":
            return Zod({})
        target = function.child_by_field_name("object")
        method = text(function.child_by_field_name("property") or function)
        arguments = arguments_of(node)
        if target is not None and member_parts(target) in (["z"], ["zod"]):
            return self.constructor(method, arguments)
        inner = self.schema_of(target) if target is not None else Zod({})
        return self.modifier(inner, method, arguments)

    def constructor(self, method: str, arguments: list[Node]) -> Zod:
        if method in _LEAVES:
            return Zod(dict(_LEAVES[method]))
        if method in ("object", "strictObject", "looseObject") and arguments:
            return Zod(self.object(arguments[0]))
        if method == "array" and arguments:
            return Zod({"type": "array", "items": self.schema_of(arguments[0]).schema})
        if method in ("enum", "nativeEnum") and arguments:
            values = self.scope.value(arguments[0], self.depth + 1)
            if isinstance(values, list) and all(isinstance(v, str) for v in values):
                return Zod({"type": "string", "enum": values})
            return Zod({})
        if method == "literal" and arguments:
            literal = self.scope.value(arguments[0], self.depth + 1)
            return Zod({"const": literal}) if literal is not UNKNOWN else Zod({})
        if method in ("union", "discriminatedUnion") and arguments:
            options = self.scope.value(arguments[-1], self.depth + 1)
            if isinstance(options, list) and all(isinstance(o, Zod) for o in options):
                schemas = [o.schema for o in options]
                return Zod({"anyOf": schemas} if all(schemas) else {})
            return Zod({})
        if method == "record" and arguments:
            values = self.schema_of(arguments[-1]).schema
            return Zod({"type": "object", "additionalProperties": values} if values
                       else {"type": "object"})
        if method in ("optional", "nullable") and arguments:
            return self.modifier(self.schema_of(arguments[0]), method, [])
        return Zod({})

    def object(self, node: Node) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for key, value in object_entries(self.scope.resolve(node)[0]).items():
            field = self.schema_of(value)
            properties[key] = field.schema
            if not field.optional:
                required.append(key)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        return schema

    def modifier(self, inner: Zod, method: str, arguments: list[Node]) -> Zod:
        schema = dict(inner.schema)
        if method in ("optional", "default", "nullish", "catch"):
            nullable = {"anyOf": [schema, {"type": "null"}]} if method == "nullish" and schema \
                else schema
            return Zod(nullable if method == "nullish" else schema, optional=True)
        if method == "nullable":
            return Zod({"anyOf": [schema, {"type": "null"}]} if schema else {}, inner.optional)
        if method == "array":
            return Zod({"type": "array", "items": schema}, inner.optional)
        if method == "int":
            return Zod({**schema, "type": "integer"}, inner.optional)
        if method in _FORMATS:
            return Zod({**schema, "format": _FORMATS[method]}, inner.optional)
        if method in ("min", "max", "length", "nonempty") and schema.get("type") in _BOUNDS:
            return Zod(self.bound(schema, method, arguments), inner.optional)
        if method == "regex" and arguments and arguments[0].type == "regex":
            pattern = _portable_pattern(arguments[0])
            if pattern is not None:
                return Zod({**schema, "pattern": pattern}, inner.optional)
        if method == "or" and arguments:
            return Zod(_either(schema, self.schema_of(arguments[0]).schema),
                       inner.optional or self.schema_of(arguments[0]).optional)
        if method in ("partial", "deepPartial") and not arguments:
            return Zod({k: v for k, v in schema.items() if k != "required"}, inner.optional)
        # describe(), refine(), transform()… change nothing a JSON Schema could check.
        return inner

    def bound(self, schema: dict[str, Any], method: str, arguments: list[Node]
              ) -> dict[str, Any]:
        low_key, high_key = _BOUNDS[schema["type"]]
        if method == "nonempty":
            return {**schema, low_key: 1}
        value = self.scope.value(arguments[0], self.depth + 1) if arguments else UNKNOWN
        if not isinstance(value, int | float) or isinstance(value, bool):
            return schema
        if method == "length":
            return {**schema, low_key: value, high_key: value}
        return {**schema, (low_key if method == "min" else high_key): value}


def _either(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    """``a.or(b)``: literals become one ``enum``, other schemas an ``anyOf``."""
    if not left or not right:
        return {}  # one side accepts anything, so the union does too
    values = [_literals(left), _literals(right)]
    if values[0] is not None and values[1] is not None:
        return {"enum": values[0] + values[1]}
    chained = left["anyOf"] if set(left) == {"anyOf"} else [left]  # a.or(b).or(c)
    return {"anyOf": [*chained, right]}


def _literals(schema: dict[str, Any]) -> list[Any] | None:
    if set(schema) == {"const"}:
        return [schema["const"]]
    if set(schema) == {"enum"}:
        return list(schema["enum"])
    return None


def _portable_pattern(regex: Node) -> str | None:
    """A ``/…/`` literal's pattern, or None when Python's ``re`` would not read it the same.

    Flags change what the pattern matches, and JavaScript-only syntax (``\\p{L}``) does not
    compile: dropping the constraint keeps the schema no stricter than the Zod one.
    """
    pattern = regex.child_by_field_name("pattern")
    if pattern is None or regex.child_by_field_name("flags") is not None:
        return None
    try:
        re.compile(text(pattern))
    except (re.error, RecursionError, OverflowError):
        return None
    return text(pattern)
