"""Read OTLP trace files: the OpenTelemetry collector file exporter's JSON and protobuf output.

JSON comes as one ``ExportTraceServiceRequest`` per line (the exporter's default), or as one
request per file, possibly pretty-printed and large, which is streamed with ijson one
``ResourceSpans`` at a time. A line or document that is not valid JSON is still read one
``ResourceSpans`` at a time when its strings and brackets match up, so that ``NaN`` or a byte
that is not UTF-8 costs only the span (or resource) holding it. Protobuf comes as the
exporter's ``format: proto`` stream (each request preceded by its length as a 4-byte big-endian
unsigned integer) or as a single raw request. Both decode to the OTLP JSON dict shape, so
:mod:`tracegrade.sources.conventions` maps them the same way. Problems are located as
``FILE:LINE`` for JSON lines and ``FILE@OFFSET`` (bytes into the decompressed stream) otherwise.
"""

from __future__ import annotations

import base64
import io
import json
import re
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import ijson  # type: ignore[import-untyped]
import orjson
import regex
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tracegrade.sources._base import IngestProblem, MappingOptions
from tracegrade.sources.conventions import (
    DEFAULT_MAX_ATTRIBUTE_BYTES,
    ConventionError,
    decode_attributes,
    map_export_request,
    map_resource_spans,
    map_span,
)
from tracegrade.spans import JSONValue, Span

_READ_ERRORS = (OSError, EOFError, zlib.error)
"""What a damaged file (a truncated or corrupt gzip stream above all) raises mid-read."""

_PROBE_LINES = 20
_PROBE_LINE_BYTES = 64 * 1024 * 1024
_SCAN_CHUNK = 1024 * 1024
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_RAW_REQUEST_FIRST_BYTE = 0x0A
"""A raw request opens with field 1 (resource_spans), length-delimited: tag byte 0x0A."""


def read_otlp_json(
    stream: io.BufferedIOBase,
    name: str,
    options: MappingOptions,
    *,
    max_attribute_bytes: int = DEFAULT_MAX_ATTRIBUTE_BYTES,
) -> Iterator[Span | IngestProblem]:
    """Read OTLP JSON: one request per line, or one (possibly pretty-printed) request per file.

    Args:
        stream: The file, opened in binary mode (decompressed already) and seekable.
        name: What problems call the file.
        options: How spans become records.
        max_attribute_bytes: The largest attribute value accepted.

    Returns:
        Each span, and a problem for each record that could not be read or mapped.
    """
    try:
        lines, lines_read = _probe_json_lines(stream)
    except _READ_ERRORS as error:
        # Nothing came out before the damage: there is nothing to rewind to, or read.
        yield IngestProblem(f"{name}:1", f"cannot read the file: {error}")
        return
    try:
        stream.seek(0)
    except _READ_ERRORS as error:
        yield IngestProblem(f"{name}:{lines_read + 1}", f"cannot read the file: {error}")
        return
    read = _read_json_lines if lines else _read_json_document
    yield from read(stream, name, options, max_attribute_bytes)


def read_otlp_proto(
    stream: io.BufferedIOBase,
    name: str,
    options: MappingOptions,
    *,
    max_attribute_bytes: int = DEFAULT_MAX_ATTRIBUTE_BYTES,
) -> Iterator[Span | IngestProblem]:
    """Read OTLP protobuf: the file exporter's length-prefixed stream or one raw request.

    Args:
        stream: The file, opened in binary mode (decompressed already) and seekable.
        name: What problems call the file.
        options: How spans become records.
        max_attribute_bytes: The largest attribute value accepted.

    Returns:
        Each span, and a problem for each message or span that could not be decoded or mapped.
    """
    try:
        first = stream.read(1)
        stream.seek(0)
    except _READ_ERRORS as error:
        yield IngestProblem(f"{name}@0", f"cannot read the file: {error}")
        return
    if not first:
        return
    decoder = _ProtoDecoder(name, options, max_attribute_bytes)
    if first[0] == _RAW_REQUEST_FIRST_BYTE:
        yield from decoder.raw_request(_Cursor(stream))
    else:
        yield from decoder.framed_requests(_Cursor(stream))


def map_proto_request(
    data: bytes,
    options: MappingOptions,
    *,
    name: str,
    max_attribute_bytes: int = DEFAULT_MAX_ATTRIBUTE_BYTES,
    part: tuple[int, int] = (0, 1),
) -> Iterator[Span | IngestProblem]:
    """Map one binary ``ExportTraceServiceRequest`` (an OTLP/HTTP protobuf body, say).

    Args:
        data: The serialised request.
        options: How spans become records.
        name: What problems call it (they are located as ``NAME@OFFSET``).
        max_attribute_bytes: The largest attribute value accepted.
        part: ``(k, n)`` maps only the spans whose position in the request is ``k`` modulo
            ``n`` (so ``n`` processes can share one request); problems with the request or a
            resource as a whole come with part 0 only.

    Returns:
        Each span, and a problem for each part that could not be decoded or mapped.
    """
    decoder = _ProtoDecoder(name, options, max_attribute_bytes, part)
    return decoder.request(memoryview(data), 0)


def map_proto_request_counted(
    data: bytes,
    options: MappingOptions,
    *,
    name: str,
    max_attribute_bytes: int = DEFAULT_MAX_ATTRIBUTE_BYTES,
    part: tuple[int, int] = (0, 1),
) -> tuple[list[Span | IngestProblem], int]:
    """:func:`map_proto_request`, with how many spans its problems kept out.

    A problem with a span stands for that span; one with a resource, for every span the
    resource holds (what OTLP's ``rejected_spans`` counts). The problem of an undecodable
    request counts none.

    Returns:
        The records, and the number of spans rejected.
    """
    decoder = _ProtoDecoder(name, options, max_attribute_bytes, part)
    records = list(decoder.request(memoryview(data), 0))
    return records, decoder.rejected_spans


# --- JSON ----------------------------------------------------------------------------------------


def _probe_json_lines(stream: io.BufferedIOBase) -> tuple[bool, int]:
    """Whether the file holds one request per line (else one document spanning lines).

    Told from the first non-blank lines without needing any of them to be valid JSON, so that
    malformed lines (``NaN``, invalid UTF-8, cut short) do not make a file of lines look like
    one document. JSON lines when the file has one non-blank line at most, one of the lines
    is a whole request, the first line is a whole object (valid or not), or two lines open
    with a ``resourceSpans`` key; else when every line opens with ``{``, unless every line
    after the first ends with a comma (a document holding one resource a line). A document
    spanning lines fails all of these: its first line does not close (``{``,
    ``{"resourceSpans": [``), and the lines after it open with ``"``, ``}`` or ``]``
    (pretty-printed), or are resources ending with ``,``.

    Returns:
        The answer, and how many lines were read to find it. A read error after some lines
        (a truncated gzip stream) ends the probe; the reader meets it again where it is.

    Raises:
        OSError, EOFError, zlib.error: the file could not be read from its start.
    """
    non_blank = lines_read = requests = 0
    all_open_objects = all_end_in_commas = True
    while non_blank < _PROBE_LINES:
        try:
            line = stream.readline(_PROBE_LINE_BYTES)
        except _READ_ERRORS:
            if lines_read == 0:
                raise
            break
        if not line:
            break
        lines_read += 1
        if not line.endswith(b"\n") and len(line) >= _PROBE_LINE_BYTES:
            return False, lines_read  # too long to tell: stream it as a document
        text = line.strip()
        if not text:
            continue
        non_blank += 1
        if _is_request(text) or (non_blank == 1 and _whole_object(text)):
            return True, lines_read
        requests += _REQUEST_START.match(text) is not None
        if requests > 1:
            return True, lines_read
        all_open_objects = all_open_objects and text.startswith(b"{")
        if non_blank > 1:
            all_end_in_commas = all_end_in_commas and text.endswith(b",")
    return non_blank <= 1 or (all_open_objects and not all_end_in_commas), lines_read


def _is_request(line: bytes) -> bool:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(record, dict) and "resourceSpans" in record


_BOM = b"\xef\xbb\xbf"
_REQUEST_START = re.compile(rb'\{\s*"resourceSpans"\s*:')
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _whole_object(text: bytes) -> bool:
    """Whether the (stripped) line holds a JSON object that opens and closes on it (valid or
    not)."""
    if not (text.startswith(b"{") and text.endswith(b"}")):
        return False
    bare = _JSON_STRING.sub(b"", text)
    if b'"' in bare:
        return False  # a string left open
    return bare.count(b"{") + bare.count(b"[") == bare.count(b"}") + bare.count(b"]")


def _read_json_lines(
    stream: io.BufferedIOBase, name: str, options: MappingOptions, max_attribute_bytes: int
) -> Iterator[Span | IngestProblem]:
    number = 0
    try:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            yield from map_json_line(line, f"{name}:{number}", options, max_attribute_bytes)
    except _READ_ERRORS as error:
        yield IngestProblem(f"{name}:{number + 1}", f"cannot read the file: {error}")


def map_json_line(
    line: bytes, location: str, options: MappingOptions, max_attribute_bytes: int
) -> Iterator[Span | IngestProblem]:
    """Map one line of OTLP JSON lines: one ``ExportTraceServiceRequest``.

    A line that is not valid JSON but whose strings and brackets match up is read one
    ``ResourceSpans`` at a time, as a document ijson gave up on is (see
    :func:`_recover_document`): ``NaN`` or invalid UTF-8 costs the span or resource holding
    it, not the whole request. Any other invalid line is one problem.
    """
    line = line.removeprefix(_BOM)  # a BOM opening the file
    try:
        request = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        yield from _recover_line(line, location, f"invalid JSON: {error}", options,
                                 max_attribute_bytes)
        return
    yield from map_export_request(
        request, options, location=location, max_attribute_bytes=max_attribute_bytes
    )


def _recover_line(line: bytes, location: str, invalid: str, options: MappingOptions,
                  max_attribute_bytes: int) -> list[Span | IngestProblem]:
    records: list[Span | IngestProblem] = []
    try:
        for index, (_, item) in enumerate(_DocumentScanner(io.BytesIO(line)).resource_spans()):
            records.extend(_recovered_items(item, location, f"resourceSpans[{index}]", options,
                                            max_attribute_bytes))
    except _ScanError:
        return [IngestProblem(location, invalid)]
    if not any(isinstance(record, IngestProblem) for record in records) and not (
            records and _is_json(line)):
        records.append(IngestProblem(location, invalid))  # what is invalid lies elsewhere
    return records


def _is_json(line: bytes) -> bool:
    """Whether the line is JSON after all: orjson refuses some valid JSON, such as a number
    beyond a double's range (``1e400``) in a field the mapping never reads."""
    try:
        for _ in ijson.parse(line, multiple_values=True):
            pass
    except (ijson.JSONError, ValueError, RecursionError):
        return False
    return True


def holds_json_lines(stream: io.BufferedIOBase) -> bool:
    """Whether an OTLP JSON file holds one request per line (else one document).

    Raises:
        OSError, EOFError, zlib.error: the file cannot be read.
    """
    try:
        return _probe_json_lines(stream)[0]
    finally:
        stream.seek(0)


def _read_json_document(
    stream: io.BufferedIOBase, name: str, options: MappingOptions, max_attribute_bytes: int
) -> Iterator[Span | IngestProblem]:
    # The offset is how far the parser had read when a ResourceSpans ended: exact to within
    # ijson's buffer; the problem's reason names the span's path inside the request.
    counting = _CountingReader(stream)
    items = ijson.items(counting, "resourceSpans.item", use_float=True, multiple_values=True)
    index = spans_read = 0
    while True:
        try:
            resource_spans = next(items)
        except StopIteration:
            if index == 0 and not _holds_resource_spans_list(stream):
                yield IngestProblem(f"{name}@0", "not an OTLP trace export: no resourceSpans list")
            return
        except (ijson.JSONError, ValueError) as error:
            failure: Exception = error
            break
        except _READ_ERRORS as error:
            yield IngestProblem(f"{name}@{counting.offset}", f"cannot read the file: {error}")
            return
        for record in map_resource_spans(
            resource_spans,
            options,
            location=f"{name}@{counting.offset}",
            path=f"resourceSpans[{index}]",
            max_attribute_bytes=max_attribute_bytes,
        ):
            spans_read += isinstance(record, Span)
            yield record
        index += 1
    # ijson stops at the first byte that is not JSON; the resources after it are still worth
    # reading: see _recover_document.
    failed_at = f"{name}@{counting.offset}"
    reported = False
    try:
        stream.seek(0)
    except _READ_ERRORS as error:
        yield IngestProblem(failed_at, f"cannot read the file: {error}")
        return
    for record in _recover_document(stream, name, options, max_attribute_bytes, index,
                                    spans_read):
        reported = reported or isinstance(record, IngestProblem)
        yield record
    if not reported:  # what ijson tripped on lies outside every resource
        yield IngestProblem(failed_at, f"invalid JSON: {_first_line(failure)}")


def _holds_resource_spans_list(stream: io.BufferedIOBase) -> bool:
    """Whether a document that gave no ``ResourceSpans`` has a ``resourceSpans`` list (empty),
    rather than being some other document (metrics, say) that must not pass as no spans."""
    try:
        stream.seek(0)
        for prefix, event, _ in ijson.parse(stream, multiple_values=True):
            if prefix == "resourceSpans" and event == "start_array":
                return True
    except (ijson.JSONError, ValueError, *_READ_ERRORS):
        return True  # the reader reported it, or will not see it the same way twice
    return False


def _recover_document(
    stream: io.BufferedIOBase, name: str, options: MappingOptions, max_attribute_bytes: int,
    done: int, spans_read: int,
) -> Iterator[Span | IngestProblem]:
    """Read a document ijson gave up on, one ``ResourceSpans`` at a time, after the first
    ``done`` (which were read already).

    A scanner that only follows strings and brackets cuts the ``resourceSpans`` array into its
    items, located by their exact byte offset, without judging their content; each item is
    then parsed on its own (:func:`_recovered_items`), so ``NaN``, invalid UTF-8 or a stray
    character costs the resource or span that holds it, not the rest of the document. Only a
    document whose brackets no longer match (cut short, above all) stops the scan, with a
    problem saying the rest could not be read.
    """
    scanner = _DocumentScanner(stream)
    index = 0
    try:
        for offset, item in scanner.resource_spans():
            if index >= done:
                for record in _recovered_items(item, f"{name}@{offset}",
                                               f"resourceSpans[{index}]", options,
                                               max_attribute_bytes):
                    spans_read += isinstance(record, Span)
                    yield record
            index += 1
    except _ScanError as error:
        where = f"{error.reason} inside resourceSpans[{index}]" if error.item else error.reason
        yield IngestProblem(f"{name}@{error.offset}",
                            f"invalid JSON: {where}; the rest of the document could not be "
                            f"read ({spans_read} spans read before it)")
    except _READ_ERRORS as error:
        yield IngestProblem(f"{name}@{scanner.offset}", f"cannot read the file: {error}")


_LONE_SURROGATE = regex.compile(
    # A \uD800-\uDBFF escape not followed by a \uDC00-\uDFFF one, or the other way round;
    # in both, the backslash opening the escape is not itself escaped.
    rb"(?<=(?<!\\)(?:\\\\)*)\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<=(?<!\\)(?:\\\\)*)(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def _recovered_items(
    item: bytes, location: str, path: str, options: MappingOptions, max_attribute_bytes: int
) -> Iterator[Span | IngestProblem]:
    """The spans of one ``ResourceSpans`` cut out of a document, however malformed.

    Parsed by orjson, else by ijson (which takes any depth), else by Python's json module with
    the bytes that are not UTF-8 kept as lone surrogates and ``NaN``/``Infinity`` as markers:
    a span holding either is a problem of its own (its siblings are read), and one outside the
    spans makes the whole resource a problem. Anything none of them parses is one problem.
    """
    try:
        value: Any = orjson.loads(item)
    except orjson.JSONDecodeError as error:
        reason = error.msg
        if "surrogate" in reason:
            # An escaped lone surrogate (JavaScript cutting a string inside an emoji writes
            # one) is valid JSON but no character: it becomes U+FFFD, as an undecodable byte
            # would in text, instead of the "?" ijson would silently put in its place.
            repaired = _LONE_SURROGATE.sub(rb"\\ufffd", item)
            if repaired != item:
                yield from _recovered_items(repaired, location, path, options,
                                            max_attribute_bytes)
                return
    else:
        yield from map_resource_spans(value, options, location=location, path=path,
                                      max_attribute_bytes=max_attribute_bytes)
        return
    try:
        value = next(iter(ijson.items(item, "", use_float=True)))
    except (ijson.JSONError, ValueError, StopIteration, RecursionError):
        pass
    else:
        yield from map_resource_spans(value, options, location=location, path=path,
                                      max_attribute_bytes=max_attribute_bytes)
        return
    try:
        value = json.loads(item.decode("utf-8", "surrogateescape"), parse_constant=_NotJSON)
    except (ValueError, RecursionError):
        yield IngestProblem(location, f"{path}: invalid JSON: {reason}")
        return
    yield from _map_lenient(value, location, path, options, max_attribute_bytes)


def _map_lenient(
    value: Any, location: str, path: str, options: MappingOptions, max_attribute_bytes: int
) -> Iterator[Span | IngestProblem]:
    bad_spans: dict[str, str] = {}
    scopes = value.get("scopeSpans", value.get("instrumentationLibrarySpans")) \
        if isinstance(value, dict) else None
    for scope_index, scope in enumerate(scopes if isinstance(scopes, list) else []):
        spans = scope.get("spans") if isinstance(scope, dict) else None
        if not isinstance(spans, list):
            continue
        for span_index, span in enumerate(spans):
            reason = _not_json(span)
            if reason is not None:
                bad_spans[f"{path}.scopeSpans[{scope_index}].spans[{span_index}]"] = reason
                spans[span_index] = "not JSON"  # mapped to a problem, reworded below
    outside = _not_json(value)
    if outside is not None:
        yield IngestProblem(location, f"{path}: invalid JSON: {outside}")
        return
    for record in map_resource_spans(value, options, location=location, path=path,
                                     max_attribute_bytes=max_attribute_bytes):
        if isinstance(record, IngestProblem):
            label = record.reason.partition(": ")[0]
            reason = bad_spans.pop(label, None)
            if reason is not None:
                yield IngestProblem(location, f"{label}: invalid JSON: {reason}")
                continue
        yield record
    for label, reason in bad_spans.items():  # spans of a resource rejected as a whole
        yield IngestProblem(location, f"{label}: invalid JSON: {reason}")


class _NotJSON:
    """What ``NaN``, ``Infinity`` or ``-Infinity`` parses to in a lenient parse."""

    def __init__(self, name: str) -> None:
        self.name = name


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _not_json(value: Any) -> str | None:
    """Why a leniently parsed value is not JSON (a non-finite number, a string that is not
    UTF-8), or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if _SURROGATE.search(key):
                    return "a string is not valid UTF-8"
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if _SURROGATE.search(item):
                return "a string is not valid UTF-8"
        elif isinstance(item, _NotJSON):
            return f"{item.name} is not a JSON value"
    return None


class _ScanError(Exception):
    """The document's brackets or strings do not match up: where and why."""

    def __init__(self, offset: int, reason: str, item: bool) -> None:
        super().__init__(reason)
        self.offset, self.reason, self.item = offset, reason, item


_WHITESPACE = re.compile(rb"[ \t\r\n]*")
_STRUCTURE = re.compile(rb'["\[\]{},]')
_BOM = b"\xef\xbb\xbf"


class _DocumentScanner:
    """Cuts the ``resourceSpans`` arrays of JSON documents into their items' bytes.

    Follows strings, brackets and commas only, so malformed values inside an item do not
    matter; reads the stream a chunk at a time and keeps only the item being cut.
    """

    def __init__(self, stream: io.BufferedIOBase) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._base = 0
        self._pos = 0
        self._eof = False
        self._item_start = -1

    @property
    def offset(self) -> int:
        """Where the scan is, in bytes into the stream."""
        return self._base + self._pos

    def resource_spans(self) -> Iterator[tuple[int, bytes]]:
        """Each item of each top-level ``resourceSpans`` array: (offset, bytes)."""
        if self._peek() is not None and self._buffer.startswith(_BOM):
            self._pos = len(_BOM)
        while True:
            char = self._peek()
            if char is None:
                return
            if char == ord("{"):
                yield from self._object()
            elif char == ord("["):
                self._pos += 1
                self._skip_value()
                self._expect(b"]")
            else:
                raise self._error(f"unexpected {chr(char)!r}")

    def _object(self) -> Iterator[tuple[int, bytes]]:
        self._pos += 1
        if self._peek() == ord("}"):
            self._pos += 1
            return
        while True:
            if self._peek() != ord('"'):
                raise self._error("expected a key")
            end = self._string_end(self._pos)
            key = bytes(self._buffer[self._pos:end])
            self._pos = end
            self._expect(b":")
            if key == b'"resourceSpans"' and self._peek() == ord("["):
                yield from self._items()
            else:
                self._skip_value()
            if self._expect(b",}") == ord("}"):
                return

    def _items(self) -> Iterator[tuple[int, bytes]]:
        self._pos += 1
        if self._peek() == ord("]"):
            self._pos += 1
            return
        while True:
            self._peek()
            del self._buffer[:self._pos]  # keep only the item being cut
            self._base += self._pos
            self._pos = 0
            self._item_start = 0
            self._skip_value()
            item = bytes(self._buffer[:self._pos]).rstrip()
            self._item_start = -1
            yield self._base, item
            if self._expect(b",]") == ord("]"):
                return

    def _skip_value(self) -> None:
        """Move to the ``,`` or closing bracket that ends the value here (not past it)."""
        depth = 0
        while True:
            found = _STRUCTURE.search(self._buffer, self._pos)
            if found is None:
                self._pos = len(self._buffer)
                if not self._more():
                    raise self._error("the document ends")
                continue
            at = found.start()
            char = self._buffer[at]
            if char == ord('"'):
                self._pos = self._string_end(at)
                continue
            if char in b"{[":
                depth += 1
            elif depth == 0:  # the comma or closing bracket after the value
                self._pos = at
                return
            elif char != ord(","):
                depth -= 1
            self._pos = at + 1

    def _string_end(self, start: int) -> int:
        """The end of the string opening at ``start``; the scan stays at its start."""
        self._pos = start  # reading more keeps the bytes from here on
        while True:
            found = _JSON_STRING.match(self._buffer, self._pos)
            if found is not None:
                return found.end()
            if not self._more():
                raise self._error("the document ends")

    def _expect(self, chars: bytes) -> int:
        char = self._peek()
        if char is None:
            raise self._error("the document ends")
        if char not in chars:
            wanted = " or ".join(repr(chr(c)) for c in chars)
            raise self._error(f"expected {wanted}, found {chr(char)!r}")
        self._pos += 1
        return char

    def _peek(self) -> int | None:
        """The next byte that is not whitespace (moving to it), or None at the end."""
        while True:
            blank = _WHITESPACE.match(self._buffer, self._pos)
            if blank is not None:
                self._pos = blank.end()
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if not self._more():
                return None

    def _more(self) -> bool:
        """Read another chunk; outside an item, the bytes before the scan are let go."""
        if self._eof:
            return False
        if self._item_start < 0 and self._pos > 0:
            del self._buffer[:self._pos]
            self._base += self._pos
            self._pos = 0
        chunk = self._stream.read(max(_SCAN_CHUNK, len(self._buffer)))
        if not chunk:
            self._eof = True
            return False
        self._buffer += chunk
        return True

    def _error(self, reason: str) -> _ScanError:
        inside = self._item_start >= 0
        return _ScanError(self._base + (self._item_start if inside else self._pos), reason,
                          inside)


class _CountingReader:
    """A binary reader that counts the bytes handed out, for problem offsets."""

    def __init__(self, stream: io.BufferedIOBase) -> None:
        self._stream = stream
        self.offset = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self.offset += len(chunk)
        return chunk


def _first_line(error: Exception) -> str:
    message = error.args[0] if error.args else error
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return str(message).strip().splitlines()[0] if str(message).strip() else type(error).__name__


# --- protobuf ------------------------------------------------------------------------------------


class _WireError(ValueError):
    """Bytes that do not follow the protobuf wire format."""


class _Cursor:
    """Reads a binary stream, keeping the offset for problem locations."""

    def __init__(self, stream: io.BufferedIOBase) -> None:
        self._stream = stream
        self.offset = 0

    def read(self, size: int) -> bytes:
        chunk = self._stream.read(size)
        self.offset += len(chunk)
        return chunk

    def varint(self) -> int | None:
        """The next varint, or ``None`` at the end of the stream."""
        value, shift = 0, 0
        while True:
            byte = self.read(1)
            if not byte:
                if shift:
                    raise _WireError("truncated varint")
                return None
            value |= (byte[0] & 0x7F) << shift
            if byte[0] < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise _WireError("varint longer than 10 bytes")


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while position < len(data):
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
        if shift > 63:
            break
    raise _WireError("truncated or overlong varint")


_FIXED_SIZES = {1: 8, 5: 4}


def _fields(data: memoryview, base: int) -> Iterator[tuple[int, int, memoryview]]:
    """Each length-delimited field of a message: (number, absolute offset of payload, payload)."""
    position = 0
    while position < len(data):
        start = position
        key, position = _varint(data, position)
        wire_type = key & 7
        if wire_type == 0:
            _, position = _varint(data, position)
        elif wire_type in _FIXED_SIZES:
            position += _FIXED_SIZES[wire_type]
        elif wire_type == 2:
            length, position = _varint(data, position)
            end = position + length
            if end > len(data):
                raise _WireError(f"field at byte {base + start} runs past the end of its message")
            yield key >> 3, base + position, data[position:end]
            position = end
        else:
            raise _WireError(f"unsupported wire type {wire_type} at byte {base + start}")
        if position > len(data):
            raise _WireError(f"field at byte {base + start} runs past the end of its message")


class _ProtoDecoder:
    """Turns OTLP protobuf requests into spans, one span at a time."""

    def __init__(self, name: str, options: MappingOptions, max_attribute_bytes: int,
                 part: tuple[int, int] = (0, 1)) -> None:
        self.name = name
        self.options = options
        self.max_attribute_bytes = max_attribute_bytes
        self.part, self.parts = part
        self._spans_seen = 0
        self.rejected_spans = 0
        """Spans kept out by the problems yielded so far (all of a rejected resource's)."""

    def framed_requests(self, cursor: _Cursor) -> Iterator[Span | IngestProblem]:
        """The collector file exporter's stream: each request preceded by its 4-byte length."""
        while True:
            start = cursor.offset
            try:
                header = cursor.read(4)
                if not header:
                    return
                length = int.from_bytes(header, "big")
                payload = cursor.read(length) if len(header) == 4 else b""
            except _READ_ERRORS as error:
                yield self._problem(start, f"cannot read the file: {error}")
                return
            if len(header) < 4 or len(payload) < length:
                yield self._problem(start, "truncated message: the file ends inside it")
                return
            if payload.startswith(_ZSTD_MAGIC):
                yield self._problem(start, "zstd-compressed message: decompress the file first")
                continue
            yield from self.request(memoryview(payload), start + 4)

    def raw_request(self, cursor: _Cursor) -> Iterator[Span | IngestProblem]:
        """One request on its own, streamed one ResourceSpans at a time."""
        start = 0
        try:
            while True:
                start = cursor.offset
                key = cursor.varint()
                if key is None:
                    return
                payload = self._skip_or_read(cursor, key)
                if key == _RAW_REQUEST_FIRST_BYTE:
                    payload_start = cursor.offset - len(payload)
                    yield from self.resource_spans(memoryview(payload), payload_start)
        except _WireError as error:
            yield self._problem(start, f"not an OTLP protobuf request: {error}")
        except _READ_ERRORS as error:
            yield self._problem(start, f"cannot read the file: {error}")

    def request(self, data: memoryview, base: int) -> Iterator[Span | IngestProblem]:
        """The spans of one ``ExportTraceServiceRequest``."""
        whole = self._whole_request(data)
        if whole is not None:
            yield from whole
            return
        try:
            resource_spans = [(start, payload) for field, start, payload in _fields(data, base)
                              if field == 1]  # resource_spans; others are unknown: skipped
        except _WireError as error:
            if self.part == 0:
                yield self._problem(base, f"not an OTLP protobuf request: {error}")
            return
        for start, payload in resource_spans:
            yield from self.resource_spans(payload, start)

    def _whole_request(self, data: memoryview) -> list[Span] | None:
        """A well-formed request's spans, decoded in one protobuf parse; None for any problem.

        Almost every request is well-formed, and parsing it whole skips reading its framing
        here and a parse per span. Anything wrong (bytes, a resource, a span) is left to the
        span-by-span path, which locates each problem by its byte offset.
        """
        try:
            request = ExportTraceServiceRequest.FromString(bytes(data))
        except DecodeError:
            return None
        seen_before, spans = self._spans_seen, []
        for resource_spans in request.resource_spans:
            try:
                resource_attributes = decode_attributes(
                    [_key_value(kv) for kv in resource_spans.resource.attributes],
                    max_value_bytes=self.max_attribute_bytes,
                )
            except ConventionError:
                self._spans_seen = seen_before
                return None
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self._spans_seen += 1
                    if self.parts > 1 and (self._spans_seen - 1) % self.parts != self.part:
                        continue
                    record = map_span(_span_dict(span), resource_attributes, self.options,
                                      location=self.name,
                                      max_attribute_bytes=self.max_attribute_bytes)
                    if isinstance(record, IngestProblem):
                        self._spans_seen = seen_before
                        return None
                    spans.append(record)
        return spans

    def resource_spans(self, data: memoryview, start: int) -> Iterator[Span | IngestProblem]:
        """The spans of one ``ResourceSpans``, each decoded on its own."""
        spans: list[tuple[int, memoryview]] = []
        try:
            resource = self._read_resource_spans(data, start, spans)
            resource_attributes = self._resource_attributes(resource)
        except (_WireError, DecodeError, ConventionError) as error:
            if self.part == 0:
                # Spans behind unreadable bytes cannot be counted: at least one is lost.
                unreadable = isinstance(error, _WireError)
                self.rejected_spans += max(len(spans), 1) if unreadable else len(spans)
                yield self._problem(start, f"ResourceSpans: {error}")
            return
        for span_start, payload in spans:
            self._spans_seen += 1
            if self.parts > 1 and (self._spans_seen - 1) % self.parts != self.part:
                continue
            try:
                span = trace_pb2.Span.FromString(bytes(payload))
            except DecodeError as error:
                self.rejected_spans += 1
                yield self._problem(span_start, f"span is not valid protobuf: {error}")
                continue
            record = map_span(
                _span_dict(span),
                resource_attributes,
                self.options,
                location=f"{self.name}@{span_start}",
                max_attribute_bytes=self.max_attribute_bytes,
            )
            if isinstance(record, IngestProblem):
                self.rejected_spans += 1
            yield record

    @staticmethod
    def _read_resource_spans(
        data: memoryview, start: int, spans: list[tuple[int, memoryview]]
    ) -> bytes:
        """The ``Resource`` (serialised), adding each span to ``spans`` as it is found.

        Spans are gathered before the resource is decoded, so that a resource rejected as a
        whole can say how many spans it held.
        """
        resource_parts: list[bytes] = []
        for field, field_start, payload in _fields(data, start):
            if field == 1:  # a field repeated in a message merges: parts concatenate
                resource_parts.append(bytes(payload))
            elif field == 2:
                for number, span_start, span in _fields(payload, field_start):
                    if number == 2:
                        spans.append((span_start, span))
        return b"".join(resource_parts)

    def _resource_attributes(self, resource: bytes) -> dict[str, JSONValue]:
        if not resource:
            return {}
        decoded = resource_pb2.Resource.FromString(resource)
        return decode_attributes(
            [_key_value(kv) for kv in decoded.attributes],
            max_value_bytes=self.max_attribute_bytes,
        )

    @staticmethod
    def _skip_or_read(cursor: _Cursor, key: int) -> bytes:
        wire_type = key & 7
        if wire_type == 0:
            cursor.varint()
            return b""
        if wire_type in _FIXED_SIZES:
            return cursor.read(_FIXED_SIZES[wire_type])
        if wire_type != 2:
            raise _WireError(f"unsupported wire type {wire_type}")
        length = cursor.varint()
        payload = cursor.read(length or 0)
        if length is None or len(payload) < length:
            raise _WireError("truncated message: the file ends inside it")
        return payload

    def _problem(self, offset: int, reason: str) -> IngestProblem:
        return IngestProblem(f"{self.name}@{offset}", reason)


def _span_dict(span: trace_pb2.Span) -> dict[str, Any]:
    """A protobuf span in the OTLP JSON dict shape the conventions module reads."""
    return {
        "traceId": span.trace_id.hex(),
        "spanId": span.span_id.hex(),
        "parentSpanId": span.parent_span_id.hex(),
        "name": span.name,
        "startTimeUnixNano": span.start_time_unix_nano,
        "endTimeUnixNano": span.end_time_unix_nano,
        "attributes": [_key_value(kv) for kv in span.attributes],
        "status": {"code": span.status.code, "message": span.status.message},
        "events": [
            {
                "name": event.name,
                "timeUnixNano": event.time_unix_nano,
                "attributes": [_key_value(kv) for kv in event.attributes],
            }
            for event in span.events
        ],
        "links": [
            {
                "traceId": link.trace_id.hex(),
                "spanId": link.span_id.hex(),
                "attributes": [_key_value(kv) for kv in link.attributes],
            }
            for link in span.links
        ],
    }


def _key_value(kv: common_pb2.KeyValue) -> dict[str, Any]:
    return {"key": kv.key, "value": _any_value(kv.value)}


def _any_value(value: common_pb2.AnyValue) -> dict[str, Any]:
    field = value.WhichOneof("value")
    # Unset, or a field newer than this code (e.g. string_value_strindex, which the proto
    # says to read as absent where it is not supported): an empty AnyValue.
    if field is None or field not in _ANY_VALUE_FIELDS:
        return {}
    json_name, convert = _ANY_VALUE_FIELDS[field]
    return {json_name: convert(getattr(value, field))}


_ANY_VALUE_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "string_value": ("stringValue", str),
    "bool_value": ("boolValue", bool),
    "int_value": ("intValue", int),
    "double_value": ("doubleValue", float),
    "array_value": ("arrayValue", lambda array: {"values": [_any_value(v) for v in array.values]}),
    "kvlist_value": (
        "kvlistValue",
        lambda kvlist: {"values": [_key_value(kv) for kv in kvlist.values]},
    ),
    "bytes_value": ("bytesValue", lambda raw: base64.b64encode(raw).decode("ascii")),
}
