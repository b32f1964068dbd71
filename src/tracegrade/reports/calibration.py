"""Rich tables for ``tracegrade calibrate``."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from tracegrade.analysis.calibration import Calibration, Interval
from tracegrade.analysis.correction import CorrectedRate
from tracegrade.reports._format import interval, percent, release_name

_STATUS_STYLE = {"trusted": "green", "not trusted": "bold red", "insufficient labels": "yellow"}


def calibration_table(calibrations: Sequence[Calibration]) -> Table:
    """One row per grader version: confusion counts, TPR, TNR, kappa, and the verdict."""
    splits = sorted({"/".join(c.settings.splits) for c in calibrations}) or ["test"]
    table = Table(title=f"Agreement with human labels ({', '.join(splits)} split; "
                        "95% intervals)")
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
        people_passed = confusion.both_pass + confusion.grader_failed_human_passed
        table.add_row(
            calibration.grader, calibration.grader_version, str(calibration.n),
            f"{confusion.both_pass}/{confusion.grader_failed_human_passed}/"
            f"{confusion.grader_passed_human_failed}/{confusion.both_fail}",
            _rate(agreement.tpr, "no pass labels" if people_passed == 0 else "undefined"),
            _rate(agreement.tnr,
                  "no fail labels" if people_passed == confusion.n else "undefined"),
            _kappa(agreement.kappa),
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
        cells = [_corrected(corrected.get(method)) for method in ("rogan-gladen", "ppi")]
        observed = _missing("no pass/fail verdicts") if calibration.observed_pass_rate is None \
            else Text(f"{percent(calibration.observed_pass_rate)} "
                      f"(n={calibration.observed_n:,})")
        table.add_row(calibration.grader, release_name(calibration.release), observed, *cells)
    return table


def _corrected(rate: CorrectedRate | None) -> Text:
    """The estimate and its interval, with why either is missing (or clipped)."""
    if rate is None:
        return _missing("not computed")
    if rate.estimate is None:
        return _missing(rate.note or "no estimate")
    text = Text(percent(rate.estimate))
    if rate.low is not None and rate.high is not None:
        text.append(f" {interval(rate.low, rate.high)}")
    if rate.note:
        text.append(f" ({rate.note})", style="yellow")
    return text


def _missing(why: str) -> Text:
    return Text(f"— ({why})", style="yellow")


def _rate(value: Interval | None, why_missing: str) -> str | Text:
    if value is None:
        return _missing(why_missing)
    return f"{percent(value.value)} {interval(value.low, value.high)}"


def _kappa(value: Interval | None) -> str:
    if value is None:
        return "undefined"
    return f"{value.value:.2f} [{value.low:.2f}, {value.high:.2f}]"
