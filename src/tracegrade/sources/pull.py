"""Incremental pulls: read each configured source from where it left off, exactly once.

Each pulled source has a row in ``source_cursors``: its ``watermark`` (everything that started
before it has been read) and, while a pull is under way, its checkpoint (the window being read
and the remote cursor after the last committed page). A pull:

1. resumes an unfinished window at its checkpoint, else reads ``[watermark - overlap, now)``
   (``--since``/``--until`` choose the window instead; the first pull reads all history);
2. commits each page's spans, then saves the page's cursor: a killed pull re-reads at most the
   page it was on, which the idempotent upsert absorbs;
3. keeps the newest version of every span: a copy older than the stored one (by Langfuse's
   ``updatedAt`` or Braintrust's ``_xact_id``) is dropped;
4. on completion moves the watermark to the window's end and clears the checkpoint. A failed
   request leaves the checkpoint where it was, so the next pull resumes there.

The overlap (15 minutes by default) re-reads recent data on every pull because these services
ingest late: a span that arrives within the overlap is picked up by the next pull.

Trace files configured as ``otlp_file``/``jsonl`` sources are re-imported (idempotently).
"""

from __future__ import annotations

import glob
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from tracegrade._gc import between_batches, bulk_allocation
from tracegrade.config import Config, ConfigError, FileSourceConfig
from tracegrade.ingest import import_files
from tracegrade.sources._base import IngestProblem
from tracegrade.sources._http import RemoteError
from tracegrade.sources._remote import Page, RemoteReader, Window
from tracegrade.sources.braintrust import BraintrustReader, BraintrustSourceConfig
from tracegrade.sources.langfuse import LangfuseReader, LangfuseSourceConfig
from tracegrade.spans import JSONValue, Span, utc_now
from tracegrade.store import Store, UpsertCounts, _fast
from tracegrade.store import _schema as t

ProgressCallback = Callable[[int], None]
"""Called with the number of spans just written (for a progress bar)."""

MAX_PROBLEMS_KEPT = 50
_PREFETCH_PAGES = 2

PULLED_TYPES = (LangfuseSourceConfig, BraintrustSourceConfig)


@dataclass
class SourcePull:
    """What one source's pull did."""

    source: str
    type: str
    api: str | None = None
    windows: list[Window] = field(default_factory=list)
    pages: int = 0
    rows: int = 0
    spans_read: int = 0
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    older_dropped: int = 0
    """Copies of a span older than the one already stored, dropped."""
    skipped: int = 0
    problem_count: int = 0
    problems: list[IngestProblem] = field(default_factory=list)
    watermark: datetime | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "source": self.source,
            "type": self.type,
            "api": self.api,
            "windows": [w.as_dict() for w in self.windows],
            "pages": self.pages,
            "rows": self.rows,
            "spans_read": self.spans_read,
            "inserted": self.counts.inserted,
            "updated": self.counts.updated,
            "unchanged": self.counts.unchanged,
            "regraded": self.counts.regraded,
            "older_dropped": self.older_dropped,
            "skipped": self.skipped,
            "bad_records": self.problem_count,
            "problems": [{"location": p.location, "reason": p.reason} for p in self.problems],
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "error": self.error,
        }


@dataclass
class PullSummary:
    """What a pull of one or more sources did."""

    sources: list[SourcePull] = field(default_factory=list)

    @property
    def failed(self) -> list[SourcePull]:
        """The sources whose pull stopped on an error."""
        return [s for s in self.sources if s.error]

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {"sources": [s.as_dict() for s in self.sources],
                "ok": not self.failed}


def pull_sources(
    store: Store,
    config: Config,
    names: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: ProgressCallback | None = None,
) -> PullSummary:
    """Pull every configured source (or the ``names`` ones) into the store, incrementally.

    Args:
        store: Where spans and cursors are written.
        config: The configuration naming the sources.
        names: Only these sources; every pullable one when ``None`` or empty.
        since: Backfill from this instant instead of the watermark (minus the overlap).
        until: Read only spans that started before this instant (default: now).
        progress: Called with the number of spans written after each page.

    Returns:
        Per source: the windows read, pages, counts, problems, new watermark, or its error.
        A source's failure (say the service is down) is recorded and the others go on.

    Raises:
        ConfigError: a name is not a configured source, or names a source that cannot be
            pulled (``otlp`` receivers are fed by ``tracegrade serve``), or since >= until, or
            since/until are given while a file source is selected.
    """
    # Nothing has started after now: a later --until (a typo in the year) would move the
    # watermark into the future, and every later pull would ask for an empty window.
    until = min(until, utc_now()) if until is not None else None
    if since and until and since >= until:
        raise ConfigError(f"--since ({since.isoformat()}) must be before --until "
                          f"({until.isoformat()})")
    selected = _selected(config, names)
    files = [s.name for s in selected if isinstance(s, FileSourceConfig)]
    if files and (since or until):
        raise ConfigError(
            f"--since/--until choose a time window of a remote source, but file source(s) "
            f"{', '.join(files)} are always re-imported whole: pull them without those options, "
            "or name the remote sources to backfill")
    summary = PullSummary()
    run_id = store.start_run("pull")
    status = "failed"
    try:
        for source in selected:
            if isinstance(source, FileSourceConfig):
                summary.sources.append(_pull_files(store, config, source, progress))
            else:
                summary.sources.append(_pull_remote(store, source, since, until, progress))
        status = "failed" if summary.failed else "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        store.finish_run(run_id, status, summary.as_dict())
    return summary


def make_reader(source: LangfuseSourceConfig | BraintrustSourceConfig) -> RemoteReader:
    """The reader for a configured remote source."""
    if isinstance(source, LangfuseSourceConfig):
        return LangfuseReader(source)
    return BraintrustReader(source)


def _selected(config: Config, names: Sequence[str] | None) -> list[Any]:
    chosen = _chosen(config, names)
    config.require_sources(s.name for s in chosen)
    return chosen


def _chosen(config: Config, names: Sequence[str] | None) -> list[Any]:
    configured = {source.name: source for source in config.sources}
    if not names:
        return [s for s in config.sources if isinstance(s, (*PULLED_TYPES, FileSourceConfig))]
    chosen = []
    for name in names:
        source = configured.get(name)
        if source is None:
            known = ", ".join(sorted(configured)) or "none configured"
            raise ConfigError(f"no source named {name!r} in the config (sources: {known})")
        if not isinstance(source, (*PULLED_TYPES, FileSourceConfig)):
            raise ConfigError(f"source {name!r} is a live receiver: run `tracegrade serve`, "
                              "it is not pulled")
        chosen.append(source)
    return chosen


# -- remote sources ----------------------------------------------------------------------------


def _pull_remote(
    store: Store,
    source: LangfuseSourceConfig | BraintrustSourceConfig,
    since: datetime | None,
    until: datetime | None,
    progress: ProgressCallback | None,
) -> SourcePull:
    result = SourcePull(source=source.name, type=source.type)
    reader = make_reader(source)
    try:
        with bulk_allocation():
            for window, resume in _windows(store, source, since, until):
                result.windows.append(window)
                # A backfill reads without the mark: what lies below it was read by windows
                # that may not have covered the backfill's range.
                reader.mark = load_cursor(store, source.name).mark if since is None else None
                _read_window(store, reader, window, resume, result, progress)
        result.api = reader.api
    except RemoteError as error:
        result.api = reader.api
        result.error = str(error)
    finally:
        reader.close()
        result.watermark = load_cursor(store, source.name).watermark
    return result


def _windows(
    store: Store,
    source: LangfuseSourceConfig | BraintrustSourceConfig,
    since: datetime | None,
    until: datetime | None,
) -> Iterator[tuple[Window, JSONValue]]:
    """The unfinished window (if any) with its cursor, then the window this pull asks for."""
    state = load_cursor(store, source.name)
    overlap = timedelta(minutes=source.overlap_minutes)
    checkpoint = state.checkpoint
    wanted_start = since if since is not None else (
        state.watermark - overlap if state.watermark else None)
    if checkpoint is not None:
        unfinished = checkpoint.window
        # A backfill of a different range replaces the unfinished window: the next plain
        # pull starts again from the watermark, which covers whatever it had not read. The
        # same --since again (without --until, whose "now" moved on) resumes it.
        if (since is None and until is None) or (
                unfinished.start == wanted_start and until in (None, unfinished.end)):
            yield unfinished, checkpoint.resume
            state = load_cursor(store, source.name)
            if until is not None:
                return
            wanted_start = state.watermark - overlap if state.watermark else None
    yield Window(start=wanted_start, end=until or utc_now()), None


def _read_window(store: Store, reader: RemoteReader, window: Window, resume: JSONValue,
                 result: SourcePull, progress: ProgressCallback | None) -> None:
    if resume is None:
        save_checkpoint(store, reader.name, window, None)
    for page in _prefetched(reader.read(window, resume)):
        _commit_page(store, reader, page, result)
        between_batches()
        if page.resume is None:
            finish_window(store, reader.name, window, page.mark)
        else:
            save_checkpoint(store, reader.name, window, page.resume)
        if progress:
            progress(len(page.spans))


def _commit_page(store: Store, reader: RemoteReader, page: Page, result: SourcePull) -> None:
    result.pages += 1
    result.rows += page.rows
    result.skipped += page.skipped
    result.spans_read += len(page.spans)
    result.problem_count += len(page.problems)
    room = MAX_PROBLEMS_KEPT - len(result.problems)
    result.problems.extend(page.problems[:max(room, 0)])
    spans = newest_versions(store, page.spans, reader.version_attribute, reader.version_key)
    result.older_dropped += len(page.spans) - len(spans)
    if spans:
        result.counts.add(store.write_span_batch(spans))


def newest_versions(
    store: Store,
    spans: Sequence[Span],
    attribute: str,
    version_key: Callable[[JSONValue], Any],
) -> list[Span]:
    """The spans that are not older than their stored copy (and one per key, the newest).

    A span without a version (or whose stored copy has none) is kept: the upsert then
    replaces the stored copy if its content changed.
    """
    newest: dict[tuple[str, str], Span] = {}
    for span in spans:
        current = newest.get(span.key)
        if current is None or not _older(span, current, attribute, version_key):
            newest[span.key] = span
    stored = _stored_versions(store, list(newest), attribute)
    return [span for key, span in newest.items()
            if not _older_than(span.attributes.get(attribute), stored.get(key), version_key)]


def _older(span: Span, other: Span, attribute: str, version_key: Callable[[JSONValue], Any]
           ) -> bool:
    return _older_than(span.attributes.get(attribute), other.attributes.get(attribute),
                       version_key)


def _older_than(version: JSONValue, other: JSONValue,
                version_key: Callable[[JSONValue], Any]) -> bool:
    if version in (None, "") or other in (None, ""):
        return False
    try:
        return bool(version_key(version) < version_key(other))
    except (TypeError, ValueError):
        return False


def _stored_versions(store: Store, keys: list[tuple[str, str]], attribute: str
                     ) -> dict[tuple[str, str], JSONValue]:
    """The version attribute of every given span already stored (driver SQL: compiling a
    500-key ``IN`` through SQLAlchemy for each page cost more than the query)."""
    if not keys:
        return {}
    ph = _fast.placeholder(store.dialect)
    if store.dialect == "postgresql":
        expression = f"attributes ->> {ph}"
    else:
        expression = f"json_extract(attributes, {ph})"
        attribute = '$."' + attribute.replace('"', '""') + '"'
    with store.engine.connect() as conn:
        return _fast.stored_values(conn, store.dialect, keys, expression, (attribute,))


def _prefetched(pages: Iterator[Page]) -> Iterator[Page]:
    """Pages fetched ahead in a thread, so the network overlaps the store writes."""
    buffer: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=_PREFETCH_PAGES)
    stop = threading.Event()

    def offer(kind: str, item: Any) -> bool:
        while not stop.is_set():
            try:
                buffer.put((kind, item), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not offer("page", page):
                    return
            offer("end", None)
        except BaseException as error:  # handed to the consumer, which re-raises it
            offer("error", error)

    worker = threading.Thread(target=produce, name="tracegrade-pull-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = buffer.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


# -- cursors -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """An unfinished window and the remote cursor after its last committed page."""

    window: Window
    resume: JSONValue


@dataclass(frozen=True)
class CursorState:
    """A source's row in ``source_cursors``."""

    watermark: datetime | None = None
    checkpoint: Checkpoint | None = None
    mark: JSONValue = None
    """What the reader kept from its last finished window (see :class:`RemoteReader`)."""


def load_cursor(store: Store, source: str) -> CursorState:
    """A source's watermark and unfinished window (both ``None`` before its first pull)."""
    c = t.source_cursors.c
    with store.engine.connect() as conn:
        row = conn.execute(select(c.cursor, c.watermark).where(c.source == source)).first()
    if row is None:
        return CursorState()
    mark = row.cursor.get("mark") if isinstance(row.cursor, dict) else None
    return CursorState(watermark=row.watermark, checkpoint=_checkpoint(row.cursor), mark=mark)


def save_checkpoint(store: Store, source: str, window: Window, resume: JSONValue) -> None:
    """Record that ``window`` is being read and continues after ``resume``."""
    cursor = {"window": {"start": window.start.isoformat() if window.start else None,
                         "end": window.end.isoformat()},
              "resume": resume}
    mark = load_cursor(store, source).mark
    if mark is not None:
        cursor["mark"] = mark
    _write_cursor(store, source, {"cursor": cursor})


def finish_window(store: Store, source: str, window: Window, mark: JSONValue = None) -> None:
    """Clear the checkpoint and move the watermark to the window's end (never backwards).

    ``mark``, when given, replaces the reader's stored mark; otherwise the stored one stays.
    """
    state = load_cursor(store, source)
    mark = mark if mark is not None else state.mark
    values: dict[str, Any] = {"cursor": {"mark": mark} if mark is not None else None}
    advances = state.watermark is None or window.start is None or window.start <= state.watermark
    if advances and (state.watermark is None or window.end > state.watermark):
        values["watermark"] = window.end
    _write_cursor(store, source, values)


def reset_cursor(store: Store, source: str) -> None:
    """Forget a source's watermark and checkpoint: its next pull reads all history again."""
    with store.engine.begin() as conn:
        conn.execute(t.source_cursors.delete().where(t.source_cursors.c.source == source))


def _write_cursor(store: Store, source: str, values: dict[str, Any]) -> None:
    dialect_insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    now = utc_now()
    statement = dialect_insert(t.source_cursors).values(source=source, updated_at=now, **values)
    statement = statement.on_conflict_do_update(
        index_elements=["source"], set_={**values, "updated_at": now})
    with store.engine.begin() as conn:
        conn.execute(statement)


def _checkpoint(cursor: Any) -> Checkpoint | None:
    if not isinstance(cursor, dict) or not isinstance(cursor.get("window"), dict):
        return None
    window = cursor["window"]
    try:
        start = datetime.fromisoformat(window["start"]) if window.get("start") else None
        end = datetime.fromisoformat(window["end"])
    except (KeyError, TypeError, ValueError):
        return None
    return Checkpoint(window=Window(start=start, end=end), resume=cursor.get("resume"))


# -- file sources ------------------------------------------------------------------------------


def _pull_files(store: Store, config: Config, source: FileSourceConfig,
                progress: ProgressCallback | None) -> SourcePull:
    result = SourcePull(source=source.name, type=source.type, api="files")
    paths: list[Path] = []
    for pattern in source.paths:
        matches = sorted(glob.glob(str(Path(pattern).expanduser()), recursive=True))
        paths.extend(Path(match) for match in matches if Path(match).is_file())
    if not paths:
        result.error = f"{source.name}: no file matches {', '.join(source.paths)}"
        return result
    summary = import_files(store, paths, config.mapping(source.name), progress=progress)
    result.spans_read = summary.spans
    result.counts = summary.counts
    result.problem_count = summary.problem_count
    result.problems = summary.problems[:MAX_PROBLEMS_KEPT]
    return result
