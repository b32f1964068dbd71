"""Built-in graders about the shape of a target: JSON validity, a schema, fields, equality."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tracegrade.graders._base import GraderConfig, Result, json_equal, register
from tracegrade.graders._common import (
    CheckGrader,
    ParamsGrader,
    ValueGrader,
    describe_path,
    excerpt,
    json_type,
)
from tracegrade.graders._schema import (
    SchemaUnusable,
    check_schema,
    expected_container,
    first_violation,
)
from tracegrade.graders._targets import find_all, target_value
from tracegrade.spans import JSONValue, Span, parse_json_string

if TYPE_CHECKING:
    from tracegrade.graders._targets import TraceContext


@register
class JsonValid(ValueGrader):
    """Pass when the target is JSON: a dict or list already, or a string that parses as JSON."""

    type_name = "json_valid"

    def check_value(self, value: JSONValue) -> Result:
        """Parse the value when it is a string."""
        if not isinstance(value, str):
            return Result.passed(f"{self.where} is a JSON {json_type(value)}")
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return Result.failed(
                f"{self.where} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                f" in {excerpt(value, 40)}"
            )
        return Result.passed(f"{self.where} parses as JSON")


class JsonSchemaParams(BaseModel):
    """Parameters of ``json_schema``."""

    model_config = ConfigDict(extra="forbid", title="json_schema params")

    json_schema: dict[str, Any] = Field(
        alias="schema",
        description="The JSON Schema the target must satisfy (draft from its `$schema`, "
        "2020-12 when absent). Checked when the grader is built.",
    )

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            check_schema(schema)
        except SchemaUnusable as exc:
            raise ValueError(str(exc)) from exc
        return schema


@register
class JsonSchema(ValueGrader, ParamsGrader[JsonSchemaParams]):
    """Pass when the target validates against a JSON Schema; the reason names the first error."""

    type_name = "json_schema"
    Params = JsonSchemaParams

    def __init__(self, config: GraderConfig, params: BaseModel | None) -> None:
        super().__init__(config, params)
        self.expected = expected_container(self.params.json_schema)

    def check_value(self, value: JSONValue) -> Result:
        """Validate the value; an unresolvable ``$ref`` is an ``error``.

        Structured output is often recorded as JSON text (a chat message's content); text that
        holds a JSON object or array is validated as that value.
        """
        value = parse_json_string(value)
        expected = self.expected
        if expected is not None and not isinstance(value, str) and not isinstance(
                value, dict if expected == "object" else list):
            return Result.failed(f"{self.where} is a JSON {json_type(value)}, where the schema "
                                 f"describes an {expected}: {excerpt(value, 40)}")
        if isinstance(value, str) and expected is not None:
            # Text that is not a JSON object or array (a refusal, output cut off mid-object):
            # the schema's keywords would not apply to it and it would pass.
            try:
                orjson.loads(value)
                why = "holds JSON that is not an object or array"
            except orjson.JSONDecodeError as exc:
                why = f"is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            return Result.failed(f"{self.where} {why}, where the schema describes an "
                                 f"{expected}: {excerpt(value, 40)}")
        try:
            violation = first_violation(self.params.json_schema, value)
        except SchemaUnusable as exc:
            return Result.errored(str(exc))
        if violation is None:
            return Result.passed(f"{self.where} matches the schema")
        return Result.failed(f"{self.where} breaks the schema at {violation}")


class _FieldGrader(CheckGrader):
    """Shared set-up of ``field_present`` / ``field_absent``: ``path`` is required."""

    def __init__(self, config: GraderConfig, params: BaseModel | None) -> None:
        if config.path is None:
            raise ValueError(f"grader {config.name!r} ({self.type_name}) needs `path`")
        super().__init__(config, params)
        self.path: str = config.path
        self.field = describe_path(config.path)

    def matches(self, span: Span) -> tuple[JSONValue, list[Any]]:
        """The target (raises when missing; JSON text read as its value) and the path's
        matches in it."""
        value = target_value(span, self.config.target)
        return parse_json_string(value), find_all(self.path, value)


@register
class FieldPresent(_FieldGrader):
    """Pass when ``path`` matches at least once in the target; a missing target is ``error``."""

    type_name = "field_present"

    def check(self, span: Span, context: TraceContext) -> Result:
        """Look the path up in the whole target (not narrowed by it)."""
        value, found = self.matches(span)
        target = self.config.target
        if found:
            return Result.passed(f"{self.field} present in {target}")
        if not isinstance(value, dict | list):
            return Result.failed(
                f"{self.field} missing: {target} is a JSON {json_type(value)}, not an object"
            )
        return Result.failed(f"{self.field} missing from {target}")


@register
class FieldAbsent(_FieldGrader):
    """Pass when ``path`` matches nothing in the target; a missing target is ``error``, and so
    is one that is not a JSON object or array (text that did not parse as JSON, a number): a
    field cannot be looked for there, so its absence proves nothing."""

    type_name = "field_absent"

    def check(self, span: Span, context: TraceContext) -> Result:
        """Look the path up in the whole target (not narrowed by it)."""
        value, found = self.matches(span)
        target = self.config.target
        if found:
            return Result.failed(f"{self.field} present in {target}: {excerpt(found[0])}")
        if not isinstance(value, dict | list):
            return Result.errored(f"{target} is a JSON {json_type(value)}, not an object or "
                                  f"array: cannot look for {self.field} in it")
        cut_off = _unreadable_json_text(value)
        if cut_off is not None:  # the field may be in there, past where the text breaks
            return Result.errored(f"{target} holds JSON text that does not parse "
                                  f"({excerpt(cut_off, 40)}): cannot look for {self.field} in it")
        return Result.passed(f"{self.field} absent from {target}")


_DEPTH_LIMIT = 300
_JSON_OBJECT_START = re.compile(r"\s*(?:\{\s*\"|\[\s*(?:[\[{\"\d-]|true|false|null))")
"""Text that opens a JSON object with a member, or an array with a value: JSON, not prose
("[INFO] …" is not)."""


def _unreadable_json_text(value: JSONValue, depth: int = 0) -> str | None:
    """The first string inside ``value`` that opens like a JSON object but does not parse
    (a cut-off reply), or None. Strings that parse are looked into in turn."""
    if depth > _DEPTH_LIMIT:  # deeper than any stored value (mapping stops at 100)
        return None
    if isinstance(value, str):
        if not _JSON_OBJECT_START.match(value):
            return None
        parsed = parse_json_string(value)
        return value if parsed is value else _unreadable_json_text(parsed, depth + 1)
    children = value.values() if isinstance(value, dict) else value if isinstance(
        value, list) else ()
    for child in children:
        found = _unreadable_json_text(child, depth + 1)
        if found is not None:
            return found
    return None


class EqualsParams(BaseModel):
    """Parameters of ``equals``."""

    model_config = ConfigDict(extra="forbid", title="equals params")

    value: JSONValue = Field(
        description="The JSON value the resolved target must equal (true is not 1; 1 is 1.0)."
    )


@register
class Equals(ValueGrader, ParamsGrader[EqualsParams]):
    """Pass when the resolved target equals ``value`` under JSON semantics."""

    type_name = "equals"
    Params = EqualsParams

    def check_value(self, value: JSONValue) -> Result:
        """Compare the value with the expected one."""
        expected = self.params.value
        return Result.check(
            json_equal(value, expected),
            passed=f"{self.where} equals {excerpt(expected)}",
            failed=f"{self.where} is {excerpt(value)}, expected {excerpt(expected)}",
        )
