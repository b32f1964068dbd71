"""A judge whose endpoint answers nothing stops being asked; its spans wait for the next run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import make_span
from tests.fakes.openai_server import (
    Content,
    FakeJudge,
    QuotaExceeded,
    ServerError,
    Sleep,
    Step,
    running_fake,
    verdict,
)
from tests.llm.helpers import judge_graders, judge_settings, llm_judge, verdict_rows
from tracegrade.cli import cli
from tracegrade.config import SamplingConfig
from tracegrade.grading import grade
from tracegrade.llm import JudgeError
from tracegrade.store import Store, open_store

SPANS = 40
FEW = 12
"""Spans for the tests that ask one question at a time."""
CONCURRENCY = 4
DEFAULT_THRESHOLD = 5
"""Spans in a row that get no answer before a judge is no longer asked, unless configured."""

FREE_GRADER = {"name": "says_answer", "type": "contains", "applies_to": {"kind": "llm"},
               "value": "answer"}


@pytest.fixture
def local_store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'breaker.db'}") as opened:
        yield opened


def store_spans(store: Store, count: int) -> None:
    store.upsert_spans(make_span(i) for i in range(count))


@pytest.mark.parametrize(("failure", "judge", "last_error"), [
    (ServerError(503), {"max_retries": 3}, "answered 503"),
    (Sleep(0.5), {"timeout_s": 0.05, "max_retries": 1}, "did not answer within 0.05 s"),
], ids=["503", "timeout"])
def test_a_dead_endpoint_is_asked_for_a_few_spans_and_every_span_waits_for_the_next_run(
        local_store: Store, fake: FakeJudge, failure: Step, judge: dict[str, Any],
        last_error: str) -> None:
    store_spans(local_store, SPANS)
    fake.script(*[failure] * (SPANS * 10))  # every request, whatever the run does
    graders = judge_graders(fake, llm_judge(), FREE_GRADER, max_concurrency=CONCURRENCY, **judge)
    with pytest.raises(JudgeError) as stopped:
        grade(local_store, graders, SamplingConfig(), page_size=10)
    attempts = judge["max_retries"] + 1
    assert fake.requests <= (DEFAULT_THRESHOLD + CONCURRENCY) * attempts, \
        "a dead endpoint is not asked about every span"
    message = str(stopped.value)
    assert "'default'" in message and fake.base_url in message and last_error in message
    assert f"{SPANS} spans" in message and "next run" in message
    assert verdict_rows(local_store) == [], "no verdict, not even an error, from a dead judge"
    assert len(verdict_rows(local_store, "says_answer")) == SPANS, "the other graders finish"
    (run,) = local_store.recent_runs(1, "grade")
    assert run["counts"]["deferred"] == {"answers": SPANS}

    with running_fake() as healthy:
        # The timeout is no part of the graders' version: the same spans are asked again.
        later = grade(local_store, judge_graders(healthy, llm_judge(), FREE_GRADER,
                                                 **{**judge, "timeout_s": 5.0}),
                      SamplingConfig(), page_size=10)
    assert later.outcomes == {"answers": {"pass": SPANS}} and not later.deferred
    assert healthy.requests == SPANS


def test_spans_that_fail_twice_then_succeed_never_stop_the_judge(local_store: Store,
                                                                 fake: FakeJudge) -> None:
    """Failed attempts that a retry recovers say the endpoint works: they count for nothing."""
    store_spans(local_store, FEW)
    fake.script(*[ServerError(503), ServerError(502), Content(verdict())] * FEW)
    graders = judge_graders(fake, max_concurrency=1, max_retries=3, max_consecutive_failures=2)
    summary = grade(local_store, graders, SamplingConfig(), page_size=5)
    assert summary.outcomes == {"answers": {"pass": FEW}} and not summary.deferred
    assert fake.requests == 3 * FEW


def test_an_answer_between_spans_without_one_restarts_the_count(local_store: Store,
                                                                fake: FakeJudge) -> None:
    # Every other span gets no answer through its two attempts; the span after it gets one.
    store_spans(local_store, FEW)
    fake.script(*[ServerError(503), ServerError(503), Content(verdict())] * (FEW // 2))
    graders = judge_graders(fake, max_concurrency=1, max_retries=1, max_consecutive_failures=2)
    summary = grade(local_store, graders, SamplingConfig(), page_size=5)
    assert summary.outcomes == {"answers": {"pass": FEW // 2}}
    assert summary.deferred == {"answers": FEW // 2}
    assert fake.requests == 3 * FEW // 2


def test_the_number_of_spans_in_a_row_is_configurable(local_store: Store,
                                                      fake: FakeJudge) -> None:
    store_spans(local_store, FEW)
    fake.script(*[ServerError(500)] * (FEW * 2))
    graders = judge_graders(fake, max_concurrency=1, max_retries=0, max_consecutive_failures=3)
    with pytest.raises(JudgeError, match=rf"3 spans in a row.*answered 500.*; {FEW} spans"):
        grade(local_store, graders, SamplingConfig())
    assert fake.requests == 3
    never = judge_graders(fake, max_concurrency=1, max_retries=0, max_consecutive_failures=None)
    assert grade(local_store, never, SamplingConfig()).deferred == {"answers": FEW}
    assert fake.requests == 3 + FEW


def test_grade_exits_as_for_an_exhausted_quota_naming_the_judge_and_the_spans_left(
        workspace: Path, fake: FakeJudge) -> None:
    url = f"sqlite:///{workspace / 'store.db'}"
    with open_store(url) as store:
        store_spans(store, FEW)
    (workspace / "tracegrade.yaml").write_text(yaml.safe_dump({
        "store": url, "judges": {"default": judge_settings(fake, max_concurrency=1)},
        "graders": [llm_judge()]}))
    fake.script(QuotaExceeded())
    out_of_quota = CliRunner().invoke(cli, ["grade"])
    assert "out of quota" in out_of_quota.stderr
    fake.script(*[ServerError(503)] * 100)
    dead = CliRunner().invoke(cli, ["grade"])
    assert dead.exit_code == out_of_quota.exit_code != 0
    message = dead.stderr.strip()  # the progress bar leaves a blank line behind
    assert message.startswith("Error: LLM judge: judge 'default'") and "\n" not in message
    assert fake.base_url in message and "answered 503" in message
    assert f"{FEW} spans" in message and "test-key" not in message
    assert fake.requests == 1 + DEFAULT_THRESHOLD * 4


def test_grade_in_json_still_prints_what_the_stopped_run_did(workspace: Path,
                                                             fake: FakeJudge) -> None:
    """A script reading `grade --format json` gets the summary (deferred spans, verdicts kept)
    on stdout beside exit 2 and the one-line error on stderr."""
    url = f"sqlite:///{workspace / 'store.db'}"
    with open_store(url) as store:
        store_spans(store, FEW)
    (workspace / "tracegrade.yaml").write_text(yaml.safe_dump({
        "store": url, "judges": {"default": judge_settings(fake, max_concurrency=1)},
        "graders": [llm_judge()]}))
    fake.script(*[ServerError(503)] * 100)
    result = CliRunner().invoke(cli, ["grade", "--format", "json"])
    assert result.exit_code == 2
    summary = json.loads(result.stdout)
    assert summary["error"].startswith("LLM judge: judge 'default'")
    assert summary["verdicts_written"] == 0 and summary["deferred"] == {"answers": FEW}
    assert summary["spans_seen"] == FEW
