"""``tracegrade demo``: the whole flow on bundled data, in a fresh temporary workspace."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import yaml

from tracegrade.analysis import (
    PassRate,
    RegressionReport,
    RegressionSettings,
    find_regressions,
    pass_rates,
)
from tracegrade.analysis.regressions import configured
from tracegrade.config import Config, parse_config
from tracegrade.datasets import import_dataset
from tracegrade.graders import build_graders
from tracegrade.grading import GradeSummary, grade
from tracegrade.ingest import ImportSummary, import_files
from tracegrade.labels import import_label_file
from tracegrade.llm import JUDGE_GRADER_TYPES
from tracegrade.store import Store, open_store

DATA_FILE = "support_agent.otlp.jsonl.gz"
DEMO_SOURCE = "demo"
GOLDEN_DATA_FILE = "golden.jsonl"
LABELS_DATA_FILE = "labels.csv"
GOLDEN_DATASET = "golden"

ProgressFactory = Callable[[str, int | None], AbstractContextManager[Callable[[int], None]]]


@dataclass
class DemoResult:
    """Everything the demo produced, for printing."""

    workspace: Path
    imported: ImportSummary
    graded: GradeSummary
    rates: list[PassRate]
    regressions: RegressionReport
    judges_run: bool = False
    """Whether the LLM-judge graders ran (a judge endpoint was configured)."""


JUDGE_MODEL_VARIABLE = "TRACEGRADE_DEMO_JUDGE_MODEL"
ENABLE_JUDGES_HINT = (
    f"LLM-judge graders skipped: set {JUDGE_MODEL_VARIABLE} and OPENAI_API_KEY (or "
    "TRACEGRADE_DEMO_JUDGE_BASE_URL for a local server) to run them; see docs/judges.md")


def judges_configured() -> bool:
    """Whether the environment names a judge model for the demo's LLM-judge graders."""
    return bool(os.environ.get(JUDGE_MODEL_VARIABLE, "").strip())


def demo_config(store_url: str, *, judges: bool | None = None) -> Config:
    """The bundled demo config, pointed at ``store_url``.

    Args:
        store_url: the store to use.
        judges: keep the LLM-judge graders; by default only when :func:`judges_configured`.
    """
    return parse_config(_demo_raw(store_url, judges=judges), "demo/tracegrade.yaml")


def _demo_raw(store_url: str, *, judges: bool | None = None) -> dict[str, Any]:
    text = (files("tracegrade.demo") / "tracegrade.yaml").read_text(encoding="utf-8")
    raw: dict[str, Any] = yaml.safe_load(text)
    raw["store"] = store_url
    if not (judges_configured() if judges is None else judges):
        raw.pop("judges", None)
        raw["graders"] = [g for g in raw["graders"] if g.get("type") not in JUDGE_GRADER_TYPES]
    return raw


CONFIG_HEADER = """\
# The config `tracegrade demo` ran with (its graders, sampling and analysis settings), pointed
# at this workspace's store: `tracegrade --config THIS_FILE regressions` shows what the demo
# showed. Environment references (${...}) are kept as written, never their values.
"""


def run_demo(workspace: Path | None = None, progress: ProgressFactory | None = None) -> DemoResult:
    """Import the bundled traces, grade them, and compare the two releases.

    Args:
        workspace: where the store goes; a fresh temporary directory when None (kept, so the
            user can explore it afterwards).
        progress: makes a progress callback for a named step with an optional total.
    """
    workspace = workspace or Path(tempfile.mkdtemp(prefix="tracegrade-demo-"))
    workspace.mkdir(parents=True, exist_ok=True)
    judges_run = judges_configured()
    raw = _demo_raw(f"sqlite:///{workspace.resolve() / 'tracegrade.db'}", judges=judges_run)
    config = parse_config(raw, "demo/tracegrade.yaml")
    (workspace / "tracegrade.yaml").write_text(
        CONFIG_HEADER + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True),
        encoding="utf-8")
    step = progress or _no_progress
    with open_store(config.store) as store, _data_file() as data:
        with step("Importing demo traces", None) as advance:
            imported = import_files(store, [data], config.mapping(DEMO_SOURCE), progress=advance)
        graders = build_graders(config.graders)
        with step("Grading spans", store.count_spans()) as advance:
            graded = grade(store, graders, config.sampling, progress=advance)
        settings = RegressionSettings.from_config(config.analysis, **configured(config.graders))
        rates = pass_rates(store, settings=settings)
        report = find_regressions(store, settings=settings)
        _import_golden_and_labels(store)
    return DemoResult(workspace, imported, graded, rates, report, judges_run)


def _import_golden_and_labels(store: Store) -> None:
    """The golden dataset and human labels, for ``tracegrade calibrate`` and ``drift golden``."""
    data = files("tracegrade.demo") / "data"
    with as_file(data / GOLDEN_DATA_FILE) as golden, as_file(data / LABELS_DATA_FILE) as labels:
        import_dataset(store, GOLDEN_DATASET, golden,
                       description="Curated conversations of release 2026.11.1")
        import_label_file(store, labels)


@contextmanager
def _data_file() -> Iterator[Path]:
    with as_file(files("tracegrade.demo") / "data" / DATA_FILE) as path:
        yield path


@contextmanager
def _no_progress(_description: str, _total: int | None) -> Iterator[Callable[[int], None]]:
    yield lambda _n: None
