"""LLM-judge graders against a fake OpenAI endpoint: every answer form, retries, what is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_span
from tests.fakes._server import Status, Trickle
from tests.fakes.openai_server import (
    Content,
    FakeJudge,
    MalformedBody,
    QuotaExceeded,
    RateLimited,
    ServerError,
    Sleep,
    Step,
    label,
    running_fake,
    verdict,
)
from tests.llm.helpers import (
    judge_graders,
    judge_settings,
    llm_judge,
    use_virtual_time,
    verdict_rows,
)
from tracegrade.config import ConfigError, SamplingConfig, parse_config
from tracegrade.graders import GraderConfigError, build_graders
from tracegrade.grading import GradeSummary, grade
from tracegrade.llm import JudgeError
from tracegrade.store import Store, open_store
from tracegrade.store import _schema as t


@pytest.fixture
def local_store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'judge.db'}") as opened:
        yield opened


def grade_one_span(store: Store, fake: FakeJudge, answer: str, *grader: dict[str, Any],
                   **judge: Any) -> dict[str, Any]:
    """Grade one LLM span with the fake answering ``answer``; the stored verdict."""
    store.upsert_spans([make_span(1)])
    fake.answer = lambda _body: answer
    graders = judge_graders(fake, *grader, **judge)
    grade(store, graders, SamplingConfig())
    (row,) = verdict_rows(store, graders[0].name)
    return row


@pytest.mark.parametrize(("answer", "outcome"), [
    (verdict("pass", "It answers."), "pass"),
    (verdict("fail", "It dodges."), "fail"),
    ('```json\n{"critique": "Fine.", "verdict": "PASS"}\n```', "pass"),
    ('Let me think. {"reasoning": "Off topic.", "result": "failed"} Done.', "fail"),
    ('{"critique": "ok", "verdict": true}', "pass"),
    ("The reply is evasive.\nVerdict: FAIL", "fail"),
    ("pass", "pass"),
])
def test_each_readable_answer_form_gives_its_verdict(local_store: Store, fake: FakeJudge,
                                                     answer: str, outcome: str) -> None:
    row = grade_one_span(local_store, fake, answer)
    assert row["outcome"] == outcome
    assert fake.requests == 1


@pytest.mark.parametrize("answer", [
    "I think it is probably fine.",
    '{"critique": "hmm", "verdict": "maybe"}',
    '{"critique": "no verdict key"}',
    "Verdict: pass\nVerdict: fail",
    "",
])
def test_an_unreadable_answer_is_retried_then_an_error_with_the_raw_text(
        local_store: Store, fake: FakeJudge, answer: str) -> None:
    row = grade_one_span(local_store, fake, answer)
    assert row["outcome"] == "error"
    assert row["reason"].startswith("judge failed: unreadable answer")
    assert row["details"]["raw_answer"] == answer
    assert fake.requests == 4  # the first attempt and max_retries=3 more


def test_the_verdict_records_which_judge_made_it(local_store: Store, fake: FakeJudge) -> None:
    row = grade_one_span(local_store, fake, verdict("fail", "Says the order is lost."),
                         temperature=0.3, seed=7)
    assert row["reason"] == "Says the order is lost."
    details = row["details"]
    assert {k: details[k] for k in ("provider", "model", "temperature", "seed", "judge")} == {
        "provider": "openai", "model": "gpt-4.1-mini", "temperature": 0.3, "seed": 7,
        "judge": "default"}
    assert len(details["template_hash"]) == 16 and details["few_shot_label_ids"] == []
    assert details["cached"] is False and details["attempts"] == 1
    usage = details["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    expected = (usage["input_tokens"] * 0.40 + usage["output_tokens"] * 1.60) / 1e6
    assert row["cost"] == pytest.approx(expected) == details["cost"]
    (body,) = fake.bodies()
    assert body["temperature"] == 0.3 and body["seed"] == 7 and body["max_tokens"] == 1024
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["critique", "verdict"]


def test_retries_429s_honouring_retry_after_then_succeeds(
        local_store: Store, fake: FakeJudge, monkeypatch: pytest.MonkeyPatch) -> None:
    virtual = use_virtual_time(monkeypatch)
    fake.script(RateLimited(0.05), RateLimited(0.05), ServerError(503))
    row = grade_one_span(local_store, fake, verdict("pass"))
    assert row["outcome"] == "pass" and row["details"]["attempts"] == 4
    # Each 429 is followed by a wait of its Retry-After; the 503 (which has none) by the
    # configured backoff: retry_backoff_s (0.001 s) × 2² for the third retry, ±25% jitter.
    assert len(virtual.waits) == 3
    assert virtual.waits[:2] == pytest.approx([0.05, 0.05])
    assert 0.003 <= virtual.waits[2] <= 0.005


def test_a_retry_after_of_zero_means_now(local_store: Store, fake: FakeJudge,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    virtual = use_virtual_time(monkeypatch)
    fake.script(RateLimited(0))
    row = grade_one_span(local_store, fake, verdict("pass"))
    assert row["outcome"] == "pass" and row["details"]["attempts"] == 2
    assert sum(virtual.waits) < 0.01, "Retry-After: 0 is not a one-second pause"


def test_a_malformed_body_is_retried(local_store: Store, fake: FakeJudge) -> None:
    fake.script(MalformedBody())
    assert grade_one_span(local_store, fake, verdict("fail"))["outcome"] == "fail"
    assert fake.requests == 2


def defer_then_recover(store: Store, fake: FakeJudge, *steps: Step, **judge: Any
                       ) -> GradeSummary:
    """Grade one span while the endpoint fails with ``steps``, check that nothing was stored,
    then grade again once it answers and check the span gets its verdict; the first summary."""
    store.upsert_spans([make_span(1)])
    fake.script(*steps)
    first = grade(store, judge_graders(fake, **judge), SamplingConfig())
    assert first.verdicts_written == 0 and verdict_rows(store) == []
    assert first.deferred == {"answers": 1}
    fake.answer = lambda _body: verdict("fail")
    second = grade(store, judge_graders(fake, **judge), SamplingConfig())
    assert second.outcomes["answers"] == {"fail": 1} and not second.deferred
    return first


def test_persistent_server_errors_leave_the_span_for_the_next_run_never_a_pass(
        local_store: Store, fake: FakeJudge) -> None:
    first = defer_then_recover(local_store, fake, *[ServerError(500)] * 4)
    assert "answered 500" in first.deferred_reason
    assert "after 4 attempts" in first.deferred_reason


def test_a_429_storm_loses_nothing(local_store: Store, fake: FakeJudge) -> None:
    first = defer_then_recover(local_store, fake, *[RateLimited(0.01)] * 4)
    assert "answered 429" in first.deferred_reason


def test_an_answer_slower_than_the_timeout_is_asked_again_next_run(local_store: Store,
                                                                   fake: FakeJudge) -> None:
    first = defer_then_recover(local_store, fake, Sleep(1.0), Sleep(1.0), timeout_s=0.2,
                               max_retries=1)
    assert "did not answer within 0.2 s" in first.deferred_reason


def test_an_unreadable_answer_among_server_errors_is_an_error_verdict(
        local_store: Store, fake: FakeJudge) -> None:
    """The judge did answer, unreadably: that says something about the question, so the span
    gets an error verdict (with the raw answer) rather than being asked forever."""
    fake.script(ServerError(500), Content("I think it is fine overall."), ServerError(500),
                ServerError(500))
    row = grade_one_span(local_store, fake, verdict("pass"))
    assert row["outcome"] == "error" and "after 4 attempts" in row["reason"]


@pytest.mark.parametrize(("step", "why"), [
    (Content('{"critique": "The expected result: pass only when the order', "length"),
     "cut off at the judge's max_tokens (1024; finish reason 'length'): raise max_tokens"),
    (Content("Verdict: pass", "content_filter"), "content filter stopped the answer"),
    (Content("Verdict: pass is not something I can assess here.", "refusal"),
     "the model refused to answer"),
])
def test_an_answer_cut_short_is_an_error_after_one_paid_call_never_a_pass(
        local_store: Store, fake: FakeJudge, step: Content, why: str) -> None:
    fake.script(step)
    row = grade_one_span(local_store, fake, verdict("pass"))
    assert row["outcome"] == "error" and why in row["reason"]
    assert row["details"]["raw_answer"] == step.text
    assert fake.requests == 1 and row["cost"] > 0


def test_an_answer_trickling_past_the_timeout_is_asked_again_next_run(
        local_store: Store, fake: FakeJudge) -> None:
    """``timeout_s`` bounds the whole call: the SDK's timeout alone restarts at every byte."""
    fake.server.faults.add("/v1/chat/completions", Trickle(0.2))
    first = defer_then_recover(local_store, fake, timeout_s=1.0, max_retries=0)
    assert "did not answer within 1 s" in first.deferred_reason


def test_a_per_minute_quota_with_retry_after_is_a_rate_limit_not_an_empty_account(
        local_store: Store, fake: FakeJudge, monkeypatch: pytest.MonkeyPatch) -> None:
    """Vertex AI / Gemini say "Quota exceeded for … per minute" on an ordinary 429."""
    use_virtual_time(monkeypatch)
    fake.server.faults.add("/v1/chat/completions", Status(429, {"Retry-After": "1"}, {
        "error": {"message": "Quota exceeded for quota metric 'Generate Content API requests "
                             "per minute'", "code": 429, "status": "RESOURCE_EXHAUSTED"}}))
    row = grade_one_span(local_store, fake, verdict("fail"))
    assert row["outcome"] == "fail" and row["details"]["attempts"] == 2
    assert len(fake.server.requests_to("/v1/chat/completions")) == 2


def test_unreadable_answers_a_killed_run_paid_for_are_replayed_not_bought_again(
        local_store: Store, fake: FakeJudge) -> None:
    """Each paid unreadable attempt is kept: a run killed before its error verdict was stored
    replays them, and asks only for the attempts it had not made."""
    local_store.upsert_spans([make_span(1)])
    fake.answer = lambda _body: "I think it is probably fine."
    graders = judge_graders(fake, max_retries=1)
    grade(local_store, graders, SamplingConfig())
    (row,) = verdict_rows(local_store)
    assert row["outcome"] == "error" and fake.requests == 2
    with local_store.engine.begin() as conn:  # as if killed before the verdict committed
        conn.execute(t.verdicts.delete())
    again = judge_graders(fake, max_retries=3)  # the same questions, two more attempts allowed
    fake.answer = lambda _body: verdict("fail")
    grade(local_store, again, SamplingConfig())
    (row,) = verdict_rows(local_store)
    assert row["outcome"] == "fail" and row["details"]["attempts"] == 3
    assert fake.requests == 3, "the two paid attempts were replayed, one new call made"


def test_an_account_out_of_quota_stops_the_run(local_store: Store, fake: FakeJudge) -> None:
    local_store.upsert_spans([make_span(i) for i in range(5)])
    fake.script(*[QuotaExceeded()] * 10)
    with pytest.raises(JudgeError, match="out of quota or credit.*insufficient_quota"):
        grade(local_store, judge_graders(fake, max_concurrency=1), SamplingConfig())
    assert fake.requests == 1, "no retry helps an empty account"
    assert verdict_rows(local_store) == []


def test_an_endpoint_without_response_format_gets_plain_json_instructions(
        local_store: Store, fake: FakeJudge) -> None:
    fake.reject_response_format = True
    local_store.upsert_spans([make_span(1), make_span(2)])
    summary = grade(local_store, judge_graders(fake, max_concurrency=1), SamplingConfig())
    assert summary.outcomes["answers"] == {"pass": 2}
    with_format = [body for body in fake.bodies() if "response_format" in body]
    assert len(with_format) == 1, "after the first refusal the judge stops sending it"
    assert fake.requests == 3


def test_classify_passes_the_configured_labels(local_store: Store, fake: FakeJudge) -> None:
    grader = {"name": "tone", "type": "classify", "applies_to": {"kind": "llm"},
              "rubric": "Classify the tone of: {{ span.output_text }}",
              "labels": {"friendly": "warm and polite", "neutral": "", "rude": "dismissive"},
              "pass_labels": ["friendly", "neutral"]}
    row = grade_one_span(local_store, fake, label("Rude", "Curt."), grader)
    assert row["outcome"] == "fail" and row["reason"] == "rude: Curt."
    assert row["details"]["label"] == "rude"
    (body,) = fake.bodies()
    assert "- friendly: warm and polite" in body["messages"][0]["content"]
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == ["friendly", "neutral", "rude"]


TONE = {"name": "tone", "type": "classify", "applies_to": {"kind": "llm"},
        "rubric": "Tone of {{ span.output_text }}", "labels": ["friendly", "rude"],
        "pass_labels": ["friendly"]}


def test_a_label_outside_the_set_is_asked_again(local_store: Store, fake: FakeJudge) -> None:
    fake.script(Content(label("sarcastic")))
    assert grade_one_span(local_store, fake, label("friendly"), TONE)["outcome"] == "pass"
    assert fake.requests == 2


def test_a_label_outside_the_set_every_time_is_an_error_with_the_raw_answer(
        local_store: Store, fake: FakeJudge) -> None:
    row = grade_one_span(local_store, fake, label("sarcastic"), TONE)
    assert row["outcome"] == "error"
    assert "'sarcastic' is not one of friendly, rude" in row["reason"]
    assert row["details"]["raw_answer"] == label("sarcastic")


# -- versions and configuration ---------------------------------------------------------------


def _version(fake: FakeJudge, grader: dict[str, Any] | None = None, **judge: Any) -> str:
    return judge_graders(fake, grader or llm_judge(), **judge)[0].version


def test_the_judge_is_part_of_the_grader_version(fake: FakeJudge) -> None:
    base = _version(fake)
    assert base != _version(fake, model="gpt-4.1")
    assert base != _version(fake, temperature=0.7)
    assert base != _version(fake, seed=1)
    assert base != _version(fake, provider="anthropic")
    assert base != _version(fake, llm_judge(rubric="Other {{ span.output_text }}"))
    # Limits and endpoints do not change what a verdict means.
    assert base == _version(fake, max_concurrency=3, requests_per_minute=10, base_url="http://x")


def test_an_unknown_judge_is_one_config_error_naming_the_grader(fake: FakeJudge) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"judges": {"default": judge_settings(fake)},
                      "graders": [llm_judge("grounded_reply", judge="gpt5")]})
    message = str(caught.value)
    assert "grounded_reply" in message and "'gpt5'" in message and "default" in message
    assert "\n" not in message


def test_a_judge_grader_without_any_judge_configured(fake: FakeJudge) -> None:
    with pytest.raises(ConfigError, match=r"uses judge 'default'.*configured: none"):
        parse_config({"graders": [llm_judge()]})


def test_a_rubric_and_a_template_together_are_rejected(fake: FakeJudge) -> None:
    with pytest.raises(GraderConfigError, match="exactly one of rubric, template"):
        judge_graders(fake, llm_judge(template="grounded"))


def test_classify_refuses_few_shot_examples_naming_the_grader(fake: FakeJudge) -> None:
    with pytest.raises(GraderConfigError, match=r"^graders\[0\] \(tone\): few_shot "
                       r"draws on pass/fail labels; it is for llm_judge only$"):
        judge_graders(fake, {**TONE, "few_shot": 2})
    assert len(judge_graders(fake, {**TONE, "few_shot": 0})) == 1  # 0, the default, is fine


def test_a_rubric_typo_fails_when_the_grader_is_built(fake: FakeJudge) -> None:
    with pytest.raises(GraderConfigError, match=r"answers.*unknown variable spna"):
        judge_graders(fake, llm_judge(rubric="{{ spna.output }}"))
    with pytest.raises(GraderConfigError, match=r"fails on a sample span.*outptu"):
        judge_graders(fake, llm_judge(rubric="{{ span.outptu }}"))


def test_a_missing_anthropic_package_says_how_to_install_it(
        fake: FakeJudge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "anthropic", None)
    with pytest.raises(GraderConfigError,
                       match=r'pip install "tracegrade\[anthropic\]"'):
        judge_graders(fake, provider="anthropic")


def test_no_api_key_stops_the_run_with_the_fix(local_store: Store, fake: FakeJudge,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from tracegrade.llm import JudgeError

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    local_store.upsert_spans([make_span(1)])
    config = parse_config({"judges": {"default": {"model": "gpt-4.1-mini"}},
                           "graders": [llm_judge()]})
    with pytest.raises(JudgeError, match=r"no API key.*OPENAI_API_KEY"):
        grade(local_store, build_graders(config.graders), SamplingConfig())
    assert verdict_rows(local_store) == []


def test_a_judge_graded_one_span_on_its_own_still_asks_the_judge(fake: FakeJudge) -> None:
    from tracegrade.graders import TraceContext
    from tracegrade.grading import grade_one

    fake.answer = lambda _body: verdict("fail", "Off topic.")
    (grader,) = judge_graders(fake)
    result = grade_one(grader, make_span(3), TraceContext())  # as dataset replay does
    assert (result.outcome, result.reason) == ("fail", "Off topic.")
    assert result.details is not None and result.details["cached"] is False


def test_falling_back_from_response_format_keeps_the_cache_keys(local_store: Store,
                                                                 fake: FakeJudge) -> None:
    """Spans prepared after the endpoint refused `response_format` must find the answers of
    those prepared before (the key is the structured body's, whatever is sent)."""
    fake.reject_response_format = True
    local_store.upsert_spans([make_span(i) for i in range(30)])
    first = grade(local_store, judge_graders(fake, max_concurrency=1), SamplingConfig(),
                  page_size=10)
    assert first.outcomes["answers"] == {"pass": 30}
    asked = fake.requests
    again = grade(local_store, judge_graders(fake, llm_judge("answers_again"),
                                             max_concurrency=1), SamplingConfig(), page_size=10)
    assert again.cached == {"answers_again": 30} and fake.requests == asked


def test_strict_structured_output_does_not_fall_back(local_store: Store,
                                                     fake: FakeJudge) -> None:
    fake.reject_response_format = True
    local_store.upsert_spans([make_span(1)])
    with pytest.raises(JudgeError, match="structured_output: json_schema"):
        grade(local_store, judge_graders(fake, structured_output="json_schema"),
              SamplingConfig())
    assert verdict_rows(local_store) == []


def test_two_endpoints_serving_one_model_name_do_not_share_answers(local_store: Store,
                                                                   fake: FakeJudge) -> None:
    local_store.upsert_spans([make_span(i) for i in range(3)])
    grade(local_store, judge_graders(fake), SamplingConfig())
    with running_fake() as other:
        other.answer = lambda _body: verdict("fail", "server B")
        summary = grade(local_store, judge_graders(other, llm_judge("on_b")), SamplingConfig())
    assert other.requests == 3 and summary.outcomes["on_b"] == {"fail": 3}


def test_an_unreadable_answer_stopped_by_the_budget_keeps_its_cost(local_store: Store,
                                                                   fake: FakeJudge) -> None:
    # Only output is priced: each call reserves 20 tokens × $1000/M = $0.02; the unreadable
    # answer costs less, but not so little that a second reservation still fits in $0.025.
    local_store.upsert_spans([make_span(1)])
    fake.script(Content("I think it is fine overall, really."))
    summary = grade(local_store, judge_graders(fake, prices={"input": 0.0, "output": 1000.0},
                                               max_tokens=20), SamplingConfig(), budget=0.025)
    (row,) = verdict_rows(local_store)
    assert fake.requests == 1 and row["outcome"] == "error"
    assert "the budget stopped further attempts" in row["reason"]
    assert row["cost"] > 0 and summary.total_cost == pytest.approx(row["cost"])


def test_the_same_question_for_many_spans_is_asked_once(local_store: Store,
                                                        fake: FakeJudge) -> None:
    local_store.upsert_spans([make_span(i, output="Your order ships today.")
                              for i in range(10)])
    summary = grade(local_store, judge_graders(fake, max_concurrency=4), SamplingConfig())
    assert summary.outcomes["answers"] == {"pass": 10}
    assert fake.requests == 1 and summary.cached == {"answers": 9}
