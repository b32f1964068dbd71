"""Judge graders over whole runs: budget, cache, a killed run, limits, few-shot, trace scope."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_span
from tests.fakes.openai_server import FakeJudge, verdict
from tests.llm.helpers import (
    cache_size,
    judge_graders,
    judge_settings,
    llm_judge,
    use_virtual_time,
    verdict_rows,
)
from tracegrade.config import SamplingConfig
from tracegrade.grading import grade
from tracegrade.spans import SpanKind, utc_now
from tracegrade.store import Store, open_store
from tracegrade.store import _schema as t


def seed(store: Store, n: int) -> None:
    store.upsert_spans(make_span(i) for i in range(n))


# -- budget -----------------------------------------------------------------------------------

PRICED = {"prices": {"input": 100.0, "output": 100.0}, "max_tokens": 20}
"""$0.0001 a token: a call costs about a cent, and reserves about nine."""


def test_the_budget_stops_judge_calls_before_it_is_exceeded(store: Store,
                                                            fake: FakeJudge) -> None:
    seed(store, 20)
    graders = judge_graders(fake, **PRICED)
    summary = grade(store, graders, SamplingConfig(), budget=0.15)
    rows = verdict_rows(store)
    assert summary.budget_exhausted
    assert 0 < len(rows) < 20
    assert {row["outcome"] for row in rows} == {"pass"}, "a budget stop is not an error verdict"
    assert sum(row["cost"] for row in rows) <= 0.15
    assert summary.total_cost == pytest.approx(sum(row["cost"] for row in rows))
    assert fake.requests == len(rows), "no call is made past the budget"
    with store.engine.connect() as conn:
        status = conn.execute(t.runs.select().where(t.runs.c.run_id == summary.run_id)).one()
    assert status.status == "budget_exhausted"

    again = grade(store, graders, SamplingConfig())
    assert again.verdicts_written == 20 - len(rows) and not again.budget_exhausted
    assert fake.requests == 20


def test_a_judge_run_its_budget_stopped_raises_no_stored_probability(
        store: Store, fake: FakeJudge) -> None:
    # Raising the verdicts of rate 0.1 to 0.5 without the spans the budget left ungraded
    # under-counted: a Horvitz-Thompson count of 210 for 1,000 spans (994 before the raise).
    seed(store, 400)
    graders = judge_graders(fake, **PRICED)
    grade(store, graders, SamplingConfig(rate=0.1), page_size=100)
    stopped = grade(store, graders, SamplingConfig(rate=0.5), budget=0.15, page_size=100)
    assert stopped.budget_exhausted and stopped.reweighted == 0
    rows = verdict_rows(store)
    assert {row["inclusion_probability"] for row in rows} == {0.1, 0.5}

    finished = grade(store, graders, SamplingConfig(rate=0.5), page_size=100)
    assert not finished.budget_exhausted and finished.reweighted > 0
    rows = verdict_rows(store)
    assert {row["inclusion_probability"] for row in rows} == {0.5}
    assert 150 < len(rows) < 250  # the rate-0.5 sample, each span once


def test_a_budget_needs_a_price(store: Store, fake: FakeJudge) -> None:
    from tracegrade.llm import JudgeError

    seed(store, 2)
    graders = judge_graders(fake, model="llama3.1:8b")
    with pytest.raises(JudgeError, match="no price known for model 'llama3.1:8b'"):
        grade(store, graders, SamplingConfig(), budget=1.0)
    assert fake.requests == 0
    summary = grade(store, graders, SamplingConfig())  # without a budget it grades, unpriced
    assert summary.outcomes["answers"] == {"pass": 2} and summary.unpriced["answers"] == 2


# -- cache ------------------------------------------------------------------------------------


def test_re_grading_the_same_questions_is_answered_from_the_cache(store: Store,
                                                                 fake: FakeJudge) -> None:
    seed(store, 10)
    grade(store, judge_graders(fake), SamplingConfig())
    assert fake.requests == 10 and cache_size(store) == 10
    # A new version (it now also requires the span name) asks the very same questions.
    renamed = llm_judge(applies_to={"kind": "llm", "name": "ChatCompletion"})
    summary = grade(store, judge_graders(fake, renamed), SamplingConfig())
    assert summary.verdicts_written == 10 and summary.cached["answers"] == 10
    assert fake.requests == 10, "no question is asked twice"
    newest = [r for r in verdict_rows(store) if r["run_id"] == summary.run_id]
    assert all(r["details"]["cached"] and r["cost"] == 0.0 for r in newest)
    assert summary.total_cost == 0.0


def test_no_cache_asks_again_and_refreshes_the_cache(store: Store, fake: FakeJudge) -> None:
    seed(store, 10)
    grade(store, judge_graders(fake), SamplingConfig())
    fake.answer = lambda _body: verdict("fail", "Second opinion.")
    renamed = llm_judge(applies_to={"kind": "llm", "name": "ChatCompletion"})
    summary = grade(store, judge_graders(fake, renamed), SamplingConfig(), use_cache=False)
    assert fake.requests == 20 and summary.outcomes["answers"] == {"fail": 10}
    third = llm_judge(applies_to={"kind": "llm", "name": "Chat*"})
    cached = grade(store, judge_graders(fake, third), SamplingConfig())
    assert fake.requests == 20 and cached.outcomes["answers"] == {"fail": 10}


def test_a_killed_run_is_resumed_without_asking_any_question_twice(
        tmp_path: Path, fake: FakeJudge) -> None:
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    with open_store(url) as store:
        seed(store, 30)
    (tmp_path / "tracegrade.yaml").write_text(yaml.safe_dump({
        "store": url, "judges": {"default": judge_settings(fake, max_concurrency=4)},
        "graders": [llm_judge()]}))
    command = [sys.executable, "-m", "tracegrade", "grade", "--format", "json"]
    env = dict(os.environ)
    fake.hold_after(12)
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    with open_store(url) as store:
        deadline = time.monotonic() + 60
        while cache_size(store) < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert cache_size(store) == 12 and store.count_verdicts() == 0
    asked_before = fake.requests
    fake.release()

    finished = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                              check=True)
    assert '"verdicts_written": 30' in finished.stdout
    assert fake.requests - asked_before == 18, "the 12 paid answers came from the cache"
    assert len(fake.answered) == 30 and set(fake.answered.values()) == {1}


# -- limits -----------------------------------------------------------------------------------


def test_concurrency_never_exceeds_the_judge_limit(store: Store, fake: FakeJudge) -> None:
    seed(store, 40)
    gate = threading.Event()

    def answer_once_the_limit_is_in_flight(_body: dict[str, object]) -> str:
        # The first requests are held until four are in flight at once. The timeout only keeps
        # a limiter that never lets four through from hanging the test (which then fails on
        # max_in_flight); it opens the gate for every later request too.
        if fake.in_flight >= 4:
            gate.set()
        gate.wait(timeout=10)
        gate.set()
        return verdict()

    fake.answer = answer_once_the_limit_is_in_flight
    grade(store, judge_graders(fake, max_concurrency=4, timeout_s=30), SamplingConfig())
    assert fake.requests == 40
    assert fake.max_in_flight == 4


def test_requests_per_minute_stay_under_the_cap(store: Store, fake: FakeJudge,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    virtual = use_virtual_time(monkeypatch)
    seed(store, 12)
    grade(store, judge_graders(fake, requests_per_minute=600), SamplingConfig())  # 10 a second
    assert fake.requests == 12
    # A bucket of one request refilling at 10 a second: the first request goes at once, each
    # of the other 11 waits a tenth of a second for its turn. (Float rounding may add a wait
    # of 0.1 ms now and then: the bucket's shortest.)
    spacing = [wait for wait in virtual.waits if wait > 0.001]
    assert spacing == pytest.approx([0.1] * 11)
    assert sum(virtual.waits) == pytest.approx(1.1, abs=0.002)


# -- few-shot ---------------------------------------------------------------------------------


def add_label(store: Store, index: int, label: str, critique: str, split: str) -> int:
    with store.engine.begin() as conn:
        return int(conn.execute(t.labels.insert().values(
            source="test", span_id=f"span-{index:06d}", criterion="answers", label=label,
            critique=critique, labeler="ann", split=split, created_at=utc_now())
        ).inserted_primary_key[0])


def test_few_shot_examples_come_from_train_labels_only(store: Store, fake: FakeJudge) -> None:
    seed(store, 8)
    train = {add_label(store, 0, "fail", "TRAIN: dodges the question", "train"),
             add_label(store, 1, "pass", "TRAIN: answers it", "train"),
             add_label(store, 2, "fail", "TRAIN: wrong order", "train")}
    add_label(store, 3, "fail", "DEV: kept for tuning", "dev")
    add_label(store, 4, "pass", "TEST: kept for calibration", "test")
    add_label(store, 5, "pass", "", "train")  # no critique: not an example
    grade(store, judge_graders(fake, llm_judge(few_shot=2)), SamplingConfig())

    for body in fake.bodies():
        text = str(body["messages"])
        assert "DEV:" not in text and "TEST:" not in text
        assistant = [m["content"] for m in body["messages"] if m["role"] == "assistant"]
        assert len(assistant) == 2 and all("TRAIN:" in a for a in assistant)
    rows = {row["span_id"]: row for row in verdict_rows(store)}
    used = {i for row in rows.values() for i in row["details"]["few_shot_label_ids"]}
    assert used <= train and len(used) == 3
    first_two = rows["span-000005"]["details"]["few_shot_label_ids"]
    assert len(first_two) == 2
    own = rows["span-000000"]["details"]["few_shot_label_ids"]
    assert len(own) == 2 and min(train) not in own, "a span is never its own example"


# -- trace scope ------------------------------------------------------------------------------


def seed_trace(store: Store, trace: str, ended_ago: timedelta) -> None:
    end = utc_now() - ended_ago
    start = end - timedelta(seconds=3)
    common = {"trace_id": trace, "start_time": start, "end_time": end}
    store.upsert_spans([
        make_span(0, span_id=f"{trace}-root", kind=SpanKind.AGENT, name="support_agent",
                  input="Where is A1?", output="A1 ships Monday.", **common),
        make_span(1, span_id=f"{trace}-llm", parent_id=f"{trace}-root", **common),
        make_span(2, span_id=f"{trace}-tool", parent_id=f"{trace}-root", kind=SpanKind.TOOL,
                  name="lookup_order", input={"order_id": "A1"},
                  output={"order_status": f"shipped-{trace}"}, **common),
    ])


TRACE_JUDGE = llm_judge(
    "trace_grounded", scope="trace", quiet_seconds=60,
    rubric="Tools: {{ trace.tool_results }}\nReply: {{ span.output_text }}")


def test_trace_scope_grades_each_quiet_trace_once_on_its_root(store: Store,
                                                              fake: FakeJudge) -> None:
    seed_trace(store, "old", timedelta(hours=1))
    seed_trace(store, "live", timedelta(seconds=5))
    graders = judge_graders(fake, TRACE_JUDGE)
    summary = grade(store, graders, SamplingConfig())
    assert [row["span_id"] for row in verdict_rows(store, "trace_grounded")] == ["old-root"]
    assert summary.waiting == 1
    (body,) = fake.bodies()
    prompt = body["messages"][-1]["content"]
    assert '[{"order_status":"shipped-old"}]' in prompt and "A1 ships Monday." in prompt

    seed_trace(store, "live", timedelta(minutes=5))  # its pieces have stopped arriving
    later = grade(store, graders, SamplingConfig())
    assert later.verdicts_written == 1 and later.waiting == 0
    assert sorted(r["span_id"] for r in verdict_rows(store, "trace_grounded")) == [
        "live-root", "old-root"]


def test_a_higher_rate_raises_a_trace_judges_verdicts_on_roots_it_does_not_select(
        store: Store, fake: FakeJudge) -> None:
    # applies_to picks the trace's LLM spans; its verdict sits on the agent root, which the
    # raise tested with applies_to and skipped: probabilities stayed mixed {0.1, 0.5}.
    for trace in range(150):
        seed_trace(store, f"t{trace}", timedelta(hours=1))
    judge = llm_judge("trace_grounded", scope="trace", quiet_seconds=60,
                      rubric="Tools: {{ trace.tool_results }}\nReply: {{ span.output_text }}")
    graders = judge_graders(fake, judge)
    grade(store, graders, SamplingConfig(rate=0.1))
    raised = grade(store, graders, SamplingConfig(rate=0.5))
    rows = verdict_rows(store, "trace_grounded")
    assert raised.reweighted > 0 and {r["span_id"][-5:] for r in rows} == {"-root"}
    assert {row["inclusion_probability"] for row in rows} == {0.5}


def test_a_span_rubric_reading_the_trace_waits_for_it_too(store: Store,
                                                          fake: FakeJudge) -> None:
    seed_trace(store, "live", timedelta(seconds=5))
    reading = llm_judge(quiet_seconds=60,
                        rubric="{{ trace.tool_results }} {{ span.output_text }}")
    summary = grade(store, judge_graders(fake, reading), SamplingConfig())
    assert summary.waiting == 1 and fake.requests == 0
    plain = llm_judge("plain")
    assert grade(store, judge_graders(fake, plain), SamplingConfig()).verdicts_written == 1
