"""The Python analyser on the SDKs and frameworks it recognises, one small app at a time."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tracegrade.synth import CodeFacts, analyse, propose
from tracegrade.synth._python import analyse_python


def facts_of(**files: str) -> CodeFacts:
    return analyse_python({f"{name}.py": textwrap.dedent(text) for name, text in files.items()})


def test_instructor_structured_output_comes_back_as_a_tool_call() -> None:
    facts = facts_of(app="""
        import instructor
        from openai import OpenAI
        from pydantic import BaseModel

        class Invoice(BaseModel):
            number: str
            total: float

        client = instructor.from_openai(OpenAI())

        def extract(text):
            return client.chat.completions.create(
                model="gpt-4o-mini", response_model=Invoice,
                messages=[{"role": "system", "content": "Extract the invoice."},
                          {"role": "user", "content": text}])
    """)
    (call,) = facts.llm_calls
    assert (call.sdk, call.provider, call.structured_via) == ("instructor", "openai", "tool")
    assert call.output_schema is not None and call.output_schema.name == "Invoice"
    assert call.system_prompt is not None and call.system_prompt.text == "Extract the invoice."
    synthesis = propose(facts)
    paths = {p.name: p.path for p in synthesis.proposals}
    assert paths["llm_invoice_json"] == "$.choices[0].message.tool_calls[0].function.arguments"


def test_litellm_call_and_its_span_name() -> None:
    facts = facts_of(app="""
        import litellm

        def ask(question):
            return litellm.completion(model="claude-3-5-haiku", max_tokens=300, timeout=12,
                                      messages=[{"role": "user", "content": question}])
    """)
    (call,) = facts.llm_calls
    assert (call.sdk, call.api, call.max_tokens, call.timeout_s) == (
        "litellm", "completion", 300, 12.0)
    names = {p.name: p.match.applies_to() for p in propose(facts).proposals}
    assert names["llm_status_ok"] == {"kind": "llm", "name": "completion"}


def test_pydantic_ai_agent_with_tools_output_type_and_settings() -> None:
    facts = facts_of(app="""
        from pydantic import BaseModel
        from pydantic_ai import Agent

        class Forecast(BaseModel):
            city: str
            celsius: float

        agent = Agent("openai:gpt-4o", output_type=Forecast,
                      instructions="Answer in English. Never guess a temperature.",
                      model_settings={"max_tokens": 256, "timeout": 15})

        @agent.tool_plain
        def weather(city: str) -> dict:
            return {"city": city, "celsius": 21.5, "source": "met"}
    """)
    (call,) = facts.llm_calls
    assert (call.sdk, call.provider, call.max_tokens, call.timeout_s) == (
        "pydantic_ai", "openai", 256, 15.0)
    assert call.tools == ["weather"]
    synthesis = propose(facts)
    by_name = {p.name: p for p in synthesis.proposals}
    assert by_name["llm_status_ok"].match.applies_to() == {"kind": "llm", "name": "chat *"}
    assert by_name["weather_returns_source"].match.applies_to() == {"kind": "tool",
                                                                     "name": "weather"}
    assert by_name["llm_forecast_schema"].active  # the arguments of final_result are parsed


def test_mcp_tools_fastmcp_decorators_and_low_level_declarations() -> None:
    facts = facts_of(server="""
        from mcp.server.fastmcp import FastMCP
        from mcp import types

        mcp = FastMCP("inventory")

        @mcp.tool()
        def stock_level(sku: str) -> dict:
            return {"sku": sku, "on_hand": 3}

        @mcp.tool(name="reserve")
        def reserve_stock(sku: str, quantity: int) -> dict:
            return {"sku": sku, "reserved": quantity}

        TOOLS = [types.Tool(name="ping", description="Health", inputSchema={"type": "object"})]
    """)
    tools = {(t.name, t.style, t.implementation) for t in facts.tools}
    assert tools == {("stock_level", "mcp", "stock_level"), ("reserve", "mcp", "reserve_stock"),
                     ("ping", "mcp", None)}
    returns = {r.tool: r.fields for r in facts.tool_returns}
    assert returns == {"stock_level": ("sku", "on_hand"), "reserve": ("sku", "reserved")}


def test_langchain_prompt_template_piped_into_a_model() -> None:
    facts = facts_of(chain="""
        from langchain_anthropic import ChatAnthropic
        from langchain_core.prompts import ChatPromptTemplate

        PROMPT = ChatPromptTemplate.from_messages([
            ("system", "Reply in French. Keep it under 40 words."),
            ("human", "{question}"),
        ])
        model = ChatAnthropic(model="claude-sonnet-4-5", max_tokens=200)
        chain = PROMPT | model
    """)
    (call,) = facts.llm_calls
    assert (call.api, call.provider) == ("ChatAnthropic", "anthropic")
    assert call.system_prompt is not None
    assert call.system_prompt.text == "Reply in French. Keep it under 40 words."
    checks = {p.name: (p.type, p.params) for p in propose(facts).proposals}
    assert checks["reply_script_latin"] == ("script_is", {"scripts": ["Latin"]})
    assert checks["reply_under_40_words"] == ("length", {"max_words": 40})


def test_prompt_pieces_constants_fstrings_and_joins() -> None:
    facts = facts_of(prompts="""
        import textwrap
        BRAND = "Acme"
        RULES = ["- Never use emojis.", "- Respond in JSON."]
        PROMPT = textwrap.dedent(f'''
            You are {BRAND}'s helper for {{customer}}.
        ''') + "\\n".join(RULES)
    """, app="""
        from openai import OpenAI
        from prompts import PROMPT

        def ask(user, question):
            messages = [{"role": "developer", "content": PROMPT.format(customer=user)},
                        {"role": "user", "content": question}]
            return OpenAI().chat.completions.create(model="gpt-4o", messages=messages)
    """)
    (call,) = facts.llm_calls
    prompt = call.system_prompt
    assert prompt is not None and prompt.partial
    assert "Acme's helper" in prompt.text and "- Respond in JSON." in prompt.text
    checks = {p.type for p in propose(facts).proposals}
    assert {"not_regex", "json_valid"} <= checks


def test_response_format_json_schema_dict_and_text_format_model() -> None:
    facts = facts_of(app="""
        from openai import OpenAI
        from pydantic import BaseModel, Field
        from typing import Optional

        class Step(BaseModel):
            text: str
            done: Optional[bool] = None

        class Plan(BaseModel):
            steps: list[Step] = Field(min_length=1)

        client = OpenAI()
        SCHEMA = {"type": "json_schema",
                  "json_schema": {"name": "verdict", "schema": {"type": "object",
                                  "properties": {"ok": {"type": "boolean"}}}}}

        def judge(x):
            return client.chat.completions.create(model="gpt-4o", response_format=SCHEMA,
                                                  messages=[])

        def plan(x):
            return client.responses.parse(model="gpt-4o", input=x, text_format=Plan)
    """)
    schemas = {c.scope: c.output_schema for c in facts.llm_calls}
    assert schemas["judge"] is not None and schemas["judge"].name == "verdict"
    assert schemas["plan"] is not None and schemas["plan"].schema == {
        "type": "object",
        "properties": {"steps": {"type": "array", "minLength": 1, "items": {
            "type": "object",
            "properties": {"text": {"type": "string"},
                           "done": {"anyOf": [{"type": "boolean"}, {"type": "null"}]}},
            "required": ["text"]}}},
        "required": ["steps"],
    }


def test_tool_returns_from_a_return_annotation_and_mixed_returns() -> None:
    facts = facts_of(app="""
        from dataclasses import dataclass
        from openai import OpenAI

        @dataclass
        class Quote:
            price: float
            currency: str
            note: str = ""

        def get_quote(sku: str) -> Quote:
            return build(sku)

        def find_store(city: str):
            if not city:
                return {"error": "no city"}
            return {"store": "Main St", "open": True}

        TOOLS = [{"type": "function", "name": "get_quote", "parameters": {}},
                 {"type": "function", "name": "find_store", "parameters": {}}]

        def ask():
            OpenAI().responses.create(model="gpt-4o", input="hi", tools=TOOLS)
    """)
    returns = {r.tool: (r.fields, r.how) for r in facts.tool_returns}
    # find_store's two returns share no field, so no field can be promised.
    assert returns == {"get_quote": (("price", "currency"), "returns Quote")}


def test_agent_span_opened_with_the_openinference_decorator() -> None:
    facts = facts_of(app="""
        from openai import OpenAI
        from opentelemetry import trace
        tracer = trace.get_tracer(__name__)

        @tracer.agent(name="concierge")
        def reply(question):
            return OpenAI().chat.completions.create(
                model="gpt-4o", messages=[{"role": "system", "content": "Always be brief."}])
    """)
    assert [a.name for a in facts.agent_spans] == ["concierge"]
    (judge,) = [p for p in propose(facts).proposals if p.type == "llm_judge"]
    assert judge.match.applies_to() == {"kind": "agent", "name": "concierge"}


def test_unparsable_files_are_reported_and_tests_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def (:\n", encoding="utf-8")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_app.py").write_text(
        "from openai import OpenAI\nOpenAI().chat.completions.create(model='x', messages=[])\n",
        encoding="utf-8")
    (tmp_path / "test_smoke.py").write_text((tmp_path / "tests" / "test_app.py").read_text(),
                                            encoding="utf-8")
    facts = analyse(tmp_path)
    assert facts.files == ["broken.py"]
    assert facts.llm_calls == []
    assert len(facts.problems) == 1 and facts.problems[0].startswith("broken.py: not valid Python")


def test_an_expression_too_deep_for_the_parser_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "long.py").write_text("P = " + " + ".join(['"a"'] * 20_000) + "\n",
                                      encoding="utf-8")
    facts = analyse(tmp_path)
    assert facts.problems == ["long.py: nested too deeply for Python's parser, skipped"]


CALL = "from openai import OpenAI\nOpenAI().chat.completions.create(model='x', messages=[])\n"


def test_a_byte_order_mark_or_a_coding_line_is_read_as_python_reads_it(tmp_path: Path) -> None:
    (tmp_path / "bom.py").write_bytes(b"\xef\xbb\xbf" + CALL.encode())
    (tmp_path / "latin.py").write_bytes(
        b"# -*- coding: latin-1 -*-\nNAME = '\xe9'\n" + CALL.encode())
    facts = analyse(tmp_path)
    assert facts.problems == []
    assert sorted(call.origin.file for call in facts.llm_calls) == ["bom.py", "latin.py"]


def test_a_missing_path_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        analyse(tmp_path / "nope")


def test_source_decides_the_span_names() -> None:
    source = """
        from langfuse.openai import OpenAI

        def ask(q):
            return OpenAI().chat.completions.create(model="gpt-4o", messages=[])
    """
    langfuse = propose(facts_of(app=source), "langfuse")
    otlp = propose(facts_of(app=source), "otlp")
    assert langfuse.proposals[0].match.applies_to() == {"kind": "llm",
                                                        "name": "OpenAI-generation"}
    assert otlp.proposals[0].match.applies_to() == {"kind": "llm", "name": "ChatCompletion"}
    braintrust = propose(facts_of(app="""
        from braintrust import wrap_openai
        from openai import OpenAI
        client = wrap_openai(OpenAI())
        def ask(q):
            return client.chat.completions.create(model="gpt-4o", messages=[])
    """), "braintrust")
    assert braintrust.proposals[0].match.applies_to() == {"kind": "llm",
                                                          "name": "Chat Completion"}
    assert "Braintrust's wrap_openai" in braintrust.integrations
