"""Pass rates per release × grader, with counts and Wilson intervals; errors kept apart.

Rates are over decided verdicts (pass + fail). ``error`` and ``skip`` are counted beside the rate
and never enter it. When spans were sampled with unequal inclusion probabilities the rate is the
Hajek estimate (each verdict weighted by 1 / inclusion probability) and its variance is the
matching linearisation variance (see :func:`~tracegrade.analysis.comparison.weighted_rate`);
the interval is Wilson's at the sample size that variance is worth, so a heavily weighted
handful of spans cannot pose as a large sample.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tracegrade.analysis import comparison
from tracegrade.analysis._aggregate import SeriesKey, Tally, tally_verdicts
from tracegrade.spans import natural_key

if TYPE_CHECKING:
    from tracegrade.analysis.regressions import RegressionSettings
    from tracegrade.store import Store


@dataclass(frozen=True)
class PassRate:
    """One grader's pass rate in one release (or one slice of it)."""

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

    @property
    def error_share(self) -> float | None:
        """Errors among verdicts that were not skipped."""
        judged = self.decided + self.errors
        return self.errors / judged if judged else None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {
            "release": self.release, "grader": self.grader,
            "grader_version": self.grader_version, "passed": self.passed,
            "failed": self.failed, "errors": self.errors, "skipped": self.skipped,
            "pass_rate": self.rate, "ci_low": self.low, "ci_high": self.high,
            "effective_n": round(self.effective_n, 2), "error_share": self.error_share,
        }

    @classmethod
    def empty(cls, release: str | None, grader: str, grader_version: str) -> PassRate:
        """No verdicts at all."""
        return cls(release, grader, grader_version, 0, 0, 0, 0, None, None, None, 0.0)


def rate_from_tally(series: SeriesKey, tally: Tally, alpha: float = 0.05) -> PassRate:
    """A pass rate with its Wilson interval at the effective sample size."""
    release, grader, version = series
    rate = low = high = None
    effective_n = 0.0
    if tally.decided:
        weighted = comparison.weighted_rate(tally.w_pass, tally.w_fail, tally.w2_pass,
                                            tally.w2_fail, tally.decided)
        rate = float(weighted.rate)
        effective_n = comparison.class_effective_n(tally.classes, rate,
                                                   float(weighted.effective_n))
        lows, highs = comparison.wilson_interval(rate * effective_n, effective_n, alpha)
        low, high = float(lows), float(highs)
    return PassRate(
        release=release, grader=grader, grader_version=version, passed=tally.passed,
        failed=tally.failed, errors=tally.errors, skipped=tally.skipped, rate=rate, low=low,
        high=high, effective_n=effective_n, first_seen=tally.first,
    )


def wilson_interval(successes: float, n: float, alpha: float = 0.05) -> tuple[float, float]:
    """The Wilson score interval (statsmodels) for ``successes`` out of ``n``."""
    low, high = comparison.wilson_interval(successes, n, alpha)
    return float(low), float(high)


def pass_rates(store: Store, alpha: float = 0.05, settings: RegressionSettings | None = None
               ) -> list[PassRate]:
    """Every (release, grader, grader version) with its pass rate, in release order."""
    releases = settings.releases if settings else "span"
    environment = settings.environment if settings else None
    tallies = tally_verdicts(store, releases, (), environment).overall()
    return rates_in_order(tallies, alpha)


def rates_in_order(tallies: dict[SeriesKey, Tally], alpha: float = 0.05) -> list[PassRate]:
    """Pass rates sorted by release (first span), grader and version."""
    rates = [rate_from_tally(series, tally, alpha) for series, tally in tallies.items()]
    starts = release_starts(rates)
    return sorted(rates, key=lambda r: (starts.get(r.release) or _MAX,
                                        natural_key(str(r.release)), r.grader,
                                        r.grader_version))


_MAX = datetime.max.replace(tzinfo=UTC)


def release_starts(rates: Iterable[PassRate]) -> dict[str | None, datetime]:
    """Each release's earliest graded span."""
    starts: dict[str | None, datetime] = {}
    for rate in rates:
        first = rate.first_seen
        if first is not None and (rate.release not in starts or first < starts[rate.release]):
            starts[rate.release] = first
    return starts


def release_order(rates: Iterable[PassRate]) -> list[str | None]:
    """Releases in the order they first appeared (rates are already in that order)."""
    order: list[str | None] = []
    for rate in rates:
        if rate.release not in order:
            order.append(rate.release)
    return order


def judged_releases(rates: Iterable[PassRate]) -> frozenset[str | None]:
    """Releases with at least one decided (pass/fail) or error verdict: the ones a comparison
    can say something about (a release graded only with skips cannot)."""
    return frozenset(rate.release for rate in rates if rate.decided or rate.errors)
