"""The store: SQLite by default, PostgreSQL by URL; a documented schema users may query."""

from tracegrade.store._store import (
    DEFAULT_URL,
    GradeBatch,
    Store,
    StoredSpan,
    StoreError,
    UpsertCounts,
    VerdictRow,
    open_store,
)

__all__ = [
    "DEFAULT_URL",
    "GradeBatch",
    "Store",
    "StoreError",
    "StoredSpan",
    "UpsertCounts",
    "VerdictRow",
    "open_store",
]
