"""What can go wrong with a judge, sorted by what tracegrade does about it."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from datetime import UTC


class JudgeError(Exception):
    """A judge cannot be used at all (bad setup, endpoint down); the run stops with this message.

    Never raised for one span's problem: that is an ``error`` verdict.
    """

    summary: object | None = None
    """What the stopped run had done (a :class:`~tracegrade.grading.GradeSummary`), when it
    stopped mid-run: its verdicts are kept."""


class JudgeUnavailable(JudgeError):
    """The endpoint refuses every call (401/403/404) or cannot be reached after the retries."""


class JudgeStopped(JudgeUnavailable):
    """Too many spans in a row got no answer from a judge (see :class:`JudgeDeferred`), so the
    run stopped asking it. Its remaining spans get no verdict and wait for the next run."""


class JudgeDeferred(Exception):
    """One question got no answer: the endpoint was overloaded or failing (429, 5xx, timeouts)
    through every retry. No verdict is stored, so the next run asks again; never an error
    verdict, which would keep the span from ever being graded."""

    def __init__(self, judge: str, problem: str) -> None:
        super().__init__(f"judge {judge!r}: {problem}")
        self.problem = problem
        """How the last attempt failed, with the number of attempts."""


TRANSIENT_KINDS = frozenset({"rate_limited", "server_error", "timeout", "connection"})
"""Failures that say nothing about the question, only about the endpoint at that moment."""


class ProviderError(Exception):
    """One call failed; the judge client decides whether to retry."""

    def __init__(self, message: str, *, raw: str | None = None) -> None:
        super().__init__(message)
        self.raw = raw
        """The answer's text, when there was one (kept on the ``error`` verdict)."""


class RetryableError(ProviderError):
    """Worth another attempt: 429, 5xx, a timeout, a dropped connection, an unreadable body."""

    def __init__(self, message: str, *, kind: str, retry_after: float | None = None,
                 raw: str | None = None) -> None:
        super().__init__(message, raw=raw)
        self.kind = kind
        self.retry_after = retry_after


class RejectedError(ProviderError):
    """The endpoint refused this one request (e.g. 400: the prompt is too long); not retried."""


class StructuredOutputRejected(RejectedError):
    """The endpoint does not accept ``response_format``; the judge falls back to plain JSON."""


def status_error(status: int, headers: Mapping[str, str], message: str, where: str
                 ) -> ProviderError | JudgeUnavailable:
    """The error an HTTP status means for a judge call."""
    if status == 402 or _out_of_credit(status, message):
        # OpenAI's `insufficient_quota` comes as a 429, Anthropic's low credit as a 400: no
        # retry or later run helps until the account is topped up.
        return JudgeUnavailable(f"{where} answered {status}, out of quota or credit: {message}")
    if status == 429 or status >= 500 or status in (408, 409, 425):
        kind = "rate_limited" if status == 429 else "server_error"
        return RetryableError(f"{where} answered {status}: {message}", kind=kind,
                              retry_after=retry_after(headers))
    if status in (401, 403, 404):
        return JudgeUnavailable(f"{where} answered {status}: {message}")
    if status == 400 and ("response_format" in message or "output_config" in message):
        return StructuredOutputRejected(f"{where} refuses structured output: {message}")
    return RejectedError(f"{where} rejected the request ({status}): {message}")


_OUT_OF_CREDIT = ("insufficient_quota", "current quota", "billing", "credit balance")
"""What an account that must be topped up says. A per-minute limit may say "quota" too (Vertex
AI, Gemini: "Quota exceeded for … requests per minute", with ``Retry-After``): that one is a
rate limit, waited out like any 429."""


def _out_of_credit(status: int, message: str) -> bool:
    lowered = message.casefold()
    return status in (400, 403, 429) and any(words in lowered for words in _OUT_OF_CREDIT)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked to wait: ``retry-after-ms``, else ``Retry-After`` (secs or date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" (RFC 5322: UTC, source unknown) parses as naive
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())
