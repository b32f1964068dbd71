"""Hash-based Poisson sampling: deterministic, at the stated rate, with true probabilities."""

from __future__ import annotations

from sqlalchemy import select

from tests.conftest import make_span
from tracegrade.config import SamplingConfig
from tracegrade.graders import AppliesTo, GraderConfig, build_graders
from tracegrade.grading import grade
from tracegrade.sampling import Sampler, group_sizes_for, uniform
from tracegrade.spans import SpanKind
from tracegrade.store import Store
from tracegrade.store import _schema as t


def test_uniform_is_deterministic_and_spread() -> None:
    values = [uniform("s", "src", f"span-{i}") for i in range(20000)]
    assert values == [uniform("s", "src", f"span-{i}") for i in range(20000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert abs(sum(values) / len(values) - 0.5) < 0.01
    assert uniform("other-seed", "src", "span-1") != values[1]


def test_rate_is_respected_and_probability_recorded() -> None:
    sampler = Sampler(SamplingConfig(rate=0.2), {("r1", None): 10000})
    included = [sampler.include(make_span(i)) for i in range(10000)]
    chosen = [p for p in included if p is not None]
    assert 1850 < len(chosen) < 2150
    assert set(chosen) == {0.2}


def test_grader_rate_overrides_global_rate() -> None:
    sampler = Sampler(SamplingConfig(rate=0.2), {("r1", None): 1000})
    assert sampler.inclusion_probability(make_span(1), grader_rate=0.5) == 0.5


def test_cap_per_release_lowers_the_probability() -> None:
    sampler = Sampler(SamplingConfig(rate=1.0, max_per_release=500),
                      {("r1", None): 5000, ("r2", None): 100})
    assert sampler.inclusion_probability(make_span(1, release="r1")) == 0.1
    assert sampler.inclusion_probability(make_span(1, release="r2")) == 1.0
    chosen = sum(sampler.include(make_span(i, release="r1")) is not None for i in range(5000))
    assert 430 < chosen < 570


def test_stratification_guarantees_small_strata() -> None:
    sizes = {("r1", "common"): 10000, ("r1", "rare"): 100}
    sampler = Sampler(SamplingConfig(rate=0.05, stratify_by="name", min_per_stratum=50), sizes)
    assert sampler.inclusion_probability(make_span(1, name="rare")) == 0.5
    assert sampler.inclusion_probability(make_span(1, name="common")) == 0.05


def test_grade_all_includes_everything() -> None:
    sampler = Sampler(SamplingConfig(rate=0.01), {}, grade_all=True)
    assert all(sampler.include(make_span(i)) == 1.0 for i in range(100))


def test_a_graders_cap_counts_only_the_spans_it_applies_to(store: Store) -> None:
    # 100 LLM spans among 1,000: a cap of 50 is half the LLM spans, not 5% of them.
    spans = [make_span(i, kind="llm" if i % 10 == 0 else "tool",
                       name="chat" if i % 10 == 0 else "lookup") for i in range(1000)]
    store.upsert_spans(spans)
    graders = build_graders([GraderConfig(name="llm_ok", type="status_ok",
                                          applies_to=AppliesTo(kind=SpanKind.LLM)),
                             GraderConfig(name="chat_ok", type="status_ok",
                                          applies_to=AppliesTo(name="ch*")),
                             GraderConfig(name="any_ok", type="status_ok")])
    summary = grade(store, graders, SamplingConfig(rate=1.0, max_per_release=50))
    probabilities = {name: store_probabilities(store, name) for name in ("llm_ok", "chat_ok",
                                                                         "any_ok")}
    assert probabilities["llm_ok"] == probabilities["chat_ok"] == {0.5}
    assert probabilities["any_ok"] == {0.05}
    assert 30 <= summary.outcomes["llm_ok"]["pass"] <= 70  # ~50, where it was ~5


def test_group_sizes_for_filters_kind_and_name() -> None:
    groups = [("r1", "chat", "llm", 10), ("r1", "lookup", "tool", 90), ("r2", "chat", "llm", 5)]
    assert group_sizes_for(groups, by_name=False) == {("r1", None): 100, ("r2", None): 5}
    assert group_sizes_for(groups, by_name=True, kinds=["tool"]) == {("r1", "lookup"): 90}
    assert group_sizes_for(groups, by_name=False, name_glob="c?at") == {("r1", None): 10,
                                                                         ("r2", None): 5}


def store_probabilities(store: Store, grader: str) -> set[float]:
    with store.engine.connect() as conn:
        return set(conn.execute(select(t.verdicts.c.inclusion_probability).where(
            t.verdicts.c.grader == grader)).scalars())
