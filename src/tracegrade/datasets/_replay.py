"""Replay a golden dataset through the application and grade the outputs before a deploy.

Each item's input goes to the user's function (``module:function``, called with the input) or to
an HTTP endpoint (POSTed as ``{"input": ..., "item_id": ...}``; the reply's JSON ``output`` key,
or the whole JSON body, is the output). Each answer is stored as a span of the named release,
source ``replay``, shaped like the item's source span (same kind and name) so the configured
graders apply to it exactly as in production, and graded with those graders. The expected output
rides along as the span attribute ``tracegrade.expected_output`` for graders that compare.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import and_, delete, tuple_

from tracegrade.datasets._items import GoldenItem
from tracegrade.datasets._store import DatasetError, dataset_items, require_dataset
from tracegrade.graders import Grader, Outcome
from tracegrade.graders._python import import_function
from tracegrade.graders._targets import TraceContext
from tracegrade.grading import grade_one
from tracegrade.spans import (
    MAX_KEY_CHARS,
    JSONValue,
    Span,
    SpanKind,
    Status,
    StatusCode,
    utc_now,
)
from tracegrade.store import Store, VerdictRow
from tracegrade.store import _schema as t
from tracegrade.store._fast import dump_json

REPLAY_SOURCE = "replay"
EXCLUDED_SOURCES = (REPLAY_SOURCE,)
"""Sources of spans tracegrade made itself (replays of golden items): not production, so never
promoted by query, queued for labeling, or compared with a golden set."""
Target = Callable[[JSONValue, str], JSONValue]
"""Calls the application with an item's input (and its id); returns the output."""


@dataclass
class ReplaySummary:
    """What a replay produced: outcomes per grader and the items that failed."""

    dataset: str
    release: str
    run_id: str
    items: int = 0
    app_errors: int = 0
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    """Each grader that failed or errored on an item, and each item the application failed
    on (grader ``None``, outcome ``app_error``, the exception as reason)."""
    ungraded: list[dict[str, Any]] = field(default_factory=list)
    """Items no grader applied to (their span's kind and name): nothing checked them."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {"dataset": self.dataset, "release": self.release, "run_id": self.run_id,
                "items": self.items, "app_errors": self.app_errors,
                "outcomes": {g: dict(c) for g, c in sorted(self.outcomes.items())},
                "failures": self.failures, "ungraded": self.ungraded}

    @property
    def failed(self) -> bool:
        """Whether any grader failed or errored on any item, the application raised, or an
        item was graded by no grader (an unchecked item is no pass)."""
        return bool(self.failures) or self.app_errors > 0 or bool(self.ungraded)


def function_target(spec: str) -> Target:
    """A target calling the function ``spec`` ("module:function") names; async ones too.

    Raises:
        DatasetError: the function cannot be imported.
    """
    try:
        function = import_function(spec)
    except ValueError as exc:
        raise DatasetError(str(exc).replace("python grader", "replay target")) from None
    is_async = inspect.iscoroutinefunction(function)

    def call(value: JSONValue, _item_id: str) -> JSONValue:
        return asyncio.run(function(value)) if is_async else function(value)

    return call


def url_target(url: str, timeout_s: float = 60.0) -> Target:
    """A target POSTing ``{"input": ..., "item_id": ...}`` to ``url``."""
    client = httpx.Client(timeout=timeout_s)

    def call(value: JSONValue, item_id: str) -> JSONValue:
        response = client.post(url, json={"input": value, "item_id": item_id})
        response.raise_for_status()
        body = response.json()
        return body["output"] if isinstance(body, dict) and "output" in body else body

    return call


def replay(store: Store, dataset: str, release: str, target: Target,
           graders: Sequence[Grader], *, concurrency: int = 4,
           progress: Callable[[int], None] | None = None) -> ReplaySummary:
    """Run every item of ``dataset`` through ``target``, store the outputs, and grade them.

    Re-running the same dataset and release replaces that replay's spans and verdicts.

    Raises:
        DatasetError: no such dataset, or it is empty.
    """
    if not release.strip() or len(release) > MAX_KEY_CHARS or "\x00" in release:
        # Checked before the application is called for every item, not when storing its answers
        raise DatasetError(f"a release name is 1 to {MAX_KEY_CHARS} characters, without NUL")
    require_dataset(store, dataset)
    items = dataset_items(store, dataset)
    if not items:
        raise DatasetError(f"dataset {dataset!r} has no items")
    for grader in graders:
        store.register_grader(grader.name, grader.version, grader.config.type,
                              grader.config.model_dump(mode="json"))
    run_id = store.start_run("replay")
    summary = ReplaySummary(dataset, release, run_id, items=len(items))
    status = "failed"
    try:
        shapes = _source_shapes(store, items, _selected_attributes(graders))
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            spans = list(pool.map(lambda item: _run_item(item, dataset, release, target,
                                                         shapes, progress), items))
        _replace(store, spans)
        rows = _grade(spans, graders, run_id, summary)
        store.insert_verdicts(rows)
        failed = [span for span in spans if span.status.code is StatusCode.ERROR]
        summary.app_errors = len(failed)
        summary.failures[:0] = [{"item_id": span.attributes["tracegrade.item_id"],
                                 "grader": None, "outcome": "app_error",
                                 "reason": span.status.message or ""} for span in failed]
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:  # a run that raised must not stay "running"
        store.finish_run(run_id, status, summary.as_dict())
    return summary


Shape = tuple[SpanKind, str, dict[str, JSONValue]]
"""The kind, name and selecting attributes a replayed span takes from its item's source."""


def _selected_attributes(graders: Sequence[Grader]) -> set[str]:
    """The attributes the graders' ``applies_to`` select spans by."""
    return {key for grader in graders for key in grader.config.applies_to.attributes}


def _source_shapes(store: Store, items: list[GoldenItem], selectors: set[str]
                   ) -> dict[str, Shape]:
    """Each item's source span's kind, name and the attributes graders select spans by (from
    the store, else the item's metadata ``span_kind``, ``span_name``, ``span_attributes``).

    Only selecting attributes are copied: the others (tool calls, token counts) describe the
    production answer, not the replayed one.
    """
    shapes = {}
    for item in items:
        span = store.get_span(item.source_span.source, item.source_span.span_id) \
            if item.source_span else None
        if span is not None:
            shapes[item.id] = (span.kind, span.name, {
                key: value for key, value in span.attributes.items() if key in selectors})
            continue
        kind = item.metadata.get("span_kind")
        given = item.metadata.get("span_attributes")
        shapes[item.id] = (SpanKind(str(kind)) if kind in SpanKind._value2member_map_
                           else SpanKind.OTHER, str(item.metadata.get("span_name") or "replay"),
                           dict(given) if isinstance(given, dict) else {})
    return shapes


def _run_item(item: GoldenItem, dataset: str, release: str, target: Target,
              shapes: dict[str, Shape],
              progress: Callable[[int], None] | None) -> Span:
    started = utc_now()
    clock = time.perf_counter()
    status, output = Status(), None
    try:
        output = target(item.input, item.id)
    except Exception as exc:  # the application may fail in any way; that is what replay checks
        status = Status(code=StatusCode.ERROR, message=f"{type(exc).__name__}: {exc}"[:500])
    unstorable = _json_problem(output)
    if unstorable:
        # Checked here, per item: one odd answer must not abort storing the others.
        status, output = Status(code=StatusCode.ERROR, message=unstorable[:500]), None
    elapsed = timedelta(seconds=time.perf_counter() - clock)
    if progress:
        progress(1)
    key = hashlib.blake2b(f"{dataset}\x1f{item.id}\x1f{release}".encode(),
                          digest_size=16).hexdigest()
    kind, name, selecting = shapes[item.id]
    return Span(
        source=REPLAY_SOURCE, span_id=key[:16], trace_id=key, name=name, kind=kind,
        start_time=started, end_time=started + elapsed, status=status, input=item.input,
        output=output, release=release,
        attributes={**selecting, "tracegrade.dataset": dataset, "tracegrade.item_id": item.id,
                    "tracegrade.expected_output": item.expected_output})


def _json_problem(output: JSONValue) -> str | None:
    """Why the store cannot keep ``output`` as JSON (a set, an object…); None when it can."""
    try:
        dump_json(output)
    except (TypeError, ValueError) as exc:
        return f"the output cannot be stored as JSON ({type(exc).__name__}: {exc})"
    return None


def _replace(store: Store, spans: list[Span]) -> None:
    """Store the replay's spans, dropping the verdicts of a previous replay of them."""
    keys = [(span.source, span.span_id) for span in spans]
    v = t.verdicts.c
    with store.engine.begin() as conn:
        for start in range(0, len(keys), 400):
            conn.execute(delete(t.verdicts).where(and_(
                v.source == REPLAY_SOURCE, tuple_(v.source, v.span_id).in_(
                    keys[start:start + 400]))))
    store.upsert_spans(spans)


def _grade(spans: list[Span], graders: Sequence[Grader], run_id: str,
           summary: ReplaySummary) -> list[VerdictRow]:
    rows = []
    for span in spans:
        context = TraceContext(lambda span=span: [span])  # type: ignore[misc]
        applicable = [grader for grader in graders if grader.applies_to(span)]
        if not applicable:
            summary.ungraded.append({"item_id": span.attributes["tracegrade.item_id"],
                                     "kind": span.kind.value, "name": span.name})
        for grader in applicable:
            result = grade_one(grader, span, context)
            outcome = Outcome(result.outcome).value
            summary.outcomes.setdefault(grader.name, Counter())[outcome] += 1
            if outcome in ("fail", "error"):
                summary.failures.append({"item_id": span.attributes["tracegrade.item_id"],
                                         "grader": grader.name, "outcome": outcome,
                                         "reason": result.reason})
            rows.append(VerdictRow(
                source=span.source, span_id=span.span_id, grader=grader.name,
                grader_version=grader.version, outcome=outcome, reason=result.reason[:500],
                inclusion_probability=1.0, run_id=run_id, score=result.score,
                cost=result.cost))
    return rows
