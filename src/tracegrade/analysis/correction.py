"""Pass rates corrected for a grader's errors, with intervals that count the labels' uncertainty.

A grader (an LLM judge above all) that passes some bad spans and fails some good ones reports a
biased pass rate. Human labels on a sample of spans measure those errors; two estimators then
correct the production rate:

- **Rogan-Gladen**: ``(observed + TNR - 1) / (TPR + TNR - 1)``, the classic correction for an
  imperfect test.
- **Prediction-powered inference** (PPI with ``lam=1``, the original PPI): the judge's
  (Hajek-weighted) pass share in production plus a rectifier, the mean of ``human - judge``,
  estimated on the labeled spans judge verdict by judge verdict.

Both intervals come from one simulation of the three estimates they rest on, each drawn from
Jeffreys' Beta at the sample size its variance is worth (:meth:`Stratum.draws`,
:meth:`ProductionSample.draws`): P(human pass | judge pass), P(human pass | judge fail) and the
production pass share. Unlike a bootstrap or a delta-method variance, that does not collapse
when a verdict's labels all agree: 20 judge-passes that people all passed leave a false-pass rate
of up to ~12% plausible, and the interval says so. Rogan-Gladen's interval keeps the draws its
model allows, those whose error rates could have given their observed share.

The labels' design. Labels can only be on graded spans, and graded spans are a sample: span
``i`` was graded with inclusion probability ``π_i`` (Poisson sampling; weight ``1/π_i``). On top
of that, ``tracegrade labels queue`` deliberately takes as many judge-fails as judge-passes, so
labels are stratified by the judge's verdict. The estimators therefore use:

- ``P(human pass | judge verdict)`` as a Hajek mean (``Σ h/π / Σ 1/π``) over the labeled spans of
  that verdict: within a verdict the labeled spans must be a random sample of the graded spans
  (``labels queue --random``, a deterministic grader, or a random sample of all spans);
- ``P(judge pass)`` from the production verdicts, Hajek-weighted, never from the labels.

With every ``π`` equal the weights cancel and the estimators are the unweighted ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracegrade.analysis.comparison import weighted_rate

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]

MIN_PER_VERDICT = 2
"""Labeled spans each judge verdict needs for an interval."""
DRAWS = 20_000
"""Simulation draws behind the corrected rates' intervals (and the agreement figures')."""
MIN_CONSISTENT = 0.01
"""The share of draws that must fit Rogan-Gladen's model for its interval to rest on them."""
UNFIT_NOTE = "the grader's error rates cannot give the observed rate: clipped to a bound"
"""Rogan-Gladen's note when fewer than ``MIN_CONSISTENT`` of the draws fit its model."""


@dataclass(frozen=True)
class LabeledSample:
    """Human labels with the grader's verdicts on the same spans (True = pass)."""

    human: BoolArray
    judge: BoolArray
    population_pass_share: float
    """The grader's pass share in the population the labeled spans were drawn from."""
    weight: FloatArray | None = None
    """1 / inclusion probability of each labeled span's verdict; None when all are equal."""

    @property
    def size(self) -> int:
        """How many labeled spans."""
        return int(self.human.size)

    @property
    def weights(self) -> FloatArray:
        """``weight``, or all ones."""
        if self.weight is None:
            return np.ones(self.human.shape, dtype=np.float64)
        return np.asarray(self.weight, dtype=np.float64)

    def stratum(self, verdict: bool) -> Stratum:
        """The labeled spans the grader judged ``verdict`` (True = pass)."""
        chosen = self.judge == verdict
        return Stratum.of(self.human[chosen], self.weights[chosen])


@dataclass(frozen=True)
class Stratum:
    """The labeled spans of one judge verdict: how often people passed them (Hajek-weighted)."""

    size: int
    human_pass: float
    """``Σ w·h / Σ w``: P(human pass | this verdict); NaN when the stratum is empty."""
    variance: float
    """Its linearised variance ``Σ w²(h − p̂)² / (Σ w)²`` (0 when every label agrees)."""
    effective_size: float
    """Kish's ``(Σ w)² / Σ w²``."""

    @classmethod
    def of(cls, human: BoolArray, weight: FloatArray) -> Stratum:
        """The Hajek mean and variance of these labels."""
        if human.size == 0:
            return cls(0, float("nan"), float("nan"), 0.0)
        mean, variance = hajek(human.astype(np.float64), weight)
        return cls(int(human.size), mean, variance,
                   float(np.sum(weight) ** 2 / np.sum(weight ** 2)))

    @property
    def draw_size(self) -> float:
        """The sample size the labels are worth for an interval: ``p(1 − p)/V``, but at most
        Kish's effective size, and Kish's size when the labels all agree.

        A linearisation variance below ``p(1 − p)/n_Kish`` (the variance were the labels
        unrelated to their weights) comes from a rare outcome that the few heavily weighted
        labels happen not to show, so it is not to be trusted. With equal weights this is the
        number of labels.
        """
        p = self.human_pass
        if 0 < p < 1 and self.variance > 0:
            return min(p * (1 - p) / self.variance, self.effective_size)
        return self.effective_size

    def draws(self, rng: np.random.Generator, count: int = DRAWS) -> FloatArray:
        """Draws of P(human pass | this verdict) from Jeffreys' ``Beta(x + ½, n − x + ½)`` at
        ``n = draw_size``, ``x = p·n``: its uncertainty, including when every label agrees."""
        p, size = self.human_pass, self.draw_size
        return rng.beta(p * size + 0.5, (1 - p) * size + 0.5, count)


def hajek(values: FloatArray, weight: FloatArray) -> tuple[float, float]:
    """The Hajek mean of 0/1 ``values`` and its linearisation variance, as
    :func:`tracegrade.analysis.comparison.weighted_rate` computes them (at equal weights
    ``ȳ(1 − ȳ)/n``)."""
    passed = values > 0.5
    rates = weighted_rate(np.sum(weight[passed]), np.sum(weight[~passed]),
                          np.sum(weight[passed] ** 2), np.sum(weight[~passed] ** 2))
    return float(rates.rate), float(rates.variance)


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
    def pass_share_variance(self) -> float:
        """The linearised variance of ``pass_share``: ``Σ w²(y − p̂)² / (Σ w)²``."""
        return hajek(self.judge.astype(np.float64), self.weight)[1]

    @property
    def effective_n(self) -> float:
        """Kish's effective sample size."""
        return float(np.sum(self.weight) ** 2 / np.sum(self.weight ** 2))

    def draws(self, rng: np.random.Generator, count: int = DRAWS) -> FloatArray:
        """Draws of the pass share from Jeffreys' Beta at the size its variance is worth.

        That size is ``p(1 − p)/V`` (the one the pass-rate tables' Wilson intervals use), and
        Kish's when every verdict agrees, where ``V`` is 0: a release graded 0 of 1,468 is not
        known to pass exactly 0%. Unlike :meth:`Stratum.draw_size` it is not capped at Kish's:
        production verdicts are many, so a variance below ``p(1 − p)/n_Kish`` is the design's
        stratification at work, not a rare outcome the sample missed.
        """
        passed = self.judge
        rates = weighted_rate(np.sum(self.weight[passed]), np.sum(self.weight[~passed]),
                              np.sum(self.weight[passed] ** 2),
                              np.sum(self.weight[~passed] ** 2))
        p, size = float(rates.rate), float(rates.effective_n)
        return rng.beta(p * size + 0.5, (1 - p) * size + 0.5, count)


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
    """The grader's TPR and TNR on the labels' population.

    From P(human pass | judge verdict), a Hajek mean over the labels of each verdict, and the
    population's judge pass share, so the rates are the population's whatever the share of
    each verdict among the labels.

    Raises:
        CannotCorrect: the labels lack a verdict, or every label agrees on one class.
    """
    _require_both_verdicts(labeled)
    return _error_rates(labeled.stratum(True).human_pass, labeled.stratum(False).human_pass,
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


def _too_few(labeled: LabeledSample, production: ProductionSample,
             verdicts: tuple[bool, ...] = (True, False)) -> str | None:
    """Why there can be no interval (too few labels in a verdict, or production verdicts)."""
    for verdict in verdicts:
        count = int(np.sum(labeled.judge == verdict))
        if count < MIN_PER_VERDICT:
            name = "pass" if verdict else "fail"
            return (f"no interval: {count} labeled span the grader judged {name}; "
                    f"need {MIN_PER_VERDICT}")
    if production.judge.size < 2:
        return f"no interval: {production.judge.size} production verdict; need 2"
    return None


def rogan_gladen_point(observed: float, tpr: float, tnr: float) -> float | None:
    """The Rogan-Gladen estimate clipped to [0, 1]; None when the grader is no better than chance.
    """
    youden = tpr + tnr - 1
    if youden <= 0:
        return None
    return min(max((observed + tnr - 1) / youden, 0.0), 1.0)


def rogan_gladen(labeled: LabeledSample, production: ProductionSample, *, alpha: float = 0.05,
                 draws: int = DRAWS, seed: int = 0) -> CorrectedRate:
    """The Rogan-Gladen corrected pass rate with its interval.

    TPR and TNR come from :func:`error_rates` (inclusion-probability weighted within each judge
    verdict). The interval is the central ``1 − alpha`` of the estimate over ``draws``
    simulated values of its three inputs (P(human pass | each judge verdict), from
    :meth:`Stratum.draws`, and the production pass share, from
    :meth:`ProductionSample.draws`) that fit the model (:func:`_consistent`); the population's
    judge pass share is held fixed. A verdict whose labels all agree thus still counts as
    uncertain: TNR = 1 from 15 judge-passes people all passed is not known to be 1, and the
    interval spans the rates it might be. With fewer than two labeled spans in a verdict there
    is an estimate but no interval; when (almost) no draw fits the model, the note says so.
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
    short = _too_few(labeled, production)
    if short:
        return CorrectedRate(method, estimate, None, None, short)
    rng = np.random.default_rng(seed)
    values = _rogan_gladen_values(production.draws(rng, draws),
                                  labeled.stratum(True).draws(rng, draws),
                                  labeled.stratum(False).draws(rng, draws),
                                  labeled.population_pass_share)
    fitting = _consistent(values)
    note = None
    if fitting.size < MIN_CONSISTENT * values.size:
        # Labels and production contradict the model itself: all that is left is the clipped
        # estimate, and the clipped draws.
        fitting = np.clip(values[np.isfinite(values)], 0.0, 1.0)
        note = UNFIT_NOTE
    low, high = np.quantile(fitting, [alpha / 2, 1 - alpha / 2])
    return CorrectedRate(method, estimate, min(float(low), estimate), max(float(high), estimate),
                         note)


def _rogan_gladen_values(observed: FloatArray, precision: FloatArray, miss: FloatArray,
                         share: float) -> FloatArray:
    """Rogan-Gladen estimates, unclipped, from observed pass shares, P(human pass | judge pass
    / fail) and the judge's pass share in the labels' population (a vectorized
    :func:`_error_rates`); NaN where undefined."""
    both_pass, both_fail = share * precision, (1 - share) * (1 - miss)
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = both_pass / (both_pass + (1 - share) * miss)
        tnr = both_fail / (both_fail + share * (1 - precision))
        value: FloatArray = (observed + tnr - 1) / (tpr + tnr - 1)
    # A draw whose grader is no better than chance (TPR + TNR <= 1) has no Rogan-Gladen
    # estimate, as the point estimate has none then.
    return np.where(np.isfinite(value) & (tpr + tnr > 1), value, np.nan)


def _consistent(values: FloatArray) -> FloatArray:
    """The draws whose error rates could have produced their observed share (a rate in [0, 1]).

    Keeping only those is the draws' distribution restricted to what Rogan-Gladen's model
    allows. Clipping the others to 0 or 1 instead would pile them on a bound: for a release the
    grader failed throughout, most draws' false-pass rate (which 8 agreeing labels leave up to
    ~25%) exceeds the observed share, and the interval would shrink to [0, 0.02%] where rates
    up to ~0.3% fit the data (simulated coverage 54-77% near 0).
    """
    return values[(values >= 0) & (values <= 1)]  # NaN compares False


def prediction_powered(labeled: LabeledSample, production: ProductionSample, *,
                       alpha: float = 0.05, seed: int = 0) -> CorrectedRate:
    """The prediction-powered corrected pass rate (original PPI, ``lam = 1``).

    ``p̂ + Δ̂``: ``p̂`` is the judge's Hajek pass share in production and the rectifier
    ``Δ̂ = p̂·(a − 1) + (1 − p̂)·b`` is the mean of ``human − judge`` over production, from
    ``a``, ``b`` = P(human pass | judge pass / fail), Hajek means over the labeled spans of each
    verdict (valid whether the labels were drawn at random or stratified by verdict, as long as
    they are random within each verdict). The estimate is ``p̂·a + (1 − p̂)·b``.

    Its variance is, by linearisation, ``(a − b)²·V(p̂) + p̂²·V(a) + (1 − p̂)²·V(b)``, with
    ``V(p̂)`` the Hajek variance of the production share and ``V(a)``, ``V(b)`` those of the
    labels' means. The interval carries exactly those three uncertainties, by simulation rather
    than a normal approximation: ``p̂``, ``a`` and ``b`` are drawn from Jeffreys' Beta at the
    sizes their variances are worth (:meth:`ProductionSample.draws`, :meth:`Stratum.draws`), and
    the interval is the central ``1 − alpha`` of ``p̂·a + (1 − p̂)·b``. With many labels this is
    the normal interval; when a verdict's labels all agree (``a = 1`` from 15 labels, say), or
    production's verdicts do, it still allows for the errors they may have missed, on the side
    they would lie. With fewer than two labeled spans in a verdict there is an estimate but no
    interval.
    """
    method = "ppi"
    share = production.pass_share
    needed = tuple(verdict for verdict, weight in ((True, share), (False, 1 - share))
                   if weight > 0)
    for verdict in needed:
        if not (labeled.judge == verdict).any():
            return CorrectedRate(method, None, None, None,
                                 f"no labeled span the grader judged "
                                 f"{'pass' if verdict else 'fail'}")
    when_pass, when_fail = labeled.stratum(True), labeled.stratum(False)
    a = when_pass.human_pass if True in needed else 0.0
    b = when_fail.human_pass if False in needed else 0.0
    rectifier = share * (a - 1) + (1 - share) * b
    estimate = _clip01(share + rectifier)
    short = _too_few(labeled, production, needed)
    if short:
        return CorrectedRate(method, estimate, None, None, short)
    rng = np.random.default_rng(seed)
    shares = production.draws(rng)
    values = shares * _draws_or_prior(when_pass, rng) + \
        (1 - shares) * _draws_or_prior(when_fail, rng)
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return CorrectedRate(method, estimate, min(float(low), estimate), max(float(high), estimate))


def _draws_or_prior(stratum: Stratum, rng: np.random.Generator) -> FloatArray:
    # A verdict production never gave has no labels to go on, but its drawn share is not
    # exactly 0 either: what people would say of it is Jeffreys' prior, anything at all.
    if stratum.size == 0:
        return rng.beta(0.5, 0.5, DRAWS)
    return stratum.draws(rng)


def _clip01(value: float) -> float:
    return min(max(value, 0.0), 1.0)
