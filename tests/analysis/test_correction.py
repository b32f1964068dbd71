"""Corrected pass rates: coverage on simulated judges, and Rogan-Gladen against PPI."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint

from tracegrade.analysis import correction
from tracegrade.analysis.calibration import Agreement
from tracegrade.analysis.correction import (
    UNFIT_NOTE,
    LabeledSample,
    ProductionSample,
    error_rates,
    prediction_powered,
    rogan_gladen,
    rogan_gladen_point,
)

TRUE_RATE, TPR, TNR = 0.75, 0.9, 0.85


def judged(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n spans: the truth (human label) and what a judge with TPR/TNR says."""
    human = rng.random(n) < TRUE_RATE
    judge = np.where(human, rng.random(n) < TPR, rng.random(n) >= TNR)
    return human, judge


def balanced_labels(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n labels sampled like `labels queue` does: half judge-pass, half judge-fail."""
    human, judge = judged(rng, n * 20)
    chosen = np.concatenate([np.flatnonzero(judge)[: n // 2], np.flatnonzero(~judge)[: n // 2]])
    return human[chosen], judge[chosen]


@pytest.mark.parametrize("balanced", [False, True], ids=["random labels", "balanced labels"])
def test_intervals_cover_the_true_rate(balanced: bool) -> None:
    rng = np.random.default_rng(20261101)
    simulations, covered = 120, {"rogan-gladen": 0, "ppi": 0}
    for index in range(simulations):
        production = ProductionSample.unweighted(judged(rng, 1500)[1])
        human, judge = balanced_labels(rng, 200) if balanced else judged(rng, 200)
        labeled = LabeledSample(human, judge, production.pass_share)
        for rate in (rogan_gladen(labeled, production, seed=index),
                     prediction_powered(labeled, production)):
            assert rate.low is not None and rate.high is not None
            covered[rate.method] += rate.low <= TRUE_RATE <= rate.high
    assert covered["rogan-gladen"] / simulations >= 0.9
    assert covered["ppi"] / simulations >= 0.9


def test_rogan_gladen_and_ppi_agree_and_beat_the_raw_rate() -> None:
    rng = np.random.default_rng(7)
    production = ProductionSample.unweighted(judged(rng, 20_000)[1])
    human, judge = balanced_labels(rng, 600)
    labeled = LabeledSample(human, judge, production.pass_share)
    rg = rogan_gladen(labeled, production)
    ppi = prediction_powered(labeled, production)
    assert rg.estimate == pytest.approx(ppi.estimate, abs=1e-9)
    assert rg.low is not None and ppi.low is not None and rg.high is not None
    assert ppi.high is not None and max(rg.low, ppi.low) < min(rg.high, ppi.high)
    # The judge's raw pass rate is biased (0.75*0.9 + 0.25*0.15 = 0.7125); both fix it.
    assert abs(production.pass_share - 0.7125) < 0.01
    assert abs(rg.estimate - TRUE_RATE) < 0.03
    tpr, tnr = error_rates(labeled)
    assert tpr == pytest.approx(TPR, abs=0.04) and tnr == pytest.approx(TNR, abs=0.04)


def test_rogan_gladen_formula_on_a_published_example() -> None:
    # Rogan & Gladen (1978): apparent prevalence 0.2, sensitivity 0.9, specificity 0.95
    # give a true prevalence of (0.2 + 0.95 - 1) / (0.9 + 0.95 - 1) = 0.17647.
    assert rogan_gladen_point(0.8, tpr=0.95, tnr=0.9) == pytest.approx(1 - 0.17647, abs=1e-5)
    assert rogan_gladen_point(0.5, tpr=0.5, tnr=0.5) is None


def test_inverse_probability_weights_are_respected() -> None:
    rng = np.random.default_rng(11)
    human, judge = judged(rng, 4000)
    # Judge-fails were graded 4 times less often: each stands for 4 spans.
    keep = judge | (rng.random(judge.size) < 0.25)
    production = ProductionSample(judge[keep], np.where(judge[keep], 1.0, 4.0))
    assert production.pass_share == pytest.approx(np.mean(judge), abs=0.02)
    lab_human, lab_judge = judged(rng, 400)
    ppi = prediction_powered(LabeledSample(lab_human, lab_judge, production.pass_share),
                             production)
    assert ppi.low is not None and ppi.high is not None and ppi.low < TRUE_RATE < ppi.high


def test_no_correction_without_labels_on_both_verdicts() -> None:
    labeled = LabeledSample(np.array([True, False]), np.array([True, True]), 0.8)
    production = ProductionSample.unweighted(np.array([True, False, True]))
    for rate in (rogan_gladen(labeled, production), prediction_powered(labeled, production)):
        assert rate.estimate is None and rate.note == "no labeled span the grader judged fail"


def test_one_label_in_a_verdict_gives_an_estimate_without_an_interval() -> None:
    # A near-perfect judge with random labels: 39 judge-pass labels and a single judge-fail.
    # scipy's bootstrap needs two observations per sample, so there is no interval, but there
    # is an estimate (and no exception).
    human = np.array([True] * 30 + [False] * 10)
    judge = np.array([True] * 39 + [False])
    production = ProductionSample.unweighted(np.r_[np.ones(950, bool), np.zeros(50, bool)])
    labeled = LabeledSample(human, judge, 0.95)
    for rate in (rogan_gladen(labeled, production),
                 prediction_powered(labeled, production)):
        assert rate.estimate == pytest.approx(0.95 * 30 / 39)
        assert rate.low is None and rate.high is None
        assert rate.note is not None and "1 labeled span the grader judged fail" in rate.note


def test_a_single_production_verdict_gives_no_interval() -> None:
    labeled = LabeledSample(np.array([True, True, False, True, False, False]),
                            np.array([True, True, True, False, False, False]), 0.5)
    production = ProductionSample.unweighted(np.array([True]))
    for rate in (rogan_gladen(labeled, production),
                 prediction_powered(labeled, production)):
        assert rate.estimate is not None and rate.low is None
        assert rate.note == "no interval: 1 production verdict; need 2"


def floor_design(rng: np.random.Generator, spans: int, per_verdict: int
                 ) -> tuple[float, LabeledSample, ProductionSample]:
    """A `stratify_by` floor: 90% of traffic graded at π = 0.1 (people pass 90%), 10% at π = 1
    (people pass 60%); the judge has TPR 0.9, TNR 0.85. Labels are queued from the graded spans,
    ``per_verdict`` judge-passes and as many judge-fails, each carrying its span's 1/π."""
    rare = rng.random(spans) < 0.1
    pi = np.where(rare, 1.0, 0.1)
    human = rng.random(spans) < np.where(rare, 0.6, 0.9)
    judge = np.where(human, rng.random(spans) < TPR, rng.random(spans) >= TNR)
    graded = rng.random(spans) < pi
    production = ProductionSample(judge[graded], 1 / pi[graded])
    chosen = np.concatenate([rng.choice(np.flatnonzero(graded & verdict), per_verdict,
                                        replace=False) for verdict in (judge, ~judge)])
    labeled = LabeledSample(human[chosen], judge[chosen], production.pass_share,
                            weight=1 / pi[chosen])
    return float(human.mean()), labeled, production


def test_labels_are_weighted_by_their_inclusion_probability() -> None:
    truth, labeled, production = floor_design(np.random.default_rng(3), 400_000, 3000)
    assert truth == pytest.approx(0.87, abs=0.01)
    tpr, tnr = error_rates(labeled)
    assert tpr == pytest.approx(TPR, abs=0.02) and tnr == pytest.approx(TNR, abs=0.02)
    rg = rogan_gladen(labeled, production)
    ppi = prediction_powered(labeled, production)
    for rate in (rg, ppi):
        assert rate.estimate == pytest.approx(truth, abs=0.01)
    # Ignoring the labels' weights (the within-verdict rates of the graded, not of all, spans)
    # is 6 points off.
    unweighted = LabeledSample(labeled.human, labeled.judge, labeled.population_pass_share)
    assert prediction_powered(unweighted, production).estimate == pytest.approx(truth - 0.06,
                                                                               abs=0.015)


def test_equal_inclusion_probabilities_change_nothing() -> None:
    rng = np.random.default_rng(5)
    production = ProductionSample.unweighted(judged(rng, 1500)[1])
    human, judge = balanced_labels(rng, 200)
    plain = LabeledSample(human, judge, production.pass_share)
    weighted = LabeledSample(human, judge, production.pass_share, weight=np.full(200, 4.0))
    assert error_rates(plain) == pytest.approx(error_rates(weighted), abs=1e-12)
    for method in (rogan_gladen, prediction_powered):
        a, b = method(plain, production), method(weighted, production)
        assert (a.estimate, a.low, a.high) == pytest.approx((b.estimate, b.low, b.high),
                                                            abs=1e-12)


def test_intervals_cover_the_true_rate_under_unequal_inclusion_probabilities() -> None:
    rng = np.random.default_rng(20261102)
    simulations, covered = 80, {"rogan-gladen": 0, "ppi": 0}
    for index in range(simulations):
        truth, labeled, production = floor_design(rng, 20_000, 100)
        for rate in (rogan_gladen(labeled, production, seed=index),
                     prediction_powered(labeled, production)):
            assert rate.low is not None and rate.high is not None
            covered[rate.method] += rate.low <= truth <= rate.high
    assert covered["rogan-gladen"] / simulations >= 0.88
    assert covered["ppi"] / simulations >= 0.88


@pytest.mark.parametrize(("shares", "judge_pass", "pi"), [
    ((0.9, 0.1), (0.95, 0.4), (0.1, 1.0)),
    ((0.9, 0.1), (0.95, 0.4), (1.0, 0.1)),
    ((0.5, 0.5), (0.99, 0.5), (0.02, 1.0)),
], ids=["rare stratum in full", "rare stratum sampled", "half the traffic at 2%"])
def test_ppi_interval_matches_its_spread_under_unequal_weights(
        shares: tuple[float, float], judge_pass: tuple[float, float],
        pi: tuple[float, float]) -> None:
    # Production verdicts sampled with unequal π; labels from a fully graded earlier release
    # (so the production share's variance dominates). The interval's half-width / z must match
    # the estimates' spread around the rate they estimate: ppi-python's weighted formula was 3
    # times too wide in the first two designs and too narrow in the third.
    rng = np.random.default_rng(9)
    # P(human pass | judge verdict): 0.95 when the judge passes, 0.2 when it fails.
    precision, miss = 0.95, 0.2
    truth = sum(share * (p * precision + (1 - p) * miss)
                for share, p in zip(shares, judge_pass, strict=True))
    errors, half_widths, covered = [], [], 0
    z = float(norm.ppf(0.975))
    for _ in range(300):
        stratum = rng.random(20_000) < shares[1]
        judge = rng.random(stratum.size) < np.where(stratum, judge_pass[1], judge_pass[0])
        inclusion = np.where(stratum, pi[1], pi[0])
        graded = rng.random(stratum.size) < inclusion
        production = ProductionSample(judge[graded], 1 / inclusion[graded])
        label_share = float(np.dot(shares, judge_pass))
        label_judge = rng.random(2000) < label_share
        label_human = rng.random(2000) < np.where(label_judge, precision, miss)
        rate = prediction_powered(LabeledSample(label_human, label_judge, label_share),
                                  production)
        assert rate.estimate is not None and rate.low is not None and rate.high is not None
        errors.append(rate.estimate - truth)
        half_widths.append((rate.high - rate.low) / 2 / z)
        covered += rate.low <= truth <= rate.high
    assert abs(np.mean(errors)) < 0.005
    assert np.mean(half_widths) / np.std(errors) == pytest.approx(1.0, abs=0.2)
    assert 0.9 <= covered / 300 <= 0.99


def test_labels_that_all_agree_leave_the_rogan_gladen_interval_wide_open() -> None:
    # The demo's llm_latency_3s: 15 judge-passes people all passed, 14 judge-fails they all
    # failed, labels from the release being corrected. TNR = 1 from 15 labels is not known to
    # be 1 (up to ~15% of judge-passes could be bad), so the corrected rate may be well below
    # the observed 83.9%. Here Rogan-Gladen and PPI are the same estimator; a bootstrap of the
    # labels saw no error ever and gave only the production share's spread, [82.6, 85.2].
    human = np.r_[np.ones(15, bool), np.zeros(14, bool)]
    production = ProductionSample.unweighted(np.r_[np.ones(2491, bool), np.zeros(477, bool)])
    labeled = LabeledSample(human, human.copy(), production.pass_share)
    rg, ppi = rogan_gladen(labeled, production), prediction_powered(labeled, production)
    assert rg.estimate == pytest.approx(2491 / 2968)
    assert rg.low is not None and rg.high is not None and ppi.low is not None
    assert ppi.high is not None
    assert rg.low < 0.75
    assert (rg.low, rg.high) == pytest.approx((ppi.low, ppi.high), abs=0.01)


def test_a_release_the_grader_failed_throughout_keeps_an_interval() -> None:
    # The demo's order_status_present: the grader failed all 1,468 spans of the release, and its
    # 8 labeled passes were all right. Observed 0 of 1,468 is not a pass rate of exactly 0, nor
    # is TNR exactly 1: the interval was [0, 0].
    labeled = LabeledSample(np.r_[np.ones(9, bool), np.zeros(11, bool)],
                            np.r_[np.ones(8, bool), np.zeros(12, bool)], 0.5)
    production = ProductionSample.unweighted(np.zeros(1468, bool))
    rg = rogan_gladen(labeled, production)
    assert rg.estimate == 0 and rg.low == 0 and rg.note is None
    # The rate is at most what it could take to show ~0.17% passes (Jeffreys' upper bound for
    # 0 of 1,468) to a grader with TPR ~0.92.
    observed_high = proportion_confint(0, 1468, method="jeffreys")[1]
    assert rg.high is not None and observed_high < rg.high < 2 * observed_high
    ppi = prediction_powered(labeled, production)
    assert ppi.low is not None and ppi.high is not None and ppi.low < 1 / 12 < ppi.high


def test_labels_that_contradict_rogan_gladen_say_so() -> None:
    # People passed 80% of 400 judge-passes (a false-pass rate of ~18%), yet the release's
    # judge passes 1%: no error rates the labels allow give that, so the estimate is clipped
    # to 0, and the interval says why it has no width.
    rng = np.random.default_rng(0)
    labeled = LabeledSample(np.r_[rng.random(400) < 0.8, rng.random(400) < 0.1],
                            np.r_[np.ones(400, bool), np.zeros(400, bool)], 0.5)
    production = ProductionSample.unweighted(rng.random(10_000) < 0.01)
    rg = rogan_gladen(labeled, production)
    assert (rg.estimate, rg.low, rg.high) == (0, 0, 0) and rg.note == UNFIT_NOTE
    assert prediction_powered(labeled, production).note is None


def near_perfect_design(rng: np.random.Generator, truth: float, tpr: float, tnr: float,
                        spans: int, per_verdict: tuple[int, int], label_share: float | None
                        ) -> tuple[LabeledSample, ProductionSample]:
    """A release of ``spans`` verdicts from a judge with ``tpr``/``tnr`` on a rate ``truth``,
    and labels queued per verdict (judge-passes, judge-fails) from a release where the judge
    passes ``label_share`` (the same release when None)."""
    production = ProductionSample.unweighted(
        rng.random(spans) < truth * tpr + (1 - truth) * (1 - tnr))
    share = production.pass_share if label_share is None else label_share
    expected_share = truth * tpr + (1 - truth) * (1 - tnr) if label_share is None \
        else label_share
    # P(human pass | judge verdict) in the labels' release, whose rate gives that judge share.
    rate = (expected_share - (1 - tnr)) / (tpr + tnr - 1)
    precision = rate * tpr / expected_share
    miss = rate * (1 - tpr) / (1 - expected_share)
    passes, fails = per_verdict
    labeled = LabeledSample(np.r_[rng.random(passes) < precision, rng.random(fails) < miss],
                            np.r_[np.ones(passes, bool), np.zeros(fails, bool)], share)
    return labeled, production


@pytest.mark.parametrize(("truth", "tpr", "tnr", "spans", "per_verdict", "label_share"), [
    (0.3, 1.0, 0.99, 50_000, (20, 20), None),
    (0.8, 0.99, 1.0, 5000, (20, 20), None),
    (0.001, 0.92, 1.0, 1468, (8, 12), 0.5),
], ids=["TNR 0.99, large release", "TNR 1", "release failed throughout"])
def test_intervals_cover_the_rate_when_a_verdicts_labels_all_agree(
        truth: float, tpr: float, tnr: float, spans: int, per_verdict: tuple[int, int],
        label_share: float | None) -> None:
    # A near-perfect judge and a few dozen labels: in most simulations every label of a
    # verdict agrees with the judge. Resampling those labels never shows an error: the
    # bootstrap's Rogan-Gladen interval covered 45%, 87% and 78% of the time in these designs
    # (the last with 22 intervals of [0, 0]). Now 100%, 98% and 100%: few labels cannot rule
    # out a few percent of errors, so the intervals are wide and cover more than 95%.
    rng = np.random.default_rng(20261103)
    simulations, unanimous = 100, 0
    covered = {"rogan-gladen": 0, "ppi": 0, "TPR": 0, "TNR": 0}
    for index in range(simulations):
        labeled, production = near_perfect_design(rng, truth, tpr, tnr, spans, per_verdict,
                                                  label_share)
        unanimous += bool(labeled.human[labeled.judge].all() or
                          not labeled.human[~labeled.judge].any())
        for rate in (rogan_gladen(labeled, production, seed=index),
                     prediction_powered(labeled, production, seed=index)):
            assert rate.estimate is not None and rate.low is not None
            assert rate.high is not None and rate.note is None
            assert rate.high > rate.low, (rate, index)
            covered[rate.method] += rate.low <= truth <= rate.high
        agreement = Agreement.from_labels(
            labeled, production.pass_share_variance if label_share is None else 0.0)
        for name, figure, true_value in (("TPR", agreement.tpr, tpr), ("TNR", agreement.tnr, tnr)):
            assert figure is not None and figure.high > figure.low, (name, figure, index)
            covered[name] += figure.low <= true_value <= figure.high
    assert unanimous / simulations > 0.6
    assert covered["rogan-gladen"] / simulations >= 0.9
    assert covered["TPR"] / simulations >= 0.9 and covered["TNR"] / simulations >= 0.9
    # PPI carries P(human pass | judge verdict) over from the labels' release, which a release
    # that shifted (judge pass share 50% -> 0.1%) at the same TPR and TNR does not keep.
    if label_share is None:
        assert covered["ppi"] / simulations >= 0.9


def test_draws_of_a_grader_no_better_than_chance_have_no_rogan_gladen_value() -> None:
    # P(human pass | judge pass) = 0.5 and P(human pass | judge fail) = 0.6: worse than chance.
    values = correction._rogan_gladen_values(np.array([0.4, 0.4]), np.array([0.5, 0.9]),
                                             np.array([0.6, 0.1]), 0.5)
    assert np.isnan(values[0]) and 0.0 <= values[1] <= 1.0
