"""Read a trace file of any supported format, told apart by its content.

Formats: OTLP JSON (the collector file exporter's JSON lines, or one request per file), OTLP
protobuf (the exporter's length-prefixed ``format: proto`` stream, or one raw request) and
tracegrade's span JSONL. Any of them may be gzip-compressed; compression is recognised by its
magic bytes, not the file name.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum
from pathlib import Path

import orjson

from tracegrade.sources._base import IngestProblem, MappingOptions
from tracegrade.sources.conventions import DEFAULT_MAX_ATTRIBUTE_BYTES, otlp_id
from tracegrade.sources.jsonl import map_span_line, read_spans_jsonl
from tracegrade.sources.otlp import (
    holds_json_lines,
    map_json_line,
    read_otlp_json,
    read_otlp_proto,
)
from tracegrade.spans import Span


class TraceFileFormat(StrEnum):
    """The formats :func:`read_file` reads."""

    OTLP_JSON = "otlp-json"
    OTLP_PROTO = "otlp-proto"
    SPANS_JSONL = "spans-jsonl"


READ_ERRORS = (OSError, EOFError, zlib.error)
_GZIP_MAGIC = b"\x1f\x8b"
_HEAD_BYTES = 64 * 1024
_FIRST_LINE_BYTES = 64 * 1024 * 1024
"""How much of a JSON first line longer than the head is read to tell its format."""
_BOM = b"\xef\xbb\xbf"
_BLANK = b"\xef\xbb\xbf \t\r\n"
_PROTO_SUFFIXES = {".pb", ".proto", ".binpb", ".protobuf"}
_READERS = {
    TraceFileFormat.OTLP_JSON: read_otlp_json,
    TraceFileFormat.OTLP_PROTO: read_otlp_proto,
    TraceFileFormat.SPANS_JSONL: read_spans_jsonl,
}


def read_file(
    path: Path,
    options: MappingOptions,
    *,
    max_attribute_bytes: int = DEFAULT_MAX_ATTRIBUTE_BYTES,
) -> Iterator[Span | IngestProblem]:
    """Read the spans of one trace file, yielding each as it is read.

    Args:
        path: The file (``.gz`` or not).
        options: How raw spans become records.
        max_attribute_bytes: The largest attribute value accepted, in UTF-8 bytes; a span
            holding a larger one is reported as a problem.

    Returns:
        Each span, and a problem (with ``FILE:LINE`` or ``FILE@OFFSET``) for each record that
        could not be read; the records after a bad one still come through.

    Raises:
        FileNotFoundError: the file does not exist (raised at the call, not on iteration).
        IsADirectoryError: the path is a directory.
    """
    path.open("rb").close()
    return _read(path, options, max_attribute_bytes)


def detect_format(path: Path) -> TraceFileFormat:
    """Tell a trace file's format from its first bytes (decompressed), its name breaking ties.

    Raises:
        FileNotFoundError: the file does not exist.
    """
    with _open(path) as stream:
        return _format_of(_head(stream)[0], path)


LineMapper = Callable[[bytes, str, MappingOptions, int], Iterable[Span | IngestProblem]]
"""Maps one line (bytes, ``FILE:LINE``, options, the attribute limit) to its spans/problems."""


def line_mapper(path: Path) -> LineMapper | None:
    """How each line of this file maps, when it is a file of independent lines, else None.

    OTLP JSON lines and span JSONL map line by line, so their lines can be mapped anywhere
    (in worker processes, say) and in any order; a one-document OTLP JSON file or a protobuf
    stream cannot be split that way.
    """
    try:
        with _open(path) as stream:
            head, damaged = _head(stream)
            if damaged:
                return None  # the sequential reader reports where the file is damaged
            file_format = _format_of(head, path)
            stream.seek(0)
            if file_format is TraceFileFormat.SPANS_JSONL:
                return _span_line
            if file_format is TraceFileFormat.OTLP_JSON and holds_json_lines(stream):
                return map_json_line
    except READ_ERRORS:
        pass  # the sequential reader reports where the file is damaged
    return None


def is_compressed(path: Path) -> bool:
    """Whether the file is gzip-compressed (told by its magic bytes)."""
    with path.open("rb") as stream:
        return stream.read(2) == _GZIP_MAGIC


def open_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """The file's lines (decompressed) with their 1-based numbers.

    Raises:
        OSError, EOFError, zlib.error: the file cannot be read (possibly mid-way).
    """
    with _open(path) as stream:
        yield from enumerate(stream, start=1)


SpanKey = tuple[str, str]
"""A span's ``(source, span_id)``."""


def later_copies(path: Path, mapper: LineMapper, options: MappingOptions) -> dict[SpanKey, int]:
    """The keys held by more than one line of a line file, each with the (decompressed) byte
    offset of the last line holding it.

    A line holding a copy of a span that a later line holds again is left out of an import
    (see :func:`skip_earlier_copies`): the file's last copy wins whichever batch or worker
    takes each line, so a re-import of an unchanged file rewrites nothing.

    Repeats are rare, so the common case must cost little: a first pass only scans the bytes
    for span ids (no JSON parsing; about a tenth of a full parse), keeping a hash of each. Only
    when an id turns up twice — which a link to another span can also cause — does a second
    pass parse the lines mentioning such ids, to find which really hold the span again. A line
    whose keys cannot be read (invalid JSON, say) counts for none.

    Raises:
        OSError, EOFError, zlib.error: the file cannot be read (the import reports where).
    """
    pattern = _JSONL_ID if mapper is _span_line else _OTLP_ID
    seen: set[int] = set()
    repeated: set[bytes] = set()
    with _open(path) as stream:
        for line in stream:
            for raw in pattern.findall(line):
                digest = hash(raw)
                if digest in seen:
                    repeated.add(raw)
                else:
                    seen.add(digest)
    if not repeated:
        return {}
    keys_of = _span_line_keys if mapper is _span_line else _otlp_line_keys
    copies: dict[SpanKey, int] = {}
    last: dict[SpanKey, int] = {}
    offset = 0
    with _open(path) as stream:
        for line in stream:
            if any(raw in repeated for raw in pattern.findall(line)):
                for key in keys_of(line, options):
                    copies[key] = copies.get(key, 0) + 1
                    last[key] = offset
            offset += len(line)
    return {key: last[key] for key, count in copies.items() if count > 1}


_OTLP_ID = re.compile(rb'"spanId"\s*:\s*"([^"\\]*)"')
_JSONL_ID = re.compile(rb'"span_id"\s*:\s*"([^"\\]*)"')
"""A span id as its line spells it (a link's ids match too; the second pass tells)."""


def skip_earlier_copies(spans: Iterable[Span], offset: int,
                        later: dict[SpanKey, int]) -> list[Span]:
    """The line's spans (the line at ``offset``) no later line holds again, each key once."""
    kept = [span for span in spans if later.get((span.source, span.span_id), offset) <= offset]
    if len(kept) > 1 and any((span.source, span.span_id) in later for span in kept):
        return list({(span.source, span.span_id): span for span in kept}.values())
    return kept


def read_lines(path: Path, mapper: LineMapper, options: MappingOptions,
               later: dict[SpanKey, int], *,
               max_attribute_bytes: int = DEFAULT_MAX_ATTRIBUTE_BYTES
               ) -> Iterator[Span | IngestProblem]:
    """Read a line file as :func:`read_file` does, leaving out copies a later line repeats."""
    number = offset = 0
    try:
        with _open(path) as stream:
            for number, line in enumerate(stream, start=1):
                if line.strip():
                    records = list(mapper(line, f"{path}:{number}", options,
                                          max_attribute_bytes))
                    yield from (record for record in records
                                if isinstance(record, IngestProblem))
                    spans = [record for record in records if isinstance(record, Span)]
                    yield from skip_earlier_copies(spans, offset, later) if later else spans
                offset += len(line)
    except READ_ERRORS as error:
        yield IngestProblem(f"{path}:{number + 1}", f"cannot read the file: {error}")


def _span_line_keys(line: bytes, options: MappingOptions) -> list[SpanKey]:
    try:
        record = orjson.loads(line.removeprefix(_BOM))
    except orjson.JSONDecodeError:
        return []
    if not isinstance(record, dict):
        return []
    source, span_id = record.get("source", options.source), record.get("span_id")
    return [(source, span_id)] if isinstance(source, str) and isinstance(span_id, str) else []


def _otlp_line_keys(line: bytes, options: MappingOptions) -> list[SpanKey]:
    try:
        request = orjson.loads(line.removeprefix(_BOM))
    except orjson.JSONDecodeError:
        return []
    keys = []
    resources = request.get("resourceSpans") if isinstance(request, dict) else None
    for resource_spans in _dicts(resources):
        for scope_spans in _dicts(resource_spans.get(
                "scopeSpans", resource_spans.get("instrumentationLibrarySpans"))):
            for span in _dicts(scope_spans.get("spans")):
                try:
                    span_id = otlp_id(span.get("spanId"), 8, "spanId")
                except ValueError:
                    continue
                if span_id is not None:
                    keys.append((options.source, span_id))
    return keys


def _dicts(items: object) -> list[dict[str, object]]:
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _span_line(line: bytes, location: str, options: MappingOptions, max_value_bytes: int
               ) -> list[Span | IngestProblem]:
    return [map_span_line(line, location, options, max_value_bytes)]


def _read(
    path: Path, options: MappingOptions, max_attribute_bytes: int
) -> Iterator[Span | IngestProblem]:
    # The reader gets the file afresh: a gzip stream that broke off in its header cannot be
    # rewound (it would read as empty), and the reader must meet the damage to report it.
    try:
        with _open(path) as stream:
            head = _head(stream)[0]
        stream = _open(path)
    except READ_ERRORS as error:
        yield IngestProblem(f"{path}@0", f"cannot read the file: {error}")
        return
    reader = _READERS[_format_of(head, path)]
    with stream:
        yield from reader(stream, str(path), options, max_attribute_bytes=max_attribute_bytes)


def _open(path: Path) -> io.BufferedIOBase:
    raw = path.open("rb")
    if raw.peek(2)[:2] != _GZIP_MAGIC:
        return raw
    raw.close()
    return gzip.open(path, "rb")


def _head(stream: io.BufferedIOBase) -> tuple[bytes, bool]:
    """The first bytes of the file, or as many as could be read before it broke off; and
    whether it broke off.

    A JSON first line longer than the head is read to its end (up to ``_FIRST_LINE_BYTES``),
    so that its keys tell the format. A damaged file is still read by its reader, which
    reports the damage where it is.
    """
    head = b""
    try:
        while len(head) < _HEAD_BYTES:
            chunk = stream.read(min(8192, _HEAD_BYTES - len(head)))
            if not chunk:
                return head, False
            head += chunk
        text = head.lstrip(_BLANK)
        if text[:1] == b"{" and b"\n" not in text:
            head += stream.readline(_FIRST_LINE_BYTES - len(head))
    except READ_ERRORS:
        return head, True
    return head, False


def _format_of(head: bytes, path: Path) -> TraceFileFormat:
    text = head.lstrip(_BLANK)
    if not text:
        return _format_by_name(path)
    if text[:1] not in (b"{", b"[") and not _is_text(text, path):
        return TraceFileFormat.OTLP_PROTO
    first_line = text.split(b"\n", 1)[0]
    try:
        first_record = orjson.loads(first_line)
    except orjson.JSONDecodeError:
        first_record = None
    if isinstance(first_record, dict):
        if "resourceSpans" in first_record:
            return TraceFileFormat.OTLP_JSON
        if "span_id" in first_record:
            return TraceFileFormat.SPANS_JSONL
    # A first line that is not valid JSON (NaN, say), or a document spanning lines: the
    # first line's keys first, then the rest of the head's.
    for part in (first_line, text):
        if b'"resourceSpans"' in part:
            return TraceFileFormat.OTLP_JSON
        if b'"span_id"' in part or b'"trace_id"' in part:
            return TraceFileFormat.SPANS_JSONL
    return _format_by_name(path)


def _is_text(head: bytes, path: Path) -> bool:
    """Whether a head not opening with JSON is text (JSON lines whose first line is bad) that
    names a trace format's keys, or is named ``.json``/``.jsonl``; else it is protobuf, which
    may be valid UTF-8 too, but a framed stream opens with NUL bytes."""
    if b"\x00" in head:
        return False
    try:
        head.decode()
    except UnicodeDecodeError as error:
        # A head cut mid-character, or a few bad bytes in a bad line, is still text.
        if error.start < len(head) * 0.9:
            return False
    keys = b'"resourceSpans"' in head or b'"span_id"' in head
    return keys or bool({suffix.lower() for suffix in path.suffixes} & {".json", ".jsonl"})


def _format_by_name(path: Path) -> TraceFileFormat:
    suffixes = {suffix.lower() for suffix in path.suffixes}
    if suffixes & _PROTO_SUFFIXES:
        return TraceFileFormat.OTLP_PROTO
    if ".jsonl" in suffixes:
        return TraceFileFormat.SPANS_JSONL
    return TraceFileFormat.OTLP_JSON
