"""Benchmark: import N spans from OTLP JSON into SQLite and run 6 deterministic graders.

Runs, each in a fresh process so peak RSS is its own:
- ``tracegrade``: ``import_files`` into a new SQLite store grading with 6 graders as it writes
  (``tracegrade import --grade``), or with ``--mode after`` importing first and grading after;
- ``floor``: a bare loop — orjson parse of the same file plus the same 6 checks, no storage.

Usage: python bench/ingest_grade.py [--spans 200000] [--skip-floor] [--mode inline|after]
                                    [--repeat N]
With ``--repeat N`` the two run in N alternating pairs and the ratio is the median of the
pairs' ratios (on a shared machine the floor moves as much as tracegrade does).
Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import regex

OUT = Path(__file__).parent / "out"
SPANS_PER_TRACE = 11860 / 3000  # the demo generator's mix (agent, llm, tool, llm)

GRADERS = ["order_status_present", "reply_finds_order", "llm_latency_3s",
           "reply_under_120_words", "llm_status_ok", "reply_script_latin"]


def ensure_input(spans: int) -> Path:
    """Generate (once) an uncompressed OTLP JSON lines file with about ``spans`` spans."""
    from tracegrade.demo.generate import generate

    path = OUT / f"otlp_{spans}.jsonl"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        gz = path.with_suffix(".jsonl.gz")
        generate(gz, traces_per_release=round(spans / SPANS_PER_TRACE / 2))
        with gzip.open(gz, "rb") as src, path.open("wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        gz.unlink()
    return path


_ID = re.compile(rb'"(traceId|spanId|parentSpanId)":"([0-9a-f])')


def replicate(base: Path, copies: int) -> Path:
    """A file of ``copies`` copies of ``base``, each copy's ids made distinct by a hex prefix.

    Generating a million spans with the demo generator needs gigabytes; rewriting the first hex
    digit of every id of a 200k-span file streams instead.
    """
    path = OUT / f"{base.stem}_x{copies}.jsonl"
    if path.exists():
        return path
    with path.open("wb") as out:
        for copy in range(copies):
            replacement = b'"\\1":"' + f"{copy:x}".encode()
            with base.open("rb") as lines:
                for line in lines:
                    out.write(_ID.sub(replacement, line))
    return path


def run_tracegrade(path: Path, mode: str = "inline") -> dict[str, Any]:
    """Import and grade with tracegrade's library.

    ``inline`` is `tracegrade import --grade` (graded while written); ``after`` is
    `tracegrade import` followed by `tracegrade grade` (every span read back).
    """
    import yaml

    from tracegrade.config import parse_config
    from tracegrade.demo.generate import DEMO_CONFIG
    from tracegrade.graders import build_graders
    from tracegrade.grading import InlineGrading, grade
    from tracegrade.ingest import default_workers, import_files
    from tracegrade.store import open_store

    db = OUT / "bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["store"] = f"sqlite:///{db}"
    config = parse_config(raw)
    graders = build_graders(config.graders, only=GRADERS)
    memory = _MemorySampler()
    started = time.perf_counter()
    with memory, open_store(config.store) as store:
        if mode == "inline":  # `tracegrade import --grade`
            with InlineGrading(store, graders, config.sampling) as inline:
                imported = import_files(store, [path], config.mapping("bench"), grade=inline)
            assert not inline.deferred, "every bench grader runs inline"
            verdicts = inline.summary.verdicts_written
            import_s = time.perf_counter() - started
        else:  # `tracegrade import` then `tracegrade grade`
            imported = import_files(store, [path], config.mapping("bench"))
            import_s = time.perf_counter() - started
            verdicts = grade(store, graders, config.sampling).verdicts_written
    total_s = time.perf_counter() - started
    # Worker processes (a parallel import) have their own peaks; forked, they share pages
    # with this process, so parent + workers × largest worker is an upper bound of the total.
    workers_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"mode": mode, "spans": imported.spans, "verdicts": verdicts,
            "workers": default_workers() if _parallel_used(path) else 0,
            "import_s": round(import_s, 2), "grade_s": round(total_s - import_s, 2),
            "wall_s": round(total_s, 2), "peak_rss_mb": _peak_rss_mb(),
            "largest_worker_peak_rss_mb": round(workers_rss, 1),
            "peak_total_pss_mb": round(memory.peak_kb / 1024, 1),
            "cpu_s": round(_cpu_s(resource.RUSAGE_SELF) + _cpu_s(resource.RUSAGE_CHILDREN), 1)}


class _MemorySampler:
    """The peak, sampled every 0.5 s, of this process's and its workers' summed PSS.

    PSS splits pages shared between forked processes among them, so the sum is the memory
    the import really holds (adding each process's RSS would count shared pages repeatedly).
    The sampling runs in a process of its own: a thread here would make the import think it
    cannot fork its workers safely.
    """

    def __init__(self) -> None:
        self.peak_kb = 0

    def __enter__(self) -> _MemorySampler:
        self._sampler = subprocess.Popen(
            [sys.executable, __file__, "--sample-memory", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *_: object) -> None:
        output, _ = self._sampler.communicate("")  # closing stdin stops it
        self.peak_kb = int(output.strip() or 0)


def _sample_memory(pid: int) -> None:
    """Print the peak summed PSS of ``pid`` and its children once stdin closes."""
    import select

    peak = 0
    while not select.select([sys.stdin], [], [], 0.5)[0]:
        peak = max(peak, sum(_pss_kb(member) for member in _family(pid)
                             if member != os.getpid()))
    sys.stdin.read()
    print(peak)


def _family(me: int) -> list[int]:
    pids = [me]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:  # parent pid
                pids.append(int(entry.name))
    return pids


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _parallel_used(path: Path) -> bool:
    from tracegrade.ingest import PARALLEL_MIN_BYTES, default_workers

    return default_workers() > 1 and path.stat().st_size >= PARALLEL_MIN_BYTES


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


_NOT_FOUND = re.compile(
    r"(could ?n.?t|can.?t|cannot|unable to) (find|locate)|no order (with|matching)"
    r"|no (he podido|pude) encontrar|no encuentro", re.IGNORECASE)
_NON_LATIN = regex.compile(r"[^\P{L}\p{Latin}]")


def run_floor(path: Path) -> dict[str, Any]:
    """The same six checks on the parsed file, with no mapping and no storage."""
    started = time.perf_counter()
    spans = 0
    tally = dict.fromkeys(GRADERS, 0)
    with path.open("rb") as lines:
        for line in lines:
            for resource_spans in orjson.loads(line)["resourceSpans"]:
                for scope in resource_spans["scopeSpans"]:
                    for span in scope["spans"]:
                        spans += 1
                        _floor_checks(span, tally)
    wall = time.perf_counter() - started
    return {"spans": spans, "passes": tally, "wall_s": round(wall, 2),
            "peak_rss_mb": _peak_rss_mb()}


def _floor_checks(span: dict[str, Any], tally: dict[str, int]) -> None:
    attrs = {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}
    kind = attrs.get("openinference.span.kind")
    if kind == "TOOL":
        output = orjson.loads(attrs.get("output.value", "null"))
        tally["order_status_present"] += isinstance(output, dict) and "order_status" in output
    elif kind == "LLM":
        latency = (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e6
        tally["llm_latency_3s"] += latency <= 3000
        tally["llm_status_ok"] += span.get("status", {}).get("code") != 2
    elif kind == "AGENT":
        reply = str(attrs.get("output.value", ""))
        tally["reply_finds_order"] += _NOT_FOUND.search(reply) is None
        tally["reply_under_120_words"] += len(reply.split()) <= 120
        tally["reply_script_latin"] += _NON_LATIN.search(reply) is None


def _peak_rss_mb() -> float:
    # VmHWM is this process image's own peak; ru_maxrss would carry over the parent's peak
    # across fork + exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _in_subprocess(phase: str, path: Path, mode: str = "inline") -> dict[str, Any]:
    output = subprocess.run([sys.executable, __file__, "--phase", phase, "--input", str(path),
                             "--mode", mode], check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(output)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument("--copies", type=int, default=1,
                        help="import this many id-shifted copies of the --spans file "
                             "(e.g. --copies 5 for 1M spans, the RSS target)")
    parser.add_argument("--mode", choices=["inline", "after"], default="inline",
                        help="inline: `import --grade` (default); after: `import` then `grade`")
    parser.add_argument("--repeat", type=int, default=1,
                        help="alternating tracegrade/floor pairs; the ratio is their median")
    parser.add_argument("--phase", choices=["tracegrade", "floor"])
    parser.add_argument("--sample-memory", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path)
    args = parser.parse_args()
    if args.sample_memory:
        _sample_memory(args.sample_memory)
        return
    if args.phase:
        print(json.dumps(run_tracegrade(args.input, args.mode) if args.phase == "tracegrade"
                         else run_floor(args.input)))
        return
    path = ensure_input(args.spans)
    if args.copies > 1:
        path = replicate(path, args.copies)
    results: dict[str, Any] = {"input": str(path), "input_mb": round(path.stat().st_size / 2**20)}
    runs, floors = [], []
    for _ in range(max(args.repeat, 1)):
        runs.append(_in_subprocess("tracegrade", path, args.mode))
        if not args.skip_floor:
            floors.append(_in_subprocess("floor", path))
    ratios = [run["wall_s"] / floor["wall_s"] for run, floor in zip(runs, floors, strict=False)]
    results["tracegrade"] = runs[ratios.index(statistics.median_high(ratios))] if ratios \
        else runs[0]
    if floors:
        results["floor"] = floors[ratios.index(statistics.median_high(ratios))]
        results["ratio"] = round(statistics.median_high(ratios), 2)
    if len(runs) > 1:
        results["all_runs"] = {"tracegrade_wall_s": [run["wall_s"] for run in runs],
                               "floor_wall_s": [floor["wall_s"] for floor in floors],
                               "ratios": [round(ratio, 2) for ratio in ratios]}
    tg = results["tracegrade"]
    results["spans_per_s"] = round(tg["spans"] / tg["wall_s"])
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
