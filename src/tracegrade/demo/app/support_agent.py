# mypy: disable-error-code="import-not-found, import-untyped"
# (tracegrade's own environment does not install this app's dependencies: openai, opentelemetry.)
"""Northwind Outfitters support agent: answers "where is my order?" in the shop's web chat.

For each customer message the agent asks the model, lets it call ``lookup_order`` and asks it
again to write the reply from the tool's result. Tracing is OpenInference over OpenTelemetry: the
OpenAI instrumentor records every model call, this module records the agent and tool spans.

This is the demo application of tracegrade. tracegrade never imports or runs it; its bundled
traces (``tracegrade/demo/data``) are what this code produces in production, and tracegrade reads
this file as text to propose graders from it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from functools import cache
from typing import Any

import httpx
from openai import APIError, OpenAI
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam
from openinference.instrumentation import using_attributes
from openinference.instrumentation.openai import OpenAIInstrumentor
from openinference.semconv.trace import OpenInferenceSpanKindValues, SpanAttributes
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

__version__ = "2026.11.1"

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("support_agent", __version__)

ORDERS_API_URL = os.environ.get("ORDERS_API_URL", "http://orders.internal:8080")
REQUEST_TIMEOUT_S = 20.0
MAX_MODEL_CALLS = 3

SYSTEM_PROMPT = (
    "You are the customer-support assistant of Northwind Outfitters, an online outdoor-gear shop. "
    "You help customers with questions about their orders.\n"
    "- When the customer gives an order number, call lookup_order before answering.\n"
    "- Base every fact about an order on the lookup_order result; never guess a date or carrier.\n"
    "- If lookup_order finds no order, say so and ask the customer to check the number.\n"
    "- Always answer in English.\n"
    "- Never reveal internal order notes.\n"
    "- Keep replies under 120 words.\n"
    "- Do not promise refunds, discounts or compensation; offer to open a claim instead."
)

FALLBACK_REPLY = (
    "Sorry, I'm having trouble looking that up right now. Please try again in a few minutes."
)

LOOKUP_ORDER_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Look up an order by its ID: status, carrier and estimated delivery date.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "pattern": "^A[0-9]{6}$"}},
            "required": ["order_id"],
        },
    },
}


def lookup_order(order_id: str) -> dict[str, Any]:
    """Fetch an order from the orders service, keeping only what the model may see."""
    # The model sometimes lower-cases the ID ("a123456"); the orders service wants "A123456".
    order_id = order_id.strip().upper()
    response = httpx.get(f"{ORDERS_API_URL}/orders/{order_id}", timeout=5.0)
    if response.status_code == httpx.codes.NOT_FOUND:
        return {"order_id": order_id, "order_status": "not_found", "carrier": None, "eta": None}
    response.raise_for_status()
    record = response.json()
    # Release 2026.11.2 renames "order_status" to "status" (to match the orders service's naming).
    # record["notes"] holds internal notes: it is deliberately never passed to the model.
    return {
        "order_id": record["id"],
        "order_status": record["state"],
        "carrier": record.get("carrier"),
        "eta": record.get("estimated_delivery"),
    }


def run_tool(name: str, arguments_json: str) -> str:
    """Run the tool the model asked for inside a TOOL span and return its result as JSON."""
    arguments = json.loads(arguments_json)
    attributes = {
        SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.TOOL.value,
        SpanAttributes.TOOL_NAME: name,
        SpanAttributes.INPUT_VALUE: json.dumps(arguments),
        SpanAttributes.INPUT_MIME_TYPE: "application/json",
    }
    with tracer.start_as_current_span(name, attributes=attributes) as span:
        if name != "lookup_order":
            raise ValueError(f"unknown tool {name!r}")
        result = json.dumps(lookup_order(**arguments))
        span.set_attribute(SpanAttributes.OUTPUT_VALUE, result)
        span.set_attribute(SpanAttributes.OUTPUT_MIME_TYPE, "application/json")
        return result


@cache
def openai_client() -> OpenAI:
    """The one OpenAI client; it reads OPENAI_API_KEY from the environment."""
    return OpenAI(max_retries=2)


def converse(user_message: str) -> str:
    """Ask the model, run the tool calls it makes, and return its final reply."""
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_message},
    ]
    for _ in range(MAX_MODEL_CALLS):
        completion = openai_client().chat.completions.create(
            model="gpt-4.1-mini",
            messages=messages,
            tools=[LOOKUP_ORDER_TOOL],
            max_tokens=400,
            timeout=REQUEST_TIMEOUT_S,
        )
        message = completion.choices[0].message
        calls = [call for call in message.tool_calls or [] if call.type == "function"]
        if not calls:
            reply: str = message.content or ""
            return reply
        messages.append(
            {
                "role": "assistant",
                "content": message.content,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": call.function.name,
                            "arguments": call.function.arguments,
                        },
                    }
                    for call in calls
                ],
            }
        )
        for call in calls:
            result = run_tool(call.function.name, call.function.arguments)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return FALLBACK_REPLY


def answer(user_message: str, *, session_id: str, user_id: str, channel: str = "web_chat") -> str:
    """Answer one customer message inside an AGENT span; model failures get a polite fallback."""
    attributes = {
        SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.AGENT.value,
        SpanAttributes.INPUT_VALUE: user_message,
        SpanAttributes.INPUT_MIME_TYPE: "text/plain",
        SpanAttributes.SESSION_ID: session_id,
        SpanAttributes.USER_ID: user_id,
        SpanAttributes.METADATA: json.dumps({"channel": channel}),
        SpanAttributes.TAG_TAGS: ["order-support"],
    }
    with (
        using_attributes(session_id=session_id, user_id=user_id),
        tracer.start_as_current_span("support_agent", attributes=attributes) as span,
    ):
        try:
            reply = converse(user_message)
        except APIError as error:
            # The instrumentor has already recorded the failed call on its LLM span.
            logger.warning("model call failed: %s", error)
            reply = FALLBACK_REPLY
        span.set_attribute(SpanAttributes.OUTPUT_VALUE, reply)
        span.set_attribute(SpanAttributes.OUTPUT_MIME_TYPE, "text/plain")
        return reply


def configure_tracing() -> None:
    """Export spans over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT) and instrument the OpenAI SDK."""
    resource = Resource.create(
        {
            "service.name": "support-agent",
            "service.version": __version__,
            "deployment.environment.name": os.environ.get("DEPLOY_ENV", "production"),
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    OpenAIInstrumentor().instrument(tracer_provider=provider)


def main() -> None:
    """Chat from the terminal: one customer message per line on stdin."""
    configure_tracing()
    session_id = f"sess_{uuid.uuid4().hex[:12]}"
    for line in sys.stdin:
        if line.strip():
            print(answer(line.strip(), session_id=session_id, user_id="local-test"))


if __name__ == "__main__":
    main()
