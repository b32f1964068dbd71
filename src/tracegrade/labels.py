"""Human labels: a person's pass/fail on (span, criterion), with a critique and a fixed split.

A label's split (train / dev / test) is drawn once, deterministically from its key, and never
changes: few-shot examples come only from ``train`` and calibration tests only on ``test``, so
a judge is never scored on the examples it was shown.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, and_, bindparam, select, tuple_

from tracegrade.graders._targets import text_of
from tracegrade.spans import JSONValue, utc_now
from tracegrade.store import Store
from tracegrade.store import _schema as t

SPLIT_SHARES = (("train", 0.4), ("dev", 0.2), ("test", 0.4))
"""How labels divide between splits: enough test labels for a usable interval on kappa."""
_LOOKUP_CHUNK = 500
"""Keys per ``IN (…)`` lookup: well inside every backend's limit on bound parameters."""


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
    unchanged: int = 0
    """Labels already stored with the same label and critique (nothing written)."""
    superseded: int = 0
    """Labels replaced by a later one with the same identity in the same batch."""


def store_labels(store: Store, labels: Iterable[Label]) -> LabelCounts:
    """Insert labels, or update label and critique of ones already stored; splits never change.

    A label's identity is (source, span_id, criterion, labeler); when the batch holds the same
    one twice, the later one wins (a corrected row further down a file).
    """
    given = list(labels)
    latest = {(lb.source, lb.span_id, lb.criterion, lb.labeler or ""): lb for lb in given}
    counts = LabelCounts(superseded=len(given) - len(latest))
    batch = list(latest.values())
    if not batch:
        return counts
    keys = list(latest)
    with store.engine.begin() as conn:
        existing = _stored_labels(conn, sorted({key[:3] for key in keys}))
        now = utc_now()
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for label, key in zip(batch, keys, strict=True):
            if key not in existing:
                split = split_for(label.source, label.span_id, label.criterion)
                inserts.append({"source": label.source, "span_id": label.span_id,
                                "criterion": label.criterion, "labeler": label.labeler or "",
                                "split": split.value, "created_at": now, "label": label.label,
                                "critique": label.critique})
            elif existing[key][1:] != (label.label, label.critique):
                updates.append({"row_id": existing[key][0], "new_label": label.label,
                                "new_critique": label.critique})
        # One executemany each: a statement per label took 40 s to store 90,000.
        if inserts:
            conn.execute(t.labels.insert(), inserts)
        if updates:
            conn.execute(t.labels.update().where(t.labels.c.id == bindparam("row_id")).values(
                label=bindparam("new_label"), critique=bindparam("new_critique")), updates)
    counts.inserted, counts.updated = len(inserts), len(updates)
    counts.unchanged = len(batch) - len(inserts) - len(updates)  # stored already, the same
    return counts


def _stored_labels(conn: Connection, keys: Iterable[tuple[str, str, str]]
                   ) -> dict[tuple[str, str, str, str], tuple[int, str, str | None]]:
    """(id, label, critique) of the stored labels on these (source, span_id, criterion)."""
    span_ids: dict[tuple[str, str], list[str]] = {}
    for source, span_id, criterion in keys:
        span_ids.setdefault((source, criterion), []).append(span_id)
    c = t.labels.c
    found: dict[tuple[str, str, str, str], tuple[int, str, str | None]] = {}
    # In chunks: one IN over a whole file's keys overflowed PostgreSQL's stack (10,000 labels)
    # and SQLite's bound-parameter limit (90,000). By span id within a source and criterion, as
    # the store looks spans up: chunks of (source, span_id, criterion) tuples took 34 s to
    # find 90,000 stored labels on PostgreSQL (11 s on SQLite), this 3 s (2 s).
    for (source, criterion), ids in span_ids.items():
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            query = select(c.id, c.span_id, c.labeler, c.label, c.critique).where(
                c.source == source, c.criterion == criterion,
                c.span_id.in_(ids[start:start + _LOOKUP_CHUNK]))
            found.update({(source, row.span_id, criterion, row.labeler or ""):
                          (row.id, row.label, row.critique) for row in conn.execute(query)})
    return found


# -- label files ------------------------------------------------------------------------------

LABEL_COLUMNS = ("source", "span_id", "criterion", "label", "critique", "labeler")
"""The columns of a label file (CSV header or JSONL keys); ``grader`` is accepted for
``criterion``, and columns a queue file adds (input, output, judge…) are ignored."""

_PASS_WORDS = frozenset({"pass", "passed", "true", "1", "yes", "y", "good", "ok"})
_FAIL_WORDS = frozenset({"fail", "failed", "false", "0", "no", "n", "bad"})
MAX_PROBLEMS_KEPT = 50
_CSV_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)
"""No limit on a CSV field, in what csv accepts everywhere (a C long; 32 bits on Windows)."""


class LabelFileError(ValueError):
    """A label file cannot be read at all (unknown format, no usable header)."""


@dataclass
class LabelImport:
    """What importing a label file did."""

    path: str
    read: int = 0
    blank: int = 0
    """Rows without a label yet (an unfilled queue row): skipped silently."""
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    """Rows whose label is stored already, the same."""
    superseded: int = 0
    """Rows overridden by a later row for the same label in the file (the later one wins)."""
    overrides: list[str] = field(default_factory=list)
    """Where: "FILE:line 7 by line 8 (pass → fail)", the first few."""
    unknown_spans: int = 0
    """Labels whose span is not in the store (kept: the span may be imported later)."""
    problem_count: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, message: str) -> None:
        """Count a bad row, keeping the first few messages."""
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(message)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {"path": self.path, "read": self.read, "blank": self.blank,
                "inserted": self.inserted, "updated": self.updated,
                "unchanged": self.unchanged, "superseded": self.superseded,
                "overrides": self.overrides, "unknown_spans": self.unknown_spans,
                "bad_rows": self.problem_count, "problems": self.problems}


def import_label_file(store: Store, path: Path, source: str | None = None) -> LabelImport:
    """Read a CSV or JSONL label file and store its labels; bad rows are reported and skipped.

    Args:
        store: where labels go.
        path: the file; ``.csv`` is CSV, ``.jsonl``/``.ndjson`` is JSON lines, anything else is
            sniffed from its first character.
        source: the span source for rows without a ``source`` column; when neither is given, the
            source is looked up by span id in the store (it must be unambiguous).

    Raises:
        FileNotFoundError: no such file.
        LabelFileError: the file is not UTF-8, or neither CSV with the needed columns nor JSONL.
    """
    summary = LabelImport(path=str(path))
    rows = list(_label_rows(path))
    pending: list[tuple[str, dict[str, Any]]] = []
    for where, row in rows:
        if "__problem__" not in row and _is_blank(row.get("label")):
            summary.blank += 1
            continue
        summary.read += 1
        pending.append((where, row))
    sources = _sources_by_span_id(store, [str(r.get("span_id") or "") for _, r in pending])
    labels: list[Label] = []
    seen: dict[tuple[str, str, str, str], tuple[str, str]] = {}
    for where, row in pending:
        try:
            label = _label_from_row(row, source, sources)
        except ValueError as exc:
            summary.problem(f"{path}:{where}: {exc}")
            continue
        labels.append(label)
        key = (label.source, label.span_id, label.criterion, label.labeler or "")
        if key in seen and len(summary.overrides) < MAX_PROBLEMS_KEPT:
            earlier, earlier_label = seen[key]
            change = f"{earlier_label} → {label.label}" if earlier_label != label.label \
                else "same label"
            summary.overrides.append(f"{path}:{earlier} by {where} ({change})")
        seen[key] = (where, label.label)
    counts = store_labels(store, labels)
    summary.inserted, summary.updated = counts.inserted, counts.updated
    summary.unchanged, summary.superseded = counts.unchanged, counts.superseded
    known = {(s, span_id) for span_id, found in sources.items() for s in found}
    summary.unknown_spans = sum(1 for lb in labels if (lb.source, lb.span_id) not in known)
    return summary


def _is_blank(value: Any) -> bool:
    """No label yet: missing, or empty text. ``false`` and ``0`` are labels (fail)."""
    return value is None or (isinstance(value, str) and not value.strip())


def _label_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each row of the file with its location ("line N")."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM (Excel's "CSV UTF-8") is fine
    except UnicodeDecodeError as exc:
        # Guessing another encoding could silently garble names and critiques.
        raise LabelFileError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}): save it as UTF-8 (in Excel: CSV UTF-8) and import it again"
        ) from None
    suffix = path.suffix.lower()
    is_jsonl = suffix in (".jsonl", ".ndjson") or (
        suffix != ".csv" and text.lstrip().startswith("{"))
    return _jsonl_rows(text) if is_jsonl else _csv_rows(path, text)


def _jsonl_rows(text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    # Not splitlines(): it also breaks at U+2028, U+0085 and the like, which JSON allows
    # unescaped inside strings (orjson writes them so). \r\n is \n already (read_text).
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            value = {"__problem__": f"not JSON ({exc})"}
        if not isinstance(value, dict):
            value = {"__problem__": "not a JSON object"}
        yield f"line {number}", value


def _csv_rows(path: Path, text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    # A queue file holds whole span inputs and outputs, longer than csv's default field limit
    # (131,072 characters). The limit is the csv module's, for every reader: put it back.
    previous = csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        yield from _csv_label_rows(path, csv.DictReader(io.StringIO(text, newline="")))
    finally:
        csv.field_size_limit(previous)


def _csv_label_rows(path: Path, reader: csv.DictReader[str]
                    ) -> Iterator[tuple[str, dict[str, Any]]]:
    header = {name.strip().lower() for name in reader.fieldnames or []}
    if "span_id" not in header or "label" not in header or not header & {"criterion", "grader"}:
        raise LabelFileError(f"{path}: a label file needs the columns span_id, criterion (or "
                             f"grader) and label; found {', '.join(sorted(header)) or 'none'}")
    columns = len(reader.fieldnames or [])
    for row in reader:
        cleaned = {(k or "").strip().lower(): v for k, v in row.items()}
        if cleaned.get("label", "") is None:  # csv fills fields a short row lacks with None
            given = sum(1 for value in row.values() if value is not None)
            cleaned = {"__problem__": f"the row has {given} of the header's {columns} fields "
                                      "and no label column (a cut-off row?)"}
        yield f"line {reader.line_num}", cleaned


def _label_from_row(row: dict[str, Any], default_source: str | None,
                    sources: dict[str, set[str]]) -> Label:
    if "__problem__" in row:
        raise ValueError(row["__problem__"])
    span_id = _text(row.get("span_id"))
    criterion = _text(row.get("criterion")) or _text(row.get("grader"))
    if not span_id or not criterion:
        raise ValueError("span_id and criterion (or grader) are required")
    source = _text(row.get("source")) or default_source or _only_source(span_id, sources)
    return Label(source=source, span_id=span_id, criterion=criterion,
                 label=parse_label_value(row.get("label")),
                 critique=_text(row.get("critique")), labeler=_text(row.get("labeler")))


def parse_label_value(value: Any) -> str:
    """``pass`` or ``fail`` from the ways people write it (pass/fail, true/false, 1/0, yes/no).

    Raises:
        ValueError: anything else.
    """
    word = str(value).strip().lower() if not isinstance(value, bool) else str(value).lower()
    if word in _PASS_WORDS:
        return "pass"
    if word in _FAIL_WORDS:
        return "fail"
    raise ValueError(f"label {value!r} is not pass or fail")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _only_source(span_id: str, sources: dict[str, set[str]]) -> str:
    found = sources.get(span_id, set())
    if len(found) == 1:
        return next(iter(found))
    problem = "is in no source in the store" if not found else \
        f"is in several sources ({', '.join(sorted(found))})"
    raise ValueError(f"span {span_id} {problem}: add a source column or pass --source")


def _sources_by_span_id(store: Store, span_ids: list[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    unique = sorted({s for s in span_ids if s})
    with store.engine.connect() as conn:
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[start:start + _LOOKUP_CHUNK]
            query = select(t.spans.c.span_id, t.spans.c.source).where(
                t.spans.c.span_id.in_(chunk))
            for span_id, source in conn.execute(query):
                found.setdefault(span_id, set()).add(source)
    return found


# -- the labeling queue -----------------------------------------------------------------------


@dataclass(frozen=True)
class QueueItem:
    """One span worth a human label, with what the grader said about it."""

    source: str
    span_id: str
    criterion: str
    grader_version: str
    judge: str
    """The grader's verdict: ``pass`` or ``fail``."""
    judge_reason: str
    judge_score: float | None
    release: str | None
    input: JSONValue
    output: JSONValue

    def as_row(self, flat: bool) -> dict[str, Any]:
        """The row a queue file holds; ``flat`` turns input and output into plain text (CSV)."""
        input_value = text_of(self.input) if flat and self.input is not None else self.input
        output_value = text_of(self.output) if flat and self.output is not None else self.output
        return {"source": self.source, "span_id": self.span_id, "criterion": self.criterion,
                "judge": self.judge, "judge_reason": self.judge_reason,
                "release": self.release, "input": input_value, "output": output_value,
                "label": "", "critique": "", "labeler": ""}


QUEUE_COLUMNS = ("source", "span_id", "criterion", "judge", "judge_reason", "release", "input",
                 "output", "label", "critique", "labeler")


def label_queue(store: Store, grader: str, grader_version: str, size: int = 50, *,
                release: str | None = None, uncertain_first: bool = True) -> list[QueueItem]:
    """The spans most worth labeling next for ``grader``: half judged pass, half judged fail.

    Spans already labeled for this criterion, and replays of golden items (not production),
    are left out. Within each verdict, spans whose
    score sits nearest 0.5 (the grader was least sure) come first when ``uncertain_first``;
    otherwise (and to break ties) the order is a fixed pseudo-random one, so within each verdict
    the queue is a random sample — what the corrected pass rate assumes (docs/calibration.md).
    When one verdict has too few spans the other fills the queue.
    """
    candidates = _queue_candidates(store, grader, grader_version, release)
    by_outcome: dict[str, list[tuple[float, str, str, str, float | None, str]]] = {
        "pass": [], "fail": []}
    for source, span_id, outcome, score, reason in candidates:
        uncertainty = _certainty(score) if uncertain_first else 0.0
        by_outcome[outcome].append((uncertainty, _shuffle_key(source, span_id, grader),
                                    source, span_id, score, reason))
    for rows in by_outcome.values():
        rows.sort()
    half = size // 2
    take_fail = min(len(by_outcome["fail"]), max(half, size - len(by_outcome["pass"])))
    take_pass = min(len(by_outcome["pass"]), size - take_fail)
    chosen = [("pass", row) for row in by_outcome["pass"][:take_pass]] + \
             [("fail", row) for row in by_outcome["fail"][:take_fail]]
    chosen.sort(key=lambda pair: (pair[1][0], pair[1][1]))
    items = []
    for outcome, (_, _, source, span_id, score, reason) in chosen:
        span = store.get_span(source, span_id)
        items.append(QueueItem(
            source=source, span_id=span_id, criterion=grader, grader_version=grader_version,
            judge=outcome, judge_reason=reason, judge_score=score,
            release=span.release if span else None, input=span.input if span else None,
            output=span.output if span else None))
    return items


def _queue_candidates(store: Store, grader: str, grader_version: str, release: str | None
                      ) -> list[tuple[str, str, str, float | None, str]]:
    # Imported here: tracegrade.datasets imports the graders, whose few-shot code imports this.
    from tracegrade.datasets import EXCLUDED_SOURCES

    v, s, lb = t.verdicts.c, t.spans.c, t.labels.c
    labeled = select(lb.source, lb.span_id).where(lb.criterion == grader)
    query = (
        select(v.source, v.span_id, v.outcome, v.score, v.reason)
        .select_from(t.verdicts.join(t.spans, and_(s.source == v.source,
                                                   s.span_id == v.span_id)))
        .where(v.grader == grader, v.grader_version == grader_version,
               v.outcome.in_(["pass", "fail"]), v.source.not_in(EXCLUDED_SOURCES),
               tuple_(v.source, v.span_id).not_in(labeled))
    )
    if release is not None:
        query = query.where(s.release == release)
    with store.engine.connect() as conn:
        return [(r[0], r[1], r[2], r[3], r[4]) for r in conn.execute(query)]


def _certainty(score: float | None) -> float:
    """How sure a verdict's score says the grader was: 0 at 0.5, 0.5 at 0 or 1."""
    if score is None or not 0.0 <= score <= 1.0:
        return 0.5
    return abs(score - 0.5)


def _shuffle_key(source: str, span_id: str, criterion: str) -> str:
    return hashlib.blake2b(f"queue\x1f{source}\x1f{span_id}\x1f{criterion}".encode(),
                           digest_size=8).hexdigest()


def write_queue(items: Iterable[QueueItem], path: Path | None, file_format: str) -> int:
    """Write queue items as CSV or JSONL to ``path`` (stdout when None); returns how many."""
    out = path.open("w", encoding="utf-8", newline="") if path else sys.stdout
    count = 0
    try:
        if file_format == "csv":
            writer = csv.DictWriter(out, fieldnames=QUEUE_COLUMNS)
            writer.writeheader()
            for item in items:
                writer.writerow(item.as_row(flat=True))
                count += 1
        else:
            for item in items:
                out.write(orjson.dumps(item.as_row(flat=False)).decode() + "\n")
                count += 1
    finally:
        if path:
            out.close()
    return count


def labeled_pairs(store: Store, grader: str, grader_version: str,
                  splits: Iterable[str] | None = None) -> list[tuple[str, str, str, str]]:
    """(source, span_id, human label, grader outcome) for every labeled span the grader decided.

    When several people labeled a span, the majority label counts (a tie is left out). Spans
    the grader errored or skipped on are left out: there is no verdict to compare.
    """
    v, lb = t.verdicts.c, t.labels.c
    query = (
        select(lb.source, lb.span_id, lb.label, v.outcome)
        .select_from(t.labels.join(t.verdicts, and_(
            v.source == lb.source, v.span_id == lb.span_id, v.grader == lb.criterion)))
        .where(lb.criterion == grader, v.grader_version == grader_version,
               v.outcome.in_(["pass", "fail"]))
    )
    if splits is not None:
        query = query.where(lb.split.in_(list(splits)))
    votes: dict[tuple[str, str], list[str]] = {}
    outcomes: dict[tuple[str, str], str] = {}
    with store.engine.connect() as conn:
        for source, span_id, label, outcome in conn.execute(query):
            votes.setdefault((source, span_id), []).append(label)
            outcomes[(source, span_id)] = outcome
    pairs = []
    for key in sorted(votes):
        passes = votes[key].count("pass")
        fails = len(votes[key]) - passes
        if passes != fails:
            pairs.append((key[0], key[1], "pass" if passes > fails else "fail", outcomes[key]))
    return pairs
