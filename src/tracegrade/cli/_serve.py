"""``tracegrade serve``."""

from __future__ import annotations

import signal

import click

from tracegrade.cli._common import EXIT_INTERRUPTED, AppContext, fail, pass_app
from tracegrade.config import Config
from tracegrade.ingest import default_workers
from tracegrade.server import (
    ServerConfigError,
    ServerSettings,
    SpansNotWritten,
    Terminated,
    listen,
    serve,
)
from tracegrade.server._receiver import DEFAULT_MAX_BODY_BYTES
from tracegrade.server._serve import TOKEN_ENV
from tracegrade.sources.receiver import DEFAULT_HOST, DEFAULT_PORT, OtlpReceiverConfig

EXIT_TERMINATED = 128 + signal.SIGTERM
"""A second SIGTERM gave up on unwritten spans: 143, as shells report SIGTERM, the way
``EXIT_INTERRUPTED`` (130 = 128 + SIGINT) reports a second Ctrl-C."""


@click.command("serve")
@click.option("--host", default=None,
              help=f"Address to listen on. [default: the otlp source's, else {DEFAULT_HOST}]")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help=f"Port. [default: the otlp source's, else {DEFAULT_PORT}]")
@click.option("--token", default=None, envvar=TOKEN_ENV, show_envvar=True,
              help="Bearer token every request must carry; required on any address other "
                   "than loopback.")
@click.option("--ack", "acknowledge", type=click.Choice(["stored", "queued"]), default=None,
              help="Answer exporters once spans are committed (stored: nothing acknowledged "
                   "is lost) or once queued (faster). [default: the otlp source's, else stored]")
@click.option("--source", "source_name", default=None,
              help="Store spans under this source name. [default: the configured otlp "
                   "source, else otlp]")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Processes that share the mapping of each request (0 maps in a thread of "
                   "the receiver). [default: one per CPU, at most 4, when there are 2 or more]")
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_BODY_BYTES,
              help="Refuse (413) a request body larger than this many bytes, as sent or once "
                   "decompressed, as soon as it is known to be larger. "
                   f"[default: {DEFAULT_MAX_BODY_BYTES // 2**20} MiB "
                   f"({DEFAULT_MAX_BODY_BYTES})]")
@pass_app
def serve_command(app: AppContext, host: str | None, port: int | None, token: str | None,
                  acknowledge: str | None, source_name: str | None,
                  workers: int | None = None,
                  max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
    """Receive spans live over OTLP/HTTP and write them to the store.

    Point any OpenTelemetry exporter (or the Collector's otlphttp exporter) at
    http://HOST:PORT: it accepts POST /v1/traces and the Langfuse SDK's
    /api/public/otel/v1/traces, protobuf or JSON, gzip or not. Spans are
    mapped like imported files (OpenInference and GenAI conventions) and
    written in batches; a span that cannot be mapped is reported back to the
    exporter as a partial success. Listens on 127.0.0.1 unless told otherwise,
    and any other address needs a token.

    Stop it with Ctrl-C or SIGTERM (exit 0): it first writes the spans it has
    received. A second Ctrl-C or SIGTERM gives up on them, says how many were
    not written, and exits 130 (Ctrl-C) or 143 (SIGTERM).
    """
    config = app.config()
    given = {"token": token, "host": host, "port": port, "acknowledge": acknowledge}
    receiver = _receiver(config, source_name, [key for key, value in given.items()
                                               if value is not None])
    configured_token = receiver.token.get_secret_value() if receiver and receiver.token else None
    settings = ServerSettings(
        host=host or (receiver.host if receiver else DEFAULT_HOST),
        port=port if port is not None else (receiver.port if receiver else DEFAULT_PORT),
        token=token or configured_token,
        acknowledge="queued" if (acknowledge or (receiver.acknowledge if receiver else ""))
        == "queued" else "stored",
        workers=workers if workers is not None else
        (default_workers() if default_workers() > 1 else 0),
        max_body_bytes=max_body_bytes,
    )
    name = source_name or (receiver.name if receiver else "otlp")
    try:
        sock = listen(settings)
    except ServerConfigError as error:
        fail(str(error))
    with app.open_store(config) as store:
        shown = f"[{settings.host}]" if ":" in settings.host else settings.host
        app.err_console.print(f"Receiving OTLP/HTTP traces on http://{shown}:"
                              f"{sock.getsockname()[1]}/v1/traces as source {name!r} "
                              "(Ctrl-C stops)", highlight=False)
        try:
            serve(store, config.mapping(name), settings, sock=sock)
        except SpansNotWritten as error:  # a second Ctrl-C or SIGTERM gave up on them
            fail(str(error), EXIT_TERMINATED if error.given_up_by == signal.SIGTERM
                 else EXIT_INTERRUPTED)
        except (KeyboardInterrupt, Terminated):  # raised again once shut down and flushed
            app.err_console.print("Stopped.")  # how a receiver ends: exit 0


def _receiver(config: Config, name: str | None, overridden: list[str]
              ) -> OtlpReceiverConfig | None:
    receivers = [s for s in config.sources if isinstance(s, OtlpReceiverConfig)]
    chosen = next((r for r in receivers if r.name == name), None) if name else \
        (receivers[0] if receivers else None)
    if chosen is not None:
        config.require_sources([chosen.name], overridden)
    return chosen
