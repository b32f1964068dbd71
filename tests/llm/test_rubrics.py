"""Rubrics: the shipped templates render real traces; the sandbox refuses unsafe templates."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import BASE_TIME, make_span
from tracegrade.llm import RubricError, compile_rubric, shipped_rubric, shipped_rubrics
from tracegrade.llm._rubrics import rubric_context
from tracegrade.spans import SpanKind

SYSTEM = "You are Northwind's support assistant. Always answer in English."


def support_trace() -> list:
    root = make_span(0, span_id="root", kind=SpanKind.AGENT, name="support_agent",
                     input="Has order A123456 shipped?",
                     output="Yes, it left on Monday with UPS.")
    llm = make_span(1, span_id="llm", parent_id="root", input={"messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Has order A123456 shipped?"}]})
    tool = make_span(2, span_id="tool", parent_id="root", kind=SpanKind.TOOL,
                     name="lookup_order", input={"order_id": "A123456"},
                     output={"order_status": "shipped", "carrier": "UPS"},
                     start_time=BASE_TIME + timedelta(seconds=2))
    return [root, llm, tool]


def test_every_shipped_rubric_has_a_description_and_renders_a_trace() -> None:
    rubrics = shipped_rubrics()
    assert set(rubrics) == {"grounded", "answers_question", "follows_system_prompt",
                            "refuses_appropriately"}
    trace = support_trace()
    for name, description in rubrics.items():
        assert len(description) > 20, name
        rubric = compile_rubric(shipped_rubric(name))
        assert rubric.reads_trace, name
        prompt = rubric.render(rubric_context(trace[0], trace))
        assert "Yes, it left on Monday with UPS." in prompt, name
        assert "{{" not in prompt and "{%" not in prompt, name


def test_grounded_shows_the_tool_results_and_follows_system_prompt_the_system_prompt() -> None:
    trace = support_trace()
    grounded = compile_rubric(shipped_rubric("grounded")).render(rubric_context(trace[0], trace))
    assert 'lookup_order({"order_id":"A123456"}) -> {"order_status":"shipped","carrier":"UPS"}' \
        in grounded
    follows = compile_rubric(shipped_rubric("follows_system_prompt")).render(
        rubric_context(trace[0], trace))
    assert SYSTEM in follows and "Has order A123456 shipped?" in follows


@pytest.mark.parametrize("template", [
    "{{ span.__class__.__mro__ }}",
    "{{ span.output_text.__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{% set x = span.attributes.update({'a': 1}) %}{{ x }}",
    "{{ span.messages.append(1) }}",
    "{% for i in range(10**9) %}{% endfor %}",
    "{% include 'secrets.txt' %}",
])
def test_the_sandbox_refuses_unsafe_templates(template: str) -> None:
    with pytest.raises(RubricError):
        compile_rubric(template)


def test_a_rubric_without_trace_does_not_load_it() -> None:
    assert not compile_rubric("{{ span.output_text }}").reads_trace
    assert compile_rubric("{{ trace.tool_results }}").reads_trace


def test_structures_render_as_json_and_long_strings_are_cut() -> None:
    span = make_span(0, output={"order": {"id": "A1", "items": [1, 2]}},
                     input="x" * 50_000)
    rubric = compile_rubric("{{ span.output }}|{{ span.user_message|length }}")
    assert rubric.render(rubric_context(span, None)).startswith('{"order":{"id":"A1"')
    # 20,000 characters and the note "…[30000 more characters]".
    assert rubric.render(rubric_context(span, None)).endswith("|20024")


def test_unknown_shipped_rubric_names_the_known_ones() -> None:
    with pytest.raises(RubricError, match="no rubric named 'grounding'.*grounded"):
        shipped_rubric("grounding")
