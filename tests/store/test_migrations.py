"""Migrations are one transaction, run by one process at a time, on both backends."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from tracegrade.store import open_store
from tracegrade.store._migrate import upgrade


def _open_at(url: str, start: float) -> str | None:
    time.sleep(max(0.0, start - time.time()))
    try:
        with open_store(url) as store:
            store.count_spans()
    except Exception as exc:  # reported to the test, which shows it
        return f"{type(exc).__name__}: {exc}"
    return None


def test_processes_opening_a_new_store_at_once_all_succeed(store_url: str) -> None:
    """Each of several processes creating the schema of one new store at the same moment
    (a second `import` started right after the first) used to collide: "table spans already
    exists" on SQLite, a duplicate pg_type on PostgreSQL."""
    context = multiprocessing.get_context("fork")
    start = time.time() + 1.0
    with context.Pool(6) as pool:
        errors = pool.starmap(_open_at, [(store_url, start)] * 6)
    assert errors == [None] * 6
    with open_store(store_url) as store:
        assert store.count_spans() == 0


def test_a_migration_that_dies_half_way_leaves_nothing_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite each CREATE committed on its own: a process killed mid-migration left tables
    without their alembic_version row, and every later command failed ("table spans already
    exists"). The whole migration now commits or rolls back as one."""
    from alembic.operations import Operations

    url = f"sqlite:///{tmp_path / 'new.db'}"
    created: list[Any] = []
    real = Operations.create_table

    def dies_after_two(self: Operations, *args: Any, **kwargs: Any) -> Any:
        if len(created) == 2:
            raise KeyboardInterrupt  # as a kill would, between two statements
        created.append(args[0])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Operations, "create_table", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        open_store(url)
    monkeypatch.setattr(Operations, "create_table", real)
    with open_store(url, migrate=False) as store:
        assert inspect(store.engine).get_table_names() == []
    with open_store(url) as store:
        assert store.count_spans() == 0
        upgrade(store.engine)  # current: nothing to do, no lock taken


def test_span_batches_take_turns_on_postgresql(postgres_url: str) -> None:
    """Two imports of one span read "not stored yet" under READ COMMITTED and both counted it
    inserted, so verdicts graded on the first one's content survived the second's: span
    writes wait for each other (as on SQLite)."""
    import threading

    from sqlalchemy import create_engine, text

    from tests.conftest import make_span
    from tracegrade.store._store import WRITE_LOCK

    with open_store(postgres_url) as store:
        holder = create_engine(postgres_url)
        with holder.begin() as held:
            held.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK})
            writer = threading.Thread(target=store.upsert_spans, args=([make_span(1)],))
            writer.start()
            waiting = 0
            for _ in range(200):  # until the writer is seen waiting for the lock
                waiting = held.execute(text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND NOT granted")).scalar_one()
                if waiting:
                    break
                time.sleep(0.05)
            time.sleep(0.5)  # unlocked, the write would have committed by now
            assert waiting >= 1 and store.count_spans() == 0
        writer.join(30)
        holder.dispose()
        assert not writer.is_alive() and store.count_spans() == 1
