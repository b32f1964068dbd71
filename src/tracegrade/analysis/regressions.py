"""Did a grader get worse between two releases? Tests, intervals, FDR control, and power.

For each grader the candidate release's pass rate is compared with the baseline's:
- Wilson intervals on each rate and a Newcombe interval on the difference (statsmodels);
- one-sided p-values for "worse" and for "better": Fisher's exact test when a table is small,
  the score test otherwise (scipy / statsmodels);
- Benjamini-Hochberg q-values across every grader compared
  (``scipy.stats.false_discovery_control``);
- the minimum detectable effect at the current sample sizes and, when the data cannot tell yet,
  how many more spans per release would detect the configured effect (statsmodels power).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from scipy.stats import false_discovery_control, fisher_exact
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    test_proportions_2indep,
)

from tracegrade.analysis.rates import PassRate, pass_rates, release_order
from tracegrade.store import Store


class FindingStatus(StrEnum):
    """How a grader's comparison ended."""

    REGRESSED = "regressed"
    IMPROVED = "improved"
    UNCHANGED = "unchanged"
    INSUFFICIENT = "insufficient data"


@dataclass(frozen=True)
class RegressionSettings:
    """Knobs of the comparison."""

    alpha: float = 0.05
    """The false discovery rate controlled across graders."""
    effect: float = 0.05
    """The drop in pass rate (absolute) the analysis must be able to detect to call it unchanged."""
    power: float = 0.8
    min_decided: int = 20
    """Fewer decided verdicts than this in either release is insufficient data outright."""


@dataclass
class Finding:
    """One grader's baseline-vs-candidate comparison."""

    grader: str
    grader_version: str
    baseline: PassRate
    candidate: PassRate
    difference: float | None
    diff_low: float | None
    diff_high: float | None
    p_worse: float | None
    p_better: float | None
    q_worse: float | None = None
    q_better: float | None = None
    mde: float | None = None
    more_spans_needed: int | None = None
    status: FindingStatus = FindingStatus.INSUFFICIENT

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {
            "grader": self.grader, "grader_version": self.grader_version,
            "status": self.status.value,
            "baseline": self.baseline.as_dict(), "candidate": self.candidate.as_dict(),
            "difference": self.difference, "difference_ci": [self.diff_low, self.diff_high],
            "p_value": self.p_worse, "q_value": self.q_worse,
            "p_value_improved": self.p_better, "q_value_improved": self.q_better,
            "minimum_detectable_effect": self.mde,
            "more_spans_needed_per_release": self.more_spans_needed,
        }


@dataclass
class RegressionReport:
    """Every grader compared between two releases."""

    baseline: str | None
    candidate: str | None
    findings: list[Finding]
    settings: RegressionSettings

    @property
    def regressed(self) -> list[Finding]:
        """The findings that got worse."""
        return [f for f in self.findings if f.status is FindingStatus.REGRESSED]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {
            "baseline": self.baseline, "candidate": self.candidate,
            "alpha": self.settings.alpha, "effect": self.settings.effect,
            "findings": [f.as_dict() for f in self.findings],
        }


class NotEnoughReleases(ValueError):
    """Fewer than two releases hold verdicts, or a named release holds none."""


def find_regressions(
    store: Store,
    baseline: str | None = None,
    candidate: str | None = None,
    settings: RegressionSettings | None = None,
) -> RegressionReport:
    """Compare the candidate release with the baseline for every grader.

    By default the candidate is the latest release (by first span) and the baseline the one
    before it.

    Raises:
        NotEnoughReleases: there is nothing to compare.
    """
    settings = settings or RegressionSettings()
    rates = pass_rates(store, settings.alpha)
    baseline, candidate = _choose_releases(rates, baseline, candidate)
    by_key = {(r.release, r.grader, r.grader_version): r for r in rates}
    series = sorted({(r.grader, r.grader_version) for r in rates})
    findings = [
        compare(_rate_or_empty(by_key, baseline, g, v), _rate_or_empty(by_key, candidate, g, v),
                settings)
        for g, v in series
        if (baseline, g, v) in by_key or (candidate, g, v) in by_key
    ]
    _apply_fdr(findings, settings)
    return RegressionReport(baseline, candidate, findings, settings)


def _choose_releases(rates: Sequence[PassRate], baseline: str | None, candidate: str | None
                     ) -> tuple[str | None, str | None]:
    order = release_order(rates)
    for name in (baseline, candidate):
        if name is not None and name not in order:
            known = ", ".join(str(r) for r in order) or "none"
            raise NotEnoughReleases(f"release {name!r} has no verdicts (releases: {known})")
    if candidate is None:
        candidate = _latest_other(order, baseline)
    if baseline is None:
        earlier = order[: order.index(candidate)] if candidate in order else []
        baseline = earlier[-1] if earlier else None
    if candidate is None or baseline is None or baseline == candidate:
        raise NotEnoughReleases(
            "need verdicts in two releases to compare; found "
            f"{len(order)} ({', '.join(str(r) for r in order) or 'none'})"
        )
    return baseline, candidate


def _latest_other(order: list[str | None], baseline: str | None) -> str | None:
    candidates = [r for r in order if r != baseline]
    return candidates[-1] if candidates else None


def _rate_or_empty(by_key: dict[tuple[str | None, str, str], PassRate], release: str | None,
                   grader: str, version: str) -> PassRate:
    return by_key.get((release, grader, version)) or PassRate(
        release=release, grader=grader, grader_version=version, passed=0, failed=0, errors=0,
        skipped=0, rate=None, low=None, high=None, effective_n=0.0)


def compare(baseline: PassRate, candidate: PassRate, settings: RegressionSettings) -> Finding:
    """Compare one grader's two rates (before FDR control, which needs every grader)."""
    finding = Finding(baseline.grader, baseline.grader_version, baseline, candidate,
                      None, None, None, None, None)
    if baseline.rate is None or candidate.rate is None:
        return finding
    n_b, n_c = baseline.effective_n, candidate.effective_n
    x_b, x_c = baseline.rate * n_b, candidate.rate * n_c
    finding.difference = candidate.rate - baseline.rate
    finding.diff_low, finding.diff_high = _newcombe(x_c, n_c, x_b, n_b, settings.alpha)
    finding.p_worse, finding.p_better = _one_sided_p(x_c, n_c, x_b, n_b)
    finding.mde = minimum_detectable_effect(baseline.rate, n_b, n_c, settings)
    return finding


def _newcombe(x1: float, n1: float, x2: float, n2: float, alpha: float) -> tuple[float, float]:
    low, high = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff",
                                           alpha=alpha)
    return float(low), float(high)


_EXACT_BELOW = 1000


def _one_sided_p(x_c: float, n_c: float, x_b: float, n_b: float) -> tuple[float, float]:
    """P-values for 'candidate passes less often' and 'candidate passes more often'."""
    if min(n_c, n_b) < _EXACT_BELOW:
        table = np.rint([[x_c, n_c - x_c], [x_b, n_b - x_b]]).astype(int)
        worse = fisher_exact(table, alternative="less").pvalue
        better = fisher_exact(table, alternative="greater").pvalue
        return float(worse), float(better)
    if x_c in (0, n_c) and x_b in (0, n_b) and x_c / n_c == x_b / n_b:
        return 1.0, 1.0
    worse = test_proportions_2indep(x_c, n_c, x_b, n_b, method="score", compare="diff",
                                    alternative="smaller").pvalue
    better = test_proportions_2indep(x_c, n_c, x_b, n_b, method="score", compare="diff",
                                     alternative="larger").pvalue
    return _finite(worse), _finite(better)


def _finite(p: Any) -> float:
    value = float(p)
    return 1.0 if math.isnan(value) else value


def minimum_detectable_effect(p_baseline: float, n_baseline: float, n_candidate: float,
                              settings: RegressionSettings) -> float | None:
    """The smallest drop from ``p_baseline`` detectable with the given power at these sizes."""
    if n_baseline < 2 or n_candidate < 2:
        return None
    h = NormalIndPower().solve_power(effect_size=None, nobs1=n_baseline,
                                     alpha=settings.alpha, power=settings.power,
                                     ratio=n_candidate / n_baseline, alternative="larger")
    phi = 2 * math.asin(math.sqrt(min(max(p_baseline, 0.0), 1.0)))
    lowered = max(phi - float(h), 0.0)
    return p_baseline - math.sin(lowered / 2) ** 2


def spans_needed(p_baseline: float, settings: RegressionSettings) -> int:
    """Decided verdicts per release needed to detect a drop of ``settings.effect``."""
    target = max(p_baseline - settings.effect, 0.0)
    if p_baseline <= 0 or target == p_baseline:
        return 0
    h = proportion_effectsize(p_baseline, target)
    n = NormalIndPower().solve_power(effect_size=h, nobs1=None, alpha=settings.alpha,
                                     power=settings.power, ratio=1.0, alternative="larger")
    return math.ceil(float(n))


def _apply_fdr(findings: list[Finding], settings: RegressionSettings) -> None:
    tested = [f for f in findings if f.p_worse is not None and f.p_better is not None]
    if tested:
        q_worse = false_discovery_control([f.p_worse for f in tested], method="bh")
        q_better = false_discovery_control([f.p_better for f in tested], method="bh")
        for finding, qw, qb in zip(tested, q_worse, q_better, strict=True):
            finding.q_worse, finding.q_better = float(qw), float(qb)
    for finding in findings:
        finding.status = _status(finding, settings)


def _status(finding: Finding, settings: RegressionSettings) -> FindingStatus:
    b, c = finding.baseline, finding.candidate
    if finding.q_worse is None or min(b.decided, c.decided) < settings.min_decided:
        _set_needed(finding, settings)
        return FindingStatus.INSUFFICIENT
    if finding.q_worse < settings.alpha:
        return FindingStatus.REGRESSED
    if finding.q_better is not None and finding.q_better < settings.alpha:
        return FindingStatus.IMPROVED
    if finding.mde is not None and finding.mde <= settings.effect:
        return FindingStatus.UNCHANGED
    _set_needed(finding, settings)
    return FindingStatus.INSUFFICIENT


def _set_needed(finding: Finding, settings: RegressionSettings) -> None:
    p = finding.baseline.rate if finding.baseline.rate is not None else 0.9
    needed = spans_needed(p, settings)
    have = min(finding.baseline.effective_n, finding.candidate.effective_n)
    finding.more_spans_needed = max(0, math.ceil(needed - have))
