"""max_latency_ms, max_cost, max_tokens and status_ok."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from tests.graders.helpers import START, grade, make_grader, make_span
from tracegrade.graders import Outcome
from tracegrade.spans import Status, StatusCode

# max_latency_ms


def test_max_latency_passes_at_the_limit() -> None:
    result = grade("max_latency_ms", make_span(latency_ms=3000), max_ms=3000)
    assert (result.outcome, result.reason) == (Outcome.PASS, "latency 3,000 ms <= 3,000 ms")


def test_max_latency_fails_over_the_limit() -> None:
    result = grade("max_latency_ms", make_span(latency_ms=5400), max_ms=3000)
    assert (result.outcome, result.reason) == (Outcome.FAIL, "latency 5,400 ms > 3,000 ms")


def test_max_latency_without_end_time_is_error() -> None:
    result = grade("max_latency_ms", make_span(), max_ms=3000)
    assert (result.outcome, result.reason) == (Outcome.ERROR, "span has no end_time, so no latency")


def test_max_latency_with_end_before_start_is_error() -> None:
    span = make_span(end_time=START - timedelta(milliseconds=20))
    result = grade("max_latency_ms", span, max_ms=3000)
    assert (result.outcome, result.reason) == (Outcome.ERROR, "span ends 20 ms before it starts")


def test_max_latency_needs_positive_limit() -> None:
    with pytest.raises(ValidationError, match="max_ms"):
        make_grader("max_latency_ms", max_ms=0)


# max_cost


def test_max_cost_pass_and_fail() -> None:
    cheap = grade("max_cost", make_span(cost=0.0042), max_usd=0.01)
    assert (cheap.outcome, cheap.reason) == (Outcome.PASS, "cost $0.0042 <= $0.01")
    dear = grade("max_cost", make_span(cost=0.0123), max_usd=0.01)
    assert (dear.outcome, dear.reason) == (Outcome.FAIL, "cost $0.0123 > $0.01")


def test_max_cost_without_cost_is_skipped() -> None:
    result = grade("max_cost", make_span(), max_usd=0.01)
    assert (result.outcome, result.reason) == (Outcome.SKIP, "span has no cost")


def test_max_cost_rejects_negative_limit() -> None:
    with pytest.raises(ValidationError, match="max_usd"):
        make_grader("max_cost", max_usd=-1)


# max_tokens


def test_max_tokens_passes_every_limit() -> None:
    span = make_span(input_tokens=900, output_tokens=100)
    result = grade("max_tokens", span, max_total=1000, max_output=200)
    assert result.outcome == Outcome.PASS
    assert result.reason == "total tokens 1000 <= 1000; output tokens 100 <= 200"


def test_max_tokens_fails_naming_the_count() -> None:
    span = make_span(input_tokens=900, output_tokens=700)
    result = grade("max_tokens", span, max_input=1000, max_output=500)
    assert (result.outcome, result.reason) == (Outcome.FAIL, "output tokens 700 > 500")


def test_max_tokens_fails_on_a_recorded_count_even_when_another_is_missing() -> None:
    span = make_span(total_tokens=5000)
    result = grade("max_tokens", span, max_total=4000, max_output=500)
    assert (result.outcome, result.reason) == (Outcome.FAIL, "total tokens 5000 > 4000")


def test_max_tokens_without_counts_is_skipped() -> None:
    result = grade("max_tokens", make_span(input_tokens=10), max_input=100, max_output=50)
    assert (result.outcome, result.reason) == (Outcome.SKIP, "span has no output token count")


def test_max_tokens_needs_a_limit() -> None:
    with pytest.raises(ValidationError, match="at least one of max_total"):
        make_grader("max_tokens")


# status_ok


def test_status_ok_passes() -> None:
    result = grade("status_ok", make_span())
    assert (result.outcome, result.reason) == (Outcome.PASS, "status ok")


def test_status_error_fails_with_the_message() -> None:
    span = make_span(
        status=Status(code=StatusCode.ERROR, message="TimeoutError: upstream\n  took 30s")
    )
    result = grade("status_ok", span)
    assert (result.outcome, result.reason) == (
        Outcome.FAIL,
        "status error: TimeoutError: upstream took 30s",
    )


def test_status_error_without_message() -> None:
    result = grade("status_ok", make_span(status=Status(code=StatusCode.ERROR)))
    assert (result.outcome, result.reason) == (Outcome.FAIL, "status error (no message)")


# counts and measurements that cannot be right


def test_total_tokens_is_filled_only_from_both_counts() -> None:
    assert make_span(input_tokens=100).total_tokens is None
    assert make_span(input_tokens=100, output_tokens=20).total_tokens == 120
    assert make_span(input_tokens=100, total_tokens=500).total_tokens == 500
    result = grade("max_tokens", make_span(input_tokens=100), max_total=150)
    assert (result.outcome, result.reason) == (Outcome.SKIP, "span has no total token count")


def test_max_cost_on_a_negative_cost_is_error() -> None:
    result = grade("max_cost", make_span(cost=-5.0), max_usd=0.01)
    assert (result.outcome, result.reason) == (Outcome.ERROR, "span cost is negative: -$5")


def test_max_tokens_on_a_negative_count_is_error() -> None:
    result = grade("max_tokens", make_span(output_tokens=-10), max_output=5)
    assert (result.outcome, result.reason) == (
        Outcome.ERROR, "span records a negative count: output tokens -10")


# reasons print numbers that compare as the real ones do


def test_latency_just_over_the_limit_reads_over_it() -> None:
    span = make_span(end_time=START + timedelta(microseconds=3_000_400))
    result = grade("max_latency_ms", span, max_ms=3000)
    assert (result.outcome, result.reason) == (Outcome.FAIL, "latency 3,000.4 ms > 3,000 ms")


def test_a_latency_exactly_at_the_limit_passes() -> None:
    # timedelta.total_seconds() * 1000 makes 2007 ms into 2007.0000000000002.
    result = grade("max_latency_ms", make_span(latency_ms=2007), max_ms=2007)
    assert (result.outcome, result.reason) == (Outcome.PASS, "latency 2,007 ms <= 2,007 ms")


def test_a_large_latency_limit_prints_without_exponent() -> None:
    result = grade("max_latency_ms", make_span(latency_ms=5), max_ms=1_500_000)
    assert result.reason == "latency 5 ms <= 1,500,000 ms"


def test_cost_just_over_the_limit_reads_over_it() -> None:
    result = grade("max_cost", make_span(cost=0.010000001), max_usd=0.01)
    assert (result.outcome, result.reason) == (Outcome.FAIL, "cost $0.010000001 > $0.01")
    tiny = grade("max_cost", make_span(cost=1e-9), max_usd=1e-7)
    assert tiny.reason == "cost $0.000000001 <= $0.0000001"


@pytest.mark.parametrize(("grader_type", "settings"), [
    ("status_ok", {"target": "output"}),
    ("max_latency_ms", {"max_ms": 100, "path": "$.x"}),
    ("max_tokens", {"max_output": 5, "target": "input"}),
    ("max_cost", {"max_usd": 1, "target": "attributes.cost"}),
])
def test_a_target_on_a_grader_that_reads_span_fields_is_refused(
        grader_type: str, settings: dict[str, object]) -> None:
    # It was silently ignored (and changed the grader's version all the same).
    with pytest.raises(ValueError, match="would be ignored; remove it"):
        make_grader(grader_type, **settings)
