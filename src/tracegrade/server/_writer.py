"""One writer thread that turns many small OTLP requests into few store transactions.

Each request hands its spans to :meth:`BatchWriter.submit` and waits for the returned future:
the exporter is only told "accepted" once its spans are committed. Requests that arrive while a
batch is being written are coalesced into the next one, so concurrent exporters share
transactions instead of queueing behind each other's.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from tracegrade.store import Store, UpsertCounts
from tracegrade.store._store import PreparedBatch

DEFAULT_MAX_BATCH_SPANS = 5000
DEFAULT_MAX_PENDING_SPANS = 200_000


class WriterOverloaded(Exception):
    """Too many spans are waiting to be written; the exporter should retry later."""


class WriterClosed(Exception):
    """The writer has stopped (the server is shutting down)."""


@dataclass
class WriterStats:
    """What the writer has done so far."""

    batches: int = 0
    spans: int = 0
    failed_batches: int = 0


class BatchWriter:
    """Writes submitted spans to the store in batches, in a background thread.

    Args:
        store: Where spans go.
        max_batch_spans: The most spans one transaction writes.
        max_pending_spans: Past this many spans waiting, :meth:`submit` refuses more.
    """

    def __init__(self, store: Store, *, max_batch_spans: int = DEFAULT_MAX_BATCH_SPANS,
                 max_pending_spans: int = DEFAULT_MAX_PENDING_SPANS) -> None:
        self.store = store
        self.max_batch_spans = max_batch_spans
        self.max_pending_spans = max_pending_spans
        self.stats = WriterStats()
        self._queue: queue.Queue[tuple[PreparedBatch, Future[UpsertCounts]] | None] = \
            queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="tracegrade-writer", daemon=True)
        self._thread.start()

    def submit(self, spans: PreparedBatch) -> Future[UpsertCounts]:
        """Queue spans (as rows) for writing; the future resolves once they are committed.

        Raises:
            WriterOverloaded: too many spans are already waiting.
            WriterClosed: the writer was closed.
        """
        future: Future[UpsertCounts] = Future()
        with self._lock:
            if self._closed:
                raise WriterClosed("the receiver is shutting down")
            if self._pending and self._pending + len(spans.rows) > self.max_pending_spans:
                raise WriterOverloaded(f"{self._pending} spans are waiting to be written")
            self._pending += len(spans.rows)
        self._queue.put((spans, future))
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            size = len(first[0].rows)
            stopping = False
            while size < self.max_batch_spans:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
                size += len(more[0].rows)
            self._write(batch, size)
            if stopping:
                return

    def _write(self, batch: list[tuple[PreparedBatch, Future[UpsertCounts]]], size: int) -> None:
        # One transaction for the coalesced requests; a key sent twice keeps its newest copy.
        merged = PreparedBatch({}, [])
        for prepared, _ in batch:
            merged.merge(prepared)
        try:
            counts = self.store.write_prepared(merged)
        except Exception as error:  # every waiting request learns its spans were not stored
            self.stats.failed_batches += 1
            for _, future in batch:
                future.set_exception(error)
        else:
            self.stats.batches += 1
            self.stats.spans += len(merged.rows)
            for _, future in batch:
                future.set_result(counts)
        finally:
            with self._lock:
                self._pending -= size
