"""tracegrade: evaluate LLM applications on their real production traces."""

from tracegrade.graders._base import AppliesTo, Grader, GraderConfig, Outcome, Result, register
from tracegrade.spans import Span, SpanKind, Status, StatusCode

__all__ = [
    "AppliesTo",
    "Grader",
    "GraderConfig",
    "Outcome",
    "Result",
    "Span",
    "SpanKind",
    "Status",
    "StatusCode",
    "register",
]

__version__ = "0.1.0"
