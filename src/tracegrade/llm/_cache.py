"""The judge cache: every answer a judge gave, keyed by exactly what it was asked.

The key hashes the provider's name and the full request body (model, the rendered prompt with
its few-shot turns, temperature, seed, token cap, answer schema), so a re-run, a resumed run or
a second grader asking the same question is answered from the ``judge_cache`` table. Answers
are written as they arrive, a few milliseconds apart, not when a page of verdicts commits: a
killed run loses no answer it paid for.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from tracegrade.spans import utc_now
from tracegrade.store import Store
from tracegrade.store import _schema as t


def cache_key(provider: str, body: dict[str, Any]) -> str:
    """The cache key of one request: SHA-256 of the provider and the canonical body."""
    payload = provider.encode() + b"\x00" + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    """An answer from the cache."""

    text: str
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None
    stop: str | None = None
    """Why the answer was cut short (see :class:`~tracegrade.llm._providers.JudgeReply`)."""


@dataclass(frozen=True)
class CacheEntry:
    """An answer to write to the cache."""

    key: str
    provider: str
    model: str
    request: dict[str, Any]
    text: str
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None
    stop: str | None = None


def attempt_key(key: str, attempt: int) -> str:
    """Where the paid answer to attempt ``attempt`` of question ``key`` is kept when it could
    not be read: a resumed run replays those attempts instead of paying for them again."""
    return hashlib.sha256(f"{key}:unreadable:{attempt}".encode()).hexdigest()


def cached_answers(store: Store, keys: Sequence[str]) -> dict[str, CachedAnswer]:
    """The cached answers among ``keys``."""
    c = t.judge_cache.c
    found: dict[str, CachedAnswer] = {}
    unique = list(dict.fromkeys(keys))
    with store.engine.connect() as conn:
        for start in range(0, len(unique), 500):
            query = select(c.key, c.response, c.input_tokens, c.output_tokens, c.cost).where(
                c.key.in_(unique[start:start + 500]))
            for key, response, input_tokens, output_tokens, cost in conn.execute(query):
                text = response.get("text") if isinstance(response, dict) else None
                if isinstance(text, str):
                    stop = response.get("stop")
                    found[key] = CachedAnswer(text, input_tokens, output_tokens, cost,
                                              stop if isinstance(stop, str) else None)
    return found


def write_answers(store: Store, entries: Sequence[CacheEntry], *, replace: bool = False) -> None:
    """Store answers in one transaction; ``replace`` overwrites (``--no-cache`` runs)."""
    if not entries:
        return
    now = utc_now()
    rows = {entry.key: {
        "key": entry.key, "provider": entry.provider, "model": entry.model,
        "request": entry.request,
        "response": {"text": entry.text} | ({"stop": entry.stop} if entry.stop else {}),
        "input_tokens": entry.input_tokens, "output_tokens": entry.output_tokens,
        "cost": entry.cost, "created_at": now,
    } for entry in entries}
    dialect_insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    statement = dialect_insert(t.judge_cache)
    if replace:
        statement = statement.on_conflict_do_update(index_elements=["key"], set_={
            name: statement.excluded[name]
            for name in ("response", "input_tokens", "output_tokens", "cost", "created_at")})
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["key"])
    with store.engine.begin() as conn:
        conn.execute(statement, list(rows.values()))


class CacheWriter:
    """Writes answers as they arrive, in a worker thread, batching whatever queued up meanwhile.

    One write is in progress at a time; answers arriving during it go into the next batch, so
    under load each transaction carries many answers and the event loop never waits on disk.
    """

    def __init__(self, store: Store, *, replace: bool = False) -> None:
        self.store = store
        self.replace = replace
        self._pending: list[CacheEntry] = []
        self._writer: asyncio.Task[None] | None = None

    def put(self, entry: CacheEntry) -> None:
        """Queue one answer; it is written within milliseconds."""
        self._pending.append(entry)
        if self._writer is None or self._writer.done():
            if self._writer is not None and not self._writer.cancelled():
                self._writer.exception()  # a failed write's batch is queued again: retried now
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def flush(self) -> None:
        """Wait until every queued answer is written; re-raise if the store still refuses."""
        if self._writer is not None:
            try:
                await self._writer
            except Exception:  # noqa: S110 - its batch went back in the queue: retried below
                pass
        if self._pending:
            await self._drain()

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(write_answers, self.store, batch, replace=self.replace)
            except Exception:
                # Paid-for answers are not dropped: the next put() or the flush writes them.
                self._pending = batch + self._pending
                raise
