"""Grading: one verdict per span × grader version, errors never pass, resumable after kill -9."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import kill_a_grade_mid_run, make_span
from tracegrade.config import SamplingConfig
from tracegrade.graders import Grader, GraderConfig, Result, build_graders, register
from tracegrade.grading import grade
from tracegrade.spans import Span, SpanKind
from tracegrade.store import Store, open_store


@register
class _Explodes(Grader):
    type_name = "test_explodes"

    def grade(self, span: Span, context: object) -> Result:
        raise RuntimeError("grader bug")


def configs(*extra: dict[str, object]) -> list[GraderConfig]:
    base = [
        {"name": "mentions_answer", "type": "contains", "applies_to": {"kind": "llm"},
         "value": "answer"},
        {"name": "has_order_status", "type": "field_present", "applies_to": {"kind": "tool"},
         "path": "$.order_status"},
    ]
    return [GraderConfig.model_validate(c) for c in [*base, *extra]]


def seed(store: Store, n: int = 30) -> None:
    spans = [make_span(i) for i in range(n)]
    spans += [make_span(1000 + i, kind=SpanKind.TOOL, name="lookup_order",
                        output={"order_status": "shipped"} if i % 2 else {"status": "x"})
              for i in range(10)]
    store.upsert_spans(spans)


def test_grade_writes_one_verdict_per_applicable_span(store: Store) -> None:
    seed(store)
    summary = grade(store, build_graders(configs()), SamplingConfig())
    assert summary.outcomes["mentions_answer"] == {"pass": 30}
    assert summary.outcomes["has_order_status"] == {"pass": 5, "fail": 5}
    assert store.count_verdicts() == 40
    again = grade(store, build_graders(configs()), SamplingConfig())
    assert again.verdicts_written == 0 and store.count_verdicts() == 40


def test_verdicts_a_concurrent_run_stored_first_are_not_tallied_twice(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two `grade` runs read the same ungraded spans; the one that writes second wrote nothing,
    and its summary says so instead of repeating the other run's outcomes."""
    seed(store)
    insert = Store.insert_verdicts
    raced: list[int] = []

    def other_run_first(self: Store, rows: list, graded: Any = None) -> int:  # type: ignore[type-arg]
        if not raced:  # the other run commits this page's verdicts (some of them) first
            raced.append(insert(self, [replace(row, run_id="other") for row in rows[:25]]))
        return insert(self, rows, graded)

    monkeypatch.setattr(Store, "insert_verdicts", other_run_first)
    summary = grade(store, build_graders(configs()), SamplingConfig())
    assert raced == [25] and summary.verdicts_written == 15
    assert sum(sum(c.values()) for c in summary.outcomes.values()) == 15
    assert store.run_outcomes(summary.run_id) == summary.outcomes


def test_a_span_an_import_changed_while_it_was_graded_keeps_no_verdict(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """`grade` reads a page, an import rewrites one of its spans (the tool renamed a field),
    then grade stores its verdicts: the verdict on the old content is not kept (it said
    "pass" on a span that no longer has the field, for good), and the next run grades the
    new content."""
    seed(store)
    insert = Store.insert_verdicts
    renamed = make_span(1001, kind=SpanKind.TOOL, name="lookup_order",
                        output={"status": "shipped"})

    def import_meanwhile(self: Store, rows: list, graded: Any = None) -> int:  # type: ignore[type-arg]
        self.upsert_spans([renamed])  # committed by another process before these verdicts
        return insert(self, rows, graded)

    monkeypatch.setattr(Store, "insert_verdicts", import_meanwhile)
    summary = grade(store, build_graders(configs()), SamplingConfig())
    monkeypatch.undo()
    assert summary.verdicts_written == 39
    assert outcomes_of(store, "has_order_status").get(renamed.span_id) is None
    assert store.run_outcomes(summary.run_id) == summary.outcomes
    again = grade(store, build_graders(configs()), SamplingConfig())
    assert again.verdicts_written == 1
    assert outcomes_of(store, "has_order_status")[renamed.span_id] == "fail"


def outcomes_of(store: Store, grader: str) -> dict[str, str]:
    from sqlalchemy import select

    from tracegrade.store import _schema as t

    v = t.verdicts.c
    with store.engine.connect() as conn:
        return dict(conn.execute(select(v.span_id, v.outcome).where(v.grader == grader)).all())


def test_a_span_whose_content_changes_is_graded_again(store: Store) -> None:
    # A late-ingested output (Langfuse) or a re-export replaces a stored span: its verdicts
    # described the old content and must not stand for the new one.
    tool = {"kind": SpanKind.TOOL, "name": "lookup_order"}
    store.upsert_spans([make_span(1, output={"status": "pending"}, **tool),
                        make_span(2, output={"status": "pending"}, **tool)])
    grade(store, build_graders(configs()), SamplingConfig())
    assert outcomes_of(store, "has_order_status") == {"span-000001": "fail",
                                                       "span-000002": "fail"}

    counts = store.upsert_spans([make_span(1, output={"order_status": "shipped"}, **tool),
                                 make_span(2, output={"status": "pending"}, **tool,
                                           attributes={"langfuse.updated_at": "later"})])
    again = grade(store, build_graders(configs()), SamplingConfig())

    assert (counts.updated, counts.regraded) == (2, 1)  # span 2 changed only a version stamp
    assert again.verdicts_written == 1
    assert outcomes_of(store, "has_order_status") == {"span-000001": "pass",
                                                       "span-000002": "fail"}


def test_a_changed_span_graded_while_written_gets_its_new_verdict(store: Store) -> None:
    from tracegrade.grading import InlineGrading

    tool = {"kind": SpanKind.TOOL, "name": "lookup_order"}
    graders = build_graders(configs())
    with InlineGrading(store, graders, SamplingConfig()) as inline:
        store.upsert_spans([make_span(1, output={"status": "x"}, **tool)], grade=inline)
    with InlineGrading(store, graders, SamplingConfig()) as inline:
        counts = store.upsert_spans([make_span(1, output={"order_status": "ok"}, **tool)],
                                    grade=inline)
    assert (counts.regraded, counts.verdicts) == (1, 1)
    assert outcomes_of(store, "has_order_status") == {"span-000001": "pass"}


def test_a_grader_that_raises_records_error_not_pass(store: Store) -> None:
    seed(store, 5)
    extra = {"name": "buggy", "type": "test_explodes", "applies_to": {"kind": "llm"}}
    summary = grade(store, build_graders(configs(extra), only=["buggy"]), SamplingConfig())
    assert summary.outcomes["buggy"] == {"error": 5}
    reasons = {r["reason"] for r in store.verdict_examples("buggy", build_graders(
        configs(extra), only=["buggy"])[0].version, "r1", "error", limit=10)}
    assert reasons == {"RuntimeError: grader bug"}


def test_changed_grader_is_a_new_series_and_keeps_old_verdicts(store: Store) -> None:
    seed(store, 10)
    grade(store, build_graders(configs(), only=["mentions_answer"]), SamplingConfig())
    changed = configs()
    changed[0] = GraderConfig.model_validate({**changed[0].model_dump(), "value": "question"})
    summary = grade(store, build_graders(changed, only=["mentions_answer"]), SamplingConfig())
    assert summary.verdicts_written == 10
    assert store.count_verdicts() == 20


def test_sampling_records_the_inclusion_probability(store: Store) -> None:
    seed(store, 400)
    grade(store, build_graders(configs(), only=["mentions_answer"]), SamplingConfig(rate=0.25))
    rows = store.verdict_counts()
    n = sum(r["n"] for r in rows)
    assert 60 < n < 140
    assert all(r["weight"] == pytest.approx(r["n"] * 4) for r in rows)


def test_a_higher_rate_or_all_raises_the_probability_of_what_was_graded(store: Store) -> None:
    # A span graded at rate 0.1 is in the rate-0.5 sample too (the same hash number decides):
    # kept at 0.1 it weighed 10 where every other span of that sample weighs 2 (the
    # Horvitz-Thompson count of 400 spans came out ~1.8x too high).
    seed(store, 400)
    only = build_graders(configs(), only=["mentions_answer"])
    grade(store, only, SamplingConfig(rate=0.1))
    raised = grade(store, only, SamplingConfig(rate=0.5))
    rows = store.verdict_counts()
    n, weight = sum(r["n"] for r in rows), sum(r["weight"] for r in rows)
    assert raised.reweighted > 0 and 140 < n < 260
    assert weight == pytest.approx(2 * n)  # every verdict at 0.5
    lowered = grade(store, only, SamplingConfig(rate=0.2))  # a lower rate changes nothing
    assert lowered.reweighted == 0 and lowered.verdicts_written == 0
    everything = grade(store, only, SamplingConfig(rate=0.2), grade_all=True)
    rows = store.verdict_counts()
    assert everything.reweighted == n
    assert sum(r["n"] for r in rows) == sum(r["weight"] for r in rows) == 400


def test_killed_run_resumes_without_duplicates_or_losses(tmp_path: Path) -> None:
    killed = kill_a_grade_mid_run(tmp_path)
    finished = subprocess.run(killed.command, cwd=tmp_path, env=killed.env,
                              capture_output=True, text=True, check=True)
    assert f'"verdicts_written": {6000 - killed.kept}' in finished.stdout
    with open_store(killed.url) as store:
        assert store.count_verdicts() == 6000
