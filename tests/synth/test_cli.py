"""``tracegrade init``: the starter, ``--from-code`` options and errors, and the dry run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import yaml
from click.testing import CliRunner, Result

from tests.fakes.fixtures import langfuse_source
from tests.fakes.langfuse import FakeLangfuse, observation
from tracegrade.cli import cli
from tracegrade.cli._init import starter_config
from tracegrade.config import load_config
from tracegrade.demo.generate import APP_SOURCE
from tracegrade.spans import utc_now
from tracegrade.synth import dry_run, synthesize


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_plain_init_still_writes_the_starter(workspace: Path) -> None:
    assert invoke("init").exit_code == 0
    assert Path("tracegrade.yaml").read_text(encoding="utf-8") == starter_config()
    again = invoke("init")
    assert again.exit_code == 2 and "already exists" in again.output


def test_from_code_refuses_to_overwrite_and_force_keeps_store_and_sources(
        workspace: Path) -> None:
    Path("tracegrade.yaml").write_text(
        "store: sqlite:///kept.db\nsources:\n  - {name: exported, type: otlp_file, "
        "paths: [nothing/*.jsonl]}\n", encoding="utf-8")
    refused = invoke("init", "--from-code", str(APP_SOURCE))
    assert refused.exit_code == 2
    assert refused.output.strip().count("\n") == 0 and "use --force" in refused.output
    forced = invoke("init", "--from-code", str(APP_SOURCE), "--force", "--no-judges")
    assert forced.exit_code == 0, forced.output
    config = load_config()
    assert config.store == "sqlite:///kept.db"
    assert Path("tracegrade.yaml.bak").read_text(encoding="utf-8").startswith(
        "store: sqlite:///kept.db\n")
    assert [s.name for s in config.sources] == ["exported"]
    # The carried-over source matched no file: the dry run says so instead of failing.
    assert "source exported: no file matches" in forced.output


def test_user_mistakes_are_one_line_errors(workspace: Path) -> None:
    missing = invoke("init", "--from-code", "no/such/app")
    assert missing.exit_code == 2
    assert missing.output == "Error: no/such/app: no such file or directory\n"
    no_traces = invoke("init", "--from-code", str(APP_SOURCE), "--traces", "none.jsonl")
    assert no_traces.exit_code == 2
    assert no_traces.output == "Error: none.jsonl: no such trace file\n"


def test_json_output_says_where_each_grader_comes_from(workspace: Path) -> None:
    result = invoke("init", "--from-code", str(APP_SOURCE), "--no-judges", "--format", "json")
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    graders = {g["name"]: g for g in report["graders"]}
    grader = graders["lookup_order_returns_order_status"]
    assert grader["origin"] == "support_agent.py:86"
    assert grader["config"] == {"name": "lookup_order_returns_order_status",
                                "type": "field_present",
                                "applies_to": {"kind": "tool", "name": "lookup_order"},
                                "target": "output", "path": "$.order_status"}
    assert "tool spans named lookup_order" in grader["matches"]
    assert graders["reply_never_reveal_internal_order_notes"]["active"] is False
    assert report["integrations"] == ["OpenInference instrumentors over OpenTelemetry"]
    assert report["dry_run"] is None


def test_langfuse_source_writes_a_commented_source_block_and_loads(workspace: Path) -> None:
    assert invoke("init", "--from-code", str(APP_SOURCE), "--source", "langfuse",
                  "--no-judges").exit_code == 0
    text = Path("tracegrade.yaml").read_text(encoding="utf-8")
    assert "# synth-source: langfuse" in text
    assert "#  - name: langfuse\n#    type: langfuse\n" in text
    assert load_config().sources == []


def test_dry_run_pulls_a_remote_source_and_flags_graders_that_match_nothing(
        workspace: Path, fake_langfuse: FakeLangfuse) -> None:
    start = utc_now() - timedelta(hours=2)
    rows = []
    for index in range(0, 30, 2):
        generation = observation(index, start + timedelta(minutes=index))
        tool = observation(index + 1, start + timedelta(minutes=index, seconds=1), kind="TOOL",
                           trace_id=generation["traceId"], parent_id=generation["id"])
        rows += [generation, tool]
    fake_langfuse.add(*rows)
    config = Path("tracegrade.yaml")
    config.write_text(yaml.safe_dump({"sources": [langfuse_source(fake_langfuse)]}),
                      encoding="utf-8")
    synthesis = synthesize(APP_SOURCE, "langfuse", judges=False)
    report = dry_run(config, synthesis.proposals, sample_size=100)
    assert report.problems == []
    assert report.spans == 30
    trials = {trial.name: trial for trial in report.trials}
    assert trials["lookup_order_returns_order_status"].pass_rate() == 1.0
    assert trials["llm_status_ok"].matched == 15
    # The fake's tool answers carry no order_id, and its traces have no agent span.
    assert trials["lookup_order_returns_order_id"].flag is not None
    assert trials["lookup_order_returns_order_id"].pass_rate() == 0.0
    assert {t.name for t in report.unmatched} == {"reply_script_latin",
                                                  "reply_under_120_words"}
    assert report.span_names["tool"] == {"lookup_order": 15}
