"""The live OTLP/HTTP trace receiver behind ``tracegrade serve``.

``POST /v1/traces`` (and ``/api/public/otel/v1/traces``, where Langfuse's OpenTelemetry-based
SDKs export) takes an ``ExportTraceServiceRequest`` as binary protobuf
(``application/x-protobuf``) or JSON (``application/json``), gzip-compressed or not. Spans are
mapped by :mod:`tracegrade.sources.conventions`, the same module file import uses, and written
through a :class:`~tracegrade.server._writer.BatchWriter`.

Answers follow the OTLP/HTTP specification: ``200`` with an ``ExportTraceServiceResponse`` in
the request's encoding, whose ``partial_success`` counts and names the spans that could not be
mapped; ``400`` for an undecodable body, ``401`` without the bearer token, ``413`` for an
oversized body, ``415`` for an unsupported content type or encoding, ``500`` when mapping the
request raised, and ``503`` with ``Retry-After`` when the writer is backed up or the store
failed (a retryable answer).
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

from tracegrade.server._mapping import (
    JSON,
    PROTOBUF,
    Decoded,
    MappingError,
    MappingPool,
    decode_part,
)
from tracegrade.server._writer import BatchWriter, WriterClosed, WriterOverloaded
from tracegrade.sources._base import MappingOptions
from tracegrade.store import UpsertCounts

logger = logging.getLogger("tracegrade.server")

TRACE_PATHS = ("/v1/traces", "/api/public/otel/v1/traces")
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
_MAX_NAMED_REJECTIONS = 20
_GRPC_INVALID_ARGUMENT = 3
_GRPC_INTERNAL = 13
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
    pool: MappingPool | None = None,
) -> FastAPI:
    """The receiver as an ASGI app.

    Args:
        writer: Writes the received spans. The app's shutdown closes it and waits until what
            is queued is written, or until ``writer.stop_waiting()`` is called.
        options: How spans are mapped; ``options.source`` is the source they are stored under.
        token: When set, every request needs ``Authorization: Bearer <token>`` (or HTTP Basic
            with the token as password, which is what Langfuse SDKs send).
        max_body_bytes: The largest body accepted, as sent and after decompression.
        acknowledge: ``stored`` answers once the spans are committed (an exporter's retry
            covers any failure); ``queued`` answers once they are mapped and queued, so an
            exporter's next request overlaps the write (faster, but spans queued when the
            process dies, or whose write fails, are lost; those whose write fails are counted
            in ``stats.spans_lost``).
        pool: Worker processes that map requests (see :class:`MappingPool`); without one,
            requests are mapped in a thread of this process.

    Returns:
        The FastAPI app; its ``state.stats`` holds a :class:`ReceiverStats`.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if writer.pending_spans:  # said, so that a wait (or a kill during it) is explained
            logger.warning("spans to write before stopping: %d", writer.pending_spans)
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
            media_type = _media_type(request)
            if media_type not in (PROTOBUF, JSON):
                raise _Refusal(415, f"unsupported Content-Type {media_type!r} "
                                    f"(send {PROTOBUF} or {JSON})")
            encoding = _content_encoding(request)
            body = await _read_body(request, max_body_bytes)
            if encoding == "gzip":  # off the event loop: other requests go on meanwhile
                body = await anyio.to_thread.run_sync(_decompressed, body, encoding,
                                                      max_body_bytes)
            decoded = await _decode(body, media_type, options, writer.store.dialect, pool)
            if decoded.undecodable is not None:
                raise _Refusal(400, decoded.undecodable)
            if decoded.accepted:
                await _write(writer, decoded, stats, wait=acknowledge == "stored")
        except _Refusal as refusal:
            stats.errors[refusal.status] = stats.errors.get(refusal.status, 0) + 1
            return _status_response(refusal, wants_json)
        stats.spans_accepted += decoded.accepted
        stats.spans_rejected += decoded.rejected_spans
        return _export_response(decoded, wants_json)

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


def _content_encoding(request: Request) -> str:
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise _Refusal(415, f"unsupported Content-Encoding {encoding!r} (use gzip or none)")
    return encoding


async def _read_body(request: Request, limit: int) -> bytes:
    """The body as sent, refused (413) as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _Refusal(413, f"the request body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _Refusal(413, f"the request body is larger than {limit} bytes")
    return bytes(body)


def _decompressed(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding != "gzip":
        return body
    try:
        data = _gunzip(body, limit)
    except zlib.error as error:
        raise _Refusal(400, f"the gzip body is corrupt: {error}") from None
    if len(data) > limit:
        raise _Refusal(413, f"the decompressed request body is larger than {limit} bytes")
    return data


def _gunzip(body: bytes, limit: int) -> bytes:
    """Every gzip member of ``body`` (their contents concatenated), stopping past ``limit``.

    Each member is fed in chunks that start small and double, so what zlib copies out after a
    member's end (``unused_data``) is at most about twice that member: many tiny members cost
    time in proportion to the body, not to its square.

    Raises:
        zlib.error: a member is corrupt, or bytes that are no gzip member follow the last one.
        _Refusal: the body ends inside a member (400).
    """
    data = bytearray()
    view = memoryview(body)
    position = 0
    if not view:
        raise _Refusal(400, "the gzip body is empty: it holds no gzip member")
    while position < len(view):
        member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunk = _FIRST_GZIP_CHUNK
        while not member.eof:
            if position >= len(view):
                raise _Refusal(400, "the gzip body is truncated: it ends inside a member")
            piece = view[position:position + chunk]
            position += len(piece)
            chunk = min(2 * chunk, _LAST_GZIP_CHUNK)
            # A budget of at least 1 byte: 0 would mean "no limit" to zlib.
            data += member.decompress(piece, limit + 1 - len(data))
            if len(data) > limit:
                return bytes(data)
        position -= len(member.unused_data)  # the next member starts where this one ended
    return bytes(data)


_FIRST_GZIP_CHUNK = 256
_LAST_GZIP_CHUNK = 256 * 1024


async def _decode(body: bytes, media_type: str, options: MappingOptions, dialect: str,
                  pool: MappingPool | None) -> Decoded:
    try:
        if pool is not None:
            return await pool.decode(body, media_type)
        return await anyio.to_thread.run_sync(decode_part, body, media_type, options, dialect)
    except Exception as error:  # a mapping bug: this request fails, loudly; the next is mapped
        logger.exception("a request could not be mapped")
        reason = str(error) if isinstance(error, MappingError) else \
            f"{type(error).__name__}: {error}"
        raise _Refusal(500, f"the request could not be mapped: {reason}",
                       _GRPC_INTERNAL) from None


async def _write(writer: BatchWriter, decoded: Decoded, stats: ReceiverStats, *,
                 wait: bool) -> None:
    spans = decoded.accepted
    try:
        future = writer.submit(decoded.prepared)
    except (WriterOverloaded, WriterClosed) as error:
        raise _Refusal(503, str(error), _GRPC_UNAVAILABLE, {"Retry-After": "1"}) from None
    if not wait:
        def count_lost(done: Future[UpsertCounts]) -> None:
            if not done.cancelled() and done.exception() is not None:
                stats.spans_lost += spans
                logger.error("%d received spans could not be stored: %s", spans,
                             done.exception())

        future.add_done_callback(count_lost)
        return
    try:
        # Shielded: a request cancelled while waiting must not cancel the write of the spans
        # it handed over.
        await asyncio.shield(asyncio.wrap_future(future))
    except Exception as error:  # the store failed: retryable, the exporter sends them again
        raise _Refusal(503, f"the spans could not be stored: {type(error).__name__}",
                       _GRPC_UNAVAILABLE, {"Retry-After": "1"}) from None


def _export_response(decoded: Decoded, wants_json: bool) -> Response:
    message = ExportTraceServiceResponse()
    rejected = decoded.rejected
    if rejected:
        named = rejected[:_MAX_NAMED_REJECTIONS]
        more = len(rejected) - len(named)
        message.partial_success.rejected_spans = decoded.rejected_spans
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
