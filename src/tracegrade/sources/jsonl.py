"""Read tracegrade's own span JSONL: one :class:`~tracegrade.spans.Span` JSON object per line.

The format is documented in ``docs/spans-jsonl.md``. Each line carries the fields of ``Span``;
``source`` defaults to :attr:`MappingOptions.source`, and times are ISO-8601 strings with a UTC
offset or numbers since the Unix epoch (seconds, milliseconds, microseconds or nanoseconds, told
apart by magnitude). Problems are located as ``FILE:LINE``.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import orjson

from tracegrade.sources._base import IngestProblem, MappingOptions
from tracegrade.sources.conventions import (
    DEFAULT_MAX_ATTRIBUTE_BYTES,
    ConventionError,
    check_depth,
    check_value_size,
    describe_error,
    parse_json_value,
)
from tracegrade.spans import Span, utc_from_unix_nanos

_READ_ERRORS = (OSError, EOFError, zlib.error)
"""What a damaged file (a truncated or corrupt gzip stream above all) raises mid-read."""


def read_spans_jsonl(
    stream: io.BufferedIOBase,
    name: str,
    options: MappingOptions,
    *,
    max_attribute_bytes: int = DEFAULT_MAX_ATTRIBUTE_BYTES,
) -> Iterator[Span | IngestProblem]:
    """Read span JSONL, one span per line.

    Args:
        stream: The file, opened in binary mode (decompressed already).
        name: What problems call the file.
        options: Supplies the default ``source`` (and where release/environment come from when
            a line leaves them out).
        max_attribute_bytes: The largest value accepted for ``input``, ``output`` and each
            attribute, in UTF-8 bytes once serialised.

    Returns:
        Each span, and a problem for each line that could not be read.
    """
    number = 0
    try:
        for number, line in enumerate(stream, start=1):
            if line.strip():
                yield map_span_line(line, f"{name}:{number}", options, max_attribute_bytes)
    except _READ_ERRORS as error:
        yield IngestProblem(f"{name}:{number + 1}", f"cannot read the file: {error}")


def span_from_record(
    record: Any,
    options: MappingOptions,
    *,
    max_value_bytes: int = DEFAULT_MAX_ATTRIBUTE_BYTES,
    measure: bool = True,
) -> Span:
    """Build a span from one decoded JSONL record.

    Args:
        record: The line's JSON object.
        options: Supplies the default ``source`` and the release/environment fallbacks.
        max_value_bytes: The largest ``input``, ``output`` or attribute value accepted.
        measure: Whether to measure values against ``max_value_bytes`` (a caller that knows
            the whole record is smaller skips it).

    Returns:
        The span.

    Raises:
        ConventionError: a value is malformed, too large or nested too deep.
        pydantic.ValidationError: the record does not make a valid span.
    """
    if not isinstance(record, dict):
        raise ConventionError("a line must hold a JSON object")
    fields = dict(record)
    fields.setdefault("source", options.source)
    for key in ("start_time", "end_time"):
        fields[key] = _timestamp(fields.get(key), key)
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        _check_token_count(fields.get(key), key)
    if isinstance(fields.get("status"), str):
        fields["status"] = {"code": fields["status"].lower()}
    _check_content(fields, max_value_bytes if measure else None)
    _fill_from_attributes(fields, options)
    return Span.model_validate(fields)


def map_span_line(
    line: bytes, location: str, options: MappingOptions, max_value_bytes: int
) -> Span | IngestProblem:
    """Map one line of span JSONL."""
    line = line.removeprefix(b"\xef\xbb\xbf")  # a BOM opening the file
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        return IngestProblem(location, f"invalid JSON: {error}")
    try:
        return span_from_record(
            record,
            options,
            max_value_bytes=max_value_bytes,
            # A line no longer than the limit cannot hold a value over it.
            measure=len(line) > max_value_bytes,
        )
    except (ValueError, TypeError, OverflowError, RecursionError) as error:
        return IngestProblem(location, describe_error(error))


_NANOS_PER_UNIT = ((1e11, 10**9), (1e14, 10**6), (1e17, 10**3))
"""Below each magnitude, epoch numbers are read in that unit: s, ms, µs; above them, ns."""


def _timestamp(value: Any, field: str) -> Any:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return _iso_timestamp(value, field)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConventionError(f"{field} must be an ISO-8601 string or a number since the epoch")
    scale = next((scale for bound, scale in _NANOS_PER_UNIT if abs(value) < bound), 1)
    nanos = value * scale if isinstance(value, int) else round(value * scale)
    try:
        return utc_from_unix_nanos(nanos)
    except (OverflowError, OSError, ValueError):
        raise ConventionError(f"{field} {value!r} is out of range") from None


def _iso_timestamp(value: str, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConventionError(f"{field} {value[:40]!r} is not an ISO-8601 timestamp") from None
    if moment.tzinfo is None:
        raise ConventionError(f"{field} {value[:40]!r} has no UTC offset")
    return moment


def _check_token_count(value: Any, field: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConventionError(f"{field} {value!r:.40} is not a whole number of tokens")


def _check_content(fields: dict[str, Any], max_value_bytes: int | None) -> None:
    for key in ("input", "output"):
        if key in fields:
            fields[key] = _checked(key, parse_json_value, fields[key], max_value_bytes)
    attributes = fields.get("attributes")
    if isinstance(attributes, dict):
        for key, value in attributes.items():
            _checked(f"attributes.{key}", None, value, max_value_bytes)


def _checked(
    field: str,
    parse: Callable[[Any], Any] | None,
    value: Any,
    max_value_bytes: int | None,
) -> Any:
    try:
        if parse is not None:
            value = parse(value)
        check_depth(value)
        if max_value_bytes is not None:
            check_value_size(value, max_value_bytes)
    except ConventionError as error:
        raise ConventionError(f"{field}: {error}") from None
    return value


def _fill_from_attributes(fields: dict[str, Any], options: MappingOptions) -> None:
    """Release and environment, when a line leaves them out, from the attributes options name.

    A line has no resource, so ``resource.service.version`` names the ``service.version``
    attribute.
    """
    attributes = fields.get("attributes")
    if not isinstance(attributes, dict):
        return
    if fields.get("release") is None:
        fields["release"] = _attribute_text(attributes, (options.release_from,))
    if fields.get("environment") is None:
        fields["environment"] = _attribute_text(attributes, options.environment_from)


def _attribute_text(attributes: dict[str, Any], specs: tuple[str, ...]) -> str | None:
    for spec in specs:
        value = attributes.get(spec.removeprefix("resource."))
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
    return None
