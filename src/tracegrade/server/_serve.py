"""Run the receiver with uvicorn, refusing an exposed address without a token."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from typing import Literal

import uvicorn

from tracegrade._gc import tune_for_service
from tracegrade.server._mapping import MappingPool
from tracegrade.server._receiver import ReceiverStats, create_app
from tracegrade.server._writer import BatchWriter
from tracegrade.sources._base import MappingOptions
from tracegrade.sources.receiver import DEFAULT_HOST, DEFAULT_PORT
from tracegrade.store import Store

TOKEN_ENV = "TRACEGRADE_SERVER_TOKEN"


class ServerConfigError(ValueError):
    """The receiver cannot start as configured (e.g. a public address without a token)."""


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
    """A socket bound to the settings' address, after checking it may be used.

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
    except OSError as error:
        raise ServerConfigError(f"cannot listen on {settings.host}:{settings.port}: "
                                f"{error.strerror or error}") from None
    return sock


def serve(store: Store, options: MappingOptions, settings: ServerSettings,
          *, sock: socket.socket | None = None) -> None:
    """Receive spans until interrupted (Ctrl-C), writing them to ``store``.

    Args:
        store: Where received spans go.
        options: How they are mapped (``options.source`` names their source).
        settings: Host, port, token.
        sock: An already bound socket (from :func:`listen`, or port 0 in tests); bound here
            from ``settings`` when not given.

    Raises:
        ServerConfigError: the address is not loopback and there is no token.
    """
    sock = sock or listen(settings)
    pool = _pool(settings, options, store)
    tune_for_service()
    writer = BatchWriter(store, max_batch_spans=settings.max_batch_spans)
    app = create_app(writer, options, token=settings.token,
                     acknowledge=settings.acknowledge, pool=pool)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                            access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        writer.close()
        if pool is not None:
            pool.close()


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
        app = create_app(self.writer, options, token=settings.token,
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
        """Finish in-flight requests, write what is queued, and stop."""
        self._server.should_exit = True
        self._thread.join(timeout)
        self.writer.close()
        if self.pool is not None:
            self.pool.close()

    def __enter__(self) -> BackgroundReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
