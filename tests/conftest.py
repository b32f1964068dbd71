"""Shared fixtures: a temporary workspace per test and a store on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.fakes.openai_server import FakeJudge, running_fake
from tracegrade._compiled import pure_python_requested, stale_extensions
from tracegrade.spans import Span, SpanKind
from tracegrade.store import Store, open_store

POSTGRES_URL = os.environ.get("TRACEGRADE_TEST_POSTGRES_URL")
NOT_RUN = (
    "PostgreSQL store tests NOT RUN: set TRACEGRADE_TEST_POSTGRES_URL "
    "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) to run them"
)


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("TRACEGRADE_REQUIRE_POSTGRES") and not POSTGRES_URL:
        raise pytest.UsageError("TRACEGRADE_REQUIRE_POSTGRES is set but "
                                "TRACEGRADE_TEST_POSTGRES_URL is not")
    stale = [] if pure_python_requested() else stale_extensions()
    if stale:  # the tests would run the last build, not the code being tested
        raise pytest.UsageError(f"compiled {', '.join(stale)} older than the source: rebuild "
                                "with `make venv` (or `pip install -e .`), or set "
                                "TRACEGRADE_PURE_PYTHON=1")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not POSTGRES_URL:
        terminalreporter.write_line(NOT_RUN, yellow=True, bold=True)


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in its own empty directory with its own HOME."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("TRACEGRADE_CONFIG", "TRACEGRADE_STORE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def wall_clock(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The test module's ``NOW`` set to the moment this test starts.

    The pull tests place rows minutes before now, inside or outside the overlap window; a
    module-level ``datetime.now()`` is read at collection, and a long run reaches a test more
    than the window's 15 minutes later (a CI run under load failed six pull tests so).
    """
    now = datetime.now(tz=UTC)
    monkeypatch.setattr(request.module, "NOW", now)
    return now


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL into a fresh PostgreSQL schema, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip(NOT_RUN)
    schema = f"tg_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, workspace: Path) -> str:
    """A store URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{workspace / 'store' / 'tracegrade.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open, migrated store on each backend."""
    with open_store(store_url) as opened:
        yield opened


BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)


def make_span(index: int = 0, **fields: Any) -> Span:
    """A valid span with sensible defaults; any field can be overridden."""
    start = fields.pop("start_time", BASE_TIME + timedelta(seconds=index))
    values: dict[str, Any] = {
        "source": "test",
        "span_id": f"span-{index:06d}",
        "trace_id": f"trace-{index // 3:06d}",
        "name": "ChatCompletion",
        "kind": SpanKind.LLM,
        "start_time": start,
        "end_time": start + timedelta(milliseconds=800),
        "input": {"messages": [{"role": "user", "content": f"question {index}"}]},
        "output": {"messages": [{"role": "assistant", "content": f"answer {index}"}]},
        "release": "r1",
    }
    values.update(fields)
    return Span(**values)


def processes_running(argument: Path) -> list[int]:
    """Processes whose command line holds ``argument`` (a forked worker keeps its parent's)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(argument).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


_SLOW_GRADER = """\
import time

def check(span):
    time.sleep(0.002)
    return True
"""


def slow_grader_command(workspace: Path, url: str, *args: str
                        ) -> tuple[list[str], dict[str, str]]:
    """``tracegrade ARGS`` and its environment, to run in ``workspace`` on the store at ``url``
    graded by one python grader that takes 2 ms a span (so that a test can kill it mid-run)."""
    (workspace / "slow_grader.py").write_text(_SLOW_GRADER)
    (workspace / "tracegrade.yaml").write_text(
        f"store: {url}\ngraders:\n  - {{name: slow, type: python, function: slow_grader:check}}\n")
    env = {**os.environ, "PYTHONPATH": str(workspace)}
    return [sys.executable, "-m", "tracegrade", *args], env


@dataclass(frozen=True)
class KilledGrade:
    """A ``tracegrade grade`` killed with SIGKILL after it committed some verdicts."""

    url: str
    command: list[str]
    env: dict[str, str]
    pid: int
    kept: int
    """Verdicts in the store after the kill."""


def kill_a_grade_mid_run(workspace: Path, spans: int = 6000) -> KilledGrade:
    """Store ``spans`` spans, start grading them slowly in a subprocess and kill it with
    SIGKILL once its first verdicts are committed (asserting the kill landed mid-run)."""
    url = f"sqlite:///{workspace / 'kill.db'}"
    with open_store(url) as store:
        store.upsert_spans(make_span(i) for i in range(spans))
    command, env = slow_grader_command(workspace, url, "grade", "--format", "json")
    process = subprocess.Popen(command, cwd=workspace, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    with open_store(url) as store:
        deadline = time.monotonic() + 60
        while store.count_verdicts() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        kept = store.count_verdicts()
    assert 0 < kept < spans, "the kill must land mid-run for this test to mean anything"
    return KilledGrade(url, command, env, process.pid, kept)


@pytest.fixture
def fake() -> Iterator[FakeJudge]:
    """A fake OpenAI-compatible judge endpoint on 127.0.0.1 (the judge tests' server)."""
    with running_fake() as judge:
        yield judge
