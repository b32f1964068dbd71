"""Done when: graders proposed from the demo's source catch the planted order_status rename."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from tracegrade.analysis import find_regressions
from tracegrade.cli import cli
from tracegrade.config import load_config
from tracegrade.demo.generate import APP_SOURCE, BUNDLED_DATA, generate
from tracegrade.graders import build_graders
from tracegrade.grading import grade
from tracegrade.ingest import import_files
from tracegrade.store import open_store
from tracegrade.synth import read_markers

DEMO_APP = APP_SOURCE.parent


def test_graders_from_the_demo_source_catch_the_order_status_rename(workspace: Path) -> None:
    result = CliRunner().invoke(cli, ["init", "--from-code", str(DEMO_APP), "--no-judges",
                                      "--no-dry-run"])
    assert result.exit_code == 0, result.output
    text = Path("tracegrade.yaml").read_text(encoding="utf-8")
    config = load_config()
    # No hand-written grader: every live grader is one the synthesis proposed and marked.
    marked = {m.name for m in read_markers(text).graders if m.active}
    assert {g.name for g in config.graders} == marked
    assert "lookup_order_returns_order_status" in marked

    with open_store(config.store) as store:
        import_files(store, [BUNDLED_DATA], config.mapping("demo"))
        grade(store, build_graders(config.graders), config.sampling)
        report = find_regressions(store)
    regressed = {f.grader for f in report.regressed if f.slice is None}
    assert "lookup_order_returns_order_status" in regressed
    # The tool's other fields survived the release; their graders must not cry wolf.
    for field in ("order_id", "carrier", "eta"):
        assert f"lookup_order_returns_{field}" not in regressed


def test_dry_run_on_the_demo_traces_matches_every_grader(workspace: Path) -> None:
    traces = workspace / "traces.otlp.jsonl"
    generate(traces, traces_per_release=150)  # the demo's traces, fewer of them
    result = CliRunner().invoke(cli, ["init", "--from-code", str(DEMO_APP), "--no-judges",
                                      "--traces", str(traces), "--sample", "300",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    dry_run = report["dry_run"]
    assert dry_run["sources"] == ["traces"] and dry_run["spans"] > 1000
    assert dry_run["unmatched"] == []
    trials = {trial["name"]: trial for trial in dry_run["graders"]}
    assert trials["lookup_order_returns_order_id"]["pass_rate"] == 1.0
    # The sample spans both releases: the renamed field passes in the first release only.
    order_status = trials["lookup_order_returns_order_status"]
    assert 0.2 < order_status["pass_rate"] < 0.8
    by_release = {release: rate["pass_rate"] for release, rate in
                  order_status["by_release"].items()}
    assert by_release == {"2026.11.1": 1.0, "2026.11.2": 0.0}
    assert all(trial["ran"] for trial in trials.values())
    # The dry run used a throwaway store: the workspace's own store holds nothing.
    with open_store(load_config().store) as store:
        assert store.count_spans() == 0
        assert store.count_verdicts() == 0
