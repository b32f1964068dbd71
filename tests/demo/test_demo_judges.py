"""The demo's LLM-judge graders: off (with one line on how to enable them) unless configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.openai_server import running_fake, verdict
from tests.llm.helpers import verdict_rows
from tracegrade.analysis import FindingStatus
from tracegrade.cli._demo import judge_line
from tracegrade.demo.run import ENABLE_JUDGES_HINT, demo_config, run_demo
from tracegrade.store import open_store

JUDGE_GRADERS = {"reply_grounded", "reply_follows_instructions"}


def test_without_a_judge_the_demo_config_has_no_judge_graders(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACEGRADE_DEMO_JUDGE_MODEL", raising=False)
    offline = demo_config("sqlite://")
    assert not JUDGE_GRADERS & {g.name for g in offline.graders} and offline.judges == {}
    enabled = demo_config("sqlite://", judges=True)
    assert JUDGE_GRADERS <= {g.name for g in enabled.graders}
    assert "\n" not in ENABLE_JUDGES_HINT and "TRACEGRADE_DEMO_JUDGE_MODEL" in ENABLE_JUDGES_HINT


def test_with_a_judge_endpoint_the_demo_grades_its_traces_with_it(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with running_fake() as fake:
        fake.answer = lambda _body: verdict("pass", "Backed by the lookup result.")
        monkeypatch.setenv("TRACEGRADE_DEMO_JUDGE_MODEL", "gpt-4.1-mini")
        monkeypatch.setenv("TRACEGRADE_DEMO_JUDGE_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        result = run_demo(workspace / "demo")
        prompts = [body["messages"][-1]["content"] for body in fake.bodies()]

    assert result.judges_run
    judged = {g: c for g, c in result.graded.outcomes.items() if g in JUDGE_GRADERS}
    assert set(judged) == JUDGE_GRADERS
    assert sum(sum(c.values()) for c in judged.values()) == len(prompts) == fake.requests
    assert 150 < len(prompts) < 500  # a 5% sample of ~6,000 replies, per grader
    grounded = [p for p in prompts if p.startswith("Criterion: the reply is grounded")]
    with_lookup = [p for p in grounded if "lookup_order(" in p]
    assert len(with_lookup) > 0.9 * len(grounded)  # a few traces failed before the lookup
    with open_store(f"sqlite:///{workspace / 'demo' / 'tracegrade.db'}") as store:
        row = verdict_rows(store, "reply_grounded")[0]
    assert row["details"]["model"] == "gpt-4.1-mini" and row["reason"].startswith("Backed")
    findings = {f.grader: f.status for f in result.regressions.findings}
    # A judge that passes everything cannot regress; ~75 verdicts a release may be too few
    # to call "unchanged" at the demo's 5-point effect of interest.
    assert {findings[g] for g in JUDGE_GRADERS} <= {FindingStatus.UNCHANGED,
                                                     FindingStatus.INSUFFICIENT}
    assert FindingStatus.REGRESSED in set(findings.values())
    assert judge_line(result).startswith("LLM judges: $")
