"""What a rubric template sees: ``span`` and ``trace`` as plain values (the sandbox allows no more).

Every key is always present (``None`` or empty when the span has no such thing), so a rubric's
typo fails when the grader is built, not on the first span that lacks a field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tracegrade.graders._targets import text_of
from tracegrade.spans import JSONValue, Span, SpanKind

MAX_STRING_CHARS = 20_000
"""Longer strings in a span are cut, so one huge tool result cannot blow up a judge's bill."""

SpanView = dict[str, Any]
TraceView = dict[str, Any]


def span_view(span: Span) -> SpanView:
    """The ``span`` variable of a rubric."""
    messages = chat_messages(span.input)
    system = "\n\n".join(m["content"] for m in messages if m["role"] in ("system", "developer"))
    users = [m["content"] for m in messages if m["role"] == "user"]
    user_message = span.input if isinstance(span.input, str) else (users[-1] if users else "")
    return {
        "span_id": span.span_id, "trace_id": span.trace_id, "parent_id": span.parent_id,
        "name": span.name, "kind": span.kind.value, "status": span.status.code.value,
        "status_message": span.status.message, "model": span.model, "release": span.release,
        "start_time": span.start_time.isoformat(), "latency_ms": span.latency_ms,
        "input": clip(span.input), "output": clip(span.output),
        "input_text": _text(span.input), "output_text": _text(span.output),
        "messages": messages, "system_prompt": clip(system),
        "user_message": clip(user_message), "attributes": clip(span.attributes),
    }


def trace_view(span: Span, trace: Sequence[Span], views: dict[str, SpanView] | None = None
               ) -> TraceView:
    """The ``trace`` variable of a rubric: the whole trace around ``span``.

    Args:
        span: the span being graded (for a trace-scoped grader, the trace's root).
        trace: every stored span of the trace, in start order.
        views: span views already built for this trace (shared between its spans).
    """
    views = views if views is not None else {}
    for member in trace:
        if member.span_id not in views:
            views[member.span_id] = span_view(member)
    ordered = [views[member.span_id] for member in trace]
    root = root_of(trace) or span
    tools = [views[m.span_id] for m in trace if m.kind == SpanKind.TOOL]
    llms = [views[m.span_id] for m in trace if m.kind == SpanKind.LLM]
    root_view = views.get(root.span_id) or span_view(root)
    return {
        "spans": ordered,
        "root": root_view,
        "parent": views.get(span.parent_id) if span.parent_id else None,
        "siblings": [views[m.span_id] for m in trace
                     if m.parent_id == span.parent_id and m.span_id != span.span_id],
        "children": [views[m.span_id] for m in trace if m.parent_id == span.span_id],
        "tool_calls": [{"name": v["name"], "input": v["input"], "output": v["output"],
                        "status": v["status"]} for v in tools],
        "tool_results": [v["output"] for v in tools],
        "retrievals": [views[m.span_id]["output"] for m in trace
                       if m.kind == SpanKind.RETRIEVER],
        "llm_calls": llms,
        "system_prompt": next((v["system_prompt"] for v in llms if v["system_prompt"]), ""),
        "user_message": root_view["user_message"] or next(
            (v["user_message"] for v in llms if v["user_message"]), ""),
        "final_output": root_view["output_text"],
    }


def root_of(trace: Sequence[Span]) -> Span | None:
    """The trace's root: its earliest span whose parent is not in the trace."""
    ids = {span.span_id for span in trace}
    roots = [span for span in trace if span.parent_id is None or span.parent_id not in ids]
    return min(roots, key=lambda s: (s.start_time, s.span_id)) if roots else None


def chat_messages(value: JSONValue) -> list[dict[str, str]]:
    """The chat messages in a span's input (``{"messages": [...]}`` or a list of messages)."""
    messages = value.get("messages") if isinstance(value, dict) else value
    if not isinstance(messages, list):
        return []
    found = []
    for message in messages:
        if isinstance(message, dict) and isinstance(message.get("role"), str):
            content = message.get("content")
            text = _text(content) if content is not None else ""
            found.append({"role": message["role"], "content": text})
    return found


def clip(value: JSONValue) -> JSONValue:
    """``value`` with every string cut to :data:`MAX_STRING_CHARS`."""
    if isinstance(value, str):
        if len(value) <= MAX_STRING_CHARS:
            return value
        return value[:MAX_STRING_CHARS] + f"…[{len(value) - MAX_STRING_CHARS} more characters]"
    if isinstance(value, dict):
        return {key: clip(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clip(item) for item in value]
    return value


def _text(value: JSONValue) -> str:
    text = text_of(value) if value is not None else ""
    return str(clip(text))
