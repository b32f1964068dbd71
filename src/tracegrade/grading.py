"""Run graders over stored spans and store one verdict per (span, grader, grader version).

Grading pages through spans in row-id order and commits each page's verdicts in one
transaction. A span already holding a verdict for a grader version is never graded again, so a
killed run resumes where it stopped and a re-run writes nothing twice.

Deterministic graders run synchronously, span by span. Async graders (LLM judges) get each page's
spans all at once and are awaited concurrently in one event loop for the whole run; each bounds
its own concurrency and rate. Their verdicts commit with the page, and their answers are cached
as they arrive, so a kill loses at most one page of verdicts and pays for none of it twice.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from sqlalchemy import select, tuple_

from tracegrade.config import SamplingConfig
from tracegrade.graders import (
    Grader,
    GraderConfig,
    Outcome,
    Result,
    TargetMissing,
    TraceContext,
    build_graders,
)
from tracegrade.graders._async import AsyncGrader, GradingRun
from tracegrade.llm import Budget, BudgetExhausted, JudgeDeferred, JudgeError, JudgeStopped
from tracegrade.llm._views import root_of
from tracegrade.sampling import Sampler, group_sizes_for
from tracegrade.spans import Span, SpanKind, utc_now
from tracegrade.store import Store, StoredSpan, VerdictRow
from tracegrade.store import _schema as t
from tracegrade.store._fast import chunks
from tracegrade.store._store import span_from_row

ProgressCallback = Callable[[int], None]
"""Called with the number of spans just processed."""

_MAX_REASON = 500


Graded = Mapping[tuple[str, str, str, str], float]
"""The stored verdicts of a page: (source, span_id, grader, version) to inclusion probability."""
Raise = tuple[str, str, str, str, float]
"""A stored verdict's new inclusion probability: (source, span_id, grader, version, p)."""


@dataclass
class GradeSummary:
    """What one grading run did."""

    run_id: str
    spans_seen: int = 0
    verdicts_written: int = 0
    not_sampled: int = 0
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    """Dollars spent per grader in this run (cached answers cost nothing)."""
    unpriced: Counter[str] = field(default_factory=Counter)
    """Verdicts per grader whose cost is unknown (a model without a price)."""
    cached: Counter[str] = field(default_factory=Counter)
    """Verdicts per grader answered from the judge cache."""
    waiting: int = 0
    """Spans left for a later run because their trace is not quiet yet."""
    budget_exhausted: bool = False
    """The budget stopped the judges; spans they had not graded have no verdict yet."""
    deferred: Counter[str] = field(default_factory=Counter)
    """Spans per grader left without a verdict because their judge kept failing transiently
    (rate limits, server errors, timeouts through every retry), or had failed so many spans in
    a row that the run stopped asking it: the next run asks again."""
    deferred_reason: str = ""
    """The last such failure, to show."""
    reweighted: int = 0
    """Stored verdicts whose inclusion probability this run raised (a higher sampling rate,
    a looser cap or ``--all`` puts their spans in the sample with a higher probability)."""
    incomplete: set[str] = field(default_factory=set)
    """Graders that left a sampled span without a verdict in this run (its trace still
    arriving, its judge deferred): their stored probabilities are not raised."""

    def settle(self, store: Store) -> None:
        """Make :attr:`outcomes` those of the verdicts this run wrote.

        A verdict another run (a concurrent ``grade``, an earlier import of the same spans)
        had already stored is not written again; the tally counted it all the same.
        """
        if sum(sum(counts.values()) for counts in self.outcomes.values()) \
                != self.verdicts_written:
            self.outcomes = store.run_outcomes(self.run_id)

    def count(self, grader: str, outcome: str) -> None:
        """Tally one verdict."""
        self.outcomes.setdefault(grader, Counter())[outcome] += 1

    def merge(self, other: GradeSummary) -> None:
        """Add the spans and verdict outcomes another process tallied for this run."""
        self.spans_seen += other.spans_seen
        self.not_sampled += other.not_sampled
        for grader, counts in other.outcomes.items():
            self.outcomes.setdefault(grader, Counter()).update(counts)

    def add_cost(self, grader: str, result: Result) -> None:
        """Tally what one verdict cost."""
        if result.cost is not None:
            self.cost[grader] = self.cost.get(grader, 0.0) + result.cost
        elif isinstance(result.details, dict) and "cost" in result.details:
            self.unpriced[grader] += 1
        if isinstance(result.details, dict) and result.details.get("cached") is True:
            self.cached[grader] += 1

    @property
    def total_cost(self) -> float:
        """Dollars spent by every grader in this run."""
        return sum(self.cost.values())

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "run_id": self.run_id,
            "spans_seen": self.spans_seen,
            "verdicts_written": self.verdicts_written,
            "not_sampled": self.not_sampled,
            "reweighted": self.reweighted,
            "waiting": self.waiting,
            "budget_exhausted": self.budget_exhausted,
            "deferred": dict(sorted(self.deferred.items())),
            "outcomes": {g: dict(c) for g, c in sorted(self.outcomes.items())},
            "cost": {"total": round(self.total_cost, 6),
                     "by_grader": {g: round(c, 6) for g, c in sorted(self.cost.items())},
                     "unpriced": dict(sorted(self.unpriced.items()))},
            "cached": dict(sorted(self.cached.items())),
        }


def grade(
    store: Store,
    graders: Sequence[Grader],
    sampling: SamplingConfig,
    *,
    grade_all: bool = False,
    page_size: int = 2000,
    progress: ProgressCallback | None = None,
    budget: float | None = None,
    use_cache: bool = True,
) -> GradeSummary:
    """Grade every stored span that still lacks a verdict from each grader's current version.

    Args:
        store: where spans are read and verdicts written.
        graders: the graders to run (built from the config).
        sampling: the sampling settings; ``grade_all`` overrides them with probability 1.
        grade_all: grade every applicable span regardless of sampling.
        page_size: spans per transaction.
        progress: called after each page with the number of spans processed.
        budget: dollars the judges may spend in this run; they stop before exceeding it and
            the spans they did not reach get no verdict (deterministic graders, which cost
            nothing, still finish).
        use_cache: answer judges from the judge cache; False forces fresh calls.

    Returns:
        Counts of what was graded in this run, with its cost.

    Raises:
        JudgeError: a judge cannot be used (endpoint down or refusing, no price under a
            budget); verdicts already graded are kept.
        JudgeStopped: a judge failed too many spans in a row, so it was not asked about the
            rest; raised once the other graders have finished, naming the spans it left (none
            of them has a verdict from it, and the summary counts them as deferred).
    """
    for grader in graders:
        store.register_grader(grader.name, grader.version, grader.config.type,
                              grader.config.model_dump(mode="json"))
    run_id = store.start_run("grade")
    summary = GradeSummary(run_id=run_id)
    sampler = _sampler(store, sampling, graders, grade_all)
    plain = [g for g in graders if not isinstance(g, AsyncGrader)]
    waiting_on_io = [g for g in graders if isinstance(g, AsyncGrader)]
    status = "failed"
    raise_at_end: list[Raise] = []
    try:
        with _async_grading(store, waiting_on_io, run_id, budget, use_cache) as judging:
            for page in _PageIterator(store, _kinds_needed(graders), page_size):
                # What this page already holds, read once: skipped by both kinds of grader,
                # and the stored probabilities this run may raise.
                stored = store.graded_probabilities(
                    [(entry.span.source, entry.span.span_id) for entry in page],
                    [(g.name, g.version) for g in graders])
                rows = _grade_page(store, page, plain, sampler, summary, stored) if plain else []
                if judging is not None and not summary.budget_exhausted:
                    rows += judging.grade_page(page, sampler, summary, stored)
                graded = {(stored.span.source, stored.span.span_id): stored.content_hash
                          for stored in page}
                summary.verdicts_written += store.insert_verdicts(rows, graded)
                now_raised, later = _raises(page, graders, sampler, stored)
                summary.reweighted += store.raise_inclusion_probabilities(now_raised)
                raise_at_end += later
                summary.spans_seen += len(page)
                if progress:
                    progress(len(page))
                if judging is not None and judging.fatal is not None:
                    raise judging.fatal
            stopped = judging.stopped_error(summary) if judging is not None else None
            if stopped is not None:
                raise stopped
        summary.reweighted += store.raise_inclusion_probabilities(
            _complete(raise_at_end, summary, {g.name for g in waiting_on_io}))
        status = "budget_exhausted" if summary.budget_exhausted else "finished"
        summary.settle(store)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except JudgeError as exc:
        summary.settle(store)
        exc.summary = summary
        raise
    finally:
        store.finish_run(run_id, status, summary.as_dict())
    return summary


@dataclass(frozen=True)
class BatchGraderSpec:
    """What a worker process needs to rebuild a :class:`BatchGrader` (all of it picklable)."""

    configs: list[GraderConfig]
    sampling: SamplingConfig
    grade_all: bool
    run_id: str


class BatchGrader:
    """Grades batches of spans in memory with graders that need nothing but the span."""

    def __init__(self, graders: Sequence[Grader], sampling: SamplingConfig, grade_all: bool,
                 run_id: str) -> None:
        self.graders = list(graders)
        self.sampling, self.grade_all = sampling, grade_all
        self.sampler = Sampler(sampling, {}, grade_all=grade_all)
        self.summary = GradeSummary(run_id=run_id)
        # Most graders select by kind: look only at those that can apply to a span's kind.
        self._by_kind = {kind: [g for g in self.graders
                                if not g.config.applies_to.kinds()
                                or kind in g.config.applies_to.kinds()] for kind in SpanKind}

    def __call__(self, spans: Sequence[Span]) -> list[VerdictRow]:
        """The verdicts of every grader for these spans; their outcomes are tallied."""
        summary, sampler, by_kind = self.summary, self.sampler, self._by_kind
        rows: list[VerdictRow] = []
        empty = TraceContext()  # these graders read nothing beyond the span
        for span in spans:
            for grader in by_kind[span.kind]:
                row = _sampled_verdict(grader, span, sampler, summary, empty)
                if row is not None:
                    rows.append(row)
        summary.spans_seen += len(spans)
        return rows

    def spec(self) -> BatchGraderSpec:
        """How a worker process rebuilds this grader."""
        return BatchGraderSpec([g.config for g in self.graders], self.sampling, self.grade_all,
                               self.summary.run_id)

    @classmethod
    def from_spec(cls, spec: BatchGraderSpec) -> BatchGrader:
        """The grader a :meth:`spec` describes (built afresh, with an empty tally)."""
        return cls(build_graders(spec.configs), spec.sampling, spec.grade_all, spec.run_id)


class InlineGrading:
    """Grades spans while they are written, in the same transaction as the spans.

    Importing and then grading reads every span back; grading the spans already in memory
    skips that. Only graders that need nothing but the span itself (synchronous, no trace
    context) run inline, and only under per-span sampling: a per-release cap or a stratum floor
    depends on how many spans the store will hold once the import ends, which is not known while
    it runs. The others are left in :attr:`deferred` for a :func:`grade` pass after the import.
    Use it as a context manager: leaving it records the run's outcome.

    Verdicts commit with their spans, so a killed import never holds a span without the
    verdicts it was graded with, and re-importing writes no verdict twice.
    """

    def __init__(self, store: Store, graders: Sequence[Grader], sampling: SamplingConfig, *,
                 grade_all: bool = False) -> None:
        per_span = grade_all or (sampling.max_per_release is None and sampling.stratify_by is None)
        self.graders = [g for g in graders if per_span and _inline_capable(g)]
        self.deferred = [g for g in graders if g not in self.graders]
        self.store = store
        run_id = ""
        if self.graders:
            for grader in self.graders:
                store.register_grader(grader.name, grader.version, grader.config.type,
                                      grader.config.model_dump(mode="json"))
            run_id = store.start_run("grade")
        self.batch = BatchGrader(self.graders, sampling, grade_all, run_id)

    @property
    def summary(self) -> GradeSummary:
        """The tally of the verdicts graded so far (by this process and its workers)."""
        return self.batch.summary

    def __call__(self, spans: Sequence[Span]) -> list[VerdictRow]:
        """The verdicts of every inline grader for these spans (written with them)."""
        return self.batch(spans)

    def __enter__(self) -> InlineGrading:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        if not self.summary.run_id:
            return
        status = ("finished" if error_type is None
                  else "interrupted" if issubclass(error_type, KeyboardInterrupt) else "failed")
        # Counted from the store: what committed with the spans, even when the import failed.
        self.summary.verdicts_written = self.store.count_verdicts(self.summary.run_id)
        self.summary.settle(self.store)
        self.store.finish_run(self.summary.run_id, status, self.summary.as_dict())


def _inline_capable(grader: Grader) -> bool:
    return not isinstance(grader, AsyncGrader) and not grader.needs_trace


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
        # A trace-scoped grader's verdict lands on the trace's root, whatever its kind.
        if not grader_kinds or (isinstance(grader, AsyncGrader) and grader.scope == "trace"):
            return None
        kinds.update(grader_kinds)
    return sorted(kinds)


def _grade_page(store: Store, page: list[StoredSpan], graders: Sequence[Grader],
                sampler: Sampler, summary: GradeSummary, done: Graded) -> list[VerdictRow]:
    traces: dict[tuple[str, str], TraceContext] = {}
    rows: list[VerdictRow] = []
    now = utc_now()
    for stored in page:
        span = stored.span
        for grader in graders:
            if (span.source, span.span_id, grader.name, grader.version) in done:
                continue
            context = _context(store, span, traces) if grader.needs_trace else TraceContext()
            row = _sampled_verdict(grader, span, sampler, summary, context, now)
            if row is not None:
                rows.append(row)
    return rows


def _raises(page: list[StoredSpan], graders: Sequence[Grader], sampler: Sampler,
            stored: Graded) -> tuple[list[Raise], list[Raise]]:
    """The stored verdicts of this page whose inclusion probability this run raises: those
    spans are in this run's sample too (the same hash number decides), so weighting them by
    a lower one over-counts them (1.8x after a rate went from 0.1 to 0.5, biasing every
    estimate toward the spans graded first).

    Returns the raises to make now (graders that grade every sampled span of a page at once)
    and those to make only if the run ends with the grader's sample complete (graders that
    may leave a span for later: a trace still arriving, a judge deferred or out of budget),
    since raising the old verdicts without the new ones would under-count instead.
    """
    now: list[Raise] = []
    later: list[Raise] = []
    if not stored:
        return now, later
    for entry in page:
        span = entry.span
        for grader in graders:
            # A verdict on this content means the grader applied (for a trace-scoped judge,
            # on this root span): only the probability can have changed.
            old = stored.get((span.source, span.span_id, grader.name, grader.version))
            if old is None or old >= 1.0:
                continue
            new = sampler.inclusion_probability(span, grader.config.sample_rate, grader.name)
            if new > old:
                waits = isinstance(grader, AsyncGrader) or grader.needs_trace
                (later if waits else now).append(
                    (span.source, span.span_id, grader.name, grader.version, new))
    return now, later


def _complete(raises: list[Raise], summary: GradeSummary, judges: set[str]) -> list[Raise]:
    """The raises of graders whose sample this run completed."""
    left = summary.incomplete | (judges if summary.budget_exhausted else set())
    left |= {name for name, count in summary.deferred.items() if count}
    return [r for r in raises if r[2] not in left]


def _sampler(store: Store, sampling: SamplingConfig, graders: Sequence[Grader],
             grade_all: bool) -> Sampler:
    """The sampler of a grading run: a grader's cap and floors count only the spans its
    ``applies_to`` kind and name select (its attribute and output filters are left aside)."""
    by_name = sampling.stratify_by == "name"
    if grade_all or (sampling.max_per_release is None and not by_name):
        return Sampler(sampling, {}, grade_all=grade_all)
    groups = store.span_group_counts()
    per_grader = {}
    for grader in graders:
        applies = grader.config.applies_to
        kinds = None if applies.kind is None else [
            str(k) for k in (applies.kind if isinstance(applies.kind, list) else [applies.kind])]
        per_grader[grader.name] = group_sizes_for(groups, by_name, kinds, applies.name)
    return Sampler(sampling, group_sizes_for(groups, by_name), grade_all=grade_all,
                   grader_sizes=per_grader)


TRACE_QUIET_SECONDS = 120.0
"""How long after its newest span a trace counts as complete for a grader that reads it
(``tool_args_valid``), as the judges' default ``quiet_seconds``."""


def _sampled_verdict(grader: Grader, span: Span, sampler: Sampler, summary: GradeSummary,
                     context: TraceContext, now: datetime | None = None) -> VerdictRow | None:
    """The grader's verdict on the span, when it applies and the span is sampled (tallied).

    A grader that reads the trace and finds nothing to check (``skip``: no tool schema yet)
    while the trace may still be arriving leaves the span for a later run: a stored skip is
    never graded again, and the rest of the trace may carry what it needs.
    """
    if not grader.applies_to(span):
        return None
    probability = sampler.include(span, grader.config.sample_rate, grader.name)
    if probability is None:
        summary.not_sampled += 1
        return None
    row = _verdict(grader, span, context, probability, summary.run_id)
    if (row.outcome == "skip" and grader.needs_trace and now is not None
            and not is_quiet([span, *context.spans()], now, TRACE_QUIET_SECONDS)):
        summary.waiting += 1
        summary.incomplete.add(grader.name)
        return None
    summary.count(grader.name, row.outcome)
    return row


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
    except (Exception, SystemExit) as exc:  # a grader bug (or exit) must not stop the run
        return Result.errored(f"{type(exc).__name__}: {exc}")
    if not isinstance(result, Result):
        return Result.errored(f"grader returned {type(result).__name__}, not a Result")
    if result.score is not None and not math.isfinite(result.score):
        return Result.errored(f"grader returned the score {result.score}, which is no number; "
                              f"its verdict was {Outcome(result.outcome).value}")
    if result.details is not None:
        try:  # as the store will write them: a value it cannot would fail the whole page
            orjson.dumps(result.details, option=orjson.OPT_SORT_KEYS)
        except TypeError as exc:
            return Result.errored(f"grader returned details that are not JSON ({exc}); "
                                  f"its verdict was {Outcome(result.outcome).value}")
    return result


def _verdict(grader: Grader, span: Span, context: TraceContext, probability: float,
             run_id: str) -> VerdictRow:
    started = time.perf_counter()
    result = grade_one(grader, span, context)
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    return _row(grader, span, result, probability, run_id, elapsed_ms)


def _row(grader: Grader, span: Span, result: Result, probability: float, run_id: str,
         elapsed_ms: float) -> VerdictRow:
    return VerdictRow(
        source=span.source, span_id=span.span_id, grader=grader.name,
        grader_version=grader.version, outcome=Outcome(result.outcome).value,
        reason=result.reason[:_MAX_REASON], inclusion_probability=probability,
        run_id=run_id, score=result.score, cost=result.cost, latency_ms=elapsed_ms,
        details=result.details,
    )


# -- async graders ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """One span an async grader will grade in this page."""

    grader: AsyncGrader
    span: Span
    context: TraceContext
    probability: float


_PREPARE_CHUNK = 50
"""Spans an async grader prepares at a time: the first calls leave while the rest render."""

_NO_VERDICT = object()
"""What a span the budget stopped gets: nothing, so a later run grades it."""


@contextmanager
def _async_grading(store: Store, graders: Sequence[AsyncGrader], run_id: str,
                   budget: float | None, use_cache: bool) -> Iterator[_AsyncGrading | None]:
    if not graders:
        yield None
        return
    with asyncio.Runner() as runner:
        judging = _AsyncGrading(runner, store, graders,
                                GradingRun(run_id, store, use_cache, Budget(budget)))
        try:
            runner.run(judging.open())
            yield judging
        finally:
            runner.run(judging.run.cleanup.aclose())


class _AsyncGrading:
    """Grades pages of spans with async graders in one event loop that lives for the run."""

    def __init__(self, runner: asyncio.Runner, store: Store, graders: Sequence[AsyncGrader],
                 run: GradingRun) -> None:
        self.runner, self.store, self.graders, self.run = runner, store, graders, run
        self.fatal: JudgeError | None = None
        self.stopped: dict[str, JudgeStopped] = {}
        """Graders (by name) whose judge the run stopped asking: their spans are deferred."""

    async def open(self) -> None:
        for grader in self.graders:
            await grader.open(self.run)

    def grade_page(self, page: list[StoredSpan], sampler: Sampler, summary: GradeSummary,
                   done: Graded) -> list[VerdictRow]:
        """The page's verdicts from every async grader (fatal errors are kept in ``fatal``);
        ``done``: the verdicts the page already holds."""
        items = _pending_items(self.store, page, self.graders, sampler, summary, utc_now(),
                               done)
        items = self._not_stopped(items, summary)
        if not items:
            return []
        try:
            outcomes = self.runner.run(self._grade_all(items))
        finally:
            for grader in self.graders:
                grader.finish_page()
        rows: list[VerdictRow] = []
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, JudgeStopped):
                self.stopped.setdefault(item.grader.name, outcome)
                summary.deferred[item.grader.name] += 1
                summary.deferred_reason = str(outcome)
            elif isinstance(outcome, JudgeError):
                self.fatal = self.fatal or outcome
            elif outcome is _NO_VERDICT:
                summary.budget_exhausted = True
            elif isinstance(outcome, JudgeDeferred):
                summary.deferred[item.grader.name] += 1
                summary.deferred_reason = str(outcome)
            elif isinstance(outcome, tuple):
                result, elapsed_ms = outcome
                rows.append(_row(item.grader, item.span, result, item.probability,
                                 summary.run_id, elapsed_ms))
                summary.count(item.grader.name, rows[-1].outcome)
                summary.add_cost(item.grader.name, result)
        return rows

    def stopped_error(self, summary: GradeSummary) -> JudgeStopped | None:
        """One error for the judges the run stopped asking, with the spans each left."""
        graders_by_error: dict[JudgeStopped, list[str]] = {}
        for grader, error in self.stopped.items():
            graders_by_error.setdefault(error, []).append(grader)
        if not graders_by_error:
            return None
        return JudgeStopped("; ".join(
            f"{error}; {sum(summary.deferred[g] for g in graders):,} spans were left without "
            f"a verdict from grader{'s' if len(graders) > 1 else ''} "
            f"{', '.join(map(repr, graders))} for the next run"
            for error, graders in graders_by_error.items()))

    def _not_stopped(self, items: list[_Item], summary: GradeSummary) -> list[_Item]:
        """The items whose judge is still asked; the others are deferred without a call."""
        if not self.stopped:
            return items
        for item in items:
            if item.grader.name in self.stopped:
                summary.deferred[item.grader.name] += 1
        return [item for item in items if item.grader.name not in self.stopped]

    async def _grade_all(self, items: list[_Item]) -> list[object]:
        tasks = []
        for start in range(0, len(items), _PREPARE_CHUNK):
            chunk = items[start:start + _PREPARE_CHUNK]
            for grader in self.graders:
                mine = [(i.span, i.context) for i in chunk if i.grader is grader]
                if mine:
                    grader.prepare(mine)
            tasks += [asyncio.create_task(self._grade_one(item)) for item in chunk]
            await asyncio.sleep(0)  # let this chunk's calls go out before preparing the next
        return list(await asyncio.gather(*tasks))

    async def _grade_one(self, item: _Item) -> object:
        started = time.perf_counter()
        try:
            result = await item.grader.grade_async(item.span, item.context)
        except BudgetExhausted:
            return _NO_VERDICT
        except (JudgeError, JudgeDeferred) as exc:
            return exc
        except TargetMissing as exc:
            result = Result.errored(str(exc))
        except Exception as exc:  # a grader bug must not stop the run or pass the span
            result = Result.errored(f"{type(exc).__name__}: {exc}")
        if not isinstance(result, Result):
            result = Result.errored(f"grader returned {type(result).__name__}, not a Result")
        return result, (time.perf_counter() - started) * 1000.0


def _pending_items(store: Store, page: list[StoredSpan], graders: Sequence[AsyncGrader],
                   sampler: Sampler, summary: GradeSummary, now: datetime, done: Graded
                   ) -> list[_Item]:
    """Which (span, grader) pairs of the page are graded now: applicable, sampled, quiet."""
    spans = [stored.span for stored in page]
    roots = _local_roots(store, spans) if any(g.scope == "trace" for g in graders) else set()
    candidates = [(span, grader) for span in spans for grader in graders
                  if (*span.key, grader.name, grader.version) not in done
                  and (span.key in roots if grader.scope == "trace" else grader.applies_to(span))]
    traces = _load_traces(store, {(span.source, span.trace_id)
                                  for span, grader in candidates if grader.reads_trace})
    items = []
    for span, grader in candidates:
        trace = traces.get((span.source, span.trace_id), [span]) if grader.reads_trace else None
        if grader.scope == "trace" and not _trace_applies(grader, span, trace or [span]):
            continue
        probability = sampler.include(span, grader.config.sample_rate, grader.name)
        if probability is None:
            summary.not_sampled += 1
            continue
        if trace is not None and not is_quiet(trace, now, grader.quiet_seconds):
            summary.waiting += 1
            summary.incomplete.add(grader.name)
            continue
        items.append(_Item(grader, span, _preloaded(trace), probability))
    return items


def _preloaded(trace: list[Span] | None) -> TraceContext:
    if trace is None:
        return TraceContext()
    return TraceContext(lambda: trace)


def _trace_applies(grader: AsyncGrader, root: Span, trace: Sequence[Span]) -> bool:
    """A trace is graded on its first root, when any of its spans matches the grader."""
    first_root = root_of(trace) or root
    return first_root.span_id == root.span_id and any(grader.applies_to(s) for s in trace)


def is_quiet(trace: Iterable[Span], now: datetime, quiet_seconds: float) -> bool:
    """Whether the trace's newest span ended at least ``quiet_seconds`` before ``now``.

    Span times are the application's clock; a trace imported from history is quiet at once,
    while a live trace waits for its late pieces (0 never waits).
    """
    if quiet_seconds <= 0:
        return True
    newest = max((span.end_time or span.start_time for span in trace), default=None)
    return newest is None or (now - newest).total_seconds() >= quiet_seconds


def _local_roots(store: Store, spans: Sequence[Span]) -> set[tuple[str, str]]:
    """Keys of the spans whose parent is not stored (roots, and subtrees of remote parents)."""
    roots = {span.key for span in spans if span.parent_id is None}
    parents = {(span.source, span.parent_id) for span in spans if span.parent_id is not None}
    stored: set[tuple[str, str]] = set()
    c = t.spans.c
    with store.engine.connect() as conn:
        for chunk in chunks(sorted(parents), 400):
            query = select(c.source, c.span_id).where(tuple_(c.source, c.span_id).in_(chunk))
            stored.update((source, span_id) for source, span_id in conn.execute(query))
    roots.update(span.key for span in spans
                 if span.parent_id is not None and (span.source, span.parent_id) not in stored)
    return roots


def _load_traces(store: Store, keys: set[tuple[str, str]]
                 ) -> dict[tuple[str, str], list[Span]]:
    """Every stored span of these traces, in start order, in a few queries."""
    traces: dict[tuple[str, str], list[Span]] = {}
    c = t.spans.c
    with store.engine.connect() as conn:
        for chunk in chunks(sorted(keys), 400):
            query = (select(t.spans).where(tuple_(c.source, c.trace_id).in_(chunk))
                     .order_by(c.start_time, c.id))
            for row in conn.execute(query):
                traces.setdefault((row.source, row.trace_id), []).append(span_from_row(row))
    return traces
