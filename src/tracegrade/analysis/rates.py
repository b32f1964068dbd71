"""Pass rates per release × grader, with counts and Wilson intervals; errors kept apart.

Rates are over decided verdicts (pass + fail). ``error`` and ``skip`` are counted beside the rate
and never enter it. When spans were sampled with unequal inclusion probabilities the rate is the
Hajek estimate (each verdict weighted by 1 / inclusion probability) and the interval uses Kish's
effective sample size, so a heavily weighted handful of spans cannot pose as a large sample.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from statsmodels.stats.proportion import proportion_confint

from tracegrade.store import Store


@dataclass(frozen=True)
class PassRate:
    """One grader's pass rate in one release."""

    release: str | None
    grader: str
    grader_version: str
    passed: int
    failed: int
    errors: int
    skipped: int
    rate: float | None
    low: float | None
    high: float | None
    effective_n: float
    first_seen: datetime | None = None

    @property
    def decided(self) -> int:
        """Verdicts that count toward the rate (pass + fail)."""
        return self.passed + self.failed

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {
            "release": self.release, "grader": self.grader,
            "grader_version": self.grader_version, "passed": self.passed,
            "failed": self.failed, "errors": self.errors, "skipped": self.skipped,
            "pass_rate": self.rate, "ci_low": self.low, "ci_high": self.high,
            "effective_n": round(self.effective_n, 2),
        }


def wilson_interval(successes: float, n: float, alpha: float = 0.05) -> tuple[float, float]:
    """The Wilson score interval (statsmodels) for ``successes`` out of ``n``."""
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return float(low), float(high)


@dataclass
class _Cell:
    counts: dict[str, int]
    weight: dict[str, float]
    weight_sq: dict[str, float]
    first: datetime | None = None


def pass_rates(store: Store, alpha: float = 0.05) -> list[PassRate]:
    """Every (release, grader, grader version) with its pass rate, in release order."""
    return rates_from_counts(store.verdict_counts(), alpha)


def rates_from_counts(rows: Iterable[dict[str, Any]], alpha: float = 0.05) -> list[PassRate]:
    """Turn per-outcome aggregate rows (see ``Store.verdict_counts``) into pass rates."""
    cells: dict[tuple[str | None, str, str], _Cell] = {}
    for row in rows:
        key = (row["release"], row["grader"], row["grader_version"])
        cell = cells.setdefault(key, _Cell({}, {}, {}))
        outcome = row["outcome"]
        cell.counts[outcome] = cell.counts.get(outcome, 0) + int(row["n"])
        cell.weight[outcome] = cell.weight.get(outcome, 0.0) + float(row["weight"])
        cell.weight_sq[outcome] = cell.weight_sq.get(outcome, 0.0) + float(row["weight_sq"])
        first = row.get("first")
        if first is not None and (cell.first is None or first < cell.first):
            cell.first = first
    release_start = _release_starts(cells)
    rates = [_rate(key, cell, alpha) for key, cell in cells.items()]
    return sorted(rates, key=lambda r: (release_start.get(r.release) or _MAX, str(r.release),
                                        r.grader, r.grader_version))


_MAX = datetime.max.replace(tzinfo=UTC)


def _release_starts(cells: dict[tuple[str | None, str, str], _Cell]
                    ) -> dict[str | None, datetime]:
    starts: dict[str | None, datetime] = {}
    for (release, _, _), cell in cells.items():
        if cell.first is None:
            continue
        if release not in starts or cell.first < starts[release]:
            starts[release] = cell.first
    return starts


def _rate(key: tuple[str | None, str, str], cell: _Cell, alpha: float) -> PassRate:
    passed, failed = cell.counts.get("pass", 0), cell.counts.get("fail", 0)
    w_pass, w_fail = cell.weight.get("pass", 0.0), cell.weight.get("fail", 0.0)
    w_sq = cell.weight_sq.get("pass", 0.0) + cell.weight_sq.get("fail", 0.0)
    rate = low = high = None
    effective_n = 0.0
    if passed + failed:
        rate = w_pass / (w_pass + w_fail)
        effective_n = (w_pass + w_fail) ** 2 / w_sq
        low, high = wilson_interval(rate * effective_n, effective_n, alpha)
    return PassRate(
        release=key[0], grader=key[1], grader_version=key[2], passed=passed, failed=failed,
        errors=cell.counts.get("error", 0), skipped=cell.counts.get("skip", 0), rate=rate,
        low=low, high=high, effective_n=effective_n, first_seen=cell.first,
    )


def release_order(rates: Iterable[PassRate]) -> list[str | None]:
    """Releases in the order they first appeared."""
    order: list[str | None] = []
    for rate in rates:
        if rate.release not in order:
            order.append(rate.release)
    return order
