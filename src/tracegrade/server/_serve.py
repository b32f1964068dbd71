"""Run the receiver with uvicorn, refusing an exposed address without a token."""

from __future__ import annotations

import ipaddress
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Literal

import uvicorn

from tracegrade._gc import tune_for_service
from tracegrade.server._mapping import MappingPool
from tracegrade.server._receiver import DEFAULT_MAX_BODY_BYTES, ReceiverStats, create_app
from tracegrade.server._writer import BatchWriter
from tracegrade.sources._base import MappingOptions
from tracegrade.sources.receiver import DEFAULT_HOST, DEFAULT_PORT
from tracegrade.store import Store

TOKEN_ENV = "TRACEGRADE_SERVER_TOKEN"
# Connections queued while the server starts or is busy (uvicorn's own default).
LISTEN_BACKLOG = 2048


class ServerConfigError(ValueError):
    """The receiver cannot start as configured (e.g. a public address without a token)."""


class Terminated(BaseException):
    """SIGTERM (``kill``, a service manager) stopped the receiver: Ctrl-C's KeyboardInterrupt.

    A BaseException for the same reason as KeyboardInterrupt: no ``except Exception`` swallows it.
    """


class SpansNotWritten(RuntimeError):
    """The receiver stopped before the store took every span it had received.

    Args:
        spans: How many were not written.
        acknowledged: Whether the exporters were told they were accepted.
        given_up_by: The second stop signal (SIGINT or SIGTERM) that gave up on them; None when
            a timeout did.
    """

    def __init__(self, spans: int, *, acknowledged: bool,
                 given_up_by: signal.Signals | None = None) -> None:
        told = "acknowledged" if acknowledged else "received (not acknowledged)"
        super().__init__(f"{spans} {told} span{'s' if spans != 1 else ''} "
                         f"{'were' if spans != 1 else 'was'} not written: the receiver "
                         "stopped before the store took them")
        self.spans = spans
        self.given_up_by = given_up_by


@dataclass(frozen=True)
class ServerSettings:
    """Where the receiver listens and how it authenticates."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    max_batch_spans: int = 5000
    acknowledge: Literal["stored", "queued"] = "stored"
    """Answer exporters once spans are committed (``stored``) or queued (``queued``)."""
    workers: int = 0
    """Processes that share the mapping of each request (0: a thread of this process)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """The largest request body accepted, as sent and after decompression."""


def check_binding(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a bearer token.

    Raises:
        ServerConfigError: ``host`` is not a loopback address and no token is set.
    """
    if token or is_loopback(host):
        return
    raise ServerConfigError(
        f"refusing to listen on {host} without a token: set {TOKEN_ENV} or pass --token "
        "(only 127.0.0.1 / ::1 / localhost may be used without one)")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(settings: ServerSettings) -> socket.socket:
    """A socket bound to the settings' address and listening, after checking it may be used.

    Raises:
        ServerConfigError: the address needs a token, or cannot be bound (in use, unknown…).
    """
    check_binding(settings.host, settings.token)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # Listening before the address is announced: a client that connects between the
        # announcement and the server's start waits in the backlog instead of being refused.
        sock.listen(LISTEN_BACKLOG)
    except OSError as error:
        raise ServerConfigError(f"cannot listen on {settings.host}:{settings.port}: "
                                f"{error.strerror or error}") from None
    return sock


def serve(store: Store, options: MappingOptions, settings: ServerSettings,
          *, sock: socket.socket | None = None) -> None:
    """Receive spans until stopped (Ctrl-C or SIGTERM), writing them to ``store``.

    Stopping waits until every received span is written; a second Ctrl-C or SIGTERM gives up
    on them. Once it has stopped, the stop signal is raised again: Ctrl-C as KeyboardInterrupt,
    SIGTERM as :class:`Terminated` (when called from the main thread, the only one signals reach).

    Args:
        store: Where received spans go.
        options: How they are mapped (``options.source`` names their source).
        settings: Host, port, token.
        sock: An already bound socket (from :func:`listen`, or port 0 in tests); bound here
            from ``settings`` when not given.

    Raises:
        ServerConfigError: the address is not loopback and there is no token.
        SpansNotWritten: stopped (given up) before every received span was written.
        KeyboardInterrupt: Ctrl-C stopped it, and every received span was written.
        Terminated: SIGTERM stopped it, and every received span was written.
    """
    sock = sock or listen(settings)
    pool = _pool(settings, options, store)
    tune_for_service()
    writer = BatchWriter(store, max_batch_spans=settings.max_batch_spans)
    app = create_app(writer, options, token=settings.token,
                     max_body_bytes=settings.max_body_bytes, acknowledge=settings.acknowledge,
                     pool=pool)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                            access_log=False, lifespan="on")
    server = _Server(config, writer)
    # Around uvicorn's own handlers, which raise the signal again once the server has stopped:
    # SIGTERM's default would end the process before the spans given up on could be named.
    with _sigterm_raises_terminated():
        try:
            server.run(sockets=[sock])
        finally:
            try:
                _finish_writing(writer, app.state.stats, settings.acknowledge,
                                given_up_by=server.given_up_by)
            finally:
                if pool is not None:
                    pool.close()


@contextmanager
def _sigterm_raises_terminated() -> Iterator[None]:
    """Meanwhile SIGTERM raises :class:`Terminated` (in the main thread; elsewhere, nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _raise_terminated(sig: int, frame: FrameType | None) -> None:
    raise Terminated


def _finish_writing(writer: BatchWriter, stats: ReceiverStats,
                    acknowledge: Literal["stored", "queued"], timeout: float | None = None,
                    *, given_up_by: signal.Signals | None = None) -> None:
    """Wait until the writer has written what it was given, unless told to give up.

    Args:
        writer: The receiver's writer (closed here, if it was not already).
        stats: The receiver's counters: acknowledged spans given up on count as lost.
        acknowledge: How the receiver acknowledged them.
        timeout: The longest wait in seconds; None waits until written, or until Ctrl-C,
            SIGTERM or ``writer.stop_waiting()``.
        given_up_by: The signal that already called ``writer.stop_waiting()``, if one did.

    Raises:
        SpansNotWritten: some received spans were not written (they never will be).
    """
    try:
        written = writer.close(timeout)
    except (KeyboardInterrupt, Terminated) as stop:  # while waiting: give up on the queue
        if not writer.pending_spans:
            raise
        written = False
        given_up_by = signal.SIGINT if isinstance(stop, KeyboardInterrupt) else signal.SIGTERM
    unwritten = writer.pending_spans
    if written or not unwritten:
        return
    writer.stop_waiting()  # so that the app's shutdown, if it is waiting too, ends
    acknowledged = acknowledge == "queued"
    if acknowledged:
        stats.spans_lost += unwritten
    raise SpansNotWritten(unwritten, acknowledged=acknowledged, given_up_by=given_up_by)


class _Server(uvicorn.Server):
    """uvicorn's server, whose forced exit (a second Ctrl-C or SIGTERM) also gives up on
    queued spans."""

    def __init__(self, config: uvicorn.Config, writer: BatchWriter) -> None:
        super().__init__(config)
        self._writer = writer
        self.given_up_by: signal.Signals | None = None  # the signal that forced the exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        stopping = self.should_exit
        super().handle_exit(sig, frame)
        if stopping and sig == signal.SIGTERM:  # uvicorn forces only on a second SIGINT
            self.force_exit = True
        if self.force_exit:
            self.given_up_by = self.given_up_by or signal.Signals(sig)
            self._writer.stop_waiting()


def _pool(settings: ServerSettings, options: MappingOptions, store: Store
          ) -> MappingPool | None:
    if settings.workers < 1:
        return None
    pool = MappingPool(settings.workers, options, store.dialect)
    pool.warm_up()
    return pool


class BackgroundReceiver:
    """The receiver running in a background thread (for embedding, tests and benchmarks)."""

    def __init__(self, store: Store, options: MappingOptions, settings: ServerSettings) -> None:
        sock = listen(settings)
        self.pool = _pool(settings, options, store)
        self.writer = BatchWriter(store, max_batch_spans=settings.max_batch_spans)
        self.acknowledge = settings.acknowledge
        app = create_app(self.writer, options, token=settings.token,
                         max_body_bytes=settings.max_body_bytes,
                         acknowledge=settings.acknowledge, pool=self.pool)
        self.stats: ReceiverStats = app.state.stats
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        self._server = uvicorn.Server(uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="tracegrade-receiver", daemon=True)

    def start(self, timeout: float = 10.0) -> BackgroundReceiver:
        """Start serving; returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the receiver did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish in-flight requests, write what is queued, and stop.

        Raises:
            SpansNotWritten: received spans were still unwritten after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        self._server.should_exit = True
        self._thread.join(timeout)
        try:
            _finish_writing(self.writer, self.stats, self.acknowledge,
                           max(deadline - time.monotonic(), 0))
        finally:
            if self.pool is not None:
                self.pool.close()

    def __enter__(self) -> BackgroundReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
