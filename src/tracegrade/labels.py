"""Human labels: a person's pass/fail on (span, criterion), with a critique and a fixed split.

A label's split (train / dev / test) is drawn once, deterministically from its key, and never
changes: few-shot examples come only from ``train`` and calibration tests only on ``test``, so
a judge is never scored on the examples it was shown.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select, tuple_

from tracegrade.spans import utc_now
from tracegrade.store import Store
from tracegrade.store import _schema as t

SPLIT_SHARES = (("train", 0.4), ("dev", 0.2), ("test", 0.4))
"""How labels divide between splits: enough test labels for a usable interval on kappa."""


class Split(StrEnum):
    """Which use a label is reserved for."""

    TRAIN = "train"
    DEV = "dev"
    TEST = "test"


@dataclass(frozen=True)
class Label:
    """One human verdict on one span for one criterion (usually a grader's name)."""

    source: str
    span_id: str
    criterion: str
    label: str
    """``pass`` or ``fail``."""
    critique: str | None = None
    labeler: str | None = None

    def __post_init__(self) -> None:
        if self.label not in ("pass", "fail"):
            raise ValueError(f"label must be 'pass' or 'fail', not {self.label!r}")


def split_for(source: str, span_id: str, criterion: str) -> Split:
    """The split a label on this (span, criterion) belongs to — the same on every machine.

    Every labeler's label on the same span and criterion lands in the same split, so a span can
    never be a few-shot example for one labeler and a test case for another.
    """
    digest = hashlib.blake2b(f"{source}\x1f{span_id}\x1f{criterion}".encode(),
                             digest_size=8).digest()
    u = int.from_bytes(digest, "big") / float(1 << 64)
    cumulative = 0.0
    for name, share in SPLIT_SHARES:
        cumulative += share
        if u < cumulative:
            return Split(name)
    return Split.TEST


@dataclass
class LabelCounts:
    """How a batch of labels landed."""

    inserted: int = 0
    updated: int = 0


def store_labels(store: Store, labels: Iterable[Label]) -> LabelCounts:
    """Insert labels, or update label and critique of ones already stored; splits never change.

    A label's identity is (source, span_id, criterion, labeler).
    """
    counts = LabelCounts()
    batch = list(labels)
    if not batch:
        return counts
    c = t.labels.c
    keys = [(lb.source, lb.span_id, lb.criterion, lb.labeler or "") for lb in batch]
    with store.engine.begin() as conn:
        existing = {
            (row.source, row.span_id, row.criterion, row.labeler or ""): row.id
            for row in conn.execute(
                select(c.id, c.source, c.span_id, c.criterion, c.labeler).where(
                    tuple_(c.source, c.span_id, c.criterion).in_([k[:3] for k in keys])))
        }
        now = utc_now()
        for label, key in zip(batch, keys, strict=True):
            values = {"label": label.label, "critique": label.critique}
            if key in existing:
                conn.execute(t.labels.update().where(c.id == existing[key]).values(**values))
                counts.updated += 1
                continue
            split = split_for(label.source, label.span_id, label.criterion)
            conn.execute(t.labels.insert().values(
                source=label.source, span_id=label.span_id, criterion=label.criterion,
                labeler=label.labeler or "", split=split.value, created_at=now, **values))
            existing[key] = -1
            counts.inserted += 1
    return counts
