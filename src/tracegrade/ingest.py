"""Import trace files into the store: stream, map, write in batches, report bad records."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tracegrade._gc import bulk_allocation
from tracegrade._parallel_import import ChunkReport, can_fork, import_with_workers
from tracegrade.grading import InlineGrading
from tracegrade.sources._base import IngestProblem, MappingOptions
from tracegrade.sources.files import (
    READ_ERRORS,
    LineMapper,
    SpanKey,
    later_copies,
    line_mapper,
    read_file,
    read_lines,
)
from tracegrade.spans import Span
from tracegrade.store import GradeBatch, Store, UpsertCounts

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
            "regraded": self.counts.regraded,
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

    Files of independent lines (OTLP JSON lines, span JSONL) are mapped, graded and written by
    ``workers`` worker processes, committing in file order (None: one per CPU, at most
    :data:`MAX_WORKERS`, for files of :data:`PARALLEL_MIN_BYTES` or more, when this process can
    fork safely; 1: never); see :mod:`tracegrade._parallel_import`. Each chunk still commits on
    its own, with its verdicts.

    Raises:
        FileNotFoundError: a path does not exist, or is not a regular file (checked, as the
            next, before anything is written).
        IsADirectoryError: a path is a directory.
    """
    for path in paths:
        if path.is_dir():
            raise IsADirectoryError(f"{path}: is a directory")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file" if not path.exists()
                                    else f"{path}: not a regular file")
    summary = ImportSummary()
    with bulk_allocation():
        for path in paths:
            mapper = line_mapper(path)
            later = _later_copies(path, mapper, options)
            if mapper is not None and _parallel_wanted(path, workers, grade):
                _import_in_workers(store, path, mapper, later, options, summary, on_problem,
                                   progress, grade, workers or default_workers())
            else:
                records = (read_file(path, options) if mapper is None
                           else read_lines(path, mapper, options, later))
                spans = _spans_of(records, summary, on_problem, progress)
                summary.counts.add(store.upsert_spans(spans, batch_size=batch_size,
                                                      grade=grade))
            summary.files += 1
    return summary


MAX_WORKERS = 4
"""Worker processes an import uses at most by default."""

PARALLEL_MIN_BYTES = 8 * 1024 * 1024
"""Files smaller than this are mapped in-process: starting workers would cost more."""


def default_workers() -> int:
    """Worker processes for a parallel import: one per CPU, at most :data:`MAX_WORKERS`."""
    return min(os.cpu_count() or 1, MAX_WORKERS)


def _parallel_wanted(path: Path, workers: int | None, grade: GradeBatch | None) -> bool:
    if grade is not None and not isinstance(grade, InlineGrading):
        return False  # only graders a worker can rebuild run there
    if workers is not None:
        return workers > 1
    return default_workers() > 1 and can_fork() and path.stat().st_size >= PARALLEL_MIN_BYTES


def _later_copies(path: Path, mapper: LineMapper | None,
                  options: MappingOptions) -> dict[SpanKey, int]:
    if mapper is None:
        return {}
    try:
        return later_copies(path, mapper, options)
    except READ_ERRORS:
        return {}  # the import reports where the file is damaged


def _import_in_workers(store: Store, path: Path, mapper: LineMapper,
                       later: dict[SpanKey, int], options: MappingOptions, summary: ImportSummary,
                       on_problem: Callable[[IngestProblem], None] | None,
                       progress: ProgressCallback | None, grade: GradeBatch | None,
                       workers: int) -> None:
    inline = grade if isinstance(grade, InlineGrading) else None

    def on_report(report: ChunkReport) -> None:
        summary.spans += report.spans
        summary.counts.add(report.counts)
        if inline is not None and report.grading is not None:
            inline.summary.merge(report.grading)
        if progress:
            progress(report.spans)

    import_with_workers(store, path, mapper, later, options, workers, inline, on_report,
                        lambda problem: _note_problem(summary, problem, on_problem))


def _note_problem(summary: ImportSummary, problem: IngestProblem,
                  on_problem: Callable[[IngestProblem], None] | None) -> None:
    summary.problem_count += 1
    if len(summary.problems) < MAX_PROBLEMS_KEPT:
        summary.problems.append(problem)
    if on_problem:
        on_problem(problem)


def _spans_of(records: Iterable[Span | IngestProblem], summary: ImportSummary,
              on_problem: Callable[[IngestProblem], None] | None,
              progress: ProgressCallback | None) -> Iterator[Span]:
    for record in records:
        if isinstance(record, IngestProblem):
            _note_problem(summary, record, on_problem)
            continue
        summary.spans += 1
        if progress and summary.spans % _PROGRESS_EVERY == 0:
            progress(_PROGRESS_EVERY)
        yield record
