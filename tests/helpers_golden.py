"""Stores filled with spans, verdicts and labels for the label, calibration and dataset tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tests.conftest import make_span
from tracegrade.labels import Label, store_labels
from tracegrade.spans import Span
from tracegrade.store import Store, VerdictRow

GRADER = "reply_ok"
VERSION = "v1"


def add_verdicts(store: Store, spans: Sequence[Span], outcomes: Iterable[str],
                 grader: str = GRADER, version: str = VERSION,
                 scores: Iterable[float | None] | None = None,
                 inclusion_probability: float = 1.0) -> None:
    """Store the spans and one verdict of ``grader`` per span."""
    store.upsert_spans(spans)
    store.register_grader(grader, version, "regex", {"name": grader})
    score_list = list(scores) if scores is not None else [None] * len(spans)
    store.insert_verdicts([
        VerdictRow(source=span.source, span_id=span.span_id, grader=grader,
                   grader_version=version, outcome=outcome, reason=f"{outcome} by rule",
                   inclusion_probability=inclusion_probability, run_id="run", score=score)
        for span, outcome, score in zip(spans, outcomes, score_list, strict=True)
    ])


def spans(count: int, release: str = "r1", start: int = 0) -> list[Span]:
    """``count`` LLM spans of one release."""
    return [make_span(start + i, release=release) for i in range(count)]


def add_labels(store: Store, spans: Sequence[Span], labels: Iterable[str],
               criterion: str = GRADER, labeler: str = "ann") -> None:
    """One human label per span."""
    store_labels(store, [Label(span.source, span.span_id, criterion, label, labeler=labeler)
                         for span, label in zip(spans, labels, strict=True)])
