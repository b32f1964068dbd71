"""The live OTLP/HTTP trace receiver behind ``tracegrade serve``.

``POST /v1/traces`` (and ``/api/public/otel/v1/traces``, where Langfuse's OpenTelemetry-based
SDKs export) takes an ``ExportTraceServiceRequest`` as binary protobuf
(``application/x-protobuf``) or JSON (``application/json``), gzip-compressed or not. Spans are
mapped by :mod:`tracegrade.sources.conventions`, the same module file import uses, and written
through a :class:`~tracegrade.server._writer.BatchWriter`.

Answers follow the OTLP/HTTP specification: ``200`` with an ``ExportTraceServiceResponse`` in
the request's encoding, whose ``partial_success`` counts and names the spans that could not be
mapped; ``400`` for an undecodable body, ``401`` without the bearer token, ``413`` for an
oversized body, ``415`` for an unsupported content type or encoding, and ``503`` with
``Retry-After`` when the writer is backed up or the store failed (a retryable answer).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import zlib
from collections.abc import AsyncIterator
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

import anyio
import orjson
from fastapi import FastAPI, Request, Response
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from tracegrade.server._writer import BatchWriter, WriterClosed, WriterOverloaded
from tracegrade.sources._base import IngestProblem, MappingOptions
from tracegrade.sources.conventions import (
    ConventionError,
    decode_attributes,
    map_span,
)
from tracegrade.sources.otlp import map_proto_request
from tracegrade.spans import Span
from tracegrade.store import UpsertCounts

logger = logging.getLogger("tracegrade.server")

TRACE_PATHS = ("/v1/traces", "/api/public/otel/v1/traces")
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
_MAX_NAMED_REJECTIONS = 20
_GRPC_INVALID_ARGUMENT = 3
_GRPC_UNAUTHENTICATED = 16
_GRPC_UNAVAILABLE = 14


@dataclass
class ReceiverStats:
    """Counters the receiver keeps (for logs and tests)."""

    requests: int = 0
    spans_accepted: int = 0
    spans_rejected: int = 0
    spans_lost: int = 0
    """Spans acknowledged as queued whose write then failed (``acknowledge="queued"`` only)."""
    errors: dict[int, int] = field(default_factory=dict)


class _Refusal(Exception):
    def __init__(self, status: int, message: str, grpc_code: int = _GRPC_INVALID_ARGUMENT,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.grpc_code = grpc_code
        self.headers = headers or {}


def create_app(
    writer: BatchWriter,
    options: MappingOptions,
    *,
    token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    acknowledge: Literal["stored", "queued"] = "stored",
) -> FastAPI:
    """The receiver as an ASGI app.

    Args:
        writer: Writes the received spans (closed when the app shuts down).
        options: How spans are mapped; ``options.source`` is the source they are stored under.
        token: When set, every request needs ``Authorization: Bearer <token>`` (or HTTP Basic
            with the token as password, which is what Langfuse SDKs send).
        max_body_bytes: The largest body accepted, after decompression.
        acknowledge: ``stored`` answers once the spans are committed (an exporter's retry
            covers any failure); ``queued`` answers once they are mapped and queued, so an
            exporter's next request overlaps the write (faster, but spans queued when the
            process dies, or whose write fails, are lost; they are counted in
            ``stats.spans_lost``).

    Returns:
        The FastAPI app; its ``state.stats`` holds a :class:`ReceiverStats`.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await anyio.to_thread.run_sync(writer.close)

    app = FastAPI(title="tracegrade OTLP receiver", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    stats = ReceiverStats()
    app.state.stats = stats

    async def export_traces(request: Request) -> Response:
        stats.requests += 1
        wants_json = _media_type(request) == JSON
        try:
            _check_token(request, token)
            body = _decompressed(await request.body(), request, max_body_bytes)
            spans, rejected = await anyio.to_thread.run_sync(
                _decode, body, _media_type(request), options)
            if spans:
                await _write(writer, spans, stats, wait=acknowledge == "stored")
        except _Refusal as refusal:
            stats.errors[refusal.status] = stats.errors.get(refusal.status, 0) + 1
            return _status_response(refusal, wants_json)
        stats.spans_accepted += len(spans)
        stats.spans_rejected += len(rejected)
        return _export_response(rejected, wants_json)

    for path in TRACE_PATHS:
        app.add_api_route(path, export_traces, methods=["POST"], include_in_schema=False)
    return app


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _check_token(request: Request, token: str | None) -> None:
    if not token:
        return
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    offered = ""
    if scheme.lower() == "bearer":
        offered = credentials.strip()
    elif scheme.lower() == "basic":
        try:
            offered = base64.b64decode(credentials.strip(), validate=True).decode().partition(
                ":")[2]
        except (binascii.Error, UnicodeDecodeError):
            offered = ""
    if not hmac.compare_digest(offered.encode(), token.encode()):
        raise _Refusal(401, "missing or wrong bearer token", _GRPC_UNAUTHENTICATED,
                       {"WWW-Authenticate": "Bearer"})


def _decompressed(body: bytes, request: Request, limit: int) -> bytes:
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        data = body
    elif encoding == "gzip":
        try:
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = decompressor.decompress(body, limit + 1)
        except zlib.error as error:
            raise _Refusal(400, f"the gzip body is corrupt: {error}") from None
    else:
        raise _Refusal(415, f"unsupported Content-Encoding {encoding!r} (use gzip or none)")
    if len(data) > limit:
        raise _Refusal(413, f"the request body is larger than {limit} bytes")
    return data


def _decode(body: bytes, media_type: str, options: MappingOptions
            ) -> tuple[list[Span], list[str]]:
    if media_type == PROTOBUF:
        records = list(map_proto_request(body, options, name="request"))
    elif media_type == JSON:
        records = _map_json(body, options)
    else:
        raise _Refusal(415, f"unsupported Content-Type {media_type!r} "
                            f"(send {PROTOBUF} or {JSON})")
    spans = [record for record in records if isinstance(record, Span)]
    rejected = [str(record) for record in records if isinstance(record, IngestProblem)]
    if rejected and not spans and _undecodable(records):
        raise _Refusal(400, rejected[0])
    return spans, rejected


def _undecodable(records: list[Span | IngestProblem]) -> bool:
    """Whether the request as a whole could not be read (not just some spans in it)."""
    return len(records) == 1 and isinstance(records[0], IngestProblem) and (
        "not an OTLP" in records[0].reason or "invalid JSON" in records[0].reason)


def _map_json(body: bytes, options: MappingOptions) -> list[Span | IngestProblem]:
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return [IngestProblem("request", f"invalid JSON: {error}")]
    if not isinstance(request, dict) or not isinstance(request.get("resourceSpans", []), list):
        return [IngestProblem("request", "not an OTLP trace export: no resourceSpans list")]
    records: list[Span | IngestProblem] = []
    for r_index, resource_spans in enumerate(request.get("resourceSpans") or []):
        path = f"resourceSpans[{r_index}]"
        if not isinstance(resource_spans, dict):
            records.append(IngestProblem("request", f"{path}: not a JSON object"))
            continue
        try:
            resource = resource_spans.get("resource") or {}
            resource_attributes = decode_attributes(
                resource.get("attributes") if isinstance(resource, dict) else None)
        except ConventionError as error:
            records.append(IngestProblem("request", f"{path}.resource: {error}"))
            continue
        for s_index, scope_spans in enumerate(resource_spans.get("scopeSpans") or []):
            spans = scope_spans.get("spans") if isinstance(scope_spans, dict) else None
            for index, span in enumerate(spans if isinstance(spans, list) else []):
                where = f"{path}.scopeSpans[{s_index}].spans[{index}]"
                span_id = span.get("spanId") if isinstance(span, dict) else None
                label = f"span {span_id} ({where})" if span_id else f"span {where}"
                records.append(map_span(span, resource_attributes, options,
                                        location="request", label=label))
    return records


async def _write(writer: BatchWriter, spans: list[Span], stats: ReceiverStats, *,
                 wait: bool) -> None:
    try:
        future = writer.submit(spans)
    except (WriterOverloaded, WriterClosed) as error:
        raise _Refusal(503, str(error), _GRPC_UNAVAILABLE, {"Retry-After": "1"}) from None
    if not wait:
        def count_lost(done: Future[UpsertCounts]) -> None:
            if done.exception() is not None:
                stats.spans_lost += len(spans)
                logger.error("%d received spans could not be stored: %s", len(spans),
                             done.exception())

        future.add_done_callback(count_lost)
        return
    try:
        await asyncio.wrap_future(future)
    except Exception as error:  # the store failed: retryable, the exporter sends them again
        raise _Refusal(503, f"the spans could not be stored: {type(error).__name__}",
                       _GRPC_UNAVAILABLE, {"Retry-After": "1"}) from None


def _export_response(rejected: list[str], wants_json: bool) -> Response:
    message = ExportTraceServiceResponse()
    if rejected:
        named = rejected[:_MAX_NAMED_REJECTIONS]
        more = len(rejected) - len(named)
        message.partial_success.rejected_spans = len(rejected)
        message.partial_success.error_message = "; ".join(named) + (
            f"; and {more} more" if more else "")
    if wants_json:
        return Response(orjson.dumps(MessageToDict(message)), media_type=JSON)
    return Response(message.SerializeToString(), media_type=PROTOBUF)


def _status_response(refusal: _Refusal, wants_json: bool) -> Response:
    """A ``google.rpc.Status`` body, as OTLP/HTTP asks for on errors."""
    message = str(refusal)
    if wants_json:
        content = orjson.dumps({"code": refusal.grpc_code, "message": message})
        return Response(content, status_code=refusal.status, media_type=JSON,
                        headers=refusal.headers)
    return Response(_rpc_status(refusal.grpc_code, message), status_code=refusal.status,
                    media_type=PROTOBUF, headers=refusal.headers)


def _rpc_status(code: int, message: str) -> bytes:
    # google.rpc.Status is `int32 code = 1; string message = 2;`, encoded by hand so the
    # server needs no googleapis-common-protos at runtime.
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
