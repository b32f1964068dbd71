"""Built-in graders over a span's own measurements: latency, cost, tokens and status.

These read span fields directly; ``target`` and ``path`` do not apply to them.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tracegrade.graders._base import Result, register
from tracegrade.graders._common import CheckGrader, ParamsGrader
from tracegrade.spans import Span, StatusCode

if TYPE_CHECKING:
    from tracegrade.graders._targets import TraceContext


class MaxLatencyParams(BaseModel):
    """Parameters of ``max_latency_ms``."""

    model_config = ConfigDict(extra="forbid", title="max_latency_ms params")

    max_ms: float = Field(gt=0, description="Longest allowed span duration in milliseconds.")


@register
class MaxLatency(ParamsGrader[MaxLatencyParams]):
    """Pass when the span took at most ``max_ms``; a span without ``end_time`` is ``error``."""

    type_name = "max_latency_ms"
    reads = "the span's latency"
    Params = MaxLatencyParams

    def check(self, span: Span, context: TraceContext) -> Result:
        """Compare ``end_time - start_time`` with the limit."""
        latency = span.latency_ms
        if latency is None:
            return Result.errored("span has no end_time, so no latency")
        if latency < 0:
            return Result.errored(f"span ends {_fixed(-latency, 0)} ms before it starts")
        limit = self.params.max_ms
        shown, bound = _compared(latency, limit, lambda ms, places: _fixed(ms, places - 1))
        return Result.check(
            latency <= limit,
            passed=f"latency {shown} ms <= {bound} ms",
            failed=f"latency {shown} ms > {bound} ms",
        )


class MaxCostParams(BaseModel):
    """Parameters of ``max_cost``."""

    model_config = ConfigDict(extra="forbid", title="max_cost params")

    max_usd: float = Field(ge=0, description="Highest allowed span cost in US dollars.")


@register
class MaxCost(ParamsGrader[MaxCostParams]):
    """Pass when the span's cost is at most ``max_usd``; a span without a cost is skipped."""

    type_name = "max_cost"
    reads = "the span's cost"
    Params = MaxCostParams

    def check(self, span: Span, context: TraceContext) -> Result:
        """Compare ``span.cost`` with the limit; a negative cost is an ``error``."""
        cost = span.cost
        if cost is None:
            return Result.skipped("span has no cost")
        if cost < 0:
            return Result.errored(f"span cost is negative: -${_significant(-cost, 6)}")
        limit = self.params.max_usd
        shown, bound = _compared(cost, limit, lambda usd, places: _significant(usd, places + 5))
        return Result.check(
            cost <= limit,
            passed=f"cost ${shown} <= ${bound}",
            failed=f"cost ${shown} > ${bound}",
        )


class MaxTokensParams(BaseModel):
    """Parameters of ``max_tokens``; at least one limit is required."""

    model_config = ConfigDict(extra="forbid", title="max_tokens params")

    max_total: int | None = Field(default=None, ge=0, description="Most total tokens allowed.")
    max_input: int | None = Field(default=None, ge=0, description="Most input tokens allowed.")
    max_output: int | None = Field(default=None, ge=0, description="Most output tokens allowed.")

    @model_validator(mode="after")
    def _some_limit(self) -> Self:
        if self.max_total is None and self.max_input is None and self.max_output is None:
            raise ValueError("give at least one of max_total, max_input, max_output")
        return self


@register
class MaxTokens(ParamsGrader[MaxTokensParams]):
    """Pass when each configured token count is within its limit.

    Fails as soon as one recorded count is over; otherwise a configured count the span does not
    record makes the verdict ``skip``.
    """

    type_name = "max_tokens"
    reads = "the span's token counts"
    Params = MaxTokensParams

    def check(self, span: Span, context: TraceContext) -> Result:
        """Compare each recorded count with its limit."""
        limits = (
            ("total", span.total_tokens, self.params.max_total),
            ("input", span.input_tokens, self.params.max_input),
            ("output", span.output_tokens, self.params.max_output),
        )
        checked = [(kind, count, limit) for kind, count, limit in limits if limit is not None]
        negative = [f"{kind} tokens {count}" for kind, count, _ in checked
                    if count is not None and count < 0]
        if negative:
            return Result.errored(f"span records a negative count: {', '.join(negative)}")
        over = [
            f"{kind} tokens {count} > {limit}"
            for kind, count, limit in checked
            if count is not None and count > limit
        ]
        if over:
            return Result.failed("; ".join(over))
        unrecorded = [kind for kind, count, _ in checked if count is None]
        if unrecorded:
            return Result.skipped(f"span has no {' or '.join(unrecorded)} token count")
        return Result.passed(
            "; ".join(f"{kind} tokens {count} <= {limit}" for kind, count, limit in checked)
        )


@register
class StatusOk(CheckGrader):
    """Pass when the span's status is ok; an error status fails with its message."""

    type_name = "status_ok"
    reads = "the span's status"

    def check(self, span: Span, context: TraceContext) -> Result:
        """Read ``span.status``."""
        if span.status.code == StatusCode.OK:
            return Result.passed("status ok")
        message = " ".join((span.status.message or "").split())[:200]
        return Result.failed(f"status error: {message}" if message else "status error (no message)")


def _compared(value: float, limit: float, shown: Callable[[float, int], str]) -> tuple[str, str]:
    """``value`` and ``limit`` as a reason prints them, ``value`` with just enough precision
    (``shown(value, 1)``, then 2…) that the printed numbers compare as the real ones do:
    3000.4 ms over a 3000 ms limit reads "3,000.4 > 3,000", never "3,000 > 3,000"."""
    bound = _significant(limit, 15)
    exact = Decimal(bound.replace(",", ""))
    for places in range(1, 20):
        text = shown(value, places)
        printed = Decimal(text.replace(",", ""))
        if (printed <= exact) == (value <= limit):
            return text, bound
    return _significant(value, 17), bound


def _fixed(value: float, places: int) -> str:
    """``value`` with ``places`` decimals and thousands separators: ``1,500,000``."""
    return f"{value:,.{places}f}"


def _significant(value: float, digits: int) -> str:
    """``value`` to ``digits`` significant digits, without exponent or trailing zeros."""
    return format(Decimal(f"{value:.{digits}g}"), ",f")
