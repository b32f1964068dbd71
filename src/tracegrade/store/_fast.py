"""The store's hot paths, as plain driver-level SQL.

Importing and grading move every span through the store twice; SQLAlchemy's per-row statement
compilation and type processing cost more than the work itself there. These functions build the
same rows the Core tables describe (``_schema.py`` stays the single definition of the schema)
and hand them to the DBAPI's ``executemany`` directly. Everything else uses SQLAlchemy Core.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection

from tracegrade.spans import Span, SpanKind, Status, StatusCode
from tracegrade.store import _schema as t

SPAN_COLUMNS = tuple(c.name for c in t.spans.columns if c.name != "id")
_READ_COLUMNS = ("id", *SPAN_COLUMNS)
_JSON_COLUMNS = frozenset({"input", "output", "tags", "attributes"})
_KEY_COLUMNS = frozenset({"source", "span_id", "ingested_at"})
VERDICT_COLUMNS = tuple(c.name for c in t.verdicts.columns if c.name != "id")
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _placeholder(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return "%s::jsonb" if column in _JSON_COLUMNS else "%s"
    return "?"


def span_upsert_sql(dialect: str) -> str:
    """Insert spans; replace a stored span only when its content changed."""
    values = ", ".join(_placeholder(dialect, c) for c in SPAN_COLUMNS)
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in SPAN_COLUMNS
                        if c not in _KEY_COLUMNS)
    return (f"INSERT INTO spans ({_quoted(SPAN_COLUMNS)}) VALUES ({values}) "
            f"ON CONFLICT (source, span_id) DO UPDATE SET {updates} "
            f"WHERE spans.content_hash <> excluded.content_hash")


def verdict_insert_sql(dialect: str) -> str:
    """Insert verdicts, ignoring any already stored for the same span and grader version."""
    values = ", ".join("%s::jsonb" if dialect == "postgresql" and c == "details"
                       else ("%s" if dialect == "postgresql" else "?") for c in VERDICT_COLUMNS)
    return (f"INSERT INTO verdicts ({_quoted(VERDICT_COLUMNS)}) VALUES ({values}) "
            f"ON CONFLICT (source, span_id, grader, grader_version) DO NOTHING")


def dump_json(value: Any) -> str | None:
    """JSON text for a JSON column (keys sorted, so equal values hash equally); None stays NULL.

    PostgreSQL's jsonb refuses U+0000; trace data sometimes carries it, so it becomes U+FFFD.
    """
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode().replace("\\u0000",
                                                                             "\\ufffd")


def clean_text(value: str | None) -> str | None:
    """Text safe for every backend (PostgreSQL refuses NUL characters)."""
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value


def db_time(value: datetime | None, dialect: str) -> Any:
    """A timestamp as the backend stores it: UTC text on SQLite, timestamptz on PostgreSQL."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    return value.strftime(_SQLITE_TIME) if dialect == "sqlite" else value


def span_values(span: Span, stamp: Any, dialect: str) -> tuple[tuple[Any, ...], str]:
    """The row a span is stored as, in ``SPAN_COLUMNS`` order, and its content hash.

    ``stamp`` is the batch's write time as :func:`db_time` gives it (``ingested_at`` and
    ``updated_at``).
    """
    start_iso, start_db = _time_values(span.start_time, dialect)
    end_iso, end_db = _time_values(span.end_time, dialect)
    status = span.status
    hashed = (
        span.trace_id, span.parent_id, clean_text(span.name) or "", span.kind.value,
        clean_text(span.release), clean_text(span.environment), status.code.value,
        clean_text(status.message), dump_json(span.input), dump_json(span.output),
        clean_text(span.model), span.input_tokens, span.output_tokens, span.total_tokens,
        span.cost, clean_text(span.session_id), clean_text(span.user_id),
        dump_json(span.tags), dump_json(span.attributes),
    )
    # Times are hashed as ISO text whatever the backend, so a hash means the same everywhere.
    content_hash = hashlib.blake2b(orjson.dumps((start_iso, end_iso, *hashed)),
                                   digest_size=16).hexdigest()
    (trace_id, parent_id, name, kind, release, environment, status_code, status_message,
     input_json, output_json, model, input_tokens, output_tokens, total_tokens, cost,
     session_id, user_id, tags, attributes) = hashed
    latency_ms = None if span.end_time is None else \
        (span.end_time - span.start_time).total_seconds() * 1000.0
    return (span.source, span.span_id, trace_id, parent_id, name, kind, release, environment,
            start_db, end_db, latency_ms, status_code, status_message, input_json, output_json,
            model, input_tokens, output_tokens, total_tokens, cost, session_id, user_id, tags,
            attributes, content_hash, stamp, stamp), content_hash


_VALUES_ORDER = ("source", "span_id", "trace_id", "parent_id", "name", "kind", "release",
                 "environment", "start_time", "end_time", "latency_ms", "status",
                 "status_message", "input", "output", "model", "input_tokens", "output_tokens",
                 "total_tokens", "cost", "session_id", "user_id", "tags", "attributes",
                 "content_hash", "ingested_at", "updated_at")
if SPAN_COLUMNS != _VALUES_ORDER:  # pragma: no cover - guards a schema change
    raise RuntimeError(f"span_values is out of date with the spans table: {SPAN_COLUMNS}")


def _time_values(value: datetime | None, dialect: str) -> tuple[str | None, Any]:
    """A span time's ISO text (what the content hash reads) and its stored value."""
    if value is None:
        return None, None
    iso = value.isoformat()
    if dialect != "sqlite" or not iso.endswith("+00:00"):
        return iso, db_time(value, dialect)
    # YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00 -> "YYYY-MM-DD HH:MM:SS.ffffff", as strftime gives it
    # (without its cost, which was a fifth of writing a span).
    if len(iso) == 32 and iso[4] == "-":
        return iso, f"{iso[:10]} {iso[11:26]}"
    if len(iso) == 25 and iso[4] == "-":
        return iso, f"{iso[:10]} {iso[11:19]}.000000"
    return iso, db_time(value, dialect)


def stored_hashes(conn: Connection, dialect: str, keys: Sequence[tuple[str, str]]
                  ) -> dict[tuple[str, str], str]:
    """The content hash of every given (source, span_id) already stored."""
    return stored_values(conn, dialect, keys, "content_hash")


def stored_values(conn: Connection, dialect: str, keys: Sequence[tuple[str, str]],
                  expression: str, params: Sequence[Any] = ()) -> dict[tuple[str, str], Any]:
    """An SQL ``expression`` over the spans row of every given (source, span_id) stored;
    ``params`` fill the expression's own placeholders."""
    found: dict[tuple[str, str], Any] = {}
    for source, span_ids in by_source(keys).items():
        for chunk in chunks(span_ids, 500):
            ph = placeholder(dialect)
            sql = (f"SELECT span_id, {expression} FROM spans WHERE source = {ph} "
                   f"AND span_id IN ({', '.join([ph] * len(chunk))})")
            for span_id, value in conn.exec_driver_sql(sql, (*params, source, *chunk)):
                found[(source, span_id)] = value
    return found


def graded(conn: Connection, dialect: str, keys: Sequence[tuple[str, str]],
           grader_versions: set[tuple[str, str]]) -> set[tuple[str, str, str, str]]:
    """Which (source, span_id, grader, version) among these spans already hold a verdict."""
    return set(graded_probabilities(conn, dialect, keys, grader_versions))


def graded_probabilities(conn: Connection, dialect: str, keys: Sequence[tuple[str, str]],
                         grader_versions: set[tuple[str, str]]
                         ) -> dict[tuple[str, str, str, str], float]:
    """The stored inclusion probability of each (source, span_id, grader, version) among these
    spans that already holds a verdict."""
    found: dict[tuple[str, str, str, str], float] = {}
    for source, span_ids in by_source(keys).items():
        for chunk in chunks(span_ids, 500):
            ph = placeholder(dialect)
            sql = ("SELECT span_id, grader, grader_version, inclusion_probability FROM verdicts "
                   f"WHERE source = {ph} AND span_id IN ({', '.join([ph] * len(chunk))})")
            for span_id, grader, version, probability in conn.exec_driver_sql(
                    sql, (source, *chunk)):
                if (grader, version) in grader_versions:
                    found[(source, span_id, grader, version)] = float(probability)
    return found


def spans_page_sql(dialect: str, kinds: Sequence[SpanKind] | None) -> tuple[str, list[Any]]:
    """The query for one keyset page of spans (parameters: after_pk, then kinds, then limit)."""
    ph = placeholder(dialect)
    where = f"id > {ph}"
    params: list[Any] = []
    if kinds:
        where += f" AND kind IN ({', '.join([ph] * len(kinds))})"
        params = [k.value for k in kinds]
    return (f"SELECT {_quoted(_READ_COLUMNS)} FROM spans WHERE {where} ORDER BY id LIMIT {ph}",
            params)


def span_from_record(record: Sequence[Any], dialect: str) -> tuple[int, Span]:
    """Rebuild (row id, span) from a row of ``spans_page_sql`` without re-validating it."""
    m = dict(zip(_READ_COLUMNS, record, strict=True))
    if dialect == "sqlite":
        for column in _JSON_COLUMNS:
            m[column] = read_json(m[column])
    m["start_time"], m["end_time"] = read_time(m["start_time"]), read_time(m["end_time"])
    return int(m["id"]), span_from_values(m)


def span_from_values(m: Mapping[Any, Any]) -> Span:
    """A span from its decoded column values; it was validated on the way in, so not again."""
    return Span.model_construct(
        source=m["source"], span_id=m["span_id"], trace_id=m["trace_id"],
        parent_id=m["parent_id"], name=m["name"], kind=SpanKind(m["kind"]),
        start_time=m["start_time"], end_time=m["end_time"],
        status=Status(code=StatusCode(m["status"]), message=m["status_message"]),
        input=m["input"], output=m["output"], model=m["model"],
        input_tokens=m["input_tokens"], output_tokens=m["output_tokens"],
        total_tokens=m["total_tokens"], cost=m["cost"], release=m["release"],
        environment=m["environment"], session_id=m["session_id"], user_id=m["user_id"],
        tags=m["tags"] or [], attributes=m["attributes"] or {},
    )


def read_time(value: Any) -> Any:
    """A stored timestamp as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def read_json(value: Any) -> Any:
    """A JSON column's value as SQLite returns it. psycopg decodes jsonb itself.

    SQLite gives JSON text back, except that its numeric column affinity has already turned a
    bare JSON number into an int or float, which is the decoded value.
    """
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def verdict_values(row: Any, created_at: Any) -> tuple[Any, ...]:
    """A verdict row in ``VERDICT_COLUMNS`` order; ``created_at`` as :func:`db_time` gives it."""
    values = dict(row.__dict__)
    values["created_at"] = created_at
    values["details"] = dump_json(values.get("details"))
    return tuple(values[c] for c in VERDICT_COLUMNS)


def by_source(keys: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Span ids grouped by their source."""
    grouped: dict[str, list[str]] = {}
    for source, span_id in keys:
        grouped.setdefault(source, []).append(span_id)
    return grouped


def placeholder(dialect: str) -> str:
    """The DB-API parameter marker of ``dialect``'s driver (psycopg's ``%s``, sqlite3's ``?``)."""
    return "%s" if dialect == "postgresql" else "?"


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
