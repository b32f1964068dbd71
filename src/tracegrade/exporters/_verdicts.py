"""Write verdicts back where a team already looks: Langfuse scores, Braintrust feedback.

Only pass/fail verdicts of spans that came from a source are exported to it. Each export is
recorded in the ``exports`` table once the service accepted it, so a re-run (or a killed one)
sends only what is missing; and every remote record has a deterministic id, so sending one
again updates it instead of adding a duplicate:

* Langfuse: ``POST /api/public/scores`` per verdict, ``dataType: BOOLEAN``, value 1/0, the
  reason as comment, on the observation (``traceId`` + ``observationId``), with ``id`` derived
  from (source, span, grader);
* Braintrust: ``POST /v1/project_logs/{project_id}/feedback`` in batches, the grader's name as
  score (1/0) and the reason as comment, on the row (its ``id``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, select, union
from sqlalchemy.dialects import postgresql, sqlite

from tracegrade.config import Config
from tracegrade.exporters._common import (
    ExportError,
    RemoteConfig,
    remote_source,
    remote_sources,
    stable_id,
)
from tracegrade.sources._http import RemoteError, RemoteRejected
from tracegrade.sources.braintrust import BraintrustApi, BraintrustSourceConfig
from tracegrade.sources.langfuse import LangfuseApi, LangfuseSourceConfig
from tracegrade.spans import utc_now
from tracegrade.store import Store
from tracegrade.store import _schema as t
from tracegrade.store._fast import placeholder

ProgressCallback = Callable[[int], None]
"""Called with the number of verdicts just exported."""

DEFAULT_BATCH_SIZE = 100
MAX_FAILURES_KEPT = 20
_LANGFUSE_ENVIRONMENT = re.compile(r"^(?!langfuse)[a-z0-9_-]{1,40}$")


@dataclass
class VerdictToExport:
    """A verdict with the span facts the destination needs."""

    verdict_id: int
    source: str
    span_id: str
    grader: str
    grader_version: str
    outcome: str
    reason: str
    run_id: str
    inclusion_probability: float
    trace_id: str
    environment: str | None
    row_id: str | None
    """Braintrust's row ``id`` (from ``attributes["braintrust.id"]``)."""

    @property
    def value(self) -> float:
        """1 for pass, 0 for fail."""
        return 1.0 if self.outcome == "pass" else 0.0

    def metadata(self) -> dict[str, Any]:
        """What is attached to the remote score: which grader version and run decided it."""
        return {"tracegrade_grader_version": self.grader_version,
                "tracegrade_run_id": self.run_id,
                "tracegrade_inclusion_probability": self.inclusion_probability}


@dataclass
class DestinationExport:
    """What one destination's export did."""

    destination: str
    type: str
    exported: int = 0
    rejected: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {"destination": self.destination, "type": self.type, "exported": self.exported,
                "rejected": self.rejected, "skipped": self.skipped, "failures": self.failures,
                "error": self.error}


@dataclass
class ExportSummary:
    """What an export did, per destination."""

    destinations: list[DestinationExport] = field(default_factory=list)

    @property
    def failed(self) -> list[DestinationExport]:
        """Destinations that stopped on an error (the rest of their verdicts wait for a re-run)."""
        return [d for d in self.destinations if d.error]

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {"destinations": [d.as_dict() for d in self.destinations],
                "ok": not self.failed}


def export_verdicts(
    store: Store,
    config: Config,
    destination: str | None = None,
    *,
    graders: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
) -> ExportSummary:
    """Send pass/fail verdicts not yet exported to the source their span came from.

    Args:
        store: Where verdicts are read and exports recorded.
        config: The configuration (connection details of the destinations).
        destination: One Langfuse/Braintrust source name; every configured one when ``None``.
        graders: Only these graders' verdicts.
        batch_size: Verdicts per batch (one transaction of export records; one Braintrust
            feedback request).
        progress: Called with the number of verdicts exported after each batch.

    Returns:
        Per destination: exported, rejected (the service refused that verdict), skipped, and
        the error that stopped it if one did (the remaining verdicts wait for the next run).

    Raises:
        ExportError: ``destination`` is not a configured Langfuse or Braintrust source, or a
            name in ``graders`` is no grader of the config or the store.
    """
    if graders:
        require_known_graders(store, config, graders)
    targets = [remote_source(config, destination)] if destination else remote_sources(config)
    summary = ExportSummary()
    for target in targets:
        summary.destinations.append(
            _export_to(store, target, list(graders or []), batch_size, progress))
    return summary


def require_known_graders(store: Store, config: Config, graders: Sequence[str]) -> None:
    """Refuse grader names that neither the config nor the store knows (a typo would export
    nothing and look like success).

    Raises:
        ExportError: naming the unknown graders and the known ones.
    """
    known = {grader.name for grader in config.graders} | _stored_graders(store)
    unknown = [name for name in dict.fromkeys(graders) if name not in known]
    if unknown:
        raise ExportError(f"no grader named {', '.join(map(repr, unknown))} in the config or "
                          f"the store (graders: {', '.join(sorted(known)) or 'none'})")


def _stored_graders(store: Store) -> set[str]:
    query = union(select(t.graders.c.name), select(t.verdicts.c.grader).distinct())
    with store.engine.connect() as conn:
        return {row[0] for row in conn.execute(query)}


def _export_to(store: Store, target: RemoteConfig, graders: list[str], batch_size: int,
               progress: ProgressCallback | None) -> DestinationExport:
    result = DestinationExport(destination=target.name, type=target.type)
    sender: _Sender = (_LangfuseSender(target) if isinstance(target, LangfuseSourceConfig)
                       else _BraintrustSender(target))
    after = 0
    try:
        while batch := _pending(store, target.name, graders, after, batch_size):
            after = batch[-1].verdict_id
            accepted = sender.send(batch, result)
            # What the service accepted is recorded even when the batch stopped half-way.
            record_exports(store, target.name, accepted)
            result.exported += len(accepted)
            if progress:
                progress(len(batch))
            if sender.error is not None:
                raise sender.error
    except RemoteError as error:
        result.error = str(error)
    finally:
        sender.close()
    return result


def _pending(store: Store, destination: str, graders: list[str], after: int, limit: int
             ) -> list[VerdictToExport]:
    v, s, e = t.verdicts.c, t.spans.c, t.exports.c
    exported = and_(e.source == v.source, e.span_id == v.span_id, e.grader == v.grader,
                    e.grader_version == v.grader_version, e.destination == destination)
    query = (
        select(v.id, v.source, v.span_id, v.grader, v.grader_version, v.outcome, v.reason,
               v.run_id, v.inclusion_probability, s.trace_id, s.environment,
               s.attributes["braintrust.id"].as_string())
        .select_from(t.verdicts
                     .join(t.spans, and_(s.source == v.source, s.span_id == v.span_id))
                     .outerjoin(t.exports, exported))
        .where(v.source == destination, v.outcome.in_(["pass", "fail"]), e.id.is_(None),
               v.id > after)
        .order_by(v.id)
        .limit(limit)
    )
    if graders:
        query = query.where(v.grader.in_(graders))
    with store.engine.connect() as conn:
        return [VerdictToExport(*list(row)) for row in conn.execute(query)]


def record_exports(store: Store, destination: str,
                   accepted: list[tuple[VerdictToExport, str]]) -> None:
    """Record verdicts the destination accepted (``(verdict, remote id)``), in one transaction."""
    if not accepted:
        return
    now = utc_now()
    rows = [{"source": verdict.source, "span_id": verdict.span_id, "grader": verdict.grader,
             "grader_version": verdict.grader_version, "destination": destination,
             "remote_id": remote_id, "exported_at": now} for verdict, remote_id in accepted]
    dialect_insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    statement = dialect_insert(t.exports)
    statement = statement.on_conflict_do_update(
        index_elements=["source", "span_id", "grader", "grader_version", "destination"],
        set_={"remote_id": statement.excluded.remote_id,
              "exported_at": statement.excluded.exported_at})
    with store.engine.begin() as conn:
        conn.execute(statement, rows)
        # A verdict an import dropped meanwhile (its span's content changed) was replaced, or
        # will be, by one the destination has not seen: it must not look exported. Checked
        # after the insert, in its transaction (SQLite: under the write lock; PostgreSQL: the
        # verdicts stay share-locked, so the import's delete of them and of these records waits).
        ids = [verdict.verdict_id for verdict, _ in accepted]
        lock = " FOR SHARE" if store.dialect == "postgresql" else ""
        present: set[int] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join([placeholder(store.dialect)] * len(chunk))
            present.update(int(row[0]) for row in conn.exec_driver_sql(
                f"SELECT id FROM verdicts WHERE id IN ({marks}){lock}", tuple(chunk)))
        e = t.exports.c
        for verdict, _ in accepted:
            if verdict.verdict_id not in present:
                conn.execute(t.exports.delete().where(
                    e.source == verdict.source, e.span_id == verdict.span_id,
                    e.grader == verdict.grader, e.grader_version == verdict.grader_version,
                    e.destination == destination))


class _Sender:
    error: RemoteError | None = None
    """The failure that stopped the last batch part-way (its accepted verdicts still count)."""

    def send(self, batch: list[VerdictToExport], result: DestinationExport
             ) -> list[tuple[VerdictToExport, str]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _note(result: DestinationExport, verdict: VerdictToExport, why: str) -> None:
    if len(result.failures) < MAX_FAILURES_KEPT:
        result.failures.append(f"{verdict.span_id} / {verdict.grader}: {why}")


class _LangfuseSender(_Sender):
    def __init__(self, config: LangfuseSourceConfig) -> None:
        self.api = LangfuseApi(config)

    def send(self, batch: list[VerdictToExport], result: DestinationExport
             ) -> list[tuple[VerdictToExport, str]]:
        accepted = []
        for verdict in batch:
            try:
                answer = self.api.create_score(langfuse_score(verdict))
            except RemoteRejected as error:
                if error.refuses_the_client:  # a wrong key: every other verdict would fail too
                    self.error = error
                    break
                result.rejected += 1
                _note(result, verdict, str(error))
                continue
            except RemoteError as error:
                self.error = error
                break
            remote_id = answer.get("id") if isinstance(answer, dict) else None
            accepted.append((verdict, str(remote_id or langfuse_score_id(verdict))))
        return accepted

    def close(self) -> None:
        self.api.close()


def langfuse_score_id(verdict: VerdictToExport) -> str:
    """The score's id: the same span and grader always update the same score."""
    return stable_id("langfuse-score", verdict.source, verdict.span_id, verdict.grader)


def langfuse_score(verdict: VerdictToExport) -> dict[str, Any]:
    """The ``POST /api/public/scores`` body for a verdict."""
    score: dict[str, Any] = {
        "id": langfuse_score_id(verdict),
        "traceId": verdict.trace_id,
        "observationId": verdict.span_id,
        "name": verdict.grader,
        "value": verdict.value,
        "dataType": "BOOLEAN",
        "comment": verdict.reason or None,
        "metadata": verdict.metadata(),
    }
    if verdict.environment and _LANGFUSE_ENVIRONMENT.match(verdict.environment):
        score["environment"] = verdict.environment
    return score


class _BraintrustSender(_Sender):
    def __init__(self, config: BraintrustSourceConfig) -> None:
        self.api = BraintrustApi(config)

    def send(self, batch: list[VerdictToExport], result: DestinationExport
             ) -> list[tuple[VerdictToExport, str]]:
        ready = []
        for verdict in batch:
            if verdict.row_id:
                ready.append(verdict)
            else:
                result.skipped += 1
                _note(result, verdict, "the span has no Braintrust row id")
        if not ready:
            return []
        try:
            self.api.feedback([braintrust_feedback(v) for v in ready])
            return [(v, v.row_id or "") for v in ready]
        except RemoteRejected as error:
            if error.refuses_the_client:  # a wrong key or project: one by one would fail alike
                self.error = error
                return []
            # One bad item refuses the batch; send them one by one to keep the good ones.
            return self._one_by_one(ready, result)

    def _one_by_one(self, verdicts: list[VerdictToExport], result: DestinationExport
                    ) -> list[tuple[VerdictToExport, str]]:
        accepted = []
        for verdict in verdicts:
            try:
                self.api.feedback([braintrust_feedback(verdict)])
            except RemoteRejected as error:
                if error.refuses_the_client:
                    self.error = error
                    break
                result.rejected += 1
                _note(result, verdict, str(error))
                continue
            except RemoteError as error:
                self.error = error
                break
            accepted.append((verdict, verdict.row_id or ""))
        return accepted

    def close(self) -> None:
        self.api.close()


def braintrust_feedback(verdict: VerdictToExport) -> dict[str, Any]:
    """A feedback item for ``POST /v1/project_logs/{project_id}/feedback``."""
    return {
        "id": verdict.row_id,
        "scores": {verdict.grader: verdict.value},
        "comment": verdict.reason or None,
        "metadata": verdict.metadata(),
        "source": "api",
    }
