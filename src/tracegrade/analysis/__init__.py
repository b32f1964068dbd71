"""Analysis over stored verdicts: pass rates and per-release regressions."""

from tracegrade.analysis.rates import PassRate, pass_rates, wilson_interval
from tracegrade.analysis.regressions import (
    Finding,
    FindingStatus,
    NotEnoughReleases,
    RegressionReport,
    RegressionSettings,
    find_regressions,
)

__all__ = [
    "Finding",
    "FindingStatus",
    "NotEnoughReleases",
    "PassRate",
    "RegressionReport",
    "RegressionSettings",
    "find_regressions",
    "pass_rates",
    "wilson_interval",
]
