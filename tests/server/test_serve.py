"""``tracegrade serve`` as a process: its limits, and stopping it (Ctrl-C or SIGTERM) with spans
it acknowledged written first, or reported lost."""

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
from click.testing import CliRunner

from tests.server.test_receiver import json_span, otlp_json
from tracegrade.cli import cli
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
     "--ack", "queued", *sys.argv[1:]])
"""
# Long enough for a receiver that is stopping to have stopped; a hang fails instead of blocking.
STOPPED_WITHIN = 60


@pytest.fixture
def gated_serve(workspace: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The receiver, started, with one span acknowledged and its write held."""
    process, url = start_serve(workspace)
    try:
        # A generous timeout: a receiver just started on a busy CI machine answers its first
        # request slowly (httpx's default of 5 s made this fixture fail there once).
        response = httpx.post(f"{url}/v1/traces", headers={
            "Content-Type": "application/json"},
            content=orjson.dumps(otlp_json(json_span("b7ad6b7169203331"))),
            timeout=STOPPED_WITHIN)
        assert response.status_code == 200  # acknowledged, not yet written
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def start_serve(workspace: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``tracegrade serve ARGS`` started (its writes held), and the URL it listens on."""
    (workspace / "serve.py").write_text(GATED_SERVE)
    process = subprocess.Popen([sys.executable, "serve.py", *args], cwd=workspace,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=default_stop_signals)
    url = re.search(r"http://[\d.]+:\d+", read_until(process, "/v1/traces"))
    if url is None:
        process.kill()
        process.wait()
    assert url is not None
    return process, url.group()


def default_stop_signals() -> None:
    # The signals' default dispositions: a test run started in the background (as CI may be)
    # inherits SIGINT ignored, and uvicorn re-raises the signal it caught once it has stopped.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_DFL)


def stopped(process: subprocess.Popen[str]) -> tuple[int, str]:
    """The receiver's exit code and the rest of its stderr, once it has exited."""
    try:
        _, rest = process.communicate(timeout=STOPPED_WITHIN)
    except subprocess.TimeoutExpired:
        process.kill()
        _, rest = process.communicate()
        pytest.fail(f"the receiver was still running {STOPPED_WITHIN}s later: {rest}")
    return process.returncode, rest


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


@pytest.mark.parametrize(("first", "second", "code"), [
    (signal.SIGINT, signal.SIGINT, 130),
    (signal.SIGTERM, signal.SIGTERM, 143),
    (signal.SIGINT, signal.SIGTERM, 143),
    (signal.SIGTERM, signal.SIGINT, 130),
], ids=["int-int", "term-term", "int-term", "term-int"])
def test_a_second_stop_signal_gives_up_names_the_spans_and_exits_128_plus_it(
        workspace: Path, gated_serve: tuple[subprocess.Popen[str], str],
        first: signal.Signals, second: signal.Signals, code: int) -> None:
    process, _ = gated_serve
    process.send_signal(first)  # a service manager's stop, or Ctrl-C
    read_until(process, "before stopping")
    process.send_signal(second)  # stop waiting for the store
    returncode, rest = stopped(process)
    assert returncode == code, rest
    assert "Error: 1 acknowledged span was not written" in rest
    assert spans_stored(workspace) == 0


def test_sigterm_stops_once_acknowledged_spans_are_written(
        workspace: Path, gated_serve: tuple[subprocess.Popen[str], str]) -> None:
    process, _ = gated_serve
    process.send_signal(signal.SIGTERM)
    assert "spans to write before stopping: 1" in read_until(process, "before stopping")
    (workspace / "open").touch()
    returncode, rest = stopped(process)
    assert returncode == 0 and "Stopped." in rest, rest
    assert spans_stored(workspace) == 1


def test_max_body_bytes_refuses_larger_bodies(workspace: Path) -> None:
    process, url = start_serve(workspace, "--max-body-bytes", "1000")
    try:
        (workspace / "open").touch()  # writes go through at once
        small = orjson.dumps(otlp_json(json_span("b7ad6b7169203331")))
        large = orjson.dumps(otlp_json(*(json_span(f"{n:016x}") for n in range(1, 20))))
        assert len(small) <= 1000 < len(large)
        headers = {"Content-Type": "application/json"}
        statuses = [httpx.post(f"{url}/v1/traces", headers=headers, content=body,
                               timeout=STOPPED_WITHIN).status_code
                    for body in (small, large)]
        assert statuses == [200, 413]
    finally:
        process.send_signal(signal.SIGINT)
        stopped(process)
    assert spans_stored(workspace) == 1


@pytest.mark.parametrize("value", ["0", "-5", "lots"])
def test_max_body_bytes_must_be_a_positive_number(workspace: Path, value: str) -> None:
    result = CliRunner().invoke(cli, ["--store", "sqlite:///r.db", "serve", "--port", "0",
                                      "--max-body-bytes", value])
    assert result.exit_code == 2
    assert "Invalid value for '--max-body-bytes'" in result.stderr
    assert not (workspace / "r.db").exists()


def test_max_body_bytes_help_shows_the_default() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"], terminal_width=200)
    line = next(line for line in result.output.splitlines() if "--max-body-bytes" in line)
    assert "[default: 64 MiB (67108864)]" in line
