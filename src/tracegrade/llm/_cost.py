"""What judge calls cost: a price table, usage × price, and the run's budget.

Prices are US dollars per million tokens, as providers publish them. A judge's ``prices:`` in the
config overrides the table (a local model is ``{input: 0, output: 0}``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tracegrade.llm._config import JudgeConfig, Prices

PRICE_TABLE: dict[str, Prices] = {
    # OpenAI
    "gpt-5": Prices(input=1.25, output=10.0),
    "gpt-5-mini": Prices(input=0.25, output=2.0),
    "gpt-5-nano": Prices(input=0.05, output=0.40),
    "gpt-4.1": Prices(input=2.0, output=8.0),
    "gpt-4.1-mini": Prices(input=0.40, output=1.60),
    "gpt-4.1-nano": Prices(input=0.10, output=0.40),
    "gpt-4o": Prices(input=2.50, output=10.0),
    "gpt-4o-mini": Prices(input=0.15, output=0.60),
    "gpt-4o-2024-05-13": Prices(input=5.0, output=15.0),  # the first gpt-4o, priced higher
    "o3": Prices(input=2.0, output=8.0),
    "o3-mini": Prices(input=1.10, output=4.40),  # not o3's price, which its prefix would give
    "o4-mini": Prices(input=1.10, output=4.40),
    # Anthropic
    "claude-opus-4": Prices(input=15.0, output=75.0),
    "claude-sonnet-4": Prices(input=3.0, output=15.0),
    "claude-3-7-sonnet": Prices(input=3.0, output=15.0),
    "claude-haiku-4-5": Prices(input=1.0, output=5.0),
    "claude-3-5-haiku": Prices(input=0.80, output=4.0),
}
"""List prices of common judge models; a dated model name (``gpt-4.1-mini-2025-04-14``) takes
the price of its longest matching prefix."""


class BudgetExhausted(Exception):
    """The next judge call could take the run past its ``--budget``; it is not made."""


def prices_for(judge: JudgeConfig) -> Prices | None:
    """The judge's prices: its config's, else the table's for its model, else None (unknown)."""
    if judge.prices is not None:
        return judge.prices
    model = judge.model.lower().rsplit("/", 1)[-1]  # "openai/gpt-4.1" through a LiteLLM proxy
    matches = [name for name in PRICE_TABLE if model.startswith(name)]
    return PRICE_TABLE[max(matches, key=len)] if matches else None


def cost_of(prices: Prices | None, input_tokens: int | None, output_tokens: int | None
            ) -> float | None:
    """Dollars for one call's usage; None when the price or the usage is unknown."""
    if prices is None or input_tokens is None or output_tokens is None:
        return None
    return (input_tokens * prices.input + output_tokens * prices.output) / 1_000_000


@dataclass
class Reservation:
    """Money set aside for one call in flight, settled when its answer (or failure) is in."""

    amount: float
    settled: bool = False


class Budget:
    """Dollars one run may spend on judge calls, shared by every judge grader in the run.

    A call reserves its worst case (the prompt's byte count as tokens plus ``max_tokens``)
    before it is sent and settles at its real cost, so calls in flight together can never take
    the run past the limit. When a reservation does not fit while others are in flight, it
    waits for them to settle; when it still does not fit, the budget is exhausted for good.
    """

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self.spent = 0.0
        self.reserved = 0.0
        self.in_flight = 0
        """Reservations not yet settled (counted, since the float sum need not return to 0)."""
        self.exhausted = False
        self._settled = asyncio.Condition()

    async def reserve(self, amount: float) -> Reservation:
        """Set ``amount`` aside, waiting for calls in flight when needed.

        Raises:
            BudgetExhausted: it cannot fit, now or after every call in flight settled.
        """
        if self.limit is None:
            return Reservation(0.0)
        async with self._settled:
            while not self.exhausted and self.spent + self.reserved + amount > self.limit:
                if self.in_flight == 0:
                    self.exhausted = True
                    break
                await self._settled.wait()
            if self.exhausted:
                raise BudgetExhausted(f"budget of ${self.limit:.4f} reached "
                                      f"(${self.spent:.4f} spent)")
            self.reserved += amount
            self.in_flight += 1
            return Reservation(amount)

    async def settle(self, reservation: Reservation, cost: float | None) -> None:
        """Replace the reservation by what the call cost (unknown cost keeps the reservation)."""
        if reservation.settled:
            return
        reservation.settled = True
        if self.limit is None:
            self.spent += cost or 0.0
            return
        async with self._settled:
            self.in_flight -= 1
            self.reserved = self.reserved - reservation.amount if self.in_flight else 0.0
            self.spent += reservation.amount if cost is None else cost
            self._settled.notify_all()
