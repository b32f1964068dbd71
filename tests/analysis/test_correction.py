"""Corrected pass rates: coverage on simulated judges, and Rogan-Gladen against PPI."""

from __future__ import annotations

import numpy as np
import pytest

from tracegrade.analysis.correction import (
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
        for rate in (rogan_gladen(labeled, production, resamples=400, seed=index),
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
    rg = rogan_gladen(labeled, production, resamples=500)
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
