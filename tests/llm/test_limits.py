"""Token buckets, the budget (on a clock the test controls) and the judge cache writer."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from tracegrade.llm import Budget, BudgetExhausted, TokenBucket, prices_for
from tracegrade.llm import _cache as cache_module
from tracegrade.llm._cache import CacheEntry, CacheWriter, cached_answers
from tracegrade.llm._config import JudgeConfig
from tracegrade.llm._errors import retry_after
from tracegrade.store import Store, open_store


class Clock:
    """A monotonic clock that moves only when ``asyncio.sleep`` is awaited through it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_takes(bucket: TokenBucket, clock: Clock, amounts: list[float],
              monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Take each amount in turn; the clock time at which each was granted."""
    async def fake_sleep(seconds: float) -> None:
        clock.now += seconds

    monkeypatch.setattr("tracegrade.llm._limits.asyncio.sleep", fake_sleep)

    async def takes() -> list[float]:
        granted = []
        for amount in amounts:
            await bucket.take(amount)
            granted.append(clock.now)
        return granted

    return asyncio.run(takes())


def test_a_one_request_bucket_spaces_requests_at_the_rate(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10.0, capacity=1.0, clock=clock)  # 600 requests a minute
    granted = run_takes(bucket, clock, [1.0] * 6, monkeypatch)
    assert granted == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], abs=1e-3)


def test_a_request_larger_than_the_bucket_overdraws_and_later_ones_wait(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    bucket = TokenBucket(rate=100.0, capacity=100.0, clock=clock)  # 6,000 tokens a minute
    granted = run_takes(bucket, clock, [300.0, 50.0, 50.0], monkeypatch)
    # 300 leaves -200; the next 50 waits for 250 tokens (2.5 s), the one after for 50 more.
    assert granted == pytest.approx([0.0, 2.5, 3.0], abs=1e-3)
    assert bucket.level() == pytest.approx(0.0, abs=0.1)


def test_returned_tokens_shorten_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    bucket = TokenBucket(rate=100.0, capacity=100.0, clock=clock)
    run_takes(bucket, clock, [100.0], monkeypatch)
    bucket.give_back(60.0)  # the call used 40 of the 100 it was estimated at
    assert bucket.level() == pytest.approx(60.0)


def test_the_budget_lets_calls_in_flight_settle_before_giving_up() -> None:
    async def scenario() -> tuple[list[str], Budget]:
        budget = Budget(1.0)
        events: list[str] = []
        first = await budget.reserve(0.6)

        async def second() -> None:
            try:
                await budget.reserve(0.6)  # fits only once the first call settles cheaply
                events.append("second reserved")
            except BudgetExhausted:
                events.append("second refused")

        waiting = asyncio.create_task(second())
        await asyncio.sleep(0)
        events.append("first settles")
        await budget.settle(first, 0.1)
        await waiting
        return events, budget

    events, budget = asyncio.run(scenario())
    assert events == ["first settles", "second reserved"]
    assert budget.spent == pytest.approx(0.1) and budget.reserved == pytest.approx(0.6)


def test_the_budget_refuses_once_nothing_in_flight_could_free_room() -> None:
    async def scenario() -> Budget:
        budget = Budget(0.5)
        reservation = await budget.reserve(0.3)
        await budget.settle(reservation, 0.3)
        with pytest.raises(BudgetExhausted, match=r"budget of \$0.5000 reached"):
            await budget.reserve(0.3)
        with pytest.raises(BudgetExhausted):
            await budget.reserve(0.01)  # exhausted for good, even for a small call
        return budget

    budget = asyncio.run(scenario())
    assert budget.exhausted and budget.spent == pytest.approx(0.3)


def test_an_unknown_cost_keeps_its_reservation() -> None:
    async def scenario() -> Budget:
        budget = Budget(1.0)
        reservation = await budget.reserve(0.4)
        await budget.settle(reservation, None)
        return budget

    assert asyncio.run(scenario()).spent == pytest.approx(0.4)


def test_the_budget_refuses_at_once_when_float_sums_leave_a_crumb_reserved() -> None:
    """0.1 + 0.2 - 0.1 - 0.2 is 2.8e-17, not 0: the budget must not wait for a settlement
    that can never come (it once did, and a `--budget` run hung)."""
    async def scenario() -> Budget:
        budget = Budget(1.0)
        first, second = await budget.reserve(0.1), await budget.reserve(0.2)
        await budget.settle(first, 0.1)
        await budget.settle(second, 0.2)
        with pytest.raises(BudgetExhausted):
            await asyncio.wait_for(budget.reserve(0.8), timeout=5)
        return budget

    budget = asyncio.run(scenario())
    assert budget.in_flight == 0 and budget.reserved == 0.0


def test_a_failed_cache_write_is_retried_not_dropped(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real = cache_module.write_answers
    calls: list[int] = []

    def flaky(store: Store, batch: Any, *, replace: bool = False) -> None:
        calls.append(len(batch))
        if len(calls) == 1:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        real(store, batch, replace=replace)

    monkeypatch.setattr(cache_module, "write_answers", flaky)

    def entry(key: str) -> CacheEntry:
        return CacheEntry(key, "openai", "m", {"k": key}, '{"verdict": "pass"}', 1, 1, 0.0)

    async def scenario(store: Store) -> None:
        writer = CacheWriter(store)
        writer.put(entry("a"))
        await asyncio.sleep(0.2)  # the first write fails meanwhile
        writer.put(entry("b"))
        await writer.flush()

    with open_store(f"sqlite:///{tmp_path / 'cache.db'}") as store:
        asyncio.run(scenario(store))
        assert sorted(cached_answers(store, ["a", "b"])) == ["a", "b"]
    assert len(calls) >= 2


@pytest.mark.parametrize(("model", "price"), [
    ("gpt-4.1-mini-2025-04-14", (0.40, 1.60)),
    ("o3-mini", (1.10, 4.40)),
    ("o3-2025-04-16", (2.0, 8.0)),
    ("gpt-4o-2024-05-13", (5.0, 15.0)),
    ("gpt-4o-2024-08-06", (2.50, 10.0)),
    ("openai/gpt-4o-mini", (0.15, 0.60)),
])
def test_a_model_takes_the_price_of_its_longest_known_prefix(model: str,
                                                             price: tuple[float, float]) -> None:
    prices = prices_for(JudgeConfig(model=model))
    assert prices is not None and (prices.input, prices.output) == price


@pytest.mark.parametrize("zone", ["GMT", "+0000", "-0000"])
def test_a_retry_after_date_is_read_in_utc(zone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")  # a naive date read as local time is 5 h off
    time.tzset()
    try:
        moment = datetime.now(UTC) + timedelta(seconds=30)
        header = moment.strftime(f"%a, %d %b %Y %H:%M:%S {zone}")
        waited = retry_after({"retry-after": header})
        assert waited is not None and 25 <= waited <= 31
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
