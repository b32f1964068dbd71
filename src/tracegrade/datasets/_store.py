"""Golden datasets in the store (tables ``datasets`` and ``dataset_items``), and JSONL files."""

from __future__ import annotations

import sys
from codecs import BOM_UTF8
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import case, func, null, select
from sqlalchemy.dialects import postgresql, sqlite

from tracegrade._validation import describe_validation_error
from tracegrade.datasets._items import GoldenItem, SourceSpan
from tracegrade.graders._common import json_type
from tracegrade.spans import MAX_KEY_CHARS, utc_now
from tracegrade.store import Store
from tracegrade.store import _schema as t

MAX_PROBLEMS_KEPT = 50


class DatasetError(ValueError):
    """A dataset operation cannot proceed; the message says why (unknown dataset, bad file…)."""


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset with a summary of its items."""

    name: str
    description: str | None
    created_at: datetime
    items: int
    time_sensitive: int
    with_expected_output: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {"name": self.name, "description": self.description,
                "created_at": self.created_at.isoformat(), "items": self.items,
                "time_sensitive": self.time_sensitive,
                "with_expected_output": self.with_expected_output}


@dataclass
class ItemCounts:
    """How a batch of items landed: new, changed, or the same as stored."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    problem_count: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {"inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged,
                "bad_lines": self.problem_count, "problems": self.problems}


def create_dataset(store: Store, name: str, description: str | None = None, *,
                   exist_ok: bool = False) -> bool:
    """Create an empty dataset; returns False when it already existed (and ``exist_ok``).

    Raises:
        DatasetError: the dataset exists and ``exist_ok`` is false, or the name is empty.
    """
    if not name.strip():
        raise DatasetError("a dataset needs a name")
    if len(name) > MAX_KEY_CHARS or "\x00" in name:
        raise DatasetError(f"a dataset name is at most {MAX_KEY_CHARS} characters, without "
                           f"NUL: {name[:40]!r}…")
    with store.engine.begin() as conn:
        exists = conn.execute(select(t.datasets.c.name).where(t.datasets.c.name == name)).first()
        if exists:
            if exist_ok:
                return False
            raise DatasetError(f"dataset {name!r} already exists")
        conn.execute(t.datasets.insert().values(name=name, description=description,
                                                created_at=utc_now()))
    return True


def require_dataset(store: Store, name: str) -> None:
    """Raise :class:`DatasetError` naming the known datasets when ``name`` is not one."""
    with store.engine.connect() as conn:
        names = list(conn.execute(select(t.datasets.c.name).order_by(t.datasets.c.name))
                     .scalars())
    if name not in names:
        known = ", ".join(names) or "none yet"
        raise DatasetError(f"no dataset named {name!r} (datasets: {known})")


def list_datasets(store: Store) -> list[DatasetInfo]:
    """Every dataset with its item counts."""
    d, i = t.datasets.c, t.dataset_items.c
    counts = (select(i.dataset, func.count().label("item_count"),
                     func.sum(case((i.time_sensitive, 1), else_=0)).label("sensitive"),
                     func.count(i.expected_output).label("expected"))
              .group_by(i.dataset).subquery())
    query = (select(d.name, d.description, d.created_at, counts.c.item_count, counts.c.sensitive,
                    counts.c.expected)
             .select_from(t.datasets.outerjoin(counts, counts.c.dataset == d.name))
             .order_by(d.name))
    with store.engine.connect() as conn:
        return [DatasetInfo(row[0], row[1], row[2], int(row[3] or 0), int(row[4] or 0),
                            int(row[5] or 0)) for row in conn.execute(query)]


def add_items(store: Store, dataset: str, items: Iterable[GoldenItem], *,
              keep_existing: bool = False) -> ItemCounts:
    """Insert items, or replace stored ones with the same id when they changed.

    With ``keep_existing`` an item already stored is left as it is (counted unchanged): a span
    promoted again must not undo the expected output someone corrected by hand.

    Raises:
        DatasetError: no such dataset.
    """
    require_dataset(store, dataset)
    counts = ItemCounts()
    listed = list(items)
    rows = {item.id: _row(dataset, item) for item in listed}
    # The store keeps U+0000 in JSON as U+FFFD (PostgreSQL's jsonb refuses it): compared as
    # stored, an item holding one is not "updated" on every import of the same file.
    item_lines = {item.id: item.to_json_line().replace(b"\\u0000", "\ufffd".encode())
                  for item in listed}
    if not rows:
        return counts
    stored = {item.id: item for item in dataset_items(store, dataset, list(rows))}
    changed = []
    for item_id, row in rows.items():
        previous = stored.get(item_id)
        if previous is None:
            counts.inserted += 1
        elif keep_existing or previous.to_json_line() == item_lines[item_id]:
            counts.unchanged += 1
            continue
        else:
            counts.updated += 1
        changed.append({**row, "created_at": utc_now()})
    if changed:
        with store.engine.begin() as conn:
            conn.execute(_upsert(store), changed)
    return counts


def _upsert(store: Store) -> Any:
    dialect_insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    statement = dialect_insert(t.dataset_items)
    replaced = {name: statement.excluded[name] for name in
                ("input", "expected_output", "source", "span_id", "trace_id", "valid_as_of",
                 "time_sensitive", "item_metadata")}
    return statement.on_conflict_do_update(index_elements=["dataset", "item_id"], set_=replaced)


def _row(dataset: str, item: GoldenItem) -> dict[str, Any]:
    span = item.source_span
    # SQL NULL, not JSON null, for a missing expected output: `count(expected_output)` and
    # `where expected_output is null` then mean what they say.
    return {"dataset": dataset, "item_id": item.id, "input": item.input,
            "expected_output": null() if item.expected_output is None else item.expected_output,
            "source": span.source if span else None, "span_id": span.span_id if span else None,
            "trace_id": span.trace_id if span else None, "valid_as_of": item.valid_as_of,
            "time_sensitive": item.time_sensitive, "item_metadata": item.metadata or None}


def dataset_items(store: Store, dataset: str, ids: list[str] | None = None) -> list[GoldenItem]:
    """The dataset's items in the order they were first added (all, or those with ``ids``)."""
    i = t.dataset_items.c
    query = select(t.dataset_items).where(i.dataset == dataset).order_by(i.id)
    found: list[GoldenItem] = []
    with store.engine.connect() as conn:
        if ids is None:
            return [_item(row._mapping) for row in conn.execute(query)]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            found += [_item(row._mapping) for row in conn.execute(query.where(i.item_id.in_(
                chunk)))]
    return found


def _item(m: Any) -> GoldenItem:
    span = SourceSpan(source=m["source"], span_id=m["span_id"], trace_id=m["trace_id"]) \
        if m["source"] and m["span_id"] else None
    return GoldenItem.model_construct(
        id=m["item_id"], input=m["input"], expected_output=m["expected_output"],
        source_span=span, valid_as_of=m["valid_as_of"], time_sensitive=bool(m["time_sensitive"]),
        metadata=m["item_metadata"] or {})


def import_dataset(store: Store, dataset: str, path: Path, *,
                   description: str | None = None) -> ItemCounts:
    """Import a JSONL file into ``dataset`` (created when missing); bad lines are skipped.

    Raises:
        FileNotFoundError: no such file.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    create_dataset(store, dataset, description, exist_ok=True)
    problems = ItemCounts()
    items = list(_read_jsonl(path, problems))
    counts = add_items(store, dataset, items)
    counts.problem_count, counts.problems = problems.problem_count, problems.problems
    return counts


class _NotAnItem(Exception):
    """A JSONL line holding JSON that is not an object."""


def _read_jsonl(path: Path, counts: ItemCounts) -> Iterator[GoldenItem]:
    seen: set[str] = set()
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            # A BOM (Windows editors, Excel) is not part of the first item.
            line = raw.removeprefix(BOM_UTF8) if number == 1 else raw
            if not line.strip():
                continue
            problem = None
            try:
                value = orjson.loads(line)
                if not isinstance(value, dict):
                    raise _NotAnItem(value)
                item = GoldenItem.model_validate(value)
                if item.id in seen:
                    problem = f"id {item.id!r} appears twice (the first one is kept)"
                seen.add(item.id)
            except orjson.JSONDecodeError as exc:
                problem = f"not JSON ({exc})"
            except _NotAnItem as exc:
                problem = (f"a JSON {json_type(exc.args[0])}, not an item "
                           '(a JSON object: {"id": …, "input": …, …})')
            except ValidationError as exc:
                problem = describe_validation_error(exc)
            if problem is None:
                yield item
                continue
            counts.problem_count += 1
            if len(counts.problems) < MAX_PROBLEMS_KEPT:
                counts.problems.append(f"{path}:{number}: {problem}")


def export_dataset(store: Store, dataset: str, path: Path | None = None) -> int:
    """Write the dataset as JSONL to ``path`` (stdout when None); returns how many items.

    Raises:
        DatasetError: no such dataset.
    """
    require_dataset(store, dataset)
    items = dataset_items(store, dataset)
    content = b"".join(item.to_json_line() + b"\n" for item in items)
    if path is None:
        # Bytes, not text: the locale's encoding (ASCII under some CI runners) must not
        # refuse a non-Latin input, nor change what an export to a file would hold.
        sys.stdout.flush()
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
    else:
        path.write_bytes(content)
    return len(items)
