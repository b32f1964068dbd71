"""The comparison statistics against scipy / statsmodels reference values on fixed tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import boschloo_exact, fisher_exact
from statsmodels.regression.linear_model import WLS
from statsmodels.stats.contingency_tables import StratifiedTable
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import (
    power_proportions_2indep,
    samplesize_proportions_2indep_onetail,
)
from statsmodels.stats.proportion import test_proportions_2indep as score_test

from tracegrade.analysis import comparison as c


def test_wilson_matches_the_closed_form() -> None:
    x, n, z = 81, 263, 1.959963984540054
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = c.wilson_interval(x, n)
    assert (float(low), float(high)) == pytest.approx((centre - half, centre + half), abs=1e-9)


# --- weighted rates -----------------------------------------------------------------------------


def test_equal_weights_give_the_binomial_rate_and_variance() -> None:
    rates = c.weighted_rate(900 * 5.0, 100 * 5.0, 900 * 25.0, 100 * 25.0)
    assert float(rates.rate[()]) == pytest.approx(0.9)
    assert float(rates.variance[()]) == pytest.approx(0.9 * 0.1 / 1000)
    assert float(rates.effective_n[()]) == pytest.approx(1000)


def test_hajek_variance_is_the_wls_sandwich_variance() -> None:
    """Σw²(y−p̂)²/(Σw)² equals statsmodels' HC0 variance of a weighted mean."""
    rng = np.random.default_rng(3)
    probability = rng.choice([1.0, 0.5, 0.1, 0.02], size=3000)
    passed = rng.random(3000) < np.where(probability < 0.2, 0.7, 0.95)
    w = 1 / probability
    fit = WLS(passed.astype(float), np.ones(3000), weights=w).fit(cov_type="HC0")
    rates = c.weighted_rate(w[passed].sum(), w[~passed].sum(), (w[passed] ** 2).sum(),
                            (w[~passed] ** 2).sum())
    assert float(rates.rate[()]) == pytest.approx(float(fit.params[0]))
    assert float(rates.variance[()]) == pytest.approx(float(fit.bse[0]) ** 2, rel=1e-9)


def test_the_effective_size_never_exceeds_the_verdicts() -> None:
    # 900 passes sampled at 10% and 10 failures at 100%: p(1−p)/V would say ~8,900 verdicts.
    uncapped = c.weighted_rate(900 * 10.0, 10.0, 900 * 100.0, 10.0)
    assert float(uncapped.effective_n[()]) > 910
    capped = c.weighted_rate(900 * 10.0, 10.0, 900 * 100.0, 10.0, decided=910)
    assert float(capped.effective_n[()]) == 910
    assert float(capped.rate[()]) == float(uncapped.rate[()])


def test_all_pass_falls_back_to_kish() -> None:
    rates = c.weighted_rate(10.0 + 20 * 2, 0.0, 10.0 + 20 * 4, 0.0)
    assert float(rates.rate[()]) == 1.0
    assert float(rates.effective_n[()]) == pytest.approx(50 ** 2 / 90)


def _coverage(strata: list[tuple[float, float, float]], replicates: int, seed: int
              ) -> tuple[float, float]:
    """Coverage of the 95% interval for the true pass rate under Poisson sampling.

    Each stratum is (traffic, inclusion probability, pass rate); per replicate a fresh population
    of 100,000 spans is drawn, then Poisson-sampled. Returns (linearisation, Kish) coverage.
    """
    rng = np.random.default_rng(seed)
    truth = sum(share * p for share, _, p in strata)
    sums = np.zeros((4, replicates))
    kish_sums = np.zeros((2, replicates))
    for share, pi, p in strata:
        population_pass = rng.binomial(int(100_000 * share), p, replicates)
        population_fail = int(100_000 * share) - population_pass
        sampled_pass = rng.binomial(population_pass, pi)
        sampled_fail = rng.binomial(population_fail, pi)
        w = 1 / pi
        sums += np.array([sampled_pass * w, sampled_fail * w, sampled_pass * w * w,
                          sampled_fail * w * w])
        kish_sums += np.array([(sampled_pass + sampled_fail) * w,
                               (sampled_pass + sampled_fail) * w * w])
    rates = c.weighted_rate(*sums)
    low, high = c.wilson_interval(rates.rate * rates.effective_n, rates.effective_n)
    kish_n = kish_sums[0] ** 2 / kish_sums[1]
    kish_low, kish_high = c.wilson_interval(rates.rate * kish_n, kish_n)
    return (float(np.mean((low <= truth) & (truth <= high))),
            float(np.mean((kish_low <= truth) & (truth <= kish_high))))


@pytest.mark.parametrize("strata", [
    # A rarely sampled stratum that fails often: Kish's n_eff is far too optimistic.
    [(0.1, 0.02, 0.6), (0.9, 0.5, 0.97)],
    # The often-failing stratum is the well-sampled one: Kish is too pessimistic.
    [(0.2, 0.5, 0.7), (0.8, 0.05, 0.95)],
    # Equal probabilities: both are the binomial interval.
    [(1.0, 0.1, 0.9)],
])
def test_weighted_interval_covers_under_unequal_inclusion(
        strata: list[tuple[float, float, float]]) -> None:
    replicates = 4000
    linearised, kish = _coverage(strata, replicates, seed=17)
    error = 3 * math.sqrt(0.95 * 0.05 / replicates)
    assert abs(linearised - 0.95) < error
    if len(strata) > 1:
        assert abs(kish - 0.95) > 0.03  # the check has teeth: the naive interval misses


# --- two-sample tests ----------------------------------------------------------------------------


def test_score_p_values_match_statsmodels() -> None:
    tables = [(1900, 2000, 1860, 2000), (450, 500, 430, 520), (180, 200, 170, 200)]
    xb, nb, xc, nc = (np.array(col, dtype=float) for col in zip(*tables, strict=True))
    result = c.two_sample(xb, nb, xc, nc)
    assert result.method == ["score"] * 3
    for i, (x_b, n_b, x_c, n_c) in enumerate(tables):
        for alternative, got in (("smaller", result.p_worse), ("larger", result.p_better)):
            expected = score_test(x_c, n_c, x_b, n_b, method="score",
                                  compare="diff", alternative=alternative).pvalue
            assert got[i] == pytest.approx(expected)


def test_newcombe_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80 → 0.0524, 0.3339
    result = c.two_sample([48], [80], [56], [70])
    assert (result.low[0], result.high[0]) == pytest.approx((0.0524, 0.3339), abs=5e-4)


def test_small_tables_use_boschloo_then_fisher_when_boschloo_would_be_slow() -> None:
    worse, better, method = c.exact_p(33, 40, 39, 40)
    assert method == "boschloo"
    assert worse == pytest.approx(boschloo_exact([[33, 39], [7, 1]], alternative="less").pvalue)
    assert better == pytest.approx(
        boschloo_exact([[33, 39], [7, 1]], alternative="greater").pvalue)
    worse, _, method = c.exact_p(28, 30, 2990, 3000)
    assert method == "fisher"
    assert worse == pytest.approx(fisher_exact([[28, 2990], [2, 10]], alternative="less").pvalue)


def test_tables_without_any_failure_are_no_evidence() -> None:
    result = c.two_sample([500, 20], [500, 20], [400, 30], [400, 30])
    assert list(result.p_worse) == [1.0, 1.0] and list(result.p_better) == [1.0, 1.0]


def test_cmh_matches_statsmodels_and_is_one_sided() -> None:
    # rows candidate / baseline, columns pass / fail, three strata
    tables = np.array([[[80, 40, 150], [20, 60, 50]],
                       [[90, 50, 170], [10, 50, 30]]], dtype=float)
    test = c.cmh(tables)
    reference = StratifiedTable(tables).test_null_odds(correction=False)
    assert test.p_worse + test.p_better == pytest.approx(1.0)
    assert 2 * min(test.p_worse, test.p_better) == pytest.approx(reference.pvalue)
    assert test.p_worse < 0.05 < test.p_better  # the candidate passes less in every stratum
    assert test.odds_ratio == pytest.approx(StratifiedTable(tables).oddsratio_pooled)
    assert test.strata == 3


RABBITS = np.array([  # Agresti (2002) / R's ?mantelhaen.test: penicillin level strata
    ((0, 6), (0, 5)), ((3, 3), (0, 6)), ((6, 0), (2, 4)), ((5, 1), (6, 0)), ((2, 0), (5, 0)),
], dtype=float).transpose(1, 2, 0)  # rows immediate / delayed injection, columns cured / died


def test_exact_stratified_test_matches_r_and_fisher() -> None:
    worse, better = c.exact_stratified_p(RABBITS)
    # mantelhaen.test(Rabbits, exact = TRUE): S = 16, two-sided p = 0.03994, here twice the
    # one-sided 0.020 Agresti reports.
    assert 2 * better == pytest.approx(0.03994, abs=1e-5)
    assert worse + better > 1  # both include the observed sum
    # One stratum: Fisher's exact test.
    table = np.array([[[33.0], [7.0]], [[39.0], [1.0]]])
    one = c.exact_stratified_p(table)
    assert one == pytest.approx((fisher_exact([[33, 39], [7, 1]], alternative="less").pvalue,
                                 fisher_exact([[33, 39], [7, 1]], alternative="greater").pvalue))


def test_cmh_turns_exact_when_the_strata_are_too_small() -> None:
    test = c.cmh(RABBITS)
    assert c.mantel_fleiss(RABBITS) < c.MANTEL_FLEISS_MIN
    assert test.method == "cmh-exact"
    assert (test.p_worse, test.p_better) == pytest.approx(c.exact_stratified_p(RABBITS))
    large = np.array([[[80, 40, 150], [20, 60, 50]], [[90, 50, 170], [10, 50, 30]]], float)
    assert c.cmh(large).method == "cmh" and c.cmh(large, exact=True).method == "cmh-exact"


def test_benjamini_hochberg_matches_statsmodels() -> None:
    p = np.random.default_rng(0).random(40) ** 3
    assert c.benjamini_hochberg(p) == pytest.approx(multipletests(p, method="fdr_bh")[1])


# --- power ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("p", "n_b", "n_c", "alpha"), [
    (0.9, 1000, 1000, 0.05), (0.98, 3000, 800, 0.0025), (0.7, 300, 5000, 0.01)])
def test_mde_is_where_statsmodels_power_is_80_percent(p: float, n_b: int, n_c: int,
                                                      alpha: float) -> None:
    mde = float(c.minimum_detectable_effect(p, n_b, n_c, alpha)[0])
    power = power_proportions_2indep(-mde, p, n_c, ratio=n_b / n_c, alpha=alpha,
                                     alternative="smaller", return_results=False)
    assert power == pytest.approx(0.8, abs=1e-4)


def test_no_drop_is_detectable_in_a_tiny_sample() -> None:
    assert list(c.minimum_detectable_effect([0.1, 0.0], 3, 3, 0.05)) == [math.inf, 0.0]
    assert math.isnan(c.minimum_detectable_effect(0.9, 1, 50, 0.05)[0])


@pytest.mark.parametrize(("baseline", "n"), [(2, 50), (3, 100)])
def test_a_rate_too_low_to_lose_is_insufficient_data_not_unchanged(baseline: int, n: int
                                                                  ) -> None:
    # 2/50 passing, then 0/50: even a drop to zero has ~5% power here, so "unchanged" would be
    # a claim the data cannot support.
    from tracegrade.analysis import FindingStatus, PassRate, RegressionSettings
    from tracegrade.analysis.regressions import compare

    def rate(passed: int) -> PassRate:
        return PassRate(release="r", grader="g", grader_version="v", passed=passed,
                        failed=n - passed, errors=0, skipped=0, rate=passed / n, low=None,
                        high=None, effective_n=float(n))

    finding = compare(rate(baseline), rate(0), RegressionSettings())
    assert finding.status is FindingStatus.INSUFFICIENT
    assert finding.mde is None


def test_mde_is_solved_for_many_comparisons_at_once() -> None:
    p, n_b, n_c = [0.9, 0.98, 0.7], [1000, 3000, 300], [800, 50, 5000]
    together = c.minimum_detectable_effect(p, n_b, n_c, 0.01)
    one_by_one = [c.minimum_detectable_effect(*args, 0.01)[0]
                  for args in zip(p, n_b, n_c, strict=True)]
    assert together == pytest.approx(one_by_one)


def test_spans_needed_per_release_is_statsmodels_sample_size() -> None:
    needed = c.spans_needed(0.9, 100, 120, 0.05, 0.05)
    n = samplesize_proportions_2indep_onetail(-0.05, 0.9, 0.8, alpha=0.05,
                                              alternative="smaller")
    assert needed.where == "each release"
    assert needed.more == math.ceil(n - 100)


def test_decide_orders_regressed_over_improved_over_unchanged() -> None:
    status = c.decide(q_worse=[0.01, 0.5, 0.5, 0.5, 0.01], q_better=[0.5, 0.01, 0.5, 0.5, 0.5],
                      mde=[0.2, 0.2, 0.01, 0.2, 0.01], tested=[True, True, True, True, False],
                      alpha=0.05, effect=0.05)
    assert list(status) == [c.REGRESSED, c.IMPROVED, c.UNCHANGED, c.INSUFFICIENT,
                            c.INSUFFICIENT]


def test_a_drop_whose_whole_interval_is_beyond_the_effect_is_never_unchanged() -> None:
    status = c.decide(q_worse=[0.5, 0.5, 0.01], q_better=[0.5, 0.5, 0.5], mde=[0.01] * 3,
                      tested=[True] * 3, alpha=0.05, effect=0.05,
                      diff_high=[-0.06, -0.04, -0.06])
    assert list(status) == [c.INSUFFICIENT, c.UNCHANGED, c.REGRESSED]


def test_a_heavy_class_whose_few_verdicts_agree_does_not_make_the_rate_look_sure() -> None:
    """90% of traffic sampled at 1% (~18 verdicts, 95% pass) and 10% at 100% (60% pass): the
    heavy class often passes throughout, and the linearised variance then ignores it."""
    rng = np.random.default_rng(11)
    truth = 0.9 * 0.95 + 0.1 * 0.60
    covered = {"linearised": 0, "by class": 0}
    replicates = 2000
    for _ in range(replicates):
        heavy = rng.binomial(1800, 0.01)
        heavy_pass = rng.binomial(heavy, 0.95)
        light = rng.binomial(200, 1.0)
        light_pass = rng.binomial(light, 0.60)
        rates = c.weighted_rate(heavy_pass * 100.0 + light_pass, (heavy - heavy_pass) * 100.0
                                + (light - light_pass), heavy_pass * 1e4 + light_pass,
                                (heavy - heavy_pass) * 1e4 + (light - light_pass),
                                decided=heavy + light)
        rate, linearised = float(rates.rate[()]), float(rates.effective_n[()])
        by_class = c.class_effective_n({100.0: [heavy_pass, heavy - heavy_pass],
                                        1.0: [light_pass, light - light_pass]}, rate, linearised)
        for name, n in (("linearised", linearised), ("by class", by_class)):
            low, high = c.wilson_interval(rate * n, n)
            covered[name] += bool(low <= truth <= high)
    assert covered["by class"] / replicates >= 0.93
    assert covered["linearised"] / replicates < 0.85  # the check has teeth


def test_class_effective_n_changes_nothing_without_an_agreeing_class() -> None:
    rates = c.weighted_rate(90 * 10.0 + 60, 10 * 10.0 + 40, 90 * 100.0 + 60, 10 * 100.0 + 40)
    rate, n = float(rates.rate[()]), float(rates.effective_n[()])
    assert c.class_effective_n({10.0: [90, 10], 1.0: [60, 40]}, rate, n) == pytest.approx(n)
    assert c.class_effective_n({1.0: [60, 40]}, 0.6, 100.0) == 100.0  # one class: binomial
