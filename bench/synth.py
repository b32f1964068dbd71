"""Benchmark: `tracegrade init --from-code` — static analysis speed, and the dry run's cost.

- ``analysis``: the four fixture applications of tests/synth (Python and TypeScript) copied
  ``--copies`` times into one tree; time to analyse it, propose graders and render the config.
- ``dry_run``: the demo app's graders dry-run on the bundled demo traces (11,860 spans, imported
  into a throwaway SQLite store, graded on up to ``--sample`` spans per release).

Usage: python bench/synth.py [--copies 50] [--sample 2000]
Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "synth" / "fixtures"


def bench_analysis(copies: int) -> dict[str, Any]:
    """Analyse ``copies`` copies of the fixture apps as one application."""
    from tracegrade.synth import Settings, analyse, propose, render_config

    with tempfile.TemporaryDirectory() as workdir:
        for index in range(copies):
            shutil.copytree(FIXTURES, Path(workdir) / f"copy{index:03d}")
        started = time.perf_counter()
        facts = analyse(Path(workdir))
        analysed = time.perf_counter()
        synthesis = propose(facts, "otlp", judges=True)
        render_config(synthesis, workdir, Settings())
        finished = time.perf_counter()
    lines = sum(len(p.read_text(encoding="utf-8").splitlines())
                for p in FIXTURES.rglob("*") if p.suffix in (".py", ".ts")) * copies
    return {"files": len(facts.files), "lines": lines, "llm_calls": len(facts.llm_calls),
            "proposals": len(synthesis.proposals),
            "analyse_s": round(analysed - started, 3),
            "propose_and_render_s": round(finished - analysed, 3),
            "files_per_s": round(len(facts.files) / (analysed - started), 1),
            "lines_per_s": round(lines / (analysed - started))}


def bench_dry_run(sample: int) -> dict[str, Any]:
    """Dry-run the demo app's graders on the bundled demo traces."""
    from tracegrade.demo.generate import APP_SOURCE, BUNDLED_DATA
    from tracegrade.synth import InitOptions, init_from_code

    with tempfile.TemporaryDirectory() as workdir:
        options = InitOptions(APP_SOURCE.parent, Path(workdir) / "tracegrade.yaml",
                              traces=[BUNDLED_DATA], judges=False, sample_size=sample)
        started = time.perf_counter()
        result = init_from_code(options)
        elapsed = time.perf_counter() - started
    assert result.dry_run is not None
    graded = sum(sum(t.outcomes.values()) for t in result.dry_run.trials)
    return {"spans_imported": result.dry_run.spans, "verdicts": graded,
            "graders": len(result.dry_run.trials), "sample_per_release": sample,
            "seconds": round(elapsed, 2)}


def main() -> None:
    """Run both benchmarks and print their figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=50)
    parser.add_argument("--sample", type=int, default=2000)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    print(json.dumps({"analysis": bench_analysis(args.copies),
                      "dry_run": bench_dry_run(args.sample),
                      "python": sys.version.split()[0]}, indent=2))


if __name__ == "__main__":
    main()
