"""A fake LLM judge endpoint: OpenAI ``/v1/chat/completions`` and Anthropic ``/v1/messages``.

A real HTTP server on 127.0.0.1 (:mod:`tests.fakes._server`), driven in the tests by the real
``openai`` and ``anthropic`` clients. Each answer is checked against the SDK's own response model
(``ChatCompletion`` / ``Message``), so the fake cannot drift from what the SDKs accept.

Scripting, per test:

- ``fake.latency``: seconds every answer takes;
- ``fake.answer``: the judge's text for a request body (default: a pass verdict);
- ``fake.reject_response_format``: answer 400 to structured-output requests;
- ``fake.script(step, ...)``: the next requests get these steps instead, in order —
  :class:`RateLimited` (429 + ``Retry-After``), :class:`ServerError` (5xx), :class:`Content`
  (this text, e.g. malformed JSON or a label outside the set), :class:`MalformedBody` (a 200
  whose body is not JSON), :class:`Sleep` (an answer slower than the client's timeout);
- ``fake.hold_after(n)``: answer ``n`` more requests, then keep every later one waiting until
  :meth:`FakeJudge.release` (which lets them go with a 503: their client is gone).

It records every request body, which prompts it answered (and how often), and the most requests
it had in flight at once. ``python -m tests.fakes.openai_server --latency 0.2`` runs an asyncio
version of its plain answer as its own process (for the benchmark, where the fake must not be
the bottleneck) and prints its URL; ``GET /stats`` reports its counters.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from openai.types.chat import ChatCompletion

from tests.fakes._server import FakeRequest, FakeResponse, LoopbackServer


@dataclass(frozen=True)
class RateLimited:
    """Answer 429 asking the client to wait ``retry_after`` seconds."""

    retry_after: float = 0.05


@dataclass(frozen=True)
class QuotaExceeded:
    """Answer 429 as OpenAI does for an account without credit (``insufficient_quota``)."""


@dataclass(frozen=True)
class ServerError:
    """Answer a 5xx."""

    status: int = 500


@dataclass(frozen=True)
class Content:
    """Answer 200 with this text as the judge's answer, ended for this reason: ``stop``,
    ``length`` (the token cap), ``content_filter``, or ``refusal`` (the text is the model's
    refusal; Anthropic's ``stop_reason`` is the counterpart of each)."""

    text: str
    finish_reason: str = "stop"


@dataclass(frozen=True)
class MalformedBody:
    """Answer 200 with a body that is not JSON at all."""


@dataclass(frozen=True)
class Sleep:
    """Answer normally, but only after ``seconds`` (longer than the client waits)."""

    seconds: float


Step = RateLimited | QuotaExceeded | ServerError | Content | MalformedBody | Sleep


def verdict(outcome: str = "pass", critique: str = "fake judge's critique") -> str:
    """A judge answer in the JSON form tracegrade asks for."""
    return orjson.dumps({"critique": critique, "verdict": outcome}).decode()


def label(name: str, critique: str = "fake judge's critique") -> str:
    """A classifying judge's answer."""
    return orjson.dumps({"critique": critique, "label": name}).decode()


def prompt_key(body: dict[str, Any]) -> str:
    """Identifies a question: a hash of the system prompt and every message."""
    payload = orjson.dumps([body.get("system"), body.get("messages")],
                           option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()[:16]


@dataclass
class Received:
    """One request the fake received."""

    at: float
    path: str
    body: dict[str, Any]


@dataclass
class FakeJudge:
    """The fake endpoint and everything it saw."""

    latency: float = 0.0
    answer: Callable[[dict[str, Any]], str] = field(default=lambda _body: verdict())
    reject_response_format: bool = False
    """Answer 400 to requests with ``response_format``, as some local servers do."""
    received: list[Received] = field(default_factory=list)
    answered: Counter[str] = field(default_factory=Counter)
    """How many 200 answers each prompt got (by :func:`prompt_key`)."""
    in_flight: int = 0
    max_in_flight: int = 0
    violations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: list[Step] = []
        self._answer_budget: int | None = None
        self._released = threading.Event()
        self.server = LoopbackServer(self._handle)
        # socketserver listens with a backlog of 5; a judge opening 50 connections at once
        # would see SYNs dropped and retried a second or more later. Linux lets listen() grow it.
        self.server._httpd.socket.listen(1024)

    # -- scripting ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (``…/v1``)."""
        return f"{self.server.url}/v1"

    def script(self, *steps: Step) -> None:
        """The next requests get these steps, in order."""
        with self._lock:
            self._steps.extend(steps)

    def hold_after(self, answers: int) -> None:
        """Answer ``answers`` more requests, then hold every later one until :meth:`release`."""
        with self._lock:
            self._answer_budget = answers
            self._released.clear()

    def release(self) -> None:
        """Let held requests (and every later one) through."""
        with self._lock:
            self._answer_budget = None
        self._released.set()

    @property
    def requests(self) -> int:
        """How many completion requests arrived."""
        with self._lock:
            return len(self.received)

    def bodies(self) -> list[dict[str, Any]]:
        """Every request body, in arrival order."""
        with self._lock:
            return [r.body for r in self.received]

    def stats(self) -> dict[str, Any]:
        """The counters, as ``GET /stats`` reports them."""
        with self._lock:
            return {"requests": len(self.received), "answered": sum(self.answered.values()),
                    "max_in_flight": self.max_in_flight, "violations": len(self.violations)}

    # -- serving ------------------------------------------------------------------------------

    def _handle(self, request: FakeRequest) -> FakeResponse:
        if request.method == "GET" and request.path == "/stats":
            return FakeResponse(200, self.stats())
        anthropic = request.path.endswith("/messages")
        if not (anthropic or request.path.endswith("/chat/completions")):
            return FakeResponse(404, {"error": {"message": f"no route {request.path}"}})
        body = request.json() or {}
        with self._lock:
            self.received.append(Received(time.monotonic(), request.path, body))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            step = self._steps.pop(0) if self._steps else None
        try:
            return self._respond(body, step, anthropic)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _respond(self, body: dict[str, Any], step: Step | None, anthropic: bool) -> FakeResponse:
        if self._held():
            # The client that sent a held request is usually gone (killed); it gets no answer.
            return _error(503, "held until released", anthropic, {})
        time.sleep(self.latency)
        if isinstance(step, RateLimited):
            return _error(429, "rate limit reached", anthropic, {
                "Retry-After": f"{step.retry_after:g}",
                "retry-after-ms": str(int(step.retry_after * 1000))})
        if isinstance(step, ServerError):
            return _error(step.status, "the server had an error", anthropic, {})
        if isinstance(step, QuotaExceeded):
            return FakeResponse(429, {"error": {
                "message": "You exceeded your current quota, please check your plan and "
                           "billing details.",
                "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}})
        if isinstance(step, MalformedBody):
            return FakeResponse(200, b'{"id": "chatcmpl-1", "choices": [{"mess',
                                {"Content-Type": "application/json"})
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
        if self.reject_response_format and "response_format" in body:
            return _error(400, "Unrecognized request argument: response_format", False, {})
        text = step.text if isinstance(step, Content) else self.answer(body)
        finish = step.finish_reason if isinstance(step, Content) else "stop"
        response = _message(body, text, finish) if anthropic else _completion(body, text, finish)
        self._check(response, anthropic)
        with self._lock:
            self.answered[prompt_key(body)] += 1
        return FakeResponse(200, response)

    def _held(self) -> bool:
        """Wait while answers are held; whether this request was held."""
        with self._lock:
            if self._answer_budget is None:
                return False
            if self._answer_budget > 0:
                self._answer_budget -= 1
                return False
        self._released.wait()
        return True

    def _check(self, response: dict[str, Any], anthropic: bool) -> None:
        """Validate the answer against the SDK's own response model."""
        try:
            if anthropic:
                from anthropic.types import Message

                Message.model_validate(response)
            else:
                ChatCompletion.model_validate(response)
        except Exception as exc:  # any validation failure is a drifted fake
            with self._lock:
                self.violations.append(f"{type(exc).__name__}: {exc}")


@contextmanager
def running_fake(**settings: Any) -> Iterator[FakeJudge]:
    """A started fake judge, stopped afterwards; fails if it sent anything the SDKs reject."""
    fake = FakeJudge(**settings)
    fake.server.start()
    try:
        yield fake
    finally:
        fake.release()
        fake.server.stop()
    assert fake.violations == [], f"the fake judge drifted from the SDKs: {fake.violations}"


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _prompt_text(body: dict[str, Any]) -> str:
    parts = [str(body.get("system") or "")]
    parts += [str(m.get("content") or "") for m in body.get("messages") or []]
    return "".join(parts)


def _completion(body: dict[str, Any], text: str, finish: str = "stop") -> dict[str, Any]:
    prompt_tokens, completion_tokens = _tokens(_prompt_text(body)), _tokens(text)
    message = {"role": "assistant", "content": text, "refusal": None}
    if finish == "refusal":  # structured outputs: the refusal replaces the content
        message, finish = {"role": "assistant", "content": None, "refusal": text}, "stop"
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "refusal": "refusal",
                 "content_filter": "refusal"}


def _message(body: dict[str, Any], text: str, finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "msg_fake", "type": "message", "role": "assistant",
        "model": body.get("model", "fake"), "content": [{"type": "text", "text": text}],
        "stop_reason": _STOP_REASONS[finish],
        "stop_sequence": None,
        "usage": {"input_tokens": _tokens(_prompt_text(body)), "output_tokens": _tokens(text)},
    }


def _error(status: int, message: str, anthropic: bool, headers: dict[str, str]
           ) -> FakeResponse:
    if anthropic:
        kind = "rate_limit_error" if status == 429 else "api_error"
        return FakeResponse(status, {"type": "error", "error": {"type": kind,
                                                                "message": message}}, headers)
    return FakeResponse(status, {"error": {"message": message, "type": "fake_error",
                                           "code": str(status)}}, headers)


class AsyncFakeJudge:
    """The fake's chat-completions answer served by asyncio, for the benchmark.

    A thread per connection (the test server) costs about 1 ms of GIL time per request, which at
    250 requests/s makes the fake the bottleneck; this one answers in microseconds.
    """

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0

    async def serve(self) -> None:
        """Serve on a free port of 127.0.0.1, printing the base URL, until cancelled."""
        import asyncio

        server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        sys.stdout.write(f"http://127.0.0.1:{port}/v1\n")
        sys.stdout.flush()
        async with server:
            await server.serve_forever()

    async def _connection(self, reader: Any, writer: Any) -> None:
        import asyncio

        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                headers = dict(line.lower().split(": ", 1) for line in header_lines if line)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                writer.write(await self._answer(request_line, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, request_line: str, body: bytes) -> bytes:
        import asyncio

        if request_line.startswith("GET /stats"):
            payload = orjson.dumps({"requests": self.requests,
                                    "max_in_flight": self.max_in_flight})
        else:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(self.latency)
            finally:
                self.in_flight -= 1
            payload = orjson.dumps(_completion(orjson.loads(body), verdict()))
        return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n" % len(payload)) + payload


def main() -> None:
    """Serve a fake judge in this process until killed (for the benchmark)."""
    import asyncio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=0.2)
    options = parser.parse_args()
    try:
        asyncio.run(AsyncFakeJudge(options.latency).serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
