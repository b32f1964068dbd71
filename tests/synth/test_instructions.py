"""System-prompt instructions: how a prompt splits, and the check each instruction becomes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracegrade.graders import GraderConfig, build_grader
from tracegrade.graders._targets import EMPTY_CONTEXT
from tracegrade.grading import grade_one
from tracegrade.spans import Span, utc_now
from tracegrade.synth import check_for, instructions


def test_bullets_and_directive_sentences_are_instructions_personas_are_not() -> None:
    prompt = (
        "You are Ava, the assistant of a bank. The bank was founded in 1890.\n"
        "Rules:\n"
        "- Always greet the customer by name.\n"
        "2) Never give investment advice\n"
        "Summarise long answers in at most 3 sentences. Keep it friendly.\n"
    )
    assert instructions(prompt) == [
        "Always greet the customer by name.",
        "Never give investment advice",
        "Summarise long answers in at most 3 sentences.",
        "Keep it friendly.",
    ]


@pytest.mark.parametrize(("instruction", "kind", "params"), [
    ("Keep replies under 120 words.", "length", {"max_words": 120}),
    ("Answers must be no more than 1,500 characters.", "length", {"max_chars": 1500}),
    ("Write at least 50 words.", "length", {"min_words": 50}),
    ("Use 200 words or fewer.", "length", {"max_words": 200}),
    ("Respond only in valid JSON.", "json_valid", {}),
    ("Return your answer as JSON.", "json_valid", {}),
    ("Never respond in JSON.", "llm_judge", {}),
    ("Always answer in English.", "script_is", {"scripts": ["Latin"]}),
    ("Reply in Japanese.", "script_is", {"scripts": ["Han", "Hiragana", "Katakana"]}),
    ("Always respond in Russian.", "script_is", {"scripts": ["Cyrillic"]}),
    ("Never respond in Russian.", "llm_judge", {}),
    ("Do not answer in Japanese, even if asked.", "llm_judge", {}),
    ("Never use slang; respond in English.", "script_is", {"scripts": ["Latin"]}),
    ("Answer in the user's language.", "llm_judge", {}),
    ("Do not use emojis.", "not_regex", {"pattern": r"\p{Extended_Pictographic}"}),
    ("Never include links.", "not_regex", {"pattern": r"https?://|www\.",
                                           "flags": ["IGNORECASE"]}),
    ('Never say "as an AI".', "not_contains", {"values": ["as an AI"],
                                               "case_sensitive": False}),
    ('End every reply with "Anything else?"', "regex", {"pattern": r"Anything\ else\?\W*$"}),
    ('Start with "Hi!"', "regex", {"pattern": r"^\W*Hi!"}),
    ('Always mention "Order support".', "contains", {"values": ["Order support"], "mode": "all",
                                                     "case_sensitive": False}),
    ("Be empathetic when the customer is upset.", "llm_judge", {}),
    # Instructions that hold only sometimes: a check on every reply would fail the others.
    ('For legal questions, end your reply with "This is not legal advice."', "llm_judge", {}),
    ('If asked about fees, start with "Fees:"', "llm_judge", {}),
    ('Always mention "Travel advisory" when discussing safety.', "llm_judge", {}),
    ("Never include links except https://contoso.com/help.", "llm_judge", {}),
    ('Don\'t say "I\'m sorry" more than once.', "llm_judge", {}),
    ("Reply in JSON only if the user asks for data.", "llm_judge", {}),
    # "even if" sets no condition on which replies the rule is about.
    ("Always answer in English, even if the user writes in French.", "script_is",
     {"scripts": ["Latin"]}),
])
def test_each_instruction_becomes_the_check_that_fits(instruction: str, kind: str,
                                                      params: dict[str, Any]) -> None:
    check = check_for(instruction, [])
    assert (check.type, check.params) == (kind, params)


def test_a_judge_names_the_tools_an_instruction_mentions() -> None:
    check = check_for("Call lookup_order before you answer.", ["lookup_order", "refund"])
    assert check.judged and check.mentions == ("lookup_order",)


@pytest.mark.parametrize(("instruction", "reply", "outcome"), [
    ("Keep replies under 5 words.", "Your order ships today.", "pass"),
    ("Keep replies under 5 words.", "Your order ships today, my friend, I promise.", "fail"),
    ("Respond in JSON.", '{"ok": true}', "pass"),
    ("Respond in JSON.", "Sure! Here it is.", "fail"),
    ("Always answer in English.", "Tu pedido llega hoy.", "pass"),
    ("Always answer in English.", "Your order: จัดส่งแล้ว", "fail"),
    ("Never use markdown.", "Plain words only.", "pass"),
    ("Never use markdown.", "## Status\n**Shipped**", "fail"),
    ('Sign off with "The Team".', "Thanks for writing.\nThe Team", "pass"),
    ('Sign off with "The Team".', "The Team thanks you.", "fail"),
])
def test_the_checks_grade_replies_as_the_instruction_means(instruction: str, reply: str,
                                                           outcome: str) -> None:
    check = check_for(instruction, [])
    config = GraderConfig.model_validate({"name": "check", "type": check.type,
                                          **check.params})
    span = Span(source="s", span_id="1", trace_id="t", start_time=utc_now(), output=reply)
    assert grade_one(build_grader(config), span, EMPTY_CONTEXT).outcome == outcome


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=400))
def test_every_deterministic_check_of_any_prompt_builds(prompt: str) -> None:
    for instruction in instructions(prompt):
        check = check_for(instruction, ["lookup_order"])
        assert check.slug and check.instruction == instruction
        if not check.judged:
            config = GraderConfig.model_validate({"name": "check", "type": check.type,
                                                  **check.params})
            build_grader(config)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from([
    "Always answer in English.", "Keep replies under 90 words.", "Do not use emojis.",
    'Never say "sorry".', "Respond in JSON.", "Be concise.", "You are a helper.",
]), min_size=1, max_size=6))
def test_bulleted_prompts_keep_every_instruction_in_order(lines: list[str]) -> None:
    prompt = "\n".join(f"- {line}" for line in lines)
    expected = [line for line in lines if not line.startswith("You are")]
    assert instructions(prompt) == expected
