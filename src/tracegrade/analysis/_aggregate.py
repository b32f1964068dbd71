"""Verdict tallies, aggregated in SQL: one pass over ``verdicts ⋈ spans`` per analysis.

The database groups by release × grader × version × outcome × the requested span dimensions
(strata and slices) and returns counts and inverse-probability weight sums; everything after
that works on these few hundred rows, never on verdicts one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select

from tracegrade.releases import ReleaseSource, release_column
from tracegrade.store import Store
from tracegrade.store import _schema as t

SeriesKey = tuple[str | None, str, str]
"""(release, grader, grader version)."""
DimensionValues = tuple[str | None, ...]


@dataclass
class Tally:
    """Verdict counts of one cell, and the sums of weights ``w = 1 / inclusion probability``."""

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    w_pass: float = 0.0
    w_fail: float = 0.0
    w2_pass: float = 0.0
    """Sum of squared weights over passes (for the variance of the weighted rate)."""
    w2_fail: float = 0.0
    first: datetime | None = None
    classes: dict[float, list[int]] = field(default_factory=dict)
    """``[passes, fails]`` per weight (one class per inclusion probability), when the tally
    was read from the store: what :func:`~tracegrade.analysis.comparison.class_effective_n`
    needs to see a heavily weighted class whose few verdicts all agree."""

    @property
    def decided(self) -> int:
        """Verdicts that count toward the rate (pass + fail)."""
        return self.passed + self.failed

    def add(self, outcome: str, count: int, weight: float, weight_sq: float,
            first: datetime | None) -> None:
        """Count ``count`` verdicts of one outcome."""
        if outcome == "pass":
            self.passed += count
            self.w_pass += weight
            self.w2_pass += weight_sq
        elif outcome == "fail":
            self.failed += count
            self.w_fail += weight
            self.w2_fail += weight_sq
        elif outcome == "error":
            self.errors += count
        else:
            self.skipped += count
        self._see(first)

    def merge(self, other: Tally) -> None:
        """Add another cell's counts into this one."""
        self.passed += other.passed
        self.failed += other.failed
        self.errors += other.errors
        self.skipped += other.skipped
        self.w_pass += other.w_pass
        self.w_fail += other.w_fail
        self.w2_pass += other.w2_pass
        self.w2_fail += other.w2_fail
        for weight, (passes, fails) in other.classes.items():
            counts = self.classes.setdefault(weight, [0, 0])
            counts[0] += passes
            counts[1] += fails
        self._see(other.first)

    def _see(self, first: datetime | None) -> None:
        if first is not None and (self.first is None or first < self.first):
            self.first = first


@dataclass
class VerdictTallies:
    """Tallies per release × grader × version × (values of ``dimensions``)."""

    dimensions: tuple[str, ...]
    cells: dict[tuple[SeriesKey, DimensionValues], Tally]

    def overall(self) -> dict[SeriesKey, Tally]:
        """Tallies per release × grader × version, over every dimension value."""
        return {series: tally for (series, _), tally in self.by(()).items()}

    def by(self, dimensions: Sequence[str]) -> dict[tuple[SeriesKey, DimensionValues], Tally]:
        """Tallies per series and the values of ``dimensions`` (a subset of ``self.dimensions``)."""
        positions = [self.dimensions.index(d) for d in dimensions]
        merged: dict[tuple[SeriesKey, DimensionValues], Tally] = {}
        for (series, values), tally in self.cells.items():
            key = (series, tuple(values[i] for i in positions))
            merged.setdefault(key, Tally()).merge(tally)
        return merged


def dimension_column(dimension: str) -> ColumnElement[Any]:
    """The SQL expression of a span dimension: a column, or ``attributes.KEY`` as text."""
    if dimension.startswith("attributes."):
        key = dimension.removeprefix("attributes.")
        extracted: ColumnElement[Any] = t.spans.c.attributes[key].as_string()
        return extracted
    column: ColumnElement[Any] = t.spans.c[dimension]
    return column


def tally_verdicts(store: Store, release_source: ReleaseSource,
                   dimensions: Iterable[str] = (), environment: str | None = None
                   ) -> VerdictTallies:
    """Aggregate every verdict in one SQL query.

    The spans are first numbered by their cell (release × dimension values, a window function
    over the spans alone); verdicts are then grouped by cell, grader and version only, with the
    outcomes counted by ``FILTER`` clauses. That keeps the one sort over all verdicts as narrow
    as it can be, whatever the dimensions.

    Args:
        store: the store to read.
        release_source: where a span's release comes from (a span field or deploy markers).
        dimensions: span dimensions to keep apart (``name``, ``model``, ``attributes.KEY`` …).
        environment: only spans of this environment.
    """
    dims = tuple(dict.fromkeys(dimensions))
    s = t.spans.c
    release = release_column(store, release_source)
    dim_columns = [dimension_column(d) for d in dims]
    spans = select(
        s.source, s.span_id, s.start_time, release.label("release"),
        *(column.label(f"d{i}") for i, column in enumerate(dim_columns)),
        func.dense_rank().over(order_by=[release, *dim_columns]).label("cell"),
    )
    if environment is not None:
        spans = spans.where(s.environment == environment)
    cells = spans.cte("cells")
    cell_keys = [cells.c.release, *(cells.c[f"d{i}"] for i in range(len(dims)))]
    described = (select(cells.c.cell, *cell_keys, func.min(cells.c.start_time).label("first"))
                 .group_by(cells.c.cell, *cell_keys).cte("described"))
    counted = _counted(cells).cte("counted")
    query = select(described, *(c for c in counted.c if c.name != "cell")).select_from(
        counted.join(described, described.c.cell == counted.c.cell))
    tallies: dict[tuple[SeriesKey, DimensionValues], Tally] = {}
    with store.engine.connect() as conn:
        for row in conn.execute(query):
            m = row._mapping
            values = tuple(m[f"d{i}"] for i in range(len(dims)))
            part = Tally(
                passed=m["n_pass"], failed=m["n_fail"], errors=m["n_error"],
                skipped=m["n_skip"], w_pass=float(m["w_pass"] or 0.0),
                w_fail=float(m["w_fail"] or 0.0), w2_pass=float(m["w2_pass"] or 0.0),
                w2_fail=float(m["w2_fail"] or 0.0), first=m["first"])
            if m["n_pass"] or m["n_fail"]:
                part.classes[1.0 / float(m["probability"])] = [m["n_pass"], m["n_fail"]]
            key = ((m["release"], m["grader"], m["grader_version"]), values)
            if key in tallies:
                tallies[key].merge(part)
            else:
                tallies[key] = part
    return VerdictTallies(dims, tallies)


def _counted(cells: Any) -> Any:
    """Verdicts per cell × grader × version × inclusion probability: counts per outcome, weight
    sums for the rate."""
    v = t.verdicts.c
    weight = 1.0 / v.inclusion_probability
    weight_sq = 1.0 / (v.inclusion_probability * v.inclusion_probability)
    passed, failed = v.outcome == "pass", v.outcome == "fail"
    return select(
        cells.c.cell, v.grader, v.grader_version, v.inclusion_probability.label("probability"),
        func.count().filter(passed).label("n_pass"),
        func.count().filter(failed).label("n_fail"),
        func.count().filter(v.outcome == "error").label("n_error"),
        func.count().filter(v.outcome == "skip").label("n_skip"),
        func.sum(weight).filter(passed).label("w_pass"),
        func.sum(weight).filter(failed).label("w_fail"),
        func.sum(weight_sq).filter(passed).label("w2_pass"),
        func.sum(weight_sq).filter(failed).label("w2_fail"),
    ).select_from(t.verdicts.join(
        cells, and_(cells.c.source == v.source, cells.c.span_id == v.span_id),
    )).group_by(cells.c.cell, v.grader, v.grader_version, v.inclusion_probability)
