"""Builders for OTLP test input, made with the real opentelemetry-proto messages."""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
START_NANOS = 1_700_000_000_123_456_789
"""2023-11-14T22:13:20.123456789Z"""


def any_value(value: Any) -> AnyValue:
    """An OTLP AnyValue holding a plain Python value."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        array = AnyValue()
        array.array_value.values.extend(any_value(item) for item in value)
        return array
    kvlist = AnyValue()
    kvlist.kvlist_value.values.extend(key_values(value))
    return kvlist


def key_values(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def span(
    attributes: dict[str, Any] | None = None,
    *,
    name: str = "span",
    span_id: int = 1,
    parent_id: int | None = None,
    start: int = START_NANOS,
    duration: int = 1_500_000_000,
    status: int = 0,
    message: str = "",
) -> trace_pb2.Span:
    """A protobuf span with ids made from small integers."""
    built = trace_pb2.Span(
        trace_id=TRACE_ID,
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent_id.to_bytes(8, "big") if parent_id else b"",
        name=name,
        start_time_unix_nano=start,
        end_time_unix_nano=start + duration if duration else 0,
        attributes=key_values(attributes or {}),
    )
    built.status.code = status  # type: ignore[assignment]
    built.status.message = message
    return built


def request(
    spans: list[trace_pb2.Span], resource: dict[str, Any] | None = None
) -> ExportTraceServiceRequest:
    """One export request: one resource, one scope."""
    export = ExportTraceServiceRequest()
    resource_spans = export.resource_spans.add()
    resource_spans.resource.attributes.extend(
        key_values({"service.name": "shop", "service.version": "1.4.2"} | (resource or {}))
    )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tests"
    scope_spans.spans.extend(spans)
    return export


def protobuf_json(export: ExportTraceServiceRequest) -> dict[str, Any]:
    """What ``MessageToDict`` gives: base64 ids, int64 values as strings."""
    return MessageToDict(export)


def collector_json(export: ExportTraceServiceRequest) -> dict[str, Any]:
    """What the collector's file exporter writes: like ``MessageToDict`` but with hex ids."""
    document = MessageToDict(export)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for raw in scope_spans["spans"]:
                for field in ("traceId", "spanId", "parentSpanId"):
                    if field in raw:
                        raw[field] = base64.b64decode(raw[field]).hex()
    return document


def first_span_dict(export: ExportTraceServiceRequest) -> dict[str, Any]:
    """The first span of a request in collector JSON shape."""
    span_dict: dict[str, Any] = collector_json(export)["resourceSpans"][0]["scopeSpans"][0][
        "spans"
    ][0]
    return span_dict
