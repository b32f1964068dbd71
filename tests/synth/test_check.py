"""``tracegrade init --check``: graders whose source changed or vanished, code without a grader."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
from click.testing import CliRunner, Result

from tracegrade.cli import cli
from tracegrade.demo.generate import APP_SOURCE
from tracegrade.synth import check_config, read_markers


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def app_copy(workspace: Path) -> Path:
    """The demo app in the workspace, where the test can edit it."""
    app = workspace / "app"
    app.mkdir()
    shutil.copy(APP_SOURCE, app / "support_agent.py")
    return app


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_unchanged_code_passes_the_check(workspace: Path) -> None:
    app_copy(workspace)
    assert invoke("init", "--from-code", "app", "--no-judges").exit_code == 0
    result = invoke("init", "--check")
    assert result.exit_code == 0, result.output
    assert "keeps step with app" in result.output


def test_changed_vanished_and_uncovered_code_fail_the_check(workspace: Path) -> None:
    app = app_copy(workspace)
    assert invoke("init", "--from-code", "app", "--no-judges").exit_code == 0
    source = app / "support_agent.py"
    edit(source, '"order_status": record["state"]', '"status": record["state"]')
    edit(source, '"order_status": "not_found"', '"status": "not_found"')
    edit(source, "Keep replies under 120 words.", "Keep replies under 90 words.")
    edit(source, "timeout=5.0", "timeout=8.0")
    result = invoke("init", "--check", "--format", "json")
    assert result.exit_code == 1
    report = orjson.loads(result.stdout)
    drifts = {(d["status"], d["key"]): d for d in report["drifts"]}
    assert set(drifts) == {
        ("vanished", "tool:lookup_order:returns:order_status"),
        ("uncovered", "tool:lookup_order:returns:status"),
        ("changed", "prompt:reply:length_max_words"),
        ("changed", "tool:lookup_order:latency"),
    }
    assert drifts[("changed", "prompt:reply:length_max_words")]["grader"] == \
        "reply_under_120_words"
    assert "max_words=90" in drifts[("changed", "prompt:reply:length_max_words")]["detail"]
    assert drifts[("vanished", "tool:lookup_order:returns:order_status")]["grader"] == \
        "lookup_order_returns_order_status"
    assert drifts[("uncovered", "tool:lookup_order:returns:status")]["origin"] == \
        "support_agent.py:86"


def test_a_silenced_proposal_is_not_reported(workspace: Path) -> None:
    app = app_copy(workspace)
    assert invoke("init", "--from-code", "app", "--no-judges").exit_code == 0
    edit(app / "support_agent.py", '"eta": record.get("estimated_delivery"),',
         '"eta": record.get("estimated_delivery"),\n        "warehouse": record["warehouse"],')
    edit(app / "support_agent.py", '"eta": None}', '"eta": None, "warehouse": None}')
    report = check_config(Path("tracegrade.yaml"))
    assert [d.key for d in report.drifts] == ["tool:lookup_order:returns:warehouse"]
    with Path("tracegrade.yaml").open("a", encoding="utf-8") as config:
        config.write("# synth-ignore: tool:lookup_order:returns:warehouse\n")
    assert check_config(Path("tracegrade.yaml")).ok


def test_markers_are_read_back_with_the_graders_they_precede() -> None:
    text = (
        "# synth-from: src/app\n# synth-source: langfuse\n"
        "graders:\n"
        "  # Some reason.\n  # synth: tool:x:args abc123\n  - name: x_args_valid\n"
        "    type: tool_args_valid\n\n"
        "  # synth: prompt:reply:judge def456\n  # - name: reply_judge\n  #   type: llm_judge\n"
        "  # synth: orphan 000\n\n"
        "  - name: hand_written\n    type: status_ok\n"
        "# synth-ignore: tool:y:latency\n"
    )
    markers = read_markers(text)
    assert [(g.key, g.digest, g.name, g.active) for g in markers.graders] == [
        ("tool:x:args", "abc123", "x_args_valid", True),
        ("prompt:reply:judge", "def456", "reply_judge", False),
    ]
    assert markers.ignored == {"tool:y:latency"}
    assert (markers.code_path, markers.source) == ("src/app", "langfuse")


def test_check_without_a_config_or_code_path_is_a_one_line_error(workspace: Path) -> None:
    result = invoke("init", "--check")
    assert result.exit_code == 2
    assert result.output.startswith("Error: tracegrade.yaml: no such config file")
    Path("tracegrade.yaml").write_text("graders: []\n", encoding="utf-8")
    result = invoke("init", "--check")
    assert result.exit_code == 2
    assert "give --from-code PATH" in result.output


SPACED_APP = '''\
from openai import OpenAI
from pydantic import BaseModel

client = OpenAI()
SYSTEM = "Use 200 words or fewer.\\nKeep the summary under 50 words."


class Answer(BaseModel):
    summary: str


def answer(question: str):
    return client.chat.completions.parse(
        model="gpt-4o-mini", response_format=Answer,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
    )
'''


def test_check_passes_right_after_init_with_twin_rules_and_spaced_paths(
        workspace: Path) -> None:
    app = workspace / "my app"
    app.mkdir()
    (app / "bot copy.py").write_text(SPACED_APP, encoding="utf-8")
    assert invoke("init", "--from-code", "my app", "--no-judges").exit_code == 0
    markers = read_markers((workspace / "tracegrade.yaml").read_text(encoding="utf-8"))
    keys = [grader.key for grader in markers.graders]
    assert len(keys) == len(set(keys)) >= 4
    assert any("bot%20copy.py" in key for key in keys)
    result = invoke("init", "--check")
    assert result.exit_code == 0, result.output
