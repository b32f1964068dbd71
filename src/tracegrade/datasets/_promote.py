"""Promote production spans into a golden dataset: by span id, or by query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import and_, select, tuple_

from tracegrade.datasets._items import GoldenItem, SourceSpan
from tracegrade.datasets._replay import EXCLUDED_SOURCES
from tracegrade.datasets._rules import time_sensitive_reason
from tracegrade.datasets._store import DatasetError, ItemCounts, add_items, require_dataset
from tracegrade.graders._targets import text_of
from tracegrade.spans import Span
from tracegrade.store import Store
from tracegrade.store import _schema as t


@dataclass(frozen=True)
class Promotion:
    """Why a span is promoted, kept in the item's metadata."""

    reason: str
    expected_from_output: bool = True
    """Use the span's output as the expected output (False for failing spans: it is wrong)."""
    details: dict[str, Any] | None = None


def item_from_span(span: Span, promotion: Promotion,
                   time_patterns: Sequence[str] = ()) -> GoldenItem:
    """A golden item holding the span's input, linked back to the span."""
    metadata: dict[str, Any] = {"promoted_because": promotion.reason, "span_name": span.name,
                                "span_kind": span.kind.value}
    if span.release is not None:
        metadata["release"] = span.release
    if promotion.details:
        metadata.update(promotion.details)
    if not promotion.expected_from_output:
        metadata["observed_output"] = span.output
    time_phrase = time_sensitive_reason(text_of(span.input) if span.input is not None else "",
                                        time_patterns)
    if time_phrase:
        metadata["time_sensitive_because"] = time_phrase
    return GoldenItem(
        id=f"{span.source}:{span.span_id}", input=span.input,
        expected_output=span.output if promotion.expected_from_output else None,
        source_span=SourceSpan(source=span.source, span_id=span.span_id,
                               trace_id=span.trace_id),
        valid_as_of=span.start_time, time_sensitive=time_phrase is not None, metadata=metadata)


def promote_spans(store: Store, dataset: str, keys: Sequence[tuple[str, str]],
                  promotion: Promotion | None = None,
                  time_patterns: Sequence[str] = (),
                  critiques: Mapping[tuple[str, str], str] | None = None) -> ItemCounts:
    """Add the spans with these (source, span_id) keys to ``dataset``; a span already there is
    left as it is (its item may have been corrected by hand). ``critiques`` (a failing
    verdict's reason, by key) go into the items' metadata.

    Raises:
        DatasetError: no such dataset, or a span is not in the store.
    """
    require_dataset(store, dataset)
    promotion = promotion or Promotion("promoted by id")
    found = []
    for source, span_id in keys:
        span = store.get_span(source, span_id)
        if span is None:
            raise DatasetError(f"span {span_id} (source {source}) is not in the store")
        critique = (critiques or {}).get((source, span_id))
        found.append(item_from_span(span, replace(promotion, details={
            **(promotion.details or {}), "critique": critique}) if critique else promotion,
            time_patterns))
    return add_items(store, dataset, found, keep_existing=True)


def failing_reasons(store: Store, grader: str, grader_version: str,
                    keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The reason of each of these spans' failing verdict from the grader version."""
    v = t.verdicts.c
    found: dict[tuple[str, str], str] = {}
    with store.engine.connect() as conn:
        for start in range(0, len(keys), 400):
            chunk = list(keys[start:start + 400])
            query = select(v.source, v.span_id, v.reason).where(
                v.grader == grader, v.grader_version == grader_version, v.outcome == "fail",
                tuple_(v.source, v.span_id).in_(chunk))
            found.update({(row[0], row[1]): row[2] for row in conn.execute(query) if row[2]})
    return found


def resolve_span_keys(store: Store, span_ids: Sequence[str], source: str | None
                      ) -> list[tuple[str, str]]:
    """(source, span_id) for each id; without ``source`` the id must be in exactly one source.

    Raises:
        DatasetError: an id is unknown or ambiguous.
    """
    if source is not None:
        return [(source, span_id) for span_id in span_ids]
    keys = []
    with store.engine.connect() as conn:
        for span_id in span_ids:
            sources = list(conn.execute(select(t.spans.c.source).where(
                t.spans.c.span_id == span_id)).scalars())
            if len(sources) != 1:
                problem = "is not in the store" if not sources else \
                    f"is in several sources ({', '.join(sorted(sources))}); pass --source"
                raise DatasetError(f"span {span_id} {problem}")
            keys.append((sources[0], span_id))
    return keys


def failing_span_keys(store: Store, grader: str, grader_version: str, *,
                      release: str | None = None, limit: int = 50) -> list[tuple[str, str]]:
    """Production spans the grader version failed, most recent first (not replays)."""
    v, s = t.verdicts.c, t.spans.c
    query = (select(v.source, v.span_id)
             .select_from(t.verdicts.join(t.spans, and_(s.source == v.source,
                                                        s.span_id == v.span_id)))
             .where(v.grader == grader, v.grader_version == grader_version,
                    v.outcome == "fail", v.source.not_in(EXCLUDED_SOURCES))
             .order_by(s.start_time.desc(), v.span_id).limit(limit))
    if release is not None:
        query = query.where(s.release == release)
    with store.engine.connect() as conn:
        return [(row[0], row[1]) for row in conn.execute(query)]


def labeled_span_keys(store: Store, criterion: str | None = None, *, label: str | None = None,
                      release: str | None = None, limit: int = 50
                      ) -> list[tuple[str, str, str, str | None]]:
    """(source, span_id, label, critique) of human-labeled production spans, newest first.

    A span's label is what its labels agree on: for each criterion the majority of its
    labelers (a tie is ``fail``: an output people dispute must not become an expected
    output), and across criteria ``fail`` if any criterion fails. The critique joins those
    of the failing labels (else of all). ``label`` keeps the spans whose agreed label it is;
    the order is that of each span's newest label.
    """
    lb, s = t.labels.c, t.spans.c
    query = (select(lb.source, lb.span_id, lb.criterion, lb.label, lb.critique)
             .select_from(t.labels.join(t.spans, and_(s.source == lb.source,
                                                      s.span_id == lb.span_id)))
             .where(lb.source.not_in(EXCLUDED_SOURCES))
             .order_by(lb.created_at.desc(), lb.id.desc()))
    if criterion is not None:
        query = query.where(lb.criterion == criterion)
    if release is not None:
        query = query.where(s.release == release)
    grouped: dict[tuple[str, str], list[tuple[str, str, str | None]]] = {}
    with store.engine.connect() as conn:
        for source, span_id, criterion_of, label_of, critique in conn.execute(query):
            grouped.setdefault((source, span_id), []).append((criterion_of, label_of, critique))
    chosen = []
    for (source, span_id), labels in grouped.items():  # newest label first
        agreed, critique = _agreed_label(labels)
        if label is None or agreed == label:
            chosen.append((source, span_id, agreed, critique))
            if len(chosen) >= limit:
                break
    return chosen


def _agreed_label(labels: Sequence[tuple[str, str, str | None]]) -> tuple[str, str | None]:
    """The label several (criterion, label, critique) agree on, and its critique."""
    votes: dict[str, list[int]] = {}
    for criterion, label, _ in labels:
        tally = votes.setdefault(criterion, [0, 0])
        tally[label == "pass"] += 1
    agreed = "pass" if all(passes > fails for fails, passes in votes.values()) else "fail"
    critiques = [critique for _, label, critique in labels
                 if critique and (agreed == "pass" or label == "fail")]
    return agreed, "\n".join(dict.fromkeys(critiques)) or None


def promote_labeled(store: Store, dataset: str, criterion: str | None = None, *,
                    release: str | None = None, limit: int = 50,
                    time_patterns: Sequence[str] = ()) -> ItemCounts:
    """Promote human-labeled spans: a passing span's output becomes the expected output; a
    failing one keeps its output and critique in the metadata, to be corrected by hand."""
    require_dataset(store, dataset)
    items = []
    for source, span_id, label, critique in labeled_span_keys(
            store, criterion, release=release, limit=limit):
        span = store.get_span(source, span_id)
        if span is None:
            continue
        details = {"human_label": label, **({"critique": critique} if critique else {})}
        promotion = Promotion(f"labeled {label}" + (f" for {criterion}" if criterion else ""),
                              expected_from_output=label == "pass", details=details)
        items.append(item_from_span(span, promotion, time_patterns))
    return add_items(store, dataset, items, keep_existing=True)
