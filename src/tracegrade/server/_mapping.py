"""Decoding and mapping a receiver request, in this process or shared by worker processes.

Mapping a span costs the receiver several times what writing it does, and it is
interpreter-bound: with ``workers``, each request is shared by that many processes, each
decoding the body and mapping every n-th span into store rows, so one exporter's batch is
mapped on every CPU while the receiver's own process only writes.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import orjson

from tracegrade._gc import tune_for_service
from tracegrade._workers import exit_with
from tracegrade.sources._base import IngestProblem, MappingOptions
from tracegrade.sources.conventions import ConventionError, decode_attributes, map_span
from tracegrade.sources.otlp import map_proto_request
from tracegrade.spans import Span
from tracegrade.store._store import PreparedBatch, prepare_batch

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

logger = logging.getLogger("tracegrade.server")


@dataclass
class Decoded:
    """One request's spans as store rows, and the spans (or the request) it could not map."""

    prepared: PreparedBatch
    accepted: int = 0
    rejected: list[str] = field(default_factory=list)
    undecodable: str | None = None
    """Why the request as a whole could not be read (answered with 400), else None."""

    def merge(self, other: Decoded) -> None:
        """Add another part of the same request."""
        self.prepared.merge(other.prepared)
        self.accepted += other.accepted
        self.rejected.extend(other.rejected)
        self.undecodable = self.undecodable or other.undecodable


def decode_part(body: bytes, media_type: str, options: MappingOptions, dialect: str,
                part: tuple[int, int] = (0, 1)) -> Decoded:
    """Map part ``(k, n)`` of a request (every n-th span from the k-th) into store rows."""
    if media_type == PROTOBUF:
        records = list(map_proto_request(body, options, name="request", part=part))
    else:
        records = _map_json(body, options, part)
    spans = [record for record in records if isinstance(record, Span)]
    rejected = [str(record) for record in records if isinstance(record, IngestProblem)]
    undecodable = rejected[0] if rejected and not spans and _undecodable(records) else None
    return Decoded(prepare_batch(spans, None, dialect), len(spans), rejected, undecodable)


def _undecodable(records: list[Span | IngestProblem]) -> bool:
    """Whether the request as a whole could not be read (not just some spans in it)."""
    return len(records) == 1 and isinstance(records[0], IngestProblem) and (
        "not an OTLP" in records[0].reason or "invalid JSON" in records[0].reason)


def _map_json(body: bytes, options: MappingOptions, part: tuple[int, int]
              ) -> list[Span | IngestProblem]:
    mine, parts = part
    request_problems = mine == 0
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return [IngestProblem("request", f"invalid JSON: {error}")] if request_problems else []
    if not isinstance(request, dict) or not isinstance(request.get("resourceSpans", []), list):
        return [IngestProblem("request", "not an OTLP trace export: no resourceSpans list")
                ] if request_problems else []
    records: list[Span | IngestProblem] = []
    seen = 0
    for r_index, resource_spans in enumerate(request.get("resourceSpans") or []):
        path = f"resourceSpans[{r_index}]"
        if not isinstance(resource_spans, dict):
            if request_problems:
                records.append(IngestProblem("request", f"{path}: not a JSON object"))
            continue
        try:
            resource = resource_spans.get("resource") or {}
            resource_attributes = decode_attributes(
                resource.get("attributes") if isinstance(resource, dict) else None)
        except ConventionError as error:
            if request_problems:
                records.append(IngestProblem("request", f"{path}.resource: {error}"))
            continue
        for s_index, scope_spans in enumerate(resource_spans.get("scopeSpans") or []):
            spans = scope_spans.get("spans") if isinstance(scope_spans, dict) else None
            for index, span in enumerate(spans if isinstance(spans, list) else []):
                seen += 1
                if (seen - 1) % parts != mine:
                    continue
                where = f"{path}.scopeSpans[{s_index}].spans[{index}]"
                span_id = span.get("spanId") if isinstance(span, dict) else None
                label = f"span {span_id} ({where})" if span_id else f"span {where}"
                records.append(map_span(span, resource_attributes, options,
                                        location="request", label=label))
    return records


def _serve(connection: Connection, options: MappingOptions, dialect: str, parent: int) -> None:
    """A worker's loop: map the part of each request it is sent, until told to stop."""
    tune_for_service()
    exit_with(parent)
    connection.send(None)  # ready
    while (message := connection.recv()) is not None:
        body, media_type, part = message
        try:
            connection.send(decode_part(body, media_type, options, dialect, part))
        except Exception as error:  # a mapping bug: the receiver maps this request itself
            connection.send(f"{type(error).__name__}: {error}")


class MappingPool:
    """Worker processes that share the mapping of each request.

    They come from a fork server: the receiver runs threads, and forking a process with
    threads can deadlock the child, while a fork server forks from a clean process that has
    imported tracegrade once. Each worker has a pipe of its own; a request's parts are sent
    down every pipe at once and the answers read back in a thread, one request at a time
    (each request already keeps every worker busy). Should a worker fail, the pool stops
    and requests are mapped in the receiver's own process, as without workers.
    """

    def __init__(self, workers: int, options: MappingOptions, dialect: str) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["tracegrade.server._mapping"])
        self.workers = workers
        self.options, self.dialect = options, dialect
        self.broken: str | None = None
        self._lock = threading.Lock()
        self._connections: list[Connection] = []
        self._processes: list[BaseProcess] = []
        for _ in range(workers):
            mine, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(theirs, options, dialect,
                                                           os.getpid()),
                                      name="tracegrade-mapper", daemon=True)
            process.start()
            theirs.close()
            self._connections.append(mine)
            self._processes.append(process)

    def warm_up(self) -> None:
        """Wait until every worker is ready."""
        for connection in self._connections:
            connection.recv()

    async def decode(self, body: bytes, media_type: str) -> Decoded:
        """The request mapped by every worker, each taking its share of the spans."""
        if self.broken is None:
            decoded = await asyncio.to_thread(self._round_trip, body, media_type)
            if decoded is not None:
                return decoded
        return await asyncio.to_thread(decode_part, body, media_type, self.options,
                                       self.dialect)

    def _round_trip(self, body: bytes, media_type: str) -> Decoded | None:
        with self._lock:
            try:
                for part, connection in enumerate(self._connections):
                    connection.send((body, media_type, (part, self.workers)))
                parts = [connection.recv() for connection in self._connections]
            except (OSError, EOFError) as error:
                self._fail(f"a mapping worker stopped: {error}")
                return None
        decoded = [part for part in parts if isinstance(part, Decoded)]
        if len(decoded) < len(parts):
            self._fail(str(next(part for part in parts if not isinstance(part, Decoded))))
            return None
        for other in decoded[1:]:
            decoded[0].merge(other)
        return decoded[0]

    def _fail(self, reason: str) -> None:
        logger.error("mapping in this process from now on: %s", reason)
        self.broken = reason
        self.close()

    def close(self) -> None:
        """Stop the workers."""
        for connection in self._connections:
            try:
                connection.send(None)
            except OSError:
                pass
            connection.close()
        for process in self._processes:
            process.join(5)
            if process.is_alive():
                process.kill()
        self._connections, self._processes = [], []
