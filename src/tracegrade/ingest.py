"""Import trace files into the store: stream, map, write in batches, report bad records."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.pool import AsyncResult
from pathlib import Path

from tracegrade._gc import BULK_THRESHOLD, bulk_allocation
from tracegrade.grading import BatchGrader, BatchGraderSpec, GradeSummary, InlineGrading
from tracegrade.sources._base import IngestProblem, MappingOptions
from tracegrade.sources.conventions import DEFAULT_MAX_ATTRIBUTE_BYTES
from tracegrade.sources.files import READ_ERRORS, LineMapper, line_mapper, open_lines, read_file
from tracegrade.spans import Span
from tracegrade.store import GradeBatch, Store, UpsertCounts
from tracegrade.store._store import PreparedBatch, prepare_batch

ProgressCallback = Callable[[int], None]
"""Called with the number of spans just read (for a progress bar)."""

_PROGRESS_EVERY = 1000

MAX_PROBLEMS_KEPT = 50


@dataclass
class ImportSummary:
    """What an import did: spans written, and the bad records it skipped."""

    files: int = 0
    spans: int = 0
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    problem_count: int = 0
    problems: list[IngestProblem] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "files": self.files,
            "spans_read": self.spans,
            "inserted": self.counts.inserted,
            "updated": self.counts.updated,
            "unchanged": self.counts.unchanged,
            "verdicts": self.counts.verdicts,
            "bad_records": self.problem_count,
            "problems": [{"location": p.location, "reason": p.reason} for p in self.problems],
        }


def import_files(
    store: Store,
    paths: Sequence[Path],
    options: MappingOptions,
    *,
    batch_size: int = 2000,
    on_problem: Callable[[IngestProblem], None] | None = None,
    progress: ProgressCallback | None = None,
    grade: GradeBatch | None = None,
    workers: int | None = None,
) -> ImportSummary:
    """Import every file into the store; bad records are counted and skipped, never fatal.

    ``grade`` (an :class:`~tracegrade.grading.InlineGrading`) grades each batch as it is
    written; its verdicts commit with the batch's spans.

    Files of independent lines (OTLP JSON lines, span JSONL) are mapped by ``workers`` worker
    processes while this one writes, in file order (None: one per CPU, at most
    :data:`MAX_WORKERS`, for files of :data:`PARALLEL_MIN_BYTES` or more, when this process can
    fork safely; 1: never). Each batch still commits on its own, with its verdicts.

    Raises:
        FileNotFoundError: a path does not exist (checked before anything is written).
    """
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
    summary = ImportSummary()
    with bulk_allocation():
        for path in paths:
            mapper = line_mapper(path) if _parallel_wanted(path, workers, grade) else None
            if mapper is not None:
                _import_in_workers(store, path, mapper, options, summary, on_problem, progress,
                                   grade, workers or default_workers())
            else:
                spans = _spans_of(path, options, summary, on_problem, progress)
                summary.counts.add(store.upsert_spans(spans, batch_size=batch_size,
                                                      grade=grade))
            summary.files += 1
    return summary


MAX_WORKERS = 4
"""Worker processes an import uses at most by default: beyond that the writer is the limit."""

PARALLEL_MIN_BYTES = 8 * 1024 * 1024
"""Files smaller than this are mapped in-process: starting workers would cost more."""

_CHUNK_BYTES = 4 * 1024 * 1024
"""Lines handed to a worker at a time (a longer line goes alone)."""


def default_workers() -> int:
    """Worker processes for a parallel import: one per CPU, at most :data:`MAX_WORKERS`."""
    return min(os.cpu_count() or 1, MAX_WORKERS)


def _parallel_wanted(path: Path, workers: int | None, grade: GradeBatch | None) -> bool:
    if grade is not None and not isinstance(grade, InlineGrading):
        return False  # only graders a worker can rebuild run there
    if workers is not None:
        return workers > 1
    return (default_workers() > 1 and _can_fork()
            and path.stat().st_size >= PARALLEL_MIN_BYTES)


def _can_fork() -> bool:
    # Forking a process that runs other threads can deadlock the child; a fresh interpreter
    # (spawn) is safe but takes seconds to import tracegrade, so only explicit requests pay it.
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


@dataclass(frozen=True)
class _WorkerSetup:
    mapper: LineMapper
    options: MappingOptions
    dialect: str
    grading: BatchGraderSpec | None


@dataclass
class _Chunk:
    name: str
    lines: list[tuple[int, bytes]]


@dataclass
class _ChunkResult:
    prepared: PreparedBatch
    spans: int
    problems: list[IngestProblem]
    grading: GradeSummary | None


_worker: tuple[_WorkerSetup, BatchGrader | None] | None = None


def _start_worker(setup: _WorkerSetup) -> None:
    global _worker
    import gc

    gc.set_threshold(BULK_THRESHOLD, *gc.get_threshold()[1:])
    _worker = (setup, BatchGrader.from_spec(setup.grading) if setup.grading else None)


def _map_chunk(chunk: _Chunk) -> _ChunkResult:
    """In a worker: decode, map, serialise and grade one chunk of lines."""
    assert _worker is not None, "worker not started"
    setup, grader = _worker
    spans: list[Span] = []
    problems: list[IngestProblem] = []
    for number, line in chunk.lines:
        if not line.strip():
            continue
        for record in setup.mapper(line, f"{chunk.name}:{number}", setup.options,
                                   DEFAULT_MAX_ATTRIBUTE_BYTES):
            if isinstance(record, IngestProblem):
                problems.append(record)
            else:
                spans.append(record)
    prepared = prepare_batch(spans, grader, setup.dialect)
    tally = None
    if grader is not None:  # this chunk's tally goes back with it; the next starts afresh
        tally, grader.summary = grader.summary, GradeSummary(run_id=grader.summary.run_id)
    return _ChunkResult(prepared, len(spans), problems, tally)


def _import_in_workers(store: Store, path: Path, mapper: LineMapper, options: MappingOptions,
                       summary: ImportSummary,
                       on_problem: Callable[[IngestProblem], None] | None,
                       progress: ProgressCallback | None, grade: GradeBatch | None,
                       workers: int) -> None:
    """Workers map chunks of lines; this process writes their batches in file order."""
    inline = grade if isinstance(grade, InlineGrading) else None
    setup = _WorkerSetup(mapper, options, store.dialect,
                         inline.batch.spec() if inline and inline.graders else None)
    context = multiprocessing.get_context("fork" if _can_fork() else "spawn")
    pending: deque[AsyncResult[_ChunkResult]] = deque()

    def absorb(result: _ChunkResult) -> None:
        summary.spans += result.spans
        for problem in result.problems:
            _note_problem(summary, problem, on_problem)
        summary.counts.add(store.write_prepared(result.prepared))
        if inline is not None and result.grading is not None:
            inline.summary.merge(result.grading)
        if progress:
            progress(result.spans)

    with context.Pool(workers, initializer=_start_worker, initargs=(setup,)) as pool:
        for chunk in _chunks(path, str(path), summary, on_problem):
            pending.append(pool.apply_async(_map_chunk, (chunk,)))
            if len(pending) > 2 * workers:  # bounds memory: a few chunks in flight
                absorb(pending.popleft().get())
        while pending:
            absorb(pending.popleft().get())


def _chunks(path: Path, name: str, summary: ImportSummary,
            on_problem: Callable[[IngestProblem], None] | None) -> Iterator[_Chunk]:
    lines: list[tuple[int, bytes]] = []
    size = number = 0
    try:
        for number, line in open_lines(path):
            lines.append((number, line))
            size += len(line)
            if size >= _CHUNK_BYTES:
                yield _Chunk(name, lines)
                lines, size = [], 0
    except READ_ERRORS as error:
        _note_problem(summary, IngestProblem(f"{name}:{number + 1}",
                                             f"cannot read the file: {error}"), on_problem)
    if lines:
        yield _Chunk(name, lines)


def _note_problem(summary: ImportSummary, problem: IngestProblem,
                  on_problem: Callable[[IngestProblem], None] | None) -> None:
    summary.problem_count += 1
    if len(summary.problems) < MAX_PROBLEMS_KEPT:
        summary.problems.append(problem)
    if on_problem:
        on_problem(problem)


def _spans_of(path: Path, options: MappingOptions, summary: ImportSummary,
              on_problem: Callable[[IngestProblem], None] | None,
              progress: ProgressCallback | None) -> Iterator[Span]:
    for record in read_file(path, options):
        if isinstance(record, IngestProblem):
            _note_problem(summary, record, on_problem)
            continue
        summary.spans += 1
        if progress and summary.spans % _PROGRESS_EVERY == 0:
            progress(_PROGRESS_EVERY)
        yield record
