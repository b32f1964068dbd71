"""Alembic environment: the engine comes from tracegrade, never from a config file."""

from __future__ import annotations

from alembic import context

from tracegrade.store._migrate import lock_for_migration
from tracegrade.store._schema import metadata

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    lock_for_migration(connection)
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
