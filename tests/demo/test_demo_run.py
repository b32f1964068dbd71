"""`tracegrade demo` shows the planted regressions and none of the noise."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from tracegrade.analysis import FindingStatus
from tracegrade.cli import cli
from tracegrade.demo.run import run_demo

PLANTED_OVERALL = {"order_status_present", "reply_finds_order", "llm_latency_3s"}
PLANTED_IN_SLICE = {"llm_status_ok": ["environment=production-eu"]}
"""A regression confined to ~2% of traffic: the grader's overall rate hides it."""
PLANTED = PLANTED_OVERALL | set(PLANTED_IN_SLICE)


def test_demo_finds_exactly_the_planted_regressions(workspace: Path) -> None:
    result = run_demo(workspace / "demo")
    assert result.imported.problem_count == 0
    assert result.imported.spans > 10_000
    findings = {f.grader: f for f in result.regressions.findings}
    assert {g for g, f in findings.items() if f.status is FindingStatus.REGRESSED} == PLANTED
    for grader in PLANTED_OVERALL:
        assert findings[grader].own_status is FindingStatus.REGRESSED
        assert findings[grader].diff_high is not None and findings[grader].diff_high < 0
    for grader, slices in PLANTED_IN_SLICE.items():
        assert findings[grader].own_status is FindingStatus.UNCHANGED
        assert [str(s.slice) for s in findings[grader].regressed_slices] == slices
    noise = set(findings) - PLANTED
    assert noise
    for grader in noise:
        assert findings[grader].status is FindingStatus.UNCHANGED
        assert findings[grader].regressed_slices == []
    assert (result.regressions.baseline, result.regressions.candidate) == (
        "2026.11.1", "2026.11.2")


def test_demo_command_prints_what_regressed(workspace: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--workspace", str(workspace / "d")])
    assert result.exit_code == 0, result.output
    summary = result.stdout.split("REGRESSED in", 1)[1]
    assert all(name in summary for name in PLANTED)
    assert "llm_status_ok (in environment=production-eu" in summary
    assert "reply_under_120_words" not in summary
    assert "llm_status_ok [environment=production-eu]" in result.stdout  # the slices table


def test_the_explore_hint_shows_what_the_demo_showed(workspace: Path) -> None:
    demo = CliRunner().invoke(cli, ["demo", "--workspace", "d", "--format", "json"])
    assert demo.exit_code == 0, demo.output
    shown = orjson.loads(demo.stdout)["regressions"]
    # The hint: the demo's own config, written to the workspace, pointed at its store.
    again = CliRunner().invoke(cli, ["--config", str(workspace / "d" / "tracegrade.yaml"),
                                     "regressions", "--format", "json"])
    assert again.exit_code == 1, again.output  # something regressed
    assert orjson.loads(again.stdout) == shown

