"""regex, not_regex, contains, not_contains, length and script_is."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.graders.helpers import grade, make_grader, make_span
from tracegrade.graders import Outcome
from tracegrade.graders import _text as text_module
from tracegrade.graders._targets import text_of

CHAT = {"choices": [{"message": {"role": "assistant", "content": "Your order ORD-1234 shipped."}}]}

# regex / not_regex


def test_regex_passes_and_shows_the_match() -> None:
    result = grade("regex", make_span(output=CHAT), pattern=r"ORD-\d+")
    assert (result.outcome, result.reason) == (Outcome.PASS, "matched 'ORD-1234' at char 11")


def test_regex_fails_naming_pattern_and_target() -> None:
    result = grade("regex", make_span(output="no order here"), pattern=r"ORD-\d+")
    assert (result.outcome, result.reason) == (Outcome.FAIL, r"no match for /ORD-\d+/ in output")


def test_regex_flags_apply() -> None:
    span = make_span(output="line one\nORDER shipped")
    assert grade("regex", span, pattern="^order").outcome == Outcome.FAIL
    flagged = grade("regex", span, pattern="^order", flags=["IGNORECASE", "MULTILINE"])
    assert flagged.outcome == Outcome.PASS


def test_regex_supports_unicode_properties() -> None:
    span = make_span(output="привет")
    assert grade("regex", span, pattern=r"^\p{Script=Cyrillic}+$").outcome == Outcome.PASS


def test_regex_missing_target_is_error() -> None:
    result = grade("regex", make_span(), target="attributes.reply", pattern="x")
    assert (result.outcome, result.reason) == (Outcome.ERROR, "span has no attribute 'reply'")


def test_regex_timeout_is_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_module, "REGEX_TIMEOUT_S", 0.01)
    span = make_span(output="a" * 40 + "!")
    result = grade("regex", span, pattern=r"^(a|aa)+$")
    assert result.outcome == Outcome.ERROR
    assert result.reason == "pattern took over 0.01 s on output"


def test_regex_bad_pattern_fails_at_build() -> None:
    with pytest.raises(ValidationError, match=r"pattern '\(unclosed' does not compile"):
        make_grader("regex", pattern="(unclosed")


def test_regex_unknown_flag_is_rejected() -> None:
    with pytest.raises(ValidationError, match="IGNORECASE"):
        make_grader("regex", pattern="a", flags=["IGNORE_CASE"])


def test_not_regex_fails_on_a_forbidden_match() -> None:
    span = make_span(output="call me at 555-0100")
    result = grade("not_regex", span, pattern=r"\d{3}-\d{4}")
    assert result.outcome == Outcome.FAIL
    assert result.reason == "forbidden match '555-0100' at char 11"


def test_not_regex_passes_without_match() -> None:
    result = grade("not_regex", make_span(output="hello"), pattern=r"\d{3}-\d{4}")
    assert result.outcome == Outcome.PASS
    assert result.reason.startswith("no match for /")


def test_not_regex_missing_target_is_error() -> None:
    assert grade("not_regex", make_span(), pattern="x").outcome == Outcome.ERROR


# contains / not_contains


def test_contains_single_value() -> None:
    span = make_span(output=CHAT)
    passed = grade("contains", span, value="shipped")
    assert (passed.outcome, passed.reason) == (Outcome.PASS, "'shipped' found in output")
    failed = grade("contains", span, value="refund")
    assert (failed.outcome, failed.reason) == (Outcome.FAIL, "none of 'refund' in output")


def test_contains_all_mode_names_what_is_missing() -> None:
    span = make_span(output="Order shipped via UPS")
    result = grade("contains", span, values=["shipped", "tracking", "UPS"], mode="all")
    assert (result.outcome, result.reason) == (Outcome.FAIL, "'tracking' missing from output")


def test_contains_any_mode() -> None:
    span = make_span(output="Order shipped via UPS")
    assert grade("contains", span, values=["FedEx", "UPS"]).outcome == Outcome.PASS


def test_contains_case_insensitive() -> None:
    span = make_span(output="Straße CLOSED")
    assert grade("contains", span, value="closed").outcome == Outcome.FAIL
    folded = grade("contains", span, values=["closed", "STRASSE"], mode="all", case_sensitive=False)
    assert folded.outcome == Outcome.PASS


def test_contains_needs_exactly_one_of_value_and_values() -> None:
    with pytest.raises(ValidationError, match="exactly one of `value` or `values`"):
        make_grader("contains")
    with pytest.raises(ValidationError, match="exactly one of `value` or `values`"):
        make_grader("contains", value="a", values=["b"])
    with pytest.raises(ValidationError, match="empty string"):
        make_grader("contains", values=["a", ""])


def test_contains_missing_target_is_error() -> None:
    result = grade("contains", make_span(), target="input", value="x")
    assert (result.outcome, result.reason) == (Outcome.ERROR, "span has no input")


def test_not_contains_fails_on_any_forbidden_value() -> None:
    span = make_span(output="As an AI language model, I cannot")
    result = grade("not_contains", span, values=["as an ai", "I cannot"], case_sensitive=False)
    assert result.outcome == Outcome.FAIL
    assert result.reason == "forbidden 'as an ai', 'I cannot' found in output"


def test_not_contains_passes_when_clean() -> None:
    result = grade("not_contains", make_span(output="Sure, done."), values=["sorry", "cannot"])
    assert (result.outcome, result.reason) == (Outcome.PASS, "none of 'sorry', 'cannot' in output")


def test_not_contains_all_mode_fails_only_when_all_appear() -> None:
    span = make_span(output="sorry")
    assert grade("not_contains", span, values=["sorry", "cannot"], mode="all").outcome == "pass"
    span = make_span(output="sorry, cannot")
    assert grade("not_contains", span, values=["sorry", "cannot"], mode="all").outcome == "fail"


def test_not_contains_missing_target_is_error() -> None:
    assert grade("not_contains", make_span(), value="x").outcome == Outcome.ERROR


# length


def test_length_passes_within_bounds() -> None:
    result = grade("length", make_span(output="two words"), min_chars=1, max_chars=20)
    assert (result.outcome, result.reason) == (Outcome.PASS, "output has 9 chars, 2 words")


def test_length_fails_naming_each_bound() -> None:
    span = make_span(output="x" * 300)
    result = grade("length", span, max_chars=280, min_words=3)
    assert result.outcome == Outcome.FAIL
    assert result.reason == "output has 300 chars > 280; 1 words < 3"


def test_length_reads_the_reply_inside_chat_output() -> None:
    result = grade("length", make_span(output=CHAT), max_words=3)
    assert (result.outcome, result.reason) == (Outcome.FAIL, "output has 4 words > 3")


def test_length_counts_code_points() -> None:
    assert grade("length", make_span(output="สวัสดี"), max_chars=6).outcome == Outcome.PASS


def test_length_needs_a_bound_and_consistent_bounds() -> None:
    with pytest.raises(ValidationError, match="at least one of"):
        make_grader("length")
    with pytest.raises(ValidationError, match="min_chars 10 > max_chars 5"):
        make_grader("length", min_chars=10, max_chars=5)


def test_length_missing_target_is_error() -> None:
    assert grade("length", make_span(), max_chars=5).outcome == Outcome.ERROR


# script_is


def test_script_is_passes_latin_with_digits_and_punctuation() -> None:
    result = grade("script_is", make_span(output="Café №5 — déjà vu! 123 ✓"), scripts=["Latin"])
    assert (result.outcome, result.reason) == (Outcome.PASS, "all letters in Latin")


def test_script_is_names_the_offending_script_and_sample() -> None:
    span = make_span(output="Hello! สวัสดีครับ how can I help?")
    result = grade("script_is", span, scripts=["Latin"])
    assert result.outcome == Outcome.FAIL
    assert result.reason == "found Thai letters: 'สวัสดีครับ'"


def test_script_is_lists_other_scripts_found() -> None:
    span = make_span(output="Bonjour Привет 你好")
    result = grade("script_is", span, scripts=["Latin"])
    assert result.reason == "found Cyrillic letters: 'Привет' (also Han)"


def test_script_is_allows_several_scripts() -> None:
    span = make_span(output="東京へようこそ、カタカナ OK")
    allowed = ["Han", "Hiragana", "Katakana", "Latin"]
    assert grade("script_is", span, scripts=allowed).outcome == Outcome.PASS
    assert grade("script_is", span, scripts=["Han", "Latin"]).reason.startswith(
        "found Hiragana letters: 'へようこそ'"
    )


def test_script_is_passes_text_without_letters() -> None:
    assert grade("script_is", make_span(output="123 !?"), scripts=["Latin"]).outcome == "pass"


def test_script_is_rejects_unknown_script() -> None:
    with pytest.raises(ValidationError, match="unknown Unicode script 'Klingon'"):
        make_grader("script_is", scripts=["Klingon"])
    with pytest.raises(ValidationError, match="not a Unicode script name"):
        make_grader("script_is", scripts=["Latin}|.*"])


def test_script_is_missing_target_is_error() -> None:
    result = grade("script_is", make_span(), scripts=["Latin"])
    assert (result.outcome, result.reason) == (Outcome.ERROR, "span has no output")


# what text the graders read


def test_regex_reads_a_number_target_as_its_json_text() -> None:
    span = make_span(output={"order_id": 4417})
    result = grade("regex", span, path="$.order_id", pattern=r"^\d{4}$")
    assert (result.outcome, result.reason) == (Outcome.PASS, "matched '4417' at char 0")


def test_length_reads_chat_content_parts_without_their_type_markers() -> None:
    parts = {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "world"}],
    }
    result = grade("length", make_span(output=parts), max_words=5)
    assert (result.outcome, result.reason) == (Outcome.PASS, "output has 11 chars, 2 words")


# every match of a path, null matches


def test_not_regex_checks_every_match_of_a_wildcard_path() -> None:
    output = {"messages": [{"content": "hi"}, {"content": "my SSN is 123-45-6789"}]}
    result = grade("not_regex", make_span(output=output), path="$.messages[*].content",
                   pattern=r"\d{3}-\d{2}-\d{4}")
    assert (result.outcome, result.reason) == (
        Outcome.FAIL,
        "match 2 of 2 ($['messages'][1]['content']): forbidden match '123-45-6789' at char 10",
    )


def test_contains_passes_only_when_every_match_holds() -> None:
    span = make_span(output={"replies": ["Order shipped", "Order shipped today"]})
    result = grade("contains", span, path="$.replies[*]", value="shipped")
    assert (result.outcome, result.reason) == (
        Outcome.PASS, "all 2 matches: 'shipped' found in output at $.replies[*]")
    span = make_span(output={"replies": ["Order shipped", "Order lost"]})
    assert grade("contains", span, path="$.replies[*]", value="shipped").outcome == Outcome.FAIL


def test_a_wildcard_path_matching_nothing_is_error() -> None:
    result = grade("not_contains", make_span(output={"replies": []}), path="$.replies[*]",
                   value="x")
    assert (result.outcome, result.reason) == (Outcome.ERROR, "$.replies[*] not found in output")


@pytest.mark.parametrize(("grader_type", "params"), [
    ("regex", {"pattern": "x"}),
    ("not_regex", {"pattern": "x"}),
    ("contains", {"value": "x"}),
    ("not_contains", {"value": "x"}),
    ("length", {"max_chars": 5}),
    ("script_is", {"scripts": ["Latin"]}),
])
def test_text_graders_error_on_a_path_holding_null(grader_type: str,
                                                   params: dict[str, object]) -> None:
    result = grade(grader_type, make_span(output={"reply": None}), path="$.reply", **params)
    assert (result.outcome, result.reason) == (Outcome.ERROR, "output at $.reply is null")


def test_a_null_match_is_left_out_unless_every_match_is_null() -> None:
    output = {"messages": [{"content": None}, {"content": "fine"}]}
    result = grade("not_contains", make_span(output=output), path="$.messages[*].content",
                   value="BAD")
    assert result.outcome == Outcome.PASS
    output = {"messages": [{"content": None}, {"content": "BAD"}]}
    result = grade("not_contains", make_span(output=output), path="$.messages[*].content",
                   value="BAD")
    assert result.outcome == Outcome.FAIL
    output = {"messages": [{"content": None}, {"content": None}]}
    result = grade("not_contains", make_span(output=output), path="$.messages[*].content",
                   value="BAD")
    assert result.outcome == Outcome.ERROR and "is null" in result.reason


# what text the graders read, continued


def test_a_tool_call_only_message_has_no_text() -> None:
    output = {"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "name": "lookup_order", "arguments": {"order_id": "ORD-1"}}]}]}
    result = grade("length", make_span(output=output), min_chars=1)
    assert (result.outcome, result.reason) == (Outcome.FAIL, "output has 0 chars < 1")


def test_not_contains_reads_every_choice() -> None:
    output = {"choices": [{"message": {"role": "assistant", "content": "fine"}},
                          {"message": {"role": "assistant", "content": "BADWORD"}}]}
    result = grade("not_contains", make_span(output=output), value="BADWORD")
    assert (result.outcome, result.reason) == (Outcome.FAIL, "forbidden 'BADWORD' found in output")


def test_not_regex_reads_every_field_of_a_non_chat_object() -> None:
    output = {"status": "ok", "message": "found", "data": {"ssn": "123-45-6789"}}
    result = grade("not_regex", make_span(kind="tool", output=output),
                   pattern=r"\d{3}-\d{2}-\d{4}")
    assert result.outcome == Outcome.FAIL


@pytest.mark.parametrize("output", [{"order_id": 4417}, [4417], {"order": {"ids": [4417]}}])
def test_a_number_is_text_wherever_it_is(output: object) -> None:
    assert grade("contains", make_span(output=output), value="4417").outcome == Outcome.PASS


def test_non_text_content_parts_add_no_text() -> None:
    parts = [{"type": "image_url", "image_url": {"url": "https://x.test/ж.png"}},
             {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
             {"type": "text", "text": "hello"}]
    assert text_of(parts) == "hello"
    message = {"role": "user", "content": parts}
    result = grade("script_is", make_span(output=message), scripts=["Latin"])
    assert result.outcome == Outcome.PASS
    assert grade("length", make_span(output=message), max_chars=5).outcome == Outcome.PASS


@pytest.mark.parametrize(("target", "pattern"), [("start_time", r"^2025-03-01T12:00:00Z$"),
                                                 ("end_time", r"^2025-03-01T12:00:01Z$")])
def test_a_timestamp_target_reads_as_its_iso_text(target: str, pattern: str) -> None:
    span = make_span(latency_ms=1000)
    assert grade("regex", span, target=target, pattern=pattern).outcome == Outcome.PASS


# reasons


@pytest.mark.parametrize(("text", "script"), [("ᐊᐃ", "Canadian Aboriginal"),
                                              ("𓀀", "Egyptian Hieroglyphs"),
                                              ("𐌀", "Old Italic"), ("ꡀ", "Phags Pa")])
def test_script_is_names_scripts_by_their_unicode_long_name(text: str, script: str) -> None:
    result = grade("script_is", make_span(output=text), scripts=["Latin"])
    assert result.reason.startswith(f"found {script} letters: ")


def test_a_text_grader_over_all_messages_leaves_out_a_tool_call_without_text() -> None:
    output = {"messages": [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "function": {"name": "lookup_order", "arguments": "{}"}}]},
        {"role": "assistant", "content": "Your order ships today."}]}
    result = grade("not_regex", make_span(output=output), pattern=r"\d{3}-\d{2}-\d{4}",
                   path="$.messages[*].content")
    assert result.outcome == Outcome.PASS


def test_a_verbose_pattern_is_shown_on_one_line() -> None:
    pattern = "\\b(?:\n  sorry       # apology\n| apologi[sz]e\n)\\b"
    result = grade("regex", make_span(output="All good"), pattern=pattern, flags=["VERBOSE"])
    assert result.outcome == Outcome.FAIL
    assert result.reason == "no match for /\\b(?: sorry # apology | apologi[sz]e )\\b/ in output"


@pytest.mark.parametrize(("grader_type", "settings"), [
    ("not_regex", {"pattern": "(?i)sorry"}),
    ("not_contains", {"value": "sorry"}),
    ("script_is", {"scripts": ["Latin"]}),
])
def test_an_openai_refusal_beside_a_null_content_is_the_reply(
        grader_type: str, settings: dict[str, object]) -> None:
    # A message's `refusal` field was not read: every text grader passed the refusal.
    output = {"role": "assistant", "content": None, "refusal": "Извините, sorry, I can't."}
    assert grade(grader_type, make_span(output=output), **settings).outcome == Outcome.FAIL
