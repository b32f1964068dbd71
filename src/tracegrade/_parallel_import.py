"""Import one file of independent lines with worker processes that map, grade and write.

Decoding, mapping, serialising and grading a span costs several times what writing it does,
and all of it is interpreter-bound, so an import uses one process per CPU. The file is cut into
chunks of whole lines; each worker maps and grades its chunk, then writes it to the store
itself, in its own transaction, when its turn comes: chunks commit in file order, as an
in-process import would; a copy of a span that a later line repeats is left out (see
:func:`~tracegrade.sources.files.later_copies`), so the file's last copy wins wherever it
lies. The parent only cuts the file and tallies what the workers report, in order.

Kill safety is the in-process import's: each chunk's spans and verdicts commit together, and a
re-import of the same file skips what is already stored.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event

from tracegrade._gc import between_batches, start_bulk_worker
from tracegrade._workers import exit_with
from tracegrade.grading import BatchGrader, BatchGraderSpec, GradeSummary, InlineGrading
from tracegrade.sources._base import IngestProblem, MappingOptions
from tracegrade.sources.conventions import DEFAULT_MAX_ATTRIBUTE_BYTES
from tracegrade.sources.files import (
    READ_ERRORS,
    LineMapper,
    SpanKey,
    is_compressed,
    open_lines,
    skip_earlier_copies,
)
from tracegrade.spans import Span, utc_now
from tracegrade.store import Store, UpsertCounts, open_store
from tracegrade.store._fast import db_time
from tracegrade.store._store import BUSY_TIMEOUT_MS, PreparedBatch, prepare_batch

CHUNK_BYTES = 8 * 1024 * 1024
"""Bytes of lines a worker takes at a time (a longer line goes alone). Each chunk is one
transaction: at 4 MB the same index pages were rewritten twice as often (the 200k-span
import took ~10% longer); at 16 MB the two workers' peak memory rose by 50 MB."""

_TURN_POLL_S = 0.5


class ImportAborted(Exception):
    """Another chunk failed to write, so this one was not written (the import stops)."""


@dataclass(frozen=True)
class _Chunk:
    index: int
    start: int = 0
    """Byte range of the chunk in an uncompressed file (or where its lines start in a
    decompressed one) …"""
    end: int = 0
    lines: list[bytes] | None = None
    """… or its lines, read by the parent from a compressed one (each with its newline)."""


@dataclass
class ChunkReport:
    """What a worker did with one chunk."""

    lines: int = 0
    spans: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    """(line number within the chunk, from 1; reason)."""
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    grading: GradeSummary | None = None


@dataclass(frozen=True)
class _Setup:
    path: Path
    mapper: LineMapper
    later: dict[SpanKey, int]
    """Repeated keys and the offset of the last line holding each."""
    options: MappingOptions
    store_url: str
    grading: BatchGraderSpec | None


class _Worker:
    """One worker process's state: its own store connection, grader and the write turn."""

    def __init__(self, setup: _Setup, turn: Any, aborted: Any, condition: Any) -> None:
        self.setup, self.turn, self.aborted, self.condition = setup, turn, aborted, condition
        self.store = open_store(setup.store_url, migrate=False)
        if self.store.dialect == "sqlite":
            # The parent checkpoints (see WalCheckpointer): here a commit would do it while
            # holding the write turn, and the other workers would wait on its fsync.
            event.listen(self.store.engine, "connect", _no_autocheckpoint)
            self.store.engine.dispose()
        self.grader = BatchGrader.from_spec(setup.grading) if setup.grading else None

    def run(self, chunk: _Chunk) -> ChunkReport:
        report = ChunkReport()
        prepared = self._prepare(chunk, report)
        if self.grader is not None:  # this chunk's tally goes back with it
            report.grading = self.grader.summary
            self.grader.summary = GradeSummary(run_id=report.grading.run_id)
        with self.condition:
            while self.turn.value != chunk.index:
                if self.aborted.value:
                    raise ImportAborted("an earlier chunk failed to write")
                self.condition.wait(_TURN_POLL_S)
            try:
                report.counts = self.store.write_prepared(prepared)
            except BaseException:
                self.aborted.value = 1
                raise
            finally:
                self.turn.value += 1
                self.condition.notify_all()
        return report

    def _prepare(self, chunk: _Chunk, report: ChunkReport) -> PreparedBatch:
        """Map, serialise and grade the chunk line by line, while each line's data is fresh.

        Turning a line's spans into rows right after mapping them, rather than once the whole
        chunk is mapped, reads their values while they are still in the CPU's caches, and only
        the rows are kept, not the spans. A span repeated across lines of the chunk must be
        written and graded once, as its last copy: that rare chunk is mapped again and
        prepared as one batch.
        """
        prepared = PreparedBatch({}, [])
        grader, dialect = self.grader, self.store.dialect
        stamp = db_time(utc_now(), dialect)
        for _, mapped in self._mapped_lines(chunk, report):
            report.spans += len(mapped)
            batch = prepare_batch(mapped, grader, dialect, stamp)
            if not batch.rows.keys().isdisjoint(prepared.rows):
                return self._prepare_as_one(chunk, report, stamp)
            prepared.merge(batch)
        return prepared

    def _prepare_as_one(self, chunk: _Chunk, report: ChunkReport, stamp: Any) -> PreparedBatch:
        """The chunk prepared as one batch, mapped again (its problems are already noted)."""
        if self.grader is not None:  # forget the tally of the copies graded so far
            self.grader.summary = GradeSummary(run_id=self.grader.summary.run_id)
        problems, report.problems = report.problems, []
        report.spans = 0
        spans: list[Span] = []
        for _, mapped in self._mapped_lines(chunk, report):
            report.spans += len(mapped)
            spans.extend(mapped)
        report.problems = problems
        return prepare_batch(spans, self.grader, self.store.dialect, stamp)

    def _mapped_lines(self, chunk: _Chunk, report: ChunkReport
                      ) -> Iterator[tuple[int, list[Span]]]:
        """Each line's spans, without the copies a later line repeats; problems go to report."""
        mapper, options, later = self.setup.mapper, self.setup.options, self.setup.later
        offset = chunk.start
        # Split lines lost their newline; a compressed chunk's kept theirs.
        newline = 0 if chunk.lines is not None else 1
        for number, line in enumerate(self._lines(chunk), start=1):
            report.lines = number
            line_offset, offset = offset, offset + len(line) + newline
            if not line.strip():
                continue
            mapped: list[Span] = []
            for record in mapper(line, "", options, DEFAULT_MAX_ATTRIBUTE_BYTES):
                if isinstance(record, IngestProblem):
                    report.problems.append((number, record.reason))
                else:
                    mapped.append(record)
            if later:
                mapped = skip_earlier_copies(mapped, line_offset, later)
            yield number, mapped

    def _lines(self, chunk: _Chunk) -> list[bytes]:
        if chunk.lines is not None:
            return chunk.lines
        with self.setup.path.open("rb") as stream:
            stream.seek(chunk.start)
            data = stream.read(chunk.end - chunk.start)
        # Lines end at "\n" only, as iterating the file gives them (a "\r" is whitespace).
        lines = data.split(b"\n")
        if lines and not lines[-1]:
            lines.pop()
        return lines


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class WalCheckpointer:
    """Checkpoints a SQLite store's WAL from the parent while the workers write.

    A commit that crosses SQLite's automatic checkpoint threshold copies the WAL back into the
    database and syncs both files before it returns; in a worker that happens inside its write
    turn, so every other worker with a chunk ready waits on the disk (a fifth of the workers'
    time in a 200k-span import). The workers turn that off, and the parent checkpoints after
    every :data:`CHECKPOINT_EVERY` chunks written: first PASSIVE, which copies the WAL back
    alongside the writer, then RESTART, which copies what was committed meanwhile (waiting for
    the current writer, if any) so that the next writer starts the WAL again from its start.
    A PASSIVE checkpoint alone never caught up with the workers: the WAL grew to 3 GB in a
    200k-span import, every page written to new file blocks, and the import took ~15% longer.

    The WAL file's size cannot say when: a checkpoint does not shrink it (writers reuse it from
    the start), and a URI-style store URL does not name it.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.written = 0

    def __call__(self) -> None:
        """Count a written chunk; checkpoint every :data:`CHECKPOINT_EVERY`."""
        if self.store.dialect != "sqlite":
            return
        self.written += 1
        if self.written % CHECKPOINT_EVERY == 0:
            with self.store.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                # RESTART holds off writers while it waits for readers: a reader in another
                # process (a report, say) must not stall the import, so it waits briefly and
                # otherwise leaves the restart to the next checkpoint.
                conn.exec_driver_sql(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
                try:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(RESTART)")
                finally:
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


CHECKPOINT_EVERY = 5
"""Chunks (of :data:`CHUNK_BYTES`) written between the parent's checkpoints."""

RESTART_WAIT_MS = 2000
"""How long the parent's RESTART checkpoint waits for the writer and readers."""

_worker: _Worker | None = None


def _start_worker(setup: _Setup, turn: Any, aborted: Any, condition: Any, parent: int) -> None:
    global _worker
    start_bulk_worker()
    exit_with(parent)
    _worker = _Worker(setup, turn, aborted, condition)


def _run_chunk(chunk: _Chunk) -> ChunkReport:
    assert _worker is not None, "worker not started"
    try:
        return _worker.run(chunk)
    finally:
        between_batches()


def can_fork() -> bool:
    """Whether workers can be forked safely (a process with other threads running cannot)."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def import_with_workers(
    store: Store,
    path: Path,
    mapper: LineMapper,
    later: dict[SpanKey, int],
    options: MappingOptions,
    workers: int,
    grade: InlineGrading | None,
    on_report: Callable[[ChunkReport], None],
    on_problem: Callable[[IngestProblem], None],
) -> None:
    """Import ``path`` with ``workers`` processes; reports come back in file order.

    ``later`` is :func:`~tracegrade.sources.files.later_copies` of the file. ``on_report``
    gets each chunk's report; ``on_problem`` each problem, located in the file.

    Raises:
        Whatever a worker's write raised (chunks before it are committed, none after it).
    """
    setup = _Setup(path, mapper, later, options,
                   store.engine.url.render_as_string(hide_password=False),
                   grade.batch.spec() if grade is not None and grade.graders else None)
    # Forking is instant and shares what this process imported; a fresh interpreter (spawn)
    # takes seconds to import tracegrade, but is the only safe way when threads are running.
    context = multiprocessing.get_context("fork" if can_fork() else "spawn")
    condition = context.Condition()
    turn, aborted = context.Value("q", 0, lock=False), context.Value("b", 0, lock=False)
    line_base = 0
    pending: deque[Future[ChunkReport]] = deque()
    checkpoint = WalCheckpointer(store)

    def absorb(future: Future[ChunkReport]) -> None:
        nonlocal line_base
        report = future.result()
        for number, reason in report.problems:
            on_problem(IngestProblem(f"{path}:{line_base + number}", reason))
        on_report(report)
        line_base += report.lines
        checkpoint()

    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(setup, turn, aborted, condition, os.getpid())) as executor:
        try:
            for chunk in _chunks(path, on_problem):
                pending.append(executor.submit(_run_chunk, chunk))
                if len(pending) > 2 * workers:  # a few chunks in flight bound the memory
                    absorb(pending.popleft())
            while pending:
                absorb(pending.popleft())
        except BaseException:
            aborted.value = 1
            for future in pending:
                future.cancel()
            raise


def _chunks(path: Path, on_problem: Callable[[IngestProblem], None]) -> Iterator[_Chunk]:
    if is_compressed(path):
        yield from _line_chunks(path, on_problem)
        return
    size = path.stat().st_size
    start = index = 0
    with path.open("rb") as stream:
        while start < size:
            stream.seek(min(start + CHUNK_BYTES, size))
            stream.readline()  # the chunk ends with the line it cut through
            end = min(stream.tell(), size)
            yield _Chunk(index, start, end)
            start, index = end, index + 1


def _line_chunks(path: Path, on_problem: Callable[[IngestProblem], None]) -> Iterator[_Chunk]:
    lines: list[bytes] = []
    size = index = read = start = 0
    try:
        for read, line in open_lines(path):  # noqa: B007 - ``read`` locates a read error
            lines.append(line)
            size += len(line)
            if size >= CHUNK_BYTES:
                yield _Chunk(index, start, lines=lines)
                lines, start, size, index = [], start + size, 0, index + 1
    except READ_ERRORS as error:
        if lines:
            yield _Chunk(index, start, lines=lines)
            lines = []
        on_problem(IngestProblem(f"{path}:{read + 1}", f"cannot read the file: {error}"))
    if lines:
        yield _Chunk(index, start, lines=lines)
