"""Read OTLP trace files: the OpenTelemetry collector file exporter's JSON and protobuf output.

JSON comes as one ``ExportTraceServiceRequest`` per line (the exporter's default), or as one
request per file, possibly pretty-printed and large, which is streamed with ijson one
``ResourceSpans`` at a time. Protobuf comes as the exporter's ``format: proto`` stream (each
request preceded by its length as a 4-byte big-endian unsigned integer) or as a single raw
request. Both decode to the OTLP JSON dict shape, so :mod:`tracegrade.sources.conventions` maps
them the same way. Problems are located as ``FILE:LINE`` for JSON lines and ``FILE@OFFSET`` (bytes
into the decompressed stream) otherwise.
"""

from __future__ import annotations

import base64
import io
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import ijson  # type: ignore[import-untyped]
import orjson
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
        lines = _holds_json_lines(stream)
        stream.seek(0)
    except _READ_ERRORS as error:
        yield IngestProblem(f"{name}:1", f"cannot read the file: {error}")
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


# --- JSON ----------------------------------------------------------------------------------------


def _holds_json_lines(stream: io.BufferedIOBase) -> bool:
    """Whether one of the first lines is a whole request on its own (else: one document)."""
    for _ in range(_PROBE_LINES):
        line = stream.readline(_PROBE_LINE_BYTES)
        if not line:
            return True
        if not line.endswith(b"\n") and len(line) >= _PROBE_LINE_BYTES:
            return False
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict) and "resourceSpans" in record:
            return True
    return False


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
    """Map one line of OTLP JSON lines: one ``ExportTraceServiceRequest``."""
    try:
        request = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        yield IngestProblem(location, f"invalid JSON: {error}")
        return
    yield from map_export_request(
        request, options, location=location, max_attribute_bytes=max_attribute_bytes
    )


def holds_json_lines(stream: io.BufferedIOBase) -> bool:
    """Whether an OTLP JSON file holds one request per line (else one document).

    Raises:
        OSError, EOFError, zlib.error: the file cannot be read.
    """
    try:
        return _holds_json_lines(stream)
    finally:
        stream.seek(0)


def _read_json_document(
    stream: io.BufferedIOBase, name: str, options: MappingOptions, max_attribute_bytes: int
) -> Iterator[Span | IngestProblem]:
    # The offset is how far the parser had read when a ResourceSpans ended: exact to within
    # ijson's buffer; the problem's reason names the span's path inside the request.
    counting = _CountingReader(stream)
    items = ijson.items(counting, "resourceSpans.item", use_float=True, multiple_values=True)
    try:
        for index, resource_spans in enumerate(items):
            yield from map_resource_spans(
                resource_spans,
                options,
                location=f"{name}@{counting.offset}",
                path=f"resourceSpans[{index}]",
                max_attribute_bytes=max_attribute_bytes,
            )
    except ijson.JSONError as error:
        yield IngestProblem(f"{name}@{counting.offset}", f"invalid JSON: {_first_line(error)}")
    except _READ_ERRORS as error:
        yield IngestProblem(f"{name}@{counting.offset}", f"cannot read the file: {error}")


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
            resource_spans = [(start, payload) for field, start, payload in _fields(data, base)]
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
        try:
            resource_attributes, spans = self._resource_and_spans(data, start)
        except (_WireError, DecodeError, ConventionError) as error:
            if self.part == 0:
                yield self._problem(start, f"ResourceSpans: {error}")
            return
        for span_start, payload in spans:
            self._spans_seen += 1
            if self.parts > 1 and (self._spans_seen - 1) % self.parts != self.part:
                continue
            try:
                span = trace_pb2.Span.FromString(bytes(payload))
            except DecodeError as error:
                yield self._problem(span_start, f"span is not valid protobuf: {error}")
                continue
            yield map_span(
                _span_dict(span),
                resource_attributes,
                self.options,
                location=f"{self.name}@{span_start}",
                max_attribute_bytes=self.max_attribute_bytes,
            )

    def _resource_and_spans(
        self, data: memoryview, start: int
    ) -> tuple[dict[str, JSONValue], list[tuple[int, memoryview]]]:
        resource_attributes: dict[str, JSONValue] = {}
        spans: list[tuple[int, memoryview]] = []
        for field, field_start, payload in _fields(data, start):
            if field == 1:
                resource = resource_pb2.Resource.FromString(bytes(payload))
                resource_attributes = decode_attributes(
                    [_key_value(kv) for kv in resource.attributes],
                    max_value_bytes=self.max_attribute_bytes,
                )
            elif field == 2:
                spans.extend(
                    (span_start, span)
                    for number, span_start, span in _fields(payload, field_start)
                    if number == 2
                )
        return resource_attributes, spans

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
            {"name": event.name, "attributes": [_key_value(kv) for kv in event.attributes]}
            for event in span.events
            if event.name == "exception"
        ],
    }


def _key_value(kv: common_pb2.KeyValue) -> dict[str, Any]:
    return {"key": kv.key, "value": _any_value(kv.value)}


def _any_value(value: common_pb2.AnyValue) -> dict[str, Any]:
    field = value.WhichOneof("value")
    if field is None:
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
