"""`tracegrade runs`: recorded runs, with a killed run told apart from a live one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select

from tests.conftest import kill_a_grade_mid_run, make_span
from tracegrade.cli import cli
from tracegrade.config import SamplingConfig, parse_config
from tracegrade.datasets import GoldenItem, add_items, create_dataset, replay
from tracegrade.datasets import function_target as target_of
from tracegrade.graders import build_graders
from tracegrade.grading import grade
from tracegrade.runs import list_runs, process_alive
from tracegrade.spans import utc_now
from tracegrade.store import Store, open_store
from tracegrade.store import _schema as t

HERE = socket.gethostname()


def add_run(store: Store, run_id: str, *, host: str | None = HERE, pid: int | None = None,
            started_ago: timedelta = timedelta(0), status: str = "running",
            command: str = "grade") -> None:
    """A run row as a process would have left it."""
    with store.engine.begin() as conn:
        conn.execute(insert(t.runs).values(
            run_id=run_id, command=command, started_at=utc_now() - started_ago, status=status,
            host=host, pid=pid))


@pytest.fixture
def gone_pid() -> int:
    """The id of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def young_process() -> Iterator[int]:
    """A live process started just now (its id stands for a reused one)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def test_start_run_records_this_host_and_process(store: Store) -> None:
    run_id = store.start_run("grade")
    with store.engine.connect() as conn:
        row = conn.execute(select(t.runs).where(t.runs.c.run_id == run_id)).one()
    assert (row.host, row.pid, row.status) == (HERE, os.getpid(), "running")
    [record] = list_runs(store)
    assert (record.status, record.checked, record.finished_at) == ("running", True, None)


def test_finished_runs_are_listed_newest_first_with_their_verdicts(store: Store) -> None:
    store.upsert_spans(make_span(i) for i in range(30))
    graders = build_graders(parse_config({"graders": [
        {"name": "ok", "type": "status_ok"}]}).graders)
    first = grade(store, graders, SamplingConfig(), grade_all=True)
    store.upsert_spans(make_span(i) for i in range(30, 42))
    second = grade(store, graders, SamplingConfig(), grade_all=True)
    records = list_runs(store)
    assert [r.run_id for r in records] == [second.run_id, first.run_id]
    assert [r.verdicts for r in records] == [12, 30]
    assert all(r.status == "finished" and r.duration_s is not None and r.duration_s >= 0
               for r in records)
    assert records[1].counts is not None
    assert list_runs(store, limit=1) == records[:1]
    assert list_runs(store, command="pull") == []


def test_a_running_run_whose_process_is_gone_is_killed(store: Store, gone_pid: int) -> None:
    add_run(store, "dead", pid=gone_pid, started_ago=timedelta(seconds=5))
    [record] = list_runs(store)
    assert (record.status, record.recorded_status, record.checked) == (
        "killed", "running", True)
    assert list_runs(store, status="killed") == [record]
    assert list_runs(store, status="running") == []


def test_a_reused_process_id_does_not_keep_a_dead_run_alive(store: Store,
                                                            young_process: int) -> None:
    assert process_alive(young_process, utc_now())
    add_run(store, "old", pid=young_process, started_ago=timedelta(hours=1))
    [record] = list_runs(store)
    assert record.status == "killed"


def test_a_live_run_stays_running(store: Store) -> None:
    add_run(store, "live", pid=os.getpid())
    [record] = list_runs(store)
    assert (record.status, record.checked) == ("running", True)


@pytest.mark.parametrize(("host", "pid"), [("another-machine", 1), (HERE, None), (None, None)])
def test_a_run_that_cannot_be_checked_is_shown_as_stored(store: Store, host: str | None,
                                                         pid: int | None) -> None:
    add_run(store, "elsewhere", host=host, pid=pid)
    [record] = list_runs(store)
    assert (record.status, record.checked) == ("running", False)


def test_a_finished_run_is_never_checked(store: Store, gone_pid: int) -> None:
    add_run(store, "done", pid=gone_pid, status="finished")
    [record] = list_runs(store)
    assert (record.status, record.checked) == ("finished", False)


def test_runs_command_json_and_table(store: Store, store_url: str, gone_pid: int) -> None:
    add_run(store, "killedrun", pid=gone_pid, started_ago=timedelta(minutes=3))
    add_run(store, "otherhost", host="ci-runner-7", pid=4242, command="pull")
    runner = CliRunner()
    result = runner.invoke(cli, ["--store", store_url, "runs", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = orjson.loads(result.stdout)
    assert [(r["run_id"], r["status"], r["checked"]) for r in rows] == [
        ("otherhost", "running", False), ("killedrun", "killed", True)]
    table = runner.invoke(cli, ["--store", store_url, "runs"])
    assert table.exit_code == 0, table.output
    assert "killed" in table.stdout and "not checked: another host" in table.stdout
    assert "run `tracegrade grade` to grade the rest" in " ".join(table.stderr.split())
    only = runner.invoke(cli, ["--store", store_url, "runs", "--command", "pull",
                               "--format", "json"])
    assert [r["run_id"] for r in orjson.loads(only.stdout)] == ["otherhost"]


def test_the_resume_advice_goes_once_a_later_grade_finished(store: Store, store_url: str,
                                                          gone_pid: int) -> None:
    add_run(store, "killedrun", pid=gone_pid, started_ago=timedelta(minutes=3))
    add_run(store, "resumed", status="finished", started_ago=timedelta(minutes=1))
    table = CliRunner().invoke(cli, ["--store", store_url, "runs"])
    assert table.exit_code == 0 and "killed" in table.stdout
    assert "to grade the rest" not in " ".join(table.stderr.split())


def test_runs_command_on_a_store_without_runs(store_url: str) -> None:
    with open_store(store_url):
        pass
    result = CliRunner().invoke(cli, ["--store", store_url, "runs"])
    assert result.exit_code == 0
    assert "No runs recorded yet" in result.stdout
    as_json = CliRunner().invoke(cli, ["--store", store_url, "runs", "--format", "json"])
    assert orjson.loads(as_json.stdout) == []


def test_a_grade_killed_with_sigkill_shows_as_killed_with_its_kept_verdicts(
        tmp_path: Path) -> None:
    killed = kill_a_grade_mid_run(tmp_path)
    with open_store(killed.url) as store:
        [record] = list_runs(store)
    assert (record.status, record.pid, record.verdicts) == ("killed", killed.pid, killed.kept)
    subprocess.run(killed.command, cwd=tmp_path, env=killed.env, capture_output=True,
                   check=True)
    with open_store(killed.url) as store:
        finished, again = list_runs(store)
    assert (finished.status, finished.verdicts) == ("finished", 6000 - killed.kept)
    assert again.run_id == record.run_id and again.status == "killed"


def test_a_replay_that_raises_records_how_it_ended(store: Store) -> None:
    store.upsert_spans([make_span(0, name="support_agent", span_id="src-1")])
    create_dataset(store, "gold")
    add_items(store, "gold", [GoldenItem(id="a", input="hello", expected_output="HELLO",
                                         source_span={"source": "test", "span_id": "src-1"})])
    target = target_of("tests.datasets.replay_targets:echo_upper")

    def broken_progress(_: int) -> None:
        raise RuntimeError("the progress bar broke")

    def interrupted_progress(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(RuntimeError):
        replay(store, "gold", "r1", target, [], progress=broken_progress)
    with pytest.raises(KeyboardInterrupt):
        replay(store, "gold", "r1", target, [], progress=interrupted_progress)
    summary = replay(store, "gold", "r1", target, [])
    statuses = [(r.run_id, r.status) for r in list_runs(store, command="replay")]
    assert [status for _, status in statuses] == ["finished", "interrupted", "failed"]
    assert statuses[0][0] == summary.run_id
