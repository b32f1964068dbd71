"""The production inputs a golden dataset is compared with: which spans, which release."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from tracegrade.datasets import EXCLUDED_SOURCES, GoldenItem, dataset_items, require_dataset
from tracegrade.graders._targets import text_of
from tracegrade.spans import JSONValue
from tracegrade.store import Store
from tracegrade.store import _schema as t


@dataclass(frozen=True)
class SpanFilter:
    """Which production spans stand for "what users send": a kind and name, or root spans."""

    kind: str | None = None
    name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {"kind": self.kind, "name": self.name, "roots_only": self.roots_only}

    @property
    def roots_only(self) -> bool:
        """Without a kind or name, the root span of each trace is compared."""
        return self.kind is None and self.name is None


@dataclass
class ProductionInputs:
    """Production spans' keys, input texts and (when asked) outputs."""

    release: str | None
    span_filter: SpanFilter
    keys: list[tuple[str, str]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    outputs: list[JSONValue] = field(default_factory=list)


def item_text(item: GoldenItem) -> str:
    """A golden item's input as text."""
    return text_of(item.input) if item.input is not None else ""


def golden_texts(store: Store, dataset: str) -> tuple[list[GoldenItem], list[str]]:
    """The dataset's items and their input texts.

    Raises:
        DatasetError: no such dataset.
    """
    require_dataset(store, dataset)
    items = dataset_items(store, dataset)
    return items, [item_text(item) for item in items]


def infer_filter(store: Store, items: list[GoldenItem]) -> SpanFilter:
    """The (kind, name) most golden items were promoted from; root spans when unknown."""
    shapes: Counter[tuple[str, str]] = Counter()
    for item in items:
        kind, name = item.metadata.get("span_kind"), item.metadata.get("span_name")
        if (kind is None or name is None) and item.source_span is not None:
            span = store.get_span(item.source_span.source, item.source_span.span_id)
            if span is not None:
                kind, name = span.kind.value, span.name
        if kind is not None and name is not None:
            shapes[(str(kind), str(name))] += 1
    if not shapes:
        return SpanFilter()
    (kind, name), _ = shapes.most_common(1)[0]
    return SpanFilter(kind, name)


def latest_release(store: Store, span_filter: SpanFilter) -> str | None:
    """The release whose matching spans started last."""
    s = t.spans.c
    query = (select(s.release).where(*_conditions(span_filter), s.release.is_not(None))
             .group_by(s.release).order_by(func.min(s.start_time).desc()).limit(1))
    with store.engine.connect() as conn:
        return conn.execute(query).scalar()


def production_inputs(store: Store, span_filter: SpanFilter, release: str | None, *,
                      with_outputs: bool = False, page_size: int = 5000) -> ProductionInputs:
    """Input texts (and outputs) of matching spans of ``release`` (every release when None)."""
    s = t.spans.c
    columns = [s.id, s.source, s.span_id, s.input] + ([s.output] if with_outputs else [])
    found = ProductionInputs(release, span_filter)
    after = 0
    with store.engine.connect() as conn:
        while True:
            query = select(*columns).where(*_conditions(span_filter), s.id > after)
            if release is not None:
                query = query.where(s.release == release)
            rows = conn.execute(query.order_by(s.id).limit(page_size)).all()
            if not rows:
                break
            after = rows[-1][0]
            for row in rows:
                found.keys.append((row[1], row[2]))
                found.texts.append(text_of(row[3]) if row[3] is not None else "")
                if with_outputs:
                    found.outputs.append(row[4])
    return found


def _conditions(span_filter: SpanFilter) -> list[Any]:
    s = t.spans.c
    conditions: list[Any] = [s.source.not_in(EXCLUDED_SOURCES)]
    if span_filter.kind is not None:
        conditions.append(s.kind == span_filter.kind)
    if span_filter.name is not None:
        conditions.append(s.name == span_filter.name)
    if span_filter.roots_only:
        conditions.append(s.parent_id.is_(None))
    return conditions


