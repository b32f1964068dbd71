"""Grade functions for the ``python`` grader tests, imported by "module:function"."""

from __future__ import annotations

import math
import sys
import time
from decimal import Decimal
from typing import Any

from tracegrade.graders import Result
from tracegrade.graders._targets import TraceContext, text_of
from tracegrade.spans import Span

CALLS: list[str] = []


def polite(span: Span) -> bool:
    """Pass when the reply says please."""
    return "please" in text_of(span.output).lower()


def with_reason(span: Span) -> tuple[str, str]:
    words = len(text_of(span.output).split())
    return ("pass" if words < 5 else "fail", f"{words} words")


def as_result(span: Span) -> Result:
    return Result.passed("custom", score=0.75)


def trace_size(span: Span, context: TraceContext) -> tuple[bool, str]:
    count = len(context.spans())
    return count >= 2, f"trace has {count} spans"


def returns_outcome_string(span: Span) -> str:
    return "SKIP"


def returns_number(span: Span) -> int:
    return 3


def returns_bad_tuple(span: Span) -> tuple[str, int]:
    return ("pass", 5)


def raises(span: Span) -> bool:
    raise KeyError("order_status")


def needs_three(span: Span, context: TraceContext, extra: Any) -> bool:
    return True


def takes_nothing() -> bool:
    return True


class Checks:
    @staticmethod
    def has_model(span: Span) -> bool:
        return span.model is not None


NOT_CALLABLE = 42


def long_multiline_reason(span: Span) -> tuple[str, str]:
    return "fail", "first line\n\tsecond line " + "x" * 500


def exits(span: Span) -> bool:
    sys.exit(3)


def decimal_details(span: Span) -> Result:
    return Result(outcome="pass", reason="ok", details={"amount": Decimal("1.5")})


def infinite_score(span: Span) -> Result:
    return Result(outcome="fail", reason="scored", score=math.inf)


def sleeps(span: Span) -> bool:
    time.sleep(30)
    return True


def swallows_everything(span: Span) -> bool:
    try:
        time.sleep(30)
    except Exception:
        return True
    return True
