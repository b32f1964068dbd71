"""The store on SQLite and PostgreSQL: idempotent ingest, unique verdicts, aware timestamps."""

from __future__ import annotations

import sqlite3
from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from tests.conftest import make_span
from tracegrade.spans import SpanKind, Status, StatusCode
from tracegrade.store import Store, StoreError, VerdictRow, open_store
from tracegrade.store import _schema as schema
from tracegrade.store._store import PAGE_SIZE


def test_reimport_is_idempotent(store: Store) -> None:
    spans = [make_span(i) for i in range(2500)]
    first = store.upsert_spans(spans, batch_size=700)
    second = store.upsert_spans(spans, batch_size=700)
    assert (first.inserted, first.updated, first.unchanged) == (2500, 0, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 2500)
    assert store.count_spans() == 2500


def test_changed_span_replaces_the_stored_one(store: Store) -> None:
    store.upsert_spans([make_span(1, output="old")])
    counts = store.upsert_spans([make_span(1, output="new")])
    assert counts.updated == 1
    stored = store.get_span("test", "span-000001")
    assert stored is not None and stored.output == "new"
    assert store.count_spans() == 1


def test_same_key_twice_in_one_batch_keeps_the_last(store: Store) -> None:
    counts = store.upsert_spans([make_span(1, output="first"), make_span(1, output="second")])
    assert counts.inserted == 1
    stored = store.get_span("test", "span-000001")
    assert stored is not None and stored.output == "second"


def test_span_round_trips_every_field(store: Store) -> None:
    span = make_span(
        7, kind=SpanKind.TOOL, name="lookup_order", parent_id="p", model="gpt",
        input={"order_id": "A1", "nested": [1, 2.5, None, True]}, output={"order_status": "ok"},
        input_tokens=10, output_tokens=5, cost=0.0012, environment="prod", session_id="s",
        user_id="u", tags=["a", "b"], attributes={"service.name": "x", "n": 3},
        status=Status(code=StatusCode.ERROR, message="boom \x00 nul"),
    )
    store.upsert_spans([span])
    stored = store.get_span("test", span.span_id)
    assert stored is not None
    assert stored.start_time == span.start_time and stored.start_time.tzinfo is not None
    assert stored.start_time.utcoffset() == UTC.utcoffset(None)
    assert stored.latency_ms == pytest.approx(800.0)
    for field in ("kind", "name", "parent_id", "model", "input", "output", "input_tokens",
                  "output_tokens", "total_tokens", "cost", "environment", "session_id",
                  "user_id", "tags", "attributes", "release"):
        assert getattr(stored, field) == getattr(span, field), field
    assert stored.status.code is StatusCode.ERROR
    assert stored.status.message == "boom \ufffd nul"  # NUL cannot be stored by PostgreSQL


def _verdict(index: int, outcome: str = "pass", version: str = "v1") -> VerdictRow:
    return VerdictRow(source="test", span_id=f"span-{index:06d}", grader="g",
                      grader_version=version, outcome=outcome, reason="", run_id="r",
                      inclusion_probability=1.0)


def test_verdicts_are_unique_per_span_grader_version(store: Store) -> None:
    store.upsert_spans([make_span(i) for i in range(3)])
    assert store.insert_verdicts([_verdict(i) for i in range(3)]) == 3
    assert store.insert_verdicts([_verdict(i, "fail") for i in range(3)]) == 0
    assert store.insert_verdicts([_verdict(0, version="v2")]) == 1
    assert store.count_verdicts() == 4
    done = store.graded_keys([("test", "span-000000"), ("test", "span-000001")], [("g", "v2")])
    assert done == {("test", "span-000000", "g", "v2")}


def test_verdict_counts_aggregate_in_sql(store: Store) -> None:
    store.upsert_spans([make_span(i, release="r1" if i < 4 else "r2") for i in range(6)])
    store.insert_verdicts([_verdict(0), _verdict(1), _verdict(2, "fail"), _verdict(3, "error"),
                           _verdict(4), _verdict(5, "fail")])
    counts = {(r["release"], r["outcome"]): r["n"] for r in store.verdict_counts()}
    assert counts == {("r1", "pass"): 2, ("r1", "fail"): 1, ("r1", "error"): 1,
                      ("r2", "pass"): 1, ("r2", "fail"): 1}


def test_migrations_match_the_declared_schema(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    assert diff == []


def test_documented_tables_exist(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {"spans", "verdicts", "graders", "labels", "releases", "runs"} <= tables


def test_reopening_does_not_migrate_twice(store_url: str) -> None:
    with open_store(store_url) as first:
        first.upsert_spans([make_span(1)])
    with open_store(store_url) as second:
        assert second.count_spans() == 1
        with second.engine.connect() as conn:
            assert conn.execute(text("select version_num from alembic_version")).scalar_one() \
                == "0003_run_owner"


def test_sqlite_uses_wal(workspace: object) -> None:
    with open_store() as opened:
        with opened.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert str(opened.url).endswith(".tracegrade/tracegrade.db")


def test_a_new_sqlite_store_has_16k_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'new.db'}") as new:
        with new.engine.connect() as conn:
            assert conn.execute(text("PRAGMA page_size")).scalar_one() == PAGE_SIZE == 16384
    old_path = tmp_path / "old.db"
    with sqlite3.connect(old_path) as old:  # a store created before the setting
        old.execute("PRAGMA page_size=4096")
        old.execute("PRAGMA journal_mode=WAL")
        old.execute("CREATE TABLE made_earlier (x)")
    old.close()
    with open_store(f"sqlite:///{old_path}") as store:
        store.upsert_spans([make_span(1), make_span(2)])
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA page_size")).scalar_one() == 4096
        assert store.count_spans() == 2


def test_unreachable_store_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot open store"):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")


def test_bad_store_url_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="not usable"):
        open_store("nosuchdb://x")


def test_trace_spans_in_start_order(store: Store) -> None:
    store.upsert_spans([make_span(i, trace_id="t") for i in (3, 1, 2)])
    assert [s.span_id for s in store.trace_spans("test", "t")] == [
        "span-000001", "span-000002", "span-000003"]
    with store.engine.connect() as conn:
        assert conn.execute(select(schema.spans.c.kind).limit(1)).scalar_one() == "llm"


def test_upgrade_from_the_first_schema_keeps_data(store_url: str) -> None:
    from tracegrade.store._migrate import upgrade
    from tracegrade.store._store import _make_engine

    engine = _make_engine(store_url)
    upgrade(engine, "0001_initial")
    with engine.begin() as conn:
        conn.execute(schema.spans.insert().values(
            source="s", span_id="1", trace_id="t", name="n", kind="llm",
            start_time=make_span(0).start_time, status="ok", content_hash="h",
            ingested_at=make_span(0).start_time, updated_at=make_span(0).start_time))
    engine.dispose()
    with open_store(store_url) as upgraded:
        assert upgraded.count_spans() == 1
        tables = set(inspect(upgraded.engine).get_table_names())
        assert {"source_cursors", "exports", "judge_cache", "datasets", "dataset_items",
                "alerts", "calibrations"} <= tables
        columns = {c["name"] for c in inspect(upgraded.engine).get_columns("verdicts")}
        assert "details" in columns


def test_plain_string_and_scalar_outputs_round_trip_through_paging(store: Store) -> None:
    store.upsert_spans([make_span(1, output="fine", input=42), make_span(2, output=None)])
    first, second = store.spans_page(0, 10)
    assert (first.span.output, first.span.input) == ("fine", 42)
    assert second.span.output is None


@pytest.mark.parametrize("value", [42, 3.5, -1, 0, True, None, "42", [1, 2], {"n": 7}])
def test_a_bare_json_scalar_reads_back_as_written(store: Store, value: object) -> None:
    """SQLite's numeric affinity hands a bare JSON number back as a number, not JSON text:
    reading it must not fail (it once broke get_span, dataset export and replay)."""
    span = make_span(0, output=value, input=value)
    store.upsert_spans([span])
    stored = store.get_span(span.source, span.span_id)
    assert stored is not None and stored.output == value and stored.input == value
