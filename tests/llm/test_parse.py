"""Reading judge answers: robust to the forms models produce, never guessing a pass."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tracegrade.llm import AnswerUnreadable, parse_label, parse_verdict

LABELS = ["grounded", "partly_grounded", "ungrounded"]


@given(critique=st.text(max_size=200), passed=st.booleans(),
       key=st.sampled_from(["verdict", "Verdict", "result", "decision"]),
       pad=st.sampled_from(["", "Sure! ", "```json\n", "Here is my answer:\n"]))
def test_a_json_verdict_is_read_wherever_it_sits(critique: str, passed: bool, key: str,
                                                 pad: str) -> None:
    document = orjson.dumps({"critique": critique, key: "pass" if passed else "fail"}).decode()
    closing = "\n```" if pad.startswith("```") else ""
    answer = parse_verdict(pad + document + closing)
    assert answer.passed is passed
    assert answer.critique == " ".join(critique.split())[:2000]


@given(text=st.text(max_size=300), passed=st.none())
@example(text="The reply answers the question.\nVerdict: PASS", passed=True)
@example(text="It dodges the question. Verdict: fail", passed=False)
@example(text="pass", passed=True)
def test_free_text_never_reads_as_a_pass_unless_it_says_so(text: str, passed: bool | None
                                                           ) -> None:
    """``passed``: None for drawn text (which may be unreadable), else what it must read as."""
    lowered = text.casefold()
    try:
        answer = parse_verdict(text)
    except AnswerUnreadable:
        assert passed is None, f"{text!r} must read as a verdict"
        return
    assert passed in (None, answer.passed)
    word = "pass" if answer.passed else "fail"
    assert word in lowered or ("yes" if answer.passed else "no") in lowered or \
        str(answer.passed).lower() in lowered


@given(st.sampled_from(LABELS), st.sampled_from(["lower", "upper", "title"]))
def test_labels_match_case_insensitively(label: str, case: str) -> None:
    chosen = getattr(label, case)()
    answer = parse_label(orjson.dumps({"critique": "c", "label": chosen}).decode(), LABELS)
    assert answer.label == label


@given(st.text(min_size=1, max_size=30).filter(
    lambda s: s.strip().casefold() not in {label.casefold() for label in LABELS}))
def test_any_other_label_is_unreadable(other: str) -> None:
    with pytest.raises(AnswerUnreadable, match="is not one of"):
        parse_label(orjson.dumps({"critique": "c", "label": other}).decode(), LABELS)


@pytest.mark.parametrize(("text", "passed"), [
    ("The reply is fine.\n\nVerdict: PASS", True),
    ("**Final verdict:** fail", False),
    ("FAIL.", False),
    ('{"critique": "ok", "verdict": "yes"}', True),
    ('{"critique": "no", "pass": false}', False),
    ('Some thoughts first.\n```json\n{"critique": "ok", "verdict": "fail"}\n```\nVerdict: fail',
     False),
    ('{"critique": "Wrong: a verdict of pass would be too lenient.", "verdict": "fail"}', False),
    ("Verdict: **PASS**\nThe reply quotes the tool's status.", True),
    ("Here is my verdict:\nVerdict: fail. The reply invents a date.", False),
    ('{"answer": "The order shipped.", "verdict": "pass"}', True),
    ('{"verdict": "pass", "critique": "x", "verdict": "pass"}', True),
])
def test_common_prose_and_json_forms(text: str, passed: bool) -> None:
    assert parse_verdict(text).passed is passed


@pytest.mark.parametrize("text", [
    "It would pass if it named the carrier, so fail-ish.",
    "Verdict: pass\nActually, verdict: fail",
    '{"critique": "good", "verdict": "mostly pass"}',
    '{"verdict": 1}',
    "[]",
    # a word that is not a choice
    "Verdict: pass/fail cannot be decided; the material is missing.",
    "I can't give a verdict - pass or fail would both be guesses here.",
    "Verdict: Pass or Fail? -> Fail. The reply invents a refund policy.",
    "Verdict: PASS? No. The reply invents a refund policy.",
    "Result: pass@1 was low, so the answer fails the criterion.",
    # JSON contradicted by a later correction, or by another JSON block
    '{"critique": "fine", "verdict": "pass"}\n\nOn reflection the order id is wrong. Verdict: fail',
    '```json\n{"verdict": "pass"}\n```\nWait, the id is wrong:\n```json\n{"verdict": "fail"}\n```',
    'Here is the format: {"verdict": "pass"}. My verdict: fail',
    # prose whose "verdict: pass" does not end its sentence, or beside a verdict that is no word
    "I was going to give verdict: pass, but the reply invents a delivery date, so it fails.",
    "The reply fails. The result: pass rate is irrelevant.",
    "My verdict: the reply fails.\nAnswer: pass",
    # JSON cut off before its verdict: its critique's words are not a verdict
    '{"critique": "The expected result: pass only when the order exists; here the reply',
    '```json\n{"critique": "Verdict: pass is what it would get if',
    # JSON whose verdict-like fields disagree, or that gives the verdict twice
    '{"critique": "The reply invents a date.", "result": "fail", "verdict": "pass"}',
    '{"pass": false, "verdict": "pass"}',
    '{"verdict": "fail", "critique": "x", "verdict": "pass"}',
])
def test_ambiguous_answers_are_unreadable(text: str) -> None:
    with pytest.raises(AnswerUnreadable):
        parse_verdict(text)


def test_a_json_score_is_kept_when_finite() -> None:
    assert parse_verdict('{"critique": "x", "verdict": "pass", "score": 4}').score == 4.0
    assert parse_verdict('{"critique": "x", "verdict": "pass", "score": "high"}').score is None
    assert parse_verdict('{"critique": "x", "verdict": "pass", "score": " 0.8"}').score == 0.8
    assert parse_verdict('{"critique": "x", "verdict": "pass", "score": "NaN"}').score is None


@pytest.mark.parametrize("text", [
    "label: safe or unsafe, hard to say",
    '```json\n{"label": "safe"}\n```\nOn second thought, label: unsafe',
])
def test_ambiguous_labels_are_unreadable(text: str) -> None:
    with pytest.raises(AnswerUnreadable):
        parse_label(text, ["safe", "unsafe"])


def test_a_label_given_twice_differently_is_unreadable() -> None:
    with pytest.raises(AnswerUnreadable):
        parse_label('{"label": "safe", "class": "unsafe"}', ["safe", "unsafe"])
