"""The Anthropic provider through the real ``anthropic`` SDK, against a fake Messages endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_span
from tests.fakes.openai_server import Content, FakeJudge, RateLimited, verdict
from tests.llm.helpers import FAST, llm_judge, use_virtual_time, verdict_rows
from tracegrade.config import SamplingConfig, parse_config
from tracegrade.graders import Grader, build_graders
from tracegrade.grading import grade
from tracegrade.store import Store, open_store


@pytest.fixture
def local_store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'judge.db'}") as opened:
        opened.upsert_spans([make_span(1), make_span(2)])
        yield opened


def claude(fake: FakeJudge, **settings: object) -> list[Grader]:
    judge = {"provider": "anthropic", "base_url": fake.server.url, "api_key": "test-key",
             "model": "claude-haiku-4-5", **FAST, **settings}
    return build_graders(parse_config({"judges": {"default": judge},
                                       "graders": [llm_judge()]}).graders)


def test_claude_answers_in_its_structured_output_format(local_store: Store,
                                                        fake: FakeJudge) -> None:
    fake.answer = lambda _body: verdict("fail", "Names the wrong carrier.")
    summary = grade(local_store, claude(fake), SamplingConfig())
    assert summary.outcomes["answers"] == {"fail": 2}
    body = fake.bodies()[0]
    assert fake.received[0].path == "/v1/messages"
    assert body["model"] == "claude-haiku-4-5" and body["max_tokens"] == 1024
    assert body["system"].startswith("You are a careful evaluator")
    output_format = body["output_config"]["format"]
    assert output_format["type"] == "json_schema"
    assert output_format["schema"]["properties"]["verdict"]["enum"] == ["pass", "fail"]
    assert "temperature" not in body  # the Messages API no longer takes one
    assert [m["role"] for m in body["messages"]] == ["user"]
    row = verdict_rows(local_store)[0]
    assert row["reason"] == "Names the wrong carrier."
    assert row["details"]["provider"] == "anthropic"
    usage = row["details"]["usage"]
    assert row["cost"] == pytest.approx((usage["input_tokens"] * 1.0
                                         + usage["output_tokens"] * 5.0) / 1e6)


def test_claude_429s_are_retried_after_their_retry_after(
        local_store: Store, fake: FakeJudge, monkeypatch: pytest.MonkeyPatch) -> None:
    virtual = use_virtual_time(monkeypatch)
    fake.script(RateLimited(0.05))
    summary = grade(local_store, claude(fake, max_concurrency=1), SamplingConfig())
    assert summary.outcomes["answers"] == {"pass": 2} and fake.requests == 3
    # The rate-limited question backs off for the Retry-After, keeping its place through its
    # retries: the other one is asked once it has its answer, so no pause is left to wait out.
    assert virtual.waits == pytest.approx([0.05])


def test_claude_without_structured_output_is_read_from_text(local_store: Store,
                                                            fake: FakeJudge) -> None:
    fake.answer = lambda _body: "The reply is on topic.\nVerdict: PASS"
    summary = grade(local_store, claude(fake, structured_output="none"), SamplingConfig())
    assert summary.outcomes["answers"] == {"pass": 2}
    assert "output_config" not in fake.bodies()[0]


@pytest.mark.parametrize(("finish", "why"), [("length", "cut off at the judge's max_tokens"),
                                             ("refusal", "refused")])
def test_claude_cut_short_is_an_error_after_one_paid_call_never_a_pass(
        local_store: Store, fake: FakeJudge, finish: str, why: str) -> None:
    """``stop_reason`` max_tokens/refusal: the text ("Verdict: pass. Although…") is no verdict."""
    fake.script(Content("Verdict: pass. Although the reply cites the tool, the date", finish))
    summary = grade(local_store, claude(fake, structured_output="none", max_concurrency=1),
                    SamplingConfig())
    assert summary.outcomes["answers"] == {"error": 1, "pass": 1}
    assert fake.requests == 2, "asking again would pay for the same cut-off answer"
    (row,) = [row for row in verdict_rows(local_store) if row["outcome"] == "error"]
    assert why in row["reason"] and row["details"]["raw_answer"].startswith("Verdict: pass.")
