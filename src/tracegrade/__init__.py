"""tracegrade: evaluate LLM applications on their real production traces."""

from tracegrade._compiled import install_source_finder

install_source_finder()  # before any compiled module is imported

from tracegrade.graders._base import (  # noqa: E402
    AppliesTo,
    Grader,
    GraderConfig,
    Outcome,
    Result,
    register,
)
from tracegrade.spans import Span, SpanKind, Status, StatusCode  # noqa: E402

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
