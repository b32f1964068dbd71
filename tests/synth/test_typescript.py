"""The TypeScript / JavaScript analyser (tree-sitter): SDK calls, Zod schemas, MCP tools."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from tracegrade.synth import CodeFacts, propose
from tracegrade.synth._typescript import analyse_typescript


def facts_of(name: str, text: str) -> CodeFacts:
    return analyse_typescript({name: textwrap.dedent(text)})


def zod_schema(expression: str) -> Any:
    facts = facts_of("s.ts", f"""
        import {{ generateObject }} from "ai";
        import {{ z }} from "zod";
        const Shape = {expression};
        await generateObject({{ model: "openai/gpt-4o", schema: Shape }});
    """)
    (call,) = facts.llm_calls
    assert call.output_schema is not None
    return call.output_schema.schema


@pytest.mark.parametrize(("expression", "schema"), [
    ("z.string().min(2).max(5)", {"type": "string", "minLength": 2, "maxLength": 5}),
    ("z.number().int().nonnegative()", {"type": "integer"}),
    ("z.array(z.boolean()).min(1)", {"type": "array", "items": {"type": "boolean"},
                                      "minItems": 1}),
    ("z.enum(['a', 'b'])", {"type": "string", "enum": ["a", "b"]}),
    # A surrogate pair is one character; a code point past U+10FFFF is no crash.
    (r"z.enum(['\uD83D\uDE00', '\u{1F600}', '\u{110000}'])",
     {"type": "string", "enum": ["\U0001F600", "\U0001F600", "\ufffd"]}),
    ("z.union([z.string(), z.number()])", {"anyOf": [{"type": "string"}, {"type": "number"}]}),
    ("z.literal(3)", {"const": 3}),
    ("z.string().nullable()", {"anyOf": [{"type": "string"}, {"type": "null"}]}),
    ("z.record(z.string(), z.number())", {"type": "object",
                                          "additionalProperties": {"type": "number"}}),
    ("z.string().regex(/^[A-Z]{3}$/)", {"type": "string", "pattern": "^[A-Z]{3}$"}),
    ("z.custom((v) => true)", {}),
    ("z.string().regex(/^[a-z]+$/i)", {"type": "string"}),
    (r"z.string().regex(/^\p{L}+$/u)", {"type": "string"}),
    ("z.string().or(z.number())", {"anyOf": [{"type": "string"}, {"type": "number"}]}),
    ("z.literal('a').or(z.literal('b')).or(z.literal('c'))", {"enum": ["a", "b", "c"]}),
    ("z.object({ a: z.string(), b: z.number() }).partial()",
     {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "number"}}}),
    ("z.object({ a: z.string(), b: z.number().optional(), c: z.string().default('x') })",
     {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "number"},
                                       "c": {"type": "string"}}, "required": ["a"]}),
    ("z.object({ tags: z.string().array() }).describe('x')",
     {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
      "required": ["tags"]}),
])
def test_zod_to_json_schema(expression: str, schema: dict[str, Any]) -> None:
    assert zod_schema(expression) == schema


def test_openai_sdk_in_typescript_with_zod_response_format() -> None:
    facts = facts_of("triage.ts", """
        import OpenAI from "openai";
        import { zodResponseFormat } from "openai/helpers/zod";
        import { z } from "zod";

        const client = new OpenAI();
        const Verdict = z.object({ spam: z.boolean(), reason: z.string() });
        const PROMPT = "Decide if the message is spam. " + "Answer in English.";

        export async function classify(text: string) {
          return client.chat.completions.parse({
            model: "gpt-4o-mini",
            max_completion_tokens: 120,
            messages: [{ role: "system", content: PROMPT }, { role: "user", content: text }],
            response_format: zodResponseFormat(Verdict, "verdict"),
          }, { timeout: 8000 });
        }
    """)
    (call,) = facts.llm_calls
    assert (call.sdk, call.api, call.scope, call.max_tokens, call.timeout_s) == (
        "openai", "chat.completions.parse", "classify", 120, 8.0)
    assert call.output_schema is not None and call.output_schema.name == "verdict"
    assert call.system_prompt is not None
    assert call.system_prompt.text == "Decide if the message is spam. Answer in English."
    names = {p.name for p in propose(facts).proposals}
    assert {"llm_status_ok", "llm_latency_8s", "llm_verdict_json", "reply_script_latin"} <= names


def test_anthropic_sdk_tools_and_function_implementation_in_javascript() -> None:
    facts = facts_of("bot.js", """
        import Anthropic from "@anthropic-ai/sdk";
        const anthropic = new Anthropic();
        const tools = [{ name: "get_order", description: "An order",
                         input_schema: { type: "object",
                                         properties: { id: { type: "string" } } } }];

        async function get_order({ id }) {
          const res = await fetch(`/orders/${id}`, { signal: AbortSignal.timeout(2500) });
          const order = await res.json();
          return { id, state: order.state };
        }

        export async function chat(messages) {
          return anthropic.messages.create({ model: "claude-haiku-4-5", max_tokens: 512,
                                             system: "Never share an address.", tools, messages });
        }
    """)
    (call,) = facts.llm_calls
    assert (call.sdk, call.tools, call.max_tokens) == ("anthropic", ["get_order"], 512)
    assert [(r.tool, r.fields) for r in facts.tool_returns] == [("get_order", ("id", "state"))]
    assert [(t.tool, t.seconds) for t in facts.tool_timeouts] == [("get_order", 2.5)]


def test_mcp_server_tools_declared_both_ways() -> None:
    facts = facts_of("server.ts", """
        import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
        import { z } from "zod";
        const server = new McpServer({ name: "notes", version: "1.0.0" });

        server.tool("add_note", "Store a note",
          { text: z.string(), pinned: z.boolean().optional() },
          async ({ text }) => ({ content: [{ type: "text", text }], id: 1 }));

        server.registerTool("search_notes", {
          description: "Find notes",
          inputSchema: { query: z.string() },
        }, async ({ query }) => { return { content: [], total: 0 }; });
    """)
    assert [(t.name, t.style) for t in facts.tools] == [("add_note", "mcp"),
                                                       ("search_notes", "mcp")]
    assert {r.tool: r.fields for r in facts.tool_returns} == {
        "add_note": ("content", "id"), "search_notes": ("content", "total")}


def test_calls_not_from_the_ai_package_are_ignored_and_syntax_errors_reported() -> None:
    facts = facts_of("other.tsx", """
        import { generateText } from "./my-own-helpers";
        export const App = () => <div>{generateText({ system: "x" })}</div>;
        const broken = (;
    """)
    assert facts.llm_calls == []
    assert facts.problems == ["other.tsx: parsed with syntax errors; parts may be missed"]
