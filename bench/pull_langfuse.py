"""Benchmark: ``tracegrade pull`` of 100k Langfuse observations vs. a bare paging loop.

The fake Langfuse server (``tests/fakes/langfuse.py``, spec checks off) runs in its own process
with 100,000 observations, as a remote service would. In the same run:

* the floor: a bare httpx loop paging ``GET /api/public/v2/observations`` (1,000 a page, the
  same field groups and window) that only parses each page's JSON;
* tracegrade: ``pull_sources`` of the same window into a fresh SQLite store (mapping every
  observation, keeping the newest versions, committing page by page with its cursor).

Target: tracegrade takes at most 1.3x the floor. Prints one JSON document.

    python bench/pull_langfuse.py [--observations 100000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.langfuse import PUBLIC_KEY, SECRET_KEY, FakeLangfuse, observation  # noqa: E402

from tracegrade.config import parse_config  # noqa: E402
from tracegrade.sources.langfuse import V2_FIELDS  # noqa: E402
from tracegrade.sources.pull import pull_sources  # noqa: E402
from tracegrade.store import open_store  # noqa: E402

PAGE_SIZE = 1000
START = datetime(2026, 11, 1, tzinfo=UTC)


def serve(count: int, ready: Any, stop: Any) -> None:
    """The fake Langfuse, in its own process, holding ``count`` observations."""
    fake = FakeLangfuse(validate=False)
    kinds = ("GENERATION", "TOOL", "GENERATION", "SPAN")
    fake.add(*(observation(i, START + timedelta(milliseconds=250 * i),
                           kind=kinds[i % len(kinds)], payload_chars=200)
               for i in range(count)))
    fake.server.start()
    ready.put(fake.server.url)
    stop.wait()
    fake.server.stop()


def window(count: int) -> tuple[datetime, datetime]:
    return START, START + timedelta(milliseconds=250 * count + 1000)


def floor(url: str, count: int) -> tuple[float, int, int]:
    """A bare paging loop: request, parse, follow the cursor. Returns seconds, rows, bytes."""
    start, end = window(count)
    params: dict[str, Any] = {"fields": V2_FIELDS, "limit": PAGE_SIZE,
                              "fromStartTime": _iso(start), "toStartTime": _iso(end)}
    rows = size = 0
    began = time.perf_counter()
    with httpx.Client(base_url=url, auth=(PUBLIC_KEY, SECRET_KEY), timeout=60) as client:
        while True:
            response = client.get("/api/public/v2/observations", params=params)
            response.raise_for_status()
            body = orjson.loads(response.content)
            rows += len(body["data"])
            size += len(response.content)
            cursor = body["meta"].get("cursor")
            if not cursor:
                break
            params["cursor"] = cursor
    return time.perf_counter() - began, rows, size


def pull(url: str, count: int, directory: Path, run: int) -> tuple[float, int, dict[str, Any]]:
    """tracegrade's pull of the same window into a fresh SQLite store."""
    start, end = window(count)
    config = parse_config({"sources": [{
        "name": "prod", "type": "langfuse", "host": url, "public_key": PUBLIC_KEY,
        "secret_key": SECRET_KEY, "page_size": PAGE_SIZE}]})
    with open_store(f"sqlite:///{directory / f'pull-{run}.db'}") as store:
        began = time.perf_counter()
        summary = pull_sources(store, config, since=start, until=end)
        seconds = time.perf_counter() - began
        stored = store.count_spans()
    return seconds, stored, summary.sources[0].as_dict()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--observations", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2,
                        help="Runs of each; the fastest counts (noise only adds time).")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    server = context.Process(target=serve, args=(args.observations, ready, stop), daemon=True)
    server.start()
    url = ready.get(timeout=600)
    try:
        floors, pulls = [], []
        with tempfile.TemporaryDirectory() as directory:
            for run in range(args.repeat):
                floors.append(floor(url, args.observations))
                pulls.append(pull(url, args.observations, Path(directory), run))
    finally:
        stop.set()
        server.join(30)
    floor_s = min(f[0] for f in floors)
    pull_s = min(p[0] for p in pulls)
    stored = pulls[-1][1]
    print(orjson.dumps({
        "benchmark": "pull_langfuse",
        "observations": args.observations,
        "page_size": PAGE_SIZE,
        "response_mb_total": round(floors[0][2] / 1e6, 1),
        "floor_seconds": round(floor_s, 2),
        "floor_rows_per_s": round(args.observations / floor_s),
        "pull_seconds": round(pull_s, 2),
        "pull_spans_per_s": round(stored / pull_s),
        "ratio_to_floor": round(pull_s / floor_s, 3),
        "target_ratio": 1.3,
        "meets_target": pull_s / floor_s <= 1.3,
        "stored_spans": stored,
        "all_runs": {"floor_seconds": [round(f[0], 2) for f in floors],
                     "pull_seconds": [round(p[0], 2) for p in pulls]},
        "pull_summary": {k: pulls[-1][2][k] for k in ("pages", "inserted", "skipped",
                                                      "bad_records", "error")},
    }, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
