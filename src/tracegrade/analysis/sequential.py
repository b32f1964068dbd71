"""Anytime-valid monitoring of a release while its spans arrive: a beta-binomial e-process.

``tracegrade watch`` looks at the candidate release again and again. A fixed-sample test
checked after every batch raises false alarms far more often than its level says; an e-process
does not: by Ville's inequality a nonnegative supermartingale under the null exceeds ``1/a``
at *any* time with probability at most ``a``, so it may be checked as often as one likes.

The null is "the candidate fails no more often than the baseline". The baseline release is
complete, so its failure rate gets a one-sided Clopper-Pearson upper bound ``φ₀`` at level
``a/2``. The candidate's verdicts then feed a mixture likelihood ratio against "failure rate
``φ₀``": the alternative failure rate is drawn from a Beta(kφ₀, k(1−φ₀)) prior *truncated to
[φ₀, 1]*. Each alternative φ ≥ φ₀ ≥ (true rate) makes the likelihood ratio a supermartingale,
hence so does their mixture, and the test is one-sided (a candidate that got better never
alarms). An alarm is raised when the e-value reaches ``2/a``; the two halves of ``a`` cover the
baseline bound and the candidate's e-process. Across the m graders and slices watched, each
gets ``a = alpha / m`` (Bonferroni), so the chance of any false alarm over the whole watch of
a release stays below ``alpha``.

Without the truncation, the e-value is exactly the Dirichlet-multinomial Bayes factor of
``savvi.Multinomial`` (Lindon & Malek 2022) for two categories; the tests check that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import betaincc, betaln
from statsmodels.stats.proportion import proportion_confint

PRIOR_CONCENTRATION = 100.0
"""k in the Beta(kφ₀, k(1−φ₀)) mixing prior (savvi's default concentration)."""


def log_e_value(failures: ArrayLike, passes: ArrayLike, phi0: ArrayLike,
                k: float = PRIOR_CONCENTRATION, truncate: bool = True) -> NDArray[np.float64]:
    """log E: the beta-mixture likelihood ratio of the candidate's verdicts against ``φ₀``.

    Args:
        failures: candidate failures so far (effective counts may be fractional).
        passes: candidate passes so far.
        phi0: the null failure rate (the baseline's upper bound), in (0, 1).
        k: the prior's concentration.
        truncate: mix only over failure rates at or above ``φ₀`` (one-sided); False gives the
            two-sided Bayes factor savvi computes.
    """
    f, s = np.asarray(failures, dtype=float), np.asarray(passes, dtype=float)
    phi = np.clip(np.asarray(phi0, dtype=float), 1e-12, 1 - 1e-12)
    a, b = k * phi, k * (1 - phi)
    log_ratio = (betaln(a + f, b + s) - betaln(a, b)
                 - f * np.log(phi) - s * np.log1p(-phi))
    if truncate:
        with np.errstate(divide="ignore"):
            log_ratio += (np.log(betaincc(a + f, b + s, phi)) - np.log(betaincc(a, b, phi)))
    return np.asarray(log_ratio, dtype=float)


def baseline_bound(failures: ArrayLike, decided: ArrayLike, level: ArrayLike
                   ) -> NDArray[np.float64]:
    """One-sided Clopper-Pearson upper bound on the baseline failure rate at ``level``."""
    _, upper = proportion_confint(np.asarray(failures, dtype=float),
                                  np.asarray(decided, dtype=float),
                                  alpha=2 * np.asarray(level, dtype=float), method="beta")
    return np.asarray(upper, dtype=float)


@dataclass(frozen=True)
class SequentialCheck:
    """One look at one comparison."""

    e_value: float
    threshold: float
    phi0: float
    """The baseline failure rate's upper bound the candidate is tested against."""

    @property
    def alarm(self) -> bool:
        """Whether the evidence that the candidate fails more often has crossed the line."""
        return self.e_value >= self.threshold

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {"e_value": self.e_value, "threshold": self.threshold,
                "baseline_failure_bound": self.phi0, "alarm": self.alarm}


def check(baseline_failures: float, baseline_decided: float, candidate_failures: float,
          candidate_passes: float, alpha: float) -> SequentialCheck:
    """Test one candidate stream against its baseline at level ``alpha`` (already per test)."""
    phi0 = float(baseline_bound(baseline_failures, baseline_decided, alpha / 2))
    if phi0 >= 1.0:
        return SequentialCheck(1.0, 2 / alpha, phi0)
    log_e = float(log_e_value(candidate_failures, candidate_passes, phi0))
    e_value = math.exp(min(log_e, 700.0))
    return SequentialCheck(e_value, 2 / alpha, phi0)


def ever_alarms(baseline_failures: ArrayLike, baseline_decided: ArrayLike,
                candidate_failures: NDArray[np.float64], candidate_passes: NDArray[np.float64],
                alpha: float) -> NDArray[np.bool_]:
    """Vectorised: for streams × looks of cumulative candidate counts, whether a stream alarms
    at any look (the same arithmetic as :func:`check`, for simulations)."""
    phi0 = baseline_bound(baseline_failures, baseline_decided, alpha / 2)[:, None]
    log_e = log_e_value(candidate_failures, candidate_passes, phi0)
    return np.asarray((log_e >= math.log(2 / alpha)).any(axis=1))

