"""`tracegrade demo` shows the planted regressions and none of the noise."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tracegrade.analysis import FindingStatus
from tracegrade.cli import cli
from tracegrade.demo.run import run_demo

PLANTED = {"order_status_present", "reply_finds_order", "llm_latency_3s"}


def test_demo_finds_exactly_the_planted_regressions(workspace: Path) -> None:
    result = run_demo(workspace / "demo")
    assert result.imported.problem_count == 0
    assert result.imported.spans > 10_000
    statuses = {f.grader: f.status for f in result.regressions.findings}
    assert {g for g, s in statuses.items() if s is FindingStatus.REGRESSED} == PLANTED
    noise = set(statuses) - PLANTED
    assert noise and all(statuses[g] is FindingStatus.UNCHANGED for g in noise)
    assert (result.regressions.baseline, result.regressions.candidate) == (
        "2026.11.1", "2026.11.2")


def test_demo_command_prints_what_regressed(workspace: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--workspace", str(workspace / "d")])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("REGRESSED"))
    assert all(name in line for name in PLANTED)
    assert "reply_under_120_words" not in line
