"""What the incremental pull engine needs from a remote source (Langfuse, Braintrust…).

A :class:`RemoteReader` reads one time window page by page. Each :class:`Page` carries the spans
read, the rows it skipped on purpose, the rows it could not map, and a ``resume`` token: the
JSON state that continues the read *after* this page. The engine commits a page's spans, then
saves its token, so a killed pull resumes at the first page it had not committed.

A reader may also keep a ``mark`` from one finished window to the next (Braintrust's fetch API:
the highest ``_xact_id`` read). The engine sets :attr:`RemoteReader.mark` to the stored mark
before a window is read, and stores the ``mark`` of the window's last page once that page is
committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from tracegrade.sources._base import IngestProblem
from tracegrade.sources._http import RetryPolicy
from tracegrade.sources._langfuse_map import parse_timestamp
from tracegrade.spans import JSONValue, Span

DEFAULT_OVERLAP_MINUTES = 15.0
"""How far each pull re-reads behind the watermark: these services ingest late."""


@dataclass(frozen=True)
class Window:
    """The time range a pull reads: ``[start, end)``; ``start`` ``None`` means all history."""

    start: datetime | None
    end: datetime

    def as_dict(self) -> dict[str, str | None]:
        """A JSON-ready form."""
        return {"start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat()}


@dataclass
class Page:
    """One page a reader fetched, mapped to spans."""

    spans: list[Span]
    resume: JSONValue
    """The state that reads on after this page; ``None`` when this was the window's last page."""
    skipped: int = 0
    """Rows left out on purpose (an evaluator's own spans)."""
    problems: list[IngestProblem] = field(default_factory=list)
    rows: int = 0
    """Rows the service returned on this page."""
    mark: JSONValue = None
    """On a window's last page: the reader's mark to keep for the next window (``None``: keep
    the stored one)."""


class RemoteReader(Protocol):
    """A remote source's reading side, as the pull engine drives it."""

    name: str
    api: str
    """Which API the last read used (e.g. ``v2``, ``legacy``, ``btql``, ``fetch``)."""
    version_attribute: str
    """The span attribute holding the remote row's version (newer replaces older)."""
    mark: JSONValue
    """The mark the last finished window left (``None`` before the first, or when the reader
    keeps none); set by the engine before each window is read."""

    def read(self, window: Window, resume: JSONValue) -> Iterator[Page]:
        """Read ``window`` page by page, starting after ``resume`` (``None``: from the top)."""
        ...

    def version_key(self, value: JSONValue) -> Any:
        """A sortable form of a version attribute's value."""
        ...

    def close(self) -> None:
        """Release the HTTP connections."""
        ...


class RemoteSourceConfig(BaseModel):
    """Settings every pulled source shares."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    overlap_minutes: float = Field(default=DEFAULT_OVERLAP_MINUTES, ge=0)
    """How far behind the watermark each pull starts re-reading (late-arriving data)."""
    page_size: int = Field(default=1000, ge=1, le=1000)
    http: RetryPolicy = Field(default_factory=RetryPolicy)


def optional_timestamp(value: Any, field_name: str) -> datetime | None:
    """Like :func:`parse_timestamp` (compiled with the Langfuse mapping, which parses most of
    them), but ``None`` stays ``None``."""
    return None if value in (None, "") else parse_timestamp(value, field_name)


def newest_per_key(
    rows: list[dict[str, Any]], key: str, version: Callable[[dict[str, Any]], Any]
) -> list[dict[str, Any]]:
    """One row per ``key``, the one with the highest ``version``, in first-seen order."""
    best: dict[Any, dict[str, Any]] = {}
    for row in rows:
        identity = row.get(key)
        current = best.get(identity)
        if current is None or version(row) >= version(current):
            best[identity] = row
    return list(best.values())
