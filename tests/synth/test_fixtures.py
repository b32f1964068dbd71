"""The fixture applications give exactly their expected graders, and the configs load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tracegrade.config import parse_config
from tracegrade.graders import build_graders
from tracegrade.llm import compile_rubric
from tracegrade.synth import Settings, Synthesis, analyse, propose, render_config

FIXTURES = Path(__file__).parent / "fixtures"

Row = tuple[str, str, dict[str, Any], str | None, str | None, dict[str, Any]]
"""name, type, applies_to (as written), target, path, params (rubric and schema left out)."""

CHAT = {"kind": "llm", "name": "ChatCompletion"}
RESPONSE = {"kind": "llm", "name": "Response"}
CHAT_REPLY = "$.choices[0].message.content"
# The ChatCompletion call offers tools: its reply's text graders skip the turns that call them.
CHAT_REPLIES = {**CHAT, "unless_output": "$.choices[*].message.tool_calls[0]"}
RESPONSE_REPLY = "$.output[?@.type == 'message'].content[0].text"
MARKDOWN = r"^ {0,3}#{1,6} |\*\*[^*\n]+\*\*|__[^_\n]+__|```|^ {0,3}[-*+] \S|^ {0,3}> "


def tool(name: str) -> dict[str, Any]:
    return {"kind": "tool", "name": name}


OPENAI_AGENT: list[Row] = [
    ("get_invoice_args_valid", "tool_args_valid", tool("get_invoice"), None, None, {}),
    *[(f"get_invoice_returns_{field}", "field_present", tool("get_invoice"), "output",
       f"$.{field}", {}) for field in ("invoice_id", "amount_due", "currency", "due_date",
                                       "overdue")],
    ("get_invoice_latency_4s", "max_latency_ms", tool("get_invoice"), None, None,
     {"max_ms": 4000}),
    ("list_payments_args_valid", "tool_args_valid", tool("list_payments"), None, None, {}),
    ("list_payments_returns_customer_id", "field_present", tool("list_payments"), "output",
     "$.customer_id", {}),
    ("list_payments_returns_payments", "field_present", tool("list_payments"), "output",
     "$.payments", {}),
    ("list_payments_latency_4s", "max_latency_ms", tool("list_payments"), None, None,
     {"max_ms": 4000}),
    ("chat_completion_status_ok", "status_ok", CHAT, None, None, {}),
    ("chat_completion_latency_30s", "max_latency_ms", CHAT, None, None, {"max_ms": 30000}),
    ("chat_completion_output_under_700_tokens", "max_tokens", CHAT, None, None,
     {"max_output": 699}),
    ("response_status_ok", "status_ok", RESPONSE, None, None, {}),
    ("response_latency_30s", "max_latency_ms", RESPONSE, None, None, {"max_ms": 30000}),
    ("response_output_under_200_tokens", "max_tokens", RESPONSE, None, None,
     {"max_output": 199}),
    ("run_always_answer_users_language", "llm_judge", CHAT, None, None, {"judge": "default"}),
    ("run_avoids_risk_score", "not_contains", CHAT_REPLIES, "output", CHAT_REPLY,
     {"values": ["risk score"], "case_sensitive": False}),
    ("run_under_600_chars", "length", CHAT_REPLIES, "output", CHAT_REPLY,
     {"max_chars": 600}),
    ("run_if_invoice_overdue_explain_late_fee", "llm_judge", CHAT, None, None,
     {"judge": "default"}),
    ("summary_under_60_words", "length", RESPONSE, "output", RESPONSE_REPLY, {"max_words": 60}),
    ("summary_no_markdown", "not_regex", RESPONSE, "output", RESPONSE_REPLY,
     {"pattern": MARKDOWN, "flags": ["MULTILINE"]}),
]

MESSAGES = {"kind": "llm", "name": "*Messages"}
CLAUDE_TEXT = "$.content[0].text"
ANTHROPIC_APP: list[Row] = [
    ("llm_status_ok", "status_ok", MESSAGES, None, None, {}),
    ("llm_latency_45s", "max_latency_ms", MESSAGES, None, None, {"max_ms": 45000}),
    ("llm_output_under_1024_tokens", "max_tokens", MESSAGES, None, None, {"max_output": 1023}),
    ("llm_ticket_triage_json", "json_valid", MESSAGES, "output", CLAUDE_TEXT, {}),
    ("llm_ticket_triage_schema", "json_schema", MESSAGES, "output", CLAUDE_TEXT, {}),
    ("triage_classify_each_ticket_into_exactly_one", "llm_judge", MESSAGES, None, None,
     {"judge": "default"}),
    ("triage_mark_needs_human_when_customer_threatens", "llm_judge", MESSAGES, None, None,
     {"judge": "default"}),
    ("triage_never_invent_order_numbers", "llm_judge", MESSAGES, None, None,
     {"judge": "default"}),
    ("reply_script_latin", "script_is", MESSAGES, "output", CLAUDE_TEXT, {"scripts": ["Latin"]}),
    ("reply_under_150_words", "length", MESSAGES, "output", CLAUDE_TEXT, {"max_words": 150}),
    ("reply_never_promise_delivery_date", "llm_judge", MESSAGES, None, None,
     {"judge": "default"}),
    ("reply_ends_with_northwind_team", "regex", MESSAGES, "output", CLAUDE_TEXT,
     {"pattern": r"The\ Northwind\ team\W*$"}),
]

CHAT_OPENAI = {"kind": "llm", "name": "ChatOpenAI"}
LANGGRAPH = {"kind": "chain", "name": "LangGraph"}
# The agent's turns that call tools are ChatOpenAI spans too: the intent graders skip them.
CHAT_OPENAI_REPLIES = {**CHAT_OPENAI,
                       "unless_output": "$.generations[0][*].message..tool_calls[0]"}
GENERATION_TEXT = "$.generations[0][0].text"
LANGCHAIN_AGENT: list[Row] = [
    ("flight_status_args_valid", "tool_args_valid", tool("flight_status"), None, None, {}),
    ("flight_status_returns_flight_number", "field_present", tool("flight_status"), "output",
     "$.flight_number", {}),
    ("flight_status_returns_status", "field_present", tool("flight_status"), "output",
     "$.status", {}),
    ("flight_status_latency_3s", "max_latency_ms", tool("flight_status"), None, None,
     {"max_ms": 3000}),
    ("rebook_passenger_args_valid", "tool_args_valid", tool("rebook_passenger"), None, None, {}),
    ("rebook_passenger_returns_booking_ref", "field_present", tool("rebook_passenger"),
     "output", "$.booking_ref", {}),
    ("rebook_passenger_latency_10s", "max_latency_ms", tool("rebook_passenger"), None, None,
     {"max_ms": 10000}),
    ("llm_status_ok", "status_ok", CHAT_OPENAI, None, None, {}),
    ("llm_latency_30s", "max_latency_ms", CHAT_OPENAI, None, None, {"max_ms": 30000}),
    ("llm_output_under_512_tokens", "max_tokens", CHAT_OPENAI, None, None, {"max_output": 511}),
    ("llm_intent_json", "json_valid", CHAT_OPENAI_REPLIES, "output", GENERATION_TEXT, {}),
    ("llm_intent_schema", "json_schema", CHAT_OPENAI_REPLIES, "output", GENERATION_TEXT, {}),
    ("reply_always_check_flight_status_before_telling", "llm_judge", LANGGRAPH, None, None,
     {"judge": "default"}),
    ("reply_never_rebook_without_passengers_explicit", "llm_judge", LANGGRAPH,
     None, None, {"judge": "default"}),
    ("reply_respond_customers_language", "llm_judge", LANGGRAPH, None, None,
     {"judge": "default"}),
    ("reply_no_emoji", "not_regex", LANGGRAPH, "output", None,
     {"pattern": r"\p{Extended_Pictographic}"}),
]

TOOL_CALL = {"kind": "tool", "name": "ai.toolCall",
             "attributes": {"tool.name": "checkAvailability"}}
GENERATE_TEXT = {"kind": "llm", "name": "ai.generateText.doGenerate"}
GENERATE_OBJECT = {"kind": "llm", "name": "ai.generateObject.doGenerate"}
VERCEL_APP: list[Row] = [
    ("check_availability_args_valid", "tool_args_valid", TOOL_CALL, None, None, {}),
    *[(f"check_availability_returns_{field}", "field_present", TOOL_CALL, "output",
       f"$.{field}", {}) for field in ("available", "rooms", "currency")],
    ("check_availability_latency_5s", "max_latency_ms", TOOL_CALL, None, None, {"max_ms": 5000}),
    ("generate_text_status_ok", "status_ok", GENERATE_TEXT, None, None, {}),
    ("generate_text_latency_20s", "max_latency_ms", GENERATE_TEXT, None, None,
     {"max_ms": 20000}),
    ("generate_text_output_under_300_tokens", "max_tokens", GENERATE_TEXT, None, None,
     {"max_output": 299}),
    ("generate_object_status_ok", "status_ok", GENERATE_OBJECT, None, None, {}),
    ("generate_object_booking_request_schema", "json_schema", GENERATE_OBJECT, "output", None,
     {}),
    ("answer_script_latin", "script_is", GENERATE_TEXT, "output", None, {"scripts": ["Latin"]}),
    ("answer_under_80_words", "length", GENERATE_TEXT, "output", None, {"max_words": 80}),
    ("answer_never_quote_room_price_without_calling", "llm_judge", GENERATE_TEXT, None, None,
     {"judge": "default"}),
    ("parse_booking_extract_booking_request_from_email", "llm_judge", GENERATE_OBJECT, None,
     None, {"judge": "default"}),
    ("parse_booking_use_null_for_what_email_leaves", "llm_judge", GENERATE_OBJECT, None, None,
     {"judge": "default"}),
]

EXPECTED = {"openai_agent": OPENAI_AGENT, "anthropic_app": ANTHROPIC_APP,
            "langchain_agent": LANGCHAIN_AGENT, "vercel_app": VERCEL_APP}


def synthesis_of(app: str) -> Synthesis:
    return propose(analyse(FIXTURES / app), "otlp", judges=True)


def rows(synthesis: Synthesis) -> list[Row]:
    found = []
    for proposal in synthesis.proposals:
        params = {k: v for k, v in proposal.params.items() if k not in ("rubric", "schema")}
        found.append((proposal.name, proposal.type, proposal.config()["applies_to"],
                      proposal.target, proposal.path, params))
    return found


@pytest.mark.parametrize("app", sorted(EXPECTED))
def test_fixture_gives_exactly_its_expected_graders(app: str) -> None:
    synthesis = synthesis_of(app)
    assert synthesis.facts.problems == []
    assert rows(synthesis) == EXPECTED[app]


def test_openai_agent_origins_and_links() -> None:
    synthesis = synthesis_of("openai_agent")
    by_name = {p.name: p for p in synthesis.proposals}
    # The tool implementation is found through the dispatch table (get_invoice -> fetch_invoice).
    assert str(by_name["get_invoice_returns_amount_due"].origin) == "agent.py:70"
    assert str(by_name["get_invoice_args_valid"].origin) == "agent.py:33"
    assert str(by_name["get_invoice_latency_4s"].origin) == "agent.py:67"
    # The client-level timeout (OpenAI(timeout=30.0)) applies to every call on the client.
    assert str(by_name["chat_completion_latency_30s"].origin) == "agent.py:62"
    assert str(by_name["response_latency_30s"].origin) == "agent.py:62"
    # The f-string prompt resolved its constant hole; the instruction is quoted in the rubric.
    rubric = by_name["run_if_invoice_overdue_explain_late_fee"].params["rubric"]
    assert '"If an invoice is overdue, explain the late fee and offer a payment plan."' in rubric
    assert "SYSTEM_PROMPT, agent.py:20" in rubric
    assert "{{ span.output_text }}" in rubric and "trace" not in rubric


def test_anthropic_structured_output_schema_comes_from_the_pydantic_model() -> None:
    synthesis = synthesis_of("anthropic_app")
    schema_grader = next(p for p in synthesis.proposals if p.type == "json_schema")
    assert schema_grader.params["schema"] == {
        "type": "object",
        "properties": {
            "category": {"enum": ["billing", "shipping", "product", "other"]},
            "priority": {"enum": ["low", "normal", "urgent"]},
            "summary": {"type": "string", "maxLength": 200},
            "needs_human": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["category", "priority", "summary", "needs_human"],
    }
    assert str(schema_grader.origin) == "models.py:19"
    # Claude's structured output comes back as JSON text, which json_schema parses: live.
    assert schema_grader.disabled is None
    # Both calls produce *Messages spans: each prompt's checks warn that they see the other's.
    latin = next(p for p in synthesis.proposals if p.name == "reply_script_latin")
    assert any("triage.py:32" in note for note in latin.notes)


def test_langchain_judge_that_names_a_tool_reads_the_trace() -> None:
    synthesis = synthesis_of("langchain_agent")
    by_name = {p.name: p for p in synthesis.proposals}
    rubric = by_name["reply_always_check_flight_status_before_telling"].params["rubric"]
    assert "{{ trace.tool_results }}" in rubric
    assert compile_rubric(rubric).reads_trace
    schema = by_name["llm_intent_schema"].params["schema"]
    assert schema["properties"]["confidence"] == {"type": "number", "minimum": 0, "maximum": 1}


def test_vercel_zod_schemas_become_json_schemas() -> None:
    synthesis = synthesis_of("vercel_app")
    schema = next(p for p in synthesis.proposals if p.type == "json_schema").params["schema"]
    assert schema == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "email": {"type": "string", "format": "email"},
            "checkIn": {"type": "string"},
            "nights": {"type": "integer", "minimum": 1},
            "roomType": {"type": "string", "enum": ["single", "double", "suite"]},
            "notes": {"type": "string"},
        },
        "required": ["name", "email", "checkIn", "nights", "roomType"],
    }
    tool_def = next(t for t in synthesis.facts.tools if t.name == "checkAvailability")
    assert tool_def.style == "vercel_tool" and str(tool_def.origin) == "src/concierge.ts:14"


@pytest.mark.parametrize("app", sorted(EXPECTED))
def test_written_config_loads_and_every_grader_builds(app: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # judge graders need a key to build
    synthesis = synthesis_of(app)
    settings = Settings(judges={"default": {"provider": "openai", "model": "gpt-4.1-mini"}})
    text = render_config(synthesis, f"tests/synth/fixtures/{app}", settings)
    config = parse_config(yaml.safe_load(text))
    live = [p.name for p in synthesis.proposals if p.active]
    assert [g.name for g in config.graders] == live
    assert len(build_graders(config.graders)) == len(live)
    # Every proposal, live or commented out, says where it came from and which spans it reads.
    for proposal in synthesis.proposals:
        block = text.split(f"- name: {proposal.name}\n")[0].rsplit("\n\n", 1)[-1]
        assert f"# synth: {proposal.key} {proposal.digest}" in block
        assert "Matches " in block and (str(proposal.origin) in block)


def test_without_judges_they_are_written_commented_out_and_the_rest_runs_offline() -> None:
    synthesis = propose(analyse(FIXTURES / "langchain_agent"), "otlp", judges=False)
    text = render_config(synthesis, "app", Settings())
    config = parse_config(yaml.safe_load(text))
    assert "llm_judge" not in {g.type for g in config.graders}
    assert "judges:" not in text
    assert "  # - name: reply_respond_customers_language\n  #   type: llm_judge" in text
    build_graders(config.graders)  # no judge, no key needed
