"""Golden items that may no longer be right: time-sensitive, old, or contradicted by production.

An item is flagged, with every reason that applies, when:

- it is **time-sensitive**: flagged so by hand, or its input matches a rule (a date, "current",
  "latest", "today", a price, "who is the CEO of"…; more patterns in ``datasets:``);
- it is **old**: its ``valid_as_of`` is older than ``max_age_days``;
- it **conflicts with production**: production spans with near-identical inputs (cosine
  similarity of their embeddings at least ``similarity``) consistently give one answer, and that
  answer differs from the item's expected output.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped]
from sklearn.preprocessing import normalize  # type: ignore[import-untyped]

from tracegrade.analysis.embedding import Embedder, TfidfSvdEmbedder
from tracegrade.analysis.inputs import (
    SpanFilter,
    golden_texts,
    infer_filter,
    latest_release,
    production_inputs,
)
from tracegrade.datasets import GoldenItem, time_sensitive_reason
from tracegrade.graders._targets import text_of
from tracegrade.spans import JSONValue, utc_now
from tracegrade.store import Store


@dataclass(frozen=True)
class StalenessSettings:
    """When a golden item counts as stale."""

    max_age_days: int = 180
    time_sensitive_patterns: tuple[str, ...] = ()
    similarity: float = 0.95
    """Inputs at least this similar (cosine) count as near-identical."""
    min_support: int = 5
    """Near-identical production spans needed before production's answer counts."""
    consensus: float = 0.8
    """Share of those spans that must agree with their most typical answer."""
    answer_similarity: float = 0.6
    """Answers at least this similar (TF-IDF cosine) are the same answer."""
    now: datetime | None = None


@dataclass
class StaleItem:
    """A golden item with why it may be stale."""

    item_id: str
    reasons: list[str]
    input: str
    expected_output: str | None
    valid_as_of: datetime | None
    production_answer: str | None = None
    production_support: int = 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {"item_id": self.item_id, "reasons": self.reasons, "input": self.input,
                "expected_output": self.expected_output,
                "valid_as_of": self.valid_as_of.isoformat() if self.valid_as_of else None,
                "production_answer": self.production_answer,
                "production_support": self.production_support}


@dataclass
class StalenessReport:
    """Every flagged item of a dataset."""

    dataset: str
    items: int
    release: str | None
    stale: list[StaleItem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {"dataset": self.dataset, "items": self.items, "release": self.release,
                "stale": [item.as_dict() for item in self.stale]}


def find_stale_items(store: Store, dataset: str, settings: StalenessSettings | None = None, *,
                     release: str | None = None, span_filter: SpanFilter | None = None,
                     embedder: Embedder | None = None) -> StalenessReport:
    """Flag the dataset's time-sensitive, old and contradicted items.

    Production answers come from ``release`` (the latest by default), from spans of the kind
    and name the items were promoted from (or ``span_filter``).

    Raises:
        DatasetError: no such dataset.
    """
    settings = settings or StalenessSettings()
    items, texts = golden_texts(store, dataset)
    span_filter = span_filter or infer_filter(store, items)
    release = release or latest_release(store, span_filter)
    production = production_inputs(store, span_filter, release, with_outputs=True)
    conflicts = production_conflicts(texts, [_answer(item.expected_output) for item in items],
                                     production.texts, production.outputs, settings, embedder)
    report = StalenessReport(dataset, len(items), release)
    now = settings.now or utc_now()
    for item, text, conflict in zip(items, texts, conflicts, strict=True):
        reasons = _rule_reasons(item, text, settings, now)
        stale = StaleItem(item.id, reasons, text, _answer(item.expected_output),
                          item.valid_as_of)
        if conflict is not None:
            stale.production_answer, stale.production_support = conflict
            reasons.append(f"production now answers differently ({conflict[1]} near-identical "
                           "inputs agree)")
        if reasons:
            report.stale.append(stale)
    return report


def _rule_reasons(item: GoldenItem, text: str, settings: StalenessSettings,
                  now: datetime) -> list[str]:
    reasons = []
    phrase = time_sensitive_reason(text, settings.time_sensitive_patterns)
    if item.time_sensitive or phrase:
        reasons.append(f"time-sensitive ({phrase!r})" if phrase else "time-sensitive (flagged)")
    if item.valid_as_of is not None and now - item.valid_as_of > timedelta(
            days=settings.max_age_days):
        age = (now - item.valid_as_of).days
        reasons.append(f"valid as of {item.valid_as_of.date()}, {age} days ago "
                       f"(max {settings.max_age_days})")
    return reasons


def _answer(value: JSONValue) -> str | None:
    return None if value is None else text_of(value)


def production_conflicts(golden_inputs: Sequence[str], expected: Sequence[str | None],
                         production_inputs: Sequence[str], production_outputs: Sequence[Any],
                         settings: StalenessSettings, embedder: Embedder | None = None
                         ) -> list[tuple[str, int] | None]:
    """For each golden item: production's consistent, different answer and its support, or None.
    """
    result: list[tuple[str, int] | None] = [None] * len(golden_inputs)
    answered = [i for i, text in enumerate(expected) if text]
    if not answered or len(production_inputs) < settings.min_support:
        return result
    embedder = embedder or TfidfSvdEmbedder()
    vectors = embedder.embed(list(production_inputs) + list(golden_inputs))
    prod, golden = vectors[:len(production_inputs)], vectors[len(production_inputs):]
    outputs = [_answer(o) or "" for o in production_outputs]
    neighbours = {i: np.flatnonzero(prod @ golden[i] >= settings.similarity) for i in answered}
    wanted = sorted({int(j) for found in neighbours.values() for j in found})
    if not wanted:
        return result
    answer_vectors = _answer_vectors([outputs[j] for j in wanted] +
                                     [str(expected[i]) for i in answered])
    row_of = {j: r for r, j in enumerate(wanted)}
    for position, i in enumerate(answered):
        found = neighbours[i]
        if found.size < settings.min_support:
            continue
        rows = answer_vectors[[row_of[int(j)] for j in found]]
        similarity = rows @ rows.T
        typical = int(np.argmax(similarity.mean(axis=1)))
        support = int(np.sum(similarity[typical] >= settings.answer_similarity))
        if support < settings.consensus * found.size:
            continue
        expected_vector = answer_vectors[len(wanted) + position]
        answer = outputs[int(found[typical])]
        if float(rows[typical] @ expected_vector) < settings.answer_similarity \
                or _numbers_changed(str(expected[i]), answer,
                                    [outputs[int(j)] for j in found], settings.consensus):
            result[i] = (answer, support)
    return result


_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")


def _numbers_changed(expected: str, typical: str, answers: list[str], consensus: float) -> bool:
    """Whether production agrees on numbers (days, prices, dates) other than the expected
    answer's: "You have 14 days to send it back" against "You have 30 days…" is the same
    sentence to TF-IDF, and exactly the fact that went stale. Answers whose numbers vary (an
    order id each) agree on none, and flag nothing."""
    wanted = frozenset(_NUMBER.findall(expected))
    said = frozenset(_NUMBER.findall(typical))
    if not wanted or not said or wanted == said:
        return False
    agreeing = sum(frozenset(_NUMBER.findall(answer)) == said for answer in answers)
    return agreeing >= consensus * len(answers)


def _answer_vectors(texts: list[str]) -> Any:
    try:
        matrix = TfidfVectorizer(lowercase=True, strip_accents="unicode",
                                 dtype=np.float32).fit_transform(texts)
    except ValueError:  # no words at all
        return np.zeros((len(texts), 1), dtype=np.float32)
    return normalize(matrix).toarray()
