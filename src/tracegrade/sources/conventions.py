"""The one place that maps OTLP spans to canonical :class:`~tracegrade.spans.Span` records.

Input is the dict shape of OTLP JSON (what the collector's file exporter writes and what
``google.protobuf.json_format.MessageToDict`` gives): camelCase keys, attributes as a list of
``{"key", "value": {"stringValue" | "intValue" | ...}}``. Two attribute conventions are understood,
OpenInference (``openinference.span.kind``, ``input.value``, flattened ``llm.input_messages.N.*``)
and the OpenTelemetry GenAI semantic conventions (``gen_ai.operation.name``,
``gen_ai.input.messages``, ``gen_ai.tool.call.arguments``…). Whatever either says ends up in the
same normalised shape:

* LLM (and agent, chain…) spans: ``input`` is the parsed ``input.value`` when recorded, else
  ``{"messages": [...], "system": ...}``; ``output`` is the parsed ``output.value``, else
  ``{"messages": [...]}``. A message is ``{"role", "content"}`` plus, when present,
  ``tool_calls``, ``tool_call_id``, ``name`` and ``finish_reason``.
* Tool spans: ``input`` is the call's arguments and ``output`` its result (JSON parsed).
* ``attributes["tool_calls"]``: the calls the model made, ``[{"id", "name", "arguments"}]``,
  present whenever output messages were recorded (``[]`` means the model called no tool);
  ``arguments`` is left out when the trace did not record them.
* ``attributes["tool_definitions"]``: the tools offered, ``[{"name", "description",
  "parameters"}]`` with ``parameters`` the JSON Schema.

Attributes mapped into first-class fields are dropped from ``attributes``; every other one is kept
with its plain JSON value.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson
from pydantic import ValidationError

from tracegrade.sources._base import IngestProblem, MappingOptions
from tracegrade.sources._langfuse_map import (
    OBSERVATION_KINDS,
    tool_calls_of,
    usage_from_details,
)
from tracegrade.spans import (
    JSONValue,
    Span,
    SpanKind,
    Status,
    StatusCode,
    parse_json_string,
    utc_from_unix_nanos,
)

DEFAULT_MAX_ATTRIBUTE_BYTES = 1024 * 1024
"""Attribute values (and JSONL field values) larger than this, in UTF-8 bytes, are rejected."""

MAX_NESTING_DEPTH = 100
"""JSON values nested deeper than this are rejected: the store must be able to serialise them."""


class ConventionError(ValueError):
    """A span that cannot be mapped; the message says why."""


def map_export_request(
    request: Any,
    options: MappingOptions,
    *,
    location: str,
    max_attribute_bytes: int = DEFAULT_MAX_ATTRIBUTE_BYTES,
) -> Iterator[Span | IngestProblem]:
    """Map every span of one OTLP ``ExportTraceServiceRequest`` (JSON dict shape).

    Args:
        request: The decoded request.
        options: How spans become records.
        location: Where the request is (``FILE:LINE`` or ``FILE@OFFSET``), for problems.
        max_attribute_bytes: The largest attribute value accepted.

    Returns:
        Each span, or a problem for each span (or part of the request) that could not be mapped.
    """
    if not isinstance(request, dict):
        yield IngestProblem(location, "not an OTLP trace export: expected a JSON object")
        return
    all_resource_spans = request.get("resourceSpans")
    if not isinstance(all_resource_spans, list):
        yield IngestProblem(location, "not an OTLP trace export: no resourceSpans list")
        return
    for index, resource_spans in enumerate(all_resource_spans):
        yield from map_resource_spans(
            resource_spans,
            options,
            location=location,
            path=f"resourceSpans[{index}]",
            max_attribute_bytes=max_attribute_bytes,
        )


def map_resource_spans(
    resource_spans: Any,
    options: MappingOptions,
    *,
    location: str,
    path: str = "resourceSpans[0]",
    max_attribute_bytes: int = DEFAULT_MAX_ATTRIBUTE_BYTES,
) -> Iterator[Span | IngestProblem]:
    """Map every span of one OTLP ``ResourceSpans`` (JSON dict shape).

    Args:
        resource_spans: The decoded ``ResourceSpans``.
        options: How spans become records.
        location: Where it is, for problems.
        path: Its position in the request, prefixed to problem reasons.
        max_attribute_bytes: The largest attribute value accepted.

    Returns:
        Each span, or a problem for each one that could not be mapped.
    """
    if not isinstance(resource_spans, dict):
        yield IngestProblem(location, f"{path}: not a JSON object")
        return
    try:
        resource = _object(resource_spans.get("resource"), "resource")
        resource_attributes = decode_attributes(
            resource.get("attributes"), max_value_bytes=max_attribute_bytes
        )
        scope_spans_list = _list(
            resource_spans.get("scopeSpans", resource_spans.get("instrumentationLibrarySpans")),
            "scopeSpans",
        )
    except ConventionError as error:
        yield IngestProblem(location, f"{path}: {error}")
        return
    for scope_index, scope_spans in enumerate(scope_spans_list):
        scope_path = f"{path}.scopeSpans[{scope_index}]"
        try:
            spans = _list(_object(scope_spans, "scopeSpans").get("spans"), "spans")
        except ConventionError as error:
            yield IngestProblem(location, f"{scope_path}: {error}")
            continue
        for span_index, span in enumerate(spans):
            yield map_span(
                span,
                resource_attributes,
                options,
                location=location,
                label=f"{scope_path}.spans[{span_index}]",
                max_attribute_bytes=max_attribute_bytes,
            )


def map_span(
    span: Any,
    resource_attributes: Mapping[str, JSONValue],
    options: MappingOptions,
    *,
    location: str,
    label: str = "span",
    max_attribute_bytes: int = DEFAULT_MAX_ATTRIBUTE_BYTES,
) -> Span | IngestProblem:
    """Map one OTLP span, turning any failure into an :class:`IngestProblem`.

    Args:
        span: The span in OTLP JSON dict shape.
        resource_attributes: Its resource's attributes, already decoded.
        options: How spans become records.
        location: Where the span is, for the problem.
        label: Names the span in the problem's reason (its path in the request).
        max_attribute_bytes: The largest attribute value accepted.

    Returns:
        The span, or the problem that kept it out.
    """
    try:
        return span_from_otlp(
            span, resource_attributes, options, max_attribute_bytes=max_attribute_bytes
        )
    except (ValueError, TypeError, OverflowError, RecursionError) as error:
        return IngestProblem(location, f"{label}: {describe_error(error)}")


def span_from_otlp(
    span: Any,
    resource_attributes: Mapping[str, JSONValue],
    options: MappingOptions,
    *,
    max_attribute_bytes: int = DEFAULT_MAX_ATTRIBUTE_BYTES,
) -> Span:
    """Map one OTLP span (JSON dict shape) to a :class:`Span`.

    Args:
        span: The span in OTLP JSON dict shape.
        resource_attributes: Its resource's attributes, already decoded.
        options: How spans become records.
        max_attribute_bytes: The largest attribute value accepted.

    Returns:
        The normalised span.

    Raises:
        ConventionError: the span is malformed (the message says how).
        pydantic.ValidationError: the mapped values do not make a valid span.
    """
    span = _object(span, "span")
    attributes = _Attributes(
        decode_attributes(span.get("attributes"), max_value_bytes=max_attribute_bytes)
    )
    kind = _kind(attributes)
    fields: dict[str, Any] = {
        "source": options.source,
        "span_id": _required_id(span.get("spanId"), 8, "spanId"),
        "trace_id": _required_id(span.get("traceId"), 16, "traceId"),
        "parent_id": otlp_id(span.get("parentSpanId"), 8, "parentSpanId"),
        "kind": kind,
        "start_time": _start_time(span.get("startTimeUnixNano")),
        "end_time": _end_time(span.get("endTimeUnixNano")),
        "status": _status(span.get("status"), span.get("events"), attributes),
        "name": _name(span.get("name"), kind, attributes),
    }
    check_value_size(fields["name"], max_attribute_bytes)
    check_value_size(fields["status"].message, max_attribute_bytes)
    fields.update(_usage(attributes))
    fields.update(_identity(attributes, resource_attributes, options))
    fields["input"], fields["output"], normalised = _content(kind, attributes)
    kept = _remaining_attributes(attributes, resource_attributes, options)
    events, links = span.get("events"), span.get("links")
    if events:
        records = _events(events, max_attribute_bytes)
        if fields["input"] is None or fields["output"] is None:
            records = _content_from_events(records, fields, normalised)
        if records:
            kept["otel.events"] = records
    if links:
        kept["otel.links"] = _links(links, max_attribute_bytes)
    fields["attributes"] = kept | normalised
    return Span(**fields)


def decode_attributes(
    attributes: Any, *, max_value_bytes: int = DEFAULT_MAX_ATTRIBUTE_BYTES
) -> dict[str, JSONValue]:
    """Decode an OTLP attribute list into ``{key: plain JSON value}``.

    Args:
        attributes: The ``attributes`` list (``None`` means none).
        max_value_bytes: The largest value accepted, in UTF-8 bytes.

    Returns:
        The attributes by key; a repeated key keeps its last value.

    Raises:
        ConventionError: an entry is malformed, too large, too deep or not finite.
    """
    if attributes is None:
        return {}
    decoded: dict[str, JSONValue] = {}
    # A string this short cannot be over the limit even at 4 UTF-8 bytes a character.
    surely_small = max_value_bytes // 4
    for entry in _list(attributes, "attributes"):
        if not isinstance(entry, dict):
            raise ConventionError("an attribute is not a {key, value} object")
        key = entry.get("key")
        if not isinstance(key, str) or not key:
            raise ConventionError("an attribute has no key")
        raw = entry.get("value")
        if isinstance(raw, dict) and len(raw) == 1 and len(key) <= surely_small:
            ((field, content),) = raw.items()
            if field == "stringValue" and isinstance(content, str) and len(content) <= surely_small:
                decoded[key] = content
                continue
            scalar = _SCALAR_DECODERS.get(field)
            if scalar is not None:
                decoded[key] = _attribute_scalar(key, scalar, content)
                continue
        decoded[key] = _attribute_value(key, raw, max_value_bytes)
    return decoded


def any_value(value: Any, depth: int = 0) -> JSONValue:
    """Decode one OTLP ``AnyValue`` (JSON dict shape) into a plain JSON value.

    Raises:
        ConventionError: the value is malformed, nested too deep or a non-finite number.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConventionError(f"value {_preview(value)} is not an OTLP AnyValue object")
    if depth >= MAX_NESTING_DEPTH:
        raise ConventionError(f"value nested deeper than {MAX_NESTING_DEPTH} levels")
    for field, decode in _ANY_VALUE_DECODERS.items():
        if field in value:
            return decode(value[field], depth)
    return None  # empty, or only fields newer than this code: OTLP/JSON says ignore them


def otlp_id(value: Any, size: int, field: str) -> str | None:
    """A trace or span id as lower-case hex, from hex (collector JSON) or base64 (protobuf JSON).

    Args:
        value: The id as found in the span.
        size: Its length in bytes (16 for trace ids, 8 for span ids).
        field: Its field name, for the error.

    Returns:
        The hex id, or ``None`` for an empty or all-zero (invalid, so unset) id.

    Raises:
        ConventionError: the id is neither hex nor base64.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConventionError(f"{field} {_preview(value)} is not a string")
    if len(value) == 2 * size and _HEX.fullmatch(value):
        hex_id = value.lower()
    else:
        hex_id = _base64_id(value, size) or _odd_hex_id(value, field)
    return None if not hex_id.strip("0") else hex_id


def parse_json_value(value: JSONValue) -> JSONValue:
    """The JSON a string holds (see :func:`parse_json_string`), rejected when nested too deep.

    Raises:
        ConventionError: the parsed value is nested deeper than :data:`MAX_NESTING_DEPTH`.
    """
    parsed = parse_json_string(value)
    if parsed is not value:
        check_text_depth(value, parsed)
    return parsed


def check_value_size(value: JSONValue, max_bytes: int) -> None:
    """Reject a value larger than ``max_bytes`` UTF-8 bytes once serialised.

    Raises:
        ConventionError: the value is too large.
    """
    if isinstance(value, str):
        size = len(value)
        if size * 4 > max_bytes and size <= max_bytes:
            size = len(value.encode())
    elif isinstance(value, dict | list):
        size = len(_json_bytes(value))
    else:
        return
    if size > max_bytes:
        raise ConventionError(f"value is {size} bytes, over the limit of {max_bytes}")


def check_depth(value: JSONValue, limit: int = MAX_NESTING_DEPTH) -> None:
    """Reject a JSON value nested deeper than ``limit`` levels.

    Raises:
        ConventionError: the value is nested too deep.
    """
    if not isinstance(value, dict | list):
        return
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        current, depth = pending.pop()
        children = current.values() if isinstance(current, dict) else current
        if depth > limit:
            raise ConventionError(f"value nested deeper than {limit} levels")
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def check_text_depth(text: str, parsed: JSONValue, limit: int = MAX_NESTING_DEPTH) -> None:
    """:func:`check_depth` for a value parsed from ``text``, skipped when it cannot be deep.

    A value cannot nest deeper than the number of brackets its text opens, and counting them is
    far cheaper than walking the value, which import does for most spans.
    """
    if text.count("{") + text.count("[") > limit:
        check_depth(parsed, limit)


def describe_error(error: Exception) -> str:
    """A one-line reason for a mapping failure, for an :class:`IngestProblem`."""
    if isinstance(error, ValidationError):
        details = [
            f"{'.'.join(str(part) for part in detail['loc']) or 'span'}: {detail['msg']}"
            for detail in error.errors(include_url=False, include_input=False)[:3]
        ]
        return "; ".join(details)
    if isinstance(error, ConventionError):
        return str(error)
    return f"{type(error).__name__}: {error}"


# --- AnyValue decoding ---------------------------------------------------------------------------


def _attribute_scalar(key: str, decode: Callable[[Any, int], JSONValue], content: Any) -> JSONValue:
    try:
        return decode(content, 0)
    except ConventionError as error:
        raise ConventionError(f"attribute {_preview(key)}: {error}") from None


def _attribute_value(key: str, raw: Any, max_value_bytes: int) -> JSONValue:
    if len(key) > max_value_bytes:
        raise ConventionError(f"an attribute key is longer than {max_value_bytes} bytes")
    try:
        value = any_value(raw)
        check_value_size(value, max_value_bytes)
    except ConventionError as error:
        raise ConventionError(f"attribute {_preview(key)}: {error}") from None
    return value


_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
_INTEGER = re.compile(r"-?[0-9]+")
_HEX = re.compile(r"[0-9a-fA-F]+")
_NON_FINITE = {"NaN", "Infinity", "-Infinity"}


def _string_value(raw: Any, depth: int) -> str:
    if not isinstance(raw, str):
        raise ConventionError(f"stringValue {_preview(raw)} is not a string")
    return raw


def _bool_value(raw: Any, depth: int) -> bool:
    if not isinstance(raw, bool):
        raise ConventionError(f"boolValue {_preview(raw)} is not true or false")
    return raw


def _int_value(raw: Any, depth: int) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        number = raw
    elif isinstance(raw, str) and len(raw) <= 21 and _INTEGER.fullmatch(raw):
        number = int(raw)
    else:
        raise ConventionError(f"intValue {_preview(raw)} is not an integer")
    if not _INT64_MIN <= number <= _UINT64_MAX:
        raise ConventionError(f"intValue {_preview(raw)} is out of the 64-bit range")
    return number


def _double_value(raw: Any, depth: int) -> float:
    if isinstance(raw, str) and raw in _NON_FINITE:
        raise ConventionError(f"doubleValue {raw} is not a finite number")
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ConventionError(f"doubleValue {_preview(raw)} is not a number")
    try:
        number = float(raw)
    except ValueError:
        raise ConventionError(f"doubleValue {_preview(raw)} is not a number") from None
    if not math.isfinite(number):
        raise ConventionError(f"doubleValue {_preview(raw)} is not a finite number")
    return number


def _array_value(raw: Any, depth: int) -> list[JSONValue]:
    values = _object(raw, "arrayValue").get("values")
    return [any_value(item, depth + 1) for item in _list(values, "arrayValue.values")]


def _kvlist_value(raw: Any, depth: int) -> dict[str, JSONValue]:
    entries = _list(_object(raw, "kvlistValue").get("values"), "kvlistValue.values")
    decoded: dict[str, JSONValue] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise ConventionError("a kvlistValue entry has no key")
        decoded[entry["key"]] = any_value(entry.get("value"), depth + 1)
    return decoded


def _bytes_value(raw: Any, depth: int) -> str:
    if not isinstance(raw, str):
        raise ConventionError(f"bytesValue {_preview(raw)} is not a base64 string")
    return raw


_SCALAR_DECODERS: dict[str, Callable[[Any, int], JSONValue]] = {
    "boolValue": _bool_value,
    "intValue": _int_value,
    "doubleValue": _double_value,
}
_ANY_VALUE_DECODERS = {
    "stringValue": _string_value,
    "boolValue": _bool_value,
    "intValue": _int_value,
    "doubleValue": _double_value,
    "arrayValue": _array_value,
    "kvlistValue": _kvlist_value,
    "bytesValue": _bytes_value,
}


# --- the span's envelope: ids, times, status -----------------------------------------------------

_MAX_UNIX_NANOS = 253_402_300_799 * 1_000_000_000
"""The last second of year 9999, the latest a datetime can hold."""
_ERROR_CODES = {2, "2", "STATUS_CODE_ERROR", "ERROR", "error"}


def _required_id(value: Any, size: int, field: str) -> str:
    hex_id = otlp_id(value, size, field)
    if hex_id is None:
        raise ConventionError(f"span has no {field}")
    return hex_id


def _base64_id(value: str, size: int) -> str | None:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == size else None


def _odd_hex_id(value: str, field: str) -> str:
    # Some exporters write ids of other lengths; hex is still unambiguous.
    if len(value) % 2 == 0 and len(value) <= 64 and _HEX.fullmatch(value):
        return value.lower()
    raise ConventionError(f"{field} {_preview(value)} is neither hex nor base64")


def _start_time(value: Any) -> Any:
    nanos = _unix_nanos(value, "startTimeUnixNano")
    if nanos is None:
        raise ConventionError("span has no startTimeUnixNano")
    return utc_from_unix_nanos(nanos)


def _end_time(value: Any) -> Any:
    nanos = _unix_nanos(value, "endTimeUnixNano")
    return None if nanos is None else utc_from_unix_nanos(nanos)


def _unix_nanos(value: Any, field: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        nanos = value
    elif isinstance(value, str) and len(value) <= 40 and _INTEGER.fullmatch(value):
        nanos = int(value)
    elif isinstance(value, float) and value.is_integer():
        nanos = int(value)
    else:
        raise ConventionError(f"{field} {_preview(value)} is not a whole number of nanoseconds")
    if not 0 <= nanos <= _MAX_UNIX_NANOS:
        raise ConventionError(f"{field} {_preview(value)} is out of range")
    return nanos or None


_OK = Status()


def _status(status: Any, events: Any, attributes: _Attributes) -> Status:
    code = status.get("code") if isinstance(status, dict) else None
    message = status.get("message") if isinstance(status, dict) else None
    error_type = attributes.values.get("error.type")
    langfuse_error = attributes.values.get("langfuse.observation.level") == "ERROR"
    failed = (isinstance(code, int | str) and code in _ERROR_CODES) or _is_text(error_type) \
        or langfuse_error
    if not failed:
        return _OK
    if langfuse_error and (not isinstance(message, str) or not message):
        message = attributes.take_text("langfuse.observation.status_message")
    if not isinstance(message, str) or not message:
        message = _exception_message(events) or (str(error_type) if _is_text(error_type) else None)
    return Status(code=StatusCode.ERROR, message=message)


def _exception_message(events: Any) -> str | None:
    """The first exception event's message, else the first exception type."""
    error_type = None
    for event in events if isinstance(events, list) else ():
        if not isinstance(event, dict) or event.get("name") != "exception":
            continue
        for entry in _as_list(event.get("attributes")):
            key = entry.get("key") if isinstance(entry, dict) else None
            if key != "exception.message" and key != "exception.type":
                continue
            value = entry.get("value")
            text = value.get("stringValue") if isinstance(value, dict) else None
            if not isinstance(text, str) or not text:
                continue
            if key == "exception.message":
                return text
            error_type = error_type or text
    return error_type


# --- attributes: a working copy that remembers what was mapped -----------------------------------

_FLATTENED_PREFIXES = (
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.tools.",
    "retrieval.documents.",
)


class _Attributes:
    """A span's decoded attributes; ``take`` marks a key as mapped so it is not kept twice."""

    def __init__(self, values: dict[str, JSONValue]) -> None:
        self.values = values
        self.mapped: set[str] = set()
        self.flattened: dict[str, dict[str, JSONValue]] = {}
        for key, value in values.items():
            if key.startswith(_FLATTENED_PREFIXES):
                # Every prefix is two dotted segments: the second dot ends it.
                end = key.index(".", key.index(".") + 1) + 1
                self.flattened.setdefault(key[:end], {})[key[end:]] = value

    def take(self, *keys: str) -> tuple[str, JSONValue] | None:
        """The first of ``keys`` that holds a value, marked as mapped."""
        for key in keys:
            value = self.values.get(key)
            if value is not None:
                self.mapped.add(key)
                return key, value
        return None

    def take_value(self, *keys: str) -> JSONValue:
        """The value of the first of ``keys`` present, marked as mapped; ``None`` if none is."""
        found = self.take(*keys)
        return None if found is None else found[1]

    def take_text(self, *keys: str) -> str | None:
        """The first of ``keys`` holding a string or number, as text, marked as mapped."""
        for key in keys:
            value = self.values.get(key)
            if value is not None and _is_text(value):
                self.mapped.add(key)
                return str(value)
        return None

    def take_all(self, *keys: str) -> None:
        """Mark keys as mapped (their information went into a field another key filled)."""
        self.mapped.update(keys)

    def drop_list(self, prefix: str) -> None:
        """Mark the OpenInference list flattened under ``prefix`` as mapped, unread."""
        self.mapped.update(prefix + suffix for suffix in self.flattened.get(prefix, ()))

    def take_list(self, prefix: str) -> list[dict[str, JSONValue]]:
        """The OpenInference list flattened under ``prefix`` (``llm.tools.``), marked as mapped.

        Each entry keeps its own keys flat: ``llm.tools.0.tool.json_schema`` becomes entry 0's
        ``tool.json_schema``.
        """
        flat = self.flattened.get(prefix)
        if not flat:
            return []
        entries: dict[int, dict[str, JSONValue]] = {}
        for suffix, value in flat.items():
            index = _index_of(suffix)
            if index is not None:
                entries.setdefault(index, {})[suffix.partition(".")[2]] = value
                self.mapped.add(prefix + suffix)
        return [entries[index] for index in sorted(entries)]


def _indexed_entries(flat: Mapping[str, JSONValue], prefix: str = "") -> list[dict[str, JSONValue]]:
    """``{"0.a": 1, "0.b": 2, "1.a": 3}`` → ``[{"a": 1, "b": 2}, {"a": 3}]``, in index order.

    With ``prefix``, only the keys under it count (and it is removed first).
    """
    entries: dict[int, dict[str, JSONValue]] = {}
    for key, value in flat.items():
        if not key.startswith(prefix):
            continue
        suffix = key[len(prefix) :]
        index = _index_of(suffix)
        if index is not None:
            entries.setdefault(index, {})[suffix.partition(".")[2]] = value
    return [entries[index] for index in sorted(entries)]


def _index_of(suffix: str) -> int | None:
    index, dot, rest = suffix.partition(".")
    if dot and rest and len(index) < 10 and index.isascii() and index.isdigit():
        return int(index)
    return None


def _is_text(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool) and value != ""


# --- kind, name, usage, identity -----------------------------------------------------------------

_OPENINFERENCE_KINDS = {
    "LLM": SpanKind.LLM,
    "TOOL": SpanKind.TOOL,
    "RETRIEVER": SpanKind.RETRIEVER,
    "AGENT": SpanKind.AGENT,
    "CHAIN": SpanKind.CHAIN,
    "EMBEDDING": SpanKind.EMBEDDING,
    "GUARDRAIL": SpanKind.GUARDRAIL,
}
_GENAI_KINDS = {
    "chat": SpanKind.LLM,
    "text_completion": SpanKind.LLM,
    "generate_content": SpanKind.LLM,
    "execute_tool": SpanKind.TOOL,
    "embeddings": SpanKind.EMBEDDING,
    "invoke_agent": SpanKind.AGENT,
    "create_agent": SpanKind.AGENT,
    "retrieval": SpanKind.RETRIEVER,
}
_GENERIC_TOOL_SPAN_NAMES = {"", "tool", "execute_tool", "tool_call", "function", "call_tool"}


def _kind(attributes: _Attributes) -> SpanKind:
    openinference = attributes.values.get("openinference.span.kind")
    if isinstance(openinference, str):
        kind = _OPENINFERENCE_KINDS.get(openinference.upper())
        if kind is not None:
            # Only a one-to-one mapping makes the raw value redundant; RERANKER etc. stay.
            attributes.take_all("openinference.span.kind")
            return kind
        return SpanKind.OTHER
    operation = attributes.values.get("gen_ai.operation.name")
    if isinstance(operation, str):
        return _GENAI_KINDS.get(operation, SpanKind.OTHER)
    langfuse = attributes.values.get(_LANGFUSE_TYPE)  # the Langfuse SDKs' own attributes
    if isinstance(langfuse, str):
        return OBSERVATION_KINDS.get(langfuse.upper(), SpanKind.OTHER)
    return SpanKind.OTHER


_LANGFUSE_TYPE = "langfuse.observation.type"


def _name(name: Any, kind: SpanKind, attributes: _Attributes) -> str:
    if name is None:
        name = ""
    if not isinstance(name, str):
        raise ConventionError(f"name {_preview(name)} is not a string")
    if kind is not SpanKind.TOOL:
        return name
    tool_name = next(
        (
            value
            for key in ("tool.name", "gen_ai.tool.name")
            if isinstance(value := attributes.values.get(key), str) and value
        ),
        None,
    )
    generic = name.strip().lower() in _GENERIC_TOOL_SPAN_NAMES or name.startswith("execute_tool ")
    if tool_name is None or not generic:
        return name
    attributes.take_text("tool.name", "gen_ai.tool.name")
    return tool_name


_MODEL_KEYS = (
    "llm.model_name",
    "llm.response.model_name",
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.request.model_name",
    "embedding.model_name",
    "langfuse.observation.model.name",
)


def _usage(attributes: _Attributes) -> dict[str, Any]:
    usage = {
        "model": attributes.take_text(*_MODEL_KEYS),
        "input_tokens": _token_count(
            attributes.take("llm.token_count.prompt", "gen_ai.usage.input_tokens")
        ),
        "output_tokens": _token_count(
            attributes.take("llm.token_count.completion", "gen_ai.usage.output_tokens")
        ),
        "total_tokens": _token_count(attributes.take("llm.token_count.total")),
        "cost": _cost(attributes.take("llm.cost.total")),
    }
    if "langfuse.observation.usage_details" in attributes.values or \
            "langfuse.observation.cost_details" in attributes.values:
        _langfuse_usage(attributes, usage)
    return usage


def _langfuse_usage(attributes: _Attributes, usage: dict[str, Any]) -> None:
    """Tokens and cost from the Langfuse SDKs' JSON ``usage_details``/``cost_details``, where
    no other convention gave them."""
    if usage["input_tokens"] is None and usage["output_tokens"] is None \
            and usage["total_tokens"] is None:
        # Units other than tokens (characters, images, requests) leave the counts empty.
        details = _parsed(attributes, "langfuse.observation.usage_details")
        usage["input_tokens"], usage["output_tokens"], usage["total_tokens"] = \
            usage_from_details(details)
    if usage["cost"] is None:
        costs = _parsed(attributes, "langfuse.observation.cost_details")
        if isinstance(costs, dict) and costs.get("total") is not None:
            usage["cost"] = _cost(("langfuse.observation.cost_details.total", costs["total"]))


def _token_count(found: tuple[str, JSONValue] | None) -> int | None:
    if found is None:
        return None
    key, value = found
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and len(value) <= 20 and _INTEGER.fullmatch(value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _UINT64_MAX:
        raise ConventionError(f"{key} {_preview(value)} is not a whole number of tokens")
    return value


def _cost(found: tuple[str, JSONValue] | None) -> float | None:
    if found is None:
        return None
    key, value = found
    try:
        cost = float(value) if isinstance(value, int | float | str) else math.nan
    except ValueError:
        cost = math.nan
    if isinstance(value, bool) or not math.isfinite(cost) or cost < 0:
        raise ConventionError(f"{key} {_preview(value)} is not a finite, non-negative cost")
    return cost


def _identity(
    attributes: _Attributes, resource: Mapping[str, JSONValue], options: MappingOptions
) -> dict[str, Any]:
    environment = None
    for spec in options.environment_from:
        environment = _lookup(spec, attributes, resource)
        if environment is not None:
            break
    # The Langfuse SDKs' release and environment stand in when the configured ones are absent.
    release = _lookup(options.release_from, attributes, resource)
    if release is None:
        release = _langfuse_setting("release", attributes, resource)
    if environment is None:
        environment = _langfuse_setting("environment", attributes, resource)
    return {
        "release": release,
        "environment": environment,
        "session_id": attributes.take_text("session.id", "gen_ai.conversation.id"),
        "user_id": attributes.take_text("user.id", "enduser.id"),
        "tags": _tags(attributes.take_value("tag.tags", "langfuse.trace.tags")),
    }


def _langfuse_setting(name: str, attributes: _Attributes,
                      resource: Mapping[str, JSONValue]) -> str | None:
    """``langfuse.NAME`` from the span, else from its resource (where Langfuse SDKs put it)."""
    key = "langfuse." + name
    if key in attributes.values:
        return attributes.take_text(key)
    value = resource.get(key)
    return str(value) if _is_text(value) else None


def _lookup(spec: str, attributes: _Attributes, resource: Mapping[str, JSONValue]) -> str | None:
    if spec.startswith("resource."):
        value = resource.get(spec.removeprefix("resource."))
        return str(value) if _is_text(value) else None
    return attributes.take_text(spec)


def _tags(value: JSONValue) -> list[str]:
    value = parse_json_string(value)
    if isinstance(value, list):
        return [str(tag) for tag in value if _is_text(tag)]
    return [str(value)] if _is_text(value) else []


# --- input, output, tool calls and definitions ---------------------------------------------------


def _content(
    kind: SpanKind, attributes: _Attributes
) -> tuple[JSONValue, JSONValue, dict[str, JSONValue]]:
    """``input`` and ``output`` for the span's kind, and the normalised tool attributes."""
    span_input = _recorded_value(attributes, "input")
    span_output = _recorded_value(attributes, "output")
    langfuse_output = False
    if span_input is None and "langfuse.observation.input" in attributes.values:
        span_input = _parsed(attributes, "langfuse.observation.input")
    if span_output is None and "langfuse.observation.output" in attributes.values:
        span_output = _parsed(attributes, "langfuse.observation.output")
        langfuse_output = True
    definitions = _tool_definitions(attributes)
    if kind is SpanKind.TOOL:
        span_input = _first(span_input, _parsed(attributes, "gen_ai.tool.call.arguments"))
        span_output = _first(span_output, _parsed(attributes, "gen_ai.tool.call.result"))
        definitions += _own_tool_definition(attributes)
    elif kind is SpanKind.RETRIEVER:
        span_input = _first(span_input, _parsed(attributes, "gen_ai.retrieval.query.text"))
        span_output = _first(span_output, _documents(attributes))
    # Messages are only built when nothing recorded wins, but always marked as mapped.
    messages_input = _input_messages(attributes, wanted=span_input is None)
    output_messages = _messages(
        attributes.take_list("llm.output_messages."),
        attributes.take_value("gen_ai.output.messages"),
    )
    extra: dict[str, JSONValue] = {}
    if output_messages is not None:
        span_output = _first(span_output, {"messages": output_messages})
        extra["tool_calls"] = [
            call for message in output_messages for call in message.get("tool_calls", ())
        ]
    elif langfuse_output and kind is SpanKind.LLM:  # a generation's messages, as pulled ones
        calls = tool_calls_of(span_output)
        if calls is not None:
            extra["tool_calls"] = calls
    if definitions:
        extra["tool_definitions"] = definitions
    return _first(span_input, messages_input), span_output, extra


def _input_messages(attributes: _Attributes, *, wanted: bool) -> JSONValue:
    """``{"messages", "system"}`` from the flattened or GenAI input messages, when ``wanted``."""
    genai = attributes.take_value("gen_ai.input.messages")
    if not wanted:
        # The instructions are in no recorded input, so they stay as an attribute.
        attributes.drop_list("llm.input_messages.")
        return None
    system = attributes.take_value("gen_ai.system_instructions")
    messages = _messages(attributes.take_list("llm.input_messages."), genai)
    system = _system_text(parse_json_value(system))
    if messages is None and system is None:
        return None
    return {"messages": messages or [], "system": system}


_MESSAGE_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
"""GenAI 1.28–1.36's per-message events, which some SDKs record on the span (Azure AI
Inference, Semantic Kernel): the message is the JSON of ``gen_ai.event.content``."""

_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
_PROMPT_EVENT, _COMPLETION_EVENT = "gen_ai.content.prompt", "gen_ai.content.completion"


def _content_from_events(
    records: list[JSONValue], fields: dict[str, Any], extra: dict[str, JSONValue]
) -> list[JSONValue]:
    """Fill a missing ``input``/``output`` from the span's events; return the events left.

    Three ways GenAI instrumentations record content as span events rather than attributes:
    the ``gen_ai.client.inference.operation.details`` event (its attributes are the span's
    ``gen_ai.input.messages``, ``gen_ai.output.messages``, ``gen_ai.system_instructions``), the
    older ``gen_ai.content.prompt``/``gen_ai.content.completion`` events (``gen_ai.prompt`` and
    ``gen_ai.completion``, OpenAI-style message lists), and one event a message
    (``gen_ai.user.message``… then ``gen_ai.choice``). An event whose content fills a field is
    dropped from ``otel.events``, as a mapped attribute is; the others are kept.
    """
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    system: JSONValue = None
    input_events: list[int] = []
    output_events: list[int] = []
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("attributes"), dict):
            continue
        name, attributes = record.get("name"), record["attributes"]
        if name == _DETAILS_EVENT:
            found = _messages([], attributes.get("gen_ai.input.messages"))
            instructions = _system_text(
                parse_json_value(attributes.get("gen_ai.system_instructions"))
            )
            if found or instructions is not None:
                inputs.extend(found or [])
                system = _first(system, instructions)
                input_events.append(index)
            answers = _messages([], attributes.get("gen_ai.output.messages"))
            if answers:
                outputs.extend(answers)
                output_events.append(index)
        elif name == _PROMPT_EVENT and attributes.get("gen_ai.prompt") is not None:
            inputs.extend(_event_messages(attributes["gen_ai.prompt"], "user"))
            input_events.append(index)
        elif name == _COMPLETION_EVENT and attributes.get("gen_ai.completion") is not None:
            outputs.extend(_event_messages(attributes["gen_ai.completion"], "assistant"))
            output_events.append(index)
        elif isinstance(name, str) and name in _MESSAGE_EVENT_ROLES:
            body = _event_body(attributes)
            if body.get("role") is None:
                body["role"] = _MESSAGE_EVENT_ROLES[name]
            inputs.extend(_genai_messages(body))
            input_events.append(index)
        elif name == "gen_ai.choice":
            body = _event_body(attributes)
            message = body.get("message")
            message = (
                dict(message) if isinstance(message, dict) else {"content": body.get("content")}
            )
            message.setdefault("role", "assistant")
            if body.get("finish_reason") is not None:
                message.setdefault("finish_reason", body["finish_reason"])
            outputs.extend(_genai_messages(message))
            output_events.append(index)
    used: set[int] = set()
    if fields["input"] is None and (inputs or system is not None):
        fields["input"] = {"messages": inputs, "system": system}
        used.update(input_events)
    if fields["output"] is None and outputs:
        fields["output"] = {"messages": outputs}
        extra["tool_calls"] = [
            call for message in outputs for call in message.get("tool_calls", ())
        ]
        used.update(output_events)
    return [record for index, record in enumerate(records) if index not in used]


def _event_messages(value: JSONValue, role: str) -> list[dict[str, Any]]:
    """Messages from ``gen_ai.prompt``/``gen_ai.completion``: a JSON list of OpenAI-style
    messages (or one message), else plain text said by ``role``."""
    parsed = parse_json_value(value)
    if isinstance(parsed, dict):
        parsed = [parsed]
    if isinstance(parsed, list):
        messages = []
        for entry in parsed:
            if isinstance(entry, dict):
                entry = entry if entry.get("role") is not None else {**entry, "role": role}
                messages.extend(_genai_messages(entry))
            else:
                messages.append(_message(role, entry))
        return messages
    return [_message(role, parsed)]


def _event_body(attributes: dict[str, JSONValue]) -> dict[str, Any]:
    """A message event's body: the JSON object in ``gen_ai.event.content``, else the event's
    own attributes (as an OpenTelemetry log event bridged onto the span carries them)."""
    content = parse_json_value(attributes.get("gen_ai.event.content"))
    if isinstance(content, dict):
        return dict(content)
    body = {
        key: value
        for key, value in attributes.items()
        if key not in ("gen_ai.system", "gen_ai.provider.name", "gen_ai.event.content")
    }
    if content is not None:
        body.setdefault("content", content)
    return body


def _first(*values: JSONValue) -> JSONValue:
    return next((value for value in values if value is not None), None)


def _recorded_value(attributes: _Attributes, side: str) -> JSONValue:
    """OpenInference's ``input.value``/``output.value``, parsed as its mime type says."""
    value = attributes.take_value(f"{side}.value")
    mime_type = attributes.take_value(f"{side}.mime_type")
    if (
        isinstance(value, str)
        and isinstance(mime_type, str)
        and mime_type.startswith("application/json")
    ):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        check_text_depth(value, parsed)
        return parsed
    return parse_json_value(value)


def _parsed(attributes: _Attributes, key: str) -> JSONValue:
    return parse_json_value(attributes.take_value(key))


def _messages(openinference: list[dict[str, JSONValue]], genai: JSONValue) -> list[Any] | None:
    """OpenInference's flattened messages when recorded, else the GenAI ones."""
    if openinference:
        return [m for m in (_openinference_message(entry) for entry in openinference) if m]
    genai = parse_json_value(genai)
    if isinstance(genai, list):
        return [message for entry in genai for message in _genai_messages(entry)]
    return None


def _tool_definitions(attributes: _Attributes) -> list[dict[str, Any]]:
    """The tools offered to the model: OpenInference's ``llm.tools``, else GenAI's."""
    openinference = [_openinference_tool(entry) for entry in attributes.take_list("llm.tools.")]
    genai = _parsed(attributes, "gen_ai.tool.definitions")
    genai_tools = [
        _tool_definition(tool) for tool in ([genai] if isinstance(genai, dict) else _as_list(genai))
    ]
    return [tool for tool in (*openinference, *genai_tools) if tool is not None]


def _openinference_message(entry: dict[str, JSONValue]) -> dict[str, Any] | None:
    """One message from its flattened keys: ``message.role``, ``message.tool_calls.0.…``."""
    if "message.role" not in entry and not any(key.startswith("message.") for key in entry):
        return None
    content = entry.get("message.content")
    if content is None:
        content = _joined_text(
            {"text": part.get("message_content.text")}
            for part in _indexed_entries(entry, "message.contents.")
        )
    calls = [
        _tool_call(
            {
                "id": call.get("tool_call.id"),
                "function": {
                    "name": call.get("tool_call.function.name"),
                    "arguments": call.get("tool_call.function.arguments"),
                },
            }
        )
        for call in _indexed_entries(entry, "message.tool_calls.")
    ]
    if not calls and "message.function_call_name" in entry:  # OpenAI's legacy function_call
        calls.append(
            _tool_call(
                {
                    "name": entry["message.function_call_name"],
                    "arguments": entry.get("message.function_call_arguments_json"),
                }
            )
        )
    return _message(
        entry.get("message.role"),
        content,
        tool_calls=[call for call in calls if call is not None],
        tool_call_id=entry.get("message.tool_call_id"),
        name=entry.get("message.name"),
    )


def _genai_messages(entry: Any) -> list[dict[str, Any]]:
    """One GenAI message; each tool response part becomes a message of its own."""
    if not isinstance(entry, dict):
        return []
    role, parts = entry.get("role"), entry.get("parts")
    if not isinstance(parts, list):  # the older OpenAI-like shape: {"role", "content", ...}
        calls = [_tool_call(call) for call in _as_list(entry.get("tool_calls"))]
        return [
            _message(
                role,
                entry.get("content"),
                tool_calls=[call for call in calls if call is not None],
                tool_call_id=entry.get("tool_call_id") or entry.get("id"),
                name=entry.get("name"),
                finish_reason=entry.get("finish_reason"),
            )
        ]
    typed = [part for part in parts if isinstance(part, dict)]
    messages = [
        _message(role, part.get("response", part.get("result")), tool_call_id=part.get("id"))
        for part in typed
        if part.get("type") == "tool_call_response"
    ]
    calls = [_tool_call(part) for part in typed if part.get("type") == "tool_call"]
    text = _joined_text(part for part in typed if part.get("type") == "text")
    # Reasoning, images (blob, uri, file) and parts of types yet to come are kept as recorded,
    # apart from the text, which is what the reply says.
    others = [part for part in typed if part.get("type") not in _MAPPED_PART_TYPES]
    if text is not None or calls or others or not messages:
        message = _message(
            role,
            text,
            tool_calls=[call for call in calls if call is not None],
            finish_reason=entry.get("finish_reason"),
        )
        if others:
            message["parts"] = others
        messages.insert(0, message)
    return messages


_MAPPED_PART_TYPES = frozenset({"text", "tool_call", "tool_call_response"})


def _message(
    role: Any,
    content: Any,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    tool_call_id: Any = None,
    name: Any = None,
    finish_reason: Any = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role if isinstance(role, str) else None, "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    for key, value in (
        ("tool_call_id", tool_call_id),
        ("name", name),
        ("finish_reason", finish_reason),
    ):
        if value is not None and _is_text(value):
            message[key] = str(value)
    return message


def _joined_text(parts: Any) -> str | None:
    """The text of content parts (``{"text"}`` or ``{"content"}``), one per line."""
    texts = []
    for part in parts:
        if isinstance(part, dict):
            text = part.get("text", part.get("content"))
            if isinstance(text, str):
                texts.append(text)
    return "\n".join(texts) if texts else None


def _tool_call(call: Any) -> dict[str, Any] | None:
    """``{"id", "name", "arguments"}`` from a GenAI part or an OpenAI/OpenInference tool call."""
    if not isinstance(call, dict):
        return None
    function = call.get("function")
    source = function if isinstance(function, dict) else call
    normalised: dict[str, Any] = {
        "id": str(call["id"]) if _is_text(call.get("id")) else None,
        "name": source.get("name") if isinstance(source.get("name"), str) else None,
    }
    if source.get("arguments") is not None:
        normalised["arguments"] = parse_json_value(source["arguments"])
    return normalised


def _system_text(value: JSONValue) -> JSONValue:
    """GenAI system instructions: the text of their parts, else the value as recorded."""
    if isinstance(value, list):
        text = _joined_text(value)
        return value if text is None else text
    if isinstance(value, dict) and isinstance(value.get("content"), str | list):
        content = value["content"]
        return content if isinstance(content, str) else _joined_text(content)
    return value


def _openinference_tool(entry: dict[str, JSONValue]) -> dict[str, Any] | None:
    if "tool.json_schema" in entry:
        return _tool_definition(parse_json_value(entry["tool.json_schema"]))
    fields = {key.removeprefix("tool."): value for key, value in entry.items()}
    return _tool_definition(fields) if fields.keys() & {"name", "parameters"} else None


def _tool_definition(value: Any) -> dict[str, Any] | None:
    """``{"name", "description", "parameters"}`` from OpenAI, Anthropic or GenAI shapes."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return {"name": None, "description": None, "parameters": value}
    function = value.get("function")
    source = function if isinstance(function, dict) else value
    parameters = _first(
        source.get("parameters"), source.get("input_schema"), source.get("inputSchema")
    )
    return {
        "name": source.get("name") if isinstance(source.get("name"), str) else None,
        "description": (
            source.get("description") if isinstance(source.get("description"), str) else None
        ),
        "parameters": parse_json_value(parameters),
    }


def _own_tool_definition(attributes: _Attributes) -> list[dict[str, Any]]:
    """A tool span's own definition, when it records a description or parameter schema."""
    description = attributes.take_value("tool.description", "gen_ai.tool.description")
    parameters = _parsed(attributes, "tool.parameters")
    if description is None and parameters is None:
        return []
    name = attributes.values.get("tool.name", attributes.values.get("gen_ai.tool.name"))
    return [
        {
            "name": name if isinstance(name, str) else None,
            "description": description if isinstance(description, str) else None,
            "parameters": parameters,
        }
    ]


def _documents(attributes: _Attributes) -> JSONValue:
    """A retriever's documents: OpenInference's flattened list, else GenAI's attribute."""
    documents = [
        {key.removeprefix("document."): parse_json_value(value) for key, value in entry.items()}
        for entry in attributes.take_list("retrieval.documents.")
    ]
    if documents:
        return {"documents": documents}
    genai = _parsed(attributes, "gen_ai.retrieval.documents")
    return None if genai is None else {"documents": genai}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# --- what is left --------------------------------------------------------------------------------


def _remaining_attributes(
    attributes: _Attributes, resource: Mapping[str, JSONValue], options: MappingOptions
) -> dict[str, JSONValue]:
    kept = _resource_extras(resource, options)
    kept.update(
        (key, value) for key, value in attributes.values.items() if key not in attributes.mapped
    )
    metadata = kept.get("metadata")
    if isinstance(metadata, str):
        kept["metadata"] = parse_json_value(metadata)
    service = resource.get("service.name")
    if _is_text(service):
        kept["service.name"] = str(service)
    return kept


def _resource_extras(
    resource: Mapping[str, JSONValue], options: MappingOptions
) -> dict[str, JSONValue]:
    """Resource attributes no span field took, as ``resource.KEY``.

    ``service.version`` and ``deployment.environment[.name]`` count as taken only while the
    release and environment are read from them (the defaults); configured to come from other
    keys, they are kept like any other resource attribute.
    """
    mapped = {
        spec.removeprefix("resource.")
        for spec in (options.release_from, *options.environment_from)
        if spec.startswith("resource.")
    }
    return {"resource." + key: value for key, value in resource.items()
            if key not in mapped and key != "service.name"}


def _events(events: Any, max_attribute_bytes: int) -> list[JSONValue]:
    """The span's events as ``{name, time, attributes}``; an event that is not an object is
    skipped, and one whose attributes cannot be read keeps ``attributes_error`` instead."""
    kept: list[JSONValue] = []
    for event in _as_list(events):
        if not isinstance(event, dict):
            continue
        record: dict[str, JSONValue] = {
            "name": event.get("name") if isinstance(event.get("name"), str) else None,
            "time": _event_time(event.get("timeUnixNano")),
        }
        record.update(_side_attributes(event.get("attributes"), max_attribute_bytes))
        kept.append(record)
    return kept


def _links(links: Any, max_attribute_bytes: int) -> list[JSONValue]:
    """The span's links as ``{trace_id, span_id, attributes}`` with hex ids."""
    kept: list[JSONValue] = []
    for link in _as_list(links):
        if not isinstance(link, dict):
            continue
        record: dict[str, JSONValue] = {
            "trace_id": _lenient_id(link.get("traceId"), 16),
            "span_id": _lenient_id(link.get("spanId"), 8),
        }
        record.update(_side_attributes(link.get("attributes"), max_attribute_bytes))
        kept.append(record)
    return kept


def _side_attributes(attributes: Any, max_attribute_bytes: int) -> dict[str, JSONValue]:
    # An event or link is context, not the span: a bad one must not reject the span.
    try:
        return {"attributes": decode_attributes(attributes, max_value_bytes=max_attribute_bytes)}
    except ConventionError as error:
        return {"attributes": {}, "attributes_error": describe_error(error)}


def _event_time(value: Any) -> str | None:
    try:
        nanos = _unix_nanos(value, "timeUnixNano")
    except ConventionError:
        return None
    if nanos is None:
        return None
    return utc_from_unix_nanos(nanos).isoformat().replace("+00:00", "Z")


def _lenient_id(value: Any, size: int) -> str | None:
    try:
        return otlp_id(value, size, "id")
    except ConventionError:
        return None


# --- small helpers -------------------------------------------------------------------------------


def _object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConventionError(f"{field} {_preview(value)} is not a JSON object")
    return value


def _list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConventionError(f"{field} {_preview(value)} is not a list")
    return value


def _json_bytes(value: JSONValue) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as error:
        raise ConventionError(f"value is not storable as JSON: {error}") from None


def _preview(value: Any, limit: int = 40) -> str:
    if isinstance(value, dict | list):
        return f"a {type(value).__name__}"
    text = repr(value[:limit] if isinstance(value, str) else value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
