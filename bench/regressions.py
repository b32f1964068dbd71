"""Benchmark: regression analysis over 1M verdicts (20 graders x 10 releases) in SQLite.

Builds the store once (bench/out/regressions.db; ~50,000 spans x 20 graders), then times the
analysis a user runs: ``find_regressions`` with strata (span name) and two slice dimensions
(model, environment), the per-release ``pass_rates`` behind ``tracegrade report``, the watch's
sequential check, and the single aggregate query underneath them all.

    python bench/regressions.py [--rebuild]

Prints one JSON document. The issue's target: the analysis finishes in under 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tracegrade.analysis import RegressionSettings, find_regressions, pass_rates
from tracegrade.analysis._aggregate import tally_verdicts
from tracegrade.store import open_store
from tracegrade.watch import detect

OUT = Path(__file__).resolve().parent / "out"
DB = OUT / "regressions.db"
GRADERS, RELEASES, SPANS_PER_RELEASE = 20, 10, 5_000
SETTINGS = RegressionSettings(strata=("name",), slices=("model", "environment"))


def _timestamp(moment: datetime) -> str:
    # SQLAlchemy's SQLite DateTime storage format (naive UTC), written directly for speed.
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def build(path: Path) -> dict[str, int]:
    """Write 50,000 spans and 1,000,000 verdicts with raw sqlite3 (setup, not timed)."""
    path.unlink(missing_ok=True)
    open_store(f"sqlite:///{path}").close()  # creates the schema through the migrations
    rng = random.Random(5)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    now = _timestamp(base)
    spans, verdicts = [], []
    for release in range(RELEASES):
        start = base + timedelta(days=7 * release)
        for i in range(SPANS_PER_RELEASE):
            span_id = f"s{release:02d}{i:06d}"
            name = "ChatCompletion" if i % 3 else "lookup_order"
            model = "gpt-4.1-mini" if i % 50 else "o4-mini"
            environment = "production-eu" if i % 40 == 0 else "production"
            spans.append(("bench", span_id, f"t{release}{i // 3}", name,
                          "llm" if name == "ChatCompletion" else "tool", f"v{release}",
                          environment, _timestamp(start + timedelta(seconds=i * 10)), "ok",
                          model, f"h{span_id}", now, now))
            for g in range(GRADERS):
                # Grader 0 regresses in the last release; the rest stay as they were.
                p_fail = 0.05 + 0.01 * (g % 5) + (0.1 if g == 0 and release == 9 else 0.0)
                outcome = "fail" if rng.random() < p_fail else (
                    "error" if rng.random() < 0.005 else "pass")
                probability = 1.0 if name == "lookup_order" else 0.5
                verdicts.append(("bench", span_id, f"grader_{g:02d}", "v1", outcome, "",
                                 probability, "bench", now))
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "insert into spans (source, span_id, trace_id, name, kind, release, environment, "
            "start_time, status, model, content_hash, ingested_at, updated_at) values "
            "(?,?,?,?,?,?,?,?,?,?,?,?,?)", spans)
        conn.executemany(
            "insert into verdicts (source, span_id, grader, grader_version, outcome, reason, "
            "inclusion_probability, run_id, created_at) values (?,?,?,?,?,?,?,?,?)", verdicts)
    return {"spans": len(spans), "verdicts": len(verdicts)}


def timed(run: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """The best of ``repeats`` wall times (seconds) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the benchmark store")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    built = None
    build_seconds = 0.0
    if args.rebuild or not DB.exists():
        started = time.perf_counter()
        built = build(DB)
        build_seconds = time.perf_counter() - started
    with open_store(f"sqlite:///{DB}") as store:
        verdicts = store.count_verdicts()
        aggregate_s, tallies = timed(lambda: tally_verdicts(
            store, "span", (*SETTINGS.strata, *SETTINGS.slices)))
        regressions_s, report = timed(lambda: find_regressions(store, settings=SETTINGS))
        rates_s, rates = timed(lambda: pass_rates(store, settings=SETTINGS))
        watch_s, detection = timed(lambda: detect(store, SETTINGS, 0.05))
    print(json.dumps({
        "benchmark": "regressions",
        "verdicts": verdicts, "graders": GRADERS, "releases": RELEASES,
        "built": built, "build_s": round(build_seconds, 1),
        "aggregate_query_s": round(aggregate_s, 3),
        "aggregated_cells": len(tallies.cells),
        "find_regressions_s": round(regressions_s, 3),
        "comparisons_tested": report.tests,
        "regressed": [f.grader for f in report.regressed],
        "pass_rates_s": round(rates_s, 3), "rates": len(rates),
        "watch_detect_s": round(watch_s, 3), "watch_alarms": len(detection.findings),
        "target_s": 5.0, "within_target": regressions_s < 5.0,
        "load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }, indent=2))


if __name__ == "__main__":
    main()
