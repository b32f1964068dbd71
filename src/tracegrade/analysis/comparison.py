"""The statistics of a baseline-vs-candidate comparison, vectorised over many tests at once.

Everything here takes numpy arrays (one element per grader or slice) so the product and the
validation simulations run the very same code:

- :func:`weighted_rate`: the Hajek (inverse-probability weighted) pass rate, its linearisation
  variance, and the effective sample size that variance implies;
- :func:`two_sample`: the difference with a Newcombe interval and one-sided p-values — the
  score test for large tables, an exact test (Boschloo, or Fisher when Boschloo would be slow)
  for small ones;
- :func:`cmh`: the Cochran-Mantel-Haenszel test within strata (statsmodels ``StratifiedTable``),
  or its exact conditional form (:func:`exact_stratified_p`) when the strata are too small for
  the chi-square approximation (the Mantel-Fleiss criterion);
- :func:`benjamini_hochberg`, :func:`minimum_detectable_effect`, :func:`spans_needed`,
  :func:`decide`.

Power comes from statsmodels' ``power_proportions_2indep`` (the score test's null and
alternative variances), solved for the effect or the sample size with scipy's ``brentq``. Two
small pieces are written out: the sign of the CMH statistic (its magnitude comes from
statsmodels), so the test can be one-sided; and the exact conditional CMH test, a convolution
of scipy's hypergeometric distributions (checked against Fisher's test and R's
``mantelhaen.test(exact = TRUE)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq
from scipy.stats import boschloo_exact, false_discovery_control, fisher_exact, hypergeom, norm
from statsmodels.stats.contingency_tables import StratifiedTable
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    power_proportions_2indep,
    proportion_confint,
    samplesize_proportions_2indep_onetail,
    test_proportions_2indep,
)

Floats = NDArray[np.float64]

EXACT_BELOW_EXPECTED = 5.0
"""A table whose smallest expected cell count is below this gets an exact test."""
BOSCHLOO_MAX_PRODUCT = 10_000
"""Boschloo's test costs about n_b × n_c (~0.1 s at 100 × 100); above it Fisher's is used."""

# Status codes used by the vectorised decision (see FindingStatus for the names).
REGRESSED, IMPROVED, UNCHANGED, INSUFFICIENT = 0, 1, 2, 3


def wilson_interval(successes: ArrayLike, n: ArrayLike, alpha: float = 0.05
                    ) -> tuple[Floats, Floats]:
    """The Wilson score interval (statsmodels) for ``successes`` out of ``n``."""
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return np.asarray(low, dtype=float), np.asarray(high, dtype=float)


@dataclass(frozen=True)
class WeightedRates:
    """Hajek pass rates with their variance and the sample size that variance is worth."""

    rate: Floats
    variance: Floats
    effective_n: Floats


def weighted_rate(w_pass: ArrayLike, w_fail: ArrayLike, w2_pass: ArrayLike,
                  w2_fail: ArrayLike, decided: ArrayLike | None = None) -> WeightedRates:
    """The Hajek pass rate ``Σ w·y / Σ w`` with its linearisation (sandwich) variance.

    With ``w = 1/π``: ``V = Σ w²(y − p̂)² / (Σ w)²``, which needs only the weight sums per
    outcome. This is the with-replacement form: it carries the sampling variance and the
    outcome's own Bernoulli variance, which is what a comparison of two releases' underlying
    pass rates needs (at π = 1 it is exactly the binomial ``p(1−p)/n``). It equals statsmodels'
    WLS-on-a-constant HC0 variance. The effective sample size is ``p(1−p)/V``; at p ∈ {0, 1},
    where V vanishes, Kish's ``(Σw)²/Σw²`` stands in.

    ``decided``, the number of verdicts behind the weights, caps the effective sample size:
    weights can shrink the variance estimate below the binomial one (many heavy passes, a few
    light failures), but a sample is never worth more verdicts than it holds.
    """
    wp, wf = np.asarray(w_pass, dtype=float), np.asarray(w_fail, dtype=float)
    w2p, w2f = np.asarray(w2_pass, dtype=float), np.asarray(w2_fail, dtype=float)
    total = wp + wf
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(total > 0, wp / total, np.nan)
        variance = ((1 - rate) ** 2 * w2p + rate ** 2 * w2f) / total ** 2
        kish = np.where(total > 0, total ** 2 / (w2p + w2f), 0.0)
        bernoulli = rate * (1 - rate)
        effective = np.where(variance > 0, bernoulli / variance, kish)
    effective = np.where(total > 0, effective, 0.0)
    if decided is not None:
        effective = np.minimum(effective, np.asarray(decided, dtype=float))
    return WeightedRates(rate, variance, effective)


def class_effective_n(classes: Mapping[float, Sequence[int]], rate: float,
                      effective_n: float) -> float:
    """:func:`weighted_rate`'s effective size, lowered where a weight class's verdicts all agree.

    ``classes`` holds ``[passes, fails]`` per weight. The linearisation variance is
    ``Σ_h w_h² n_h [p_h(1 − p_h) + (p_h − p̂)²] / (Σ w)²`` over the classes; a class whose few
    verdicts happen to agree (p_h ∈ {0, 1}) contributes no spread of its own, as if its rate
    were known exactly, and a heavily weighted one then makes the whole sample look far surer
    than it is (most traffic sampled at 1%, 18 verdicts from it, all passing: a 5%-level test
    flagged 8% of unchanged releases). Such a class's ``p_h(1 − p_h)`` is taken at Jeffreys'
    ``(x + ½)/(n + 1)`` instead. Classes with both outcomes are left as they are, so with one
    class, or none that agrees throughout, this is ``effective_n`` unchanged; it only ever
    lowers it.
    """
    if len(classes) < 2 or not 0.0 < rate < 1.0:
        return effective_n
    total = sum(weight * (passes + fails) for weight, (passes, fails) in classes.items())
    variance = 0.0
    for weight, (passes, fails) in classes.items():
        n = passes + fails
        if n == 0:
            continue
        share = passes / n
        spread = share * (1 - share)
        if passes == 0 or fails == 0:
            spread = (passes + 0.5) / (n + 1) * (fails + 0.5) / (n + 1)
        variance += weight * weight * n * (spread + (share - rate) ** 2)
    variance /= total * total
    return min(rate * (1 - rate) / variance, effective_n) if variance > 0 else effective_n


@dataclass(frozen=True)
class TwoSample:
    """Per test: the candidate-minus-baseline difference, its interval, one-sided p-values."""

    difference: Floats
    low: Floats
    high: Floats
    p_worse: Floats
    p_better: Floats
    method: list[str]


def two_sample(x_b: ArrayLike, n_b: ArrayLike, x_c: ArrayLike, n_c: ArrayLike,
               alpha: float = 0.05) -> TwoSample:
    """Compare candidate with baseline pass counts, element by element.

    Args:
        x_b: baseline passes (effective counts may be fractional).
        n_b: baseline decided verdicts (effective).
        x_c: candidate passes.
        n_c: candidate decided verdicts.
        alpha: 1 − the confidence level of the difference's Newcombe interval.
    """
    xb, nb = np.atleast_1d(np.asarray(x_b, dtype=float)), np.atleast_1d(np.asarray(n_b, float))
    xc, nc = np.atleast_1d(np.asarray(x_c, dtype=float)), np.atleast_1d(np.asarray(n_c, float))
    difference = xc / nc - xb / nb
    low, high = confint_proportions_2indep(xc, nc, xb, nb, method="newcomb", compare="diff",
                                           alpha=alpha)
    worse, better = _score_p(xc, nc, xb, nb)
    method = ["score"] * len(xb)
    for i in np.flatnonzero(_is_small(xb, nb, xc, nc)):
        worse[i], better[i], method[i] = exact_p(xc[i], nc[i], xb[i], nb[i])
    return TwoSample(difference, np.asarray(low, float), np.asarray(high, float), worse, better,
                     method)


def _score_p(xc: Floats, nc: Floats, xb: Floats, nb: Floats) -> tuple[Floats, Floats]:
    with np.errstate(divide="ignore", invalid="ignore"):
        worse = test_proportions_2indep(xc, nc, xb, nb, method="score", compare="diff",
                                        alternative="smaller").pvalue
        better = test_proportions_2indep(xc, nc, xb, nb, method="score", compare="diff",
                                         alternative="larger").pvalue
    # All-pass (or all-fail) on both sides: no evidence either way.
    return (np.nan_to_num(np.asarray(worse, dtype=float), nan=1.0),
            np.nan_to_num(np.asarray(better, dtype=float), nan=1.0))


def _is_small(xb: Floats, nb: Floats, xc: Floats, nc: Floats) -> NDArray[np.bool_]:
    pooled = (xb + xc) / (nb + nc)
    smallest = np.minimum(np.minimum(nb, nc) * pooled, np.minimum(nb, nc) * (1 - pooled))
    return np.asarray(smallest < EXACT_BELOW_EXPECTED)


def exact_p(x_c: float, n_c: float, x_b: float, n_b: float) -> tuple[float, float, str]:
    """Exact one-sided p-values for 'candidate worse' and 'candidate better', and the test used.

    Boschloo's test (uniformly more powerful than Fisher's) when the table is small enough to
    compute it quickly, else Fisher's; effective counts are rounded to whole verdicts.
    """
    xc, fc = round(x_c), round(n_c) - round(x_c)
    xb, fb = round(x_b), round(n_b) - round(x_b)
    if xc + xb == 0 or fc + fb == 0:
        return 1.0, 1.0, "exact"
    # Columns are the samples (candidate, baseline); rows pass / fail.
    table = [[xc, xb], [fc, fb]]
    if (xc + fc) * (xb + fb) <= BOSCHLOO_MAX_PRODUCT:
        worse = boschloo_exact(table, alternative="less").pvalue
        better = boschloo_exact(table, alternative="greater").pvalue
        return _p(worse), _p(better), "boschloo"
    worse = fisher_exact(table, alternative="less").pvalue
    better = fisher_exact(table, alternative="greater").pvalue
    return _p(worse), _p(better), "fisher"


def _p(value: Any) -> float:
    p = float(value)
    return 1.0 if math.isnan(p) else min(max(p, 0.0), 1.0)


@dataclass(frozen=True)
class StratifiedTest:
    """The Cochran-Mantel-Haenszel comparison of one grader across strata."""

    p_worse: float
    p_better: float
    odds_ratio: float | None
    odds_ratio_low: float | None
    odds_ratio_high: float | None
    strata: int
    method: str = "cmh"
    """``cmh`` (chi-square approximation) or ``cmh-exact`` (exact conditional test)."""


MANTEL_FLEISS_MIN = 5.0
"""The CMH chi-square is trusted when the sum of the strata's expected candidate passes lies at
least this far from both ends of its range (Mantel & Fleiss 1980); else the exact test runs."""


def cmh(tables: NDArray[np.float64], alpha: float = 0.05, exact: bool = False
        ) -> StratifiedTest:
    """One-sided CMH test that the candidate passes less (and more) often within strata.

    Args:
        tables: shape (2, 2, K): rows candidate / baseline, columns pass / fail, one 2×2
            table per stratum (strata with a single verdict or one empty row are dropped).
        alpha: for the Mantel-Haenszel pooled odds ratio's interval.
        exact: use the exact conditional test (:func:`exact_stratified_p`) whatever the
            sizes; it is also used when the Mantel-Fleiss criterion fails.

    statsmodels gives the (uncorrected) chi-square statistic; its square root carries the sign
    of ``Σ (a − E[a])``, candidate passes minus their expectation, so ``Φ(z)`` is the p-value
    for 'worse'.
    """
    keep = (tables[0].sum(axis=0) > 0) & (tables[1].sum(axis=0) > 0) & (
        tables.sum(axis=(0, 1)) > 1)
    kept = tables[:, :, keep]
    if kept.shape[2] == 0:
        return StratifiedTest(1.0, 1.0, None, None, None, 0)
    strata = int(kept.shape[2])
    stratified = StratifiedTable(kept)
    ratio, low, high = _pooled_odds_ratio(stratified, alpha)
    if exact or mantel_fleiss(kept) < MANTEL_FLEISS_MIN:
        worse, better = exact_stratified_p(kept)
        return StratifiedTest(worse, better, ratio, low, high, strata, "cmh-exact")
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = float(stratified.test_null_odds(correction=False).statistic)
    if not math.isfinite(statistic):
        return StratifiedTest(1.0, 1.0, None, None, None, strata)
    n = kept.sum(axis=(0, 1))
    expected = kept[0].sum(axis=0) * kept[:, 0].sum(axis=0) / n
    z = math.copysign(math.sqrt(statistic), float((kept[0, 0] - expected).sum()))
    return StratifiedTest(float(norm.cdf(z)), float(norm.sf(z)), ratio, low, high, strata)


def mantel_fleiss(tables: NDArray[np.float64]) -> float:
    """How far ``Σ E[a]`` (expected candidate passes) lies from the nearer end of its range.

    Each stratum's candidate passes ``a`` range over ``[max(0, m − n_b), min(n_c, m)]`` given
    its margins (``m`` passes in all); the chi-square approximation of the CMH statistic is
    adequate when the distance is at least 5 (Mantel & Fleiss 1980).
    """
    n_c, n_b, passes = tables[0].sum(axis=0), tables[1].sum(axis=0), tables[:, 0].sum(axis=0)
    expected = float((n_c * passes / (n_c + n_b)).sum())
    low = float(np.maximum(0.0, passes - n_b).sum())
    high = float(np.minimum(n_c, passes).sum())
    return min(expected - low, high - expected)


def exact_stratified_p(tables: NDArray[np.float64]) -> tuple[float, float]:
    """Exact conditional one-sided p-values of a common odds ratio of 1 across strata.

    Given every stratum's margins, the candidate's passes in each stratum are hypergeometric
    under the null, independently; their sum (the CMH statistic's numerator) has the
    convolution of those distributions. 'Worse' is ``P(S ≤ s)``, 'better' ``P(S ≥ s)`` — as
    R's ``mantelhaen.test(exact = TRUE)``, and Fisher's exact test for one stratum. Effective
    counts are rounded to whole verdicts.

    Args:
        tables: shape (2, 2, K): rows candidate / baseline, columns pass / fail.
    """
    counts = np.rint(np.asarray(tables, dtype=float)).astype(np.int64)
    distribution = np.ones(1)
    observed = 0
    for k in range(counts.shape[2]):
        (passed_c, failed_c), (passed_b, failed_b) = counts[:, :, k]
        n_c, total = passed_c + failed_c, passed_c + failed_c + passed_b + failed_b
        passes = passed_c + passed_b
        if total == 0:
            continue
        low = max(0, passes - (total - n_c))
        support = np.arange(low, min(n_c, passes) + 1)
        distribution = np.convolve(distribution, hypergeom.pmf(support, total, passes, n_c))
        observed += int(passed_c - low)
    return _p(distribution[: observed + 1].sum()), _p(distribution[observed:].sum())


def _pooled_odds_ratio(stratified: Any, alpha: float
                       ) -> tuple[float | None, float | None, float | None]:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(stratified.oddsratio_pooled)
        low, high = (float(v) for v in stratified.oddsratio_pooled_confint(alpha=alpha))
    if not all(math.isfinite(v) and v > 0 for v in (ratio, low, high)):
        return None, None, None
    return ratio, low, high


def benjamini_hochberg(p_values: ArrayLike, axis: int = -1) -> Floats:
    """Benjamini-Hochberg q-values (scipy), along ``axis`` (one family per row)."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    return np.asarray(false_discovery_control(p, axis=axis, method="bh"), dtype=float)


def power_to_detect(drop: ArrayLike, p_baseline: ArrayLike, n_baseline: ArrayLike,
                    n_candidate: ArrayLike, alpha: ArrayLike) -> Floats:
    """The power of the one-sided level-``alpha`` test against a drop of ``drop`` from
    ``p_baseline`` (statsmodels ``power_proportions_2indep``, the score test's variances)."""
    nb, nc = np.asarray(n_baseline, dtype=float), np.asarray(n_candidate, dtype=float)
    power = power_proportions_2indep(-np.asarray(drop, dtype=float),
                                     np.asarray(p_baseline, dtype=float), nc, ratio=nb / nc,
                                     alpha=alpha, alternative="smaller", return_results=False)
    return np.asarray(power, dtype=float)


def minimum_detectable_effect(p_baseline: ArrayLike, n_baseline: ArrayLike,
                              n_candidate: ArrayLike, alpha: ArrayLike, power: float = 0.8
                              ) -> Floats:
    """The smallest drop from ``p_baseline`` that a one-sided level-``alpha`` test detects with
    ``power`` at these (effective) sample sizes, element by element.

    NaN where a side has fewer than two verdicts; infinity where not even a drop to zero
    would be detected (no effect is detectable, so no "unchanged" can be claimed). Solved by
    bisection on statsmodels' power for all elements at once (power grows with the drop).
    """
    p = np.atleast_1d(np.asarray(p_baseline, dtype=float))
    nb = np.broadcast_to(np.asarray(n_baseline, dtype=float), p.shape)
    nc = np.broadcast_to(np.asarray(n_candidate, dtype=float), p.shape)
    level = np.broadcast_to(np.asarray(alpha, dtype=float), p.shape)
    usable = (nb >= 2) & (nc >= 2) & (p > _EDGE)
    low, high = np.zeros_like(p), np.maximum(p - _EDGE, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        reachable = power_to_detect(high, p, np.maximum(nb, 2), np.maximum(nc, 2),
                                    level) >= power
        for _ in range(_BISECTIONS):
            middle = (low + high) / 2
            enough = power_to_detect(middle, p, np.maximum(nb, 2), np.maximum(nc, 2),
                                     level) >= power
            high = np.where(enough, middle, high)
            low = np.where(enough, low, middle)
    mde = np.where(reachable, high, np.inf)
    mde = np.where(p <= _EDGE, 0.0, mde)
    return np.asarray(np.where(usable | (p <= _EDGE), mde, np.nan), dtype=float)


_BISECTIONS = 40
_EDGE = 1e-6


@dataclass(frozen=True)
class SpansNeeded:
    """How many more decided verdicts would let the comparison detect the effect."""

    more: int
    where: str
    """``candidate`` (the baseline already has enough) or ``each release``."""


def spans_needed(p_baseline: float, n_baseline: float, n_candidate: float, effect: float,
                 alpha: float, power: float = 0.8) -> SpansNeeded:
    """More (effective) verdicts needed to detect a drop of ``effect`` from ``p_baseline``.

    When the baseline is large enough the answer is how many more the candidate needs;
    otherwise how many each release needs at equal sizes (statsmodels
    ``samplesize_proportions_2indep_onetail``).
    """
    drop = min(effect, p_baseline - _EDGE)
    if drop <= 0:
        return SpansNeeded(0, "each release")
    if n_baseline >= 2 and float(power_to_detect(drop, p_baseline, n_baseline, 1e9,
                                                 alpha)) > power:
        def shortfall(n_c: float) -> float:
            return float(power_to_detect(drop, p_baseline, n_baseline, n_c, alpha)) - power

        if shortfall(max(n_candidate, 2.0)) >= 0:
            return SpansNeeded(0, "candidate")
        needed = brentq(shortfall, max(n_candidate, 2.0), 1e9, xtol=0.5)
        return SpansNeeded(math.ceil(needed - n_candidate), "candidate")
    per_release = samplesize_proportions_2indep_onetail(
        -drop, p_baseline, power, ratio=1, alpha=alpha, alternative="smaller")
    return SpansNeeded(max(0, math.ceil(float(per_release) - min(n_baseline, n_candidate))),
                       "each release")


def decide(q_worse: ArrayLike, q_better: ArrayLike, mde: ArrayLike, tested: ArrayLike,
           alpha: float, effect: float, diff_high: ArrayLike | None = None) -> NDArray[np.int_]:
    """Each test's status code: regressed, improved, unchanged, or insufficient data.

    Regressed / improved when the BH q-value is below ``alpha``; unchanged when neither and the
    data could have detected ``effect`` (MDE ≤ effect) — but never when the difference's whole
    interval (its upper end ``diff_high``) lies below ``−effect``: the pass rate did drop by more
    than the effect, even if the test (within strata, say) does not call it a regression.
    Insufficient data otherwise or when the test was not run.
    """
    qw, qb = np.asarray(q_worse, dtype=float), np.asarray(q_better, dtype=float)
    m, ran = np.asarray(mde, dtype=float), np.asarray(tested, dtype=bool)
    status = np.full(qw.shape, INSUFFICIENT, dtype=int)
    dropped = np.zeros(qw.shape, dtype=bool) if diff_high is None else np.asarray(
        np.asarray(diff_high, dtype=float) < -effect)
    status[ran & (m <= effect) & ~dropped] = UNCHANGED
    status[ran & (qb < alpha)] = IMPROVED
    status[ran & (qw < alpha)] = REGRESSED
    return status
