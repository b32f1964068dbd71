"""One writer thread that turns many small OTLP requests into few store transactions.

Each request hands its spans to :meth:`BatchWriter.submit` and waits for the returned future:
the exporter is only told "accepted" once its spans are committed. Requests that arrive while a
batch is being written are coalesced into the next one, so concurrent exporters share
transactions instead of queueing behind each other's.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

from tracegrade.store import Store, UpsertCounts
from tracegrade.store._store import PreparedBatch

DEFAULT_MAX_BATCH_SPANS = 5000
DEFAULT_MAX_PENDING_SPANS = 200_000
_WAIT_STEP = 0.1
"""How often a waiting :meth:`BatchWriter.close` checks whether it should stop waiting."""

logger = logging.getLogger("tracegrade.server")


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
    errors: int = 0
    """Failures of the writer itself (not of the store), logged and survived."""


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
        self._given_up = threading.Event()
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
            # Under the lock, so that nothing lands behind the stop marker close() queues.
            self._queue.put((spans, future))
        return future

    @property
    def pending_spans(self) -> int:
        """Spans submitted and not yet committed (or failed)."""
        with self._lock:
            return self._pending

    def close(self, timeout: float | None = None) -> bool:
        """Stop taking spans and wait until what is queued is written.

        Every call waits (a first one that timed out does not make later ones return at
        once), until the queue is written, ``timeout`` passes or :meth:`stop_waiting` is called.

        Args:
            timeout: The longest wait in seconds; None waits until everything is written.

        Returns:
            Whether everything submitted was written (or failed) and the thread has stopped.
        """
        with self._lock:
            first = not self._closed
            self._closed = True
        if first:
            self._queue.put(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._thread.is_alive() and not self._given_up.is_set():
            step = _WAIT_STEP if deadline is None else min(_WAIT_STEP,
                                                           deadline - time.monotonic())
            if step <= 0:
                break
            self._thread.join(step)
        return not self._thread.is_alive()

    def stop_waiting(self) -> None:
        """Make :meth:`close` return, now and from then on, without waiting for the queue."""
        self._given_up.set()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._next_batch()
            if not batch:
                continue
            try:
                self._write(batch)
            except Exception as error:  # the writer's own bug: keep writing later requests
                logger.exception("the span writer failed")
                self.stats.errors += 1
                for _, future in batch:
                    _settle(future, error=error)

    def _next_batch(self) -> tuple[list[tuple[PreparedBatch, Future[UpsertCounts]]], bool]:
        """Whatever is queued, up to a batch; and whether the writer was told to stop."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        size = len(first[0].rows)
        while size < self.max_batch_spans:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                return batch, True
            batch.append(more)
            size += len(more[0].rows)
        return batch, False

    def _write(self, batch: list[tuple[PreparedBatch, Future[UpsertCounts]]]) -> None:
        # One transaction for the coalesced requests; a key sent twice keeps its newest copy.
        # The spans of a request that stopped waiting are written all the same: they were
        # handed over, and may have been acknowledged.
        for _, future in batch:
            future.set_running_or_notify_cancel()
        size = sum(len(prepared.rows) for prepared, _ in batch)
        try:
            merged = PreparedBatch({}, [])
            for prepared, _ in batch:
                merged.merge(prepared)
            counts = self.store.write_prepared(merged)
        except Exception as error:  # every waiting request learns its spans were not stored
            self._written(size)
            self.stats.failed_batches += 1
            for _, future in batch:
                _settle(future, error=error)
        else:
            self._written(size)
            self.stats.batches += 1
            self.stats.spans += len(merged.rows)
            for _, future in batch:
                _settle(future, counts)

    def _written(self, size: int) -> None:
        with self._lock:
            self._pending -= size


def _settle(future: Future[UpsertCounts], counts: UpsertCounts | None = None, *,
            error: BaseException | None = None) -> None:
    """Resolve a request's future, unless it was cancelled or resolved already."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        elif counts is not None:
            future.set_result(counts)
    except InvalidStateError:  # cancelled meanwhile: nobody is waiting for it
        pass
