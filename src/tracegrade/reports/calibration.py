"""Rich tables for ``tracegrade calibrate``."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from tracegrade.analysis.calibration import Calibration, Interval
from tracegrade.reports.terminal import interval, percent

_STATUS_STYLE = {"trusted": "green", "not trusted": "bold red", "insufficient labels": "yellow"}


def calibration_table(calibrations: Sequence[Calibration]) -> Table:
    """One row per grader version: confusion counts, TPR, TNR, kappa, and the verdict."""
    table = Table(title="Agreement with human labels (test split; 95% intervals)")
    table.add_column("grader")
    table.add_column("version")
    for column in ("labels", "TP/FN/FP/TN", "TPR", "TNR", "kappa"):
        table.add_column(column, justify="right")
    table.add_column("verdict")
    for calibration in calibrations:
        agreement, confusion = calibration.agreement, calibration.agreement.confusion
        verdict = calibration.status
        if calibration.reasons:
            verdict += f" ({'; '.join(calibration.reasons)})"
        table.add_row(
            calibration.grader, calibration.grader_version, str(calibration.n),
            f"{confusion.both_pass}/{confusion.grader_failed_human_passed}/"
            f"{confusion.grader_passed_human_failed}/{confusion.both_fail}",
            _rate(agreement.tpr), _rate(agreement.tnr), _kappa(agreement.kappa),
            Text(verdict, style=_STATUS_STYLE.get(calibration.status, "")),
        )
    return table


def correction_table(calibrations: Sequence[Calibration]) -> Table:
    """Each grader's observed pass rate in the release, and the two corrected estimates."""
    table = Table(title="Pass rate corrected for the grader's errors (95% intervals)")
    for column in ("grader", "release"):
        table.add_column(column)
    for column in ("observed", "Rogan-Gladen", "PPI"):
        table.add_column(column, justify="right")
    for calibration in calibrations:
        corrected = {c.method: c for c in calibration.corrected}
        cells = []
        for method in ("rogan-gladen", "ppi"):
            rate = corrected.get(method)
            if rate is None or rate.estimate is None:
                cells.append(Text(rate.note if rate and rate.note else "—", style="yellow"))
            else:
                cells.append(Text(f"{percent(rate.estimate)} {interval(rate.low, rate.high)}"))
        observed = "—" if calibration.observed_pass_rate is None else \
            f"{percent(calibration.observed_pass_rate)} (n={calibration.observed_n:,})"
        table.add_row(calibration.grader, str(calibration.release), observed, *cells)
    return table


def _rate(value: Interval | None) -> str:
    if value is None:
        return "—"
    return f"{percent(value.value)} {interval(value.low, value.high)}"


def _kappa(value: Interval | None) -> str:
    if value is None:
        return "undefined"
    return f"{value.value:.2f} [{value.low:.2f}, {value.high:.2f}]"
