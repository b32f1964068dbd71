"""How far a grader can be trusted: its agreement with human labels, and corrected pass rates.

For one grader version, the human labels of its criterion (the grader's name) on the ``test``
split are paired with the grader's verdicts on the same spans. From the pairs come the
confusion matrix, TPR and TNR with Wilson intervals, and Cohen's kappa with its interval
(``statsmodels.stats.inter_rater.cohens_kappa``). A grader is **trusted** when kappa and both
rates clear configurable thresholds. Every calibration is stored in the ``calibrations`` table
under its grader version, so a changed grader (a new model or prompt is a new version) is
uncalibrated until it is checked again.

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
    CannotCorrect,
    CorrectedRate,
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


@dataclass(frozen=True)
class CalibrationSettings:
    """When a grader counts as trusted, and how the figures are computed."""

    min_kappa: float = 0.6
    min_tpr: float = 0.8
    min_tnr: float = 0.8
    min_labels: int = 20
    """Fewer labeled pairs on the split than this is "insufficient labels", not a verdict."""
    alpha: float = 0.05
    splits: tuple[str, ...] = (Split.TEST.value,)
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
    tpr: Interval | None
    tnr: Interval | None
    kappa: Interval | None
    accuracy: float | None

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, str]], alpha: float = 0.05) -> Agreement:
        """Confusion matrix, TPR and TNR (Wilson), Cohen's kappa (statsmodels) of the pairs."""
        confusion = ConfusionMatrix.from_pairs(pairs)
        tpr = _rate(confusion.both_pass, confusion.both_pass +
                    confusion.grader_failed_human_passed, alpha)
        tnr = _rate(confusion.both_fail, confusion.both_fail +
                    confusion.grader_passed_human_failed, alpha)
        accuracy = (confusion.both_pass + confusion.both_fail) / confusion.n \
            if confusion.n else None
        return cls(confusion, tpr, tnr, kappa_interval(confusion, alpha), accuracy)


def _rate(successes: int, n: int, alpha: float) -> Interval | None:
    if n == 0:
        return None
    low, high = wilson_interval(successes, n, alpha)
    return Interval(successes / n, low, high)


def kappa_interval(confusion: ConfusionMatrix, alpha: float = 0.05) -> Interval | None:
    """Cohen's kappa with its asymptotic interval, or None when it is undefined.

    Kappa is undefined when the humans or the grader gave a single answer throughout: there
    is no chance agreement to correct for.
    """
    table = np.array(confusion.table(), dtype=float)
    if (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
        return None
    result = cohens_kappa(table)
    kappa, std = float(result.kappa), float(result.std_kappa)
    if not math.isfinite(kappa):
        return None
    z = float(norm.ppf(1 - alpha / 2))
    return Interval(kappa, max(-1.0, kappa - z * std), min(1.0, kappa + z * std))


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
            "thresholds": {"min_kappa": self.settings.min_kappa,
                           "min_tpr": self.settings.min_tpr, "min_tnr": self.settings.min_tnr,
                           "min_labels": self.settings.min_labels},
            "release": self.release, "observed_pass_rate": self.observed_pass_rate,
            "observed_n": self.observed_n,
            "population_tpr": self.population_tpr, "population_tnr": self.population_tnr,
            "corrected_pass_rate": [c.as_dict() for c in self.corrected],
            "computed_at": self.computed_at.isoformat(),
        }


def verdict_on_trust(agreement: Agreement, settings: CalibrationSettings
                     ) -> tuple[str, list[str]]:
    """``trusted`` / ``not trusted`` / ``insufficient labels``, with the reasons for it."""
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
    """The most recently registered version of ``grader`` (what the last ``grade`` ran).

    Raises:
        CalibrationError: the grader has never been run.
    """
    g = t.graders.c
    query = select(g.version).where(g.name == grader).order_by(g.created_at.desc(),
                                                               g.version).limit(1)
    with store.engine.connect() as conn:
        version = conn.execute(query).scalar()
    if version is None:
        raise CalibrationError(f"grader {grader!r} has no verdicts in the store "
                               "(run `tracegrade grade` first)")
    return str(version)


def labeled_criteria(store: Store) -> list[str]:
    """Every criterion that has human labels, sorted."""
    with store.engine.connect() as conn:
        return sorted(str(c) for c in conn.execute(select(t.labels.c.criterion).distinct())
                      .scalars())


def calibrate(store: Store, grader: str, grader_version: str | None = None, *,
              settings: CalibrationSettings | None = None, release: str | None = None,
              save: bool = True, resamples: int = 2000) -> Calibration:
    """Check one grader version against the human labels of its criterion and store the result.

    Args:
        store: the store holding labels, verdicts and spans.
        grader: the grader's name, which is also the labels' criterion.
        grader_version: the version to check; the latest registered one by default.
        settings: thresholds and the label splits to use.
        release: the release whose pass rate is corrected; the latest one by default.
        save: record the result in the ``calibrations`` table.
        resamples: bootstrap resamples for the Rogan-Gladen interval.

    Raises:
        CalibrationError: no labels for the criterion, or none with a verdict of this version.
    """
    settings = settings or CalibrationSettings()
    version = grader_version or latest_grader_version(store, grader)
    pairs = labeled_pairs(store, grader, version, settings.splits)
    if not pairs:
        raise CalibrationError(_no_pairs_message(store, grader, version, settings))
    agreement = Agreement.from_pairs([(h, g) for _, _, h, g in pairs], settings.alpha)
    status, reasons = verdict_on_trust(agreement, settings)
    calibration = Calibration(grader, version, settings.splits, agreement,
                              status == "trusted", status, reasons, settings)
    _correct(store, calibration, [(s, i) for s, i, _, _ in pairs],
             np.array([h == "pass" for _, _, h, _ in pairs]),
             np.array([g == "pass" for _, _, _, g in pairs]), release, resamples)
    if save:
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


def _correct(store: Store, calibration: Calibration, keys: list[tuple[str, str]],
             human: np.ndarray[Any, Any], judge: np.ndarray[Any, Any], release: str | None,
             resamples: int) -> None:
    """Fill in the release's observed and corrected pass rates."""
    label_releases = _releases_of(store, keys)
    population = _production(store, calibration.grader, calibration.grader_version,
                             label_releases)
    release = release if release is not None else _latest_release(
        store, calibration.grader, calibration.grader_version)
    production = _production(store, calibration.grader, calibration.grader_version, [release])
    calibration.release = release
    if population is None or production is None:
        return
    calibration.observed_pass_rate = production.pass_share
    calibration.observed_n = int(production.judge.size)
    labeled = LabeledSample(human, judge, population.pass_share)
    alpha = calibration.settings.alpha
    try:
        calibration.population_tpr, calibration.population_tnr = error_rates(labeled)
    except CannotCorrect:
        pass
    calibration.corrected = [rogan_gladen(labeled, production, alpha=alpha, resamples=resamples),
                             prediction_powered(labeled, production, alpha=alpha)]


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
    v, s = t.verdicts.c, t.spans.c
    query = (
        select(s.release, func.min(s.start_time).label("first"))
        .select_from(t.verdicts.join(t.spans, and_(s.source == v.source,
                                                   s.span_id == v.span_id)))
        .where(v.grader == grader, v.grader_version == version)
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
