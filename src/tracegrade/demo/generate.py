"""Seeded generator of the demo's production traces: two releases of the support agent.

The traces are what ``demo/app/support_agent.py`` would export through OpenInference: per customer
message a root AGENT span, an LLM span that calls ``lookup_order``, the TOOL span, and an LLM span
that writes the reply. They are written as OTLP/JSON lines, one ``ExportTraceServiceRequest`` per
line, the way the OpenTelemetry collector's file exporter writes them.

Release ``2026.11.2`` carries three planted regressions that the demo config's graders must
flag: the tool output renames ``order_status`` to ``status``; about a quarter of replies say the
order cannot be found (2% before); and 15% of LLM calls land in a 4-9 s tail (3% before). Noise
that must *not* be flagged has the same true rate in both releases: long replies, LLM errors,
Spanish replies, a stray Thai phrase, lower-cased order ids in tool arguments. A fourth
regression is confined to a small slice: about 2% of conversations are served from the EU region
(environment ``production-eu``), whose new deployment in ``2026.11.2`` refuses 40% of the calls
that write the reply; the overall LLM error rate hides it, a per-environment slice does not.

Run ``python -m tracegrade.demo.generate OUT [--seed N] [--traces N]``; an ``OUT`` ending in
``.gz`` is gzipped reproducibly. The bundled data is ``generate(BUNDLED_DATA)``.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import math
import random
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

from tracegrade.demo import _texts
from tracegrade.demo._texts import Language

DEMO_DIR: Final = Path(__file__).resolve().parent
BUNDLED_DATA: Final = DEMO_DIR / "data" / "support_agent.otlp.jsonl.gz"
"""The bundled traces: ``generate(BUNDLED_DATA)`` with the default seed and size."""
APP_SOURCE: Final = DEMO_DIR / "app" / "support_agent.py"
"""The demo application's source; the traces' prompt and tool schema are read from it."""
DEMO_CONFIG: Final = DEMO_DIR / "tracegrade.yaml"
"""The demo's grader configuration."""

DEFAULT_SEED: Final = 7
DEFAULT_TRACES_PER_RELEASE: Final = 1500
TRACES_PER_REQUEST: Final = 50


@dataclass(frozen=True)
class ReleaseProfile:
    """How one release of the support agent behaves in production."""

    version: str
    start: datetime
    status_field: str
    """The key under which ``lookup_order`` returns the order's status."""
    confused_not_found_rate: float
    """Share of found orders the reply nevertheless calls not found."""
    slow_llm_rate: float
    """Share of LLM calls in the 4-9 s tail."""


RELEASES: Final = (
    ReleaseProfile("2026.11.1", datetime(2026, 11, 1, tzinfo=UTC), "order_status", 0.0, 0.03),
    ReleaseProfile("2026.11.2", datetime(2026, 11, 8, tzinfo=UTC), "status", 0.235, 0.15),
)

# Noise: the same true rate in both releases, so only chance tells them apart.
UNKNOWN_ORDER_RATE: Final = 0.02
LONG_REPLY_RATE: Final = 0.10
LLM_ERROR_RATE: Final = 0.02
SPANISH_RATE: Final = 0.02
THAI_PHRASE_RATE: Final = 0.01
MALFORMED_ARGS_RATE: Final = 0.03

# A topic the golden dataset lacks: refund requests, only in the second release's traffic. They
# are drawn from their own generator so every other draw, and the first release, stay the same.
REFUND_RATES: Final[dict[str, float]] = {"2026.11.2": 0.09}

# A regression confined to a small slice: about 2% of conversations are served from the EU region.
# In 2026.11.2 its new model deployment answers 40% of the reply-writing calls with HTTP 429: LLM
# errors go from ~2% to ~2.4% overall (hidden) and to ~20% in production-eu (found by the slice
# test). Drawn from their own generator too, so every other draw stays the same.
EU_ENVIRONMENT: Final = "production-eu"
EU_SHARE: Final = 0.02
EU_REPLY_REFUSED_RATES: Final[dict[str, float]] = {"2026.11.2": 0.4}

REQUEST_MODEL: Final = "gpt-4.1-mini"
RESPONSE_MODEL: Final = "gpt-4.1-mini-2025-04-14"
MAX_TOKENS: Final = 400
TRAFFIC_WINDOW: Final = timedelta(days=7)
LLM_MEDIAN_MS: Final = 900.0
TOOL_MEDIAN_MS: Final = 80.0

_APP_SCOPE_NAME: Final = "support_agent"
_OPENAI_SCOPE: Final[dict[str, str]] = {
    "name": "openinference.instrumentation.openai",
    "version": "0.1.66",
}
_SPAN_KIND_INTERNAL: Final = 1
_STATUS_OK: Final = 1
_STATUS_ERROR: Final = 2
_CHANNELS: Final = ("web_chat", "mobile_app", "email")
_CHANNEL_WEIGHTS: Final = (6, 3, 1)
_ALPHANUMERIC: Final = string.ascii_letters + string.digits

AttributeValue = str | int | float | bool | list[str]


def generate(
    path: Path,
    *,
    seed: int = DEFAULT_SEED,
    traces_per_release: int = DEFAULT_TRACES_PER_RELEASE,
) -> dict[str, int]:
    """Write the demo traces to ``path`` (gzipped when it ends in ``.gz``).

    The same arguments always produce byte-identical output.

    Args:
        path: the OTLP/JSON lines file to write.
        seed: seeds the one random generator everything is drawn from.
        traces_per_release: how many customer conversations each release gets.

    Returns:
        Counts keyed ``"RELEASE/KIND"`` (agent, llm, tool spans) and ``"RELEASE/traces"``.
    """
    rng = random.Random(seed)
    refunds = random.Random(f"{seed}/refunds")
    regions = random.Random(f"{seed}/regions")
    app = _read_app(APP_SOURCE)
    counts: Counter[str] = Counter()
    lines: list[bytes] = []
    for profile in RELEASES:
        traces = [
            _simulate_trace(rng, profile, app, start_ns, refunds, regions)
            for start_ns in _trace_starts(rng, profile, traces_per_release)
        ]
        for first in range(0, len(traces), TRACES_PER_REQUEST):
            batch = traces[first : first + TRACES_PER_REQUEST]
            lines.append(orjson.dumps(_export_request(profile, batch)))
        counts[f"{profile.version}/traces"] += len(traces)
        counts.update(f"{profile.version}/{span.kind}" for trace in traces for span in trace)
    _write(path, b"".join(line + b"\n" for line in lines))
    return dict(sorted(counts.items()))


# --- the application, read from its source ---------------------------------------------------


@dataclass(frozen=True)
class _App:
    """The constants of the demo app that show up in its traces."""

    system_prompt: str
    tool: dict[str, Any]
    fallback_reply: str


def _read_app(path: Path) -> _App:
    """Read the app's prompt, tool schema and fallback reply, so traces match its source."""
    literals = _module_literals(path.read_text(encoding="utf-8"))
    return _App(
        system_prompt=literals["SYSTEM_PROMPT"],
        tool=literals["LOOKUP_ORDER_TOOL"],
        fallback_reply=literals["FALLBACK_REPLY"],
    )


def _module_literals(source: str) -> dict[str, Any]:
    """Module-level ``NAME = <literal>`` assignments of ``source``, evaluated safely."""
    literals: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            try:
                literals[target.id] = ast.literal_eval(value)
            except ValueError:
                continue
    return literals


# --- one conversation -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Customer:
    """Who writes in, about which order, and how."""

    language: Language
    order_id: str
    message: str
    user_id: str
    session_id: str
    channel: str
    topic: str = "order_status"
    """``order_status``, or ``refund`` for a refund request."""


@dataclass(frozen=True)
class _CallError:
    """How a model call failed."""

    exception_type: str
    message: str
    latency_ms: float

    def status_message(self) -> str:
        """The span status message the instrumentor writes: ``Type: message``."""
        return f"{self.exception_type.rsplit('.', 1)[-1]}: {self.message}"


@dataclass
class _SpanRecord:
    """One span before OTLP encoding."""

    kind: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    start_ns: int
    end_ns: int
    attributes: dict[str, AttributeValue]
    scope: str = _APP_SCOPE_NAME
    error: _CallError | None = None
    environment: str = "production"


@dataclass
class _Trace:
    """The span ids and the clock of a trace being built."""

    rng: random.Random
    profile: ReleaseProfile
    app: _App
    customer: _Customer
    trace_id: str
    root_id: str
    clock_ns: int
    spans: list[_SpanRecord] = field(default_factory=list)
    refunds: random.Random | None = None
    """Draws for refund conversations only (see ``REFUND_RATES``)."""

    def advance(self, low_ms: float, high_ms: float) -> int:
        """Move the clock forward by a small gap and return the new time."""
        self.clock_ns += _ms(self.rng.uniform(low_ms, high_ms))
        return self.clock_ns

    def add_child(self, kind: str, name: str, start_ns: int, duration_ms: float) -> _SpanRecord:
        """Append a child of the root span lasting ``duration_ms``; the clock moves to its end."""
        self.clock_ns = start_ns + _ms(duration_ms)
        span = _SpanRecord(
            kind, name, self.trace_id, _hex(self.rng, 16), self.root_id, start_ns, self.clock_ns, {}
        )
        self.spans.append(span)
        return span


def _simulate_trace(
    rng: random.Random,
    profile: ReleaseProfile,
    app: _App,
    start_ns: int,
    refunds: random.Random | None = None,
    regions: random.Random | None = None,
) -> list[_SpanRecord]:
    """One customer conversation as spans, in the order the exporter sends them."""
    customer = _new_customer(rng)
    if refunds is not None:
        customer = _maybe_refund(refunds, profile, customer)
    trace = _Trace(rng, profile, app, customer, _hex(rng, 32), _hex(rng, 16), start_ns)
    trace.refunds = refunds
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": app.system_prompt},
        {"role": "user", "content": customer.message},
    ]
    reply = _converse(trace, messages)
    environment = "production"
    if regions is not None and regions.random() < EU_SHARE:
        reply = _serve_from_eu(regions, trace, reply)
        environment = EU_ENVIRONMENT
    trace.spans.append(_agent_span(trace, start_ns, reply))
    trace.spans[-1].environment = environment
    return trace.spans


def _serve_from_eu(regions: random.Random, trace: _Trace, reply: str) -> str:
    """Move a finished conversation to the EU region; there, in the release's share of
    conversations, the reply-writing call is refused (429) and the customer gets the fallback.

    Only ``regions`` is drawn from, so the rest of the data set does not change.
    """
    for span in trace.spans:
        span.environment = EU_ENVIRONMENT
    calls = [span for span in trace.spans if span.kind == "llm"]
    refused = EU_REPLY_REFUSED_RATES.get(trace.profile.version, 0.0)
    if len(calls) < 2 or calls[-1].error is not None or regions.random() >= refused:
        return reply
    last = calls[-1]
    last.attributes = {
        key: value for key, value in last.attributes.items()
        if not key.startswith(("output.", "llm.output_messages.", "llm.token_count."))
        and key != "llm.model_name"
    }
    message = ("Error code: 429 - Requests to the ChatCompletions_Create Operation under Azure "
               "OpenAI API version 2025-01-01-preview have exceeded token rate limit of your "
               "current AIServices S0 pricing tier. Please retry after 12 seconds.")
    last.error = _CallError("openai.RateLimitError", message, 0.0)
    last.end_ns = last.start_ns + _ms(_lognormal_ms(regions, 400.0, 0.3))
    trace.clock_ns = last.end_ns
    return trace.app.fallback_reply


def _converse(trace: _Trace, messages: list[dict[str, Any]]) -> str:
    """Model call, tool call, model call; returns the reply the customer sees."""
    rng = trace.rng
    argument_id = trace.customer.order_id
    if rng.random() < MALFORMED_ARGS_RATE:
        argument_id = argument_id.lower()
    call = {
        "id": f"call_{_token(rng, 24)}",
        "type": "function",
        "function": {"name": "lookup_order", "arguments": f'{{"order_id":"{argument_id}"}}'},
    }
    tool_request = {"role": "assistant", "content": None, "tool_calls": [call]}
    if not _llm_span(trace, messages, tool_request):
        return trace.app.fallback_reply
    order = _order(trace)
    messages.append(tool_request)
    messages.append({"role": "tool", "tool_call_id": call["id"], "content": json.dumps(order)})
    _tool_span(trace, argument_id, order)
    reply = _reply(trace, order)
    if not _llm_span(trace, messages, {"role": "assistant", "content": reply}):
        return trace.app.fallback_reply
    return reply


def _new_customer(rng: random.Random) -> _Customer:
    """A customer asking about one of their orders."""
    language: Language = "es" if rng.random() < SPANISH_RATE else "en"
    order_id = f"A{rng.randrange(10**6):06d}"
    return _Customer(
        language=language,
        order_id=order_id,
        message=_texts.customer_message(rng, language, order_id),
        user_id=f"cus_{rng.randrange(40_000):05d}",
        session_id=f"sess_{_hex(rng, 12)}",
        channel=rng.choices(_CHANNELS, weights=_CHANNEL_WEIGHTS)[0],
    )


def _maybe_refund(
    refunds: random.Random, profile: ReleaseProfile, customer: _Customer
) -> _Customer:
    """Turn an English-speaking customer into one asking for a refund, at the release's rate."""
    if refunds.random() >= REFUND_RATES.get(profile.version, 0.0) or customer.language != "en":
        return customer
    message = _texts.refund_request(refunds, customer.order_id)
    return replace(customer, message=message, topic="refund")


def _order(trace: _Trace) -> dict[str, Any]:
    """What ``lookup_order`` returns: the order, or a not-found record for an unknown id."""
    rng, status_field = trace.rng, trace.profile.status_field
    order_id = trace.customer.order_id
    if rng.random() < UNKNOWN_ORDER_RATE:
        return {"order_id": order_id, status_field: "not_found", "carrier": None, "eta": None}
    status = rng.choices(_texts.ORDER_STATUSES, weights=_texts.ORDER_STATUS_WEIGHTS)[0]
    today = datetime.fromtimestamp(trace.clock_ns / 1e9, tz=UTC).date()
    eta = today + timedelta(days=_eta_offset_days(rng, status))
    carrier = rng.choice(_texts.CARRIERS)
    return {"order_id": order_id, status_field: status, "carrier": carrier, "eta": eta.isoformat()}


def _eta_offset_days(rng: random.Random, status: str) -> int:
    """Days from today to the (estimated or actual) delivery date for an order in ``status``."""
    low, high = {
        "processing": (3, 6),
        "shipped": (1, 4),
        "out_for_delivery": (0, 0),
        "delivered": (-5, -1),
        "delayed": (3, 8),
    }[status]
    return rng.randint(low, high)


def _reply(trace: _Trace, order: dict[str, Any]) -> str:
    """The reply the model writes from the tool result, with this release's quirks."""
    rng, customer = trace.rng, trace.customer
    status = order[trace.profile.status_field]
    says_not_found = status == "not_found" or rng.random() < trace.profile.confused_not_found_rate
    if says_not_found:
        reply = _texts.not_found_reply(rng, customer.language, customer.order_id)
    else:
        eta = date.fromisoformat(order["eta"])
        reply = _texts.found_reply(
            rng, customer.language, customer.order_id, status, order["carrier"], eta
        )
        if customer.topic == "refund" and trace.refunds is not None:
            reply = _texts.refund_reply(trace.refunds, customer.order_id)
    if rng.random() < LONG_REPLY_RATE:
        reply = _texts.lengthen(rng, customer.language, reply)
    if rng.random() < THAI_PHRASE_RATE:
        reply = _texts.add_thai_phrase(rng, reply)
    return reply


# --- spans ------------------------------------------------------------------------------------


def _agent_span(trace: _Trace, start_ns: int, reply: str) -> _SpanRecord:
    """The root AGENT span, which ends just after its last child."""
    customer = trace.customer
    attributes: dict[str, AttributeValue] = {
        "openinference.span.kind": "AGENT",
        "input.value": customer.message,
        "input.mime_type": "text/plain",
        "session.id": customer.session_id,
        "user.id": customer.user_id,
        "metadata": json.dumps({"channel": customer.channel}),
        "tag.tags": ["order-support"],
        "output.value": reply,
        "output.mime_type": "text/plain",
    }
    end_ns = trace.advance(0.3, 2.0)
    return _SpanRecord(
        "agent", "support_agent", trace.trace_id, trace.root_id, None, start_ns, end_ns, attributes
    )


def _tool_span(trace: _Trace, argument_id: str, order: dict[str, Any]) -> None:
    """The TOOL span of ``lookup_order``, as the app records it."""
    start_ns = trace.advance(0.2, 1.5)
    span = trace.add_child(
        "tool", "lookup_order", start_ns, _lognormal_ms(trace.rng, TOOL_MEDIAN_MS, 0.3)
    )
    span.attributes = {
        "openinference.span.kind": "TOOL",
        "tool.name": "lookup_order",
        "input.value": json.dumps({"order_id": argument_id}),
        "input.mime_type": "application/json",
        "output.value": json.dumps(order),
        "output.mime_type": "application/json",
    }


def _llm_span(trace: _Trace, messages: list[dict[str, Any]], answer: dict[str, Any]) -> bool:
    """Record one ``chat.completions.create`` call; returns whether it succeeded."""
    rng = trace.rng
    start_ns = trace.advance(0.5, 3.0)
    attributes = _llm_request_attributes(trace, messages)
    error = _llm_error(rng)
    if error is None:
        latency_ms = _llm_latency_ms(rng, trace.profile.slow_llm_rate)
        attributes |= _llm_response_attributes(rng, messages, answer, start_ns // 10**9)
    else:
        latency_ms = error.latency_ms
    span = trace.add_child("llm", "ChatCompletion", start_ns, latency_ms)
    span.attributes = attributes
    span.scope = _OPENAI_SCOPE["name"]
    span.error = error
    return error is None


def _llm_request_attributes(
    trace: _Trace, messages: list[dict[str, Any]]
) -> dict[str, AttributeValue]:
    """What the OpenInference instrumentor records before the call: request and context."""
    tool = trace.app.tool
    request = {
        "messages": messages,
        "model": REQUEST_MODEL,
        "tools": [tool],
        "max_tokens": MAX_TOKENS,
    }
    attributes: dict[str, AttributeValue] = {
        "openinference.span.kind": "LLM",
        "input.value": json.dumps(request, ensure_ascii=False),
        "input.mime_type": "application/json",
        "llm.system": "openai",
        "llm.provider": "openai",
        "llm.tools.0.tool.json_schema": json.dumps(tool),
        "llm.invocation_parameters": json.dumps({"model": REQUEST_MODEL, "max_tokens": MAX_TOKENS}),
    }
    for index, message in enumerate(messages):
        attributes |= _message_attributes(f"llm.input_messages.{index}.message", message)
    attributes["session.id"] = trace.customer.session_id
    attributes["user.id"] = trace.customer.user_id
    return attributes


def _llm_response_attributes(
    rng: random.Random, messages: list[dict[str, Any]], answer: dict[str, Any], created: int
) -> dict[str, AttributeValue]:
    """What the instrumentor records from a successful response."""
    prompt_tokens = _approx_tokens(json.dumps(messages)) + 120
    calls = answer.get("tool_calls", [])
    written = answer.get("content") or "".join(call["function"]["arguments"] for call in calls)
    completion_tokens = _approx_tokens(written) + 7 * len(calls)
    response = {
        "id": f"chatcmpl-{_token(rng, 29)}",
        "choices": [
            {
                "finish_reason": "tool_calls" if calls else "stop",
                "index": 0,
                "message": {**answer, "refusal": None},
            }
        ],
        "created": created,
        "model": RESPONSE_MODEL,
        "object": "chat.completion",
        "usage": {
            "completion_tokens": completion_tokens,
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return {
        "output.value": orjson.dumps(response).decode(),
        "output.mime_type": "application/json",
        "llm.model_name": RESPONSE_MODEL,
        **_message_attributes("llm.output_messages.0.message", answer),
        "llm.token_count.prompt": prompt_tokens,
        "llm.token_count.completion": completion_tokens,
        "llm.token_count.total": prompt_tokens + completion_tokens,
    }


def _message_attributes(prefix: str, message: dict[str, Any]) -> dict[str, AttributeValue]:
    """OpenInference's flattened attributes for one chat message."""
    attributes: dict[str, AttributeValue] = {f"{prefix}.role": message["role"]}
    if message.get("content") is not None:
        attributes[f"{prefix}.content"] = message["content"]
    if "tool_call_id" in message:
        attributes[f"{prefix}.tool_call_id"] = message["tool_call_id"]
    for index, call in enumerate(message.get("tool_calls", [])):
        call_prefix = f"{prefix}.tool_calls.{index}.tool_call"
        attributes[f"{call_prefix}.id"] = call["id"]
        attributes[f"{call_prefix}.function.name"] = call["function"]["name"]
        attributes[f"{call_prefix}.function.arguments"] = call["function"]["arguments"]
    return attributes


def _llm_error(rng: random.Random) -> _CallError | None:
    """How a model call fails, or None when it succeeds."""
    if rng.random() >= LLM_ERROR_RATE:
        return None
    if rng.random() < 0.7:
        used, requested = rng.randrange(1_990_000, 2_000_000), rng.randrange(900, 3_000)
        message = (
            "Error code: 429 - Rate limit reached for gpt-4.1-mini in organization org-northwind"
            f" on tokens per min (TPM): Limit 2000000, Used {used}, Requested {requested}."
            f" Please try again in {rng.randrange(20, 400)}ms."
        )
        return _CallError("openai.RateLimitError", message, _lognormal_ms(rng, 600.0, 0.4))
    message = "Error code: 504 - upstream timeout"
    return _CallError("openai.InternalServerError", message, rng.uniform(8_000.0, 15_000.0))


def _llm_latency_ms(rng: random.Random, slow_rate: float) -> float:
    """A successful call's latency: lognormal around the median, or a 4-9 s slow tail."""
    if rng.random() < slow_rate:
        return rng.uniform(4_000.0, 9_000.0)
    return _lognormal_ms(rng, LLM_MEDIAN_MS, 0.35)


# --- OTLP/JSON encoding -----------------------------------------------------------------------


def _export_request(profile: ReleaseProfile, traces: Sequence[list[_SpanRecord]]) -> Any:
    """One ``ExportTraceServiceRequest`` in OTLP/JSON for a batch of one release's traces:
    one resource per environment the batch's spans ran in."""
    spans = [span for trace in traces for span in trace]
    environments = sorted({span.environment for span in spans}, key=lambda e: e != "production")
    return {
        "resourceSpans": [
            _resource_spans(profile, env, [s for s in spans if s.environment == env])
            for env in environments
        ]
    }


def _resource_spans(profile: ReleaseProfile, environment: str, spans: list[_SpanRecord]) -> Any:
    """The spans of one environment under their resource and instrumentation scopes."""
    resource = {
        "service.name": "support-agent",
        "service.version": profile.version,
        "deployment.environment.name": environment,
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": "1.38.0",
    }
    app_scope = {"name": _APP_SCOPE_NAME, "version": profile.version}
    scope_spans = [
        {"scope": scope, "spans": [_otlp_span(s) for s in spans if s.scope == scope["name"]]}
        for scope in (app_scope, _OPENAI_SCOPE)
    ]
    return {"resource": {"attributes": _otlp_attributes(resource)}, "scopeSpans": scope_spans}


def _otlp_span(span: _SpanRecord) -> dict[str, Any]:
    """One span in OTLP/JSON: hex ids, nanosecond strings, integer enums."""
    encoded: dict[str, Any] = {"traceId": span.trace_id, "spanId": span.span_id}
    if span.parent_id is not None:
        encoded["parentSpanId"] = span.parent_id
    encoded |= {
        "name": span.name,
        "kind": _SPAN_KIND_INTERNAL,
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns),
        "attributes": _otlp_attributes(span.attributes),
        "status": {},
    }
    if span.scope != _APP_SCOPE_NAME:
        # The instrumentor sets OK explicitly; the app's own spans leave the status unset.
        encoded["status"] = {"code": _STATUS_OK}
    if span.error is not None:
        encoded |= _otlp_error(span.error, span.end_ns)
    return encoded


def _otlp_error(error: _CallError, at_ns: int) -> dict[str, Any]:
    """The status and exception event of a failed span."""
    event_attributes: dict[str, AttributeValue] = {
        "exception.type": error.exception_type,
        "exception.message": error.message,
        "exception.escaped": "False",
    }
    return {
        "events": [
            {
                "timeUnixNano": str(at_ns),
                "name": "exception",
                "attributes": _otlp_attributes(event_attributes),
            }
        ],
        "status": {"code": _STATUS_ERROR, "message": error.status_message()},
    }


def _otlp_attributes(attributes: Mapping[str, AttributeValue]) -> list[dict[str, Any]]:
    """Attributes as OTLP ``KeyValue`` records."""
    return [{"key": key, "value": _otlp_value(value)} for key, value in attributes.items()]


def _otlp_value(value: AttributeValue) -> dict[str, Any]:
    """One OTLP ``AnyValue``; int64 goes as a decimal string, as proto3 JSON requires."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    return {"arrayValue": {"values": [_otlp_value(item) for item in value]}}


# --- small helpers ----------------------------------------------------------------------------


def _trace_starts(rng: random.Random, profile: ReleaseProfile, count: int) -> list[int]:
    """Start times (ns since the epoch) spread over the week after the release's deploy."""
    base_ns = int(profile.start.timestamp()) * 10**9
    window_s = TRAFFIC_WINDOW.total_seconds() - 60.0
    return sorted(base_ns + int(rng.uniform(0.0, window_s) * 1e9) for _ in range(count))


def _lognormal_ms(rng: random.Random, median_ms: float, sigma: float) -> float:
    """A lognormal latency with the given median."""
    return rng.lognormvariate(math.log(median_ms), sigma)


def _ms(milliseconds: float) -> int:
    """Milliseconds as whole nanoseconds."""
    return round(milliseconds * 1e6)


def _hex(rng: random.Random, digits: int) -> str:
    """A random lower-case hex id of ``digits`` digits."""
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def _token(rng: random.Random, length: int) -> str:
    """A random alphanumeric token, like the ids in OpenAI responses."""
    return "".join(rng.choices(_ALPHANUMERIC, k=length))


def _approx_tokens(text: str) -> int:
    """A rough token count: about four characters a token."""
    return max(1, len(text) // 4)


def _write(path: Path, content: bytes) -> None:
    """Write ``content``, gzipped without a name or timestamp when ``path`` ends in ``.gz``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix != ".gz":
        path.write_bytes(content)
        return
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
    ):
        gz.write(content)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m tracegrade.demo.generate OUT [--seed N] [--traces N]``."""
    parser = argparse.ArgumentParser(
        prog="python -m tracegrade.demo.generate",
        description="Write the demo's seeded support-agent traces as OTLP/JSON lines.",
    )
    parser.add_argument("out", type=Path, help="file to write; gzipped if it ends in .gz")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--traces", type=int, default=DEFAULT_TRACES_PER_RELEASE, help="traces per release"
    )
    args = parser.parse_args(argv)
    counts = generate(args.out, seed=args.seed, traces_per_release=args.traces)
    for key, count in counts.items():
        print(f"{key}\t{count}")


if __name__ == "__main__":
    main()
