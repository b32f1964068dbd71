"""The demo's golden dataset, human labels and refund topic: shipped, realistic, and found."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tracegrade.analysis.calibration import calibrate, labeled_criteria
from tracegrade.analysis.drift import dataset_drift
from tracegrade.demo import golden as demo_golden
from tracegrade.demo.run import DemoResult, run_demo
from tracegrade.labels import labeled_pairs
from tracegrade.spans import SpanKind
from tracegrade.store import open_store

REFUND_WORDS = ("refund", "money back", "return", "charged me twice", "send back")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    return run_demo(tmp_path_factory.mktemp("demo"))


def store_url(demo: DemoResult) -> str:
    return f"sqlite:///{demo.workspace / 'tracegrade.db'}"


def test_shipped_files_are_the_generator_output() -> None:
    files = demo_golden.build()
    assert files.golden == demo_golden.GOLDEN_FILE.read_bytes(), (
        "data/golden.jsonl is stale: run `python -m tracegrade.demo.golden`")
    assert files.labels == demo_golden.LABELS_FILE.read_bytes(), (
        "data/labels.csv is stale: run `python -m tracegrade.demo.golden`")


def test_refund_requests_appear_only_in_the_second_release(demo: DemoResult) -> None:
    share = {}
    with open_store(store_url(demo)) as store:
        for release in ("2026.11.1", "2026.11.2"):
            agents = [s.span for s in store.iter_spans([SpanKind.AGENT])
                      if s.span.release == release]
            share[release] = sum("refund" in str(s.input).lower() or "money back" in
                                 str(s.input).lower() for s in agents) / len(agents)
    assert share["2026.11.1"] == 0
    assert 0.07 < share["2026.11.2"] < 0.11


def test_golden_items_are_first_release_conversations_without_refunds() -> None:
    items = demo_golden.golden_items()
    assert len(items) == demo_golden.GOLDEN_ITEMS
    assert {item.metadata["release"] for item in items} == {"2026.11.1"}
    assert not any(word in str(item.input).lower() for item in items for word in REFUND_WORDS)
    assert all(item.expected_output and item.source_span for item in items)


def test_labels_cover_every_grader_and_disagree_realistically(demo: DemoResult) -> None:
    rows = list(csv.DictReader(io.StringIO(demo_golden.LABELS_FILE.read_text("utf-8"))))
    assert 300 <= len(rows) <= 700
    with open_store(store_url(demo)) as store:
        criteria = labeled_criteria(store)
        assert set(criteria) == {rate.grader for rate in demo.rates}
        pairs = [pair for grader in criteria
                 for pair in labeled_pairs(store, grader, _version(demo, grader))]
    disagreements = sum(1 for _, _, human, grader in pairs if human != grader) / len(pairs)
    assert 0.05 <= disagreements <= 0.15


def _version(demo: DemoResult, grader: str) -> str:
    return next(rate.grader_version for rate in demo.rates if rate.grader == grader)


def test_calibrate_shows_kappa_and_a_corrected_rate_for_every_labeled_grader(
        demo: DemoResult) -> None:
    with open_store(store_url(demo)) as store:
        criteria = labeled_criteria(store)
        assert criteria, "the demo store has no human labels"
        for grader in criteria:
            calibration = calibrate(store, grader, resamples=300, save=False)
            assert calibration.agreement.kappa is not None, grader
            assert calibration.release == "2026.11.2"
            assert calibration.corrected, f"{grader}: no corrected rate"
            assert all(rate.estimate is not None and rate.low is not None
                       for rate in calibration.corrected), grader


def test_drift_names_the_refund_topic(demo: DemoResult, tmp_path: Path) -> None:
    with open_store(store_url(demo)) as store:
        report = dataset_drift(store, "golden")
    assert report.release == "2026.11.2"
    names = " ".join(cluster.name for cluster in report.missing)
    assert "refund" in names
    uncovered = sum(c.uncovered_share for c in report.missing)
    assert 0.05 < uncovered < 0.2  # refunds are ~9% of the conversations, plus chance gaps
    for cluster in report.missing:
        assert cluster.examples
        assert all(any(w in e.lower() for w in REFUND_WORDS) for e in cluster.examples)
