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
    assert (result.outcome, result.reason) == (Outcome.PASS, "latency 3000 ms <= 3000 ms")


def test_max_latency_fails_over_the_limit() -> None:
    result = grade("max_latency_ms", make_span(latency_ms=5400), max_ms=3000)
    assert (result.outcome, result.reason) == (Outcome.FAIL, "latency 5400 ms > 3000 ms")


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
