"""Rich tables for people at a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from tracegrade.analysis import Finding, FindingStatus, PassRate, RegressionReport


def percent(value: float | None, digits: int = 1) -> str:
    """``0.9312`` as ``93.1%``; ``None`` as an em dash."""
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def interval(low: float | None, high: float | None) -> str:
    """An interval in percent."""
    if low is None or high is None:
        return "—"
    return f"[{low * 100:.1f}, {high * 100:.1f}]"


def rates_table(rates: Iterable[PassRate]) -> Table:
    """Pass rate per release × grader, with counts, 95% Wilson interval, errors apart."""
    table = Table(title="Pass rate per release and grader (95% Wilson intervals)")
    for column in ("release", "grader", "version"):
        table.add_column(column)
    for column in ("pass rate", "95% CI", "pass", "fail", "error", "skip"):
        table.add_column(column, justify="right")
    for rate in rates:
        table.add_row(
            str(rate.release), rate.grader, rate.grader_version, percent(rate.rate),
            interval(rate.low, rate.high), str(rate.passed), str(rate.failed),
            Text(str(rate.errors), style="bold red" if rate.errors else ""),
            str(rate.skipped),
        )
    return table


def stats_table(rows: Sequence[dict[str, Any]]) -> Table:
    """Spans per release, kind and source, with their time range."""
    table = Table(title="Spans per release, kind and source")
    for column in ("release", "kind", "source"):
        table.add_column(column)
    table.add_column("spans", justify="right")
    table.add_column("first span")
    table.add_column("last span")
    for row in rows:
        table.add_row(str(row["release"]), row["kind"], row["source"], f"{row['spans']:,}",
                      _time(row["first"]), _time(row["last"]))
    return table


def _time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "—"


_STATUS_STYLE = {
    FindingStatus.REGRESSED: "bold red",
    FindingStatus.IMPROVED: "green",
    FindingStatus.UNCHANGED: "dim",
    FindingStatus.INSUFFICIENT: "yellow",
}


def regressions_table(report: RegressionReport) -> Table:
    """One row per grader: both rates, the difference with its interval, p and q, the status."""
    table = Table(title=f"{report.candidate} vs {report.baseline} "
                        f"(one-sided tests, Benjamini-Hochberg FDR {report.settings.alpha:g})")
    table.add_column("grader")
    for column in (str(report.baseline), str(report.candidate), "change", "95% CI", "q",
                   "MDE", "errors b/c"):
        table.add_column(column, justify="right")
    table.add_column("status")
    for finding in sorted(report.findings, key=_order):
        table.add_row(
            finding.grader, _rate_cell(finding.baseline), _rate_cell(finding.candidate),
            _points(finding.difference), _points_interval(finding), _p(finding.q_worse),
            _points(finding.mde, signed=False),
            f"{finding.baseline.errors}/{finding.candidate.errors}",
            Text(_status_text(finding), style=_STATUS_STYLE[finding.status]),
        )
    return table


def _order(finding: Finding) -> tuple[int, str]:
    rank = list(FindingStatus).index(finding.status)
    return rank, finding.grader


def _rate_cell(rate: PassRate) -> str:
    if rate.rate is None:
        return "no data"
    return f"{percent(rate.rate)} (n={rate.decided:,})"


def _points(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "—"
    return f"{value * 100:+.1f} pts" if signed else f"{value * 100:.1f} pts"


def _points_interval(finding: Finding) -> str:
    if finding.diff_low is None or finding.diff_high is None:
        return "—"
    return f"[{finding.diff_low * 100:+.1f}, {finding.diff_high * 100:+.1f}]"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _status_text(finding: Finding) -> str:
    if finding.status is FindingStatus.INSUFFICIENT and finding.more_spans_needed:
        return f"insufficient data (~{finding.more_spans_needed:,} more spans per release)"
    return finding.status.value


def regression_summary(report: RegressionReport) -> str:
    """One line saying what regressed, for the end of a command's output."""
    regressed = report.regressed
    if not regressed:
        return f"No grader regressed in {report.candidate} against {report.baseline}."
    names = ", ".join(f"{f.grader} ({_points(f.difference)})" for f in regressed)
    return f"REGRESSED in {report.candidate} against {report.baseline}: {names}"
