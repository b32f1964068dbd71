"""find_regressions over a real store: statuses, slices, strata, weights, errors apart."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import pytest
from scipy.stats import fisher_exact

from tests.conftest import make_span
from tracegrade.analysis import (
    FindingStatus,
    NotEnoughReleases,
    PassRate,
    RegressionSettings,
    find_regressions,
    wilson_interval,
)
from tracegrade.analysis._aggregate import Tally
from tracegrade.analysis.comparison import spans_needed
from tracegrade.analysis.rates import rate_from_tally
from tracegrade.analysis.regressions import compare
from tracegrade.spans import SpanKind
from tracegrade.store import Store, VerdictRow


def rate(release: str, passed: int, failed: int, errors: int = 0, grader: str = "g") -> PassRate:
    n = passed + failed
    low, high = wilson_interval(passed, n) if n else (None, None)
    return PassRate(release=release, grader=grader, grader_version="v", passed=passed,
                    failed=failed, errors=errors, skipped=0, rate=passed / n if n else None,
                    low=low, high=high, effective_n=float(n))


# --- one comparison -----------------------------------------------------------------------------


def test_newcombe_difference_matches_newcombe_1998() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80,
    # method 10 (score, no continuity correction): 0.0524 to 0.3339.
    finding = compare(rate("b", 48, 32), rate("c", 56, 14), RegressionSettings())
    assert finding.difference == pytest.approx(0.2)
    assert finding.diff_low == pytest.approx(0.0524, abs=5e-4)
    assert finding.diff_high == pytest.approx(0.3339, abs=5e-4)
    assert finding.own_status is FindingStatus.IMPROVED


def test_errors_stay_out_of_the_rate() -> None:
    finding = compare(rate("b", 90, 10, errors=0), rate("c", 90, 10, errors=500),
                      RegressionSettings())
    assert finding.candidate.rate == pytest.approx(0.9)
    assert finding.candidate.error_share == pytest.approx(500 / 600)
    assert finding.difference == pytest.approx(0.0)


def test_insufficient_data_says_how_many_more_spans() -> None:
    settings = RegressionSettings()
    finding = compare(rate("b", 27, 3), rate("c", 26, 4), settings)
    assert finding.status is FindingStatus.INSUFFICIENT
    expected = spans_needed(0.9, 30, 30, settings.effect, settings.alpha)
    assert (finding.more_spans_needed, finding.more_spans_where) == (expected.more,
                                                                      "each release")
    assert finding.more_spans_needed > 300


def test_a_large_baseline_needs_more_candidate_spans_only() -> None:
    finding = compare(rate("b", 9000, 1000), rate("c", 45, 5), RegressionSettings())
    assert finding.status is FindingStatus.INSUFFICIENT
    assert finding.more_spans_where == "candidate"
    # With that many more, statsmodels' power for a 5-point drop just reaches 80%.
    from statsmodels.stats.proportion import power_proportions_2indep

    more = finding.more_spans_needed
    assert more is not None

    def power(n_candidate: int) -> float:
        return float(power_proportions_2indep(-0.05, 0.9, n_candidate, ratio=10_000 / n_candidate,
                                              alpha=0.05, alternative="smaller",
                                              return_results=False))

    assert power(50 + more) >= 0.8 > power(50 + more - 2)


def test_too_few_verdicts_are_not_tested_at_all() -> None:
    finding = compare(rate("b", 10, 0), rate("c", 0, 10), RegressionSettings())
    assert finding.test is None and finding.p_worse is None
    assert finding.status is FindingStatus.INSUFFICIENT


def test_small_tables_get_an_exact_test() -> None:
    finding = compare(rate("b", 39, 1), rate("c", 33, 7), RegressionSettings())
    assert finding.test == "boschloo"
    from scipy.stats import boschloo_exact

    assert finding.p_worse == pytest.approx(
        boschloo_exact([[33, 39], [7, 1]], alternative="less").pvalue)
    assert finding.p_worse < fisher_exact([[33, 39], [7, 1]], alternative="less").pvalue


# --- over the store -----------------------------------------------------------------------------


@dataclass
class Verdicts:
    """Spans of one release and cell with their outcomes."""

    release: str
    outcomes: list[str]
    name: str = "ChatCompletion"
    model: str | None = None
    probability: float = 1.0
    grader: str = "g"
    version: str = "v"


def seed(store: Store, groups: Iterable[Verdicts]) -> None:
    index = itertools.count()
    for group in groups:
        spans, verdicts = [], []
        for outcome in group.outcomes:
            i = next(index)
            spans.append(make_span(i, release=group.release, name=group.name,
                                   model=group.model, kind=SpanKind.LLM))
            verdicts.append(VerdictRow(source="test", span_id=f"span-{i:06d}",
                                       grader=group.grader, grader_version=group.version,
                                       outcome=outcome,
                                       reason="", inclusion_probability=group.probability,
                                       run_id="r"))
        store.upsert_spans(spans)
        store.insert_verdicts(verdicts)


def outcomes(passed: int, failed: int, errors: int = 0) -> list[str]:
    return ["pass"] * passed + ["fail"] * failed + ["error"] * errors


def test_find_regressions_compares_latest_with_previous(store: Store) -> None:
    seed(store, [Verdicts("r1", outcomes(950, 50)), Verdicts("r2", outcomes(800, 200, 7))])
    report = find_regressions(store)
    assert (report.baseline, report.candidate) == ("r1", "r2")
    (finding,) = report.findings
    assert finding.status is FindingStatus.REGRESSED
    assert finding.difference == pytest.approx(-0.15)
    assert finding.candidate.errors == 7
    assert report.as_dict()["regressed"] == ["g"]


def test_one_release_is_not_enough(store: Store) -> None:
    seed(store, [Verdicts("r1", outcomes(10, 0))])
    with pytest.raises(NotEnoughReleases, match="two releases"):
        find_regressions(store)
    with pytest.raises(NotEnoughReleases, match="has no verdicts"):
        find_regressions(store, baseline="nope")


def test_a_failure_confined_to_a_small_slice_is_found(store: Store) -> None:
    """2% of traffic (one model) breaks: the overall rate hides it, the slice test does not."""
    seed(store, [
        Verdicts("r1", outcomes(1940, 60), model="big"),
        Verdicts("r1", outcomes(40, 0), model="small"),
        Verdicts("r2", outcomes(1940, 60), model="big"),
        Verdicts("r2", outcomes(25, 15), model="small"),
    ])
    report = find_regressions(store, settings=RegressionSettings(slices=("model",)))
    (finding,) = report.findings
    assert finding.own_status is not FindingStatus.REGRESSED
    assert finding.status is FindingStatus.REGRESSED
    assert [str(s.slice) for s in finding.regressed_slices] == ["model=small"]
    assert report.tests == 3  # the grader and both of its model slices share the FDR control


def test_a_traffic_mix_shift_is_not_a_regression(store: Store) -> None:
    """Each span name passes as often as before; the candidate just gets more of the hard one."""
    seed(store, [
        Verdicts("r1", outcomes(1800, 200), name="easy"),
        Verdicts("r1", outcomes(300, 200), name="hard"),
        Verdicts("r2", outcomes(450, 50), name="easy"),
        Verdicts("r2", outcomes(1200, 800), name="hard"),
    ])
    pooled = find_regressions(store, settings=RegressionSettings(strata=(), slices=()))
    assert pooled.findings[0].status is FindingStatus.REGRESSED  # Simpson's paradox
    stratified = find_regressions(store, settings=RegressionSettings(slices=()))
    (finding,) = stratified.findings
    assert (finding.test, finding.strata) == ("cmh", 2)
    assert finding.status is not FindingStatus.REGRESSED
    assert finding.odds_ratio == pytest.approx(1.0, abs=0.15)
    # The pooled pass rate fell by far more than the effect, but within each span name
    # nothing changed, and the test had the power to see it: unchanged.
    assert finding.diff_high is not None and finding.diff_high < -0.05
    assert finding.status is FindingStatus.UNCHANGED


def test_a_traffic_mix_shift_in_a_small_sample_is_not_a_regression(store: Store) -> None:
    """Small tables get the exact test; with strata, its exact stratified form."""
    seed(store, [
        Verdicts("r1", outcomes(145, 0), name="easy"),
        Verdicts("r1", outcomes(4, 1), name="hard"),
        Verdicts("r2", outcomes(110, 0), name="easy"),
        Verdicts("r2", outcomes(32, 8), name="hard"),
    ])
    pooled = find_regressions(store, settings=RegressionSettings(strata=(), slices=()))
    assert pooled.findings[0].status is FindingStatus.REGRESSED  # 1/150 vs 8/150 fail
    (finding,) = find_regressions(store, settings=RegressionSettings(slices=())).findings
    assert (finding.test, finding.strata) == ("cmh-exact", 2)
    assert finding.status is not FindingStatus.REGRESSED
    # "easy" never fails in either release, so it carries no information: Fisher on "hard".
    assert finding.p_worse == pytest.approx(
        fisher_exact([[32, 4], [8, 1]], alternative="less").pvalue)


def test_a_new_failing_span_name_is_a_regression(store: Store) -> None:
    """A name the baseline never had cannot enter the stratified test; it must not hide."""
    seed(store, [
        Verdicts("r1", outcomes(950, 50), name="a"),
        Verdicts("r1", outcomes(950, 50), name="b"),
        Verdicts("r2", outcomes(950, 50), name="a"),
        Verdicts("r2", outcomes(950, 50), name="b"),
        Verdicts("r2", outcomes(0, 200), name="new_tool"),  # 9% of the candidate
    ])
    (finding,) = find_regressions(store, settings=RegressionSettings(slices=())).findings
    assert (finding.test, finding.strata) == ("cmh", 2)
    assert finding.status is FindingStatus.REGRESSED


def test_traffic_gone_from_the_candidate_does_not_count_against_it(store: Store) -> None:
    """The baseline also served an easy span name (9% of it) that the candidate no longer
    has; the one name both served passes exactly as often as before."""
    seed(store, [
        Verdicts("r1", outcomes(1500, 1000), name="a"),
        Verdicts("r1", outcomes(250, 0), name="retired"),
        Verdicts("r2", outcomes(1500, 1000), name="a"),
    ])
    pooled = find_regressions(store, settings=RegressionSettings(strata=(), slices=()))
    assert pooled.findings[0].status is FindingStatus.REGRESSED  # 63.6% → 60.0%
    (finding,) = find_regressions(store, settings=RegressionSettings(slices=())).findings
    assert (finding.test, finding.strata) == ("cmh", 1)
    assert finding.status is FindingStatus.UNCHANGED


def test_a_new_span_name_passing_as_usual_leaves_a_mix_shift_alone(store: Store) -> None:
    seed(store, [
        Verdicts("r1", outcomes(1800, 200), name="easy"),
        Verdicts("r1", outcomes(300, 200), name="hard"),
        Verdicts("r2", outcomes(450, 50), name="easy"),
        Verdicts("r2", outcomes(1200, 800), name="hard"),
        Verdicts("r2", outcomes(170, 30), name="new"),  # 85%: the baseline passed 84%
    ])
    (finding,) = find_regressions(store, settings=RegressionSettings(slices=())).findings
    assert finding.test == "cmh"
    assert finding.status is not FindingStatus.REGRESSED


def test_strata_new_in_the_candidate_are_not_ignored(store: Store) -> None:
    seed(store, [
        Verdicts("r1", outcomes(950, 50), name="a"),
        Verdicts("r1", outcomes(950, 50), name="b"),
        Verdicts("r2", outcomes(950, 50), name="a"),
        Verdicts("r2", outcomes(950, 50), name="b"),
        Verdicts("r2", outcomes(300, 700), name="new"),
    ])
    (finding,) = find_regressions(store, settings=RegressionSettings(slices=())).findings
    assert finding.test == "score"
    assert finding.status is FindingStatus.REGRESSED


def test_weights_never_make_a_sample_worth_more_than_its_verdicts() -> None:
    # Passes sampled at 10%, failures at 100%: the linearisation variance alone would make
    # these 910 verdicts worth ~8,900.
    tally = Tally(passed=900, failed=10, w_pass=9000.0, w_fail=10.0, w2_pass=90_000.0,
                  w2_fail=10.0)
    assert rate_from_tally(("r", "g", "v"), tally).effective_n == pytest.approx(910)


def test_unequal_sampling_is_weighted(store: Store) -> None:
    """A rarely sampled, often failing stratum weighs what its traffic weighs."""
    seed(store, [
        Verdicts("r1", outcomes(900, 100), name="common", probability=1.0),
        Verdicts("r1", outcomes(50, 50), name="rare", probability=0.1),
        Verdicts("r2", outcomes(900, 100), name="common", probability=1.0),
        Verdicts("r2", outcomes(50, 50), name="rare", probability=0.1),
    ])
    report = find_regressions(store, settings=RegressionSettings(slices=()))
    baseline = report.findings[0].baseline
    # Hajek: (900 + 50·10) / (1000 + 100·10) = 0.7, not the unweighted 950/1100.
    assert baseline.rate == pytest.approx(0.7)
    assert baseline.decided == 1100
    # Σw²(y−p)² / (Σw)² = (900·0.3² + 100·0.7² + 100·(50·0.3² + 50·0.7²)) / 2000², and the
    # 1,100 verdicts are worth p(1−p)/V ≈ 277: too few to rule out a 5-point drop.
    variance = (900 * 0.09 + 100 * 0.49 + 100 * (50 * 0.09 + 50 * 0.49)) / 2000**2
    assert baseline.effective_n == pytest.approx(0.21 / variance)
    assert report.findings[0].status is FindingStatus.INSUFFICIENT


def test_a_heavy_group_whose_verdicts_all_agree_is_not_taken_as_known(store: Store) -> None:
    """18 verdicts sampled at 1% all pass, 200 at 100% pass 60%: read from the store, the
    heavy group's spread is taken at Jeffreys' (x + ½)/(n + 1), not as zero."""
    seed(store, [
        Verdicts("r1", outcomes(18, 0), name="common", probability=0.01),
        Verdicts("r1", outcomes(120, 80), name="rare", probability=1.0),
        Verdicts("r2", outcomes(18, 0), name="common", probability=0.01),
        Verdicts("r2", outcomes(120, 80), name="rare", probability=1.0),
    ])
    baseline = find_regressions(store, settings=RegressionSettings(slices=())
                                ).findings[0].baseline
    rate = (1800 + 120) / 2000
    assert baseline.rate == pytest.approx(rate)
    jeffreys = 18.5 / 19 * 0.5 / 19
    variance = (1e4 * 18 * (jeffreys + (1 - rate) ** 2)
                + 200 * (0.6 * 0.4 + (0.6 - rate) ** 2)) / 2000**2
    assert baseline.effective_n == pytest.approx(rate * (1 - rate) / variance)
    assert baseline.effective_n < 40  # where the linearised variance said all 218 verdicts


def test_findings_on_uncalibrated_judges_are_marked(store: Store) -> None:
    spans = [make_span(i, release="r1" if i < 100 else "r2") for i in range(200)]
    store.upsert_spans(spans)
    store.register_grader("judge", "v", "llm_judge", {"type": "llm_judge"})
    store.register_grader("check", "v", "regex", {"type": "regex"})
    store.insert_verdicts([
        VerdictRow(source="test", span_id=s.span_id, grader=g, grader_version="v",
                   outcome="pass", reason="", inclusion_probability=1.0, run_id="r")
        for s in spans for g in ("judge", "check")])
    marks = {f.grader: f.calibration for f in find_regressions(store).findings}
    assert marks == {"judge": "uncalibrated", "check": None}


def test_a_replayed_release_is_compared_only_when_named(store: Store) -> None:
    # `tracegrade replay golden --release rc1` stores its spans last: by default the
    # comparison must stay on production (r1 -> r2, which regressed), not rc1 vs r2.
    seed(store, [Verdicts("r1", outcomes(950, 50)), Verdicts("r2", outcomes(800, 200))])
    replayed = [make_span(900_000 + i, source="replay", release="rc1") for i in range(40)]
    store.upsert_spans(replayed)
    store.insert_verdicts([VerdictRow(source="replay", span_id=s.span_id, grader="g",
                                      grader_version="v", outcome="pass", reason="",
                                      inclusion_probability=1.0, run_id="r")
                           for s in replayed])

    default = find_regressions(store)
    named = find_regressions(store, candidate="rc1")

    assert (default.baseline, default.candidate) == ("r1", "r2")
    assert default.findings[0].status is FindingStatus.REGRESSED
    assert (named.baseline, named.candidate) == ("r2", "rc1")


def test_the_candidate_always_comes_after_the_baseline(store: Store) -> None:
    seed(store, [Verdicts("r1", outcomes(950, 50)), Verdicts("r2", outcomes(950, 50)),
                 Verdicts("r3", outcomes(950, 50))])

    def pair(**named: str) -> tuple[str | None, str | None]:
        report = find_regressions(store, **named)
        return report.baseline, report.candidate

    assert pair(baseline="r1") == ("r1", "r3")
    assert pair(candidate="r2") == ("r1", "r2")
    with pytest.raises(NotEnoughReleases, match="no release after 'r3'"):
        find_regressions(store, baseline="r3")
    with pytest.raises(NotEnoughReleases, match="no release before 'r1'"):
        find_regressions(store, candidate="r1")
    with pytest.raises(NotEnoughReleases, match="candidate must come after the baseline"):
        find_regressions(store, baseline="r2", candidate="r1")


def test_a_release_graded_only_with_skips_is_not_chosen_by_default(store: Store) -> None:
    seed(store, [Verdicts("r1", outcomes(950, 50)), Verdicts("r2", ["skip"] * 100),
                 Verdicts("r3", outcomes(800, 200)), Verdicts("r4", ["skip"] * 100)])
    report = find_regressions(store)
    assert (report.baseline, report.candidate) == ("r1", "r3")
    assert report.findings[0].status is FindingStatus.REGRESSED


def test_a_release_graded_only_with_errors_is_compared(store: Store) -> None:
    seed(store, [Verdicts("r1", outcomes(950, 50)), Verdicts("r2", outcomes(0, 0, 300))])
    report = find_regressions(store)
    assert report.candidate == "r2"
    assert report.findings[0].errors_rose  # a grader that broke


def test_a_grader_version_gone_from_the_candidate_is_not_compared(store: Store) -> None:
    # The grader's config changed during r2: r2 holds both versions, r3 only the new one.
    seed(store, [Verdicts("r1", outcomes(950, 50), version="v1"),
                 Verdicts("r2", outcomes(475, 25), version="v1"),
                 Verdicts("r2", outcomes(950, 50), version="v2"),
                 Verdicts("r3", outcomes(950, 50), version="v2")])
    report = find_regressions(store, settings=RegressionSettings(slices=()))
    assert [(f.grader_version, f.status) for f in report.findings] == [
        ("v2", FindingStatus.UNCHANGED)]
    assert report.insufficient == []


def test_a_grader_that_starts_erroring_regressed_though_its_pass_rate_held(store: Store
                                                                          ) -> None:
    from tracegrade.reports._format import headline, status_text

    seed(store, [Verdicts("r1", outcomes(1800, 200, 0)),
                 Verdicts("r2", outcomes(1800, 200, 2000)),
                 Verdicts("r1", outcomes(900, 100, 3), grader="steady"),
                 Verdicts("r2", outcomes(900, 100, 5), grader="steady")])

    report = find_regressions(store)
    by_grader = {f.grader: f for f in report.findings}

    erroring, steady = by_grader["g"], by_grader["steady"]
    assert erroring.own_status is FindingStatus.UNCHANGED  # 90% of decided verdicts pass
    assert erroring.errors_rose and erroring.status is FindingStatus.REGRESSED
    assert erroring.error_q is not None and erroring.error_q < 1e-6
    assert status_text(erroring) == "regressed (errors 0.0% → 50.0%)"
    assert "g (errors 0.0% → 50.0%)" in headline(report)
    assert not steady.errors_rose and steady.status is FindingStatus.UNCHANGED
    assert report.as_dict()["findings"][0]["errors_rose"] in (True, False)


def test_intervals_stay_95_percent_whatever_the_false_discovery_rate() -> None:
    """``alpha`` is the FDR; the intervals, labelled 95%, are 95% ones (a review saw alpha 0.2
    give 80% Wilson and Newcombe intervals under a "95% CI" heading)."""
    from statsmodels.stats.proportion import proportion_confint

    from tracegrade.analysis import comparison
    from tracegrade.analysis.regressions import Comparison, Finding, _pair, _Strata, run_tests

    settings = RegressionSettings(alpha=0.2, strata=(), slices=())
    baseline = Tally(passed=90, failed=10, w_pass=90, w_fail=10, w2_pass=90, w2_fail=10)
    candidate = Tally(passed=70, failed=30, w_pass=70, w_fail=30, w2_pass=70, w2_fail=30)
    pair: Comparison = _pair("g", "v", None, ("b", "c"), baseline, candidate, settings,
                             _Strata([], 0.0, Tally()))
    (finding,) = run_tests([pair], settings)
    assert isinstance(finding, Finding)
    assert (finding.baseline.low, finding.baseline.high) == pytest.approx(
        proportion_confint(90, 100, alpha=0.05, method="wilson"))
    newcombe = comparison.two_sample([90], [100], [70], [100], 0.05)
    assert (finding.diff_low, finding.diff_high) == pytest.approx(
        (newcombe.low[0], newcombe.high[0]))
    assert finding.diff_low == pytest.approx(-0.306, abs=1e-3)


def test_a_grader_with_no_candidate_verdicts_is_insufficient_data_not_absent(
        store: Store) -> None:
    """Its spans stopped (or it is not graded yet): `--strict` must be able to see that."""
    seed(store, [Verdicts("r1", outcomes(90, 10)), Verdicts("r2", outcomes(85, 15)),
                 Verdicts("r1", outcomes(300, 0), grader="gone")])
    report = find_regressions(store)
    assert [f.grader for f in report.findings] == ["g", "gone"]
    gone = report.findings[1]
    assert gone.status is FindingStatus.INSUFFICIENT and gone in report.insufficient
    assert gone.baseline.passed == 300 and gone.candidate.decided == 0


def test_only_configured_graders_at_their_current_version_are_compared(store: Store) -> None:
    """A changed grader's old version and a deleted grader regress no release."""
    seed(store, [Verdicts("r1", outcomes(95, 5), version="old"),
                 Verdicts("r2", outcomes(50, 50), version="old"),
                 Verdicts("r1", outcomes(50, 50), version="new"),
                 Verdicts("r2", outcomes(95, 5), version="new"),
                 Verdicts("r1", outcomes(95, 5), grader="deleted"),
                 Verdicts("r2", outcomes(10, 90), grader="deleted")])
    everything = find_regressions(store)
    assert len(everything.findings) == 3 and everything.regressed
    settings = RegressionSettings(graders=frozenset({"g"}), versions=frozenset({("g", "new")}))
    report = find_regressions(store, settings=settings)
    assert [(f.grader, f.grader_version, f.status) for f in report.findings] == [
        ("g", "new", FindingStatus.IMPROVED)]
    assert not report.regressed


def test_releases_starting_together_are_ordered_by_their_numbers(store: Store) -> None:
    """v9 and v10 first seen at the same moment: v10 is the later one (not "v10" < "v9")."""
    from tracegrade.spans import natural_key

    assert sorted(["v10", "v9", "v9.1", "2026.11.10", "2026.11.2"], key=natural_key) == [
        "2026.11.2", "2026.11.10", "v9", "v9.1", "v10"]
    for release in ("v9", "v10"):
        store.upsert_spans([make_span(0, span_id=f"{release}-span", release=release)])
    assert store.releases() == ["v9", "v10"]


def test_a_grader_regressed_by_its_errors_shows_its_erring_spans(store: Store) -> None:
    from tracegrade.analysis.examples import failing_spans

    seed(store, [Verdicts("r1", outcomes(180, 20)), Verdicts("r2", outcomes(90, 10, 100))])
    report = find_regressions(store)
    (finding,) = report.findings
    assert finding.errors_rose and finding.own_status is not FindingStatus.REGRESSED
    examples = failing_spans(store, report, limit=4)
    assert list(examples) == ["g"] and len(examples["g"]) == 4
    assert failing_spans(store, report, limit=0) == {}


def test_watch_splits_its_alpha_by_the_baseline_alone(store: Store) -> None:
    """Graders that have no candidate verdict yet are watched from the first look, so the
    share of alpha each check gets does not shrink as the candidate's traffic arrives."""
    from tracegrade.watch import detect

    settings = RegressionSettings(strata=(), slices=())
    groups = [Verdicts("r1", outcomes(100, 0), grader=g) for g in "abcd"]
    groups.append(Verdicts("r2", outcomes(5, 0), grader="a"))
    seed(store, groups)
    first = detect(store, settings, 0.05)
    # seed() numbers spans from 0: the same groups again, then the candidate's new ones
    seed(store, groups + [Verdicts("r2", outcomes(5, 0), grader=g) for g in "bcd"])
    later = detect(store, settings, 0.05)
    assert sum(f.candidate.decided for f in find_regressions(store).findings) == 20
    assert (first.watched, first.errors_watched) == (later.watched, later.errors_watched) == (4, 4)
