"""Building spans and graders for the grader tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tracegrade.graders import GraderConfig, Result, build_grader
from tracegrade.graders._base import Grader
from tracegrade.graders._targets import EMPTY_CONTEXT, TraceContext
from tracegrade.spans import Span

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_span(**fields: Any) -> Span:
    """A span with the required fields filled in; ``latency_ms`` sets ``end_time``."""
    latency_ms = fields.pop("latency_ms", None)
    defaults: dict[str, Any] = {
        "source": "test",
        "span_id": "s1",
        "trace_id": "t1",
        "start_time": START,
    }
    if latency_ms is not None:
        defaults["end_time"] = START + timedelta(milliseconds=latency_ms)
    return Span(**{**defaults, **fields})


def make_grader(grader_type: str, **settings: Any) -> Grader:
    """A grader of ``grader_type`` built through the factory; ``settings`` are config keys."""
    settings.setdefault("name", f"g_{grader_type}")
    return build_grader(GraderConfig(type=grader_type, **settings))


def grade(
    grader_type: str, span: Span, context: TraceContext = EMPTY_CONTEXT, **settings: Any
) -> Result:
    """Build a grader and grade one span with it."""
    return make_grader(grader_type, **settings).grade(span, context)


def context_of(*spans: Span) -> TraceContext:
    """A trace context holding ``spans``."""
    return TraceContext(lambda: list(spans))
