"""Text graders decide on any text or JSON value without raising."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.graders.helpers import make_grader, make_span
from tracegrade.graders import Outcome
from tracegrade.graders._targets import EMPTY_CONTEXT

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

SCRIPT_IS = make_grader("script_is", scripts=["Latin"])
REGEX = make_grader("regex", pattern=r"(?i)\b(order|ORD-\d+)\b", flags=["MULTILINE"])
NOT_REGEX = make_grader("not_regex", pattern=r"\p{Script=Thai}+")
LENGTH = make_grader("length", min_chars=1, max_chars=50, min_words=1, max_words=8)
DECIDED = {Outcome.PASS, Outcome.FAIL}


@settings(max_examples=300)
@given(st.text())
def test_text_graders_never_raise_on_any_text(text: str) -> None:
    span = make_span(output=text)
    for grader in (SCRIPT_IS, REGEX, NOT_REGEX, LENGTH):
        result = grader.grade(span, EMPTY_CONTEXT)
        assert result.outcome in DECIDED, (grader.name, result)
        assert "\n" not in result.reason


@given(json_values)
def test_text_graders_decide_on_any_json_output(output: Any) -> None:
    span = make_span(output=output)
    expected = {Outcome.ERROR} if output is None else DECIDED
    for grader in (SCRIPT_IS, REGEX, NOT_REGEX, LENGTH):
        assert grader.grade(span, EMPTY_CONTEXT).outcome in expected


@given(st.text(min_size=1))
def test_script_is_fails_exactly_when_a_non_latin_letter_is_present(text: str) -> None:
    import regex

    foreign = regex.search(
        r"(?![\p{Script=Latin}\p{Script=Common}\p{Script=Inherited}])[\p{L}\p{M}]", text
    )
    result = SCRIPT_IS.grade(make_span(output=text), EMPTY_CONTEXT)
    assert (result.outcome == Outcome.FAIL) == (foreign is not None)
    if foreign is not None:
        assert result.reason.startswith("found ") and " letters: " in result.reason
