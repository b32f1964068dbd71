"""Analysis over stored verdicts: pass rates, per-release regressions, sequential monitoring.

The names below load their module on first use: the statistics stack (scipy, statsmodels) takes
about a second to import, which commands that never analyse anything should not pay.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracegrade.analysis.errors import NotEnoughReleases
    from tracegrade.analysis.rates import PassRate, pass_rates, wilson_interval
    from tracegrade.analysis.regressions import (
        Finding,
        FindingStatus,
        RegressionReport,
        RegressionSettings,
        SliceKey,
        find_regressions,
    )
    from tracegrade.analysis.settings import AnalysisConfig, WatchConfig

_HOMES = {
    "AnalysisConfig": "settings",
    "Finding": "regressions",
    "FindingStatus": "regressions",
    "NotEnoughReleases": "errors",
    "PassRate": "rates",
    "RegressionReport": "regressions",
    "RegressionSettings": "regressions",
    "SliceKey": "regressions",
    "WatchConfig": "settings",
    "find_regressions": "regressions",
    "pass_rates": "rates",
    "wilson_interval": "rates",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
