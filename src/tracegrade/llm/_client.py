"""Asking a judge: the cache first, then the provider within its limits, retried, paid for.

:class:`JudgeSession` holds what one grading run shares between its judge graders: one
:class:`JudgeClient` per configured judge (so graders that share a judge share its rate limits),
the run's :class:`~tracegrade.llm._cost.Budget` and the cache writer.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
import orjson

from tracegrade.llm._cache import (
    CachedAnswer,
    CacheEntry,
    CacheWriter,
    attempt_key,
    cached_answers,
)
from tracegrade.llm._config import JudgeConfig
from tracegrade.llm._cost import Budget, BudgetExhausted, cost_of, prices_for
from tracegrade.llm._errors import (
    TRANSIENT_KINDS,
    JudgeDeferred,
    JudgeError,
    JudgeStopped,
    JudgeUnavailable,
    RejectedError,
    RetryableError,
    StructuredOutputRejected,
)
from tracegrade.llm._limits import Clock, RateLimiter, Sleep, asyncio_sleep
from tracegrade.llm._parse import AnswerUnreadable
from tracegrade.llm._providers import JudgeReply, JudgeRequest, Provider, make_provider
from tracegrade.store import Store

T = TypeVar("T")

_MAX_WAIT_S = 120.0
"""The longest a single retry waits, whatever ``Retry-After`` says."""


@dataclass(frozen=True)
class PreparedCall:
    """A request ready to send: the exact body, its cache key and what it may cost at most."""

    body: dict[str, Any]
    key: str
    estimated_tokens: int
    max_cost: float


@dataclass(frozen=True)
class JudgeAnswer(Generic[T]):
    """The outcome of asking: a read answer, or why there is none (with the raw text)."""

    value: T | None
    text: str | None
    problem: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None
    """Dollars spent on this question in this run (0 when cached; None when unpriced)."""
    cached: bool
    attempts: int


class JudgeSession:
    """The judges of one grading run.

    Every wait its clients make (rate limits, ``Retry-After``, backoff) is measured on ``clock``
    and waited with ``sleep``.
    """

    def __init__(self, store: Store | None, budget: Budget, *, use_cache: bool = True,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio_sleep) -> None:
        self.store = store
        self.budget = budget
        self.use_cache = use_cache and store is not None
        self.clock, self.sleep = clock, sleep
        self.writer = CacheWriter(store, replace=not use_cache) if store is not None else None
        self._clients: dict[str, JudgeClient] = {}

    def client(self, name: str, judge: JudgeConfig) -> JudgeClient:
        """The client for the judge configured as ``name`` (one per run, shared).

        Raises:
            JudgeError: the judge cannot be used (SDK missing, no key, no price under a budget).
        """
        if name not in self._clients:
            if self.budget.limit is not None and prices_for(judge) is None:
                raise JudgeError(
                    f"judge {name!r}: no price known for model {judge.model!r}, so --budget "
                    "cannot be enforced; add `prices: {input: …, output: …}` (USD per million "
                    "tokens) to the judge")
            self._clients[name] = JudgeClient(name, judge, make_provider(judge), self)
        return self._clients[name]

    async def aclose(self) -> None:
        """Write every pending cache entry and close the providers' connections."""
        try:
            if self.writer is not None:
                await self.writer.flush()
        finally:
            for client in self._clients.values():
                await client.provider.aclose()


class JudgeClient:
    """One judge's calls: cache, rate limits, retries, cost and budget, and a circuit breaker.

    The breaker belongs to the client, so there is one per configured judge in a run (the
    unit that already shares rate limits; it is named in the config and its message). Once
    ``max_consecutive_failures`` questions in a row got no answer through all their retries
    (:class:`JudgeDeferred`: timeouts, 5xx, 429s, dropped connections), the client stops asking:
    every later question raises :class:`JudgeStopped` without a call, as it raises
    :class:`JudgeUnavailable` once the endpoint refused for good. Any answer, even an unreadable
    one or a 400, restarts the count; a cached answer or an attempt a retry recovers is no
    failure.
    """

    def __init__(self, name: str, judge: JudgeConfig, provider: Provider,
                 session: JudgeSession) -> None:
        self.name, self.judge, self.provider, self.session = name, judge, provider, session
        self.prices = prices_for(judge)
        self.limiter = RateLimiter(judge.max_concurrency, judge.requests_per_minute,
                                   judge.tokens_per_minute, clock=session.clock,
                                   sleep=session.sleep)
        self.unavailable: JudgeUnavailable | None = None
        """Set once the endpoint refused for good, or the breaker tripped; every later question
        fails at once."""
        self.failed_in_a_row = 0
        """Questions in a row that got no answer through every retry (none since an answer)."""
        # A question keeps its place through its retries and their backoff: otherwise a page's
        # new questions take each slot a retry frees, and a dead endpoint is asked about the
        # whole page before any question has failed for good (and could trip the breaker).
        self._in_progress = asyncio.Semaphore(judge.max_concurrency)
        self._cached: dict[str, CachedAnswer] = {}
        self._asking: dict[str, asyncio.Future[None]] = {}
        """Questions in flight, so that spans asking the same one wait for its answer."""
        self._endpoint = _endpoint_key(provider.name, judge)

    def prepare(self, request: JudgeRequest) -> PreparedCall:
        """The body, cache key and worst-case cost of ``request``."""
        body = self.provider.body(request)
        encoded = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        key = hashlib.sha256(self._endpoint + encoded).hexdigest()
        prompt_chars = sum(len(content) for _, content in request.messages) + len(request.system)
        estimated = prompt_chars // 4 + 8 * len(request.messages) + self.judge.max_tokens
        # A token is at least one byte, so the body's length bounds the prompt's tokens.
        max_cost = cost_of(self.prices, len(encoded), self.judge.max_tokens) or 0.0
        return PreparedCall(body, key, estimated, max_cost)

    def prefetch(self, calls: Iterable[PreparedCall]) -> None:
        """Load the cached answers to ``calls`` in one query (nothing when the cache is off)."""
        if not self.session.use_cache or self.session.store is None:
            return
        # Each question's answer, and the first paid attempt of it that could not be read (a
        # killed run's, replayed instead of paid for again).
        wanted = [key for call in calls if call.key not in self._cached
                  for key in (call.key, attempt_key(call.key, 0))]
        if wanted:
            self._cached.update(cached_answers(self.session.store, wanted))

    def forget_prefetched(self) -> None:
        """Drop prefetched answers (after a page, to keep memory flat)."""
        self._cached.clear()

    async def ask(self, call: PreparedCall, read: Callable[[str], T]) -> JudgeAnswer[T]:
        """The judge's answer to ``call``, read with ``read`` (which raises AnswerUnreadable).

        Raises:
            BudgetExhausted: the call would take the run past its budget; it was not made.
            JudgeUnavailable: the endpoint refuses every call or cannot be reached.
            JudgeStopped: too many questions in a row got no answer; the judge is not asked.
            JudgeDeferred: every attempt hit a rate limit, a server error or a timeout.
        """
        if self.session.use_cache:
            asking = self._asking.get(call.key)
            if asking is not None:  # the same question is in flight for another span: share it
                await asyncio.wait([asking])
            hit = self._cached.get(call.key)
            if hit is not None:
                try:
                    return JudgeAnswer(read(hit.text), hit.text, None, hit.input_tokens,
                                       hit.output_tokens, 0.0, True, 0)
                except AnswerUnreadable:
                    pass  # read differently now (e.g. labels changed): ask again
        if self.unavailable is not None:
            raise self.unavailable
        done = asyncio.get_running_loop().create_future()
        self._asking.setdefault(call.key, done)
        try:
            async with self._in_progress:
                answer = await _Attempts(self, call, read).run()
        except JudgeUnavailable as exc:
            self.unavailable = self.unavailable or exc
            raise
        except JudgeDeferred as exc:
            self._no_answer(exc)
            raise
        finally:
            if self._asking.get(call.key) is done:
                del self._asking[call.key]
            done.set_result(None)
        self.failed_in_a_row = 0
        if answer.value is not None and answer.text is not None:
            self._cached[call.key] = CachedAnswer(answer.text, answer.input_tokens,
                                                  answer.output_tokens, answer.cost)
        return answer

    def _no_answer(self, deferred: JudgeDeferred) -> None:
        """Count a question left unanswered; raise JudgeStopped when it is one too many."""
        limit = self.judge.max_consecutive_failures
        if self.unavailable is not None or limit is None:
            return
        self.failed_in_a_row += 1
        if self.failed_in_a_row >= limit:
            self.unavailable = JudgeStopped(
                f"judge {self.name!r} ({self.judge.model} at {_shown_endpoint(self)}): "
                f"{self.failed_in_a_row} spans in a row got no answer through all their "
                f"retries, so this run stopped asking it; the last: {deferred.problem}")
            raise self.unavailable from None


class _Attempts(Generic[T]):
    """The attempts at one question, with what they cost and how the last one failed."""

    def __init__(self, client: JudgeClient, call: PreparedCall, read: Callable[[str], T]) -> None:
        self.client, self.call, self.read = client, call, read
        self.cost: float | None = 0.0
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.problem = "no attempt was made"
        self.text: str | None = None
        self.kinds: list[str] = []
        self.replaying = False
        """Whether the last attempt replayed an unreadable answer a previous run paid for."""

    async def run(self) -> JudgeAnswer[T]:
        judge = self.client.judge
        retry_after: float | None = None
        for attempt in range(judge.max_retries + 1):
            if attempt:
                await self.client.session.sleep(
                    _backoff(judge.retry_backoff_s, attempt, retry_after))
            retry_after = None
            try:
                value = await self._attempt(attempt)
            except BudgetExhausted:
                if "unreadable" not in self.kinds:
                    raise  # nothing was paid for: no verdict, the next run asks
                # An unreadable answer was paid for: keep it, and its cost, on the error.
                self.problem += " (the budget stopped further attempts)"
                return self._answer(None, len(self.kinds))
            except RetryableError as exc:
                self.problem, self.text = str(exc), exc.raw or self.text
                self.kinds.append(exc.kind)
                retry_after = exc.retry_after
                continue
            except AnswerIncomplete as exc:
                # Cut short (token cap, content filter, refusal): asking again would pay for
                # the same, so this is the error verdict now.
                self.problem = str(exc)
                self.kinds.append("unreadable")
                return self._answer(None, attempt + 1)
            except AnswerUnreadable as exc:
                self.problem = f"unreadable answer: {exc}"
                self.kinds.append("unreadable")
                continue
            except RejectedError as exc:
                self.problem = str(exc)
                return self._answer(None, attempt + 1)
            return self._answer(value, attempt + 1)
        if self.kinds and all(kind == "connection" for kind in self.kinds):
            raise JudgeUnavailable(f"judge {self.client.name!r}: {self.problem} "
                                   f"({len(self.kinds)} attempts)")
        self.problem += f" (after {len(self.kinds)} attempts)"
        if self.kinds and all(kind in TRANSIENT_KINDS for kind in self.kinds):
            raise JudgeDeferred(self.client.name, self.problem)
        return self._answer(None, len(self.kinds))

    async def _attempt(self, attempt: int) -> T:
        replayed = await self._replayed(attempt)
        if replayed is not None:
            return self._read(replayed)
        client = self.client
        async with client.limiter.slot(self.call.estimated_tokens):
            if client.unavailable is not None:  # refused for good while this call waited
                raise client.unavailable
            reservation = await client.session.budget.reserve(self.call.max_cost)
            cost: float | None = 0.0  # providers bill no failed call (429, 5xx, timeout)
            try:
                reply = await self._send()
                cost = cost_of(client.prices, reply.input_tokens, reply.output_tokens)
            finally:
                await client.session.budget.settle(reservation, cost)
        self._record(reply, cost)
        try:
            value = self._read(reply)  # the answer was paid for even when it cannot be read
        except AnswerUnreadable:
            self._remember(reply, cost, attempt_key(self.call.key, attempt))
            raise
        self._remember(reply, cost, self.call.key)
        return value

    def _read(self, reply: JudgeReply) -> T:
        """The value of ``reply``; raises AnswerIncomplete or AnswerUnreadable."""
        if reply.stop is not None:
            self.text = reply.text
            raise AnswerIncomplete(_incomplete(reply.stop, self.client.judge.max_tokens))
        return self.read(reply.text)

    async def _replayed(self, attempt: int) -> JudgeReply | None:
        """The unreadable answer a previous run paid for at this attempt, if one is kept.

        The first attempt's comes with the page's prefetch; a later one is looked up only
        while replaying (the attempt before it was replayed too).
        """
        session = self.client.session
        if not session.use_cache or session.store is None:
            return None
        key = attempt_key(self.call.key, attempt)
        hit = self.client._cached.get(key)
        if hit is None and attempt > 0 and self.replaying:
            hit = (await asyncio.to_thread(cached_answers, session.store, [key])).get(key)
        self.replaying = hit is not None
        if hit is None:
            return None
        self.text = hit.text
        return JudgeReply(hit.text, hit.input_tokens, hit.output_tokens, hit.stop)

    async def _send(self) -> JudgeReply:
        client = self.client
        try:
            return await self._send_within_timeout()
        except StructuredOutputRejected as exc:
            if client.judge.structured_output == "json_schema":
                raise JudgeUnavailable(
                    f"judge {client.name!r}: {exc}; the judge sets structured_output: "
                    "json_schema (use auto to fall back to JSON asked for in the prompt)"
                ) from None
            client.provider.structured = False
            return await self._send_within_timeout()
        except RetryableError as exc:
            if exc.kind == "rate_limited":
                wait = 1.0 if exc.retry_after is None else exc.retry_after  # 0 means now
                client.limiter.pause(min(wait, _MAX_WAIT_S))
            raise

    async def _send_within_timeout(self) -> JudgeReply:
        """One call, given ``timeout_s`` in all: the SDKs' timeout bounds each wait for bytes,
        so a server trickling its answer would otherwise hold the call for ever."""
        client = self.client
        try:
            async with asyncio.timeout(client.judge.timeout_s):
                return await client.provider.send(self._body())
        except TimeoutError:
            raise RetryableError(f"{client.provider.where} did not answer within "
                                 f"{client.judge.timeout_s:g} s", kind="timeout") from None

    def _body(self) -> dict[str, Any]:
        provider = self.client.provider
        return self.call.body if provider.structured else provider.plain_body(self.call.body)

    def _record(self, reply: JudgeReply, cost: float | None) -> None:
        self.text = reply.text
        if reply.input_tokens is not None:
            self.input_tokens = (self.input_tokens or 0) + reply.input_tokens
        if reply.output_tokens is not None:
            self.output_tokens = (self.output_tokens or 0) + reply.output_tokens
        self.cost = None if cost is None or self.cost is None else self.cost + cost
        used = None if reply.input_tokens is None else reply.input_tokens + (
            reply.output_tokens or 0)
        self.client.limiter.used_tokens(self.call.estimated_tokens, used)

    def _remember(self, reply: JudgeReply, cost: float | None, key: str) -> None:
        writer = self.client.session.writer
        if writer is None:
            return
        client = self.client
        writer.put(CacheEntry(
            key=key, provider=client.provider.name, model=client.judge.model,
            request=self.call.body, text=reply.text, input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens, cost=cost, stop=reply.stop))

    def _answer(self, value: T | None, attempts: int) -> JudgeAnswer[T]:
        return JudgeAnswer(value, self.text, None if value is not None else self.problem,
                           self.input_tokens, self.output_tokens, self.cost, False, attempts)


class AnswerIncomplete(AnswerUnreadable):
    """The provider says the answer was cut short: whatever it holds is not a verdict."""


def _incomplete(stop: str, max_tokens: int) -> str:
    if stop in ("length", "max_tokens"):
        return (f"the answer was cut off at the judge's max_tokens ({max_tokens}; "
                f"finish reason {stop!r}): raise max_tokens")
    if stop == "content_filter":
        return "the provider's content filter stopped the answer (finish reason 'content_filter')"
    if stop == "refusal":
        return "the model refused to answer"
    return f"the answer is incomplete (finish reason {stop!r})"


def _endpoint_key(provider: str, judge: JudgeConfig) -> bytes:
    """What, besides the body, decides an answer: the provider and, when not its own, the
    endpoint (two servers may serve different models under one name), without credentials."""
    key = provider.encode() + b"\x00"
    if judge.base_url or judge.query:
        url = httpx.URL(judge.base_url or "")
        url = url.copy_with(username=None, password=None)
        key += orjson.dumps([str(url).rstrip("/"), sorted((judge.query or {}).items())]) + b"\x00"
    return key


def _shown_endpoint(client: JudgeClient) -> str:
    """The judge's endpoint as a user knows it, without credentials (nor a query, which may
    hold a key)."""
    if client.judge.base_url is None:
        return f"the {client.provider.name} API"
    url = httpx.URL(client.judge.base_url).copy_with(username=None, password=None, query=None)
    return str(url).rstrip("/")


def _backoff(base: float, attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, _MAX_WAIT_S)
    wait: float = base * 2 ** (attempt - 1) * random.uniform(0.75, 1.25)
    return min(wait, _MAX_WAIT_S)
