"""Drift: a planted uncovered topic is found and named; same-distribution sets look alike."""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from tests.conftest import make_span
from tracegrade.analysis.drift import (
    DriftError,
    DriftSettings,
    analyze_drift,
    dataset_drift,
)
from tracegrade.analysis.embedding import term_vectorizer
from tracegrade.analysis.staleness import StalenessSettings, find_stale_items
from tracegrade.cli import cli
from tracegrade.datasets import GoldenItem, add_items, create_dataset
from tracegrade.spans import SpanKind
from tracegrade.store import Store

TOPICS = {
    "shipping": ["Where is my order {n}?", "When will order {n} arrive?",
                 "Has order {n} shipped yet?", "Which carrier has my parcel {n}?"],
    "account": ["How do I reset my password?", "I can't log in to my account {n}.",
                "How do I change the email on my account?", "Delete my account please."],
    "sizing": ["Do the {item} run small?", "What size {item} should I get?",
               "Is there a size chart for {item}?", "Are the {item} true to size?"],
}
WARRANTY = ["My {item} broke after a month, is it under warranty?",
            "Warranty claim for {item}: the zip failed.",
            "Does the warranty cover a torn {item}?",
            "How long is the warranty on {item}?"]
ITEMS = ["boots", "jacket", "tent", "backpack", "gloves"]


def messages(rng: random.Random, n: int, warranty_share: float = 0.0) -> list[str]:
    texts = []
    for _ in range(n):
        templates = WARRANTY if rng.random() < warranty_share else \
            TOPICS[rng.choice(sorted(TOPICS))]
        texts.append(rng.choice(templates).format(n=f"A{rng.randrange(10**6):06d}",
                                                  item=rng.choice(ITEMS)))
    return texts


def test_a_planted_uncovered_topic_is_found_named_and_suggested() -> None:
    rng = random.Random(4)
    golden, production = messages(rng, 300), messages(rng, 1200, warranty_share=0.1)
    keys = [("prod", f"s{i}") for i in range(len(production))]
    report = analyze_drift(golden, production, keys, DriftSettings(suggest=3))
    assert report.missing, "the warranty topic must be missing"
    assert any("warranty" in cluster.name for cluster in report.missing)
    missing_share = sum(c.production_share for c in report.missing)
    assert 0.06 < missing_share < 0.14
    assert all("arrant" in example for c in report.missing for example in c.examples)
    assert report.coverage is not None and report.coverage < 0.93
    assert [s for s in report.suggestions if "arrant" in s.input] == report.suggestions
    assert len(report.suggestions) == 3


def test_same_distribution_gives_an_auc_near_half_and_nothing_missing() -> None:
    rng = random.Random(5)
    report = analyze_drift(messages(rng, 300), messages(rng, 1500))
    assert report.auc is not None and abs(report.auc - 0.5) < 0.08
    assert report.auc_p_value is not None and report.auc_p_value > 0.01
    assert report.missing == []
    assert report.coverage is not None and report.coverage > 0.9


def test_a_golden_set_unrelated_to_production_does_not_cover_it() -> None:
    rng = random.Random(7)
    golden = ["where is my order", "cancel my subscription", "reset my password",
              "update billing address"]
    topics = ["translate this poem into french", "write python code to sort a list",
              "what is the capital of peru", "recommend a sci-fi novel",
              "explain quantum entanglement simply"]
    production = [f"{rng.choice(topics)} {rng.choice(['please', 'now', 'thanks'])}"
                  for _ in range(200)]
    report = analyze_drift(golden, production)
    assert report.coverage is not None and report.coverage < 0.1
    assert sum(c.production_share for c in report.missing) > 0.9


def test_one_off_topic_golden_item_does_not_widen_coverage() -> None:
    rng = random.Random(4)
    golden, production = messages(rng, 30), messages(rng, 1200, warranty_share=0.3)
    before = analyze_drift(golden, production)
    after = analyze_drift([*golden, "Translate this poem into French"], production)
    assert before.coverage is not None and after.coverage is not None
    assert abs(after.coverage - before.coverage) < 0.02


def test_drift_without_any_text_is_a_one_line_error(store: Store, store_url: str) -> None:
    with pytest.raises(DriftError, match="no golden or production input has any text"):
        analyze_drift(["", " "], ["", ""])
    store.upsert_spans([make_span(i, kind=SpanKind.AGENT, name="agent", input=None,
                                  parent_id=None) for i in range(5)])
    create_dataset(store, "gold")
    add_items(store, "gold", [GoldenItem(id=f"g{i}", input="",
                                         metadata={"span_kind": "agent", "span_name": "agent"})
                              for i in range(3)])
    result = CliRunner().invoke(cli, ["--store", store_url, "drift", "gold"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: no golden or production input has any text")
    assert len(result.stderr.strip().splitlines()) == 1


def test_drift_command_compares_with_the_items_own_span_kind(store: Store,
                                                             store_url: str) -> None:
    rng = random.Random(6)
    production = messages(rng, 400, warranty_share=0.15)
    store.upsert_spans([make_span(i, kind=SpanKind.AGENT, name="agent", input=text,
                                  release="r2", parent_id=None)
                        for i, text in enumerate(production)])
    store.upsert_spans([make_span(10_000 + i, kind=SpanKind.LLM, input="unrelated noise text")
                        for i in range(50)])
    create_dataset(store, "gold")
    add_items(store, "gold", [GoldenItem(id=f"g{i}", input=text,
                                         metadata={"span_kind": "agent", "span_name": "agent"})
                              for i, text in enumerate(messages(rng, 80))])
    report = dataset_drift(store, "gold")
    assert report.release == "r2" and report.production_n == 400
    result = CliRunner().invoke(cli, ["--store", store_url, "drift", "gold", "--suggest", "2",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = orjson.loads(result.stdout)
    assert any("warranty" in name for name in payload["missing"])
    assert len(payload["suggestions"]) == 2
    table = CliRunner().invoke(cli, ["--store", store_url, "drift", "gold"])
    assert "MISSING from gold" in table.stdout and "warranty" in table.stdout


def test_minilm_without_the_extra_names_the_pip_command(
        store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as if not installed
    create_dataset(store, "gold")
    result = CliRunner().invoke(cli, ["--store", store_url, "drift", "gold", "--embedding",
                                      "minilm"])
    assert result.exit_code == 2
    assert 'pip install "tracegrade[embeddings]"' in result.stderr


AGENT = {"span_kind": "agent", "span_name": "agent"}
"""Golden item metadata pointing at the agent spans :func:`seed_answers` writes."""


def seed_answers(store: Store, question: str, answer: str, times: int) -> None:
    """60 agent spans of release r2: ``question`` answered with ``answer`` ``times`` times, the
    rest order lookups; and an empty golden set ``gold``."""
    store.upsert_spans([
        make_span(i, kind=SpanKind.AGENT, name="agent", parent_id=None, release="r2",
                  input=question if i < times else f"Where is my order A{i:06d}?",
                  output=answer if i < times else f"Order A{i:06d} ships on day {i}.")
        for i in range(60)])
    create_dataset(store, "gold")


def test_stale_items_time_sensitive_old_and_contradicted(store: Store) -> None:
    ceo_question = "Who is the CEO of Northwind Outfitters?"
    seed_answers(store, ceo_question, "Dana Reyes has been the CEO of Northwind since March.", 8)
    add_items(store, "gold", [
        GoldenItem(id="ceo", input=ceo_question, expected_output="Sam Lee is the CEO.",
                   valid_as_of="2026-10-01", metadata=AGENT),
        GoldenItem(id="old", input="Where is my order A000010?", expected_output="Soon.",
                   valid_as_of="2025-01-01", metadata=AGENT),
        GoldenItem(id="fine", input="Where is my order A000011?",
                   expected_output="Order A000011 ships on day 11.", valid_as_of="2026-11-01",
                   metadata=AGENT),
    ])
    report = find_stale_items(store, "gold", StalenessSettings(
        now=datetime(2026, 11, 20, tzinfo=UTC)))
    reasons = {item.item_id: item.reasons for item in report.stale}
    assert set(reasons) == {"ceo", "old"}
    assert reasons["ceo"][0].startswith("time-sensitive ('Who is the CEO")
    assert any("production now answers differently (8 near-identical" in r
               for r in reasons["ceo"])
    assert reasons["old"] == ["valid as of 2025-01-01, 688 days ago (max 180)"]
    ceo = next(item for item in report.stale if item.item_id == "ceo")
    assert ceo.production_answer is not None and "Dana Reyes" in ceo.production_answer


def test_a_golden_set_copied_from_production_covers_it() -> None:
    """`dataset promote` copies spans verbatim: a random 100 of production, copied, is no
    drift (their one-off order ids made 4 topics "missing" and the AUC significant)."""
    rng = random.Random(6)
    production = messages(rng, 300)
    golden = random.Random(7).sample(production, 100)
    report = analyze_drift(golden, production)
    assert report.missing == []
    assert report.coverage is not None and report.coverage > 0.9
    assert report.auc_p_value is not None and report.auc_p_value > 0.01


def test_a_golden_set_equal_to_production_is_indistinguishable() -> None:
    production = messages(random.Random(8), 300)
    report = analyze_drift(list(production), production)
    assert report.auc is not None and abs(report.auc - 0.5) < 0.1  # was 0.17, "p = 3e-45"
    assert report.auc_p_value is not None and report.auc_p_value > 0.05
    assert report.coverage == 1.0 and report.missing == []


def test_chinese_inputs_are_split_into_characters() -> None:
    """Unspaced CJK text was one token per sentence: 10 items of the same template covered
    10% of production."""
    rng = random.Random(9)
    templates = ["我的订单{n}在哪里？", "订单{n}什么时候到？", "怎么修改我的账户邮箱？"]

    def texts(n: int) -> list[str]:
        return [rng.choice(templates).format(n=f"A{rng.randrange(10**6):06d}")
                for _ in range(n)]

    report = analyze_drift(texts(30), texts(150))
    assert report.coverage is not None and report.coverage > 0.9
    assert report.missing == []


def test_spans_without_input_are_left_out_not_a_missing_topic() -> None:
    rng = random.Random(10)
    production = messages(rng, 200) + [""] * 100
    report = analyze_drift(messages(rng, 100), production)
    assert report.empty_production == 100 and report.production_n == 200
    assert report.missing == []
    assert report.as_dict()["empty_production"] == 100


def test_a_changed_number_in_the_same_sentence_makes_an_item_stale(store: Store) -> None:
    """Production now says 14 days where the golden answer says 30, in the same sentence: the
    answers are near-identical to TF-IDF, and the number is exactly what went stale."""
    question = "How long do I have to send an item back?"
    seed_answers(store, question, "You have 14 days to send an item back for a full refund.", 10)
    add_items(store, "gold", [
        GoldenItem(id="returns", input=question,
                   expected_output="You have 30 days to send an item back for a full refund.",
                   valid_as_of="2026-11-01", metadata=AGENT),
        GoldenItem(id="order", input="Where is my order A000011?",
                   expected_output="Order A000011 ships on day 11.", valid_as_of="2026-11-01",
                   metadata=AGENT),
    ])
    report = find_stale_items(store, "gold", StalenessSettings(
        now=datetime(2026, 11, 20, tzinfo=UTC)))
    assert [item.item_id for item in report.stale] == ["returns"]
    assert "14 days" in (report.stale[0].production_answer or "")


def test_support_words_count_and_a_verbatim_golden_input_covers_itself() -> None:
    """scikit-learn's stop words hold "find", "bill", "call", "show"…: these questions were
    zero vectors, a "missing" cluster at 0% coverage although the golden set held each one
    word for word; an input with no usable word at all ("What is it?") is covered by its copy."""
    rng = random.Random(11)
    plain = ["I cannot find my bill.", "Please call me back.", "Can you show me the amount?"]
    production = messages(rng, 60) + [rng.choice(plain) for _ in range(30)] + ["What is it?"] * 5
    golden = messages(rng, 40) + plain + ["What is it?"]
    report = analyze_drift(golden, production)
    assert report.missing == []
    assert report.coverage is not None and report.coverage > 0.9
    assert {"find", "bill", "call", "show"} <= set(term_vectorizer(1).fit(plain).vocabulary_)


def test_nearest_other_golden_item_in_blocks_equals_the_whole_matrix() -> None:
    """Computed a block of rows at a time (the whole matrix took 2.1 GB at 15,000 items)."""
    from tracegrade.analysis.drift import _nearest_other

    vectors = np.random.default_rng(3).normal(size=(50, 8)).astype(np.float32)
    vectors = np.vstack([vectors, vectors[:5]])  # five repeated texts
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    whole = 1.0 - vectors @ vectors.T
    np.fill_diagonal(whole, np.inf)
    nearest, distinct = _nearest_other(vectors, cells=7 * 55)  # blocks of 7 rows
    np.testing.assert_allclose(nearest, whole.min(axis=1), atol=1e-6)
    whole[whole <= 1e-4] = np.inf
    np.testing.assert_allclose(distinct, whole.min(axis=1), atol=1e-6)
    assert np.all(nearest[:5] < 1e-4) and np.all(distinct[:5] > 1e-4)
