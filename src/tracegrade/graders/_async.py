"""Graders that wait on the network (LLM judges): graded many at a time by the grading loop.

A deterministic grader answers in microseconds and runs synchronously, span by span. An
:class:`AsyncGrader` spends its time waiting for a remote model, so the grading loop gathers a
whole page of its spans concurrently (the grader bounds its own concurrency and rate) and
commits the page's verdicts together.

Per run the loop calls :meth:`AsyncGrader.open` once, inside its event loop. Per page it calls
:meth:`AsyncGrader.prepare` for a few dozen spans at a time (batch work such as one cache query)
and starts awaiting :meth:`AsyncGrader.grade_async` for those before preparing the next, so the
first calls are in flight while the rest of the page is prepared; then
:meth:`AsyncGrader.finish_page`.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from tracegrade.graders._base import Grader, Result
from tracegrade.graders._targets import TraceContext
from tracegrade.llm._cost import Budget
from tracegrade.spans import Span
from tracegrade.store import Store


@dataclass
class GradingRun:
    """What one grading run shares with its async graders."""

    run_id: str
    store: Store | None
    """None when a span is graded on its own (no cache, no few-shot examples)."""
    use_cache: bool = True
    """False with ``--no-cache``: graders must not answer from earlier runs' results."""
    budget: Budget = field(default_factory=lambda: Budget(None))
    """Dollars the run may still spend (``--budget``); graders raise BudgetExhausted past it."""
    resources: dict[str, Any] = field(default_factory=dict)
    """Things graders of one kind share within the run (e.g. one client per judge)."""
    cleanup: AsyncExitStack = field(default_factory=AsyncExitStack)
    """Closed when the run ends; graders push their cleanups on it."""


class AsyncGrader(Grader):
    """Base class for graders whose verdicts come from slow I/O, such as an LLM judge."""

    scope: str = "span"
    """``trace``: one verdict per trace, stored on the trace's root span, once any span of the
    trace matches ``applies_to``."""
    quiet_seconds: float = 0.0
    """A grader that reads the trace waits until the trace's newest span ended this long ago."""

    @property
    def reads_trace(self) -> bool:
        """Whether the grader looks at the span's trace (loaded for it, and waited on)."""
        return self.needs_trace or self.scope == "trace"

    async def open(self, run: GradingRun) -> None:  # noqa: B027 - optional hook
        """Set up for one run (clients, few-shot examples…); called once inside the loop."""

    def prepare(self, items: Sequence[tuple[Span, TraceContext]]) -> None:  # noqa: B027
        """Batch work before these spans are graded (called several times per page)."""

    def finish_page(self) -> None:  # noqa: B027
        """Drop whatever was kept for the page just graded."""

    @abstractmethod
    async def grade_async(self, span: Span, context: TraceContext) -> Result:
        """Grade one span. Raising is allowed: the caller records an ``error`` verdict."""

    def grade(self, span: Span, context: TraceContext) -> Result:
        """Grade one span on its own, outside a grading run (slow: a fresh client each time).

        :func:`tracegrade.grading.grade` gathers many spans at once instead.
        """
        return asyncio.run(self._grade_alone(span, context))

    async def _grade_alone(self, span: Span, context: TraceContext) -> Result:
        run = GradingRun(run_id="single", store=None)
        async with run.cleanup:
            await self.open(run)
            self.prepare([(span, context)])
            return await self.grade_async(span, context)
