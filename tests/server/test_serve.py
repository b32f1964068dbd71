"""Stopping ``tracegrade serve``: spans it acknowledged are written first, or reported lost."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.server.test_receiver import json_span, otlp_json
from tracegrade.store import open_store

# `tracegrade serve --ack queued` whose store writes wait until a file named `open` exists.
GATED_SERVE = """\
import sys, time
from pathlib import Path
from tracegrade.cli import cli
from tracegrade.store import Store

write = Store.write_prepared

def gated(self, prepared):
    while not Path("open").exists():
        time.sleep(0.01)
    return write(self, prepared)

Store.write_prepared = gated
cli(["--store", "sqlite:///r.db", "serve", "--port", "0", "--workers", "0",
     "--ack", "queued"])
"""


@pytest.fixture
def gated_serve(workspace: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The receiver, started, with one span acknowledged and its write held."""
    (workspace / "serve.py").write_text(GATED_SERVE)
    # SIGINT's default disposition: a test run started in the background (as CI may be)
    # inherits SIGINT ignored, and uvicorn re-raises the signal it caught once it has stopped.
    process = subprocess.Popen([sys.executable, "serve.py"], cwd=workspace,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert process.stderr is not None
        url = re.search(r"http://[\d.]+:\d+", read_until(process, "/v1/traces"))
        assert url is not None
        response = httpx.post(f"{url.group()}/v1/traces", headers={
            "Content-Type": "application/json"},
            content=orjson.dumps(otlp_json(json_span("b7ad6b7169203331"))))
        assert response.status_code == 200  # acknowledged, not yet written
        yield process, url.group()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def read_until(process: subprocess.Popen[str], text: str) -> str:
    """The receiver's stderr up to the line holding ``text`` (all of it if none does)."""
    assert process.stderr is not None
    seen = ""
    while text not in seen and (line := process.stderr.readline()):
        seen += line
    return seen


def spans_stored(workspace: Path) -> int:
    with open_store(f"sqlite:///{workspace / 'r.db'}") as store:
        return store.count_spans()


def test_stopping_waits_until_acknowledged_spans_are_written(
        workspace: Path, gated_serve: tuple[subprocess.Popen[str], str]) -> None:
    process, _ = gated_serve
    process.send_signal(signal.SIGINT)
    assert "spans to write before stopping: 1" in read_until(process, "before stopping")
    (workspace / "open").touch()  # the store takes the write: stopping can finish
    assert process.stderr is not None
    rest = process.stderr.read()
    assert process.wait() == 0 and "Stopped." in rest
    assert spans_stored(workspace) == 1


def test_giving_up_on_acknowledged_spans_names_them_and_exits_non_zero(
        workspace: Path, gated_serve: tuple[subprocess.Popen[str], str]) -> None:
    process, _ = gated_serve
    process.send_signal(signal.SIGINT)
    read_until(process, "before stopping")
    process.send_signal(signal.SIGINT)  # a second Ctrl-C: stop waiting for the store
    assert process.stderr is not None
    rest = process.stderr.read()
    assert process.wait() == 130
    assert "Error: 1 acknowledged span was not written" in rest
    assert spans_stored(workspace) == 0
