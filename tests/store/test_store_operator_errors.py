"""Stores an operator points tracegrade at by mistake: one-line errors (exit 2), never a hang,
a traceback or someone else's database quietly given tracegrade's tables."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from tests.conftest import NOT_RUN, POSTGRES_URL, make_span
from tracegrade.cli import cli
from tracegrade.store import StoreError, open_store


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_a_postgresql_server_that_never_answers_times_out(
        silent_server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """It hung for good (killed by `timeout 120` in the review)."""
    monkeypatch.setattr("tracegrade.store._store.CONNECT_TIMEOUT_S", 1)
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot open store"):
        open_store(f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/x")
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://tg:S3cretPW@127.0.0.1:notaport/db",
    "postgresql+psycopg://tg:S3cretPW@127.0.0.1:/db",
    "postgresql+psycop://tg:S3cretPW@127.0.0.1:5432/db",
])
def test_an_unusable_store_url_is_one_line_without_its_password(url: str) -> None:
    code, output = run("--store", url, "stats")
    assert code == 2, output
    assert "not usable" in output and "S3cretPW" not in output and "***" in output
    assert "Traceback" not in output


def test_a_postgres_scheme_url_means_psycopg() -> None:
    store = open_store("postgres://u@127.0.0.1:1/x", migrate=False)
    assert store.engine.url.drivername == "postgresql+psycopg"
    store.engine.dispose()


def test_a_store_path_under_home_is_expanded(workspace: Path) -> None:
    (workspace / "home").mkdir()
    with open_store("sqlite:///~/stores/t.db") as store:  # SQLite opened ./~/stores/t.db
        store.upsert_spans([make_span(0)])
    assert (workspace / "home" / "stores" / "t.db").is_file()
    assert not (workspace / "~").exists()
    code, output = run("--store", "sqlite:///~/stores/t.db", "stats", "--format", "json")
    assert code == 0, output


def test_read_commands_refuse_a_database_that_is_no_tracegrade_store(workspace: Path) -> None:
    """`stats` printed [] with exit 0 and added 14 tables to the other application's file."""
    other = workspace / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("create table customers (id int)")
    code, output = run("--store", f"sqlite:///{other}", "stats", "--format", "json")
    assert code == 2 and "is not a tracegrade store (it holds other tables: customers)" in output
    with sqlite3.connect(other) as conn:
        assert [r[0] for r in conn.execute("select name from sqlite_master")] == ["customers"]
    empty = workspace / "zero.db"
    empty.write_bytes(b"")
    code, output = run("--store", f"sqlite:///{empty}", "runs")
    assert code == 2 and "is an empty file (0 bytes)" in output
    assert empty.stat().st_size == 0


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A URL of a new, empty PostgreSQL database, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip(NOT_RUN)  # as every PostgreSQL test (CI requires the URL: no skip there)
    name = f"tg_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_postgresql_errors_for_the_operator_are_one_line(postgres_database: str) -> None:
    """A role without CREATE, and another application's `spans` table, gave a 120-line
    traceback and exit 1 (the "regressed" code)."""
    role = f"ro_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_database, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'REVOKE CREATE ON SCHEMA public FROM PUBLIC, "{role}"'))
        conn.execute(text("CREATE TABLE spans (id int)"))
    try:
        host = postgres_database.split("@", 1)[1]
        code, output = run("--store", f"postgresql+psycopg://{role}@{host}", "import",
                           "nothing.jsonl")
        assert code == 2 and "lacks a permission" in output and "Traceback" not in output
        code, output = run("--store", postgres_database, "stats")
        assert code == 2 and "is not a tracegrade store (it holds other tables: spans)" in output
        Path("t.jsonl").write_text(make_span(0).model_dump_json() + "\n")
        code, output = run("--store", postgres_database, "import", "t.jsonl")
        assert code == 2 and "already holds a table of that name" in output, output
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_releases_with_an_unknown_environment_is_an_error(store_url: str) -> None:
    with open_store(store_url) as store:
        store.upsert_spans([make_span(0, environment="production")])
    code, output = run("--store", store_url, "releases", "--environment", "nope")
    assert code == 2 and "no spans of environment 'nope'" in output
