"""Run graders over stored spans and store one verdict per (span, grader, grader version).

Grading pages through spans in row-id order and commits each page's verdicts in one
transaction. A span already holding a verdict for a grader version is never graded again, so a
killed run resumes where it stopped and a re-run writes nothing twice.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tracegrade.config import SamplingConfig
from tracegrade.graders import Grader, Outcome, Result, TargetMissing, TraceContext
from tracegrade.sampling import Sampler
from tracegrade.spans import Span, SpanKind
from tracegrade.store import Store, StoredSpan, VerdictRow

ProgressCallback = Callable[[int], None]
"""Called with the number of spans just processed."""

_MAX_REASON = 500


@dataclass
class GradeSummary:
    """What one grading run did."""

    run_id: str
    spans_seen: int = 0
    verdicts_written: int = 0
    not_sampled: int = 0
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)

    def count(self, grader: str, outcome: str) -> None:
        """Tally one verdict."""
        self.outcomes.setdefault(grader, Counter())[outcome] += 1

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "run_id": self.run_id,
            "spans_seen": self.spans_seen,
            "verdicts_written": self.verdicts_written,
            "not_sampled": self.not_sampled,
            "outcomes": {g: dict(c) for g, c in sorted(self.outcomes.items())},
        }


def grade(
    store: Store,
    graders: Sequence[Grader],
    sampling: SamplingConfig,
    *,
    grade_all: bool = False,
    page_size: int = 2000,
    progress: ProgressCallback | None = None,
) -> GradeSummary:
    """Grade every stored span that still lacks a verdict from each grader's current version.

    Args:
        store: where spans are read and verdicts written.
        graders: the graders to run (built from the config).
        sampling: the sampling settings; ``grade_all`` overrides them with probability 1.
        grade_all: grade every applicable span regardless of sampling.
        page_size: spans per transaction.
        progress: called after each page with the number of spans processed.

    Returns:
        Counts of what was graded in this run.
    """
    for grader in graders:
        store.register_grader(grader.name, grader.version, grader.config.type,
                              grader.config.model_dump(mode="json"))
    run_id = store.start_run("grade")
    summary = GradeSummary(run_id=run_id)
    sampler = Sampler(sampling, store.group_sizes(by_name=sampling.stratify_by == "name"),
                      grade_all=grade_all)
    status = "failed"
    try:
        for page in _PageIterator(store, _kinds_needed(graders), page_size):
            rows = _grade_page(store, page, graders, sampler, summary)
            summary.verdicts_written += store.insert_verdicts(rows)
            summary.spans_seen += len(page)
            if progress:
                progress(len(page))
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        store.finish_run(run_id, status, summary.as_dict())
    return summary


class _PageIterator:
    def __init__(self, store: Store, kinds: list[SpanKind] | None, page_size: int) -> None:
        self.store, self.kinds, self.page_size = store, kinds, page_size

    def __iter__(self) -> _PageIterator:
        self.after = 0
        return self

    def __next__(self) -> list[StoredSpan]:
        page = self.store.spans_page(self.after, self.page_size, self.kinds)
        if not page:
            raise StopIteration
        self.after = page[-1].pk
        return page


def _kinds_needed(graders: Sequence[Grader]) -> list[SpanKind] | None:
    kinds: set[SpanKind] = set()
    for grader in graders:
        grader_kinds = grader.config.applies_to.kinds()
        if not grader_kinds:
            return None
        kinds.update(grader_kinds)
    return sorted(kinds)


def _grade_page(store: Store, page: list[StoredSpan], graders: Sequence[Grader],
                sampler: Sampler, summary: GradeSummary) -> list[VerdictRow]:
    keys = [(stored.span.source, stored.span.span_id) for stored in page]
    done = store.graded_keys(keys, [(g.name, g.version) for g in graders])
    traces: dict[tuple[str, str], TraceContext] = {}
    rows: list[VerdictRow] = []
    for stored in page:
        span = stored.span
        for grader in graders:
            if (span.source, span.span_id, grader.name, grader.version) in done:
                continue
            if not grader.applies_to(span):
                continue
            probability = sampler.include(span, grader.config.sample_rate)
            if probability is None:
                summary.not_sampled += 1
                continue
            context = _context(store, span, traces) if grader.needs_trace else TraceContext()
            rows.append(_verdict(grader, span, context, probability, summary.run_id))
            summary.count(grader.name, rows[-1].outcome)
    return rows


def _context(store: Store, span: Span, traces: dict[tuple[str, str], TraceContext]
             ) -> TraceContext:
    key = (span.source, span.trace_id)
    if key not in traces:
        traces[key] = TraceContext(lambda: store.trace_spans(*key))
    return traces[key]


def grade_one(grader: Grader, span: Span, context: TraceContext) -> Result:
    """Run one grader on one span; whatever goes wrong becomes an ``error`` result, never a pass."""
    try:
        result = grader.grade(span, context)
    except TargetMissing as exc:
        return Result.errored(str(exc))
    except Exception as exc:  # a grader bug must not stop the run or pass the span
        return Result.errored(f"{type(exc).__name__}: {exc}")
    if not isinstance(result, Result):
        return Result.errored(f"grader returned {type(result).__name__}, not a Result")
    return result


def _verdict(grader: Grader, span: Span, context: TraceContext, probability: float,
             run_id: str) -> VerdictRow:
    started = time.perf_counter()
    result = grade_one(grader, span, context)
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    return VerdictRow(
        source=span.source, span_id=span.span_id, grader=grader.name,
        grader_version=grader.version, outcome=Outcome(result.outcome).value,
        reason=result.reason[:_MAX_REASON], inclusion_probability=probability,
        run_id=run_id, score=result.score, cost=result.cost, latency_ms=elapsed_ms,
    )
