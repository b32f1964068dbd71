"""Runs: what each ``grade``, ``pull`` and ``replay`` did, and which of them died mid-way.

Every run is recorded as ``running`` when it starts and gets its end status (``finished``,
``failed``, ``interrupted``, ``budget_exhausted``) when it stops. A run whose process was killed
(``kill -9``, out of memory, a machine that went down) never records an end, so its row says
``running`` forever. The run records the host and process id that ran it; reading the runs back,
a ``running`` run of this host whose process is gone, or whose process id now belongs to a
process started after the run, is reported as ``killed``. A run of another host cannot be
checked from here and is reported as it is stored.

Nothing a killed run committed is lost: verdicts are written page by page, each page in its own
transaction, and the next ``tracegrade grade`` skips what is already stored.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil

from tracegrade.store import Store

RUNNING = "running"
KILLED = "killed"

_CLOCK_SLACK = timedelta(seconds=2)
"""How much later than its run's start a process may appear to have started (clock rounding)."""


@dataclass(frozen=True)
class RunRecord:
    """One run as stored, with what its status really is now."""

    run_id: str
    command: str
    status: str
    """The recorded status, except ``killed`` for a ``running`` run whose process is gone."""
    recorded_status: str
    started_at: datetime
    finished_at: datetime | None
    host: str | None
    pid: int | None
    checked: bool
    """Whether a ``running`` run's process could be checked (it ran on this host)."""
    verdicts: int
    """Verdicts in the store that this run wrote."""
    counts: dict[str, Any] | None
    """The run's own summary, recorded when it ended (None when it never did)."""

    @property
    def duration_s(self) -> float | None:
        """How long it ran, when it ended."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {
            "run_id": self.run_id,
            "command": self.command,
            "status": self.status,
            "recorded_status": self.recorded_status,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
            "host": self.host,
            "pid": self.pid,
            "checked": self.checked,
            "verdicts": self.verdicts,
            "counts": self.counts,
        }


def list_runs(store: Store, *, limit: int = 20, command: str | None = None,
              status: str | None = None) -> list[RunRecord]:
    """The latest runs, newest first, each with its status as it really is now.

    Args:
        store: The store to read.
        limit: At most this many runs (before ``status`` filters them).
        command: Only runs of this command (``grade``, ``pull``, ``replay``).
        status: Only runs whose (resolved) status is this.
    """
    rows = store.recent_runs(limit, command)
    verdicts = store.verdicts_by_run([row["run_id"] for row in rows])
    here = socket.gethostname()[:255]
    records = [_record(row, verdicts.get(row["run_id"], 0), here) for row in rows]
    return [r for r in records if status is None or r.status == status]


def _record(row: dict[str, Any], verdicts: int, here: str) -> RunRecord:
    recorded = str(row["status"])
    started: datetime = row["started_at"]  # UTCDateTime reads back timezone-aware
    host, pid = row.get("host"), row.get("pid")
    checked = recorded == RUNNING and host == here and pid is not None
    status = recorded
    if checked and pid is not None and not process_alive(int(pid), started):
        status = KILLED
    return RunRecord(
        run_id=row["run_id"], command=row["command"], status=status, recorded_status=recorded,
        started_at=started, finished_at=row["finished_at"], host=host, pid=pid,
        checked=checked, verdicts=verdicts, counts=row["counts"])


def process_alive(pid: int, run_started: datetime) -> bool:
    """Whether process ``pid`` still exists and is the one that started a run at that time.

    A process id is reused once its process is gone; a process that started after the run did
    is another one. A zombie (exited, not yet reaped) is gone.
    """
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = datetime.fromtimestamp(process.create_time(), tz=UTC)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # access denied and the like: it exists, it may be the one
        return True
    return created <= run_started + _CLOCK_SLACK

