"""The receiver's batch writer: what it does when requests stop waiting or shutdown waits."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.server.test_receiver import _GatedStore, spans_for
from tracegrade.server._writer import BatchWriter
from tracegrade.store import Store


def test_a_cancelled_request_does_not_stop_the_writer(store: Store) -> None:
    gated = _GatedStore(store)
    writer = BatchWriter(gated)  # type: ignore[arg-type]
    writer.submit(spans_for(0, store.dialect))
    assert gated.writing.wait(10)  # busy: what comes next waits in the queue
    abandoned = writer.submit(spans_for(1, store.dialect))
    assert abandoned.cancel()  # its request went away before the write began
    gated.gate.set()
    later = writer.submit(spans_for(2, store.dialect))

    later.result(10)
    assert writer.close(10) and writer.stats.errors == 0
    assert store.count_spans() == 30  # the abandoned request's spans were handed over: written


def test_close_keeps_waiting_after_an_earlier_close_gave_up(store: Store) -> None:
    gated = _GatedStore(store)
    writer = BatchWriter(gated)  # type: ignore[arg-type]
    writer.submit(spans_for(0, store.dialect))
    assert gated.writing.wait(10)

    assert writer.close(timeout=0.01) is False and writer.pending_spans == 10
    opener = threading.Timer(0.1, gated.gate.set)
    opener.start()
    assert writer.close() is True  # returns only once the write is done
    opener.join()
    assert writer.pending_spans == 0 and store.count_spans() == 10


def test_stop_waiting_makes_close_return_with_the_spans_still_pending(store: Store) -> None:
    gated = _GatedStore(store)
    writer = BatchWriter(gated)  # type: ignore[arg-type]
    writer.submit(spans_for(0, store.dialect))
    assert gated.writing.wait(10)
    writer.stop_waiting()
    try:
        assert writer.close() is False and writer.close() is False
        assert writer.pending_spans == 10
    finally:
        gated.gate.set()
        # let the write end before the store (a PostgreSQL schema) is dropped under it
        writer._thread.join(30)


def test_the_writer_survives_a_failure_of_its_own(store: Store,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    writer = BatchWriter(store)
    write = writer._write
    calls: list[int] = []

    def fails_once(batch: list[Any]) -> None:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("a bug in the writer")
        write(batch)

    monkeypatch.setattr(writer, "_write", fails_once)
    with pytest.raises(RuntimeError, match="a bug in the writer"):
        writer.submit(spans_for(0, store.dialect)).result(10)
    writer.submit(spans_for(1, store.dialect)).result(10)
    assert writer.close(10) and writer.stats.errors == 1
    assert store.count_spans() == 10
