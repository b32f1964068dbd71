"""A store holding every kind of finding, with hostile text in the failing spans."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import BASE_TIME, make_span
from tracegrade.analysis import RegressionReport, RegressionSettings, find_regressions
from tracegrade.analysis.examples import FailingSpan, failing_spans
from tracegrade.store import Store, VerdictRow, open_store

HOSTILE_OUTPUT = '<script>alert("owned")</script></pre><img src=x onerror=alert(1)> | pipe'
"""What a failing span replied: must show up as text, never as markup."""

# (grader, release, environment, passed, failed, errors)
CELLS = [
    ("tool_ok", "r1", "prod", 950, 50, 0), ("tool_ok", "r2", "prod", 700, 300, 4),
    ("reply_ok", "r1", "prod", 3920, 80, 0), ("reply_ok", "r1", "eu", 40, 0, 0),
    ("reply_ok", "r2", "prod", 3920, 80, 0), ("reply_ok", "r2", "eu", 28, 12, 0),
    ("steady", "r1", "prod", 900, 100, 0), ("steady", "r2", "prod", 900, 100, 0),
    ("rare", "r1", "prod", 10, 2, 0), ("rare", "r2", "prod", 12, 1, 0),
    ("tool_ok", "r0", "prod", 960, 40, 0),
]
RELEASE_START = {"r0": -2, "r1": 0, "r2": 1}


def fill(store: Store) -> None:
    """Write the spans and verdicts of ``CELLS``."""
    index = itertools.count()
    for grader, release, environment, passed, failed, errors in CELLS:
        spans, verdicts = [], []
        outcomes = ["pass"] * passed + ["fail"] * failed + ["error"] * errors
        for outcome in outcomes:
            i = next(index)
            spans.append(make_span(
                i, release=release, environment=environment,
                start_time=BASE_TIME + timedelta(days=7 * RELEASE_START[release], seconds=i),
                input={"question": f"order {i}?", "html": "<b>bold</b>"},
                output=HOSTILE_OUTPUT if outcome == "fail" else "fine"))
            verdicts.append(VerdictRow(source="test", span_id=f"span-{i:06d}", grader=grader,
                                       grader_version="v1", outcome=outcome,
                                       reason=f"{grader} said <no> & stop",
                                       inclusion_probability=1.0, run_id="run"))
        store.upsert_spans(spans)
        store.insert_verdicts(verdicts)


@pytest.fixture(scope="session")
def report_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store filled with ``CELLS`` once per session (tests only read it)."""
    path = tmp_path_factory.mktemp("reports") / "reports.db"
    with open_store(f"sqlite:///{path}") as store:
        fill(store)
    return path


@pytest.fixture
def report_store(report_db: Path) -> Iterator[Store]:
    """The filled store, opened."""
    with open_store(f"sqlite:///{report_db}") as store:
        yield store


@pytest.fixture
def report(report_store: Store) -> RegressionReport:
    """r2 vs r1: tool_ok regressed, reply_ok regressed in environment=eu only, steady unchanged,
    rare insufficient."""
    return find_regressions(report_store, settings=RegressionSettings(slices=("environment",)))


@pytest.fixture
def examples(report_store: Store, report: RegressionReport) -> dict[str, list[FailingSpan]]:
    """Failing spans of the regressed graders and slices."""
    return failing_spans(report_store, report, limit=3)
