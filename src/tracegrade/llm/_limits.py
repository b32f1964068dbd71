"""Keeping a judge within its provider's limits: concurrency, requests/min, tokens/min, 429s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

Clock = Callable[[], float]
"""Seconds on a monotonic clock (``time.monotonic``, or a test's own)."""
Sleep = Callable[[float], Awaitable[None]]
"""Waits a number of seconds (``asyncio.sleep``, or a test's own)."""


async def asyncio_sleep(seconds: float) -> None:
    """``asyncio.sleep``, looked up when called (the default :data:`Sleep`)."""
    await asyncio.sleep(seconds)


class TokenBucket:
    """A token bucket that refills at ``rate`` per second up to ``capacity``.

    A taker waits until the bucket holds what it asks for (or is full, for a request larger
    than the bucket) and may drive it below zero; later takers then wait for the refill. Takers
    are served one at a time, in arrival order, so the long-run rate never exceeds ``rate``.
    """

    def __init__(self, rate: float, capacity: float, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio_sleep) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("a token bucket needs a positive rate and capacity")
        self.rate, self.capacity = rate, capacity
        self._clock = clock
        self._sleep = sleep
        self._level = capacity
        self._updated = clock()
        self._turn = asyncio.Lock()

    def level(self) -> float:
        """Tokens available now (negative after an overdraft)."""
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._updated) * self.rate)
        self._updated = now
        return self._level

    async def take(self, amount: float) -> None:
        """Wait until ``amount`` may be taken, then take it."""
        async with self._turn:
            needed = min(amount, self.capacity)
            while (level := self.level()) < needed:
                # At least 0.1 ms: float rounding must not spin on waits of 1e-17 s.
                await self._sleep(max((needed - level) / self.rate, 1e-4))
            self._level -= amount

    def give_back(self, amount: float) -> None:
        """Return tokens that were taken but not used (or take more when negative)."""
        self._level = min(self.capacity, self.level() + amount)


class RateLimiter:
    """Everything that gates one judge's calls, shared by every grader that uses the judge.

    - at most ``max_concurrency`` calls in flight;
    - requests spaced to stay under ``requests_per_minute`` (a bucket of one request);
    - estimated tokens under ``tokens_per_minute`` (a bucket of one second's tokens);
    - after a 429, nobody sends until its ``Retry-After`` has passed.

    Every wait is measured on ``clock`` and waited with ``sleep``.
    """

    def __init__(self, max_concurrency: int, requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio_sleep) -> None:
        self._slots = asyncio.Semaphore(max_concurrency)
        self._clock, self._sleep = clock, sleep
        self._requests = (TokenBucket(requests_per_minute / 60.0, 1.0, clock=clock, sleep=sleep)
                          if requests_per_minute else None)
        self._tokens = (TokenBucket(tokens_per_minute / 60.0, tokens_per_minute / 60.0,
                                    clock=clock, sleep=sleep)
                        if tokens_per_minute else None)
        self._resume_at = 0.0

    @asynccontextmanager
    async def slot(self, tokens: int) -> AsyncIterator[None]:
        """Hold one of the concurrency slots; the rate limits are passed before it is yielded."""
        async with self._slots:
            await self._wait_out_pause()
            if self._requests is not None:
                await self._requests.take(1)
            if self._tokens is not None:
                await self._tokens.take(tokens)
            await self._wait_out_pause()
            yield

    def used_tokens(self, estimated: int, actual: int | None) -> None:
        """Correct the tokens/min bucket once a call's real usage is known."""
        if self._tokens is not None and actual is not None:
            self._tokens.give_back(estimated - actual)

    def pause(self, seconds: float) -> None:
        """Hold every call back for ``seconds`` (the provider said it is rate-limited)."""
        self._resume_at = max(self._resume_at, self._clock() + seconds)

    async def _wait_out_pause(self) -> None:
        while (wait := self._resume_at - self._clock()) > 0:
            await self._sleep(wait)
