"""Building judge graders pointed at the fake judge, and reading what they stored."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.fakes.openai_server import FakeJudge
from tracegrade.config import parse_config
from tracegrade.graders import Grader, build_graders
from tracegrade.llm import JudgeSession
from tracegrade.store import Store
from tracegrade.store import _schema as t

FAST: dict[str, Any] = {"timeout_s": 2.0, "max_retries": 3, "retry_backoff_s": 0.001}
"""Retries a few milliseconds apart, so failure tests stay fast."""

REPLY_RUBRIC = "Does this reply answer the question?\n{{ span.output_text }}"


def judge_settings(fake: FakeJudge, **overrides: Any) -> dict[str, Any]:
    """A judge entry pointing at the fake."""
    return {"base_url": fake.base_url, "api_key": "test-key", "model": "gpt-4.1-mini",
            **FAST, **overrides}


def llm_judge(name: str = "answers", **settings: Any) -> dict[str, Any]:
    """An ``llm_judge`` grader entry on LLM spans."""
    return {"name": name, "type": "llm_judge", "applies_to": {"kind": "llm"},
            "rubric": REPLY_RUBRIC, **settings}


def judge_graders(fake: FakeJudge, *graders: dict[str, Any], **judge: Any) -> list[Grader]:
    """Graders built from a config whose ``default`` judge is the fake."""
    config = parse_config({"judges": {"default": judge_settings(fake, **judge)},
                           "graders": list(graders) or [llm_judge()]})
    return build_graders(config.graders)


def verdict_rows(store: Store, grader: str = "answers") -> list[dict[str, Any]]:
    """Every stored verdict of a grader, by span id."""
    v = t.verdicts.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.verdicts).where(v.grader == grader).order_by(v.span_id))
        return [dict(row._mapping) for row in rows]


def cache_size(store: Store) -> int:
    """How many answers the judge cache holds."""
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.judge_cache)).scalar_one())


class VirtualTime:
    """The judge's clock and sleep for a test: records every wait the judge asks for.

    A wait lets the other tasks run, then returns at once, moving the clock to the wait's end
    (waits that overlap move it once, as on a real clock). The clock moves by nothing else.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        until = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, until)


def use_virtual_time(monkeypatch: pytest.MonkeyPatch) -> VirtualTime:
    """Make the judge graders of this test measure and wait on a :class:`VirtualTime`."""
    virtual = VirtualTime()

    class VirtualTimeSession(JudgeSession):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, clock=virtual.clock, sleep=virtual.sleep, **kwargs)

    monkeypatch.setattr("tracegrade.graders._judge.JudgeSession", VirtualTimeSession)
    return virtual
