"""The command line as a user meets it: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from tracegrade.cli import cli


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def otlp_line(span_id: str, release: str = "r1", output: str = '{"order_status": "ok"}') -> str:
    span = {
        "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": span_id, "name": "lookup_order",
        "kind": 1, "startTimeUnixNano": "1762000000000000000",
        "endTimeUnixNano": "1762000000100000000",
        "attributes": [
            {"key": "openinference.span.kind", "value": {"stringValue": "TOOL"}},
            {"key": "tool.name", "value": {"stringValue": "lookup_order"}},
            {"key": "output.value", "value": {"stringValue": output}},
        ],
    }
    request = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.version", "value": {"stringValue": release}}]},
        "scopeSpans": [{"spans": [span]}],
    }]}
    return json.dumps(request)


def write_traces(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_import_reports_bad_records_and_imports_the_rest(workspace: Path) -> None:
    traces = write_traces(workspace / "t.jsonl", [
        otlp_line("00f067aa0ba902b7"), "{not json", otlp_line("00f067aa0ba902b8")])
    result = CliRunner().invoke(cli, ["import", str(traces)])
    assert result.exit_code == 0
    assert "Imported 2 spans" in result.stdout
    assert "1 malformed records skipped" in result.stdout
    assert f"{traces}:2" in result.stderr
    strict = CliRunner().invoke(cli, ["import", "--strict", str(traces)])
    assert strict.exit_code == 1
    assert "0 new, 0 updated, 2 unchanged" in strict.stdout


def test_import_json_output(workspace: Path) -> None:
    traces = write_traces(workspace / "t.jsonl", [otlp_line("00f067aa0ba902b7")])
    result = run("import", "--format", "json", str(traces))
    summary = orjson.loads(result.stdout)
    assert (summary["inserted"], summary["bad_records"]) == (1, 0)


def test_missing_file_is_a_one_line_error(workspace: Path) -> None:
    result = CliRunner().invoke(cli, ["import", "nope.jsonl"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "Error: nope.jsonl: no such file"


def test_no_traceback_for_user_mistakes_in_a_real_process(workspace: Path) -> None:
    Path("tracegrade.yaml").write_text("graders:\n  - {name: g, type: no_such_type}\n")
    completed = subprocess.run([sys.executable, "-m", "tracegrade", "grade"],
                               capture_output=True, text=True, check=False)
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert completed.stderr.startswith("Error: graders[0] (g): unknown grader type 'no_such_type'")
    assert len(completed.stderr.strip().splitlines()) == 1


def test_bad_grader_parameter_names_the_key(workspace: Path) -> None:
    Path("tracegrade.yaml").write_text(
        "graders:\n  - {name: r, type: regex, applies_to: {kind: llm}}\n")
    result = CliRunner().invoke(cli, ["grade"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: graders[0] (r).pattern: Field required")


def test_grade_without_graders_says_what_to_do(workspace: Path) -> None:
    result = CliRunner().invoke(cli, ["grade"])
    assert result.exit_code == 2
    assert "no graders configured" in result.stderr


CONFIG = """
graders:
  - name: order_status_present
    type: field_present
    applies_to: {kind: tool, name: lookup_order}
    path: $.order_status
"""


def test_import_grade_report_regressions_end_to_end(workspace: Path) -> None:
    Path("tracegrade.yaml").write_text(CONFIG)
    lines = [otlp_line(f"{i:016x}", "r1") for i in range(1, 301)]
    lines += [otlp_line(f"{i:016x}", "r2", '{"status": "ok"}' if i % 2 else '{"order_status": 1}')
              for i in range(301, 601)]
    run("import", str(write_traces(workspace / "t.jsonl", lines)))
    graded = orjson.loads(run("grade", "--format", "json").stdout)
    assert graded["outcomes"] == {"order_status_present": {"pass": 450, "fail": 150}}
    assert orjson.loads(run("grade", "--format", "json").stdout)["verdicts_written"] == 0
    rates = orjson.loads(run("report", "--format", "json").stdout)
    assert [(r["release"], r["passed"], r["failed"]) for r in rates] == [
        ("r1", 300, 0), ("r2", 150, 150)]
    assert rates[1]["ci_low"] < 0.5 < rates[1]["ci_high"]
    stats = orjson.loads(run("stats", "--format", "json").stdout)
    assert sorted((s["release"], s["kind"], s["spans"]) for s in stats) == [
        ("r1", "tool", 300), ("r2", "tool", 300)]
    result = CliRunner().invoke(cli, ["regressions", "--format", "json"])
    assert result.exit_code == 1
    report = orjson.loads(result.stdout)
    assert (report["baseline"], report["candidate"]) == ("r1", "r2")
    assert report["findings"][0]["status"] == "regressed"
    table = CliRunner().invoke(cli, ["regressions"])
    assert "REGRESSED in r2 against r1: order_status_present (-50.0 pts)" in table.stdout


def test_init_writes_and_refuses_to_overwrite(workspace: Path) -> None:
    assert run("init").exit_code == 0
    assert Path("tracegrade.yaml").read_text().startswith("# tracegrade.yaml")
    again = CliRunner().invoke(cli, ["init"])
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_store_option_overrides_config(workspace: Path) -> None:
    traces = write_traces(workspace / "t.jsonl", [otlp_line("00f067aa0ba902b7")])
    run("--store", f"sqlite:///{workspace / 'other.db'}", "import", str(traces))
    assert (workspace / "other.db").exists()
    assert not (workspace / ".tracegrade").exists()


def test_import_reads_standard_input_gzipped_or_not(workspace: Path) -> None:
    lines = [otlp_line("00f067aa0ba902b7"), "{not json", otlp_line("00f067aa0ba902b8")]
    data = ("\n".join(lines) + "\n").encode()
    result = CliRunner().invoke(cli, ["import", "-", "--format", "json"],
                                input=gzip.compress(data))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["spans_read"] == 2 and summary["inserted"] == 2
    assert summary["problems"][0]["location"] == "<stdin>:2"
    again = CliRunner().invoke(cli, ["import", "-"], input=data)
    assert again.exit_code == 0, again.output
    assert "2 unchanged" in again.stdout and "<stdin>:2" in again.stderr
    twice = CliRunner().invoke(cli, ["import", "-", "-"], input=data)
    assert twice.exit_code == 2 and "can be given once" in twice.stderr


def test_import_from_standard_input_fails_cleanly(workspace: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    data = (otlp_line("00f067aa0ba902b7") + "\n").encode()
    missing = CliRunner().invoke(cli, ["import", "-", "nope.jsonl"], input=data)
    assert missing.exit_code == 2 and "nope.jsonl: no such file" in missing.stderr

    def disk_full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("tracegrade.cli._data.shutil.copyfileobj", disk_full)
    full = CliRunner().invoke(cli, ["import", "-"], input=data)
    assert full.exit_code == 2, full.output
    assert "No space left on device" in full.stderr and "TMPDIR" in full.stderr
    assert full.exception is None or isinstance(full.exception, SystemExit)
