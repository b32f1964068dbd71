"""Analysis over stored verdicts: pass rates, per-release regressions, sequential monitoring."""

from tracegrade.analysis.rates import PassRate, pass_rates, wilson_interval
from tracegrade.analysis.regressions import (
    Finding,
    FindingStatus,
    NotEnoughReleases,
    RegressionReport,
    RegressionSettings,
    SliceKey,
    find_regressions,
)
from tracegrade.analysis.settings import AnalysisConfig, WatchConfig

__all__ = [
    "AnalysisConfig",
    "Finding",
    "FindingStatus",
    "NotEnoughReleases",
    "PassRate",
    "RegressionReport",
    "RegressionSettings",
    "SliceKey",
    "WatchConfig",
    "find_regressions",
    "pass_rates",
    "wilson_interval",
]
