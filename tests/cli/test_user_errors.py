"""User mistakes at the command line: one line that says what to fix, an exit code CI can use.

Each test here reproduces a defect a review found: a traceback, a silent wrong result, or a
message that did not say what was wrong.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, text

from tests.cli.test_cli import otlp_line, write_traces
from tests.conftest import make_span, slow_grader_command
from tracegrade.cli import cli
from tracegrade.store import VerdictRow, open_store
from tracegrade.store import _schema as t


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def assert_one_line_error(result: Result, *fragments: str, code: int = 2) -> str:
    """The command failed with ``code`` and one ``Error:`` line holding every fragment."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"raised {result.exception!r} instead of a one-line error")
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def a_store(path: Path, spans: int = 3) -> str:
    url = f"sqlite:///{path}"
    with open_store(url) as store:
        store.upsert_spans(make_span(i) for i in range(spans))
    return url


# -- 1a. a store file that is not a database, or is damaged ---------------------------------------


def test_store_file_that_is_not_a_database(workspace: Path) -> None:
    (workspace / "some.jsonl").write_text(otlp_line("00f067aa0ba902b7") + "\n")
    result = invoke("--store", "sqlite:///some.jsonl", "import", "some.jsonl")
    assert_one_line_error(result, "some.jsonl", "not a SQLite database")


def test_damaged_store(workspace: Path) -> None:
    a_store(workspace / "good.db", spans=300)
    (workspace / "trunc.db").write_bytes((workspace / "good.db").read_bytes()[:5000])
    result = invoke("--store", "sqlite:///trunc.db", "report")
    assert_one_line_error(result, "trunc.db", "damaged", "malformed")


# -- 1b. a store migrated by a newer tracegrade ----------------------------------------------------


def test_store_from_a_newer_tracegrade(workspace: Path) -> None:
    url = a_store(workspace / "newer.db")
    with open_store(url) as store, store.engine.begin() as conn:
        conn.execute(text("update alembic_version set version_num = 'ffffffffffff'"))
    result = invoke("--store", url, "report")
    assert_one_line_error(result, "newer.db", "newer tracegrade", "upgrade")


# -- 2. a relative SQLite path in a config file is relative to that file --------------------------


def test_relative_sqlite_store_in_a_config_file_follows_the_file(workspace: Path) -> None:
    (workspace / "v").mkdir()
    (workspace / "v" / "tracegrade.yaml").write_text("store: sqlite:///t.db\n")
    a_store(workspace / "v" / "t.db")
    stats = invoke("--config", "v/tracegrade.yaml", "stats", "--format", "json")
    assert stats.exit_code == 0, stats.output
    assert sum(row["spans"] for row in orjson.loads(stats.stdout)) == 3
    assert not (workspace / "t.db").exists()


def test_store_option_and_environment_stay_relative_to_the_current_directory(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workspace / "v").mkdir()
    (workspace / "v" / "tracegrade.yaml").write_text("store: sqlite:///t.db\n")
    traces = write_traces(workspace / "t.jsonl", [otlp_line("00f067aa0ba902b7")])
    invoke("--config", "v/tracegrade.yaml", "--store", "sqlite:///cwd.db", "import", str(traces))
    assert (workspace / "cwd.db").exists()
    monkeypatch.setenv("TRACEGRADE_STORE", "sqlite:///env.db")
    invoke("--config", "v/tracegrade.yaml", "import", str(traces))
    assert (workspace / "env.db").exists()
    assert not (workspace / "v" / "t.db").exists()


# -- 3. read-only commands never create an empty store --------------------------------------------


@pytest.mark.parametrize("command", [
    ["report"], ["regressions"], ["stats"], ["releases"], ["calibrate"], ["drift", "golden"],
    ["labels", "queue", "g"], ["dataset", "list"], ["dataset", "export", "golden"],
    ["dataset", "stale", "golden"], ["export"],
])
def test_read_only_command_without_a_store(workspace: Path, command: list[str]) -> None:
    result = invoke(*command)
    assert_one_line_error(result, "no store at .tracegrade/tracegrade.db", "tracegrade import")
    assert not (workspace / ".tracegrade").exists()


def test_read_only_command_names_the_missing_store_of_the_config(workspace: Path) -> None:
    Path("tracegrade.yaml").write_text("store: sqlite:///data/x.db\n")
    assert_one_line_error(invoke("stats"), "no store at data/x.db")
    assert not (workspace / "data").exists()


@pytest.mark.parametrize("args", [
    ["--store", "sqlite:///afile/x.db", "import", "t.jsonl"],
    ["--store", "sqlite:///s.db", "report", "--format", "markdown", "-o", "afile/r.md"],
], ids=["store", "report"])
def test_a_path_through_a_file_is_one_line(workspace: Path, args: list[str]) -> None:
    (workspace / "afile").write_text("not a directory")
    (workspace / "t.jsonl").write_text(otlp_line("00f067aa0ba902b7") + "\n")
    a_store(workspace / "s.db")
    result = invoke(*args)
    assert_one_line_error(result, "afile")


@pytest.mark.parametrize("args", [
    ["calibrate", "--release", "r9"],
    ["drift", "golden", "--release", "r9"],
    ["dataset", "stale", "golden", "--release", "r9"],
    ["dataset", "promote", "golden", "--failing", "g", "--release", "r9"],
    ["labels", "queue", "g", "--release", "r9"],
], ids=["calibrate", "drift", "stale", "promote", "queue"])
def test_a_mistyped_release_is_named_with_the_real_ones(workspace: Path,
                                                        args: list[str]) -> None:
    a_store(workspace / "s.db")  # spans of release r1
    assert invoke("--store", "sqlite:///s.db", "dataset", "create", "golden").exit_code == 0
    result = invoke("--store", "sqlite:///s.db", *args)
    assert_one_line_error(result, "no spans of release 'r9' in the store",
                          "releases in order: r1")


@pytest.mark.parametrize("command", ["report", "regressions"])
def test_a_mistyped_environment_is_named_with_the_real_ones(workspace: Path,
                                                            command: str) -> None:
    """An empty report for `--environment prdo` read as "nothing to worry about"."""
    with open_store(f"sqlite:///{workspace / 's.db'}") as store:
        store.upsert_spans(make_span(i, environment="production") for i in range(3))
    result = invoke("--store", "sqlite:///s.db", command, "--environment", "prdo")
    assert_one_line_error(result, "no spans of environment 'prdo' in the store",
                          "environments: production")


def test_a_store_another_process_keeps_locked_is_a_one_line_error(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long write elsewhere (an open sqlite3 shell in a transaction) gave a traceback and
    exit 1, the code for "regressed"."""
    import sqlite3

    from tracegrade.store import _store

    a_store(workspace / "s.db")
    (workspace / "tracegrade.yaml").write_text(
        "store: sqlite:///s.db\ngraders:\n  - {name: ok, type: status_ok}\n")
    monkeypatch.setattr(_store, "BUSY_TIMEOUT_MS", 200)
    holder = sqlite3.connect(workspace / "s.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = invoke("grade")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_one_line_error(result, "stayed locked by another process", "nothing was lost")


def test_a_store_that_cannot_be_written_says_the_directory_must_be_writable(
        workspace: Path) -> None:
    from sqlalchemy.exc import OperationalError

    from tracegrade.cli._common import user_error

    a_store(workspace / "s.db")
    with open_store(f"sqlite:///file:{workspace / 's.db'}?mode=ro&uri=true",
                    migrate=False) as store, pytest.raises(OperationalError) as raised:
        store.upsert_spans([make_span(99)])
    message = user_error(raised.value, "sqlite:///s.db")
    assert message is not None and "cannot be written" in message
    assert "directory must be writable" in message


# -- 4. in-memory stores are refused at the command line -----------------------------------------


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:"])
def test_in_memory_store_is_refused(workspace: Path, url: str) -> None:
    traces = write_traces(workspace / "t.jsonl", [otlp_line("00f067aa0ba902b7")])
    result = invoke("--store", url, "import", str(traces))
    assert_one_line_error(result, "in-memory", "sqlite:///path")


# -- 5. init --format json -----------------------------------------------------------------------


def test_init_json_output(workspace: Path) -> None:
    result = invoke("init", "--format", "json")
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert written["config"] == "tracegrade.yaml"
    assert written["next"] == ["tracegrade import FILE...", "tracegrade grade"]
    assert Path("tracegrade.yaml").exists()


# -- 6. Ctrl-C -----------------------------------------------------------------------------------


def test_interrupt_exits_130_with_one_line(workspace: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    import tracegrade.cli._data as data

    monkeypatch.setattr(data, "import_files", interrupted)
    traces = write_traces(workspace / "t.jsonl", [otlp_line("00f067aa0ba902b7")])
    assert_one_line_error(invoke("import", str(traces)), "interrupted", code=130)


def test_ctrl_c_during_grade_exits_130_and_records_the_run(tmp_path: Path) -> None:
    url = a_store(tmp_path / "kill.db", spans=6000)
    command, env = slow_grader_command(tmp_path, url, "grade")
    # Slower after the first page (2,000 spans) is committed, so that however late the signal
    # comes on a loaded machine the run cannot have finished first (it would exit 0).
    (tmp_path / "slow_grader.py").write_text(
        "import time\n\ncalls = 0\n\n\ndef check(span):\n    global calls\n"
        "    calls += 1\n    time.sleep(0.002 if calls <= 2000 else 0.05)\n    return True\n")
    # SIGINT as a terminal gives it: a test run started in the background (CI, `cmd &`)
    # inherits it ignored, and Python then installs no KeyboardInterrupt handler.
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    with open_store(url) as store:
        deadline = time.monotonic() + 60
        while store.count_verdicts() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=60)
        finally:
            process.kill()  # no-op once it has exited; else it ignored the signal
        with store.engine.connect() as conn:
            statuses = conn.execute(select(t.runs.c.status)).scalars().all()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr
    assert stderr.strip().splitlines()[-1] == "Error: interrupted"
    assert statuses == ["interrupted"]


# -- 7. spans without a release ------------------------------------------------------------------


def test_spans_without_a_release_show_as_none_in_tables(workspace: Path) -> None:
    Path("tracegrade.yaml").write_text(
        "graders:\n  - {name: ok, type: status_ok}\n")
    line = json.loads(otlp_line("00f067aa0ba902b7"))
    line["resourceSpans"][0]["resource"]["attributes"] = []
    traces = write_traces(workspace / "t.jsonl", [json.dumps(line)])
    assert invoke("import", "--grade", str(traces)).exit_code == 0
    for command in (["report"], ["releases"], ["stats"], ["report", "--format", "markdown"]):
        shown = invoke(*command)
        assert shown.exit_code == 0, shown.output
        assert "None" not in shown.stdout and "(none)" in shown.stdout, shown.stdout
    assert orjson.loads(invoke("report", "--format", "json").stdout)[0]["release"] is None
    assert orjson.loads(invoke("releases", "--format", "json").stdout)[0]["release"] is None


# -- 7b. regressions never compare backwards -------------------------------------------------------


@pytest.mark.parametrize(("named", "said"), [
    (["--baseline", "r2"], "no release after 'r2' to compare with it"),
    (["--candidate", "r1"], "no release before 'r1' to compare it with"),
    (["--baseline", "r2", "--candidate", "r1"], "candidate must come after the baseline"),
])
def test_regressions_refuse_a_candidate_before_its_baseline(workspace: Path, named: list[str],
                                                              said: str) -> None:
    url = a_store(workspace / "two.db", spans=0)
    spans = [make_span(i, release="r1" if i < 100 else "r2") for i in range(200)]
    with open_store(url) as store:
        store.upsert_spans(spans)
        store.insert_verdicts([VerdictRow(source="test", span_id=span.span_id, grader="g",
                                          grader_version="v", outcome="pass", reason="",
                                          inclusion_probability=1.0, run_id="r")
                               for span in spans])
    assert_one_line_error(invoke("--store", url, "regressions", *named), said,
                          "releases in order: r1, r2")


# -- 8. an unknown grader parameter is named ------------------------------------------------------


def test_unknown_grader_parameter_is_named(workspace: Path) -> None:
    Path("tracegrade.yaml").write_text(
        "graders:\n  - {name: lat, type: max_latency_ms, max_mss: 5}\n")
    line = assert_one_line_error(invoke("grade"), "max_mss")
    assert line == "Error: graders[0] (lat).max_mss: unknown key (did you mean max_ms?)"


# -- 9. messages that were several lines, or a raw regex ------------------------------------------


def test_invalid_jsonpath_is_one_line(workspace: Path) -> None:
    Path("tracegrade.yaml").write_text(
        "graders:\n  - {name: p, type: field_present, path: '$.[foo'}\n")
    assert_one_line_error(invoke("grade"), "graders[0] (p)", "invalid JSONPath '$.[foo'")


def test_non_ascii_grader_name_says_what_is_allowed(workspace: Path) -> None:
    Path("tracegrade.yaml").write_text("graders:\n  - {name: café, type: status_ok}\n",
                                       encoding="utf-8")
    line = assert_one_line_error(invoke("grade"), "graders[0] (café).name", "letters")
    assert "[A-Za-z" not in line


def test_refused_postgresql_connection_is_one_line(workspace: Path) -> None:
    result = invoke("--store", "postgresql+psycopg://u@127.0.0.1:1/db", "report")
    assert_one_line_error(result, "cannot open store", "Connection refused")


def test_no_traceback_in_a_real_process(workspace: Path) -> None:
    (workspace / "bad.db").write_text("not a database\n")
    completed = subprocess.run(
        [sys.executable, "-m", "tracegrade", "--store", "sqlite:///bad.db", "stats"],
        capture_output=True, text=True, check=False)
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1



def test_ctrl_c_stops_serve_with_exit_0(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt  # what uvicorn raises again after its graceful shutdown

    import tracegrade.cli._serve as serve_cli

    monkeypatch.setattr(serve_cli, "serve", interrupted)
    result = invoke("serve", "--port", "0", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines()[-1] == "Stopped."


# -- an unset ${VAR} fails only the commands that use its entry -----------------------------------


def test_unset_judge_key_blocks_only_the_judge(workspace: Path) -> None:
    """A team's config names two judges; CI has only one provider's key."""
    (workspace / "tracegrade.yaml").write_text(
        "sources:\n"
        "  - {name: lf, type: langfuse, public_key: pk, secret_key: \"${TG_UNSET_LF_KEY}\"}\n"
        "graders:\n"
        "  - {name: has_status, type: field_present, target: output, path: $.order_status}\n"
        "  - {name: tone, type: llm_judge, judge: claude, rubric: polite}\n"
        "judges:\n"
        "  claude: {provider: anthropic, model: claude-haiku-4-5,"
        " api_key: \"${TG_UNSET_ANTHROPIC_KEY}\"}\n", encoding="utf-8")
    traces = write_traces(workspace / "t.jsonl", [otlp_line("00f067aa0ba902b7")])
    assert invoke("import", str(traces)).exit_code == 0
    assert invoke("stats").exit_code == 0
    graded = invoke("grade", "--grader", "has_status", "--format", "json")
    assert graded.exit_code == 0, graded.output
    assert json.loads(graded.stdout)["outcomes"] == {"has_status": {"pass": 1}}
    assert invoke("report").exit_code == 0
    assert_one_line_error(invoke("grade"), "judges.claude.api_key",
                          "environment variable TG_UNSET_ANTHROPIC_KEY is not set")
    assert_one_line_error(invoke("pull", "lf"), "sources[0].secret_key", "TG_UNSET_LF_KEY")
    assert_one_line_error(invoke("export"), "sources[0].secret_key", "TG_UNSET_LF_KEY")


def test_watch_with_an_unset_judge_key_pulls_nothing(workspace: Path) -> None:
    write_traces(workspace / "t.jsonl", [otlp_line("00f067aa0ba902b7")])
    (workspace / "tracegrade.yaml").write_text(
        "sources:\n  - {name: files, type: otlp_file, paths: [t.jsonl]}\n"
        "graders:\n  - {name: tone, type: llm_judge, judge: claude, rubric: polite}\n"
        "judges:\n  claude: {provider: anthropic, model: claude-haiku-4-5,"
        " api_key: \"${TG_UNSET_ANTHROPIC_KEY}\"}\n", encoding="utf-8")
    assert_one_line_error(invoke("watch", "--once"), "judges.claude.api_key",
                          "TG_UNSET_ANTHROPIC_KEY")
    with open_store("sqlite:///.tracegrade/tracegrade.db") as store:
        assert store.count_spans() == 0
