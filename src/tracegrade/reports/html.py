"""One self-contained HTML file: tables, inline SVG charts, failing spans — no network needed.

The page carries a Content-Security-Policy that forbids every fetch, so it opens the same on a
laptop on a plane as in a CI artifact viewer. Everything from trace data (inputs, outputs,
reasons, names) is escaped by Jinja's autoescaping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from importlib.resources import files
from typing import Any

import orjson
from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from tracegrade import __version__
from tracegrade.analysis import Finding, FindingStatus, PassRate, RegressionReport
from tracegrade.analysis.examples import FailingSpan
from tracegrade.reports._format import (
    counts_line,
    headline,
    method_line,
    notable_slices,
    order,
    p_value,
    points,
    points_interval,
    rate_cell,
    status_text,
)
from tracegrade.reports._svg import rate_chart
from tracegrade.spans import utc_now

REGRESSED_COLOUR = "#c62828"
MAX_SHOWN_CHARS = 4000
"""A span's input or output is cut to this many characters in the page."""

_CSS = {
    FindingStatus.REGRESSED: "regressed",
    FindingStatus.IMPROVED: "improved",
    FindingStatus.UNCHANGED: "unchanged",
    FindingStatus.INSUFFICIENT: "insufficient",
}


def _environment() -> Environment:
    return Environment(autoescape=select_autoescape(default=True, default_for_string=True),
                       trim_blocks=True, lstrip_blocks=True)


def _template() -> Any:
    source = (files("tracegrade") / "templates" / "report.html.j2").read_text(encoding="utf-8")
    return _environment().from_string(source)


def regressions_html(report: RegressionReport,
                     examples: Mapping[str, Sequence[FailingSpan]] | None = None) -> str:
    """The comparison as one HTML page, with the failing spans of each regressed grader."""
    findings = sorted(report.findings, key=order)
    return str(_template().render(
        title=f"tracegrade: {report.candidate} vs {report.baseline}",
        report=report, headline=headline(report), counts=counts_line(report),
        method=method_line(report), rows=[_row(f) for f in findings],
        slices=[_slice_row(s) for s in notable_slices(report)],
        charts=[_chart(report.rates, f.grader, f.grader_version, f, report.candidate)
                for f in findings] + [_slice_chart(s) for s in notable_slices(report)],
        examples=[(label, [_example(span) for span in spans])
                  for label, spans in (examples or {}).items()],
        version=__version__, generated=utc_now().replace(microsecond=0).isoformat(),
    ))


def rates_html(rates: Iterable[PassRate]) -> str:
    """Every grader's pass rate per release as one HTML page of charts."""
    rates = list(rates)
    series = sorted({(r.grader, r.grader_version) for r in rates})
    return str(_template().render(
        title="tracegrade: pass rate per release", report=None,
        charts=[_chart(rates, grader, version, None, None) for grader, version in series],
        examples=[], version=__version__,
        generated=utc_now().replace(microsecond=0).isoformat(),
    ))


def _row(finding: Finding) -> dict[str, str]:
    return {
        "grader": finding.grader, "baseline": rate_cell(finding.baseline),
        "candidate": rate_cell(finding.candidate), "change": points(finding.difference),
        "ci": points_interval(finding), "q": p_value(finding.q_worse),
        "mde": points(finding.mde, signed=False),
        "errors": f"{finding.baseline.errors:,} / {finding.candidate.errors:,}",
        "test": finding.test or "—", "status": status_text(finding),
        "css": _CSS[finding.status],
    }


def _slice_row(finding: Finding) -> dict[str, str]:
    return {
        "grader": finding.grader, "slice": str(finding.slice),
        "baseline": rate_cell(finding.baseline), "candidate": rate_cell(finding.candidate),
        "change": points(finding.difference), "ci": points_interval(finding),
        "q": p_value(finding.q_worse), "status": finding.own_status.value,
        "css": _CSS[finding.own_status],
    }


def _chart(rates: Sequence[PassRate], grader: str, version: str, finding: Finding | None,
           candidate: str | None) -> dict[str, Any]:
    series = [r for r in rates if r.grader == grader and r.grader_version == version]
    highlight = {}
    if finding is not None and finding.own_status is FindingStatus.REGRESSED and candidate:
        highlight[candidate] = REGRESSED_COLOUR
    svg = rate_chart(series, title=f"{grader} pass rate per release", highlight=highlight)
    return {
        "grader": grader, "version": version,
        "status": status_text(finding) if finding else "",
        "css": _CSS[finding.status] if finding else "",
        # Built by _svg with every text escaped; nothing from the template's input is raw.
        "svg": Markup(svg),
    }


def _slice_chart(finding: Finding) -> dict[str, Any]:
    colour = REGRESSED_COLOUR if finding.own_status is FindingStatus.REGRESSED else "#2e7d32"
    svg = rate_chart([finding.baseline, finding.candidate],
                     title=f"{finding.label()} pass rate, baseline and candidate",
                     highlight={str(finding.candidate.release): colour})
    return {"grader": finding.label(), "version": finding.grader_version,
            "status": finding.own_status.value, "css": _CSS[finding.own_status],
            "svg": Markup(svg)}


def _example(span: FailingSpan) -> dict[str, str]:
    return {
        "span_id": span.span_id, "name": span.name, "trace_id": span.trace_id,
        "source": span.source, "start_time": span.start_time.isoformat(),
        "reason": span.reason, "input": _shown(span.input), "output": _shown(span.output),
    }


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(
        value, option=orjson.OPT_INDENT_2, default=str).decode()
    if len(text) > MAX_SHOWN_CHARS:
        return f"{text[:MAX_SHOWN_CHARS]}… ({len(text) - MAX_SHOWN_CHARS:,} more characters)"
    return text
