"""Regression statistics against published values and seeded simulations."""

from __future__ import annotations

import math

import numpy as np
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
from tracegrade.analysis.regressions import (
    _apply_fdr,
    compare,
    minimum_detectable_effect,
    spans_needed,
)
from tracegrade.store import Store, VerdictRow


def rate(release: str, passed: int, failed: int, errors: int = 0, grader: str = "g") -> PassRate:
    n = passed + failed
    low, high = wilson_interval(passed, n) if n else (None, None)
    return PassRate(release=release, grader=grader, grader_version="v", passed=passed,
                    failed=failed, errors=errors, skipped=0, rate=passed / n if n else None,
                    low=low, high=high, effective_n=float(n))


def test_wilson_matches_the_closed_form() -> None:
    x, n, z = 81, 263, 1.959963984540054
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert wilson_interval(x, n) == pytest.approx((centre - half, centre + half), abs=1e-9)


def test_newcombe_difference_matches_newcombe_1998() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80,
    # method 10 (score, no continuity correction): 0.0524 to 0.3339.
    finding = compare(rate("b", 48, 32), rate("c", 56, 14), RegressionSettings())
    assert finding.difference == pytest.approx(0.2)
    assert finding.diff_low == pytest.approx(0.0524, abs=5e-4)
    assert finding.diff_high == pytest.approx(0.3339, abs=5e-4)


def test_small_tables_use_fishers_exact_test() -> None:
    finding = compare(rate("b", 45, 5), rate("c", 35, 15), RegressionSettings())
    expected = fisher_exact([[35, 15], [45, 5]], alternative="less").pvalue
    assert finding.p_worse == pytest.approx(expected)


def test_large_tables_use_the_score_test() -> None:
    from statsmodels.stats.proportion import test_proportions_2indep

    finding = compare(rate("b", 1900, 100), rate("c", 1860, 140), RegressionSettings())
    expected = test_proportions_2indep(1860, 2000, 1900, 2000, method="score",
                                       alternative="smaller").pvalue
    assert finding.p_worse == pytest.approx(expected)


def test_errors_stay_out_of_the_rate() -> None:
    finding = compare(rate("b", 90, 10, errors=0), rate("c", 90, 10, errors=500),
                      RegressionSettings())
    assert finding.candidate.rate == pytest.approx(0.9)
    assert finding.difference == pytest.approx(0.0)


def test_mde_is_detected_with_the_stated_power() -> None:
    rng = np.random.default_rng(11)
    settings = RegressionSettings()
    n, p = 2000, 0.9
    mde = minimum_detectable_effect(p, n, n, settings)
    assert mde is not None and 0.01 < mde < 0.05
    detected = 0
    runs = 400
    for _ in range(runs):
        b = int(rng.binomial(n, p))
        c = int(rng.binomial(n, p - mde))
        finding = compare(rate("b", b, n - b), rate("c", c, n - c), settings)
        detected += finding.p_worse is not None and finding.p_worse < settings.alpha
    assert detected / runs >= 0.75  # 80% nominal power, minus simulation error


def test_no_true_change_keeps_false_alarms_at_the_fdr_level() -> None:
    rng = np.random.default_rng(5)
    settings = RegressionSettings()
    runs, graders, n = 300, 20, 400
    alarms = 0
    for _ in range(runs):
        findings = []
        for g in range(graders):
            p = 0.6 + 0.35 * g / graders
            b, c = int(rng.binomial(n, p)), int(rng.binomial(n, p))
            findings.append(compare(rate("b", b, n - b, grader=f"g{g}"),
                                    rate("c", c, n - c, grader=f"g{g}"), settings))
        _apply_fdr(findings, settings)
        alarms += any(f.status is FindingStatus.REGRESSED for f in findings)
    share = alarms / runs
    assert share <= settings.alpha + 3 * math.sqrt(settings.alpha * (1 - settings.alpha) / runs)


def test_insufficient_data_says_how_many_more_spans() -> None:
    settings = RegressionSettings()
    findings = [compare(rate("b", 27, 3), rate("c", 26, 4), settings)]
    _apply_fdr(findings, settings)
    assert findings[0].status is FindingStatus.INSUFFICIENT
    assert findings[0].more_spans_needed == spans_needed(0.9, settings) - 30
    assert findings[0].more_spans_needed > 100


def _seed(store: Store, outcomes: dict[str, list[str]]) -> None:
    index = 0
    for release, release_outcomes in outcomes.items():
        spans, verdicts = [], []
        for outcome in release_outcomes:
            spans.append(make_span(index, release=release))
            verdicts.append(VerdictRow(source="test", span_id=f"span-{index:06d}", grader="g",
                                       grader_version="v", outcome=outcome, reason="",
                                       inclusion_probability=1.0, run_id="r"))
            index += 1
        store.upsert_spans(spans)
        store.insert_verdicts(verdicts)


def test_find_regressions_compares_latest_with_previous(store: Store) -> None:
    _seed(store, {"r1": ["pass"] * 950 + ["fail"] * 50,
                  "r2": ["pass"] * 800 + ["fail"] * 200})
    report = find_regressions(store)
    assert (report.baseline, report.candidate) == ("r1", "r2")
    assert [f.status for f in report.findings] == [FindingStatus.REGRESSED]
    assert report.findings[0].difference == pytest.approx(-0.15)


def test_one_release_is_not_enough(store: Store) -> None:
    _seed(store, {"r1": ["pass"] * 10})
    with pytest.raises(NotEnoughReleases, match="two releases"):
        find_regressions(store)
    with pytest.raises(NotEnoughReleases, match="has no verdicts"):
        find_regressions(store, baseline="nope")
