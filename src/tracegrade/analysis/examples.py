"""Failing spans of a regressed grader (or slice), to show people what broke."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select

from tracegrade.analysis._aggregate import dimension_column
from tracegrade.analysis.regressions import Finding, FindingStatus, RegressionReport
from tracegrade.releases import release_column
from tracegrade.store import Store
from tracegrade.store import _schema as t


@dataclass(frozen=True)
class FailingSpan:
    """One failed verdict in the candidate release, with the span's input and output."""

    source: str
    span_id: str
    trace_id: str
    name: str
    start_time: datetime
    reason: str
    input: Any
    output: Any

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {"source": self.source, "span_id": self.span_id, "trace_id": self.trace_id,
                "name": self.name, "start_time": self.start_time.isoformat(),
                "reason": self.reason, "input": self.input, "output": self.output}


def failing_spans(store: Store, report: RegressionReport, limit: int = 5
                  ) -> dict[str, list[FailingSpan]]:
    """Up to ``limit`` failing (or, for a grader whose errors rose, erring) spans of the
    candidate for every regressed grader and slice; none when ``limit`` is 0.

    Keyed by :meth:`Finding.label` (``grader`` or ``grader [dimension=value]``).
    """
    examples: dict[str, list[FailingSpan]] = {}
    if limit <= 0:
        return examples
    for finding in report.regressed:
        regressed = list(finding.regressed_slices)
        if finding.own_status is FindingStatus.REGRESSED or finding.errors_rose:
            regressed.insert(0, finding)
        for item in regressed:
            # A grader that regressed by erring more shows its errors (their reasons say why)
            outcomes = ("fail", "error") if item.errors_rose else ("fail",)
            examples[item.label()] = _failing(store, report, item, limit, outcomes)
    return examples


def _failing(store: Store, report: RegressionReport, finding: Finding, limit: int,
             outcomes: tuple[str, ...] = ("fail",)) -> list[FailingSpan]:
    s, v = t.spans.c, t.verdicts.c
    release = release_column(store, report.settings.releases)
    query = (
        select(s.source, s.span_id, s.trace_id, s.name, s.start_time, v.reason, s.input,
               s.output)
        .select_from(t.verdicts.join(t.spans, and_(s.source == v.source,
                                                   s.span_id == v.span_id)))
        .where(v.grader == finding.grader, v.grader_version == finding.grader_version,
               v.outcome.in_(outcomes), release == report.candidate)
        .order_by(s.start_time.desc()).limit(limit)
    )
    if finding.slice is not None:
        query = query.where(dimension_column(finding.slice.dimension) == finding.slice.value)
    if report.settings.environment is not None:
        query = query.where(s.environment == report.settings.environment)
    with store.engine.connect() as conn:
        return [FailingSpan(*row) for row in conn.execute(query)]
