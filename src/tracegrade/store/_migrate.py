"""Run the store's Alembic migrations programmatically (no alembic.ini needed).

A migration is one transaction that only one process runs at a time:

- SQLite: Python's ``sqlite3`` commits each ``CREATE``/``ALTER`` on its own (it opens a
  transaction only before a data write), so a process killed mid-migration left tables without
  their ``alembic_version`` row and every later command failed. The migration runs on a
  connection whose driver does not manage transactions, inside ``BEGIN IMMEDIATE``: the DDL
  commits or rolls back as a whole, and a second process opening the store meanwhile waits for
  the write lock, then finds the schema current.
- PostgreSQL: its DDL is transactional already; a transaction-scoped advisory lock makes two
  processes creating or upgrading one store at the same moment take turns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).parent / "migrations"

ADVISORY_LOCK = 0x7472_6367  # "trcg"
"""The PostgreSQL advisory lock key held while a store is migrated."""


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at tracegrade's migrations and at ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the store's schema to ``revision`` (the latest by default), in one transaction.

    A store already at the latest revision is only read: opening it takes no lock, so a
    report does not wait for a long import to let go of the write lock.
    """
    if revision == "head" and _is_current(engine):
        return
    if engine.dialect.name != "sqlite":
        command.upgrade(alembic_config(engine), revision)
        return
    migrating = _sqlite_migration_engine(engine)
    try:
        command.upgrade(alembic_config(migrating), revision)
    finally:
        migrating.dispose()


def _is_current(engine: Engine) -> bool:
    heads = set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())
    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads()) == heads


def lock_for_migration(connection: Connection) -> None:
    """Wait until no other process migrates this store (PostgreSQL; SQLite's BEGIN IMMEDIATE
    already holds its write lock)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK})")


def _sqlite_migration_engine(engine: Engine) -> Engine:
    from tracegrade.store._store import _sqlite_pragmas

    migrating = create_engine(engine.url, poolclass=NullPool)

    @event.listens_for(migrating, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        _sqlite_pragmas(dbapi_connection, record)
        dbapi_connection.isolation_level = None  # the transaction is ours (below)

    @event.listens_for(migrating, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return migrating
