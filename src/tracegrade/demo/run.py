"""``tracegrade demo``: the whole flow on bundled data, in a fresh temporary workspace."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path

import yaml

from tracegrade.analysis import PassRate, RegressionReport, find_regressions, pass_rates
from tracegrade.config import Config, parse_config
from tracegrade.graders import build_graders
from tracegrade.grading import GradeSummary, grade
from tracegrade.ingest import ImportSummary, import_files
from tracegrade.store import open_store

DATA_FILE = "support_agent.otlp.jsonl.gz"

ProgressFactory = Callable[[str, int | None], AbstractContextManager[Callable[[int], None]]]


@dataclass
class DemoResult:
    """Everything the demo produced, for printing."""

    workspace: Path
    imported: ImportSummary
    graded: GradeSummary
    rates: list[PassRate]
    regressions: RegressionReport


def demo_config(store_url: str) -> Config:
    """The bundled demo config, pointed at ``store_url``."""
    text = (files("tracegrade.demo") / "tracegrade.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    raw["store"] = store_url
    return parse_config(raw, "demo/tracegrade.yaml")


def run_demo(workspace: Path | None = None, progress: ProgressFactory | None = None) -> DemoResult:
    """Import the bundled traces, grade them, and compare the two releases.

    Args:
        workspace: where the store goes; a fresh temporary directory when None (kept, so the
            user can explore it afterwards).
        progress: makes a progress callback for a named step with an optional total.
    """
    workspace = workspace or Path(tempfile.mkdtemp(prefix="tracegrade-demo-"))
    config = demo_config(f"sqlite:///{workspace / 'tracegrade.db'}")
    step = progress or _no_progress
    with open_store(config.store) as store, _data_file() as data:
        with step("Importing demo traces", None) as advance:
            imported = import_files(store, [data], config.mapping("demo"), progress=advance)
        graders = build_graders(config.graders)
        with step("Grading spans", store.count_spans()) as advance:
            graded = grade(store, graders, config.sampling, progress=advance)
        rates = pass_rates(store)
        report = find_regressions(store)
    return DemoResult(workspace, imported, graded, rates, report)


@contextmanager
def _data_file() -> Iterator[Path]:
    with as_file(files("tracegrade.demo") / "data" / DATA_FILE) as path:
        yield path


@contextmanager
def _no_progress(_description: str, _total: int | None) -> Iterator[Callable[[int], None]]:
    yield lambda _n: None
