"""Few-shot examples for a judge, drawn from human labels of the ``train`` split only.

Labels in ``dev`` and ``test`` are what calibration measures the judge on; showing them to the
judge would grade it on its own homework. Examples are the oldest train labels that carry a
critique, alternating fail and pass, so the prompt is stable as more labels arrive (and cached
answers stay valid); the span being graded is never its own example.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from tracegrade.labels import Split
from tracegrade.spans import Span
from tracegrade.store import Store
from tracegrade.store import _schema as t


@dataclass(frozen=True)
class Example:
    """One labelled span shown to the judge, with the human's verdict and critique."""

    label_id: int
    span: Span
    passed: bool
    critique: str


def train_examples(store: Store, criterion: str, k: int) -> list[Example]:
    """Up to ``k + 1`` train-split examples for ``criterion`` (one spare replaces the graded span).

    Returns them interleaved fail, pass, fail… so any prefix is as balanced as the labels allow.
    """
    if k <= 0:
        return []
    c = t.labels.c
    query = (select(c.id, c.source, c.span_id, c.label, c.critique)
             .where(c.criterion == criterion, c.split == Split.TRAIN.value,
                    c.critique.is_not(None), c.critique != "", c.label.in_(("pass", "fail")))
             .order_by(c.id))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    by_outcome: dict[bool, list[Example]] = {True: [], False: []}
    seen: set[tuple[str, str]] = set()
    for label_id, source, span_id, label, critique in rows:
        passed = label == "pass"
        if (source, span_id) in seen or len(by_outcome[passed]) > k:
            continue
        span = store.get_span(source, span_id)
        if span is None:
            continue
        seen.add((source, span_id))
        by_outcome[passed].append(Example(label_id, span, passed, critique.strip()))
    return _interleave(by_outcome[False], by_outcome[True])[:k + 1]


def examples_for(examples: Sequence[Example], span: Span, k: int) -> list[Example]:
    """The first ``k`` examples that are not ``span`` itself."""
    return [example for example in examples if example.span.key != span.key][:k]


def _interleave(first: list[Example], second: list[Example]) -> list[Example]:
    merged: list[Example] = []
    for index in range(max(len(first), len(second))):
        merged += first[index:index + 1] + second[index:index + 1]
    return merged
