"""Map one Langfuse observation to a span (compiled: a pull spends most of its CPU here).

This module holds only the per-observation mapping, fully typed, so that mypyc can compile it
(``setup.py``); the reader, its pydantic config and its HTTP calls stay in
:mod:`tracegrade.sources.langfuse`, which re-exports :func:`observation_to_span`.
:func:`parse_timestamp` is every remote source's (Braintrust's too, through
:mod:`tracegrade.sources._remote`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tracegrade.spans import JSONValue, Span, SpanKind, Status, StatusCode, parse_json_string

OBSERVATION_KINDS: dict[str, SpanKind] = {
    "GENERATION": SpanKind.LLM,
    "TOOL": SpanKind.TOOL,
    "RETRIEVER": SpanKind.RETRIEVER,
    "AGENT": SpanKind.AGENT,
    "CHAIN": SpanKind.CHAIN,
    "EMBEDDING": SpanKind.EMBEDDING,
    "GUARDRAIL": SpanKind.GUARDRAIL,
    "EVALUATOR": SpanKind.OTHER,
    "SPAN": SpanKind.OTHER,
    "EVENT": SpanKind.OTHER,
}
"""Langfuse observation types to span kinds (EVALUATOR has no kind of its own)."""

_ATTRIBUTE_FIELDS: tuple[tuple[str, str], ...] = (
    ("type", "langfuse.type"),
    ("level", "langfuse.level"),
    ("statusMessage", "langfuse.status_message"),
    ("version", "langfuse.version"),
    ("projectId", "langfuse.project_id"),
    ("traceName", "langfuse.trace_name"),
    ("completionStartTime", "langfuse.completion_start_time"),
    ("createdAt", "langfuse.created_at"),
    ("updatedAt", "langfuse.updated_at"),
    ("modelParameters", "langfuse.model_parameters"),
    ("internalModelId", "langfuse.internal_model_id"),
    ("usageDetails", "langfuse.usage_details"),
    ("costDetails", "langfuse.cost_details"),
    ("promptId", "langfuse.prompt_id"),
    ("promptName", "langfuse.prompt_name"),
    ("promptVersion", "langfuse.prompt_version"),
    ("timeToFirstToken", "langfuse.time_to_first_token"),
    ("isRootObservation", "langfuse.is_root"),
)
"""Observation fields kept as span attributes, under these names, when they hold a value."""

_OK = Status()


def observation_to_span(
    observation: dict[str, Any], source: str, trace: dict[str, Any] | None = None
) -> Span:
    """Map one Langfuse observation (v2 or legacy shape) to a span.

    Args:
        observation: The observation as the API returned it.
        source: The tracegrade source name the span is stored under.
        trace: The observation's trace (legacy API only: release, tags, user, session).

    Returns:
        The span: ``GENERATION`` becomes ``llm``; ``level: ERROR`` with its ``statusMessage``
        an error status; ``input``/``output`` strings holding JSON are parsed.

    Raises:
        ValueError: the observation lacks an id or a start time, or a field is malformed.
        pydantic.ValidationError: the mapped values do not make a valid span.
    """
    get = observation.get
    observation_id = get("id")
    if not isinstance(observation_id, str) or not observation_id:
        raise ValueError("observation has no id")
    if trace is None:
        trace = {}
    kind = OBSERVATION_KINDS.get(str(get("type") or "").upper(), SpanKind.OTHER)
    output = parse_json_string(get("output"))
    input_tokens, output_tokens, total_tokens = _usage(observation)
    attributes = _attributes(observation, trace)
    if kind is SpanKind.LLM:
        calls = _tool_calls(output)
        if calls is not None:
            attributes["tool_calls"] = calls
    end = get("endTime")
    return Span(
        source=source,
        span_id=observation_id,
        trace_id=get("traceId") or observation_id,
        parent_id=get("parentObservationId") or None,
        name=get("name") or "",
        kind=kind,
        start_time=parse_timestamp(get("startTime"), "startTime"),
        end_time=None if end is None or end == "" else parse_timestamp(end, "endTime"),
        status=_status(observation),
        input=parse_json_string(get("input")),
        output=output,
        model=get("providedModelName") or get("model") or None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total_tokens,
        cost=_cost(observation),
        release=get("release") or trace.get("release") or get("version") or None,
        environment=get("environment") or trace.get("environment") or None,
        session_id=get("sessionId") or trace.get("sessionId") or None,
        user_id=get("userId") or trace.get("userId") or None,
        tags=[str(tag) for tag in (get("tags") or trace.get("tags") or [])],
        attributes=attributes,
    )


def parse_timestamp(value: Any, field_name: str) -> datetime:
    """An ISO 8601 timestamp from an API as an aware UTC datetime.

    Raises:
        ValueError: the value is missing or not a timestamp.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field_name} {value!r} is not a timestamp")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"{field_name} {value!r} is not a timestamp ({error})") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def _status(observation: dict[str, Any]) -> Status:
    if observation.get("level") == "ERROR":
        return Status(code=StatusCode.ERROR, message=observation.get("statusMessage") or None)
    return _OK


def usage_from_details(details: Any) -> tuple[int | None, int | None, int | None]:
    """(input, output, total) tokens of Langfuse ``usageDetails`` (its keys or OpenAI's)."""
    if not isinstance(details, dict) or not details:
        return None, None, None
    return (_count(details, "input", "prompt_tokens", "input_tokens"),
            _count(details, "output", "completion_tokens", "output_tokens"),
            _count(details, "total", "total_tokens"))


def tool_calls_of(output: Any) -> list[dict[str, JSONValue]] | None:
    """The tool calls in an LLM's output messages (``[]``: it called none), if it has messages."""
    return _tool_calls(output)


def _usage(observation: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    details = observation.get("usageDetails")
    if isinstance(details, dict) and details:
        return usage_from_details(details)
    usage = observation.get("usage")
    if isinstance(usage, dict):
        return _count(usage, "input"), _count(usage, "output"), _count(usage, "total")
    return None, None, None


def _count(mapping: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value: Any = mapping.get(key)
        if _non_negative(value):
            return int(value)
    return None


def _non_negative(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _cost(observation: dict[str, Any]) -> float | None:
    value: Any = observation.get("totalCost")
    if _non_negative(value):
        return float(value)
    details = observation.get("costDetails")
    if isinstance(details, dict):
        value = details.get("total")
        if _non_negative(value):
            return float(value)
    value = observation.get("calculatedTotalCost")
    if _non_negative(value):
        return float(value)
    return None


def _has_value(value: Any) -> bool:
    """Not null, nor an empty string, object or list."""
    if value is None:
        return False
    if isinstance(value, str | dict | list):
        return len(value) > 0
    return True


def _attributes(observation: dict[str, Any], trace: dict[str, Any]) -> dict[str, JSONValue]:
    attributes: dict[str, JSONValue] = {}
    for field, key in _ATTRIBUTE_FIELDS:
        value = observation.get(field)
        if _has_value(value):
            attributes[key] = value
    metadata = parse_json_string(observation.get("metadata"))
    if metadata is not None and not (isinstance(metadata, str | dict) and not metadata):
        attributes["metadata"] = metadata
    if trace.get("name") and "langfuse.trace_name" not in attributes:
        attributes["langfuse.trace_name"] = trace["name"]
    return attributes


def _tool_calls(output: Any) -> list[dict[str, JSONValue]] | None:
    """The tool calls in an LLM's output messages (``[]``: it called none), if it has messages."""
    candidates: list[Any] = output if isinstance(output, list) else [output]
    messages = [m for m in candidates if isinstance(m, dict) and "role" in m]
    if not messages:
        return None
    calls: list[dict[str, JSONValue]] = []
    for message in messages:
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict):
                inner = call.get("function")
                function: dict[str, Any] = inner if isinstance(inner, dict) else call
                calls.append({"id": call.get("id"), "name": function.get("name"),
                              "arguments": parse_json_string(function.get("arguments"))})
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    calls.append({"id": block.get("id"), "name": block.get("name"),
                                  "arguments": block.get("input")})
    return calls
