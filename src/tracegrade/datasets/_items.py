"""A golden dataset item, and the JSONL format datasets are exchanged in.

One JSON object per line::

    {"id": "...", "input": ..., "expected_output": ..., "source_span": {"source": ...,
     "span_id": ..., "trace_id": ...}, "valid_as_of": "2026-11-01T00:00:00Z",
     "time_sensitive": false, "metadata": {...}}

Only ``id`` and ``input`` are required. ``valid_as_of`` takes a date or a timezone-aware
timestamp; a date means midnight UTC. Exports write nested objects with sorted keys.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tracegrade.spans import MAX_KEY_CHARS, JSONValue, parse_json_string


class SourceSpan(BaseModel):
    """The production span an item was promoted from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, max_length=MAX_KEY_CHARS)
    span_id: str = Field(min_length=1, max_length=MAX_KEY_CHARS)
    trace_id: str | None = Field(default=None, max_length=MAX_KEY_CHARS)

    @field_validator("source", "span_id", "trace_id")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        return no_nul(value)


def no_nul(value: str | None) -> str | None:
    """``value``, refused when it holds U+0000 (PostgreSQL cannot store it in a key)."""
    if value is not None and "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


class GoldenItem(BaseModel):
    """One golden example: an input, the output it should get, and where it came from."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=MAX_KEY_CHARS)
    input: JSONValue
    expected_output: JSONValue = None
    source_span: SourceSpan | None = None
    valid_as_of: datetime | None = None
    time_sensitive: bool = False
    metadata: dict[str, JSONValue] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _id_without_nul(cls, value: str) -> str:
        return no_nul(value) or value

    @field_validator("input", "expected_output", mode="before")
    @classmethod
    def _parse_json_strings(cls, value: Any) -> Any:
        return parse_json_string(value)

    @field_validator("metadata", mode="before")
    @classmethod
    def _no_metadata(cls, value: Any) -> Any:
        return {} if value is None else value  # null, as the other optional fields allow

    @field_validator("valid_as_of", mode="before")
    @classmethod
    def _date_or_aware(cls, value: Any) -> Any:
        # pydantic reads a number, or a string of digits, as seconds since 1970: "20260101"
        # became 1970-08-23.
        if isinstance(value, int | float) and not isinstance(value, bool) or (
                isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1)
                .isdigit()):
            raise ValueError("valid_as_of must be a date (YYYY-MM-DD) or a timestamp with a "
                             f"timezone (2026-11-01T00:00:00Z), not {value!r}")
        if isinstance(value, str) and len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime.combine(value, datetime.min.time(), tzinfo=UTC)
        return value

    @field_validator("valid_as_of")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("valid_as_of must be a date or a timezone-aware timestamp")
        return value.astimezone(UTC)

    def to_json_line(self) -> bytes:
        """The item as one JSONL line (without the newline).

        Top-level keys come in the documented order and nested objects with sorted keys, so
        an export is the same bytes whichever store (and key order) the item went through.
        """
        record = self.model_dump(mode="json")
        if self.valid_as_of is not None:
            record["valid_as_of"] = self.valid_as_of.isoformat().replace("+00:00", "Z")
        fields = (orjson.dumps(key) + b":" + orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
                  for key, value in record.items())
        return b"{" + b",".join(fields) + b"}"
