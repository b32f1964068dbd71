"""Seeded simulations: false alarms stay at the FDR level, and the stated MDE is detected.

The simulations call the product's vectorised statistics (``comparison.two_sample``,
``benjamini_hochberg``, ``decide``) on thousands of release pairs at once; a first test checks
that this is exactly what ``find_regressions`` concludes on the same counts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracegrade.analysis import FindingStatus, RegressionSettings
from tracegrade.analysis import comparison as c
from tracegrade.analysis._aggregate import Tally
from tracegrade.analysis.rates import rate_from_tally
from tracegrade.analysis.regressions import Comparison, Finding, run_tests

GRADERS = 20
SETTINGS = RegressionSettings(slices=())


def simulate(rng: np.random.Generator, runs: int, p_baseline: np.ndarray,
             p_candidate: np.ndarray, sizes: tuple[int, int]) -> dict[str, np.ndarray]:
    """Pass counts of ``runs`` release pairs × ``GRADERS`` graders with random sizes."""
    n_b = rng.integers(*sizes, size=(runs, GRADERS))
    n_c = rng.integers(*sizes, size=(runs, GRADERS))
    return {"x_b": rng.binomial(n_b, p_baseline), "n_b": n_b,
            "x_c": rng.binomial(n_c, p_candidate), "n_c": n_c}


def vectorised_statuses(counts: dict[str, np.ndarray], settings: RegressionSettings
                        ) -> np.ndarray:
    """What the product decides, for every run at once (rows are runs)."""
    runs = counts["x_b"].shape[0]
    flat = {k: v.ravel().astype(float) for k, v in counts.items()}
    result = c.two_sample(flat["x_b"], flat["n_b"], flat["x_c"], flat["n_c"], settings.alpha)
    q_worse = c.benjamini_hochberg(result.p_worse.reshape(runs, GRADERS), axis=1)
    q_better = c.benjamini_hochberg(result.p_better.reshape(runs, GRADERS), axis=1)
    # The MDE only separates "unchanged" from "insufficient"; regressions don't depend on it.
    mde = np.zeros_like(q_worse)
    return c.decide(q_worse, q_better, mde, np.ones_like(q_worse, dtype=bool), settings.alpha,
                    settings.effect)


def product_statuses(counts: dict[str, np.ndarray], run: int) -> list[FindingStatus]:
    """What ``run_tests`` (the path ``find_regressions`` takes) decides for one run."""
    pairs = []
    for g in range(GRADERS):
        b = _tally(int(counts["x_b"][run, g]), int(counts["n_b"][run, g]))
        cand = _tally(int(counts["x_c"][run, g]), int(counts["n_c"][run, g]))
        finding = Finding(f"g{g}", "v", rate_from_tally(("b", f"g{g}", "v"), b),
                          rate_from_tally(("c", f"g{g}", "v"), cand))
        pairs.append(Comparison(finding, b, cand, [], 0.0))
    return [f.status for f in run_tests(pairs, SETTINGS)]


def _tally(passed: int, n: int) -> Tally:
    failed = n - passed
    return Tally(passed=passed, failed=failed, w_pass=passed, w_fail=failed, w2_pass=passed,
                 w2_fail=failed)


P_BASELINE = np.linspace(0.6, 0.98, GRADERS)
_CODES = {c.REGRESSED: FindingStatus.REGRESSED, c.IMPROVED: FindingStatus.IMPROVED}


def test_the_vectorised_path_decides_as_the_product_does() -> None:
    rng = np.random.default_rng(1)
    counts = simulate(rng, 12, P_BASELINE, P_BASELINE - 0.03, (200, 3000))
    vectorised = vectorised_statuses(counts, SETTINGS)
    for run in range(12):
        product = product_statuses(counts, run)
        for g in range(GRADERS):
            regressed = product[g] is FindingStatus.REGRESSED
            assert regressed == (vectorised[run, g] == c.REGRESSED)
            assert (product[g] is FindingStatus.IMPROVED) == (vectorised[run, g] == c.IMPROVED)
    assert (vectorised == c.REGRESSED).any()  # the comparison above saw both outcomes


def test_no_true_change_keeps_false_alarms_at_the_fdr_level() -> None:
    rng = np.random.default_rng(5)
    runs = 2000
    counts = simulate(rng, runs, P_BASELINE, P_BASELINE, (300, 3000))
    statuses = vectorised_statuses(counts, SETTINGS)
    any_regression = float(np.mean((statuses == c.REGRESSED).any(axis=1)))
    alpha = SETTINGS.alpha
    # Under the global null the FDR is the chance of any false regression.
    assert any_regression <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


@pytest.mark.parametrize(("p", "n"), [(0.9, 1000), (0.98, 3000), (0.75, 400)])
def test_a_drop_equal_to_the_reported_mde_is_detected(p: float, n: int) -> None:
    """One grader drops by exactly the MDE the report states; 19 others do not change."""
    rng = np.random.default_rng(11)
    runs = 2000
    mde = float(c.minimum_detectable_effect(p, n, n, SETTINGS.alpha / GRADERS, SETTINGS.power)[0])
    p_baseline = np.full(GRADERS, p)
    p_candidate = p_baseline.copy()
    p_candidate[0] -= mde
    counts = simulate(rng, runs, p_baseline, p_candidate, (n, n + 1))
    statuses = vectorised_statuses(counts, SETTINGS)
    detected = float(np.mean(statuses[:, 0] == c.REGRESSED))
    # 80% nominal power; the MDE is computed at alpha/m, which BH can only beat.
    assert detected >= 0.8 - 2 * math.sqrt(0.8 * 0.2 / runs)


def test_no_true_change_with_errors_keeps_regressed_graders_at_the_fdr_level() -> None:
    """A grader is "regressed" by a pass-rate drop or by a rise in its error share: both kinds
    of test are one family, so a release with no change at all is flagged at most ~alpha of
    the time (two families each at alpha flagged 10.8% in a review's simulation)."""
    rng = np.random.default_rng(0)
    runs, n, p_error, p_fail = 300, 2000, 0.05, 0.1
    settings = RegressionSettings(strata=(), slices=())
    flagged = 0
    for _ in range(runs):
        pairs = []
        for g in range(GRADERS):
            tallies = []
            for _side in range(2):
                errors = int(rng.binomial(n, p_error))
                failed = int(rng.binomial(n - errors, p_fail))
                passed = n - errors - failed
                tallies.append(Tally(passed=passed, failed=failed, errors=errors, w_pass=passed,
                                     w_fail=failed, w2_pass=passed, w2_fail=failed))
            finding = Finding(f"g{g}", "v", rate_from_tally(("b", f"g{g}", "v"), tallies[0]),
                              rate_from_tally(("c", f"g{g}", "v"), tallies[1]))
            pairs.append(Comparison(finding, tallies[0], tallies[1], [], 0.0))
        findings = run_tests(pairs, settings)
        flagged += any(f.status is FindingStatus.REGRESSED for f in findings)
    alpha = settings.alpha
    assert flagged / runs <= alpha + 2 * math.sqrt(alpha * (1 - alpha) / runs)
