"""The HTTP side of tracegrade: the live OTLP/HTTP trace receiver behind ``tracegrade serve``."""

from tracegrade.server._receiver import TRACE_PATHS, ReceiverStats, create_app
from tracegrade.server._serve import (
    BackgroundReceiver,
    ServerConfigError,
    ServerSettings,
    SpansNotWritten,
    Terminated,
    check_binding,
    listen,
    serve,
)
from tracegrade.server._writer import BatchWriter, WriterOverloaded

__all__ = [
    "BackgroundReceiver",
    "TRACE_PATHS",
    "BatchWriter",
    "ReceiverStats",
    "ServerConfigError",
    "ServerSettings",
    "SpansNotWritten",
    "Terminated",
    "WriterOverloaded",
    "check_binding",
    "create_app",
    "listen",
    "serve",
]
