"""Rich tables for people at a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from tracegrade.analysis import Finding, FindingStatus, PassRate, RegressionReport
from tracegrade.reports._format import (
    counts_line,
    headline,
    interval,
    method_line,
    notable_slices,
    order,
    p_value,
    percent,
    points,
    points_interval,
    rate_cell,
    release_name,
    status_text,
)

__all__ = ["interval", "percent", "rates_table", "regression_summary", "regressions_table",
           "releases_table", "runs_table", "slices_table", "stats_table"]


def rates_table(rates: Iterable[PassRate]) -> Table:
    """Pass rate per release × grader, with counts, 95% Wilson interval, errors apart."""
    table = Table(title="Pass rate per release and grader (95% Wilson intervals)")
    for column in ("release", "grader", "version"):
        table.add_column(column)
    for column in ("pass rate", "95% CI", "pass", "fail", "error", "skip"):
        table.add_column(column, justify="right")
    for rate in rates:
        table.add_row(
            release_name(rate.release), rate.grader, rate.grader_version, percent(rate.rate),
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
        table.add_row(release_name(row["release"]), row["kind"], row["source"], f"{row['spans']:,}",
                      _time(row["first"]), _time(row["last"]))
    return table


def releases_table(rows: Sequence[Any]) -> Table:
    """Releases with span counts, time ranges and deploy markers."""
    table = Table(title="Releases")
    table.add_column("release")
    table.add_column("deployed")
    for column in ("spans", "graded"):
        table.add_column(column, justify="right")
    table.add_column("first span")
    table.add_column("last span")
    for row in rows:
        deployed = ", ".join(
            f"{_time(m.deployed_at)}" + (f" ({m.environment})" if m.environment else "")
            for m in row.deployed) or "—"
        name = "(before any deploy marker)" if row.name is None and row.deployed == () \
            and any(r.deployed for r in rows) else release_name(row.name)
        table.add_row(name, deployed, f"{row.spans:,}", f"{row.graded_spans:,}",
                      _time(row.first_span), _time(row.last_span))
    return table


_RUN_STYLE = {"finished": "green", "running": "cyan", "killed": "bold red", "failed": "red",
              "interrupted": "yellow", "budget_exhausted": "yellow"}


def runs_table(records: Sequence[Any]) -> Table:
    """Recent runs: command, start, duration, status (killed ones told apart), what they did."""
    table = Table(title="Runs (newest first)")
    for column in ("run", "command", "started (UTC)"):
        table.add_column(column)
    table.add_column("took", justify="right")
    table.add_column("status")
    table.add_column("verdicts", justify="right")
    table.add_column("ran on")
    for record in records:
        status = Text(record.status, style=_RUN_STYLE.get(record.status, ""))
        if record.status == "running" and not record.checked:
            status.append(" (not checked: another host)" if record.host
                          else " (not checked: no process recorded)", style="dim")
        took = "—" if record.duration_s is None else _duration(record.duration_s)
        where = f"{record.host} pid {record.pid}" if record.host else "—"
        table.add_row(record.run_id, record.command,
                      record.started_at.strftime("%Y-%m-%d %H:%M:%S"), took, status,
                      f"{record.verdicts:,}", where)
    return table


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


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
    table = Table(title=f"{report.candidate} vs {report.baseline}",
                  caption=method_line(report), caption_justify="left")
    table.add_column("grader")
    for column in (str(report.baseline), str(report.candidate), "change", "95% CI", "q",
                   "MDE", "errors b/c"):
        table.add_column(column, justify="right")
    table.add_column("status")
    for finding in sorted(report.findings, key=order):
        table.add_row(*_cells(finding))
    return table


def _cells(finding: Finding) -> list[str | Text]:
    return [
        Text(finding.label()), rate_cell(finding.baseline), rate_cell(finding.candidate),
        points(finding.difference), points_interval(finding), p_value(finding.q_worse),
        points(finding.mde, signed=False),
        f"{finding.baseline.errors}/{finding.candidate.errors}",
        Text(status_text(finding), style=_STATUS_STYLE[finding.status]),
    ]


def slices_table(report: RegressionReport) -> Table | None:
    """Slices that regressed or improved on their own (see ``notable_slices``), or None."""
    notable = notable_slices(report)
    if not notable:
        return None
    table = Table(title="Slices that changed while their grader overall did not "
                        "(tested under the same FDR control)")
    table.add_column("grader / slice")
    for column in (str(report.baseline), str(report.candidate), "change", "95% CI", "q",
                   "errors b/c", "test"):
        table.add_column(column, justify="right")
    table.add_column("status")
    for finding in notable:
        cells = _cells(finding)
        cells[6:] = [cells[7], finding.test or "—",  # slices show the test instead of the MDE
                     Text(finding.own_status.value, style=_STATUS_STYLE[finding.own_status])]
        table.add_row(*cells)
    return table


def regression_summary(report: RegressionReport) -> str:
    """What regressed in one line, then the count per status."""
    return f"{headline(report)}\n{counts_line(report)}"
