"""The Store API: spans in, verdicts in, aggregates out. SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Engine,
    Row,
    and_,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from tracegrade._gc import between_batches
from tracegrade.spans import Span, SpanKind, natural_key, utc_now
from tracegrade.store import _fast
from tracegrade.store import _schema as t

DEFAULT_URL = "sqlite:///.tracegrade/tracegrade.db"


class StoreError(Exception):
    """The store cannot be opened or written; the message says what to fix."""


@dataclass
class UpsertCounts:
    """How a batch of spans landed: new, changed, or identical to what was stored."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    verdicts: int = 0
    """Verdicts written with the spans (when they were graded while being written)."""
    regraded: int = 0
    """Updated spans whose graded content changed: their old verdicts were dropped, so the
    next grading (or this write's, when graded while written) grades them again."""

    def add(self, other: UpsertCounts) -> None:
        """Accumulate another batch's counts."""
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.verdicts += other.verdicts
        self.regraded += other.regraded


@dataclass(frozen=True)
class VerdictRow:
    """One verdict as written to the store."""

    source: str
    span_id: str
    grader: str
    grader_version: str
    outcome: str
    reason: str
    inclusion_probability: float
    run_id: str
    score: float | None = None
    cost: float | None = None
    latency_ms: float | None = None
    details: dict[str, Any] | None = None
    """Grader-specific facts worth keeping (a judge's raw answer, few-shot label ids…)."""


GradeBatch = Callable[[Sequence[Span]], list[VerdictRow]]
"""Grades a batch of spans as it is written; its verdicts commit with the spans."""


@dataclass
class PreparedBatch:
    """A batch of spans as rows ready to write (see :func:`prepare_batch`)."""

    rows: dict[tuple[str, str], tuple[tuple[Any, ...], str]]
    """Each key's span row and content hash, the newest copy of a repeated key."""
    verdicts: list[tuple[Any, ...]]
    """Verdict rows to insert with the spans."""

    def merge(self, other: PreparedBatch) -> None:
        """Add a later batch: a key in both keeps the later copy."""
        self.rows.update(other.rows)
        self.verdicts.extend(other.verdicts)


def prepare_batch(batch: Sequence[Span], grade: GradeBatch | None, dialect: str,
                  stamp: Any = None) -> PreparedBatch:
    """Serialise and hash a batch, and grade it when ``grade`` is given.

    This is the CPU-bound half of a write, kept apart from the store so that worker processes
    can do it (the receiver's, whose parent then writes; see :mod:`tracegrade.server`).
    ``stamp`` is the write time as :func:`_fast.db_time` gives it (default: now), for parts of
    one batch prepared separately.
    """
    if stamp is None:
        stamp = _fast.db_time(utc_now(), dialect)
    latest = {(s.source, s.span_id): s for s in batch}
    rows = {key: _fast.span_values(s, stamp, dialect) for key, s in latest.items()}
    verdicts = grade(list(latest.values())) if grade is not None else []
    return PreparedBatch(rows, [_fast.verdict_values(row, stamp) for row in verdicts])


BOOKKEEPING_ATTRIBUTES = frozenset({"langfuse.updated_at", "braintrust.xact_id",
                                    "braintrust.scores"})
"""Attributes a source changes without the application's behaviour changing (a version
stamp, scores that evaluators and tracegrade's own export log on the row). A span updated only
in these keeps its verdicts; anything else changing drops them so the span is graded again."""

_UNGRADED_COLUMNS = frozenset({"content_hash", "ingested_at", "updated_at"})


def _graded_content_changed(conn: Any, dialect: str, keys: list[tuple[str, str]],
                            rows: dict[tuple[str, str], tuple[tuple[Any, ...], str]]
                            ) -> list[tuple[str, str]]:
    """The updated spans whose content, bookkeeping aside, differs from the stored copy."""
    stale = []
    for source, span_ids in _fast.by_source(keys).items():
        for chunk in _fast.chunks(span_ids, 500):
            sql = (f"SELECT {', '.join(_fast.SPAN_COLUMNS)} FROM spans WHERE source = "
                   f"{_fast.placeholder(dialect)} AND span_id IN "
                   f"({', '.join([_fast.placeholder(dialect)] * len(chunk))})")
            for record in conn.exec_driver_sql(sql, (source, *chunk)):
                key = (source, record[1])
                old = _graded_content(record, dialect, stored=True)
                if old != _graded_content(rows[key][0], dialect, stored=False):
                    stale.append(key)
    return stale


def _graded_content(values: Sequence[Any], dialect: str, *, stored: bool) -> dict[str, Any]:
    content = {}
    for column, value in zip(_fast.SPAN_COLUMNS, values, strict=True):
        if column in _UNGRADED_COLUMNS:
            continue
        if column in ("input", "output", "tags", "attributes"):
            # What is written is JSON text; what comes back is text on SQLite (or a number,
            # which its column affinity already decoded) and decoded values on PostgreSQL.
            if not stored or dialect == "sqlite":
                value = _fast.read_json(value)
        if column == "attributes" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in BOOKKEEPING_ATTRIBUTES}
        content[column] = value
    return content


_HASH_AT = _fast._READ_COLUMNS.index("content_hash")

WRITE_LOCK = 0x7472_6377  # "trcw"
"""The PostgreSQL advisory lock a batch of spans holds while it is written."""


def _current_hashes(conn: Any, dialect: str, keys: list[tuple[str, str]]
                    ) -> dict[tuple[str, str], str]:
    """The stored content hash of each span; on PostgreSQL the rows stay share-locked until the
    transaction ends, so an import changing them waits for it (and then drops its verdicts)."""
    found: dict[tuple[str, str], str] = {}
    ph = _fast.placeholder(dialect)
    lock = " FOR SHARE" if dialect == "postgresql" else ""
    for source, span_ids in _fast.by_source(keys).items():
        for chunk in _fast.chunks(span_ids, 500):
            sql = (f"SELECT span_id, content_hash FROM spans WHERE source = {ph} AND span_id "
                   f"IN ({', '.join([ph] * len(chunk))}){lock}")
            found.update(((source, str(span_id)), str(content_hash))
                         for span_id, content_hash in conn.exec_driver_sql(sql, (source, *chunk)))
    return found


def _drop_run_verdicts(conn: Any, run_id: str, keys: list[tuple[str, str]]) -> int:
    """Delete one run's verdicts on these spans; how many."""
    v = t.verdicts.c
    dropped = 0
    for source, span_ids in _fast.by_source(keys).items():
        for chunk in _fast.chunks(span_ids, 500):
            dropped += int(conn.execute(t.verdicts.delete().where(
                v.run_id == run_id, v.source == source, v.span_id.in_(list(chunk)))).rowcount)
    return dropped


def _forget_verdicts(conn: Any, keys: list[tuple[str, str]]) -> None:
    """Drop the verdicts (and their export records) of spans whose content changed."""
    for source, span_ids in _fast.by_source(keys).items():
        for chunk in _fast.chunks(span_ids, 500):
            for table in (t.verdicts, t.exports):
                conn.execute(table.delete().where(table.c.source == source,
                                                  table.c.span_id.in_(list(chunk))))


@dataclass
class StoredSpan:
    """A span read back from the store, with its row id (used for keyset paging)."""

    pk: int
    span: Span
    content_hash: str | None = None
    """The stored content's hash when read (a verdict is kept only if it is still the same)."""


class Store:
    """tracegrade's store; :func:`open_store` opens it and migrates it to the latest schema."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = engine.url

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def close(self) -> None:
        """Release every connection."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- spans ---------------------------------------------------------------------------------

    def upsert_spans(self, spans: Iterable[Span], batch_size: int = 2000,
                     grade: GradeBatch | None = None) -> UpsertCounts:
        """Write spans idempotently on ``(source, span_id)``; a changed span replaces the old one.

        Each batch commits on its own, so an interrupted import keeps what it wrote. With
        ``grade``, each batch's verdicts commit with it (see :meth:`write_span_batch`).
        """
        counts = UpsertCounts()
        batch: list[Span] = []
        for span in spans:
            batch.append(span)
            if len(batch) >= batch_size:
                counts.add(self.write_span_batch(batch, grade))
                batch = []
                between_batches()
        if batch:
            counts.add(self.write_span_batch(batch, grade))
        return counts

    def write_span_batch(self, batch: Sequence[Span],
                         grade: GradeBatch | None = None) -> UpsertCounts:
        """Write one batch in one transaction; the newest copy of a repeated key wins.

        ``grade``, when given, is called with the batch's spans (one per key) and the verdicts
        it returns are inserted in the same transaction, ignoring any already stored.
        """
        return self.write_prepared(prepare_batch(batch, grade, self.dialect))

    def write_prepared(self, prepared: PreparedBatch) -> UpsertCounts:
        """Write a batch :func:`prepare_batch` made, in one transaction."""
        counts = UpsertCounts()
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Writers take turns, as SQLite's write lock makes them: two imports of one
                # span read "not stored yet" under READ COMMITTED, both counted it inserted,
                # and the verdicts graded on the first one's content survived the second's.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            existing = _fast.stored_hashes(conn, self.dialect, list(prepared.rows))
            changed = []
            updated: list[tuple[str, str]] = []
            for key, (values, content_hash) in prepared.rows.items():
                previous = existing.get(key)
                if previous == content_hash:
                    counts.unchanged += 1
                    continue
                if previous is None:
                    counts.inserted += 1
                else:
                    counts.updated += 1
                    updated.append(key)
                changed.append(values)
            stale = (_graded_content_changed(conn, self.dialect, updated, prepared.rows)
                     if updated else [])
            counts.regraded = len(stale)
            if changed:
                conn.exec_driver_sql(_fast.span_upsert_sql(self.dialect), changed)
            # After the upsert: on PostgreSQL it waits for a `grade` holding these spans (see
            # insert_verdicts), so this delete sees the verdicts that grade committed.
            _forget_verdicts(conn, stale)
            if prepared.verdicts:
                result = conn.exec_driver_sql(_fast.verdict_insert_sql(self.dialect),
                                              prepared.verdicts)
                counts.verdicts = int(result.rowcount)
        return counts

    def spans_page(
        self, after_pk: int, limit: int, kinds: Sequence[SpanKind] | None = None
    ) -> list[StoredSpan]:
        """Spans with row id above ``after_pk`` in id order: keyset paging that never skips."""
        sql, kind_params = _fast.spans_page_sql(self.dialect, kinds)
        with self.engine.connect() as conn:
            records = conn.exec_driver_sql(sql, (after_pk, *kind_params, limit)).all()
        return [StoredSpan(*_fast.span_from_record(record, self.dialect),
                           content_hash=record[_HASH_AT]) for record in records]

    def iter_spans(
        self, kinds: Sequence[SpanKind] | None = None, page_size: int = 2000
    ) -> Iterator[StoredSpan]:
        """Every stored span, streamed page by page."""
        after = 0
        while page := self.spans_page(after, page_size, kinds):
            yield from page
            after = page[-1].pk

    def trace_spans(self, source: str, trace_id: str) -> list[Span]:
        """Every stored span of one trace, in start order."""
        query = (
            select(t.spans)
            .where(and_(t.spans.c.source == source, t.spans.c.trace_id == trace_id))
            .order_by(t.spans.c.start_time)
        )
        with self.engine.connect() as conn:
            return [span_from_row(row) for row in conn.execute(query)]

    def get_span(self, source: str, span_id: str) -> Span | None:
        """One span by its key, or None."""
        query = select(t.spans).where(
            and_(t.spans.c.source == source, t.spans.c.span_id == span_id)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return span_from_row(row) if row else None

    def count_spans(self) -> int:
        """How many spans the store holds."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.spans)).scalar_one())

    def span_counts(self) -> list[dict[str, Any]]:
        """Span counts per release, kind and source, with time ranges."""
        s = t.spans.c
        query = (
            select(s.release, s.kind, s.source, func.count().label("spans"),
                   func.min(s.start_time).label("first"), func.max(s.start_time).label("last"))
            .group_by(s.release, s.kind, s.source)
            .order_by(func.min(s.start_time), s.kind, s.source)
        )
        with self.engine.connect() as conn:
            return [{str(k): v for k, v in row._mapping.items()} for row in conn.execute(query)]

    def releases(self) -> list[str]:
        """Every release spans name, in the order each first appeared (by start time)."""
        s = t.spans.c
        query = (select(s.release, func.min(s.start_time)).where(s.release.is_not(None))
                 .group_by(s.release))
        with self.engine.connect() as conn:
            rows = [(str(release), start) for release, start in conn.execute(query)]
        return [release for release, _ in sorted(rows, key=lambda row: (row[1],
                                                                      natural_key(row[0])))]

    def environments(self) -> list[str]:
        """Every environment spans name, sorted."""
        s = t.spans.c
        query = (select(s.environment).where(s.environment.is_not(None))
                 .group_by(s.environment).order_by(s.environment))
        with self.engine.connect() as conn:
            return [str(environment) for environment in conn.execute(query).scalars()]

    def span_group_counts(self) -> list[tuple[str | None, str, str, int]]:
        """``(release, name, kind, spans)`` for every combination in the store."""
        s = t.spans.c
        query = select(s.release, s.name, s.kind, func.count()).group_by(s.release, s.name,
                                                                         s.kind)
        with self.engine.connect() as conn:
            return [(row[0], str(row[1]), str(row[2]), int(row[3]))
                    for row in conn.execute(query)]

    # -- graders and verdicts ------------------------------------------------------------------

    def register_grader(self, name: str, version: str, type_name: str,
                        config: dict[str, Any]) -> None:
        """Record a grader version's config once (never overwritten)."""
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        statement = dialect_insert(t.graders).values(
            name=name, version=version, type=type_name, config=config, created_at=utc_now()
        ).on_conflict_do_nothing(index_elements=["name", "version"])
        with self.engine.begin() as conn:
            conn.execute(statement)

    def graded_keys(
        self, keys: Sequence[tuple[str, str]], grader_versions: Sequence[tuple[str, str]]
    ) -> set[tuple[str, str, str, str]]:
        """Which (source, span_id, grader, version) of these spans already have a verdict."""
        if not keys or not grader_versions:
            return set()
        with self.engine.connect() as conn:
            return _fast.graded(conn, self.dialect, keys, set(grader_versions))

    def graded_probabilities(
        self, keys: Sequence[tuple[str, str]], grader_versions: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str, str, str], float]:
        """The stored inclusion probability of each (source, span_id, grader, version) of
        these spans that has a verdict."""
        if not keys or not grader_versions:
            return {}
        with self.engine.connect() as conn:
            return _fast.graded_probabilities(conn, self.dialect, keys, set(grader_versions))

    def raise_inclusion_probabilities(
        self, raised: Sequence[tuple[str, str, str, str, float]]
    ) -> int:
        """Set the inclusion probability of stored verdicts, given as (source, span_id,
        grader, version, probability), where it is lower; returns how many changed.

        A span graded at a lower probability is in every later run's sample that uses a
        higher one (the same hash number decides), so its probability of being in the
        sample as it now stands is the highest any run gave it.
        """
        if not raised:
            return 0
        ph = _fast.placeholder(self.dialect)
        sql = (f"UPDATE verdicts SET inclusion_probability = {ph} WHERE source = {ph} AND "
               f"span_id = {ph} AND grader = {ph} AND grader_version = {ph} "
               f"AND inclusion_probability < {ph}")
        # An export of the verdict carried the old probability: it is sent again.
        unexport = (f"DELETE FROM exports WHERE source = {ph} AND span_id = {ph} "
                    f"AND grader = {ph} AND grader_version = {ph}")
        with self.engine.begin() as conn:
            changed = int(conn.exec_driver_sql(sql, [
                (p, source, span_id, grader, version, p)
                for source, span_id, grader, version, p in raised]).rowcount)
            conn.exec_driver_sql(unexport, [key[:4] for key in raised])
        return changed

    def insert_verdicts(self, rows: Sequence[VerdictRow],
                        graded: Mapping[tuple[str, str], str | None] | None = None) -> int:
        """Insert verdicts in one transaction, ignoring ones already stored; returns how many.

        ``graded``: the content hash of each span as it was read to grade it. A verdict whose
        span changed since (an import of new content ran meanwhile) is not kept: it describes
        content the store no longer holds, and the next run grades the new one.
        """
        if not rows:
            return 0
        created_at = _fast.db_time(utc_now(), self.dialect)
        values = [_fast.verdict_values(row, created_at) for row in rows]
        if graded is None:
            return self.write_prepared(PreparedBatch({}, values)).verdicts
        with self.engine.begin() as conn:
            # The insert first: on SQLite it takes the write lock, so the check below sees
            # every import that committed before these verdicts can.
            written = int(conn.exec_driver_sql(_fast.verdict_insert_sql(self.dialect),
                                               values).rowcount)
            keys = list(dict.fromkeys((row.source, row.span_id) for row in rows))
            current = _current_hashes(conn, self.dialect, [k for k in keys if k in graded])
            changed = [k for k in keys if k in graded and current.get(k) != graded[k]]
            if changed:
                written -= _drop_run_verdicts(conn, rows[0].run_id, changed)
        return written

    def count_verdicts(self, run_id: str | None = None) -> int:
        """How many verdicts the store holds (written by one run, given its id)."""
        query = select(func.count()).select_from(t.verdicts)
        if run_id is not None:
            query = query.where(t.verdicts.c.run_id == run_id)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def run_outcomes(self, run_id: str) -> dict[str, Counter[str]]:
        """Per grader, the outcomes of the verdicts one run wrote."""
        v = t.verdicts.c
        query = (select(v.grader, v.outcome, func.count()).where(v.run_id == run_id)
                 .group_by(v.grader, v.outcome))
        outcomes: dict[str, Counter[str]] = {}
        with self.engine.connect() as conn:
            for grader, outcome, count in conn.execute(query):
                outcomes.setdefault(grader, Counter())[outcome] = int(count)
        return outcomes

    def verdict_counts(self, grader_versions: Sequence[tuple[str, str]] | None = None
                       ) -> list[dict[str, Any]]:
        """Per release × grader × version × outcome: verdict count and inverse-probability weight.

        Aggregated in SQL so a million verdicts never pass through Python one by one.
        """
        v, s = t.verdicts.c, t.spans.c
        query = (
            select(s.release, v.grader, v.grader_version, v.outcome,
                   func.count().label("n"),
                   func.sum(1.0 / v.inclusion_probability).label("weight"),
                   func.sum(1.0 / (v.inclusion_probability * v.inclusion_probability))
                   .label("weight_sq"),
                   func.min(s.start_time).label("first"))
            .select_from(t.verdicts.join(
                t.spans, and_(s.source == v.source, s.span_id == v.span_id)))
            .group_by(s.release, v.grader, v.grader_version, v.outcome)
        )
        if grader_versions:
            query = query.where(tuple_(v.grader, v.grader_version).in_(list(grader_versions)))
        with self.engine.connect() as conn:
            return [{str(k): v for k, v in row._mapping.items()} for row in conn.execute(query)]

    def verdict_examples(self, grader: str, grader_version: str, release: str | None,
                         outcome: str, limit: int = 3) -> list[dict[str, Any]]:
        """A few verdicts of one outcome with their span's key and reason."""
        v, s = t.verdicts.c, t.spans.c
        query = (
            select(v.source, v.span_id, v.reason)
            .select_from(t.verdicts.join(
                t.spans, and_(s.source == v.source, s.span_id == v.span_id)))
            .where(v.grader == grader, v.grader_version == grader_version,
                   v.outcome == outcome, s.release == release)
            .order_by(v.id).limit(limit)
        )
        with self.engine.connect() as conn:
            return [{str(k): v for k, v in row._mapping.items()} for row in conn.execute(query)]

    # -- runs ----------------------------------------------------------------------------------

    def start_run(self, command: str) -> str:
        """Record the start of a run, by this host and process, and return its id."""
        run_id = uuid.uuid4().hex[:16]
        with self.engine.begin() as conn:
            conn.execute(insert(t.runs).values(
                run_id=run_id, command=command, started_at=utc_now(), status="running",
                host=socket.gethostname()[:255], pid=os.getpid()))
        return run_id

    def finish_run(self, run_id: str, status: str, counts: dict[str, Any]) -> None:
        """Record how a run ended."""
        with self.engine.begin() as conn:
            conn.execute(update(t.runs).where(t.runs.c.run_id == run_id).values(
                finished_at=utc_now(), status=status, counts=counts))

    def recent_runs(self, limit: int, command: str | None = None) -> list[dict[str, Any]]:
        """The latest ``limit`` runs (of one command, given), newest first, as stored."""
        query = select(t.runs).order_by(t.runs.c.started_at.desc()).limit(limit)
        if command is not None:
            query = query.where(t.runs.c.command == command)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def verdicts_by_run(self, run_ids: Sequence[str]) -> dict[str, int]:
        """How many stored verdicts each of these runs wrote (committed, so kept)."""
        counts: dict[str, int] = {}
        v = t.verdicts.c
        with self.engine.connect() as conn:
            for chunk in _fast.chunks(list(run_ids), 500):
                query = (select(v.run_id, func.count()).where(v.run_id.in_(chunk))
                         .group_by(v.run_id))
                counts.update((run_id, int(n)) for run_id, n in conn.execute(query))
        return counts


def open_store(url: str | None = None, *, migrate: bool = True,
               existing: bool = False) -> Store:
    """Open (and by default migrate) the store at ``url``; the default is a local SQLite file.

    Args:
        url: a SQLAlchemy URL (``postgres://`` and ``postgresql://`` mean psycopg).
        migrate: bring the schema up to date.
        existing: the caller only reads: a database holding no tracegrade store (empty, or
            another application's tables) is an error instead of getting tracegrade's tables.

    Raises:
        StoreError: the URL is malformed, the database cannot be reached, or (``existing``)
            it holds no tracegrade store.
    """
    url = url or DEFAULT_URL
    try:
        engine = _make_engine(url)
    except (ArgumentError, ModuleNotFoundError, ValueError) as exc:
        # ValueError: a port that is no number (`host:/db` from an unset ${PGPORT})
        shown = hide_password(url)
        raise StoreError(f"store URL {shown!r} is not usable: "
                         f"{str(exc).replace(url, shown)}") from exc
    store = Store(engine)
    if migrate:
        try:
            from tracegrade.store._migrate import upgrade

            if existing:
                _require_tracegrade_tables(engine)
            upgrade(engine)
        except StoreError:
            engine.dispose()
            raise
        except OperationalError as exc:
            engine.dispose()
            hint = (": SQLite needs to write the database file and create its -wal and -shm "
                    "files beside it, so both the file and its directory must be writable"
                    if "readonly" in str(exc.orig) else "")
            raise StoreError(f"cannot open store {_safe_url(engine)}: {exc.orig}{hint}") from exc
    return store


def hide_password(url: str) -> str:
    """``url`` with its password shown as ``***`` (for messages), even when it does not parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _PASSWORD.sub(r"\1***@", url)


_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")

CONNECT_TIMEOUT_S = 10
"""How long opening a PostgreSQL connection may take (unless the URL's ``connect_timeout``
says otherwise): a server that accepts and never answers hung every command for good."""


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///~"):  # SQLite itself would open ./~/…
        url = "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).expanduser())
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///").split("?")[0]).parent.mkdir(parents=True,
                                                                         exist_ok=True)
    for scheme in ("postgresql://", "postgres://"):  # postgres:// is Heroku's DATABASE_URL
        if url.startswith(scheme):
            url = "postgresql+psycopg://" + url.removeprefix(scheme)
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql") and "connect_timeout" not in make_url(url).query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    engine = create_engine(url, json_serializer=_dump_json, json_deserializer=_fast.read_json,
                           connect_args=connect_args)
    if engine.dialect.name == "postgresql":
        from psycopg.types.json import set_json_loads

        set_json_loads(orjson.loads)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


BUSY_TIMEOUT_MS = 30000
"""How long a SQLite connection waits for another's lock before giving up."""

PAGE_SIZE = 16384
"""Bytes per page of a SQLite store tracegrade creates."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # First: the journal_mode change below needs a lock too, and without a busy timeout a
    # second process opening a new store while the first creates it fails at once ("database
    # is locked") instead of waiting.
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # Span rows are 1-3 KB: on SQLite's default 4 KB pages a third of the table is slack and
    # every batch writes more pages (twice: to the WAL, then back at the checkpoint). 16 KB
    # pages make a 200k-span store 22% smaller and its writes about a fifth cheaper. Only a new
    # database takes the setting; an existing one keeps the page size it was created with.
    cursor.execute(f"PRAGMA page_size={PAGE_SIZE}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Bulk writes touch index pages all over a large store: a 32 MB page cache (SQLite's default
    # is 2 MB) keeps them from being re-read every batch, and checkpointing every 40 MB of WAL
    # instead of every 4 MB copies a page rewritten by several batches back into the database
    # once. An import of 200k spans spends about 30% less time in system calls.
    cursor.execute("PRAGMA cache_size=-32768")
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.close()


def _require_tracegrade_tables(engine: Engine) -> None:
    """Refuse a database that holds no tracegrade store, before migrating creates one."""
    tables = set(inspect(engine).get_table_names())
    if {"alembic_version", "spans", "verdicts"} <= tables:
        return
    shown = _safe_url(engine)
    if not tables:
        raise StoreError(f"store {shown} holds no tracegrade store yet (an empty database): "
                         "run `tracegrade import` or `pull` first, or point --store / `store:` "
                         "at an existing store")
    listed = ", ".join(sorted(tables)[:5]) + (" …" if len(tables) > 5 else "")
    raise StoreError(f"store {shown} is not a tracegrade store (it holds other tables: "
                     f"{listed}): point --store / `store:` at a tracegrade store, or at a "
                     "database of its own")


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _dump_json(value: Any) -> str:
    return _fast.dump_json(value) or "null"


def span_from_row(row: Row[Any]) -> Span:
    """Rebuild a span from a SQLAlchemy row of ``spans`` (values already decoded)."""
    return _fast.span_from_values(row._mapping)
