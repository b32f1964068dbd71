"""The ``tool_args_valid`` grader: tool-call arguments against the tool schemas the trace declares.

Tool definitions ride on any span of the trace as ``attributes["tool_definitions"]``, a list of
``{"name", "description", "parameters"}`` where ``parameters`` is a JSON Schema. A tool span's
arguments are its ``input``; an LLM span's calls are ``attributes["tool_calls"]``, a list of
``{"id", "name", "arguments"}`` (arguments as an object or a JSON string).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from tracegrade.graders._base import Outcome, Result, register
from tracegrade.graders._common import CheckGrader, excerpt
from tracegrade.graders._schema import SchemaUnusable, first_violation
from tracegrade.spans import JSONValue, Span, SpanKind

if TYPE_CHECKING:
    from tracegrade.graders._targets import TraceContext

_NO_SCHEMA = object()
"""Marks a tool the trace declares without a ``parameters`` schema."""


class MalformedCalls(Exception):
    """An LLM span's ``tool_calls`` attribute is not in the canonical shape."""


@dataclass(frozen=True)
class ToolCall:
    """One call to check: which tool, with which arguments, and how reasons name it."""

    tool: str
    arguments: JSONValue
    label: str


@register
class ToolArgsValid(CheckGrader):
    """Pass when every tool call of a tool or LLM span matches the called tool's declared schema.

    Skips when the trace declares no tools (or the tool without a schema); a call to a tool the
    trace does not declare fails, and so do arguments that are not JSON.
    """

    type_name = "tool_args_valid"
    needs_trace = True

    def check(self, span: Span, context: TraceContext) -> Result:
        """Collect the span's calls and the trace's definitions, then check each call."""
        if span.kind not in (SpanKind.TOOL, SpanKind.LLM):
            return Result.skipped(f"{self.type_name} grades tool and llm spans, not {span.kind}")
        try:
            calls = calls_of(span)
        except MalformedCalls as exc:
            return Result.errored(str(exc))
        if not calls:
            return Result.skipped("span made no tool calls")
        schemas = declared_tools([span, *context.spans()])
        if not schemas:
            return Result.skipped(f"trace carries no schema for tool {calls[0].tool!r}")
        return combine([check_call(call, schemas) for call in calls])


def calls_of(span: Span) -> list[ToolCall]:
    """The tool calls a span holds: a tool span is one call, an LLM span lists its own."""
    if span.kind == SpanKind.TOOL:
        if span.input is None:
            raise MalformedCalls(f"tool span {span.name!r} records no arguments (input)")
        return [ToolCall(span.name, span.input, span.name)]
    raw = span.attributes.get("tool_calls")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise MalformedCalls(f"tool_calls is a {type(raw).__name__}, not a list")
    return [_llm_call(index, entry) for index, entry in enumerate(raw)]


def _llm_call(index: int, entry: Any) -> ToolCall:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise MalformedCalls(f"tool_calls[{index}] has no tool name: {excerpt(entry)}")
    if "arguments" not in entry:
        raise MalformedCalls(f"tool_calls[{index}] ({entry['name']}) has no arguments")
    call_id = entry.get("id")
    label = f"{entry['name']} (call {call_id})" if call_id else entry["name"]
    return ToolCall(entry["name"], entry["arguments"], label)


def declared_tools(spans: list[Span]) -> dict[str, Any]:
    """Each declared tool's parameters schema by name; the first declaration wins."""
    schemas: dict[str, Any] = {}
    for span in spans:
        definitions = span.attributes.get("tool_definitions")
        if not isinstance(definitions, list):
            continue
        for definition in definitions:
            if isinstance(definition, dict) and isinstance(definition.get("name"), str):
                parameters = definition.get("parameters")
                schema = _NO_SCHEMA if parameters is None else parameters
                schemas.setdefault(definition["name"], schema)
    return schemas


def check_call(call: ToolCall, schemas: dict[str, Any]) -> Result:
    """One call's verdict against the declared schemas."""
    if call.tool not in schemas:
        declared = ", ".join(sorted(schemas)[:5])
        return Result.failed(f"{call.label}: tool not declared in the trace; declared: {declared}")
    schema = schemas[call.tool]
    if schema is _NO_SCHEMA:
        return Result.skipped(f"trace carries no schema for tool {call.tool!r}")
    arguments = _parsed(call.arguments)
    if isinstance(arguments, Result):
        return Result.failed(f"{call.label}: {arguments.reason}")
    try:
        violation = first_violation(schema, arguments)
    except SchemaUnusable as exc:
        return Result.errored(f"schema of tool {call.tool!r}: {exc}")
    if violation is not None:
        return Result.failed(f"{call.label}: arguments break the schema at {violation}")
    return Result.passed(f"{call.label}: arguments match the schema")


def _parsed(arguments: JSONValue) -> JSONValue | Result:
    """Arguments as a JSON value; a string must hold JSON (an empty one means no arguments)."""
    if not isinstance(arguments, str):
        return arguments
    if not arguments.strip():
        return {}
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return Result.failed(f"arguments are not JSON: {excerpt(arguments, 40)}")


_PRECEDENCE = (Outcome.FAIL, Outcome.ERROR, Outcome.PASS, Outcome.SKIP)


def combine(verdicts: list[Result]) -> Result:
    """One verdict for several calls: any fail fails, then error, then pass, then skip."""
    if len(verdicts) == 1:
        return verdicts[0]
    for outcome in _PRECEDENCE:
        hits = [v for v in verdicts if v.outcome == outcome]
        if hits:
            return _summary(outcome, hits, verdicts)
    raise AssertionError("unreachable: every verdict has an outcome")


_VERB = {Outcome.FAIL: "fail", Outcome.ERROR: "could not be checked", Outcome.SKIP: "unchecked"}


def _summary(outcome: Outcome, hits: list[Result], verdicts: list[Result]) -> Result:
    counted = f"{len(hits)} of {len(verdicts)} calls"
    if outcome != Outcome.PASS:
        return Result(outcome=outcome, reason=f"{counted} {_VERB[outcome]}; {hits[0].reason}")
    unchecked = [v.reason for v in verdicts if v.outcome == Outcome.SKIP]
    note = f"; {unchecked[0]}" if unchecked else ""
    return Result.passed(f"{counted} match their tool schemas{note}")
