"""GitHub-flavoured Markdown: a regression report that fits a pull-request comment."""

from __future__ import annotations

import html
from collections.abc import Iterable

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

_MARK = {
    FindingStatus.REGRESSED: "🔴",
    FindingStatus.IMPROVED: "🟢",
    FindingStatus.UNCHANGED: "⚪",
    FindingStatus.INSUFFICIENT: "🟡",
}

MAX_CHARS = 60_000
"""GitHub refuses comments over 65,536 characters; slices are cut before that."""


def cell(text: object) -> str:
    """Text made safe for a table cell: pipes escaped, line breaks flattened, and HTML shown as
    text (release and grader names come from traces: ``<b>`` must not render)."""
    return html.escape(_flat(text), quote=False)


def code(text: object) -> str:
    """Text as an inline code span (whose content GitHub shows as it is, HTML included)."""
    flat = _flat(text)
    return f"`` {flat} ``" if "`" in flat else f"`{flat}`"


def _flat(text: object) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def regressions_markdown(report: RegressionReport) -> str:
    """The comparison as Markdown: a headline, one row per grader, then changed slices."""
    lines = [
        f"### tracegrade: {code(report.candidate)} vs {code(report.baseline)}", "",
        f"**{cell(headline(report))}**", "",
        counts_line(report), "",
        f"| | grader | {cell(report.baseline)} | {cell(report.candidate)} | change | 95% CI "
        "| q | MDE | errors | status |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    lines += [_row(f) for f in sorted(report.findings, key=order)]
    lines += _slice_section(report)
    lines += ["", f"<sub>{cell(method_line(report))} Errors and skips are not counted in the "
                  "rates.</sub>"]
    text = "\n".join(lines) + "\n"
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS].rsplit("\n", 1)[0] + "\n\n…(cut to fit a comment)\n"
    return text


def _row(finding: Finding) -> str:
    errors = f"{finding.baseline.errors:,} / {finding.candidate.errors:,}"
    return (f"| {_MARK[finding.status]} | {code(finding.grader)} | "
            f"{rate_cell(finding.baseline)} | {rate_cell(finding.candidate)} | "
            f"{points(finding.difference)} | {points_interval(finding)} | "
            f"{p_value(finding.q_worse)} | {points(finding.mde, signed=False)} | {errors} | "
            f"{cell(status_text(finding))} |")


def _slice_section(report: RegressionReport) -> list[str]:
    changed = notable_slices(report)
    if not changed:
        return []
    lines = ["", "#### Slices that changed while their grader overall did not", "",
             "| | grader | slice | baseline | candidate | change | 95% CI | q |",
             "|---|---|---|--:|--:|--:|--:|--:|"]
    for s in changed:
        lines.append(
            f"| {_MARK[s.own_status]} | {code(s.grader)} | {cell(s.slice)} | "
            f"{rate_cell(s.baseline)} | {rate_cell(s.candidate)} | {points(s.difference)} | "
            f"{points_interval(s)} | {p_value(s.q_worse)} |")
    return lines


def rates_markdown(rates: Iterable[PassRate]) -> str:
    """Pass rate per release × grader as a Markdown table."""
    lines = ["| release | grader | version | pass rate | 95% CI | pass | fail | error | skip |",
             "|---|---|---|--:|--:|--:|--:|--:|--:|"]
    for r in rates:
        lines.append(f"| {cell(release_name(r.release))} | {code(r.grader)} | "
                     f"{cell(r.grader_version)} | "
                     f"{percent(r.rate)} | {interval(r.low, r.high)} | {r.passed:,} | "
                     f"{r.failed:,} | {r.errors:,} | {r.skipped:,} |")
    return "\n".join(lines) + "\n"
