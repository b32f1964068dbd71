"""Import trace files into the store: stream, map, write in batches, report bad records."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tracegrade._gc import bulk_allocation
from tracegrade.sources._base import IngestProblem, MappingOptions
from tracegrade.sources.files import read_file
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
) -> ImportSummary:
    """Import every file into the store; bad records are counted and skipped, never fatal.

    ``grade`` (an :class:`~tracegrade.grading.InlineGrading`) grades each batch as it is
    written; its verdicts commit with the batch's spans.

    Raises:
        FileNotFoundError: a path does not exist (checked before anything is written).
    """
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
    summary = ImportSummary()
    with bulk_allocation():
        for path in paths:
            spans = _spans_of(path, options, summary, on_problem, progress)
            summary.counts.add(store.upsert_spans(spans, batch_size=batch_size, grade=grade))
            summary.files += 1
    return summary


def _spans_of(path: Path, options: MappingOptions, summary: ImportSummary,
              on_problem: Callable[[IngestProblem], None] | None,
              progress: ProgressCallback | None) -> Iterator[Span]:
    for record in read_file(path, options):
        if isinstance(record, IngestProblem):
            summary.problem_count += 1
            if len(summary.problems) < MAX_PROBLEMS_KEPT:
                summary.problems.append(record)
            if on_problem:
                on_problem(record)
            continue
        summary.spans += 1
        if progress and summary.spans % _PROGRESS_EVERY == 0:
            progress(_PROGRESS_EVERY)
        yield record
