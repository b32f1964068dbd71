"""Benchmark: 2,000 LLM-judge calls against a fake OpenAI endpoint (200 ms per answer), 50 at once.

In one run, against the same fake server (its own process, asyncio, so it is not the bottleneck):

- ``floor``: a bare ``AsyncOpenAI`` + ``asyncio.Semaphore(50)`` loop sending the same 2,000
  judge requests (the typed ``chat.completions.create``);
- ``tracegrade``: ``grade()`` with one ``llm_judge`` grader over 2,000 stored LLM spans: render
  the rubric, look the cache up, call within the limiter, parse, cache, commit verdicts.

Each reports wall time against the ideal bound (calls x latency / concurrency = 8 s) and the
process CPU time it used. Target: tracegrade <= 1.15x the bound.

Usage: python bench/judge_throughput.py [--calls 2000] [--latency 0.2] [--concurrency 50]
       [--repeat 1]
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUBRIC = ("Criterion: the reply answers the user's question.\n"
          "The user's request:\n{{ span.user_message }}\n\nThe reply to grade:\n"
          "{{ span.output_text }}")


def start_fake(latency: float) -> tuple[subprocess.Popen[str], str]:
    """The fake judge in its own process, and its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--latency", str(latency)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def fake_requests(base_url: str) -> int:
    """How many completion requests the fake has answered so far."""
    import httpx

    stats: dict[str, int] = httpx.get(base_url.removesuffix("/v1") + "/stats").json()
    return stats["requests"]


def spans(calls: int) -> list[Any]:
    """LLM spans whose prompts all differ (so nothing is answered from the cache)."""
    from tracegrade.spans import Span, SpanKind

    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [Span(source="bench", span_id=f"s{i:06d}", trace_id=f"t{i:06d}", name="chat",
                 kind=SpanKind.LLM, start_time=start + timedelta(seconds=i),
                 end_time=start + timedelta(seconds=i + 1),
                 input={"messages": [{"role": "user", "content": f"Where is order A{i:06d}?"}]},
                 output=f"Order A{i:06d} ships on Monday with UPS.")
            for i in range(calls)]


def run_tracegrade(base_url: str, calls: int, concurrency: int) -> dict[str, Any]:
    """grade() with one llm_judge grader over ``calls`` spans in a fresh SQLite store."""
    from tracegrade.config import SamplingConfig, parse_config
    from tracegrade.graders import build_graders
    from tracegrade.grading import grade
    from tracegrade.store import open_store

    config = parse_config({
        "judges": {"default": {"base_url": base_url, "api_key": "bench", "model": "gpt-4.1-mini",
                               "max_concurrency": concurrency, "timeout_s": 30}},
        "graders": [{"name": "answers", "type": "llm_judge", "applies_to": {"kind": "llm"},
                     "rubric": RUBRIC}]})
    graders = build_graders(config.graders)
    before = fake_requests(base_url)
    with tempfile.TemporaryDirectory() as folder, \
            open_store(f"sqlite:///{folder}/bench.db") as store:
        store.upsert_spans(spans(calls))
        wall, cpu = time.perf_counter(), time.process_time()
        summary = grade(store, graders, SamplingConfig())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert summary.verdicts_written == calls, summary.as_dict()
    assert fake_requests(base_url) - before == calls
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "cost_usd": round(summary.total_cost, 4)}


def run_floor(base_url: str, calls: int, concurrency: int) -> dict[str, Any]:
    """A bare AsyncOpenAI + semaphore loop sending the same judge requests."""
    from openai import AsyncOpenAI

    from tracegrade.llm._rubrics import VERDICT_SYSTEM, verdict_schema

    async def main() -> None:
        client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=30)
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int) -> str | None:
            async with gate:
                completion = await client.chat.completions.create(
                    model="gpt-4.1-mini", temperature=0.0, max_tokens=1024,
                    messages=[{"role": "system", "content": VERDICT_SYSTEM},
                              {"role": "user", "content": f"Where is order A{index:06d}? -> "
                                                          f"Order A{index:06d} ships Monday."}],
                    response_format={"type": "json_schema", "json_schema": {
                        "name": "verdict", "schema": verdict_schema(), "strict": True}})
                return completion.choices[0].message.content

        await asyncio.gather(*(one(i) for i in range(calls)))
        await client.close()

    before = fake_requests(base_url)
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(main())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert fake_requests(base_url) - before == calls
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}


def main() -> None:
    """Run both, print JSON."""
    parser = argparse.ArgumentParser(description="LLM-judge throughput against a fake endpoint.")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=1)
    options = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    ideal = max(options.calls * options.latency / options.concurrency, 1e-9)
    process, base_url = start_fake(options.latency)
    runs = []
    try:
        for _ in range(options.repeat):
            floor = run_floor(base_url, options.calls, options.concurrency)
            ours = run_tracegrade(base_url, options.calls, options.concurrency)
            runs.append({"floor": {**floor, "x_bound": round(floor["wall_s"] / ideal, 3)},
                         "tracegrade": {**ours, "x_bound": round(ours["wall_s"] / ideal, 3)}})
    finally:
        process.terminate()
        process.wait()
    best = min(runs, key=lambda run: run["tracegrade"]["wall_s"])
    print(json.dumps({
        "calls": options.calls, "latency_s": options.latency,
        "concurrency": options.concurrency, "ideal_bound_s": ideal, "target_x_bound": 1.15,
        "runs": runs, "meets_target": best["tracegrade"]["x_bound"] <= 1.15,
        "cpus": os.cpu_count(), "load_avg_1m_before_end": round(os.getloadavg()[0], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
