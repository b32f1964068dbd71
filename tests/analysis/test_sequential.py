"""The watch's e-process: savvi's Bayes factor, numerical integration, and seeded streams."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import beta

from tracegrade.analysis import comparison as c
from tracegrade.analysis import sequential as sq

ALPHA = 0.05
BATCH, BATCHES = 50, 40


@pytest.fixture
def savvi_multinomial() -> Any:
    """savvi's Multinomial test. savvi 0.3 imports matplotlib (for plots only) without declaring
    it, so the dev extra installs matplotlib too."""
    from savvi.multinomial import Multinomial

    return Multinomial


@pytest.mark.parametrize(("phi0", "batches"), [
    (0.1, [(5, 45), (12, 38), (3, 47)]), (0.02, [(1, 99), (4, 96)]), (0.3, [(40, 60)])])
def test_untruncated_e_value_is_savvis_bayes_factor(
        savvi_multinomial: Any, phi0: float, batches: list[tuple[int, int]]) -> None:
    test = savvi_multinomial(ALPHA, np.array([1 - phi0, phi0]), k=sq.PRIOR_CONCENTRATION)
    failures = passes = 0
    for f, s in batches:
        test.update(np.array([s, f]))
        failures, passes = failures + f, passes + s
        ours = sq.log_e_value(failures, passes, phi0, truncate=False)
        assert float(ours) == pytest.approx(math.log(test.odds), rel=1e-9, abs=1e-9)


def test_truncated_e_value_is_the_one_sided_mixture_integral() -> None:
    phi0, f, s = 0.05, 9, 91
    a, b = sq.PRIOR_CONCENTRATION * phi0, sq.PRIOR_CONCENTRATION * (1 - phi0)
    prior = beta(a, b)
    mass = prior.sf(phi0)
    numerator, _ = quad(lambda phi: prior.pdf(phi) / mass * (phi / phi0) ** f
                        * ((1 - phi) / (1 - phi0)) ** s, phi0, 1, limit=200)
    assert float(np.exp(sq.log_e_value(f, s, phi0))) == pytest.approx(numerator, rel=1e-6)


def test_baseline_bound_is_clopper_pearson() -> None:
    bound = sq.baseline_bound(30, 1000, 0.025)
    assert float(bound) == pytest.approx(beta.ppf(1 - 0.025, 31, 970))


def streams(rng: np.random.Generator, count: int, p_fail_baseline: float,
            p_fail_candidate: float, baseline_n: int = 2000
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Baseline failures, and cumulative candidate failures / passes after each batch."""
    baseline = rng.binomial(baseline_n, p_fail_baseline, count)
    failures = rng.binomial(BATCH, p_fail_candidate, (count, BATCHES)).cumsum(axis=1)
    seen = BATCH * np.arange(1, BATCHES + 1)
    return baseline, np.full(count, baseline_n), failures.astype(float), (seen - failures)


@pytest.mark.parametrize("p_fail", [0.02, 0.1, 0.3])
def test_no_change_checked_after_every_batch_rarely_alarms(p_fail: float) -> None:
    """40 looks, one every 50 spans: false alarms stay within alpha; a fixed test's do not."""
    rng = np.random.default_rng(7)
    count = 2000
    baseline, baseline_n, failures, passes = streams(rng, count, p_fail, p_fail)
    alarms = sq.ever_alarms(baseline, baseline_n, failures, passes, ALPHA)
    assert alarms.mean() <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / count)
    # The fixed test at 5%, looked at after every batch, cries wolf far more often.
    few = 400
    seen = failures[:few] + passes[:few]
    naive = c.two_sample(np.repeat(baseline_n[:few] - baseline[:few], BATCHES).astype(float),
                         np.repeat(baseline_n[:few], BATCHES).astype(float),
                         passes[:few].ravel(), seen.ravel())
    assert (naive.p_worse.reshape(few, BATCHES) < ALPHA).any(axis=1).mean() > 3 * ALPHA


def test_a_real_drop_is_caught_while_streaming() -> None:
    rng = np.random.default_rng(8)
    baseline, baseline_n, failures, passes = streams(rng, 1000, 0.1, 0.2)
    assert sq.ever_alarms(baseline, baseline_n, failures, passes, ALPHA).mean() > 0.99


def test_a_better_candidate_never_alarms() -> None:
    rng = np.random.default_rng(9)
    baseline, baseline_n, failures, passes = streams(rng, 1000, 0.2, 0.05)
    assert not sq.ever_alarms(baseline, baseline_n, failures, passes, ALPHA).any()


def test_check_reports_the_threshold_and_bound() -> None:
    quiet = sq.check(100, 1000, 5, 45, ALPHA)
    loud = sq.check(100, 1000, 150, 350, ALPHA)
    assert quiet.threshold == loud.threshold == 2 / ALPHA
    assert not quiet.alarm and loud.alarm
    assert 0.1 < loud.phi0 < 0.13
