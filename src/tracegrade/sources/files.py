"""Read a trace file of any supported format, told apart by its content.

Formats: OTLP JSON (the collector file exporter's JSON lines, or one request per file), OTLP
protobuf (the exporter's length-prefixed ``format: proto`` stream, or one raw request) and
tracegrade's span JSONL. Any of them may be gzip-compressed; compression is recognised by its
magic bytes, not the file name.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum
from pathlib import Path

import orjson

from tracegrade.sources._base import IngestProblem, MappingOptions
from tracegrade.sources.conventions import DEFAULT_MAX_ATTRIBUTE_BYTES
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
    if text[:1] not in (b"{", b"["):
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


def _format_by_name(path: Path) -> TraceFileFormat:
    suffixes = {suffix.lower() for suffix in path.suffixes}
    if suffixes & _PROTO_SUFFIXES:
        return TraceFileFormat.OTLP_PROTO
    if ".jsonl" in suffixes:
        return TraceFileFormat.SPANS_JSONL
    return TraceFileFormat.OTLP_JSON
