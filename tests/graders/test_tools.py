"""tool_args_valid: tool-call arguments against the schemas the trace declares."""

from __future__ import annotations

from typing import Any

import pytest

from tests.graders.helpers import context_of, grade, make_grader, make_span
from tracegrade.graders import Outcome, Result
from tracegrade.graders._targets import TraceContext
from tracegrade.spans import Span

LOOKUP_ORDER = {
    "name": "lookup_order",
    "description": "Find an order by id.",
    "parameters": {
        "type": "object",
        "required": ["order_id"],
        "properties": {"order_id": {"type": "string", "pattern": "^ORD-"}},
        "additionalProperties": False,
    },
}
REFUND = {
    "name": "refund",
    "description": "Refund an order.",
    "parameters": {"type": "object", "properties": {"amount": {"type": "number"}}},
}
DEFINITIONS = {"tool_definitions": [LOOKUP_ORDER, REFUND]}


def agent_span(**attributes: Any) -> Span:
    """The trace's root span, declaring the tools."""
    return make_span(span_id="root", kind="agent", attributes={**DEFINITIONS, **attributes})


def tool_span(name: str, arguments: Any) -> Span:
    return make_span(span_id="tool1", parent_id="root", kind="tool", name=name, input=arguments)


def llm_span(*calls: dict[str, Any], **attributes: Any) -> Span:
    return make_span(
        span_id="llm1", kind="llm", attributes={"tool_calls": list(calls), **attributes}
    )


def check(span: Span, *others: Span) -> Result:
    return grade("tool_args_valid", span, context_of(span, *others))


def test_tool_args_valid_reads_the_trace() -> None:
    assert make_grader("tool_args_valid").needs_trace is True


# tool spans


def test_tool_span_with_valid_arguments_passes() -> None:
    result = check(tool_span("lookup_order", {"order_id": "ORD-1"}), agent_span())
    assert (result.outcome, result.reason) == (
        Outcome.PASS,
        "lookup_order: arguments match the schema",
    )


def test_tool_span_with_invalid_arguments_fails_with_path() -> None:
    result = check(tool_span("lookup_order", {"order_id": 1234}), agent_span())
    assert result.outcome == Outcome.FAIL
    assert result.reason == (
        "lookup_order: arguments break the schema at $.order_id: 1234 is not of type 'string'"
    )


def test_tool_span_with_unexpected_argument_fails() -> None:
    span = tool_span("lookup_order", {"order_id": "ORD-1", "orderId": "ORD-1"})
    result = check(span, agent_span())
    assert result.outcome == Outcome.FAIL
    assert "'orderId' was unexpected" in result.reason


def test_tool_span_with_non_json_arguments_fails() -> None:
    result = check(tool_span("lookup_order", '{"order_id": "ORD-'), agent_span())
    assert result.outcome == Outcome.FAIL
    assert result.reason.startswith('lookup_order: arguments are not JSON: \'{"order_id"')


def test_tool_span_calling_an_undeclared_tool_fails() -> None:
    result = check(tool_span("cancel_order", {"order_id": "ORD-1"}), agent_span())
    assert result.outcome == Outcome.FAIL
    assert result.reason == (
        "cancel_order: tool not declared in the trace; declared: lookup_order, refund"
    )


def test_trace_without_definitions_is_skipped() -> None:
    result = check(tool_span("lookup_order", {"order_id": "ORD-1"}))
    assert (result.outcome, result.reason) == (
        Outcome.SKIP,
        "trace carries no schema for tool 'lookup_order'",
    )


def test_tool_declared_without_parameters_is_skipped() -> None:
    root = make_span(span_id="root", attributes={"tool_definitions": [{"name": "ping"}]})
    result = check(tool_span("ping", {}), root)
    assert (result.outcome, result.reason) == (
        Outcome.SKIP,
        "trace carries no schema for tool 'ping'",
    )


def test_tool_span_without_input_is_error() -> None:
    result = check(tool_span("lookup_order", None), agent_span())
    assert (result.outcome, result.reason) == (
        Outcome.ERROR,
        "tool span 'lookup_order' records no arguments (input)",
    )


def test_invalid_declared_schema_is_error() -> None:
    bad = {"name": "lookup_order", "parameters": {"type": "objekt"}}
    root = make_span(span_id="root", attributes={"tool_definitions": [bad]})
    result = check(tool_span("lookup_order", {"order_id": "ORD-1"}), root)
    assert result.outcome == Outcome.ERROR
    assert result.reason.startswith("schema of tool 'lookup_order': invalid JSON Schema at $.type")


def test_other_span_kinds_are_skipped() -> None:
    result = check(make_span(kind="retriever"), agent_span())
    assert (result.outcome, result.reason) == (
        Outcome.SKIP,
        "tool_args_valid grades tool and llm spans, not retriever",
    )


# LLM spans


def test_llm_calls_with_string_arguments_pass() -> None:
    span = llm_span(
        {"id": "c1", "name": "lookup_order", "arguments": '{"order_id": "ORD-9"}'},
        {"id": "c2", "name": "refund", "arguments": {"amount": 5}},
    )
    result = check(span, agent_span())
    assert (result.outcome, result.reason) == (
        Outcome.PASS,
        "2 of 2 calls match their tool schemas",
    )


def test_llm_call_uses_definitions_on_its_own_span_first() -> None:
    own = {"name": "refund", "parameters": {"type": "object", "required": ["reason"]}}
    span = llm_span(
        {"id": "c1", "name": "refund", "arguments": {"amount": 5}}, tool_definitions=[own]
    )
    result = check(span, agent_span())
    assert result.outcome == Outcome.FAIL
    assert result.reason == (
        "refund (call c1): arguments break the schema at $: 'reason' is a required property"
    )


def test_llm_one_bad_call_fails_the_span() -> None:
    span = llm_span(
        {"id": "c1", "name": "lookup_order", "arguments": '{"order_id": "ORD-9"}'},
        {"id": "c2", "name": "lookup_order", "arguments": "order ORD-9 please"},
    )
    result = check(span, agent_span())
    assert result.outcome == Outcome.FAIL
    assert result.reason == (
        "1 of 2 calls fail; lookup_order (call c2): arguments are not JSON: 'order ORD-9 please'"
    )


def test_llm_empty_argument_string_means_no_arguments() -> None:
    span = llm_span({"id": "c1", "name": "refund", "arguments": ""})
    assert check(span, agent_span()).outcome == Outcome.PASS


def test_llm_pass_notes_unchecked_calls() -> None:
    root = make_span(
        span_id="root", attributes={"tool_definitions": [LOOKUP_ORDER, {"name": "ping"}]}
    )
    span = llm_span(
        {"id": "c1", "name": "lookup_order", "arguments": {"order_id": "ORD-9"}},
        {"id": "c2", "name": "ping", "arguments": {}},
    )
    result = check(span, root)
    assert result.outcome == Outcome.PASS
    assert result.reason == (
        "1 of 2 calls match their tool schemas; trace carries no schema for tool 'ping'"
    )


def test_llm_span_without_calls_is_skipped() -> None:
    result = check(make_span(kind="llm"), agent_span())
    assert (result.outcome, result.reason) == (Outcome.SKIP, "span made no tool calls")


@pytest.mark.parametrize(
    ("tool_calls", "reason"),
    [
        ("lookup_order", "tool_calls is a str, not a list"),
        ([{"id": "c1"}], 'tool_calls[0] has no tool name: {"id":"c1"}'),
        ([{"id": "c1", "name": "refund"}], "tool_calls[0] (refund) has no arguments"),
    ],
)
def test_malformed_tool_calls_are_error(tool_calls: Any, reason: str) -> None:
    span = make_span(kind="llm", attributes={"tool_calls": tool_calls})
    result = check(span, agent_span())
    assert (result.outcome, result.reason) == (Outcome.ERROR, reason)


def test_works_with_an_empty_context() -> None:
    span = make_span(kind="tool", name="refund", input={"amount": 1}, attributes=DEFINITIONS)
    result = grade("tool_args_valid", span, TraceContext())
    assert result.outcome == Outcome.PASS


def test_a_trace_still_arriving_is_graded_once_its_schema_comes(store: Any) -> None:
    from datetime import timedelta

    from tracegrade.config import SamplingConfig
    from tracegrade.graders import GraderConfig, build_graders
    from tracegrade.grading import grade as grade_store
    from tracegrade.spans import utc_now

    graders = build_graders([GraderConfig(name="args", type="tool_args_valid")])
    recent = utc_now() - timedelta(seconds=5)  # a live trace: its root ends last
    tool = make_span(span_id="tool1", parent_id="root", kind="tool", name="lookup_order",
                     input={"order_id": 42}, start_time=recent, end_time=recent)
    store.upsert_spans([tool])

    early = grade_store(store, graders, SamplingConfig())

    assert (early.verdicts_written, early.waiting) == (0, 1)  # no schema yet: not a skip
    store.upsert_spans([make_span(span_id="root", kind="agent", attributes=DEFINITIONS,
                                  start_time=recent, end_time=recent)])
    later = grade_store(store, graders, SamplingConfig())
    assert later.outcomes["args"] == {"fail": 1}  # 42 is not a string
    # A trace long finished that never declared the tool is skipped at once, for good.
    old = make_span(span_id="tool9", trace_id="old", kind="tool", name="lookup_order",
                    input={"order_id": "ORD-1"})
    store.upsert_spans([old])
    assert grade_store(store, graders, SamplingConfig()).outcomes["args"] == {"skip": 1}
