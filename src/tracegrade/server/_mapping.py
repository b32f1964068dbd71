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
from typing import Any

import orjson

from tracegrade._gc import tune_for_service
from tracegrade._workers import exit_with
from tracegrade.sources._base import IngestProblem, MappingOptions
from tracegrade.sources.conventions import ConventionError, decode_attributes, map_span
from tracegrade.sources.otlp import map_proto_request_counted
from tracegrade.spans import Span
from tracegrade.store._store import PreparedBatch, prepare_batch

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

logger = logging.getLogger("tracegrade.server")


class MappingError(Exception):
    """Mapping a request raised (a bug met by this input); the workers carry on."""


@dataclass
class Decoded:
    """One request's spans as store rows, and the spans (or the request) it could not map."""

    prepared: PreparedBatch
    accepted: int = 0
    rejected: list[str] = field(default_factory=list)
    """What kept spans out, one message each (a rejected resource's stands for its spans)."""
    rejected_spans: int = 0
    """How many spans were kept out (every span of a resource rejected as a whole)."""
    undecodable: str | None = None
    """Why the request as a whole could not be read (answered with 400), else None."""

    def merge(self, other: Decoded) -> None:
        """Add another part of the same request."""
        self.prepared.merge(other.prepared)
        self.accepted += other.accepted
        self.rejected.extend(other.rejected)
        self.rejected_spans += other.rejected_spans
        self.undecodable = self.undecodable or other.undecodable


def decode_part(body: bytes, media_type: str, options: MappingOptions, dialect: str,
                part: tuple[int, int] = (0, 1)) -> Decoded:
    """Map part ``(k, n)`` of a request (every n-th span from the k-th) into store rows."""
    if media_type == PROTOBUF:
        records, rejected_spans = map_proto_request_counted(body, options, name="request",
                                                            part=part)
    else:
        records, rejected_spans = _map_json(body, options, part)
    spans = [record for record in records if isinstance(record, Span)]
    rejected = [str(record) for record in records if isinstance(record, IngestProblem)]
    undecodable = rejected[0] if rejected and not spans and _undecodable(records) else None
    return Decoded(prepare_batch(spans, None, dialect), len(spans), rejected, rejected_spans,
                   undecodable)


def _undecodable(records: list[Span | IngestProblem]) -> bool:
    """Whether the request as a whole could not be read (not just some spans in it)."""
    return len(records) == 1 and isinstance(records[0], IngestProblem) and (
        "not an OTLP" in records[0].reason or "invalid JSON" in records[0].reason)


class _NotAnExport(Exception):
    """The JSON is not shaped like an ``ExportTraceServiceRequest``."""


def _map_json(body: bytes, options: MappingOptions, part: tuple[int, int]
              ) -> tuple[list[Span | IngestProblem], int]:
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return _request_problem(f"invalid JSON: {error}", part)
    try:
        return _map_json_request(_message(request, "the request"), options, part)
    except _NotAnExport as error:
        # Every part meets the same shape error, so each drops what it mapped before it.
        return _request_problem(f"not an OTLP trace export: {error}", part)


def _request_problem(reason: str, part: tuple[int, int]
                     ) -> tuple[list[Span | IngestProblem], int]:
    """A problem with the request as a whole, which only part 0 reports."""
    return ([IngestProblem("request", reason)] if part[0] == 0 else []), 0


def _map_json_request(request: dict[str, Any], options: MappingOptions,
                      part: tuple[int, int]) -> tuple[list[Span | IngestProblem], int]:
    """The request's spans (this part's share), and how many spans were rejected.

    Raises:
        _NotAnExport: a list or object of the request's envelope has another JSON type.
    """
    mine, parts = part
    records: list[Span | IngestProblem] = []
    rejected_spans = seen = 0
    for r_index, entry in enumerate(_repeated(request, "resourceSpans", "")):
        path = f"resourceSpans[{r_index}]"
        resource_spans = _message(entry, path)
        scopes = [_repeated(_message(scope, f"{path}.scopeSpans[{s_index}]"), "spans",
                            f"{path}.scopeSpans[{s_index}].")
                  for s_index, scope in enumerate(_repeated(resource_spans, "scopeSpans",
                                                            f"{path}."))]
        resource = resource_spans.get("resource")
        try:
            resource_attributes = decode_attributes(
                None if resource is None else _message(resource, f"{path}.resource").get(
                    "attributes"))
        except ConventionError as error:
            if mine == 0:  # the resource's spans are all rejected, and all counted
                records.append(IngestProblem("request", f"{path}.resource: {error}"))
                rejected_spans += sum(len(spans) for spans in scopes)
            continue
        for s_index, spans in enumerate(scopes):
            for index, span in enumerate(spans):
                seen += 1
                if (seen - 1) % parts != mine:
                    continue
                where = f"{path}.scopeSpans[{s_index}].spans[{index}]"
                span_id = span.get("spanId") if isinstance(span, dict) else None
                label = f"span {span_id} ({where})" if span_id else f"span {where}"
                record = map_span(span, resource_attributes, options, location="request",
                                  label=label)
                rejected_spans += isinstance(record, IngestProblem)
                records.append(record)
    return records, rejected_spans


def _message(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _NotAnExport(f"{path} is not a JSON object")
    return value


def _repeated(message: dict[str, Any], key: str, prefix: str) -> list[Any]:
    """A repeated field: a list, or null / absent for none."""
    value = message.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _NotAnExport(f"{prefix}{key} is not a list")
    return value


def _serve(connection: Connection, options: MappingOptions, dialect: str, parent: int) -> None:
    """A worker's loop: map the part of each request it is sent, until told to stop."""
    tune_for_service()
    exit_with(parent)
    connection.send(None)  # ready
    while (message := connection.recv()) is not None:
        body, media_type, part = message
        try:
            connection.send(decode_part(body, media_type, options, dialect, part))
        except Exception as error:  # a mapping bug met by this request: the next one is mapped
            connection.send(f"{type(error).__name__}: {error}")


class MappingPool:
    """Worker processes that share the mapping of each request.

    They come from a fork server: the receiver runs threads, and forking a process with
    threads can deadlock the child, while a fork server forks from a clean process that has
    imported tracegrade once. Each worker has a pipe of its own; a request's parts are sent
    down every pipe at once and the answers read back in a thread, one request at a time
    (each request already keeps every worker busy). Should a worker stop, the pool stops
    and requests are mapped in the receiver's own process, as without workers; a request
    whose mapping raises only fails that request.
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
        """The request mapped by every worker, each taking its share of the spans.

        Raises:
            MappingError: mapping the request raised in a worker.
        """
        if self.broken is None:
            decoded = await asyncio.to_thread(self._round_trip, body, media_type)
            if decoded is not None:
                return decoded
        return await asyncio.to_thread(decode_part, body, media_type, self.options,
                                       self.dialect)

    def _round_trip(self, body: bytes, media_type: str) -> Decoded | None:
        with self._lock:
            if self.broken is not None:  # stopped while this request waited for the lock
                return None
            try:
                for part, connection in enumerate(self._connections):
                    connection.send((body, media_type, (part, self.workers)))
                parts = [connection.recv() for connection in self._connections]
            except (OSError, EOFError) as error:
                self._fail(f"a mapping worker stopped: {error}")
                return None
        decoded = [part for part in parts if isinstance(part, Decoded)]
        if len(decoded) < len(parts):  # every worker answered: the pool is still in step
            raise MappingError(next(str(part) for part in parts
                                    if not isinstance(part, Decoded)))
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
