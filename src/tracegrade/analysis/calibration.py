"""How far a grader can be trusted: its agreement with human labels, and corrected pass rates.

For one grader version, the human labels of its criterion (the grader's name) on the ``test``
split are paired with the grader's verdicts on the same spans. From the pairs come the
confusion matrix, TPR, TNR and Cohen's kappa with their intervals. A grader is **trusted** when
kappa and both rates clear configurable thresholds. A calibration on the test split is stored
in the ``calibrations`` table under its grader version, so a changed grader (a new model or
prompt is a new version) is uncalibrated until it is checked again; one on other splits is only
reported.

Labels are not a random sample of the grader's population: ``tracegrade labels queue`` takes as
many judge-fails as judge-passes, and only graded spans (each graded with inclusion probability
π) can be labeled. So ``calibrate`` reports, and judges trust on, TPR, TNR and kappa *of the
population*: P(human pass | judge verdict) is estimated per verdict from the labels (weighted
1/π) and combined with the judge's Hajek pass share in the production verdicts of the labels'
releases (:meth:`Agreement.from_labels`). The raw label counts stay in the confusion matrix, and
the labels' own figures (Wilson intervals for TPR and TNR, statsmodels' ``cohens_kappa``) in
``Calibration.unweighted``.

"pass" is the positive class: TPR is how often the grader passes what people pass, TNR how often
it fails what people fail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from scipy.stats import norm
from sqlalchemy import and_, func, or_, select, tuple_
from statsmodels.stats.inter_rater import cohens_kappa

from tracegrade.analysis.correction import (
    DRAWS,
    CannotCorrect,
    CorrectedRate,
    FloatArray,
    LabeledSample,
    ProductionSample,
    error_rates,
    prediction_powered,
    rogan_gladen,
)
from tracegrade.analysis.rates import wilson_interval
from tracegrade.labels import Split, labeled_pairs
from tracegrade.spans import utc_now
from tracegrade.store import Store
from tracegrade.store import _schema as t

TRUST_SPLITS = (Split.TEST.value,)
"""The splits a stored calibration (what trust is read from) rests on: a judge is never
trusted on labels it may have been shown as few-shot examples (train) or tuned on (dev)."""


@dataclass(frozen=True)
class CalibrationSettings:
    """When a grader counts as trusted, and how the figures are computed."""

    min_kappa: float = 0.6
    min_tpr: float = 0.8
    min_tnr: float = 0.8
    min_labels: int = 20
    """Fewer labeled pairs on the split than this is "insufficient labels", not a verdict."""
    alpha: float = 0.05
    splits: tuple[str, ...] = TRUST_SPLITS
    """Which label splits to calibrate on (``test`` unless asked otherwise)."""


class CalibrationError(ValueError):
    """Calibration cannot run: unknown grader, no labels, no verdicts on the labeled spans."""


@dataclass(frozen=True)
class ConfusionMatrix:
    """Human label (rows) against grader verdict (columns), pass first."""

    both_pass: int
    """Human pass, grader pass (true positives)."""
    grader_failed_human_passed: int
    """Human pass, grader fail (false negatives)."""
    grader_passed_human_failed: int
    """Human fail, grader pass (false positives)."""
    both_fail: int
    """Human fail, grader fail (true negatives)."""

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, str]]) -> ConfusionMatrix:
        """Count (human label, grader verdict) pairs."""
        counts = {(h, g): 0 for h in ("pass", "fail") for g in ("pass", "fail")}
        for human, grader in pairs:
            counts[(human, grader)] += 1
        return cls(counts[("pass", "pass")], counts[("pass", "fail")],
                   counts[("fail", "pass")], counts[("fail", "fail")])

    @property
    def n(self) -> int:
        """Pairs counted."""
        return self.both_pass + self.grader_failed_human_passed + \
            self.grader_passed_human_failed + self.both_fail

    def table(self) -> list[list[int]]:
        """``[[TP, FN], [FP, TN]]``: rows human pass/fail, columns grader pass/fail."""
        return [[self.both_pass, self.grader_failed_human_passed],
                [self.grader_passed_human_failed, self.both_fail]]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        """A JSON-ready record."""
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high}


@dataclass(frozen=True)
class Agreement:
    """A grader's agreement with human labels on one set of pairs."""

    confusion: ConfusionMatrix
    """The raw counts of the labeled pairs."""
    tpr: Interval | None
    tnr: Interval | None
    kappa: Interval | None
    accuracy: float | None
    weighted: bool = False
    """True when TPR, TNR, kappa and accuracy are the population's (:meth:`from_labels`), not
    the raw pairs'."""

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, str]], alpha: float = 0.05) -> Agreement:
        """Confusion matrix, TPR and TNR (Wilson), Cohen's kappa (statsmodels) of the pairs.

        These are the labels' own figures: the population's only when the labels are a simple
        random sample of it (see :meth:`from_labels`).
        """
        confusion = ConfusionMatrix.from_pairs(pairs)
        tpr = _rate(confusion.both_pass, confusion.both_pass +
                    confusion.grader_failed_human_passed, alpha)
        tnr = _rate(confusion.both_fail, confusion.both_fail +
                    confusion.grader_passed_human_failed, alpha)
        accuracy = (confusion.both_pass + confusion.both_fail) / confusion.n \
            if confusion.n else None
        return cls(confusion, tpr, tnr, kappa_interval(confusion, alpha), accuracy)

    @classmethod
    def from_labels(cls, labeled: LabeledSample, share_variance: float = 0.0,
                    alpha: float = 0.05) -> Agreement:
        """The population's TPR, TNR, kappa and accuracy, whatever the labels' design.

        The population's confusion matrix (as shares) is ``P(judge verdict) × P(human | judge
        verdict)``: the first is ``labeled.population_pass_share`` (the judge's Hajek pass share
        in production, with variance ``share_variance``), the second a Hajek mean over the
        labels of each verdict (:meth:`LabeledSample.stratum`), which is right when the labels
        are random within each verdict — the ``labels queue`` design — and when they are a
        random sample of all graded spans (the weights are then close to one). TPR and TNR are
        :func:`~tracegrade.analysis.correction.error_rates`.

        Intervals propagate the uncertainty of those three estimates by simulation: each
        verdict's P(human pass) is drawn from its Jeffreys distribution ``Beta(x + ½, n − x + ½)``
        at its effective size ``n = p(1 − p)/V``, at most Kish's
        (:meth:`~tracegrade.analysis.correction.Stratum.draws`), the production share from a
        normal with its linearisation variance, and each figure's
        interval is the central ``1 − alpha`` of its values over the draws. (TPR and TNR are
        ratios that can sit at 1 while the labels of the *other* verdict leave them quite
        uncertain, so a Wilson interval on some count would not do.)

        Raises:
            CannotCorrect: the labels lack a judge verdict (the population's rates are then
                unknown).
        """
        for verdict, present in (("pass", labeled.judge.any()),
                                 ("fail", (~labeled.judge).any())):
            if not present:
                raise CannotCorrect(f"no labeled span the grader judged {verdict}")
        confusion = ConfusionMatrix.from_pairs(
            [("pass" if h else "fail", "pass" if j else "fail")
             for h, j in zip(labeled.human.tolist(), labeled.judge.tolist(), strict=True)])
        when_pass, when_fail = labeled.stratum(True), labeled.stratum(False)
        share = labeled.population_pass_share
        point = _PopulationFigures(np.array([when_pass.human_pass]),
                                   np.array([when_fail.human_pass]), np.array([share]))
        rng = np.random.default_rng(_DRAW_SEED)
        spread = math.sqrt(max(share_variance, 0.0))
        draws = _PopulationFigures(when_pass.draws(rng), when_fail.draws(rng),
                                   np.clip(rng.normal(share, spread, DRAWS), 0.0, 1.0))
        tpr, tnr, kappa = (_quantile_interval(figure(point), figure(draws), alpha)
                           for figure in (_PopulationFigures.tpr, _PopulationFigures.tnr,
                                          _PopulationFigures.kappa))
        return cls(confusion, tpr, tnr, kappa, float(point.accuracy()[0]), weighted=True)


_DRAW_SEED = 20261101


@dataclass(frozen=True)
class _PopulationFigures:
    """Agreement figures from P(human pass | judge pass), P(… | judge fail), P(judge pass)."""

    precision: FloatArray
    miss: FloatArray
    share: FloatArray

    def cells(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Population shares of (TP, FN, FP, TN)."""
        share = self.share
        return (share * self.precision, (1 - share) * self.miss, share * (1 - self.precision),
                (1 - share) * (1 - self.miss))

    def tpr(self) -> FloatArray:
        both_pass, missed, _, _ = self.cells()
        return _ratio(both_pass, both_pass + missed)

    def tnr(self) -> FloatArray:
        _, _, false_pass, both_fail = self.cells()
        return _ratio(both_fail, both_fail + false_pass)

    def accuracy(self) -> FloatArray:
        both_pass, _, _, both_fail = self.cells()
        return both_pass + both_fail

    def kappa(self) -> FloatArray:
        both_pass, missed, false_pass, both_fail = self.cells()
        judge_pass, human_pass = both_pass + false_pass, both_pass + missed
        chance = judge_pass * human_pass + (1 - judge_pass) * (1 - human_pass)
        # An empty margin (one answer throughout) leaves no chance agreement to correct for.
        defined = (judge_pass > 0) & (judge_pass < 1) & (human_pass > 0) & (human_pass < 1)
        return np.where(defined, _ratio(both_pass + both_fail - chance, 1 - chance), np.nan)


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        result: FloatArray = np.where(denominator > 0, numerator / denominator, np.nan)
    return result


def _quantile_interval(value: FloatArray, draws: FloatArray, alpha: float) -> Interval | None:
    point = float(value[0])
    finite = draws[np.isfinite(draws)]
    if not math.isfinite(point) or finite.size < draws.size / 2:
        return None
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return Interval(point, min(float(low), point), max(float(high), point))


def _rate(successes: int, n: int, alpha: float) -> Interval | None:
    if n == 0:
        return None
    low, high = wilson_interval(successes, n, alpha)
    return Interval(successes / n, low, high)


def kappa_interval(confusion: ConfusionMatrix, alpha: float = 0.05) -> Interval | None:
    """Cohen's kappa with its asymptotic interval, or None when it is undefined.

    Kappa is undefined when the humans or the grader gave a single answer throughout: there
    is no chance agreement to correct for. When every pair agrees the asymptotic standard
    error is 0, though 15 + 14 agreeing labels do not make kappa exactly 1; the interval then
    comes from the simulation :meth:`Agreement.from_labels` runs, on the pairs as a random
    sample.
    """
    table = np.array(confusion.table(), dtype=float)
    if (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
        return None
    result = cohens_kappa(table)
    kappa, std = float(result.kappa), float(result.std_kappa)
    if not math.isfinite(kappa):
        return None
    if not std > 0:
        return _simulated_kappa(confusion, alpha)
    z = float(norm.ppf(1 - alpha / 2))
    return Interval(kappa, max(-1.0, kappa - z * std), min(1.0, kappa + z * std))


def _simulated_kappa(confusion: ConfusionMatrix, alpha: float) -> Interval | None:
    (both_pass, missed), (false_pass, both_fail) = confusion.table()
    human = np.repeat([True, True, False, False], [both_pass, missed, false_pass, both_fail])
    judge = np.repeat([True, False, True, False], [both_pass, missed, false_pass, both_fail])
    share = float(np.mean(judge))
    labeled = LabeledSample(human, judge, share)
    return Agreement.from_labels(labeled, share * (1 - share) / judge.size, alpha).kappa


@dataclass
class Calibration:
    """One grader version checked against human labels, with a verdict on trust."""

    grader: str
    grader_version: str
    splits: tuple[str, ...]
    agreement: Agreement
    trusted: bool
    status: str
    """``trusted``, ``not trusted`` or ``insufficient labels``."""
    reasons: list[str]
    settings: CalibrationSettings
    release: str | None = None
    """The release whose pass rate was corrected."""
    observed_pass_rate: float | None = None
    observed_n: int = 0
    corrected: list[CorrectedRate] = field(default_factory=list)
    population_tpr: float | None = None
    population_tnr: float | None = None
    computed_at: datetime = field(default_factory=utc_now)
    unweighted: Agreement | None = None
    """The raw labels' TPR, TNR and kappa when ``agreement`` is the population's (weighted)."""

    @property
    def n(self) -> int:
        """Labeled pairs the figures rest on."""
        return self.agreement.confusion.n

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record (also what the ``calibrations.details`` column holds)."""
        agreement = self.agreement
        return {
            "grader": self.grader, "grader_version": self.grader_version,
            "splits": list(self.splits), "n": self.n, "status": self.status,
            "trusted": self.trusted, "reasons": self.reasons,
            "confusion": {"human_pass": {"grader_pass": agreement.confusion.both_pass,
                                         "grader_fail":
                                             agreement.confusion.grader_failed_human_passed},
                          "human_fail": {"grader_pass":
                                             agreement.confusion.grader_passed_human_failed,
                                         "grader_fail": agreement.confusion.both_fail}},
            "tpr": agreement.tpr.as_dict() if agreement.tpr else None,
            "tnr": agreement.tnr.as_dict() if agreement.tnr else None,
            "kappa": agreement.kappa.as_dict() if agreement.kappa else None,
            "accuracy": agreement.accuracy,
            "weighted": agreement.weighted,
            "unweighted": _figures(self.unweighted) if self.unweighted else None,
            "thresholds": {"min_kappa": self.settings.min_kappa,
                           "min_tpr": self.settings.min_tpr, "min_tnr": self.settings.min_tnr,
                           "min_labels": self.settings.min_labels},
            "release": self.release, "observed_pass_rate": self.observed_pass_rate,
            "observed_n": self.observed_n,
            "population_tpr": self.population_tpr, "population_tnr": self.population_tnr,
            "corrected_pass_rate": [c.as_dict() for c in self.corrected],
            "computed_at": self.computed_at.isoformat(),
        }


def _figures(agreement: Agreement) -> dict[str, Any]:
    return {"tpr": agreement.tpr.as_dict() if agreement.tpr else None,
            "tnr": agreement.tnr.as_dict() if agreement.tnr else None,
            "kappa": agreement.kappa.as_dict() if agreement.kappa else None,
            "accuracy": agreement.accuracy}


def verdict_on_trust(agreement: Agreement, settings: CalibrationSettings
                     ) -> tuple[str, list[str]]:
    """``trusted`` / ``not trusted`` / ``insufficient labels``, with the reasons for it.

    On whatever figures ``agreement`` holds: :func:`calibrate` passes the population's
    (:meth:`Agreement.from_labels`); the label count is the raw one.
    """
    confusion = agreement.confusion
    if confusion.n < settings.min_labels:
        return "insufficient labels", [f"{confusion.n} labeled pairs; need "
                                       f"{settings.min_labels}"]
    if agreement.tpr is None or agreement.tnr is None or agreement.kappa is None:
        return "insufficient labels", ["people labeled only one class, or the grader gave only "
                                       "one verdict: kappa is undefined"]
    reasons = []
    for name, value, threshold in (("kappa", agreement.kappa.value, settings.min_kappa),
                                   ("TPR", agreement.tpr.value, settings.min_tpr),
                                   ("TNR", agreement.tnr.value, settings.min_tnr)):
        if value < threshold:
            reasons.append(f"{name} {value:.2f} < {threshold:g}")
    return ("not trusted", reasons) if reasons else ("trusted", [])


# -- against the store ------------------------------------------------------------------------


def latest_grader_version(store: Store, grader: str) -> str:
    """The version of ``grader`` with the newest verdict (what the last ``grade`` ran).

    A version is registered only once, so the registry alone would miss a config reverted to
    an earlier version; it decides only between versions graded at the same moment, and when
    no version has verdicts yet (the most recently registered one).

    Raises:
        CalibrationError: the grader has never been run.
    """
    g, v = t.graders.c, t.verdicts.c
    with store.engine.connect() as conn:
        registered = [str(version) for version in conn.execute(
            select(g.version).where(g.name == grader).order_by(g.created_at.desc(), g.version)
        ).scalars()]
        last_verdict = {str(version): last for version, last in conn.execute(
            select(v.grader_version, func.max(v.created_at)).where(v.grader == grader)
            .group_by(v.grader_version))}
    newest_first = {version: rank for rank, version in enumerate(registered)}
    if last_verdict:
        return max(last_verdict, key=lambda version: (
            last_verdict[version], -newest_first.get(version, len(registered))))
    if not registered:
        raise CalibrationError(f"grader {grader!r} has no verdicts in the store "
                               "(run `tracegrade grade` first)")
    return registered[0]


def labeled_criteria(store: Store) -> list[str]:
    """Every criterion that has human labels, sorted."""
    with store.engine.connect() as conn:
        return sorted(str(c) for c in conn.execute(select(t.labels.c.criterion).distinct())
                      .scalars())


def calibrate(store: Store, grader: str, grader_version: str | None = None, *,
              settings: CalibrationSettings | None = None, release: str | None = None,
              save: bool = True, resamples: int = DRAWS) -> Calibration:
    """Check one grader version against the human labels of its criterion and store the result.

    Args:
        store: the store holding labels, verdicts and spans.
        grader: the grader's name, which is also the labels' criterion.
        grader_version: the version to check; the latest registered one by default.
        settings: thresholds and the label splits to use.
        release: the release whose pass rate is corrected; the latest production release by
            default.
        save: record the result in the ``calibrations`` table, where trust is read from
            (:func:`calibration_status`). Only a calibration on the test split alone is recorded;
            one on other splits is reported, never stored.
        resamples: simulation draws behind the Rogan-Gladen interval (once bootstrap
            resamples, hence the name).

    Raises:
        CalibrationError: no labels for the criterion, or none with a verdict of this version.
    """
    settings = settings or CalibrationSettings()
    version = grader_version or latest_grader_version(store, grader)
    pairs = labeled_pairs(store, grader, version, settings.splits)
    if not pairs:
        raise CalibrationError(_no_pairs_message(store, grader, version, settings))
    raw = Agreement.from_pairs([(h, g) for _, _, h, g in pairs], settings.alpha)
    keys = [(s, i) for s, i, _, _ in pairs]
    population = _production(store, grader, version, _releases_of(store, keys))
    labeled = None if population is None else LabeledSample(
        np.array([h == "pass" for _, _, h, _ in pairs]),
        np.array([g == "pass" for _, _, _, g in pairs]), population.pass_share,
        _label_weights(store, grader, version, keys))
    agreement = raw
    if labeled is not None and population is not None:
        try:
            agreement = Agreement.from_labels(labeled, population.pass_share_variance,
                                              settings.alpha)
        except CannotCorrect:
            pass  # the labels lack a verdict: the raw figures say "insufficient labels"
    status, reasons = verdict_on_trust(agreement, settings)
    calibration = Calibration(grader, version, settings.splits, agreement,
                              status == "trusted", status, reasons, settings,
                              unweighted=raw if agreement is not raw else None)
    _correct(store, calibration, labeled, release, resamples)
    if save and settings.splits == TRUST_SPLITS:
        save_calibration(store, calibration)
    return calibration


def _no_pairs_message(store: Store, grader: str, version: str,
                      settings: CalibrationSettings) -> str:
    lb = t.labels.c
    with store.engine.connect() as conn:
        labels = conn.execute(select(func.count()).select_from(t.labels).where(
            lb.criterion == grader, lb.split.in_(list(settings.splits)))).scalar_one()
    split = "/".join(settings.splits)
    if not labels:
        return f"no human labels for {grader!r} on the {split} split " \
               "(import some with `tracegrade labels import`)"
    return (f"{labels} labels for {grader!r} on the {split} split, but none of their spans has "
            f"a pass/fail verdict from version {version}: grade them first "
            f"(`tracegrade grade --grader {grader} --all`)")


def _correct(store: Store, calibration: Calibration, labeled: LabeledSample | None,
             release: str | None, resamples: int) -> None:
    """Fill in the release's observed and corrected pass rates.

    ``labeled`` carries the labels' population pass share and inclusion weights (None when the
    labels' releases have no verdicts of this grader version).
    """
    release = release if release is not None else _latest_release(
        store, calibration.grader, calibration.grader_version)
    production = _production(store, calibration.grader, calibration.grader_version, [release])
    calibration.release = release
    if production is None:
        calibration.corrected = _uncorrected("no pass/fail verdicts of this grader version in "
                                             "the release")
        return
    calibration.observed_pass_rate = production.pass_share
    calibration.observed_n = int(production.judge.size)
    if labeled is None:
        calibration.corrected = _uncorrected("no pass/fail verdicts of this grader version in "
                                             "the labeled spans' releases")
        return
    alpha = calibration.settings.alpha
    try:
        calibration.population_tpr, calibration.population_tnr = error_rates(labeled)
    except CannotCorrect:
        pass
    calibration.corrected = [rogan_gladen(labeled, production, alpha=alpha, draws=resamples),
                             prediction_powered(labeled, production, alpha=alpha)]


def _uncorrected(why: str) -> list[CorrectedRate]:
    return [CorrectedRate(method, None, None, None, why) for method in ("rogan-gladen", "ppi")]


def _label_weights(store: Store, grader: str, version: str, keys: list[tuple[str, str]]
                   ) -> np.ndarray[Any, np.dtype[np.float64]]:
    """1 / inclusion probability of this grader version's verdict on each labeled span."""
    v = t.verdicts.c
    found: dict[tuple[str, str], float] = {}
    with store.engine.connect() as conn:
        for start in range(0, len(keys), 400):
            chunk = keys[start:start + 400]
            query = select(v.source, v.span_id, v.inclusion_probability).where(
                v.grader == grader, v.grader_version == version,
                tuple_(v.source, v.span_id).in_(chunk))
            found.update({(row[0], row[1]): float(row[2]) for row in conn.execute(query)})
    return np.array([1.0 / found[key] for key in keys], dtype=np.float64)


def _releases_of(store: Store, keys: list[tuple[str, str]]) -> list[str | None]:
    s = t.spans.c
    found: set[str | None] = set()
    with store.engine.connect() as conn:
        for start in range(0, len(keys), 400):
            chunk = keys[start:start + 400]
            query = select(s.release).where(tuple_(s.source, s.span_id).in_(chunk)).distinct()
            found.update(conn.execute(query).scalars())
    return sorted(found, key=lambda r: (r is None, r or ""))


def _production(store: Store, grader: str, version: str, releases: Sequence[str | None]
                ) -> ProductionSample | None:
    """The grader's pass/fail verdicts (with inverse-probability weights) in these releases."""
    v, s = t.verdicts.c, t.spans.c
    named = [r for r in releases if r is not None]
    release_filter = or_(s.release.in_(named), s.release.is_(None)) if None in releases \
        else s.release.in_(named)
    query = (
        select(v.outcome, v.inclusion_probability)
        .select_from(t.verdicts.join(t.spans, and_(s.source == v.source,
                                                   s.span_id == v.span_id)))
        .where(v.grader == grader, v.grader_version == version,
               v.outcome.in_(["pass", "fail"]), release_filter)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    if not rows:
        return None
    judge = np.array([row[0] == "pass" for row in rows])
    weight = np.array([1.0 / row[1] for row in rows], dtype=np.float64)
    return ProductionSample(judge, weight)


def _latest_release(store: Store, grader: str, version: str) -> str | None:
    """The release of the grader's latest production verdicts (a replay's release is not one).

    As in ``regressions``, a release holding only replays of golden items must not become the
    default one: its pass rate says nothing about production.
    """
    # Imported here: tracegrade.datasets imports the graders, whose few-shot code imports labels.
    from tracegrade.datasets import EXCLUDED_SOURCES

    v, s = t.verdicts.c, t.spans.c
    query = (
        select(s.release, func.min(s.start_time).label("first"))
        .select_from(t.verdicts.join(t.spans, and_(s.source == v.source,
                                                   s.span_id == v.span_id)))
        .where(v.grader == grader, v.grader_version == version,
               v.source.not_in(EXCLUDED_SOURCES))
        .group_by(s.release).order_by(func.min(s.start_time).desc()).limit(1)
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return row[0] if row else None


def save_calibration(store: Store, calibration: Calibration) -> None:
    """Record a calibration in the ``calibrations`` table (history is kept, never replaced)."""
    agreement = calibration.agreement
    with store.engine.begin() as conn:
        conn.execute(t.calibrations.insert().values(
            grader=calibration.grader, grader_version=calibration.grader_version,
            computed_at=calibration.computed_at, trusted=calibration.trusted,
            n=calibration.n, kappa=agreement.kappa.value if agreement.kappa else None,
            tpr=agreement.tpr.value if agreement.tpr else None,
            tnr=agreement.tnr.value if agreement.tnr else None,
            details=calibration.as_dict()))


@dataclass(frozen=True)
class CalibrationStatus:
    """The latest stored calibration of one grader version."""

    grader: str
    grader_version: str
    trusted: bool
    status: str
    """``trusted``, ``not trusted`` or ``insufficient labels``."""
    n: int
    kappa: float | None
    tpr: float | None
    tnr: float | None
    computed_at: datetime


def calibration_status(store: Store, grader: str, grader_version: str
                       ) -> CalibrationStatus | None:
    """The latest calibration of this exact grader version, or None if it was never calibrated.

    A new grader version (a changed model, prompt or parameter) has no calibration until
    ``tracegrade calibrate`` checks it again, so findings resting on it can be marked
    uncalibrated.
    """
    c = t.calibrations.c
    query = (select(t.calibrations)
             .where(c.grader == grader, c.grader_version == grader_version)
             .order_by(c.computed_at.desc(), c.id.desc()).limit(1))
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    m = row._mapping
    details = m["details"] or {}
    status = details.get("status") or ("trusted" if m["trusted"] else "not trusted")
    return CalibrationStatus(grader=m["grader"], grader_version=m["grader_version"],
                             trusted=bool(m["trusted"]), status=str(status), n=int(m["n"]),
                             kappa=m["kappa"], tpr=m["tpr"], tnr=m["tnr"],
                             computed_at=m["computed_at"])
