"""json_valid, json_schema, field_present, field_absent and equals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.graders.helpers import grade, make_grader, make_span
from tracegrade.graders import Outcome
from tracegrade.graders._structure import JsonSchemaParams, json_equal
from tracegrade.graders._targets import EMPTY_CONTEXT

ORDER_SCHEMA = {
    "type": "object",
    "required": ["order_id", "items"],
    "properties": {
        "order_id": {"type": "string"},
        "items": {"type": "array", "items": {"properties": {"qty": {"type": "integer"}}}},
    },
}


# json_valid


@pytest.mark.parametrize("output", [{"a": 1}, [1, 2], "42", '"quoted"', "null", 3.5])
def test_json_valid_passes_json(output: object) -> None:
    result = grade("json_valid", make_span(output=output))
    assert result.outcome == Outcome.PASS, result.reason


def test_json_valid_fails_prose_with_position() -> None:
    result = grade("json_valid", make_span(output='Sure! {"a": 1}'))
    assert result.outcome == Outcome.FAIL
    assert result.reason.startswith("output is not JSON: ")
    assert "line 1 column 1" in result.reason and "'Sure!" in result.reason


def test_json_valid_fails_truncated_json() -> None:
    result = grade("json_valid", make_span(output='{"order_id": "A1", '))
    assert result.outcome == Outcome.FAIL
    assert "unexpected end of data" in result.reason


def test_json_valid_rejects_nan_which_is_not_json() -> None:
    assert grade("json_valid", make_span(output="NaN")).outcome == Outcome.FAIL


def test_json_valid_reads_an_attribute_target() -> None:
    span = make_span(attributes={"raw": "[1, 2"})
    result = grade("json_valid", span, target="attributes.raw")
    assert result.outcome == Outcome.FAIL
    assert result.reason.startswith("attributes.raw is not JSON")


def test_json_valid_missing_target_is_error() -> None:
    result = grade("json_valid", make_span())
    assert (result.outcome, result.reason) == (Outcome.ERROR, "span has no output")


# json_schema


def test_json_schema_passes_matching_output() -> None:
    span = make_span(output={"order_id": "A1", "items": [{"qty": 2}]})
    result = grade("json_schema", span, schema=ORDER_SCHEMA)
    assert (result.outcome, result.reason) == (Outcome.PASS, "output matches the schema")


def test_json_schema_reason_names_path_and_message() -> None:
    span = make_span(output={"order_id": "A1", "items": [{"qty": "two"}]})
    result = grade("json_schema", span, schema=ORDER_SCHEMA)
    assert result.outcome == Outcome.FAIL
    assert result.reason == (
        "output breaks the schema at $.items[0].qty: 'two' is not of type 'integer'"
    )


def test_json_schema_reports_missing_required_field() -> None:
    result = grade("json_schema", make_span(output={"items": []}), schema=ORDER_SCHEMA)
    assert result.outcome == Outcome.FAIL
    assert "'order_id' is a required property" in result.reason


def test_json_schema_applies_to_the_path() -> None:
    span = make_span(output={"reply": {"order_id": 7, "items": []}})
    result = grade("json_schema", span, path="$.reply", schema=ORDER_SCHEMA)
    assert result.outcome == Outcome.FAIL
    assert result.reason.startswith("output at $.reply breaks the schema at $.order_id: 7 is not")


def test_json_schema_invalid_schema_fails_at_build() -> None:
    with pytest.raises(ValidationError, match="invalid JSON Schema at \\$.type"):
        make_grader("json_schema", schema={"type": "objekt"})


def test_json_schema_unresolvable_remote_ref_is_error() -> None:
    schema = {"$ref": "https://schemas.example.com/order.json"}  # nothing is fetched
    result = grade("json_schema", make_span(output={}), schema=schema)
    assert result.outcome == Outcome.ERROR
    assert result.reason.startswith("schema reference cannot be resolved")


@pytest.mark.parametrize("ref", ["#/$defs/nope", "#/properties/a/items", "#/allOf/3"])
def test_json_schema_local_ref_to_nothing_fails_at_build(ref: str) -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": ref}},
              "$defs": {"order": {"type": "object"}}, "allOf": [{}]}
    with pytest.raises(ValidationError, match="points to nothing in the schema"):
        make_grader("json_schema", schema=schema)


def test_json_schema_local_refs_that_resolve_are_accepted() -> None:
    schema = {"type": "object", "properties": {
        "a": {"$ref": "#/$defs/order"}, "b": {"$ref": "#/$defs/a~1b"}, "c": {"$ref": "#"}},
        "$defs": {"order": {"type": "object"}, "a/b": {"type": "string"}}}
    result = grade("json_schema", make_span(output={"a": {}, "b": "x"}), schema=schema)
    assert result.outcome == Outcome.PASS, result.reason


@pytest.mark.parametrize("text", ['{"status": "ok", "ans', "Sorry, I cannot help with that.",
                                  "42"])
def test_json_schema_for_an_object_fails_text_that_is_no_json_object(text: str) -> None:
    # {"required": [...]} alone accepts any string under JSON Schema's rules (the keyword
    # applies to objects only): truncated or refused structured output must not pass.
    schema = {"required": ["status", "answer"]}
    result = grade("json_schema", make_span(output={"content": text}), path="$.content",
                   schema=schema)
    assert result.outcome == Outcome.FAIL, result.reason
    assert "where the schema describes an object" in result.reason


@pytest.mark.parametrize("value", [[1, 2, 3], 42, None, True])
@pytest.mark.parametrize("schema", [
    {"required": ["status"]},
    {"allOf": [{"required": ["status"]}, {"properties": {"status": {"type": "string"}}}]},
    {"$ref": "#/$defs/reply", "$defs": {"reply": {"required": ["status"]}}},
], ids=["required", "allOf", "ref"])
def test_json_schema_for_an_object_fails_json_that_is_no_object(
        value: object, schema: dict[str, object]) -> None:
    # Under JSON Schema's rules these keywords skip non-objects: an array, a number or null
    # where structured output belongs passed.
    result = grade("json_schema", make_span(output={"content": value}), path="$.content",
                   schema=schema)
    assert result.outcome == Outcome.FAIL, result.reason
    assert "where the schema describes an object" in result.reason


def test_json_schema_through_a_ref_or_allof_fails_text_that_is_no_object() -> None:
    for schema in ({"allOf": [{"required": ["status"]}]},
                   {"$ref": "#/$defs/r", "$defs": {"r": {"required": ["status"]}}}):
        result = grade("json_schema", make_span(output="Sorry, I cannot help"), schema=schema)
        assert result.outcome == Outcome.FAIL, result.reason


def test_json_schema_with_a_type_still_judges_text_by_it() -> None:
    text = make_span(output={"content": "plain words"})
    assert grade("json_schema", text, path="$.content",
                 schema={"type": "string", "minLength": 3}).outcome == Outcome.PASS
    assert grade("json_schema", text, path="$.content",
                 schema={"type": "object"}).outcome == Outcome.FAIL


def test_json_schema_missing_target_is_error() -> None:
    span = make_span(output={"order_id": "A1"})
    result = grade("json_schema", span, path="$.reply", schema=ORDER_SCHEMA)
    assert (result.outcome, result.reason) == (Outcome.ERROR, "$.reply not found in output")


def test_json_schema_requires_schema_param() -> None:
    with pytest.raises(ValidationError, match="schema"):
        make_grader("json_schema")


# field_present / field_absent


def test_field_present_passes_when_path_matches() -> None:
    span = make_span(kind="tool", output={"order_status": "shipped"})
    result = grade("field_present", span, path="$.order_status")
    assert (result.outcome, result.reason) == (Outcome.PASS, "order_status present in output")


def test_field_present_fails_after_a_rename() -> None:
    span = make_span(kind="tool", output={"orderStatus": "shipped"})
    result = grade("field_present", span, path="$.order_status")
    assert (result.outcome, result.reason) == (Outcome.FAIL, "order_status missing from output")


def test_field_present_counts_a_null_field_as_present() -> None:
    span = make_span(output={"order_status": None})
    assert grade("field_present", span, path="$.order_status").outcome == Outcome.PASS


def test_field_present_fails_on_a_non_object_target() -> None:
    result = grade("field_present", make_span(output="shipped"), path="$.order_status")
    assert result.outcome == Outcome.FAIL
    assert result.reason == "order_status missing: output is a JSON string, not an object"


def test_field_present_filter_path_keeps_brackets_in_reason() -> None:
    span = make_span(output={"items": [{"sku": "a"}]})
    result = grade("field_present", span, path="$.items[?@.sku == 'b']")
    assert (result.outcome, result.reason) == (
        Outcome.FAIL,
        "$.items[?@.sku == 'b'] missing from output",
    )


def test_field_present_missing_target_is_error() -> None:
    result = grade("field_present", make_span(), path="$.order_status")
    assert (result.outcome, result.reason) == (Outcome.ERROR, "span has no output")


def test_field_present_needs_path() -> None:
    with pytest.raises(ValueError, match="'g_field_present' \\(field_present\\) needs `path`"):
        make_grader("field_present")


def test_field_absent_passes_and_fails() -> None:
    clean = grade("field_absent", make_span(output={"a": 1}), path="$.debug")
    assert (clean.outcome, clean.reason) == (Outcome.PASS, "debug absent from output")
    leaked = grade("field_absent", make_span(output={"debug": {"k": 1}}), path="$.debug")
    assert (leaked.outcome, leaked.reason) == (Outcome.FAIL, 'debug present in output: {"k":1}')


@pytest.mark.parametrize("output", ["not json {", 12345, True])
def test_field_absent_on_a_target_that_is_no_json_object_is_an_error(output: object) -> None:
    result = grade("field_absent", make_span(output=output), path="$.debug")
    assert result.outcome == Outcome.ERROR
    assert "not an object or array: cannot look for debug in it" in result.reason


CUT_OFF = '{"name": "Bob", "ssn": "123-45-6789", "note": "cut off by max_tok'


@pytest.mark.parametrize(("output", "path"), [
    ({"choices": [{"message": {"role": "assistant", "content": CUT_OFF}}]},
     "$.choices[0].message.content.ssn"),
    ({"reply": CUT_OFF}, "$.reply.ssn"),
    ({"replies": [{"ok": 1}, CUT_OFF]}, "$..ssn"),
    ({"reply": '[1, {"ssn": "12'}, "$.reply[1].ssn"),
])
def test_field_absent_through_json_text_that_does_not_parse_is_an_error(
        output: object, path: str) -> None:
    # The leaked field may sit past where a cut-off reply breaks: "ssn absent" was a pass.
    result = grade("field_absent", make_span(output=output), path=path)
    assert result.outcome == Outcome.ERROR
    assert "holds JSON text that does not parse" in result.reason


def test_field_absent_still_passes_beside_prose_that_starts_with_a_bracket() -> None:
    output = {"log": "[INFO] done {see docs}", "reply": '{"ok": true}'}
    result = grade("field_absent", make_span(output=output), path="$.reply.ssn")
    assert result.outcome == Outcome.PASS


def test_field_absent_missing_target_is_error() -> None:
    result = grade("field_absent", make_span(), target="input", path="$.debug")
    assert (result.outcome, result.reason) == (Outcome.ERROR, "span has no input")


# equals


def test_equals_passes_on_equal_value() -> None:
    span = make_span(output={"status": "shipped"})
    result = grade("equals", span, path="$.status", value="shipped")
    assert (result.outcome, result.reason) == (Outcome.PASS, "output at $.status equals 'shipped'")


def test_equals_fails_with_both_values() -> None:
    span = make_span(output={"status": "pending"})
    result = grade("equals", span, path="$.status", value="shipped")
    assert result.outcome == Outcome.FAIL
    assert result.reason == "output at $.status is 'pending', expected 'shipped'"


def test_equals_does_not_treat_true_as_one() -> None:
    span = make_span(output={"count": 1})
    assert grade("equals", span, path="$.count", value=True).outcome == Outcome.FAIL
    assert grade("equals", span, path="$.count", value=1.0).outcome == Outcome.PASS


def test_equals_missing_path_is_error() -> None:
    result = grade("equals", make_span(output={}), path="$.status", value="x")
    assert (result.outcome, result.reason) == (Outcome.ERROR, "$.status not found in output")


def test_equals_requires_value() -> None:
    with pytest.raises(ValidationError, match="value"):
        make_grader("equals")


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        ({"a": [1, True]}, {"a": [1.0, True]}, True),
        ({"a": [1, True]}, {"a": [1, 1]}, False),
        ([1, 2], [1, 2, 3], False),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ("1", 1, False),
        (None, None, True),
        ([], {}, False),
    ],
)
def test_json_equal(left: object, right: object, equal: bool) -> None:
    assert json_equal(left, right) is equal


def test_json_schema_validates_json_text_as_its_value() -> None:
    from tests.graders.helpers import grade, make_span

    schema = {"type": "object", "required": ["category"]}
    good = make_span(output={"content": '{"category": "billing"}'})
    bad = make_span(output={"content": '{"priority": "low"}'})
    passed = grade("json_schema", good, path="$.content", schema=schema)
    failed = grade("json_schema", bad, path="$.content", schema=schema)
    assert passed.outcome == "pass"
    assert failed.outcome == "fail" and "category" in failed.reason


# targets


@pytest.mark.parametrize("target", ["outptu", "attributes.", "attribute.user"])
def test_an_unknown_target_is_one_config_error_naming_the_grader(target: str) -> None:
    from tracegrade.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config({"graders": [{"name": "g", "type": "field_present", "path": "$.a",
                                   "target": target}]})
    message = str(caught.value)
    assert "graders[0]" in message and f"unknown target {target!r}" in message
    assert "\n" not in message


@pytest.mark.parametrize("target", ["input", "output", "status", "attributes.user.tier",
                                    "model", "release"])
def test_every_documented_target_is_accepted(target: str) -> None:
    from tracegrade.config import parse_config

    config = parse_config({"graders": [{"name": "g", "type": "field_present", "path": "$.a",
                                        "target": target}]})
    assert config.graders[0].target == target


# every match of a path


def test_equals_holds_only_when_every_match_equals() -> None:
    span = make_span(output={"items": [{"status": "shipped"}, {"status": "lost"}]})
    result = grade("equals", span, path="$.items[*].status", value="shipped")
    assert (result.outcome, result.reason) == (
        Outcome.FAIL,
        "match 2 of 2 ($['items'][1]['status']): output at $.items[*].status is 'lost', "
        "expected 'shipped'",
    )
    span = make_span(output={"items": [{"status": "shipped"}, {"status": "shipped"}]})
    result = grade("equals", span, path="$.items[*].status", value="shipped")
    assert (result.outcome, result.reason) == (
        Outcome.PASS, "all 2 matches: output at $.items[*].status equals 'shipped'")


def test_json_schema_validates_every_match() -> None:
    span = make_span(output={"items": [{"qty": 1}, {"qty": "x"}]})
    schema = {"type": "object", "properties": {"qty": {"type": "integer"}}}
    result = grade("json_schema", span, path="$.items[*]", schema=schema)
    assert result.outcome == Outcome.FAIL
    assert result.reason.startswith("match 2 of 2 ($['items'][1]): output at $.items[*] breaks")


def test_field_present_passes_when_any_match_exists() -> None:
    span = make_span(output={"items": [{"sku": "a"}, {"name": "b"}]})
    assert grade("field_present", span, path="$.items[*].sku").outcome == Outcome.PASS
    assert grade("field_absent", span, path="$.items[*].sku").outcome == Outcome.FAIL


# JSON held in text


RESPONSE = make_span(attributes={"response": '{"order_status": "shipped"}'})


def test_path_graders_read_json_text_in_an_attribute() -> None:
    target = "attributes.response"
    present = grade("field_present", RESPONSE, target=target, path="$.order_status")
    assert (present.outcome, present.reason) == (
        Outcome.PASS, "order_status present in attributes.response")
    absent = grade("field_absent", RESPONSE, target=target, path="$.debug")
    assert absent.outcome == Outcome.PASS
    equal = grade("equals", RESPONSE, target=target, path="$.order_status", value="shipped")
    assert equal.outcome == Outcome.PASS
    wild = grade("equals", RESPONSE, target=target, path="$[?@ == 'shipped']", value="shipped")
    assert wild.outcome == Outcome.PASS


def test_a_path_reads_into_json_text_on_its_way() -> None:
    span = make_span(output={"content": '{"category": "billing", "tags": ["a"]}'})
    assert grade("field_present", span, path="$.content.category").outcome == Outcome.PASS
    assert grade("equals", span, path="$.content.tags[0]", value="a").outcome == Outcome.PASS


def test_a_path_ending_on_json_text_keeps_it_text() -> None:
    text = '{"category": "billing"}'
    span = make_span(output={"content": text, "other": [text]})
    assert grade("equals", span, path="$.content", value=text).outcome == Outcome.PASS
    assert grade("equals", span, path="$.other[0]", value=text).outcome == Outcome.PASS
    assert grade("regex", span, path="$.other[*]", pattern='"category"').outcome == Outcome.PASS


def test_json_valid_on_a_timestamp_target_reads_its_text() -> None:
    result = grade("json_valid", make_span(), target="start_time")
    assert result.outcome == Outcome.FAIL
    assert result.reason.startswith("start_time is not JSON: ")
    equal = grade("equals", make_span(), target="start_time", value="2025-03-01T12:00:00Z")
    assert equal.outcome == Outcome.PASS


# parameters as JSON


def test_an_unquoted_yaml_date_compares_as_the_text_its_version_hashes() -> None:
    import yaml

    loaded = yaml.safe_load("value: 2024-01-01")
    assert not isinstance(loaded["value"], str)  # YAML made it a date
    unquoted = make_grader("equals", path="$.d", **loaded)
    quoted = make_grader("equals", path="$.d", value="2024-01-01")
    span = make_span(output={"d": "2024-01-01"})
    assert unquoted.version == quoted.version
    assert unquoted.grade(span, EMPTY_CONTEXT).outcome == Outcome.PASS


def test_a_schema_with_a_non_string_key_is_rejected_at_build() -> None:
    from tracegrade.config import ConfigError, parse_config

    schema = {"type": "object", "properties": {1: {"type": "string"}}}
    with pytest.raises(ConfigError, match=r"key 1 in schema.properties is not text"):
        parse_config({"graders": [{"name": "g", "type": "json_schema", "schema": schema}]})
    with pytest.raises(ValidationError, match=r"key 1 at \$.properties is not a string"):
        JsonSchemaParams.model_validate({"schema": schema})
