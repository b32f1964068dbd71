"""applies_to: kind, name, attributes, and ``unless_output`` leaving out turns that called tools."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.conftest import make_span as stored_span
from tests.graders.helpers import make_grader, make_span
from tracegrade.config import ConfigError, SamplingConfig, parse_config
from tracegrade.graders import AppliesTo, GraderConfig, build_graders, grader_version
from tracegrade.graders._targets import EMPTY_CONTEXT
from tracegrade.grading import grade
from tracegrade.spans import SpanKind
from tracegrade.store import Store

CHAT_TOOL_CALLS = "$.choices[*].message.tool_calls[0]"
CALL = {"id": "call_1", "type": "function",
        "function": {"name": "lookup_order", "arguments": '{"order_id": "A-17"}'}}


def completion(**message: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", **message}}]}


def applies(unless_output: str, output: Any, **fields: Any) -> bool:
    applies_to = AppliesTo(kind=SpanKind.LLM, unless_output=unless_output)
    return applies_to.matches(make_span(kind="llm", output=output, **fields))


@pytest.mark.parametrize("output", [
    completion(content="It shipped.", tool_calls=[CALL]),
    completion(content=None, tool_calls=[CALL]),
    # Recorded as JSON text (an OTLP attribute), the output is read as the JSON it holds.
    '{"choices": [{"message": {"content": null, "tool_calls": [{"id": "call_1"}]}}]}',
])
def test_a_turn_that_called_tools_is_left_out(output: Any) -> None:
    assert not applies(CHAT_TOOL_CALLS, output)


@pytest.mark.parametrize("output", [
    completion(content="It shipped."),
    completion(content="It shipped.", tool_calls=[]),
    completion(content="It shipped.", tool_calls=None),
    completion(content=None),  # no reply and no call: graded, so its grader says it is missing
    "It shipped.",
    [1, 2],
])
def test_a_turn_without_tool_calls_is_graded(output: Any) -> None:
    assert applies(CHAT_TOOL_CALLS, output)


def test_a_span_without_output_is_graded_so_the_missing_output_is_an_error() -> None:
    grader = make_grader("json_valid", applies_to={"unless_output": "$.tool_calls[0]"})
    span = make_span(output=None)
    assert grader.applies_to(span)
    assert grader.grade(span, EMPTY_CONTEXT).reason == "span has no output"


@pytest.mark.parametrize(("found", "left_out"), [
    (None, False), (False, False), ("", False), ([], False), ({}, False), ("[]", False),
    ("{}", False), (True, True), (0, True), ("call", True), ([{"id": "c1"}], True),
    ({"id": "c1"}, True), ('[{"id": "c1"}]', True),
])
def test_only_a_value_that_is_not_empty_leaves_the_span_out(found: Any, left_out: bool) -> None:
    assert applies("$.tool_calls", {"role": "assistant", "tool_calls": found}) is not left_out


def test_any_of_several_matches_leaves_the_span_out() -> None:
    output = {"content": [{"type": "text", "text": "Let me look."},
                          {"type": "tool_use", "id": "toolu_1", "input": {}}]}
    assert not applies("$.content[?@.type == 'tool_use']", output)
    assert applies("$.content[?@.type == 'tool_use']", {"content": output["content"][:1]})
    assert not applies("$.flags[*]", {"flags": [None, False, "set"]})
    assert applies("$.flags[*]", {"flags": [None, False, ""]})


def test_the_other_selectors_still_decide_first() -> None:
    applies_to = AppliesTo(kind=SpanKind.LLM, name="Chat*", unless_output="$.tool_calls[0]")
    reply = {"role": "assistant", "content": "It shipped."}
    calls = {"role": "assistant", "tool_calls": [CALL]}
    assert applies_to.matches(make_span(kind="llm", name="ChatCompletion", output=reply))
    assert not applies_to.matches(make_span(kind="tool", name="ChatCompletion", output=reply))
    assert not applies_to.matches(make_span(kind="llm", name="embed", output=reply))
    turn = make_span(kind="llm", name="ChatCompletion", output=calls)
    assert applies_to.selects(turn) and not applies_to.matches(turn)


def test_grading_stores_no_verdict_for_a_turn_that_called_tools(store: Store) -> None:
    store.upsert_spans([
        stored_span(0, output=completion(content='{"status": "resolved"}')),
        stored_span(1, output=completion(content=None, tool_calls=[CALL])),
        stored_span(2, output=completion(content="not json")),
    ])
    config = GraderConfig.model_validate({
        "name": "reply_json", "type": "json_valid", "target": "output",
        "path": "$.choices[0].message.content",
        "applies_to": {"kind": "llm", "unless_output": CHAT_TOOL_CALLS}})
    summary = grade(store, build_graders([config]), SamplingConfig())
    assert summary.outcomes["reply_json"] == {"pass": 1, "fail": 1}
    assert store.count_verdicts() == 2


@pytest.mark.parametrize(("path", "message"), [
    ("$.choices[", r"applies_to\.unless_output: invalid JSONPath '\$\.choices\[': "),
    ("$.a | $.b", r"applies_to\.unless_output: invalid JSONPath .*compound"),
    (" ", r"applies_to\.unless_output: empty JSONPath"),
])
def test_an_invalid_path_is_a_config_error_naming_the_key(path: str, message: str) -> None:
    raw = {"graders": [{"name": "reply_json", "type": "json_valid",
                        "applies_to": {"kind": "llm", "unless_output": path}}]}
    where = r"^tracegrade\.yaml: graders\[0\] \(reply_json\)\."
    with pytest.raises(ConfigError, match=where + message):
        parse_config(raw)
    with pytest.raises(ValidationError):
        AppliesTo(unless_output=path)


# Versions computed before `unless_output` existed: a config that does not set it keeps its
# version, so its verdicts stay in the same series.
EXISTING_VERSIONS = [
    ({"name": "llm_resolution_schema", "type": "json_schema",
      "applies_to": {"kind": "llm", "name": "ChatCompletion"}, "target": "output",
      "path": "$.choices[0].message.content",
      "schema": {"type": "object", "properties": {"status": {"enum": ["resolved", "escalated"]}},
                 "required": ["status"]}}, "0f5d57002622"),
    ({"name": "reply_ok", "type": "status_ok"}, "c42658d62cec"),
    ({"name": "t", "type": "contains", "applies_to": {
        "kind": ["llm", "agent"], "name": "chat*", "attributes": {"env": "prod"}},
      "values": ["x"], "sample_rate": 0.5}, "2df8c77d0333"),
]


@pytest.mark.parametrize(("config", "version"), EXISTING_VERSIONS)
def test_a_config_without_unless_output_keeps_its_version(config: dict[str, Any],
                                                          version: str) -> None:
    parsed = GraderConfig.model_validate(config)
    assert grader_version(parsed) == version
    assert "unless_output" not in parsed.model_dump(mode="json")["applies_to"]
    assert grader_version(GraderConfig.model_validate(
        {**config, "applies_to": {**config.get("applies_to", {}), "unless_output": None}}
    )) == version


def test_setting_unless_output_starts_a_new_version() -> None:
    config, version = EXISTING_VERSIONS[0]
    changed = GraderConfig.model_validate(
        {**config, "applies_to": {**config["applies_to"], "unless_output": CHAT_TOOL_CALLS}})
    assert grader_version(changed) != version
    assert changed.model_dump(mode="json")["applies_to"]["unless_output"] == CHAT_TOOL_CALLS


@pytest.mark.parametrize(("wanted", "value", "selected"), [
    (True, True, True), (True, 1, False), (True, 1.0, False), (1, True, False), (1, 1.0, True),
    ("1", 1, False), ([1, 2], [1, 2], True), ({"a": True}, {"a": 1}, False),
    (None, None, True), (None, "x", False),
])
def test_attributes_are_compared_as_json_values(wanted: Any, value: Any, selected: bool) -> None:
    applies_to = AppliesTo(attributes={"experiment": wanted})
    assert applies_to.matches(make_span(attributes={"experiment": value})) is selected


def test_a_null_attribute_selects_spans_without_it() -> None:
    applies_to = AppliesTo(attributes={"team": None})
    assert applies_to.matches(make_span(attributes={}))
    assert not applies_to.matches(make_span(attributes={"team": "search"}))
