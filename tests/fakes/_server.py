"""A real HTTP server on 127.0.0.1 (a free port, a background thread) for fake services.

A fake is a function from :class:`FakeRequest` to :class:`FakeResponse`. Between the socket and
that function sits a fault plan: a test queues faults for a path (an HTTP status with headers,
a connection reset, a response slower than the client's timeout, a body cut off mid-way) and
the next matching requests get them instead of (or on top of) the fake's answer.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops connections when a client opens dozens at once.
    request_queue_size = 128
    daemon_threads = True


@dataclass
class FakeRequest:
    """A request as the fake sees it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def param(self, name: str) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty)."""
        return orjson.loads(self.body) if self.body else None


@dataclass
class FakeResponse:
    """What the fake answers."""

    status: int = 200
    body: Any = None
    """A JSON value, or raw ``bytes``/``str``."""
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        """The body bytes and their content type."""
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode(), self.headers.get("Content-Type", "text/plain")
        return orjson.dumps(self.body), "application/json"


# -- faults ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """Answer with this status (and headers, body) instead of the fake's answer."""

    code: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True)
class Reset:
    """Close the connection with a TCP reset before answering."""


@dataclass(frozen=True)
class Slow:
    """Answer normally, but only after ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Truncate:
    """Answer with the full Content-Length but send only part of the body, then close."""

    fraction: float = 0.5


@dataclass(frozen=True)
class Trickle:
    """Send the headers at once, then the body one byte every ``interval`` seconds."""

    interval: float


Fault = Status | Reset | Slow | Truncate | Trickle


class FaultPlan:
    """Faults queued per path prefix, each used once, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: list[tuple[str, str | None, Fault]] = []
        self._let_through = 0
        self.fired: list[tuple[str, Fault]] = []

    def add(self, path_prefix: str, *faults: Fault, method: str | None = None,
            after: int = 0) -> None:
        """Queue faults for the next requests whose path starts with ``path_prefix``.

        Args:
            path_prefix: Which requests the faults hit.
            faults: One per request, in order.
            method: Only requests with this method.
            after: Let this many matching requests through untouched first.
        """
        with self._lock:
            self._let_through = after
            self._queued.extend((path_prefix, method, fault) for fault in faults)

    def take(self, method: str, path: str) -> Fault | None:
        """The next fault for this request, if one is queued."""
        with self._lock:
            for index, (prefix, wanted_method, fault) in enumerate(self._queued):
                if path.startswith(prefix) and wanted_method in (None, method):
                    if self._let_through:
                        self._let_through -= 1
                        return None
                    del self._queued[index]
                    self.fired.append((path, fault))
                    return fault
        return None

    @property
    def pending(self) -> int:
        """Faults not used yet."""
        with self._lock:
            return len(self._queued)


App = Callable[[FakeRequest], FakeResponse]


class LoopbackServer:
    """Serves ``app`` on 127.0.0.1 at a free port until :meth:`stop`."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.faults = FaultPlan()
        self.requests: list[FakeRequest] = []
        self.crashes: list[str] = []
        """Tracebacks of requests the fake itself failed on (fixtures assert there are none)."""
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LoopbackServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def record(self, request: FakeRequest) -> None:
        """Keep a request for the test to inspect."""
        with self._lock:
            self.requests.append(request)

    def requests_to(self, path_prefix: str) -> list[FakeRequest]:
        """The requests received for a path."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]


def _handler_for(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            self._handle()

        def do_POST(self) -> None:  # noqa: N802
            self._handle()

        def do_PUT(self) -> None:  # noqa: N802
            self._handle()

        def do_DELETE(self) -> None:  # noqa: N802
            self._handle()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = FakeRequest(
                method=self.command, path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()}, body=body)
            server.record(request)
            fault = server.faults.take(request.method, request.path)
            if isinstance(fault, Reset):
                self._reset()
                return
            if isinstance(fault, Slow):
                time.sleep(fault.seconds)
            if isinstance(fault, Status):
                response = FakeResponse(fault.code, fault.body, dict(fault.headers))
            else:
                try:
                    response = server.app(request)
                except Exception as error:  # a bug in the fake: visible, not a dropped socket
                    server.crashes.append(traceback.format_exc())
                    response = FakeResponse(500, f"the fake crashed: {error!r}")
            if isinstance(fault, Trickle):
                self._trickle(response, fault.interval)
                return
            self._send(response, fault.fraction if isinstance(fault, Truncate) else None)

        def _trickle(self, response: FakeResponse, interval: float) -> None:
            content, content_type = response.encoded()
            self.close_connection = True
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.flush()
                for offset in range(len(content)):
                    time.sleep(interval)
                    self.wfile.write(content[offset:offset + 1])
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _send(self, response: FakeResponse, truncate: float | None) -> None:
            content, content_type = response.encoded()
            try:
                self.send_response(response.status)
                headers = {"Content-Type": content_type, **response.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if truncate is None:
                    self.wfile.write(content)
                    return
                self.wfile.write(content[:int(len(content) * truncate)])
                self.wfile.flush()
                self.close_connection = True
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _reset(self) -> None:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

    return Handler
