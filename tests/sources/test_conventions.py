"""OpenInference and OTel GenAI attributes → canonical spans, and bad input → problems."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.sources import collector_json, key_values, protobuf_json, request, span
from tracegrade.sources._base import IngestProblem, MappingOptions
from tracegrade.sources.conventions import (
    ConventionError,
    map_export_request,
    map_span,
    span_from_otlp,
)
from tracegrade.spans import Span, SpanKind, StatusCode

OPTIONS = MappingOptions(source="prod")


def mapped(
    attributes: dict[str, Any],
    *,
    options: MappingOptions = OPTIONS,
    resource: dict[str, Any] | None = None,
    **span_fields: Any,
) -> Span | IngestProblem:
    export = request([span(attributes=attributes, **span_fields)], resource)
    results = list(map_export_request(collector_json(export), options, location="t.jsonl:1"))
    assert len(results) == 1
    return results[0]


def mapped_span(attributes: dict[str, Any], **kwargs: Any) -> Span:
    result = mapped(attributes, **kwargs)
    assert isinstance(result, Span), result
    return result


def problem(attributes: dict[str, Any], **kwargs: Any) -> IngestProblem:
    result = mapped(attributes, **kwargs)
    assert isinstance(result, IngestProblem), result
    assert result.location == "t.jsonl:1"
    return result


WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


# --- OpenInference -------------------------------------------------------------------------------


def test_openinference_llm_span_maps_every_field_once() -> None:
    request_body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Paris?"}]}
    result = mapped_span(
        {
            "openinference.span.kind": "LLM",
            "input.value": json.dumps(request_body),
            "input.mime_type": "application/json",
            "output.value": "Calling the weather tool.",
            "output.mime_type": "text/plain",
            "llm.model_name": "gpt-4o-2024-08-06",
            "llm.token_count.prompt": 31,
            "llm.token_count.completion": 12,
            "llm.token_count.total": 43,
            "llm.cost.total": 0.00042,
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "Paris?",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": (
                '{"city": "Paris"}'
            ),
            "llm.tools.0.tool.json_schema": json.dumps(
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Weather by city",
                        "parameters": WEATHER_SCHEMA,
                    },
                }
            ),
            "llm.invocation_parameters": '{"temperature": 0}',
            "session.id": "sess-9",
            "user.id": "user-3",
            "metadata": '{"tenant": "acme"}',
            "tag.tags": ["beta", "eu"],
        },
        name="ChatCompletion",
    )
    assert result.kind is SpanKind.LLM
    assert result.name == "ChatCompletion"
    assert result.input == request_body
    assert result.output == "Calling the weather tool."
    assert (result.model, result.input_tokens, result.output_tokens, result.total_tokens) == (
        "gpt-4o-2024-08-06",
        31,
        12,
        43,
    )
    assert result.cost == pytest.approx(0.00042)
    assert (result.session_id, result.user_id, result.tags) == ("sess-9", "user-3", ["beta", "eu"])
    assert result.attributes == {
        "llm.invocation_parameters": '{"temperature": 0}',
        "metadata": {"tenant": "acme"},
        "service.name": "shop",
        "tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}],
        "tool_definitions": [
            {"name": "get_weather", "description": "Weather by city", "parameters": WEATHER_SCHEMA}
        ],
    }


def test_openinference_messages_build_input_and_output_when_no_value_is_recorded() -> None:
    result = mapped_span(
        {
            "openinference.span.kind": "LLM",
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "Be brief.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.contents.0.message_content.type": "text",
            "llm.input_messages.1.message.contents.0.message_content.text": "What is",
            "llm.input_messages.1.message.contents.1.message_content.type": "image",
            "llm.input_messages.1.message.contents.2.message_content.text": "in this picture?",
            "llm.input_messages.2.message.role": "tool",
            "llm.input_messages.2.message.tool_call_id": "call_0",
            "llm.input_messages.2.message.content": '{"ok": true}',
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "A cat.",
        }
    )
    assert result.input == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is\nin this picture?"},
            {"role": "tool", "content": '{"ok": true}', "tool_call_id": "call_0"},
        ],
        "system": None,
    }
    assert result.output == {"messages": [{"role": "assistant", "content": "A cat."}]}
    assert result.attributes == {"service.name": "shop", "tool_calls": []}


def test_openinference_messages_are_ordered_by_index_not_by_text() -> None:
    attributes = {"openinference.span.kind": "LLM"}
    for index in (10, 2, 1):
        attributes[f"llm.input_messages.{index}.message.role"] = "user"
        attributes[f"llm.input_messages.{index}.message.content"] = f"m{index}"
    result = mapped_span(attributes)
    assert isinstance(result.input, dict)
    assert [message["content"] for message in result.input["messages"]] == ["m1", "m2", "m10"]


def test_openinference_tool_span_takes_arguments_result_and_its_own_definition() -> None:
    result = mapped_span(
        {
            "openinference.span.kind": "TOOL",
            "tool.name": "get_weather",
            "tool.description": "Weather by city",
            "tool.parameters": json.dumps(WEATHER_SCHEMA),
            "input.value": '{"city": "Paris"}',
            "output.value": '{"temperature_c": 14, "conditions": "rain"}',
        },
        name="get_weather",
    )
    assert result.kind is SpanKind.TOOL
    assert result.name == "get_weather"
    assert result.input == {"city": "Paris"}
    assert result.output == {"temperature_c": 14, "conditions": "rain"}
    assert result.attributes == {
        "tool.name": "get_weather",
        "service.name": "shop",
        "tool_definitions": [
            {"name": "get_weather", "description": "Weather by city", "parameters": WEATHER_SCHEMA}
        ],
    }


def test_openinference_tool_span_with_a_generic_name_is_named_after_the_tool() -> None:
    result = mapped_span({"openinference.span.kind": "TOOL", "tool.name": "lookup"}, name="tool")
    assert result.name == "lookup"
    assert "tool.name" not in result.attributes


def test_plain_text_values_stay_strings_and_json_mime_parses_scalars() -> None:
    result = mapped_span(
        {
            "openinference.span.kind": "CHAIN",
            "input.value": "42",
            "output.value": "42",
            "output.mime_type": "application/json",
        }
    )
    assert (result.input, result.output) == ("42", 42)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("LLM", SpanKind.LLM),
        ("TOOL", SpanKind.TOOL),
        ("RETRIEVER", SpanKind.RETRIEVER),
        ("AGENT", SpanKind.AGENT),
        ("CHAIN", SpanKind.CHAIN),
        ("EMBEDDING", SpanKind.EMBEDDING),
        ("GUARDRAIL", SpanKind.GUARDRAIL),
        ("RERANKER", SpanKind.OTHER),
        ("EVALUATOR", SpanKind.OTHER),
        ("agent", SpanKind.AGENT),
    ],
)
def test_openinference_span_kinds(value: str, kind: SpanKind) -> None:
    result = mapped_span({"openinference.span.kind": value})
    assert result.kind is kind
    # A kind that maps to "other" loses information, so the raw value is kept.
    assert ("openinference.span.kind" in result.attributes) == (kind is SpanKind.OTHER)


def test_openinference_retriever_documents_become_the_output() -> None:
    result = mapped_span(
        {
            "openinference.span.kind": "RETRIEVER",
            "input.value": "refund policy",
            "retrieval.documents.0.document.id": "doc-1",
            "retrieval.documents.0.document.content": "Refunds within 30 days.",
            "retrieval.documents.0.document.score": 0.92,
            "retrieval.documents.0.document.metadata": '{"source": "faq"}',
        }
    )
    assert result.input == "refund policy"
    assert result.output == {
        "documents": [
            {
                "id": "doc-1",
                "content": "Refunds within 30 days.",
                "score": 0.92,
                "metadata": {"source": "faq"},
            }
        ]
    }
    assert result.attributes == {"service.name": "shop"}


# --- OTel GenAI ----------------------------------------------------------------------------------

GENAI_INPUT = [
    {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
    {
        "role": "assistant",
        "parts": [
            {
                "type": "tool_call",
                "id": "call_1",
                "name": "get_weather",
                "arguments": {"city": "Paris"},
            }
        ],
    },
    {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "call_1", "response": "rainy, 14°C"}],
    },
]
GENAI_OUTPUT = [
    {
        "role": "assistant",
        "parts": [
            {"type": "text", "content": "It is rainy."},
            {"type": "tool_call", "id": "call_2", "name": "get_forecast", "arguments": "{}"},
        ],
        "finish_reason": "tool_call",
    }
]
GENAI_SYSTEM = [{"type": "text", "content": "You are a weather bot."}]
GENAI_TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather by city",
        "parameters": WEATHER_SCHEMA,
    }
]


@pytest.mark.parametrize("encoding", ["json string", "structured"])
def test_genai_chat_span_normalises_messages(encoding: str) -> None:
    def encode(value: Any) -> Any:
        return json.dumps(value) if encoding == "json string" else value

    result = mapped_span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 50,
            "gen_ai.usage.output_tokens": 9,
            "gen_ai.conversation.id": "conv_1",
            "gen_ai.input.messages": encode(GENAI_INPUT),
            "gen_ai.output.messages": encode(GENAI_OUTPUT),
            "gen_ai.system_instructions": encode(GENAI_SYSTEM),
            "gen_ai.tool.definitions": encode(GENAI_TOOLS),
        },
        name="chat gpt-4o",
    )
    assert result.kind is SpanKind.LLM
    assert result.model == "gpt-4o-2024-08-06"
    assert (result.input_tokens, result.output_tokens, result.total_tokens) == (50, 9, 59)
    assert result.session_id == "conv_1"
    assert result.input == {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
                ],
            },
            {"role": "tool", "content": "rainy, 14°C", "tool_call_id": "call_1"},
        ],
        "system": "You are a weather bot.",
    }
    tool_call = {"id": "call_2", "name": "get_forecast", "arguments": {}}
    assert result.output == {
        "messages": [
            {
                "role": "assistant",
                "content": "It is rainy.",
                "tool_calls": [tool_call],
                "finish_reason": "tool_call",
            }
        ]
    }
    assert result.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "service.name": "shop",
        "tool_calls": [tool_call],
        "tool_definitions": [
            {"name": "get_weather", "description": "Weather by city", "parameters": WEATHER_SCHEMA}
        ],
    }


def span_with_events(attributes: dict[str, Any], *events: tuple[str, dict[str, Any]]) -> Span:
    """A GenAI span whose content is recorded as span events, mapped from OTLP JSON."""
    built = span(attributes=attributes, name="chat gpt-4o")
    for name, event_attributes in events:
        built.events.add(name=name).attributes.extend(key_values(event_attributes))
    [result] = map_export_request(collector_json(request([built])), OPTIONS, location="x")
    assert isinstance(result, Span), result
    return result


CHAT = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}
GENAI_EXPECTED_INPUT = {
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]},
        {"role": "tool", "content": "rainy, 14°C", "tool_call_id": "call_1"},
    ],
    "system": "You are a weather bot.",
}


def test_genai_operation_details_event_gives_input_and_output_when_attributes_do_not() -> None:
    result = span_with_events(CHAT, ("gen_ai.client.inference.operation.details", {
        "gen_ai.input.messages": json.dumps(GENAI_INPUT),
        "gen_ai.output.messages": json.dumps(GENAI_OUTPUT),
        "gen_ai.system_instructions": json.dumps(GENAI_SYSTEM),
    }), ("retry", {"attempt": 2}))
    assert result.kind is SpanKind.LLM
    assert result.input == GENAI_EXPECTED_INPUT
    tool_call = {"id": "call_2", "name": "get_forecast", "arguments": {}}
    assert result.output == {"messages": [{
        "role": "assistant", "content": "It is rainy.", "tool_calls": [tool_call],
        "finish_reason": "tool_call"}]}
    assert result.attributes["tool_calls"] == [tool_call]
    # The event that was mapped is not kept twice; the others are.
    assert [event["name"] for event in result.attributes["otel.events"]] == ["retry"]


def test_content_recorded_on_attributes_wins_over_events_which_are_then_kept() -> None:
    details = {"gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
        {"type": "text", "content": "from the event"}]}])}
    result = span_with_events(
        CHAT | {"gen_ai.input.messages": json.dumps(GENAI_INPUT),
                "gen_ai.system_instructions": json.dumps(GENAI_SYSTEM)},
        ("gen_ai.client.inference.operation.details", details))
    assert result.input == GENAI_EXPECTED_INPUT
    assert result.output is None
    assert result.attributes["otel.events"] == [
        {"name": "gen_ai.client.inference.operation.details", "time": None, "attributes": details}]


def test_older_genai_prompt_and_completion_events_give_input_and_output() -> None:
    prompt = [{"role": "system", "content": "You are a weather bot."},
              {"role": "user", "content": "Weather in Paris?"}]
    completion = [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}]
    result = span_with_events(
        {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"},
        ("gen_ai.content.prompt", {"gen_ai.prompt": json.dumps(prompt)}),
        ("gen_ai.content.completion", {"gen_ai.completion": json.dumps(completion)}))
    assert result.input == {"messages": prompt, "system": None}
    call = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    assert result.output == {"messages": [
        {"role": "assistant", "content": None, "tool_calls": [call]}]}
    assert result.attributes["tool_calls"] == [call]
    assert "otel.events" not in result.attributes
    # A text completion records plain strings.
    text = span_with_events(CHAT, ("gen_ai.content.prompt", {"gen_ai.prompt": "Say hi"}),
                            ("gen_ai.content.completion", {"gen_ai.completion": "Hi!"}))
    assert text.input == {"messages": [{"role": "user", "content": "Say hi"}], "system": None}
    assert text.output == {"messages": [{"role": "assistant", "content": "Hi!"}]}


def test_one_event_per_message_as_azure_and_semantic_kernel_record_them() -> None:
    def content(value: dict[str, Any]) -> dict[str, Any]:
        return {"gen_ai.system": "az.ai.inference", "gen_ai.event.content": json.dumps(value)}

    result = span_with_events(
        CHAT,
        ("gen_ai.system.message", content({"role": "system", "content": "Be brief."})),
        ("gen_ai.user.message", content({"content": "Weather in Paris?"})),  # role from the name
        ("gen_ai.assistant.message", content({"role": "assistant", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]})),
        ("gen_ai.tool.message", content({"content": "rainy", "id": "call_1"})),
        ("gen_ai.choice", content({"finish_reason": "stop", "index": 0,
                                   "message": {"content": "Rainy, 14°C."}})),
    )
    assert result.input == {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]},
        {"role": "tool", "content": "rainy", "tool_call_id": "call_1"},
    ], "system": None}
    assert result.output == {"messages": [
        {"role": "assistant", "content": "Rainy, 14°C.", "finish_reason": "stop"}]}
    assert result.attributes["tool_calls"] == []
    assert "otel.events" not in result.attributes
    # A log event bridged onto the span carries its body fields as attributes.
    bridged = span_with_events(CHAT, ("gen_ai.user.message", {"content": "Hello"}))
    assert bridged.input == {"messages": [{"role": "user", "content": "Hello"}], "system": None}


def test_genai_parts_that_are_not_text_or_tool_calls_are_kept_apart_from_the_text() -> None:
    image = {"type": "uri", "modality": "image", "mime_type": "image/png",
             "uri": "https://example.com/receipt.png"}
    thought = {"type": "reasoning", "content": "The receipt shows order 42."}
    result = mapped_span({
        "gen_ai.operation.name": "chat",
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
            {"type": "text", "content": "Where is this order?"}, image]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
            thought, {"type": "text", "content": "Order 42 shipped."}]}]),
    }, name="chat")
    assert result.input == {"messages": [
        {"role": "user", "content": "Where is this order?", "parts": [image]}], "system": None}
    assert result.output == {"messages": [
        {"role": "assistant", "content": "Order 42 shipped.", "parts": [thought]}]}
    # An image alone is still a message, with no text.
    alone = mapped_span({"gen_ai.operation.name": "chat", "gen_ai.input.messages": json.dumps(
        [{"role": "user", "parts": [image]}])}, name="chat")
    assert alone.input["messages"] == [{"role": "user", "content": None, "parts": [image]}]


def test_genai_tool_span_takes_arguments_and_result_and_the_tool_name() -> None:
    result = mapped_span(
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "get_weather",
            "gen_ai.tool.call.id": "call_1",
            "gen_ai.tool.call.arguments": '{"city": "Paris"}',
            "gen_ai.tool.call.result": '{"temperature_c": 14}',
        },
        name="execute_tool get_weather",
    )
    assert (result.kind, result.name) == (SpanKind.TOOL, "get_weather")
    assert (result.input, result.output) == ({"city": "Paris"}, {"temperature_c": 14})
    assert result.attributes == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.call.id": "call_1",
        "service.name": "shop",
    }


def test_genai_legacy_system_attribute_is_kept_and_request_model_used() -> None:
    result = mapped_span(
        {
            "gen_ai.operation.name": "text_completion",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-3.5-turbo-instruct",
        }
    )
    assert (result.kind, result.model) == (SpanKind.LLM, "gpt-3.5-turbo-instruct")
    assert result.attributes["gen_ai.system"] == "openai"
    assert "gen_ai.request.model" not in result.attributes


@pytest.mark.parametrize(
    ("operation", "kind"),
    [
        ("chat", SpanKind.LLM),
        ("text_completion", SpanKind.LLM),
        ("generate_content", SpanKind.LLM),
        ("execute_tool", SpanKind.TOOL),
        ("embeddings", SpanKind.EMBEDDING),
        ("invoke_agent", SpanKind.AGENT),
        ("create_agent", SpanKind.AGENT),
        ("retrieval", SpanKind.RETRIEVER),
        ("update_memory", SpanKind.OTHER),
    ],
)
def test_genai_operation_names_give_the_kind(operation: str, kind: SpanKind) -> None:
    result = mapped_span({"gen_ai.operation.name": operation})
    assert result.kind is kind
    assert result.attributes["gen_ai.operation.name"] == operation


def test_a_span_without_conventions_keeps_all_attributes() -> None:
    result = mapped_span({"http.route": "/chat", "retries": 2, "ratio": 0.5, "flags": [True]})
    assert result.kind is SpanKind.OTHER
    assert (result.input, result.output) == (None, None)
    assert result.attributes == {
        "http.route": "/chat",
        "retries": 2,
        "ratio": 0.5,
        "flags": [True],
        "service.name": "shop",
    }


# --- envelope: ids, times, status, release, environment ------------------------------------------


def test_ids_times_and_parent_come_from_the_envelope() -> None:
    result = mapped_span({}, span_id=0xABCDEF, parent_id=7)
    assert result.span_id == "0000000000abcdef"
    assert result.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert result.parent_id == "0000000000000007"
    assert result.source == "prod"
    assert result.start_time == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert result.latency_ms == pytest.approx(1500.0)


def test_root_span_has_no_parent_and_unset_end_time_is_none() -> None:
    result = mapped_span({}, duration=0)
    assert (result.parent_id, result.end_time) == (None, None)


def test_base64_ids_from_message_to_dict_equal_the_hex_ids() -> None:
    export = request([span(span_id=0xFEED, parent_id=3)])
    from_protobuf_json = list(map_export_request(protobuf_json(export), OPTIONS, location="x"))
    from_collector_json = list(map_export_request(collector_json(export), OPTIONS, location="x"))
    assert from_protobuf_json == from_collector_json
    assert isinstance(from_protobuf_json[0], Span)
    assert from_protobuf_json[0].span_id == "000000000000feed"


def test_upper_case_hex_ids_are_lowered() -> None:
    raw = collector_json(request([span()]))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    raw["spanId"] = "00000000000000AB"
    result = span_from_otlp(raw, {}, OPTIONS)
    assert result.span_id == "00000000000000ab"


@pytest.mark.parametrize("code", [2, "STATUS_CODE_ERROR"])
def test_error_status_keeps_its_message(code: Any) -> None:
    raw = collector_json(request([span()]))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    raw["status"] = {"code": code, "message": "rate limited"}
    result = span_from_otlp(raw, {}, OPTIONS)
    assert (result.status.code, result.status.message) == (StatusCode.ERROR, "rate limited")


def test_error_without_message_takes_the_exception_event_message() -> None:
    raw = collector_json(request([span(status=2)]))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    raw["events"] = [
        {
            "name": "exception",
            "attributes": [
                {"key": "exception.message", "value": {"stringValue": "timeout after 30s"}}
            ],
        }
    ]
    result = span_from_otlp(raw, {}, OPTIONS)
    assert result.status.message == "timeout after 30s"


def test_malformed_exception_events_are_ignored() -> None:
    raw = collector_json(request([span(status=2)]))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    raw["events"] = [{"name": "exception", "attributes": 5}, "junk"]
    result = span_from_otlp(raw, {}, OPTIONS)
    assert (result.status.code, result.status.message) == (StatusCode.ERROR, None)


def test_error_with_only_an_exception_type_takes_the_type_as_message() -> None:
    raw = collector_json(request([span(status=2)]))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    raw["events"] = [
        {
            "name": "exception",
            "attributes": [{"key": "exception.type", "value": {"stringValue": "TimeoutError"}}],
        }
    ]
    result = span_from_otlp(raw, {}, OPTIONS)
    assert (result.status.code, result.status.message) == (StatusCode.ERROR, "TimeoutError")


def span_with_events_and_links() -> Any:
    built = span(status=2)
    event = built.events.add(name="exception", time_unix_nano=1_700_000_000_200_000_000)
    event.attributes.extend(key_values({"exception.type": "KeyError", "attempt": 2}))
    built.events.add(name="retry")
    link = built.links.add(trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319d"))
    link.span_id = (9).to_bytes(8, "big")
    link.attributes.extend(key_values({"link.kind": "follows"}))
    return built


EVENTS_AND_LINKS = {
    "otel.events": [
        {
            "name": "exception",
            "time": "2023-11-14T22:13:20.200000Z",
            "attributes": {"exception.type": "KeyError", "attempt": 2},
        },
        {"name": "retry", "time": None, "attributes": {}},
    ],
    "otel.links": [
        {
            "trace_id": "0af7651916cd43dd8448eb211c80319d",
            "span_id": "0000000000000009",
            "attributes": {"link.kind": "follows"},
        }
    ],
}


@pytest.mark.parametrize("to_json", [collector_json, protobuf_json])
def test_events_and_links_are_kept_in_attributes(to_json: Any) -> None:
    export = request([span_with_events_and_links()])
    [result] = map_export_request(to_json(export), OPTIONS, location="x")
    assert isinstance(result, Span)
    assert result.attributes == {"service.name": "shop"} | EVENTS_AND_LINKS
    assert result.status.message == "KeyError"


def test_unreadable_event_attributes_keep_the_span_and_say_why() -> None:
    raw = collector_json(request([span()]))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    raw["events"] = [{"name": "odd", "timeUnixNano": "x", "attributes": 5}, "junk"]
    events = span_from_otlp(raw, {}, OPTIONS).attributes["otel.events"]
    assert events == [
        {
            "name": "odd",
            "time": None,
            "attributes": {},
            "attributes_error": "attributes 5 is not a list",
        }
    ]


def test_unmapped_resource_attributes_are_kept_with_a_resource_prefix() -> None:
    resource = {"host.name": "h1", "deployment.environment.name": "prod", "k8s.pod.name": "p"}
    result = mapped_span({"host.name": "span-level"}, resource=resource)
    assert result.environment == "prod"
    assert result.attributes == {
        "resource.host.name": "h1",
        "resource.k8s.pod.name": "p",
        "host.name": "span-level",
        "service.name": "shop",
    }


def test_error_type_attribute_marks_the_span_failed() -> None:
    result = mapped_span({"error.type": "RateLimitError"})
    assert (result.status.code, result.status.message) == (StatusCode.ERROR, "RateLimitError")


def test_ok_and_unset_status_are_ok() -> None:
    assert mapped_span({}, status=1).status.code is StatusCode.OK
    assert mapped_span({}, status=0).status.code is StatusCode.OK


def test_release_and_environment_from_resource_by_default() -> None:
    result = mapped_span({}, resource={"deployment.environment": "staging"})
    assert (result.release, result.environment) == ("1.4.2", "staging")
    assert result.attributes == {"service.name": "shop"}


def test_release_and_environment_from_span_attributes_when_configured() -> None:
    options = MappingOptions(
        source="prod", release_from="app.release", environment_from=("env", "resource.stage")
    )
    result = mapped_span(
        {"app.release": "2025-06-01", "other": 1}, options=options, resource={"stage": "canary"}
    )
    assert (result.release, result.environment) == ("2025-06-01", "canary")
    # service.version fed no field here, so it is kept like any other resource attribute
    # (it was dropped; the stage that did feed one is not repeated).
    assert result.attributes == {"other": 1, "service.name": "shop",
                                 "resource.service.version": "1.4.2"}


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("details", ['{"characters": 120}', '{"images": 1}',
                                     '{"input": "10", "output": "5"}', "not json"])
def test_langfuse_usage_in_other_units_leaves_the_token_counts_empty(details: str) -> None:
    span = mapped_span({"langfuse.observation.type": "generation",
                        "langfuse.observation.usage_details": details})
    assert span.kind is SpanKind.LLM
    assert (span.input_tokens, span.output_tokens, span.total_tokens) == (None, None, None)


def test_langfuse_attributes_yield_to_openinference_ones() -> None:
    span = mapped_span({"openinference.span.kind": "TOOL", "input.value": "from openinference",
                        "langfuse.observation.type": "generation",
                        "langfuse.observation.input": '"from langfuse"',
                        "llm.token_count.prompt": 3,
                        "langfuse.observation.usage_details": '{"input": 99}'})
    assert (span.kind, span.input, span.input_tokens) == (SpanKind.TOOL, "from openinference", 3)


def test_an_anyvalue_field_newer_than_this_code_is_read_as_absent() -> None:
    # OTLP/JSON receivers ignore fields they do not know; the span is kept (it was a problem).
    export = collector_json(request([span(attributes={"known": 1})]))
    attributes = export["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    attributes.append({"key": "future", "value": {"stringValueStrindex": 3}})
    [result] = map_export_request(export, OPTIONS, location="t.jsonl:1")
    assert isinstance(result, Span), result
    assert result.attributes["known"] == 1 and result.attributes.get("future") is None


@pytest.mark.parametrize(("attributes", "field"), [
    ({"session.id": "s" * 201}, "session_id"),
    ({"user.id": "u" * 201}, "user_id"),
    ({"llm.model_name": "m" * 201}, "model"),
    ({"llm.token_count.prompt": 2**63 - 1}, "input_tokens"),
    ({"gen_ai.usage.output_tokens": 2**31}, "output_tokens"),
    ({"gen_ai.usage.input_tokens": 2**31 - 1, "gen_ai.usage.output_tokens": 1}, "total_tokens"),
])
def test_a_value_the_store_cannot_hold_makes_the_span_a_problem(
        attributes: dict[str, Any], field: str) -> None:
    # PostgreSQL refused these at the write (String(200), INTEGER), failing the whole batch.
    assert field in problem(attributes).reason


def test_a_span_name_too_long_to_index_is_a_problem_and_one_at_the_limits_is_kept() -> None:
    assert "name" in problem({}, name="n" * 501).reason
    kept = mapped_span({"session.id": "s" * 200, "llm.token_count.prompt": 2**31 - 1},
                       name="n" * 500)
    assert (kept.session_id, kept.input_tokens) == ("s" * 200, 2**31 - 1)


def test_start_time_that_is_not_a_number_is_a_problem() -> None:
    raw = collector_json(request([span()]))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    raw["startTimeUnixNano"] = "abc"
    result = map_span(raw, {}, OPTIONS, location="f.json:3", label="spans[0]")
    assert isinstance(result, IngestProblem)
    assert result.location == "f.json:3"
    assert result.reason == "spans[0]: startTimeUnixNano 'abc' is not a whole number of nanoseconds"


def test_missing_start_time_is_a_problem() -> None:
    assert "no startTimeUnixNano" in problem({}, start=0, duration=0).reason


@pytest.mark.parametrize("key", ["llm.token_count.prompt", "gen_ai.usage.output_tokens"])
def test_token_count_that_is_not_a_number_is_a_problem(key: str) -> None:
    assert f"{key} 'x' is not a whole number of tokens" in problem({key: "x"}).reason


def test_token_counts_given_as_numeric_strings_or_whole_floats_become_ints() -> None:
    result = mapped_span({"llm.token_count.prompt": "12", "llm.token_count.completion": 3.0})
    assert (result.input_tokens, result.output_tokens) == (12, 3)
    assert isinstance(result.output_tokens, int)


@pytest.mark.parametrize("value", [-1, 2.5, True])
def test_negative_fractional_or_boolean_token_counts_are_problems(value: Any) -> None:
    assert "is not a whole number of tokens" in problem({"llm.token_count.total": value}).reason


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_doubles_are_problems(value: float) -> None:
    assert "is not a finite number" in problem({"score": value}).reason


def test_non_finite_doubles_in_otlp_json_strings_are_problems() -> None:
    raw = collector_json(request([span({"x": 1.5})]))["resourceSpans"][0]["scopeSpans"][0]["spans"][
        0
    ]
    raw["attributes"][0]["value"] = {"doubleValue": "Infinity"}
    with pytest.raises(ConventionError, match="doubleValue Infinity is not a finite number"):
        span_from_otlp(raw, {}, OPTIONS)


@pytest.mark.parametrize("cost", [-0.1, "cheap"])
def test_bad_cost_is_a_problem(cost: Any) -> None:
    assert "llm.cost.total" in problem({"llm.cost.total": cost}).reason


@pytest.mark.parametrize("field", ["spanId", "traceId"])
def test_span_without_an_id_is_a_problem(field: str) -> None:
    raw = collector_json(request([span()]))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    del raw[field]
    result = map_span(raw, {}, OPTIONS, location="f.json:1")
    assert isinstance(result, IngestProblem)
    assert result.reason == f"span: span has no {field}"


def test_all_zero_or_malformed_ids_are_problems() -> None:
    raw = collector_json(request([span()]))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    with pytest.raises(ConventionError, match="span has no spanId"):
        span_from_otlp(raw | {"spanId": "0000000000000000"}, {}, OPTIONS)
    with pytest.raises(ConventionError, match="neither hex nor base64"):
        span_from_otlp(raw | {"spanId": "not an id!"}, {}, OPTIONS)


def test_attribute_over_the_size_limit_is_a_problem() -> None:
    big = "x" * (20 * 1024 * 1024)
    reason = problem({"input.value": big}).reason
    assert reason.endswith(
        "attribute 'input.value': value is 20971520 bytes, over the limit of 1048576"
    )


def test_size_limit_is_a_parameter_and_counts_utf8_bytes() -> None:
    raw = collector_json(request([span({"note": "é" * 60})]))["resourceSpans"][0]["scopeSpans"][0][
        "spans"
    ][0]
    assert span_from_otlp(raw, {}, OPTIONS, max_attribute_bytes=120).attributes["note"] == "é" * 60
    with pytest.raises(ConventionError, match="value is 120 bytes, over the limit of 119"):
        span_from_otlp(raw, {}, OPTIONS, max_attribute_bytes=119)


def test_arrays_count_against_the_size_limit() -> None:
    raw = collector_json(request([span({"tags": ["abcdefghij"] * 20})]))["resourceSpans"][0][
        "scopeSpans"
    ][0]["spans"][0]
    with pytest.raises(ConventionError, match="over the limit of 100"):
        span_from_otlp(raw, {}, OPTIONS, max_attribute_bytes=100)


def test_deeply_nested_attribute_values_are_problems() -> None:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(10_000):
        value = {"arrayValue": {"values": [value]}}
    raw = collector_json(request([span()]))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    raw["attributes"] = [{"key": "deep", "value": value}]
    result = map_span(raw, {}, OPTIONS, location="f.json@10")
    assert isinstance(result, IngestProblem)
    assert "nested deeper than 100 levels" in result.reason


def test_json_string_nested_too_deep_for_the_store_is_a_problem() -> None:
    reason = problem({"input.value": "[" * 300 + "]" * 300}).reason
    assert "nested deeper than 100 levels" in reason


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("name", 7, "name 7 is not a string"),
        ("name", "n" * 2_000_000, "value is 2000000 bytes, over the limit of 1048576"),
        ("status", {"code": 2, "message": "m" * 2_000_000}, "value is 2000000 bytes"),
        ("attributes", {"a": 1}, "attributes a dict is not a list"),
        ("endTimeUnixNano", "-5", "endTimeUnixNano '-5' is out of range"),
        ("startTimeUnixNano", "9" * 25, "is out of range"),
    ],
)
def test_wrong_types_in_the_envelope_are_problems(field: str, value: Any, reason: str) -> None:
    raw = collector_json(request([span()]))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    raw[field] = value
    with pytest.raises(ConventionError, match=reason):
        span_from_otlp(raw, {}, OPTIONS)


def test_one_bad_span_does_not_hide_the_others_of_its_request() -> None:
    export = request([span(span_id=1), span(span_id=2), span(span_id=3)])
    document = collector_json(export)
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["startTimeUnixNano"] = "abc"
    results = list(map_export_request(document, OPTIONS, location="f.jsonl:4"))
    assert [type(result).__name__ for result in results] == ["Span", "IngestProblem", "Span"]
    problem_ = results[1]
    assert isinstance(problem_, IngestProblem)
    assert problem_.location == "f.jsonl:4"
    assert problem_.reason.startswith("resourceSpans[0].scopeSpans[0].spans[1]: ")


def test_bad_resource_is_one_problem_for_its_spans() -> None:
    document = collector_json(request([span(span_id=1), span(span_id=2)]))
    document["resourceSpans"][0]["resource"]["attributes"] = "oops"
    assert list(map_export_request(document, OPTIONS, location="f:1")) == [
        IngestProblem("f:1", "resourceSpans[0]: attributes 'oops' is not a list")
    ]


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([1, 2], "not an OTLP trace export: expected a JSON object"),
        ({"resourceMetrics": []}, "not an OTLP trace export: no resourceSpans list"),
    ],
)
def test_requests_that_are_not_trace_exports_are_problems(document: Any, reason: str) -> None:
    assert list(map_export_request(document, OPTIONS, location="f:2")) == [
        IngestProblem("f:2", reason)
    ]


# --- property: arbitrary attributes map or are reported, never crash -----------------------------

CONVENTION_KEYS = [
    "openinference.span.kind",
    "gen_ai.operation.name",
    "input.value",
    "input.mime_type",
    "output.value",
    "output.mime_type",
    "llm.model_name",
    "llm.token_count.prompt",
    "llm.token_count.total",
    "llm.cost.total",
    "llm.input_messages.0.message.role",
    "llm.input_messages.0.message.content",
    "llm.input_messages.1.message.contents.0.message_content.text",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name",
    "llm.tools.0.tool.json_schema",
    "llm.tools.x",
    "retrieval.documents.0.document.content",
    "tool.name",
    "tool.parameters",
    "session.id",
    "user.id",
    "metadata",
    "tag.tags",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.usage.input_tokens",
    "gen_ai.response.model",
    "error.type",
    "service.version",
]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_strings = st.sampled_from(
    [
        "LLM",
        "TOOL",
        "chat",
        "execute_tool",
        "application/json",
        "[]",
        "{}",
        '{"a": [1]}',
        '[{"role": "user", "parts": [{"type": "tool_call"}]}]',
        '[{"type": "text"}]',
        "x",
    ]
)
raw_values = st.recursive(
    json_scalars | json_strings,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["role", "parts", "type", "content", "name", "arguments", "function", "id", "x"]
            ),
            children,
            max_size=3,
        )
    ),
    max_leaves=12,
)


def any_values() -> st.SearchStrategy[Any]:
    """OTLP AnyValue dicts, well- and ill-formed."""
    scalar = st.one_of(
        st.builds(lambda v: {"stringValue": v}, st.text(max_size=30) | json_strings | raw_values),
        st.builds(lambda v: {"intValue": v}, st.integers() | st.text(max_size=5) | raw_values),
        st.builds(lambda v: {"doubleValue": v}, st.floats() | st.sampled_from(["NaN", "1.5"])),
        st.builds(lambda v: {"boolValue": v}, st.booleans() | raw_values),
        st.builds(lambda v: {"bytesValue": v}, st.text(max_size=8) | raw_values),
        st.just({}),
        raw_values,
    )
    return st.recursive(
        scalar,
        lambda children: (
            st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(children, max_size=3))
            | st.builds(
                lambda kvs: {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in kvs]}},
                st.lists(
                    st.tuples(
                        st.sampled_from(["role", "parts", "type", "content", "name"]), children
                    ),
                    max_size=3,
                ),
            )
        ),
        max_leaves=10,
    )


otlp_attributes = st.lists(
    st.builds(
        lambda key, value: {"key": key, "value": value},
        st.sampled_from(CONVENTION_KEYS) | st.text(max_size=10),
        any_values(),
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(
    attributes=otlp_attributes,
    name=st.text(max_size=10) | raw_values,
    start=st.sampled_from(["1700000000000000000", 1, "abc", None, -3, 2.0**70]) | raw_values,
    status=st.fixed_dictionaries({"code": st.sampled_from([0, 1, 2, "STATUS_CODE_ERROR", "x"])}),
    expected=st.none(),
)
@example(
    attributes=[
        {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
        {"key": "llm.model_name", "value": {"stringValue": "gpt-4o"}},
        {"key": "llm.token_count.prompt", "value": {"intValue": "31"}},
        {"key": "output.value", "value": {"stringValue": "A1 ships Monday."}},
    ],
    name="ChatCompletion",
    start="1700000000000000000",
    status={"code": 0},
    expected={"name": "ChatCompletion", "kind": SpanKind.LLM, "model": "gpt-4o",
              "input_tokens": 31, "output": "A1 ships Monday.", "status": StatusCode.OK},
)
@example(
    attributes=[],
    name="step",
    start=1,
    status={"code": "STATUS_CODE_ERROR"},
    expected={"name": "step", "status": StatusCode.ERROR, "input_tokens": None},
)
def test_arbitrary_attributes_map_or_raise_a_mapping_error(
    attributes: list[Any], name: Any, start: Any, status: Any, expected: dict[str, Any] | None
) -> None:
    """``expected``: None for drawn input (which may be refused), else fields it must map to."""
    raw = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "00f067aa0ba902b7",
        "name": name,
        "startTimeUnixNano": start,
        "status": status,
        "attributes": attributes,
    }
    try:
        result = span_from_otlp(raw, {"service.version": "1"}, OPTIONS)
    except (ConventionError, ValidationError) as error:
        assert expected is None, f"a valid span was refused: {error}"
        return
    mapped_fields = {key: result.status.code if key == "status" else getattr(result, key)
                     for key in expected or {}}
    assert mapped_fields == (expected or {})
    encoded = orjson.loads(orjson.dumps(result.model_dump(mode="json")))
    assert encoded["span_id"] == "00f067aa0ba902b7"
    for tokens in (result.input_tokens, result.output_tokens, result.total_tokens):
        assert tokens is None or (isinstance(tokens, int) and not isinstance(tokens, bool))
    assert result.cost is None or math.isfinite(result.cost)
    assert map_span(raw, {"service.version": "1"}, OPTIONS, location="f:1") == result


@settings(max_examples=200, deadline=None)
@given(document=raw_values | st.builds(lambda rs: {"resourceSpans": rs}, raw_values))
def test_arbitrary_documents_never_raise(document: Any) -> None:
    for result in map_export_request(document, OPTIONS, location="f:1"):
        assert isinstance(result, Span | IngestProblem)


def test_legacy_openinference_function_call_is_a_tool_call() -> None:
    result = mapped_span(
        {
            "openinference.span.kind": "LLM",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.function_call_name": "get_weather",
            "llm.output_messages.0.message.function_call_arguments_json": '{"city": "Paris"}',
        }
    )
    call = {"id": None, "name": "get_weather", "arguments": {"city": "Paris"}}
    assert result.attributes["tool_calls"] == [call]
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    assert result.output == {"messages": [message]}


def test_system_instructions_stay_an_attribute_when_input_value_wins() -> None:
    result = mapped_span(
        {
            "openinference.span.kind": "LLM",
            "input.value": "hi",
            "gen_ai.system_instructions": "be nice",
        }
    )
    assert result.input == "hi"
    assert result.attributes["gen_ai.system_instructions"] == "be nice"
