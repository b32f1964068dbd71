"""Benchmark: ``tracegrade drift`` on 100k production inputs against 2k golden items.

The inputs are the demo's customer messages (many phrasings, random order ids and items) with
refund requests as 9% of production and none in the golden set. Two measurements, each in a
fresh process so its peak RSS is its own:

- ``analysis``: :func:`analyze_drift` on the texts (TF-IDF + SVD, clustering, two-sample AUC,
  nearest-neighbour coverage, 20 suggestions);
- ``end_to_end``: :func:`dataset_drift` on a SQLite store holding the spans and the dataset
  (reading the inputs from the store included; building the store is not timed).

Usage: python bench/drift.py [--production 100000] [--golden 2000]
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "out"
REFUND_SHARE = 0.09


def messages(rng: random.Random, count: int, refund_share: float) -> list[str]:
    """Customer messages as the demo writes them; ``refund_share`` of them refund requests."""
    from tracegrade.demo import _texts

    texts = []
    for _ in range(count):
        order_id = f"A{rng.randrange(10**6):06d}"
        if rng.random() < refund_share:
            texts.append(_texts.refund_request(rng, order_id))
        else:
            texts.append(_texts.customer_message(rng, "en", order_id))
    return texts


def measure_analysis(production: int, golden: int) -> dict[str, Any]:
    """Run in a child process: time analyze_drift alone."""
    from tracegrade.analysis.drift import DriftSettings, analyze_drift

    rng = random.Random(1)
    golden_texts = messages(rng, golden, 0.0)
    production_texts = messages(rng, production, REFUND_SHARE)
    keys = [("bench", f"s{i}") for i in range(production)]
    started = time.perf_counter()
    report = analyze_drift(golden_texts, production_texts, keys, DriftSettings(suggest=20))
    elapsed = time.perf_counter() - started
    return _result(elapsed, report)


def build_store(path: Path, production: int, golden: int) -> None:
    """A SQLite store with ``production`` agent spans and a golden dataset."""
    from tracegrade.datasets import GoldenItem, add_items, create_dataset
    from tracegrade.spans import Span, SpanKind
    from tracegrade.store import open_store

    rng = random.Random(1)
    golden_texts = messages(rng, golden, 0.0)
    production_texts = messages(rng, production, REFUND_SHARE)
    start = datetime(2026, 11, 8, tzinfo=UTC)
    with open_store(f"sqlite:///{path}") as store:
        store.upsert_spans(
            Span(source="bench", span_id=f"s{i}", trace_id=f"t{i}", name="support_agent",
                 kind=SpanKind.AGENT, start_time=start + timedelta(seconds=i), input=text,
                 output="ok", release="r2")
            for i, text in enumerate(production_texts))
        create_dataset(store, "golden")
        add_items(store, "golden", [
            GoldenItem(id=f"g{i}", input=text, expected_output="ok",
                       metadata={"span_kind": "agent", "span_name": "support_agent"})
            for i, text in enumerate(golden_texts)])


def measure_end_to_end(path: Path) -> dict[str, Any]:
    """Run in a child process: time dataset_drift on the store."""
    from tracegrade.analysis.drift import DriftSettings, dataset_drift
    from tracegrade.store import open_store

    with open_store(f"sqlite:///{path}") as store:
        started = time.perf_counter()
        report = dataset_drift(store, "golden", settings=DriftSettings(suggest=20))
        elapsed = time.perf_counter() - started
    return _result(elapsed, report)


def _result(elapsed: float, report: Any) -> dict[str, Any]:
    return {
        "seconds": round(elapsed, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "production_n": report.production_n, "golden_n": report.golden_n,
        "clusters": len(report.clusters), "missing": [c.name for c in report.missing],
        "uncovered_share_of_missing": round(sum(c.uncovered_share for c in report.missing), 4),
        "auc": round(report.auc, 4) if report.auc is not None else None,
        "coverage": round(report.coverage, 4) if report.coverage is not None else None,
        "suggestions": len(report.suggestions),
    }


def child(args: list[str]) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return its JSON."""
    done = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True,
                          text=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    """Parse arguments; run both measurements (or one, in a child)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--production", type=int, default=100_000)
    parser.add_argument("--golden", type=int, default=2_000)
    parser.add_argument("--measure", choices=["analysis", "end_to_end"])
    parser.add_argument("--store", type=Path)
    args = parser.parse_args()
    if args.measure == "analysis":
        print(json.dumps(measure_analysis(args.production, args.golden)))
        return
    if args.measure == "end_to_end":
        print(json.dumps(measure_end_to_end(args.store)))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    store = OUT / f"drift_{args.production}_{args.golden}.db"
    if not store.exists():
        build_store(store, args.production, args.golden)
    sizes = ["--production", str(args.production), "--golden", str(args.golden)]
    print(json.dumps({
        "benchmark": "drift", "production": args.production, "golden": args.golden,
        "refund_share": REFUND_SHARE, "embedding": "tfidf-svd",
        "analysis": child([*sizes, "--measure", "analysis"]),
        "end_to_end": child([*sizes, "--measure", "end_to_end", "--store", str(store)]),
    }, indent=2))


if __name__ == "__main__":
    main()
