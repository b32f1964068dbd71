"""Pass rates corrected for a grader's errors, with intervals that count the labels' uncertainty.

A grader (an LLM judge above all) that passes some bad spans and fails some good ones reports a
biased pass rate. Human labels on a sample of spans measure those errors; two estimators then
correct the production rate:

- **Rogan-Gladen**: ``(observed + TNR - 1) / (TPR + TNR - 1)``, the classic correction for an
  imperfect test, with a percentile bootstrap interval (``scipy.stats.bootstrap``) that resamples
  the labels and the production verdicts independently.
- **Prediction-powered inference** (``ppi_py.ppi_mean_ci`` with ``lam=1``, the original PPI): the
  judge's mean on production plus a rectifier estimated on the labeled spans. (PPI++'s power
  tuning is left off: with sample weights, ppi-python's tuned ``lam`` can fall to 0 and the
  interval to the classical one from the labels alone.)

Labels need not be a simple random sample: ``tracegrade labels queue`` deliberately takes as many
judge-fails as judge-passes. Each labeled span is therefore weighted by how over- or
under-represented its judge verdict is in the labels compared with the population it was drawn
from, so the judge's error rates are estimated for that population (inverse-probability
weighting by stratum). Within each verdict the labeled spans must be a random sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import bootstrap

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class LabeledSample:
    """Human labels with the grader's verdicts on the same spans (True = pass)."""

    human: BoolArray
    judge: BoolArray
    population_pass_share: float
    """The grader's pass share in the population the labeled spans were drawn from."""

    @property
    def size(self) -> int:
        """How many labeled spans."""
        return int(self.human.size)


@dataclass(frozen=True)
class ProductionSample:
    """The grader's verdicts on the production spans whose pass rate is wanted."""

    judge: BoolArray
    weight: FloatArray
    """1 / inclusion probability of each verdict (all ones when every span was graded)."""

    @classmethod
    def unweighted(cls, judge: BoolArray) -> ProductionSample:
        """Verdicts on every span (inclusion probability 1)."""
        return cls(judge, np.ones(judge.shape, dtype=np.float64))

    @property
    def pass_share(self) -> float:
        """The grader's (Hajek-weighted) pass rate."""
        return float(np.sum(self.weight * self.judge) / np.sum(self.weight))

    @property
    def effective_n(self) -> float:
        """Kish's effective sample size."""
        return float(np.sum(self.weight) ** 2 / np.sum(self.weight ** 2))


@dataclass(frozen=True)
class CorrectedRate:
    """A corrected pass rate with its interval, or why there is none."""

    method: str
    estimate: float | None
    low: float | None
    high: float | None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {"method": self.method, "estimate": self.estimate, "ci_low": self.low,
                "ci_high": self.high, "note": self.note}


class CannotCorrect(ValueError):
    """The labels cannot support a correction (say, no labeled judge-fail at all)."""


def stratum_weights(judge: BoolArray, target_pass_share: float) -> FloatArray:
    """Weights that make the labeled spans' judge pass share equal ``target_pass_share``.

    Raises:
        CannotCorrect: the target has spans of a verdict the labels lack.
    """
    labeled_pass_share = float(np.mean(judge))
    for verdict, share, labeled in (("pass", target_pass_share, labeled_pass_share),
                                    ("fail", 1 - target_pass_share, 1 - labeled_pass_share)):
        if share > 0 and labeled == 0:
            raise CannotCorrect(f"no labeled span the grader judged {verdict}")
    pass_weight = target_pass_share / labeled_pass_share if labeled_pass_share else 0.0
    fail_weight = (1 - target_pass_share) / (1 - labeled_pass_share) \
        if labeled_pass_share < 1 else 0.0
    return np.where(judge, pass_weight, fail_weight).astype(np.float64)


def error_rates(labeled: LabeledSample) -> tuple[float, float]:
    """The grader's TPR and TNR on the labels' population (stratum-weighted).

    Raises:
        CannotCorrect: the labels lack a verdict, or every label agrees on one class.
    """
    _require_both_verdicts(labeled)
    return _error_rates(float(np.mean(labeled.human[labeled.judge])),
                        float(np.mean(labeled.human[~labeled.judge])),
                        labeled.population_pass_share)


def _require_both_verdicts(labeled: LabeledSample) -> None:
    for verdict, present in (("pass", labeled.judge.any()), ("fail", (~labeled.judge).any())):
        if not present:
            raise CannotCorrect(f"no labeled span the grader judged {verdict}")


def _error_rates(pass_precision: float, fail_miss: float, share: float) -> tuple[float, float]:
    """TPR, TNR from P(human pass | judge pass), P(human pass | judge fail) and P(judge pass)."""
    both_pass = share * pass_precision
    human_pass = both_pass + (1 - share) * fail_miss
    both_fail = (1 - share) * (1 - fail_miss)
    human_fail = both_fail + share * (1 - pass_precision)
    if human_pass <= 0 or human_fail <= 0:
        raise CannotCorrect("the labels are all one class, so the grader's errors are unknown")
    return both_pass / human_pass, both_fail / human_fail


def rogan_gladen_point(observed: float, tpr: float, tnr: float) -> float | None:
    """The Rogan-Gladen estimate clipped to [0, 1]; None when the grader is no better than chance.
    """
    youden = tpr + tnr - 1
    if youden <= 0:
        return None
    return min(max((observed + tnr - 1) / youden, 0.0), 1.0)


def rogan_gladen(labeled: LabeledSample, production: ProductionSample, *, alpha: float = 0.05,
                 resamples: int = 2000, seed: int = 0) -> CorrectedRate:
    """The Rogan-Gladen corrected pass rate with a percentile bootstrap interval.

    The bootstrap resamples the labeled spans within each judge verdict (the labels' design)
    and the production verdicts, independently, through ``scipy.stats.bootstrap``.
    """
    method = "rogan-gladen"
    try:
        tpr, tnr = error_rates(labeled)
    except CannotCorrect as exc:
        return CorrectedRate(method, None, None, None, str(exc))
    estimate = rogan_gladen_point(production.pass_share, tpr, tnr)
    if estimate is None:
        return CorrectedRate(method, None, None, None,
                             f"the grader is no better than chance (TPR {tpr:.2f}, "
                             f"TNR {tnr:.2f})")
    statistic = _RoganGladenStatistic(labeled.population_pass_share, production)
    data = (labeled.human[labeled.judge].astype(np.float64),
            labeled.human[~labeled.judge].astype(np.float64),
            np.arange(production.judge.size))
    result = bootstrap(data, statistic, n_resamples=resamples, confidence_level=1 - alpha,
                       method="percentile", vectorized=True,
                       batch=_batch(production.judge.size), rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return CorrectedRate(method, estimate, float(min(low, estimate)), float(max(high, estimate)))


class _RoganGladenStatistic:
    """The Rogan-Gladen estimate of one bootstrap resample (vectorized over resamples)."""

    def __init__(self, share: float, production: ProductionSample) -> None:
        self.share = share
        self.weight = production.weight
        self.weighted_pass = production.weight * production.judge

    def __call__(self, when_pass: FloatArray, when_fail: FloatArray, rows: NDArray[np.intp],
                 axis: int = -1) -> FloatArray:
        share = self.share
        observed = np.sum(self.weighted_pass[rows], axis=axis) / np.sum(self.weight[rows],
                                                                         axis=axis)
        precision = np.mean(when_pass, axis=axis)
        miss = np.mean(when_fail, axis=axis)
        both_pass, both_fail = share * precision, (1 - share) * (1 - miss)
        with np.errstate(divide="ignore", invalid="ignore"):
            tpr = both_pass / (both_pass + (1 - share) * miss)
            tnr = both_fail / (both_fail + share * (1 - precision))
            value = (observed + tnr - 1) / (tpr + tnr - 1)
        # A resample whose labels are all one class says nothing about the errors: keep the
        # observed rate for it rather than dropping it (which would narrow the interval).
        result: FloatArray = np.clip(np.where(np.isfinite(value), value, observed), 0.0, 1.0)
        return result


def _batch(production_size: int) -> int:
    # Keep each vectorized batch around a few million values, whatever the production size.
    return max(10, min(1000, 4_000_000 // max(production_size, 1)))


def prediction_powered(labeled: LabeledSample, production: ProductionSample, *,
                       alpha: float = 0.05) -> CorrectedRate:
    """The prediction-powered corrected pass rate (``ppi_py.ppi_mean_ci``, original PPI).

    Labeled spans are weighted so their judge pass share matches production's: with labels
    sampled at random within each judge verdict, the rectifier then estimates production's.
    """
    method = "ppi"
    try:
        weights = stratum_weights(labeled.judge, production.pass_share)
    except CannotCorrect as exc:
        return CorrectedRate(method, None, None, None, str(exc))
    # ppi_py is slow to import and needed only here.
    from ppi_py import ppi_mean_ci, ppi_mean_pointestimate  # type: ignore[import-untyped]

    human = labeled.human.astype(np.float64)
    judge = labeled.judge.astype(np.float64)
    unlabeled = production.judge.astype(np.float64)
    estimate = float(np.ravel(ppi_mean_pointestimate(
        human, judge, unlabeled, lam=1.0, w=weights, w_unlabeled=production.weight))[0])
    low, high = ppi_mean_ci(human, judge, unlabeled, alpha=alpha, lam=1.0, w=weights,
                            w_unlabeled=production.weight)
    clip = _clip01
    return CorrectedRate(method, clip(estimate), clip(float(np.ravel(low)[0])),
                         clip(float(np.ravel(high)[0])))


def _clip01(value: float) -> float:
    return min(max(value, 0.0), 1.0)
