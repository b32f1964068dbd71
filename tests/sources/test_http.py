"""The one HTTP policy: what it waits, what it retries, what it refuses, what it never prints."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fakes._server import FakeRequest, FakeResponse, LoopbackServer, Reset, Status, Truncate
from tracegrade.sources._http import (
    BearerAuth,
    HttpClient,
    RateLimiter,
    RemoteRejected,
    RemoteUnavailable,
    RetryPolicy,
)

SECRET = "sk-very-secret-value-42"


def ok(request: FakeRequest) -> FakeResponse:
    return FakeResponse(200, {"path": request.path, "page": request.param("page")})


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(ok) as running:
        yield running


class Sleeps(list[float]):
    """Records every wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(server: LoopbackServer, sleeps: Sleeps, **policy: float) -> HttpClient:
    settings = {"timeout_s": 2.0, "max_retries": 3, "backoff_base_s": 0.4,
                "backoff_max_s": 10.0, **policy}
    return HttpClient(server.url, service="test", policy=RetryPolicy.model_validate(settings),
                      auth=BearerAuth(SECRET), secrets=[SECRET], sleep=sleeps)


def test_retry_after_seconds_is_waited_exactly(server: LoopbackServer) -> None:
    sleeps = Sleeps()
    server.faults.add("/x", Status(429, {"Retry-After": "7"}))
    body, _ = client(server, sleeps).request_json("GET", "/x")
    assert body["path"] == "/x" and sleeps == [pytest.approx(7.0, abs=0.5)]


def test_retry_after_as_an_http_date(server: LoopbackServer) -> None:
    sleeps = Sleeps()
    when = email.utils.format_datetime(datetime.now(tz=UTC) + timedelta(seconds=30),
                                       usegmt=True)
    server.faults.add("/x", Status(503, {"Retry-After": when}))
    client(server, sleeps).request_json("GET", "/x")
    assert len(sleeps) == 1 and 25 < sleeps[0] <= 30


@pytest.mark.parametrize(("reset", "expected"), [
    (lambda: str(int(time.time()) + 20), 20.0),  # a Unix time
    (lambda: str(int(time.time() * 1000) + 20_000), 20.0),  # a Unix time in milliseconds
    (lambda: "3", 3.0),  # seconds from now
    # Langfuse's: JavaScript's Date.toString()
    (lambda: (datetime.now(tz=UTC) + timedelta(seconds=20)).strftime(
        "%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)"), 20.0),
    (lambda: email.utils.format_datetime(datetime.now(tz=UTC) + timedelta(seconds=20),
                                         usegmt=True), 20.0),  # an HTTP date
])
def test_x_ratelimit_reset_is_honoured(server: LoopbackServer, reset: Any, expected: float
                                       ) -> None:
    sleeps = Sleeps()
    server.faults.add("/x", Status(429, {"X-RateLimit-Reset": reset()}))
    client(server, sleeps).request_json("GET", "/x")
    assert sleeps == [pytest.approx(expected, abs=1.5)]


def test_the_server_wait_is_capped(server: LoopbackServer) -> None:
    sleeps = Sleeps()
    server.faults.add("/x", Status(429, {"Retry-After": "3600"}))
    client(server, sleeps, retry_after_max_s=5).request_json("GET", "/x")
    assert sleeps == [pytest.approx(5.0, abs=0.5)]


def test_errors_back_off_exponentially_with_jitter(server: LoopbackServer) -> None:
    sleeps = Sleeps()
    server.faults.add("/x", Status(500), Status(502), Reset())
    body, _ = client(server, sleeps).request_json("GET", "/x")
    assert body["path"] == "/x"
    # Three faults, three retries, each preceded by one wait.
    assert len(sleeps) == 3
    # Attempt n waits between half and all of base * 2^n.
    for attempt, waited in enumerate(sleeps):
        ceiling = 0.4 * 2 ** attempt
        assert ceiling / 2 <= waited <= ceiling


def test_a_truncated_body_is_retried(server: LoopbackServer) -> None:
    sleeps = Sleeps()
    server.faults.add("/x", Truncate(0.5))
    body, _ = client(server, sleeps).request_json("GET", "/x")
    assert body["path"] == "/x" and len(sleeps) == 1


def test_after_the_last_retry_a_clear_error_names_the_call(server: LoopbackServer) -> None:
    sleeps = Sleeps()
    server.faults.add("/x", *[Status(503, body="overloaded")] * 4)
    with pytest.raises(RemoteUnavailable, match=r"test: GET /x failed after 4 attempt\(s\): "
                                                r"HTTP 503: overloaded"):
        client(server, sleeps).request_json("GET", "/x")
    assert len(sleeps) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(server: LoopbackServer, status: int) -> None:
    sleeps = Sleeps()
    server.faults.add("/x", Status(status, body={"message": "no"}))
    with pytest.raises(RemoteRejected) as info:
        client(server, sleeps).request_json("GET", "/x")
    assert info.value.status == status and sleeps == []
    assert info.value.not_found is (status == 404)


def test_secrets_are_redacted_from_errors(server: LoopbackServer) -> None:
    server.faults.add("/x", Status(401, body=f"bad token Bearer {SECRET}"))
    with pytest.raises(RemoteRejected) as info:
        client(server, Sleeps()).request_json("GET", "/x")
    assert SECRET not in str(info.value) and "***" in str(info.value)
    assert SECRET not in repr(BearerAuth(SECRET))


def test_basic_credentials_are_redacted_in_both_forms(server: LoopbackServer) -> None:
    import base64

    encoded = base64.b64encode(f"pk-user:{SECRET}".encode()).decode()
    server.faults.add("/x", Status(400, body=f"{SECRET} / Basic {encoded}"))
    http = HttpClient(server.url, service="test", auth=("pk-user", SECRET),
                      policy=RetryPolicy(max_retries=0))
    with pytest.raises(RemoteRejected) as info:
        http.request_json("GET", "/x")
    assert SECRET not in str(info.value) and encoded not in str(info.value)


def test_list_params_repeat_their_key_and_none_is_left_out(server: LoopbackServer) -> None:
    client(server, Sleeps()).request_json(
        "GET", "/x", params={"environment": ["a", "b"], "type": None, "limit": 5})
    request = server.requests_to("/x")[0]
    assert request.query == {"environment": ["a", "b"], "limit": ["5"]}


def test_the_rate_limiter_spaces_requests_evenly() -> None:
    now = [100.0]
    sleeps = Sleeps()

    def sleep(seconds: float) -> None:
        sleeps(seconds)
        now[0] += seconds

    limiter = RateLimiter(30, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        limiter.acquire()
    assert sleeps == [2.0, 2.0, 2.0]  # 30 a minute: one every two seconds
    limiter.defer(10)
    limiter.acquire()
    assert sleeps[-1] == pytest.approx(10.0)


def test_without_a_cap_there_is_no_wait() -> None:
    sleeps = Sleeps()
    limiter = RateLimiter(None, sleep=sleeps)
    for _ in range(5):
        limiter.acquire()
    assert sleeps == []
