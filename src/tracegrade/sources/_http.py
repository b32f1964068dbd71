"""The one HTTP policy every remote call in tracegrade goes through.

Langfuse, Braintrust, webhooks and dataset pushes all talk HTTP through :class:`HttpClient`:

* a request-per-minute cap (a token bucket shared by every thread using the client), defaulting
  per service to its documented limit;
* on ``429`` it waits what ``Retry-After`` (seconds or an HTTP date) or ``X-RateLimit-Reset``
  (epoch seconds, or seconds from now) says, capped by :attr:`RetryPolicy.retry_after_max_s`;
* on ``5xx``, connection errors, timeouts and truncated or unparsable JSON bodies it backs off
  exponentially with jitter;
* after :attr:`RetryPolicy.max_retries` retries it raises :class:`RemoteUnavailable`; a ``4xx``
  other than ``408``/``429`` is not retried and raises :class:`RemoteRejected` at once.

Error messages name the service, method and path, never a credential: every secret the client
was given is redacted from them (also in its HTTP Basic form).
"""

from __future__ import annotations

import base64
import email.utils
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger("tracegrade.http")

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport failures before the request reached the service."""
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523,
                               524, 529})
_EPOCH_THRESHOLD = 1_000_000_000
"""An ``X-RateLimit-Reset`` above this is a Unix time; below it, seconds from now."""
_MILLIS_THRESHOLD = 100_000_000_000
"""…and above this, a Unix time in milliseconds."""
_BODY_PREVIEW = 300


class RetryPolicy(BaseModel):
    """How remote calls are timed out, retried and rate-limited. Every field has a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(default=30.0, gt=0)
    """Connect, read and write timeout of one attempt."""
    max_retries: int = Field(default=5, ge=0)
    """Retries after the first attempt; the call fails after ``max_retries + 1`` attempts."""
    backoff_base_s: float = Field(default=0.5, ge=0)
    """The first backoff; it doubles per retry (with jitter) up to ``backoff_max_s``."""
    backoff_max_s: float = Field(default=30.0, ge=0)
    retry_after_max_s: float = Field(default=120.0, ge=0)
    """The longest wait a ``Retry-After`` / ``X-RateLimit-Reset`` header is obeyed for."""
    requests_per_minute: float | None = Field(default=None, gt=0)
    """Client-side cap; ``None`` means the service's documented default (if it has one)."""


class RemoteError(Exception):
    """A remote call failed; the message says which service, call and why (never a secret)."""

    def __init__(self, message: str, *, service: str, status: int | None = None) -> None:
        super().__init__(message)
        self.service = service
        self.status = status


class RemoteUnavailable(RemoteError):
    """The service kept failing (5xx, 429, network, timeouts) until the retries ran out."""


class RemoteRejected(RemoteError):
    """The service refused the request (a 4xx such as 400, 401, 403 or 404); not retried."""

    @property
    def not_found(self) -> bool:
        """Whether the service answered 404 (e.g. an endpoint an older server lacks)."""
        return self.status == 404

    @property
    def refuses_the_client(self) -> bool:
        """Whether the refusal is about the caller, not one request's content: bad or revoked
        credentials (401, 403), or an endpoint or project that is not there (404, 405). Every
        other request to the same place would be refused alike."""
        return self.status in (401, 403, 404, 405)


class UnexpectedResponse(RemoteError):
    """The service answered 2xx with a body that is not the documented shape."""


class RateLimiter:
    """A token bucket of one token: requests are spaced evenly at ``per_minute``.

    Thread-safe; a 429's ``Retry-After`` pushes the next free slot back for every user.
    """

    def __init__(self, per_minute: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free = 0.0

    def acquire(self) -> float:
        """Wait for the next free slot; returns how long it waited."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_free)
            self._next_free = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return max(wait, 0.0)

    def defer(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` (the server said it is overloaded)."""
        with self._lock:
            self._next_free = max(self._next_free, self._clock() + seconds)


class HttpClient:
    """An httpx client with tracegrade's retry, backoff and rate-limit policy.

    Args:
        base_url: The service's base URL, e.g. ``https://cloud.langfuse.com``.
        service: What error messages call the service, e.g. ``langfuse (prod)``.
        policy: Timeouts, retries and the request-per-minute cap.
        default_rpm: The cap used when ``policy.requests_per_minute`` is not set.
        auth: httpx authentication (Basic for Langfuse, a bearer header for Braintrust…).
        headers: Extra headers sent with every request.
        secrets: Strings redacted from every error message.
        sleep: How to wait (tests pass a recorder).
        transport: An httpx transport (tests may pass a mock one).
    """

    def __init__(
        self,
        base_url: str,
        *,
        service: str,
        policy: RetryPolicy | None = None,
        default_rpm: float | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.service = service
        self.policy = policy or RetryPolicy()
        self.limiter = RateLimiter(self.policy.requests_per_minute or default_rpm, sleep=sleep)
        self._sleep = sleep
        self._random = random.Random()
        self._secrets = _secret_forms(secrets, auth)
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            auth=auth,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(self.policy.timeout_s),
            transport=transport,
            follow_redirects=True,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request under the policy; returns the first 2xx/3xx response.

        Raises:
            RemoteRejected: a 4xx answer other than 408/429.
            RemoteUnavailable: the retries ran out.
        """
        return self._call(method, path, params, json, headers, parse=False)[0]

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> tuple[Any, httpx.Response]:
        """Send a request and parse its JSON body; a truncated or invalid body is retried.

        ``idempotent=False`` is for a call that must not be applied twice: it is retried only
        when the service surely did not get it (no connection, or 429); after a failure that
        leaves this unknown (a timeout or reset while waiting, a 5xx) it fails at once, and a
        2xx whose body is cut off counts as accepted (the body is then ``None``).

        Returns:
            The parsed body and the response (for headers such as a cursor).

        Raises:
            RemoteRejected: a 4xx answer other than 408/429.
            RemoteUnavailable: the retries ran out, or a non-idempotent call's fate is unknown.
        """
        response, body = self._call(method, path, params, json, headers, parse=True,
                                    idempotent=idempotent)
        return body, response

    def redact(self, text: str) -> str:
        """``text`` with every secret this client knows replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # -- the retry loop ------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        *,
        parse: bool,
        idempotent: bool = True,
    ) -> tuple[httpx.Response, Any]:
        call = f"{method} {path}"
        content = orjson.dumps(json) if json is not None else None
        send_headers = {"Content-Type": "application/json", **(headers or {})} if content \
            else dict(headers or {})
        attempts = self.policy.max_retries + 1
        problem = "no attempt was made"
        for attempt in range(attempts):
            self.limiter.acquire()
            request = self._client.build_request(method, path, params=_query(params),
                                                 content=content, headers=send_headers)
            try:
                # Streamed, so the status is known even when the body is then cut off.
                response = self._client.send(request, stream=True)
            except httpx.TransportError as error:
                problem = _describe_transport_error(error)
                if not idempotent and not isinstance(error, _NOT_SENT):
                    raise self._unsure(call, problem) from error
                self._back_off(call, problem, attempt, attempts, None)
                continue
            try:
                response.read()
            except httpx.TransportError as error:
                response.close()
                if not idempotent and response.is_success:
                    return response, None  # the 2xx status says it was applied
                problem = f"HTTP {response.status_code}, then the body was cut off: " \
                          f"{_describe_transport_error(error)}"
                if not idempotent:
                    raise self._unsure(call, problem) from error
                self._back_off(call, problem, attempt, attempts, None)
                continue
            if response.status_code in _RETRYABLE_STATUS:
                problem = f"HTTP {response.status_code}{self._preview(response)}"
                if not idempotent and response.status_code != 429:
                    raise self._unsure(call, problem)
                self._back_off(call, problem, attempt, attempts, _server_wait(response))
                continue
            if response.status_code >= 400:
                raise RemoteRejected(
                    self.redact(f"{self.service}: {call} was refused: HTTP "
                                f"{response.status_code}{self._preview(response)}"),
                    service=self.service, status=response.status_code)
            if not parse:
                return response, None
            try:
                return response, orjson.loads(response.content) if response.content else None
            except orjson.JSONDecodeError as error:
                if not idempotent:
                    return response, None  # the 2xx status says it was applied
                problem = f"the response body is not valid JSON (truncated?): {error}"
                self._back_off(call, problem, attempt, attempts, None)
        raise RemoteUnavailable(
            self.redact(f"{self.service}: {call} failed after {attempts} attempt(s): {problem}"),
            service=self.service)

    def _unsure(self, call: str, problem: str) -> RemoteUnavailable:
        return RemoteUnavailable(
            self.redact(f"{self.service}: {call} failed: {problem}. The service may have "
                        "applied it, so it is not resent now (sending it twice would repeat "
                        "it); the next run sends what was not confirmed."),
            service=self.service)

    def _back_off(self, call: str, problem: str, attempt: int, attempts: int,
                  server_wait: float | None) -> None:
        if attempt + 1 >= attempts:
            return
        if server_wait is not None:
            # The server's wait holds back every request through this client (the limiter's
            # next acquire() sleeps it), not just this retry.
            delay = min(server_wait, self.policy.retry_after_max_s)
            self.limiter.defer(delay)
        else:
            ceiling = min(self.policy.backoff_max_s, self.policy.backoff_base_s * 2 ** attempt)
            # "Equal jitter": never less than half the backoff, so retries stay spread out.
            delay = ceiling / 2 + self._random.uniform(0, ceiling / 2)
        logger.info("%s", self.redact(f"{self.service}: {call}: {problem}; retrying in "
                                      f"{delay:.2f}s ({attempt + 1}/{attempts - 1})"))
        if server_wait is None and delay > 0:
            self._sleep(delay)

    def _preview(self, response: httpx.Response) -> str:
        try:
            text = response.text.strip()
        except (UnicodeDecodeError, httpx.HTTPError):
            return ""
        if not text:
            return ""
        text = " ".join(text.split())
        return f": {text[:_BODY_PREVIEW]}{'…' if len(text) > _BODY_PREVIEW else ''}"


def _query(
    params: Mapping[str, Any] | None,
) -> list[tuple[str, str | int | float | bool | None]] | None:
    """Query parameters without ``None`` values; a list repeats its key (``env=a&env=b``)."""
    if params is None:
        return None
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        pairs.extend((key, _query_value(item)) for item in values)
    return pairs


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_timestamp(value)
    return str(value)


def format_timestamp(moment: datetime) -> str:
    """An aware datetime as ISO 8601 UTC with milliseconds and ``Z``, as both services expect."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _server_wait(response: httpx.Response) -> float | None:
    """How long the server asked us to wait, from ``Retry-After`` or ``X-RateLimit-Reset``."""
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        seconds = _seconds_or_date(retry_after.strip())
        if seconds is not None:
            return seconds
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            value = float(reset.strip())
        except ValueError:
            # A date: HTTP's form, or JavaScript's Date.toString() (what Langfuse sends).
            return _seconds_or_date(reset.strip()) if "," in reset else _js_date_wait(reset)
        if value > _MILLIS_THRESHOLD:
            value /= 1000.0
        if value > _EPOCH_THRESHOLD:
            return max(0.0, value - time.time())
        return max(0.0, value)
    return None


def _seconds_or_date(value: str) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(tz=UTC)).total_seconds())


_JS_DATE = re.compile(r"^\w{3} (\w{3} \d{1,2} \d{4} \d{2}:\d{2}:\d{2}) GMT([+-]\d{4})")


def _js_date_wait(value: str) -> float | None:
    """Seconds until a ``Tue Dec 02 2026 14:03:05 GMT+0000 (…)`` date, if it is one."""
    match = _JS_DATE.match(value.strip())
    if match is None:
        return None
    try:
        moment = datetime.strptime(f"{match.group(1)} {match.group(2)}", "%b %d %Y %H:%M:%S %z")
    except ValueError:
        return None
    return max(0.0, (moment - datetime.now(tz=UTC)).total_seconds())


def _describe_transport_error(error: httpx.TransportError) -> str:
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    detail = str(error) or type(error).__name__
    return f"connection failed ({type(error).__name__}: {detail})"


def _secret_forms(secrets: Iterable[str], auth: object) -> list[str]:
    """Each secret as given and as it appears in a Basic header, longest first."""
    found = [s for s in secrets if s]
    if isinstance(auth, tuple) and len(auth) == 2:
        user, password = auth
        found.append(password)
        found.append(base64.b64encode(f"{user}:{password}".encode()).decode())
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>``, kept out of reprs and error messages."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "BearerAuth(***)"

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request
