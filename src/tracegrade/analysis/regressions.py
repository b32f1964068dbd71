"""Did a grader get worse between two releases? Tests, intervals, FDR control, and power.

For each grader (and each configured slice of its spans) the candidate release's pass rate is
compared with the baseline's:

- Wilson intervals on each rate and a Newcombe interval on the difference (statsmodels), with
  Hajek weights and their linearisation variance when inclusion probabilities differ;
- one-sided p-values for "worse" and for "better": the score test for large tables, Boschloo's
  (or Fisher's) exact test for small ones, and the Cochran-Mantel-Haenszel test within strata
  (span name by default; its exact conditional form for small strata) when the grader's spans
  fall into several, so a shift in traffic mix is not mistaken for a regression. Candidate
  verdicts in strata the baseline never had are tested against the baseline apart, so new
  failing traffic cannot hide behind the strata; and a drop whose whole interval lies beyond
  the effect is never called unchanged;
- Benjamini-Hochberg q-values across every grader and slice tested, as one family
  (``scipy.stats.false_discovery_control``);
- the minimum detectable effect at the current sample sizes (at level alpha / m, so the stated
  power holds after FDR control) and, when the data cannot tell yet, how many more spans would
  detect the configured effect.

The SQL does the counting (:mod:`tracegrade.analysis._aggregate`); the statistics run on arrays
(:mod:`tracegrade.analysis.comparison`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from sqlalchemy import case, func, select

from tracegrade.analysis import comparison
from tracegrade.analysis._aggregate import SeriesKey, Tally, VerdictTallies, tally_verdicts
from tracegrade.analysis.errors import NotEnoughReleases
from tracegrade.analysis.rates import (
    PassRate,
    judged_releases,
    rate_from_tally,
    rates_in_order,
    release_order,
)
from tracegrade.analysis.settings import AnalysisConfig
from tracegrade.releases import ReleaseSource, release_column
from tracegrade.store import Store
from tracegrade.store import _schema as t

if TYPE_CHECKING:
    from tracegrade.graders import GraderConfig


class FindingStatus(StrEnum):
    """How a comparison ended."""

    REGRESSED = "regressed"
    IMPROVED = "improved"
    UNCHANGED = "unchanged"
    INSUFFICIENT = "insufficient data"


_BY_CODE = {
    comparison.REGRESSED: FindingStatus.REGRESSED,
    comparison.IMPROVED: FindingStatus.IMPROVED,
    comparison.UNCHANGED: FindingStatus.UNCHANGED,
    comparison.INSUFFICIENT: FindingStatus.INSUFFICIENT,
}


INTERVAL_ALPHA = 0.05
"""Every interval shown is a 95% one, whatever ``alpha`` (the false discovery rate) is."""


@dataclass(frozen=True)
class RegressionSettings:
    """Knobs of the comparison (see ``analysis:`` in tracegrade.yaml)."""

    alpha: float = 0.05
    """The false discovery rate controlled across graders and slices."""
    effect: float = 0.05
    """The drop in pass rate (absolute) the analysis must be able to detect to call it unchanged."""
    power: float = 0.8
    min_decided: int = 20
    """Fewer decided verdicts than this in either release is insufficient data outright."""
    strata: tuple[str, ...] = ("name",)
    slices: tuple[str, ...] = ("model", "environment")
    max_slice_values: int = 50
    releases: ReleaseSource = "span"
    environment: str | None = None
    """Only spans of this environment."""
    unmatched_share: float = 0.1
    """Strata seen in one release only may hold at most this share of a release's verdicts
    for the stratified test to be used; above it the pooled test runs, so new traffic counts."""
    graders: frozenset[str] | None = None
    """Compare only these graders (the configured ones); None: every grader with verdicts."""
    versions: frozenset[tuple[str, str]] | None = None
    """Compare only these (grader, version) pairs (the config's current versions)."""

    @classmethod
    def from_config(cls, analysis: AnalysisConfig, **overrides: Any) -> RegressionSettings:
        """Settings from the config's ``analysis:`` section; ``None`` overrides are ignored."""
        settings = cls(alpha=analysis.alpha, effect=analysis.effect, power=analysis.power,
                       min_decided=analysis.min_decided, strata=tuple(analysis.strata),
                       slices=tuple(analysis.slices), max_slice_values=analysis.max_slice_values,
                       releases=analysis.releases)
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class SliceKey:
    """A slice of a grader's spans: one value of one dimension (e.g. ``model = o4-mini``)."""

    dimension: str
    value: str

    def __str__(self) -> str:
        return f"{self.dimension}={self.value}"


@dataclass
class Finding:
    """One comparison: a grader overall, or one slice of it."""

    grader: str
    grader_version: str
    baseline: PassRate
    candidate: PassRate
    slice: SliceKey | None = None
    difference: float | None = None
    diff_low: float | None = None
    diff_high: float | None = None
    p_worse: float | None = None
    p_better: float | None = None
    q_worse: float | None = None
    q_better: float | None = None
    test: str | None = None
    """score, boschloo, fisher, exact, cmh or cmh-exact; None when not tested."""
    strata: int = 1
    odds_ratio: float | None = None
    odds_ratio_ci: tuple[float, float] | None = None
    mde: float | None = None
    more_spans_needed: int | None = None
    more_spans_where: str | None = None
    own_status: FindingStatus = FindingStatus.INSUFFICIENT
    """This comparison's own result."""
    status: FindingStatus = FindingStatus.INSUFFICIENT
    """For a grader: regressed when it or any of its slices regressed, else its own result."""
    slices: list[Finding] = field(default_factory=list)
    calibration: str | None = None
    """For an LLM judge: ``trusted``, ``not trusted`` or ``uncalibrated`` (never checked against
    human labels at this version). None for graders that need no calibration."""
    error_p: float | None = None
    """For a grader: the one-sided p-value that its share of error verdicts rose."""
    error_q: float | None = None
    """Its Benjamini-Hochberg q-value among the graders' error checks."""
    errors_rose: bool = False
    """The grader's error share rose significantly, and by at least ``MIN_ERROR_RISE``: it
    regressed even if its pass rate (which leaves errors out) did not move."""

    @property
    def tested(self) -> bool:
        """Whether a test ran (both sides had enough decided verdicts)."""
        return self.test is not None

    @property
    def regressed_slices(self) -> list[Finding]:
        """The slices of this grader that regressed."""
        return [s for s in self.slices if s.own_status is FindingStatus.REGRESSED]

    def label(self) -> str:
        """``grader`` or ``grader [dimension=value]``."""
        return self.grader if self.slice is None else f"{self.grader} [{self.slice}]"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        record: dict[str, Any] = {
            "grader": self.grader, "grader_version": self.grader_version,
            "slice": None if self.slice is None else {"dimension": self.slice.dimension,
                                                      "value": self.slice.value},
            "status": self.status.value, "own_status": self.own_status.value,
            "baseline": self.baseline.as_dict(), "candidate": self.candidate.as_dict(),
            "difference": self.difference, "difference_ci": [self.diff_low, self.diff_high],
            "test": self.test, "strata": self.strata,
            "p_value": self.p_worse, "q_value": self.q_worse,
            "p_value_improved": self.p_better, "q_value_improved": self.q_better,
            "odds_ratio": self.odds_ratio,
            "odds_ratio_ci": list(self.odds_ratio_ci) if self.odds_ratio_ci else None,
            "minimum_detectable_effect": self.mde,
            "more_spans_needed": self.more_spans_needed,
            "more_spans_needed_in": self.more_spans_where,
            "calibration": self.calibration,
        }
        if self.slice is None:
            record.update({"errors_rose": self.errors_rose, "error_p_value": self.error_p,
                           "error_q_value": self.error_q})
            record["slices"] = [s.as_dict() for s in self.slices]
        return record


@dataclass
class RegressionReport:
    """Every grader (and slice) compared between two releases, plus every release's rates."""

    baseline: str | None
    candidate: str | None
    findings: list[Finding]
    settings: RegressionSettings
    rates: list[PassRate] = field(default_factory=list)
    """Every release's overall pass rates, for charts."""

    @property
    def regressed(self) -> list[Finding]:
        """The graders that got worse, overall or in a slice."""
        return [f for f in self.findings if f.status is FindingStatus.REGRESSED]

    @property
    def insufficient(self) -> list[Finding]:
        """The graders whose data cannot tell yet."""
        return [f for f in self.findings if f.status is FindingStatus.INSUFFICIENT]

    @property
    def tests(self) -> int:
        """How many comparisons shared the FDR control."""
        return sum(f.tested for f in self.all_findings())

    def all_findings(self) -> list[Finding]:
        """Graders and their slices."""
        return [x for f in self.findings for x in (f, *f.slices)]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        s = self.settings
        return {
            "baseline": self.baseline, "candidate": self.candidate,
            "alpha": s.alpha, "effect": s.effect, "power": s.power, "tests": self.tests,
            "strata": list(s.strata), "slices": list(s.slices), "releases_from": s.releases,
            "environment": s.environment,
            "regressed": [f.grader for f in self.regressed],
            "findings": [f.as_dict() for f in self.findings],
        }


def configured(graders: Sequence[GraderConfig]) -> dict[str, Any]:
    """Settings overrides that compare only the configured graders, at their current versions.

    None when the config has no graders (a store read without its config compares all). A
    grader that cannot be built here (its module or its judge's SDK missing) limits the
    comparison by name only.
    """
    if not graders:
        return {}
    from tracegrade.graders import GraderConfigError, build_graders
    from tracegrade.llm import JudgeError

    versions: frozenset[tuple[str, str]] | None
    try:
        versions = frozenset((g.name, g.version) for g in build_graders(list(graders)))
    except (GraderConfigError, JudgeError, ImportError):
        versions = None
    return {"graders": frozenset(g.name for g in graders), "versions": versions}


def find_regressions(
    store: Store,
    baseline: str | None = None,
    candidate: str | None = None,
    settings: RegressionSettings | None = None,
) -> RegressionReport:
    """Compare the candidate release with the baseline for every grader and slice.

    By default the candidate is the latest release (by first graded span) and the baseline the
    one before it.

    Raises:
        NotEnoughReleases: there is nothing to compare.
    """
    settings = settings or RegressionSettings()
    tallies = tally_verdicts(store, settings.releases, (*settings.strata, *settings.slices),
                             settings.environment)
    report = analyse(tallies, baseline, candidate, settings,
                     not_by_default=replay_only_releases(store, settings.releases))
    mark_calibration(store, report.findings)
    return report


def replay_only_releases(store: Store, releases: ReleaseSource = "span") -> frozenset[str]:
    """Releases whose spans all come from ``tracegrade replay`` (not production traffic).

    They are compared only when named: a replay stored under ``rc1`` must not become the
    default candidate (or baseline) and hide what production did. ``releases`` says how a
    span's release is found (a replay stored under a deployed release's name shares it).
    """
    from tracegrade.datasets import REPLAY_SOURCE

    s = t.spans.c
    release = release_column(store, releases)
    production = func.sum(case((s.source != REPLAY_SOURCE, 1), else_=0))
    query = select(release).where(release.is_not(None)).group_by(release) \
        .having(production == 0)
    with store.engine.connect() as conn:
        return frozenset(row[0] for row in conn.execute(query))


JUDGE_TYPES = frozenset({"llm_judge", "classify"})
"""Grader types whose verdicts rest on a model that must be checked against people."""


def mark_calibration(store: Store, findings: Sequence[Finding]) -> None:
    """Say, on each finding of an LLM judge, whether that judge version is calibrated."""
    from tracegrade.analysis.calibration import calibration_status

    g = t.graders.c
    with store.engine.connect() as conn:
        types = {(row.name, row.version): row.type
                 for row in conn.execute(select(g.name, g.version, g.type))}
    for finding in findings:
        if types.get((finding.grader, finding.grader_version)) not in JUDGE_TYPES:
            continue
        status = calibration_status(store, finding.grader, finding.grader_version)
        finding.calibration = "uncalibrated" if status is None else status.status
        for slice_finding in finding.slices:
            slice_finding.calibration = finding.calibration


def analyse(tallies: VerdictTallies, baseline: str | None, candidate: str | None,
            settings: RegressionSettings,
            not_by_default: frozenset[str] = frozenset()) -> RegressionReport:
    """The comparison over already aggregated tallies (see :func:`find_regressions`)."""
    overall = tallies.overall()
    rates = rates_in_order(overall, INTERVAL_ALPHA)
    baseline, candidate = choose_releases(rates, baseline, candidate, not_by_default)
    pairs = build_comparisons(tallies, overall, baseline, candidate, settings)
    findings = run_tests(pairs, settings)
    return RegressionReport(baseline, candidate, findings, settings, rates)


def choose_releases(rates: Sequence[PassRate], baseline: str | None, candidate: str | None,
                    not_by_default: frozenset[str] = frozenset()) -> tuple[str, str]:
    """The releases to compare: as named, or the latest and the one before it.

    The candidate always comes after the baseline (in the order releases first appeared): a
    release named alone is compared with the latest release after it (``baseline``) or the
    latest one before it (``candidate``). Only releases with a decided (pass/fail) or error
    verdict are chosen by default — a release graded only with skips has nothing to compare —
    and releases in ``not_by_default`` (replays) are compared only when named.

    Raises:
        NotEnoughReleases: a named release has no verdicts, the candidate does not come after
            the baseline, or there is no release to compare with.
    """
    order = [r for r in release_order(rates) if r is not None]
    listed = f"releases in order: {', '.join(order) or 'none'}"
    for name in (baseline, candidate):
        if name is not None and name not in order:
            raise NotEnoughReleases(f"release {name!r} has no verdicts ({listed})")
    judged = judged_releases(rates)
    eligible = [r for r in order if r not in not_by_default and r in judged]
    if baseline is not None and candidate is not None:
        if order.index(candidate) <= order.index(baseline):
            raise NotEnoughReleases(f"the candidate must come after the baseline: {candidate!r} "
                                    f"is not after {baseline!r} ({listed})")
    elif baseline is not None:
        later = [r for r in eligible if order.index(r) > order.index(baseline)]
        if not later:
            raise NotEnoughReleases(f"no release after {baseline!r} to compare with it "
                                    f"({listed})")
        candidate = later[-1]
    elif candidate is not None:
        earlier = [r for r in eligible if order.index(r) < order.index(candidate)]
        if not earlier:
            raise NotEnoughReleases(f"no release before {candidate!r} to compare it with "
                                    f"({listed})")
        baseline = earlier[-1]
    elif len(eligible) >= 2:
        baseline, candidate = eligible[-2], eligible[-1]
    else:
        raise NotEnoughReleases(
            "need pass/fail or error verdicts in two releases to compare; found "
            f"{len(eligible)} ({', '.join(eligible) or 'none'})")
    return baseline, candidate


# -- building the comparisons ----------------------------------------------------------------


@dataclass
class Comparison:
    """One comparison's inputs (overall or slice tallies, strata) beside its Finding."""

    finding: Finding
    baseline: Tally
    candidate: Tally
    strata: list[tuple[Tally, Tally]]
    """Per stratum seen in both releases: its (baseline, candidate) tallies."""
    unmatched: float
    """The largest share of a release's decided verdicts in strata the other release lacks."""
    new_in_candidate: Tally = field(default_factory=Tally)
    """The candidate's verdicts in strata the baseline lacks (new span names, say): the
    stratified test cannot compare them, so they are tested against the baseline apart."""


class _Strata(NamedTuple):
    matched: list[tuple[Tally, Tally]]
    unmatched: float
    new_in_candidate: Tally


def build_comparisons(tallies: VerdictTallies, overall: dict[SeriesKey, Tally], baseline: str,
                      candidate: str, settings: RegressionSettings) -> list[Comparison]:
    """Every grader series and slice to compare, graders each followed by their slices.

    Series (grader, version) with verdicts in the candidate are compared, and those of the
    baseline whose grader has none in the candidate (its spans stopped, or it is not graded
    yet: insufficient data, never silently absent); a version replaced before the candidate is
    not. With ``settings.graders``/``versions`` (from the config), only those: a deleted
    grader, or an old version of a changed one, is not compared.
    """
    in_candidate = {(g, v) for (r, g, v) in overall if r == candidate}
    candidate_graders = {g for g, _ in in_candidate}
    series = sorted(in_candidate | {(g, v) for (r, g, v) in overall
                                    if r == baseline and g not in candidate_graders})
    if settings.graders is not None:
        series = [(g, v) for g, v in series if g in settings.graders]
    if settings.versions is not None:
        series = [(g, v) for g, v in series if (g, v) in settings.versions]
    strata = tallies.by(settings.strata)
    slices = [_SliceView(d, tallies, settings) for d in settings.slices]
    pairs: list[Comparison] = []
    for grader, version in series:
        b = overall.get((baseline, grader, version), Tally())
        c = overall.get((candidate, grader, version), Tally())
        pair = _pair(grader, version, None, (baseline, candidate), b, c, settings,
                     _strata_of(strata, grader, version, baseline, candidate, None))
        pairs.append(pair)
        for view in slices:
            pairs += _slice_pairs(pair, view, settings, (baseline, candidate))
    return pairs


class _SliceView:
    """One slice dimension's tallies, and its strata within each slice value."""

    def __init__(self, dimension: str, tallies: VerdictTallies,
                 settings: RegressionSettings) -> None:
        self.dimension = dimension
        self.by_value = tallies.by([dimension])
        if dimension in settings.strata:
            self.strata = tallies.by(settings.strata)
            self.position = settings.strata.index(dimension)
        else:
            self.strata = tallies.by((*settings.strata, dimension))
            self.position = len(settings.strata)


def _pair(grader: str, version: str, slice_key: SliceKey | None, releases: tuple[str, str],
          b: Tally, c: Tally, settings: RegressionSettings, strata: _Strata) -> Comparison:
    finding = Finding(grader, version, rate_from_tally((releases[0], grader, version), b,
                                                       INTERVAL_ALPHA),
                      rate_from_tally((releases[1], grader, version), c, INTERVAL_ALPHA),
                      slice=slice_key)
    return Comparison(finding, b, c, strata.matched, strata.unmatched, strata.new_in_candidate)


def _strata_of(strata: dict[tuple[SeriesKey, tuple[str | None, ...]], Tally], grader: str,
               version: str, baseline: str, candidate: str,
               within: tuple[int, str] | None) -> _Strata:
    """Per stratum (baseline, candidate) tallies, the largest unmatched share of a side, and
    the candidate's verdicts in strata the baseline has none in.

    ``within`` restricts to one slice: (position of the slice dimension among the strata keys,
    value) — used when the strata dimensions include the slice's.
    """
    sides: dict[tuple[str | None, ...], list[Tally]] = {}
    for ((release, g, v), values), tally in strata.items():
        if g != grader or v != version or release not in (baseline, candidate):
            continue
        if within is not None and values[within[0]] != within[1]:
            continue
        sides.setdefault(values, [Tally(), Tally()])[release == candidate].merge(tally)
    matched = [(b, c) for b, c in sides.values() if b.decided and c.decided]
    new = Tally()
    for b, c in sides.values():
        if c.decided and not b.decided:
            new.merge(c)
    totals = [sum(s[i].decided for s in sides.values()) for i in (0, 1)]
    kept = [sum(pair[i].decided for pair in matched) for i in (0, 1)]
    unmatched = max((1 - k / n) if n else 0.0 for k, n in zip(kept, totals, strict=True))
    return _Strata(matched, unmatched, new)


def _slice_pairs(parent: Comparison, view: _SliceView, settings: RegressionSettings,
                 releases: tuple[str, str]) -> list[Comparison]:
    grader, version = parent.finding.grader, parent.finding.grader_version
    values: dict[str, list[Tally]] = {}
    for ((release, g, v), (value,)), tally in view.by_value.items():
        if g == grader and v == version and value is not None and release in releases:
            values.setdefault(value, [Tally(), Tally()])[release == releases[1]] = tally
    if len(values) < 2 and all(
            b.decided == parent.baseline.decided and c.decided == parent.candidate.decided
            for b, c in values.values()):
        return []  # one value covering everything: the slice is the grader itself
    busiest = sorted(values.items(), key=lambda item: -(item[1][0].decided + item[1][1].decided))
    return [
        _pair(grader, version, SliceKey(view.dimension, value), releases, b, c, settings,
              _strata_of(view.strata, grader, version, *releases, (view.position, value)))
        for value, (b, c) in busiest[: settings.max_slice_values]
    ]


# -- running the tests -------------------------------------------------------------------------


def run_tests(pairs: list[Comparison], settings: RegressionSettings) -> list[Finding]:
    """Test every comparison, control the FDR across all of them, and set each status."""
    tested = [p for p in pairs if _testable(p, settings)]
    if tested:
        _test(tested, settings)
    grader_findings: list[Finding] = []
    for pair in pairs:
        if pair.finding.slice is None:
            grader_findings.append(pair.finding)
        else:
            grader_findings[-1].slices.append(pair.finding)
    error_checked = _error_tests(grader_findings, settings)
    _control_fdr([p.finding for p in tested], error_checked, settings)
    _set_mde([p.finding for p in tested], settings)
    for pair in pairs:
        _settle(pair.finding, len(tested), settings)
    for finding in error_checked:
        rise = (finding.candidate.error_share or 0.0) - (finding.baseline.error_share or 0.0)
        finding.errors_rose = _or_nan(finding.error_q) < settings.alpha \
            and rise >= MIN_ERROR_RISE
    for finding in grader_findings:
        finding.status = finding.own_status
        if finding.regressed_slices or finding.errors_rose:
            finding.status = FindingStatus.REGRESSED
    return grader_findings


MIN_ERROR_RISE = 0.01
"""The smallest rise in a grader's error share (absolute) that counts as a regression."""


def _error_tests(findings: list[Finding], settings: RegressionSettings) -> list[Finding]:
    """Test, per grader, whether the share of error verdicts rose (errors are kept out of the
    pass rate, so a grader that starts erroring would otherwise look unchanged); the graders
    tested, each with its ``error_p``.

    One-sided two-sample tests on the raw counts of error and non-error verdicts (score test,
    exact for small tables). Their q-values come from the same Benjamini-Hochberg family as
    the pass-rate tests (:func:`_control_fdr`): two families each at ``alpha`` made a release
    with no change read as regressed about twice as often as ``alpha`` says.
    """
    checked = [f for f in findings
               if min(f.baseline.decided + f.baseline.errors,
                      f.candidate.decided + f.candidate.errors) >= settings.min_decided
               and f.candidate.errors > 0]
    if not checked:
        return []
    judged_b = [f.baseline.decided + f.baseline.errors for f in checked]
    judged_c = [f.candidate.decided + f.candidate.errors for f in checked]
    result = comparison.two_sample([n - f.baseline.errors for f, n in zip(checked, judged_b,
                                                                           strict=True)],
                                   judged_b,
                                   [n - f.candidate.errors for f, n in zip(checked, judged_c,
                                                                            strict=True)],
                                   judged_c)
    for finding, p_value in zip(checked, result.p_worse, strict=True):
        finding.error_p = float(p_value)
    return checked


def _testable(pair: Comparison, settings: RegressionSettings) -> bool:
    f = pair.finding
    return (f.baseline.rate is not None and f.candidate.rate is not None
            and min(f.baseline.decided, f.candidate.decided) >= settings.min_decided)


def _effective(rate: PassRate) -> tuple[float, float]:
    assert rate.rate is not None
    return rate.rate * rate.effective_n, rate.effective_n


def _test(pairs: list[Comparison], settings: RegressionSettings) -> None:
    counts = np.array([[*_effective(p.finding.baseline), *_effective(p.finding.candidate)]
                       for p in pairs])
    result = comparison.two_sample(counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3],
                                   INTERVAL_ALPHA)
    for i, pair in enumerate(pairs):
        f = pair.finding
        f.difference = float(result.difference[i])
        f.diff_low, f.diff_high = float(result.low[i]), float(result.high[i])
        f.p_worse, f.p_better = float(result.p_worse[i]), float(result.p_better[i])
        f.test = result.method[i]
        if _stratified(pair, settings):
            # Small tables get the exact conditional test, so mix shift is still kept apart.
            _stratify(pair, settings, exact=f.test != "score")


def _stratified(pair: Comparison, settings: RegressionSettings) -> bool:
    """Whether the comparison runs within strata: the grader's spans fall into several, or
    into one seen in both releases beside a few seen in one only (traffic that vanished from
    the candidate must not count against it); and strata seen in one release only hold at
    most ``unmatched_share`` of a release's verdicts (above it the pooled test runs)."""
    several = len(pair.strata) >= 2 or (len(pair.strata) == 1 and pair.unmatched > 0)
    return several and pair.unmatched <= settings.unmatched_share


def _stratify(pair: Comparison, settings: RegressionSettings, exact: bool) -> None:
    """Replace the pooled test by the test within strata (CMH, or its exact form).

    Strata the baseline lacks cannot enter it; the candidate's verdicts there are tested
    against the baseline's apart, and the two p-values combined (weighted Bonferroni, each
    weighted by its share of the candidate), so new failing traffic is not hidden.
    """
    tables = np.zeros((2, 2, len(pair.strata)))
    for k, (b, c) in enumerate(pair.strata):
        for row, tally in enumerate((c, b)):
            passes, effective = _effective_counts(tally)
            tables[row, :, k] = (passes, effective - passes)
    stratified = comparison.cmh(tables, INTERVAL_ALPHA, exact=exact)
    if stratified.strata == 0:
        return
    f = pair.finding
    f.p_worse, f.p_better, f.test = stratified.p_worse, stratified.p_better, stratified.method
    if pair.new_in_candidate.decided:
        share = pair.new_in_candidate.decided / pair.candidate.decided
        worse, better = _new_strata_p(pair, settings)
        f.p_worse = min(1.0, f.p_worse / (1 - share), worse / share)
        f.p_better = min(1.0, f.p_better / (1 - share), better / share)
    f.strata = stratified.strata
    f.odds_ratio = stratified.odds_ratio
    if stratified.odds_ratio_low is not None and stratified.odds_ratio_high is not None:
        f.odds_ratio_ci = (stratified.odds_ratio_low, stratified.odds_ratio_high)


def _effective_counts(tally: Tally) -> tuple[float, float]:
    """(passes, decided) at the tally's effective sample size."""
    weighted = comparison.weighted_rate(tally.w_pass, tally.w_fail, tally.w2_pass,
                                        tally.w2_fail, tally.decided)
    rate = float(weighted.rate)
    effective = comparison.class_effective_n(tally.classes, rate, float(weighted.effective_n))
    return rate * effective, effective


def _new_strata_p(pair: Comparison, settings: RegressionSettings) -> tuple[float, float]:
    """One-sided p-values that the candidate's verdicts in new strata pass less (more) often
    than the baseline's verdicts."""
    passes, effective = _effective_counts(pair.new_in_candidate)
    b_passes, b_effective = _effective(pair.finding.baseline)
    result = comparison.two_sample([b_passes], [b_effective], [passes], [effective],
                                   INTERVAL_ALPHA)
    return float(result.p_worse[0]), float(result.p_better[0])


def _control_fdr(findings: list[Finding], error_checked: list[Finding],
                 settings: RegressionSettings) -> None:
    """Benjamini-Hochberg q-values: one family for every way a release can be worse (pass-rate
    drops of graders and slices, rises in graders' error shares), one for improvements."""
    worse = [_or_nan(f.p_worse) for f in findings] + [_or_nan(f.error_p) for f in error_checked]
    if worse:
        q_worse = comparison.benjamini_hochberg(worse)
        for finding, qw in zip(findings, q_worse, strict=False):
            finding.q_worse = float(qw)
        for finding, qe in zip(error_checked, q_worse[len(findings):], strict=True):
            finding.error_q = float(qe)
    if findings:
        q_better = comparison.benjamini_hochberg([_or_nan(f.p_better) for f in findings])
        for finding, qb in zip(findings, q_better, strict=True):
            finding.q_better = float(qb)


def _set_mde(findings: list[Finding], settings: RegressionSettings) -> None:
    """The MDE of every tested comparison at level alpha / m, all in one vectorised solve."""
    if not findings:
        return
    mde = comparison.minimum_detectable_effect(
        [_or_nan(f.baseline.rate) for f in findings], [f.baseline.effective_n for f in findings],
        [f.candidate.effective_n for f in findings], settings.alpha / len(findings),
        settings.power)
    for finding, value in zip(findings, mde, strict=True):
        # NaN: too few verdicts; infinite: not even a drop to zero is detectable.
        finding.mde = None if not np.isfinite(value) else float(value)


def _settle(finding: Finding, tests: int, settings: RegressionSettings) -> None:
    level = settings.alpha / max(tests, 1)
    # A pooled drop beyond the effect is never "unchanged" — unless the test compared within
    # strata: there the pooled difference may be a shift in traffic mix, which the design says
    # is not a change of the grader's pass rate (new strata are tested on their own).
    stratified = (finding.test or "").startswith("cmh")
    diff_high = None if stratified else finding.diff_high
    code = comparison.decide(
        _or_nan(finding.q_worse), _or_nan(finding.q_better), _or_nan(finding.mde),
        finding.tested, settings.alpha, settings.effect, _or_nan(diff_high))
    finding.own_status = finding.status = _BY_CODE[int(code)]
    dropped = diff_high is not None and diff_high < -settings.effect
    if finding.own_status is FindingStatus.INSUFFICIENT and not dropped:
        # (A pooled drop beyond the effect that the test does not call a regression is no
        # matter of sample size: more spans would not settle it.)
        _set_needed(finding, level, settings)


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _set_needed(finding: Finding, level: float, settings: RegressionSettings) -> None:
    b, c = finding.baseline, finding.candidate
    p = b.rate if b.rate is not None else (c.rate if c.rate is not None else 0.9)
    needed = comparison.spans_needed(p, b.effective_n, c.effective_n, settings.effect, level,
                                     settings.power)
    # Effective verdicts → graded verdicts: the design effect of the side that must grow.
    side = c if needed.where == "candidate" else (b if b.effective_n < c.effective_n else c)
    design_effect = side.decided / side.effective_n if side.effective_n > 0 else 1.0
    finding.more_spans_needed = int(np.ceil(needed.more * max(design_effect, 1.0)))
    finding.more_spans_where = needed.where


def compare(baseline: PassRate, candidate: PassRate, settings: RegressionSettings) -> Finding:
    """Compare one grader's two rates on their own (no strata; FDR over this one test)."""
    b = _tally_of(baseline)
    c = _tally_of(candidate)
    pair = Comparison(Finding(baseline.grader, baseline.grader_version, baseline, candidate), b, c,
                 [], 0.0)
    return run_tests([pair], settings)[0]


def _tally_of(rate: PassRate) -> Tally:
    """Unit-weight tallies for a rate built by hand (tests, examples)."""
    return Tally(passed=rate.passed, failed=rate.failed, errors=rate.errors,
                 skipped=rate.skipped, w_pass=rate.passed, w_fail=rate.failed,
                 w2_pass=rate.passed, w2_fail=rate.failed)
