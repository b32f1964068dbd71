"""Releases: a span's release comes from a span field or from deploy markers.

With ``analysis.releases: deploy_markers`` a span belongs to the latest marker deployed at or
before its start time, in its environment (a marker without an environment applies to every
environment). The assignment is computed when spans are read, as a SQL expression, and never
written into ``spans``: the stored span stays exactly what its source sent, so its content hash
is unchanged, re-importing still adds nothing, and a marker added or corrected later re-assigns
spans (and their verdicts) without re-grading anything.

Spans stored by ``tracegrade replay`` are the exception: they start when the replay ran, which
says nothing about production, so they keep the release the replay was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, func, literal, select, true, update
from sqlalchemy.dialects import postgresql, sqlite

from tracegrade.spans import utc_now
from tracegrade.store import Store
from tracegrade.store import _schema as t

ReleaseSource = Literal["span", "deploy_markers"]
MarkOutcome = Literal["created", "moved", "unchanged"]


class DeployMarkerError(ValueError):
    """A deploy marker cannot be recorded as asked."""


@dataclass(frozen=True)
class DeployMarker:
    """A release deployed to an environment (``None``: every environment) at a time."""

    name: str
    environment: str | None
    deployed_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {"name": self.name, "environment": self.environment,
                "deployed_at": self.deployed_at.isoformat()}


def mark_deploy(store: Store, name: str, at: datetime | None = None,
                environment: str | None = None) -> tuple[DeployMarker, MarkOutcome]:
    """Record that release ``name`` was deployed (now, or ``at``).

    Marking a release again without ``at`` keeps the first time, so a retried CI job changes
    nothing; with ``at`` the marker moves to that time.

    Raises:
        DeployMarkerError: the name is empty or too long, or ``at`` has no time zone.
    """
    name = name.strip()
    if not name or len(name) > 200:
        raise DeployMarkerError("a release name must have 1 to 200 characters")
    if at is not None and at.tzinfo is None:
        raise DeployMarkerError("the deploy time needs a time zone (e.g. 2026-11-08T12:00Z)")
    env_key = environment or ""
    existing = _marker(store, name, env_key)
    if existing is not None and (at is None or existing.deployed_at == at):
        return existing, "unchanged"
    moment = at or utc_now()
    with store.engine.begin() as conn:
        if existing is None:
            conn.execute(_insert(store).values(name=name, environment=env_key,
                                               deployed_at=moment, created_at=utc_now())
                         .on_conflict_do_nothing(index_elements=["name", "environment"]))
        else:
            conn.execute(update(t.releases).where(
                t.releases.c.name == name, t.releases.c.environment == env_key,
            ).values(deployed_at=moment))
    outcome: MarkOutcome = "created" if existing is None else "moved"
    return DeployMarker(name, environment or None, moment), outcome


def _insert(store: Store) -> Any:
    dialect_insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    return dialect_insert(t.releases)


def _marker(store: Store, name: str, env_key: str) -> DeployMarker | None:
    r = t.releases.c
    query = select(r.name, r.environment, r.deployed_at).where(
        r.name == name, r.environment == env_key)
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return _to_marker(row) if row is not None and row.deployed_at is not None else None


def _to_marker(row: Any) -> DeployMarker:
    return DeployMarker(row.name, row.environment or None, row.deployed_at)


def deploy_markers(store: Store) -> list[DeployMarker]:
    """Every deploy marker, oldest first."""
    r = t.releases.c
    query = select(r.name, r.environment, r.deployed_at).where(
        r.deployed_at.is_not(None)).order_by(r.deployed_at, r.name, r.environment)
    with store.engine.connect() as conn:
        return [_to_marker(row) for row in conn.execute(query)]


def release_column(store: Store, source: ReleaseSource) -> ColumnElement[Any]:
    """A SQL expression over ``spans`` giving each span's release.

    For deploy markers it is a ``CASE`` over the markers, latest first; spans older than every
    applicable marker get NULL. Replayed spans (``tracegrade replay --release``) keep their own
    release: they ran against that release, whenever the replay happened.
    """
    if source == "span":
        return t.spans.c.release
    from tracegrade.datasets._replay import REPLAY_SOURCE  # the replay machinery loads late

    s = t.spans.c
    replayed = (s.source == REPLAY_SOURCE, s.release)
    markers = deploy_markers(store)
    if not markers:
        return case(replayed, else_=literal(None, type_=s.release.type))
    whens = [replayed, *[
        (and_(s.start_time >= marker.deployed_at,
              s.environment == marker.environment if marker.environment else true()),
         literal(marker.name))
        for marker in sorted(markers, key=lambda m: m.deployed_at, reverse=True)
    ]]
    return case(*whens, else_=literal(None, type_=s.release.type))


@dataclass(frozen=True)
class ReleaseSummary:
    """One release: its spans, their time range, and its deploy markers."""

    name: str | None
    spans: int
    graded_spans: int
    first_span: datetime | None
    last_span: datetime | None
    deployed: tuple[DeployMarker, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {
            "release": self.name, "spans": self.spans, "graded_spans": self.graded_spans,
            "first_span": _iso(self.first_span), "last_span": _iso(self.last_span),
            "deployed": [m.as_dict() for m in self.deployed],
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def list_releases(store: Store, source: ReleaseSource,
                  environment: str | None = None) -> list[ReleaseSummary]:
    """Every release with its span count and time range, in deploy (or first-span) order.

    With deploy markers, a marker no span has reached yet is listed with zero spans, and spans
    older than every marker are listed under ``None``.
    """
    rows = _span_ranges(store, source, environment)
    markers = deploy_markers(store) if source == "deploy_markers" else []
    by_name: dict[str | None, list[DeployMarker]] = {}
    for marker in markers:
        if environment is None or marker.environment in (None, environment):
            by_name.setdefault(marker.name, []).append(marker)
    summaries = [ReleaseSummary(name, spans, graded, first, last, tuple(by_name.get(name, ())))
                 for name, spans, graded, first, last in rows]
    seen = {summary.name for summary in summaries}
    summaries += [ReleaseSummary(name, 0, 0, None, None, tuple(found))
                  for name, found in by_name.items() if name not in seen]
    return sorted(summaries, key=_release_order)


def _release_order(summary: ReleaseSummary) -> tuple[int, datetime, str]:
    if summary.deployed:
        return 1, summary.deployed[0].deployed_at, str(summary.name)
    if summary.first_span is not None:
        return 1, summary.first_span, str(summary.name)
    return 2, utc_now(), str(summary.name)


def _span_ranges(store: Store, source: ReleaseSource, environment: str | None
                 ) -> list[tuple[str | None, int, int, datetime | None, datetime | None]]:
    s, v = t.spans.c, t.verdicts.c
    graded = select(v.source, v.span_id).distinct().subquery()
    inner = select(
        release_column(store, source).label("release"), s.start_time,
        graded.c.span_id.label("graded"),
    ).select_from(t.spans.outerjoin(
        graded, and_(graded.c.source == s.source, graded.c.span_id == s.span_id)))
    if environment is not None:
        inner = inner.where(s.environment == environment)
    sub = inner.subquery()
    query = select(sub.c.release, func.count(), func.count(sub.c.graded),
                   func.min(sub.c.start_time), func.max(sub.c.start_time)).group_by(sub.c.release)
    with store.engine.connect() as conn:
        return [(row[0], int(row[1]), int(row[2]), row[3], row[4]) for row in conn.execute(query)]
