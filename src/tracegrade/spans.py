"""The canonical span record every source produces.

A :class:`Span` is one unit of work in an LLM application (an LLM call, a tool call, a retrieval…),
normalised from whatever convention the source used. Sources map into it; every later stage
(sampling, grading, analysis) reads only this record.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

JSONValue = Any
"""A value that survives a JSON round trip: dict, list, str, int, float, bool or None."""


class SpanKind(StrEnum):
    """What a span does. Lower-case everywhere: config, store and reports."""

    LLM = "llm"
    TOOL = "tool"
    RETRIEVER = "retriever"
    AGENT = "agent"
    CHAIN = "chain"
    EMBEDDING = "embedding"
    GUARDRAIL = "guardrail"
    OTHER = "other"


class StatusCode(StrEnum):
    """Whether the span's operation succeeded."""

    OK = "ok"
    ERROR = "error"


class Status(BaseModel):
    """A span's outcome: ok, or error with a message."""

    model_config = ConfigDict(frozen=True)

    code: StatusCode = StatusCode.OK
    message: str | None = None


MAX_KEY_CHARS = 200
"""The longest id, release, environment, model, session or user id a span may carry."""
MAX_NAME_CHARS = 500
"""The longest span name (4 bytes a character still fits PostgreSQL's index entry limit)."""
MAX_TOKENS = 2**31 - 1
"""The largest token count (PostgreSQL's INTEGER; a negative one is kept for max_tokens to
report as an error)."""


class Span(BaseModel):
    """One normalised span. Its key is ``(source, span_id)``."""

    model_config = ConfigDict(extra="forbid")

    # Lengths and ranges the store's columns and indexes hold on every backend (String(200)
    # columns, 32-bit token counts on PostgreSQL, a (kind, name) index entry under PostgreSQL's
    # ~2.7 kB limit): a span outside them is malformed here, not a failed write later.
    source: str = Field(min_length=1, max_length=MAX_KEY_CHARS)
    span_id: str = Field(min_length=1, max_length=MAX_KEY_CHARS)
    trace_id: str = Field(min_length=1, max_length=MAX_KEY_CHARS)
    parent_id: str | None = Field(default=None, max_length=MAX_KEY_CHARS)
    name: str = Field(default="", max_length=MAX_NAME_CHARS)
    kind: SpanKind = SpanKind.OTHER
    start_time: datetime
    end_time: datetime | None = None
    status: Status = Field(default_factory=Status)
    input: JSONValue = None
    output: JSONValue = None
    model: str | None = Field(default=None, max_length=MAX_KEY_CHARS)
    input_tokens: int | None = Field(default=None, ge=-MAX_TOKENS - 1, le=MAX_TOKENS)
    output_tokens: int | None = Field(default=None, ge=-MAX_TOKENS - 1, le=MAX_TOKENS)
    total_tokens: int | None = Field(default=None, ge=-MAX_TOKENS - 1, le=MAX_TOKENS)
    cost: float | None = None
    release: str | None = Field(default=None, max_length=MAX_KEY_CHARS)
    environment: str | None = Field(default=None, max_length=MAX_KEY_CHARS)
    session_id: str | None = Field(default=None, max_length=MAX_KEY_CHARS)
    user_id: str | None = Field(default=None, max_length=MAX_KEY_CHARS)
    tags: list[str] = Field(default_factory=list)
    attributes: dict[str, JSONValue] = Field(default_factory=dict)

    @field_validator("start_time", "end_time")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None or value.tzinfo is UTC:
            return value
        if value.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware (UTC)")
        return value.astimezone(UTC)

    @field_validator("input", "output", mode="before")
    @classmethod
    def _parse_json_strings(cls, value: Any) -> Any:
        return parse_json_string(value)

    @field_validator("cost")
    @classmethod
    def _finite_cost(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("cost must be a finite number")
        return value

    @model_validator(mode="after")
    def _check_ids_and_fill_total_tokens(self) -> Span:
        # PostgreSQL refuses NUL in text. Other text is stored with U+FFFD in its place, but an
        # id cannot be: it could become another span's. (One validator for both jobs: each
        # validator is a Python call per span.)
        if "\x00" in self.source + self.span_id + self.trace_id + (self.parent_id or ""):
            for field in ("source", "span_id", "trace_id", "parent_id"):
                if "\x00" in (getattr(self, field) or ""):
                    raise ValueError(f"{field} contains a NUL character")
        # Only both counts make a total: one alone would understate it and pass a max_total.
        if self.total_tokens is None and (
            self.input_tokens is not None and self.output_tokens is not None
        ):
            total = self.input_tokens + self.output_tokens
            if abs(total) > MAX_TOKENS:
                raise ValueError(f"total_tokens: {total} is beyond what the store holds")
            self.total_tokens = total
        return self

    @property
    def key(self) -> tuple[str, str]:
        """The span's identity in the store."""
        return (self.source, self.span_id)

    @property
    def latency_ms(self) -> float | None:
        """Wall time of the span in milliseconds, when it has ended."""
        if self.end_time is None:
            return None
        # Whole microseconds divided once: exact to the float, so 1001 ms is 1001.0, not
        # the 1000.9999999999999 of total_seconds() * 1000.
        return ((self.end_time - self.start_time) // _MICROSECOND) / 1000


def parse_json_string(value: Any) -> Any:
    """Return the JSON value a string holds, or the value unchanged when it holds none.

    Only strings that look like a JSON object or array are parsed: a plain reply such as
    ``"42"`` or ``"true"`` stays a string, since that is what the application produced.
    """
    if not isinstance(value, str):
        return value
    stripped = value.strip()
    if not stripped or stripped[0] not in "{[":
        return value
    try:
        return orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return value


def utc_from_unix_nanos(nanos: int) -> datetime:
    """Convert OTLP's nanoseconds since the epoch to an aware UTC datetime."""
    # Adding to the epoch is exact (no float) and a third of the cost of fromtimestamp + replace.
    return _EPOCH + timedelta(microseconds=int(nanos) // 1000)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def utc_now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(tz=UTC)


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """A release name's sort key with its numbers compared as numbers (v9 before v10): the
    order of releases whose first spans start at the same moment."""
    return tuple((0, int(part)) if part.isdigit() else (1, part)
                 for part in re.split(r"(\d+)", name) if part)
