"""Deploy markers: assignment by start time and environment, idempotent marking, re-import."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from tests.conftest import BASE_TIME, make_span
from tracegrade.analysis import RegressionSettings, find_regressions
from tracegrade.cli import cli
from tracegrade.ingest import import_files
from tracegrade.releases import (
    DeployMarkerError,
    deploy_markers,
    list_releases,
    mark_deploy,
)
from tracegrade.sources._base import MappingOptions
from tracegrade.store import Store, VerdictRow

HOUR = timedelta(hours=1)


def test_marking_twice_keeps_the_first_time_unless_told(store: Store) -> None:
    first, outcome = mark_deploy(store, "v1", BASE_TIME)
    assert outcome == "created"
    again, outcome = mark_deploy(store, "v1")
    assert (again.deployed_at, outcome) == (BASE_TIME, "unchanged")
    moved, outcome = mark_deploy(store, "v1", BASE_TIME + HOUR)
    assert (moved.deployed_at, outcome) == (BASE_TIME + HOUR, "moved")
    assert deploy_markers(store) == [moved]


def test_bad_markers_are_refused(store: Store) -> None:
    with pytest.raises(DeployMarkerError, match="1 to 200"):
        mark_deploy(store, "  ")
    with pytest.raises(DeployMarkerError, match="time zone"):
        mark_deploy(store, "v1", datetime(2026, 1, 1))  # noqa: DTZ001 — the mistake under test


def test_spans_belong_to_the_latest_marker_in_their_environment(store: Store) -> None:
    store.upsert_spans([
        make_span(0, start_time=BASE_TIME - HOUR, release=None, environment="prod"),
        make_span(1, start_time=BASE_TIME + HOUR, release=None, environment="prod"),
        make_span(2, start_time=BASE_TIME + 3 * HOUR, release=None, environment="prod"),
        make_span(3, start_time=BASE_TIME + 3 * HOUR, release=None, environment="staging"),
    ])
    mark_deploy(store, "v1", BASE_TIME)
    mark_deploy(store, "v2", BASE_TIME + 2 * HOUR, environment="prod")
    mark_deploy(store, "v3", BASE_TIME + 5 * HOUR)
    releases = {r.name: r for r in list_releases(store, "deploy_markers")}
    assert {name: r.spans for name, r in releases.items()} == {
        None: 1, "v1": 2, "v2": 1, "v3": 0}
    assert releases["v1"].first_span == BASE_TIME + HOUR
    assert releases["v1"].last_span == BASE_TIME + 3 * HOUR  # staging never got v2
    assert [m.environment for m in releases["v2"].deployed] == ["prod"]
    only_prod = {r.name: r.spans for r in list_releases(store, "deploy_markers", "prod")}
    assert only_prod == {None: 1, "v1": 1, "v2": 1, "v3": 0}


def test_reimport_adds_nothing_and_markers_never_touch_spans(store: Store, workspace: Path
                                                             ) -> None:
    """The marker assignment is computed, so content hashes and re-imports are unaffected."""
    path = workspace / "spans.jsonl"
    lines = [make_span(i, start_time=BASE_TIME + i * HOUR, release=None).model_dump(mode="json")
             for i in range(6)]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    options = MappingOptions(source="test")
    assert import_files(store, [path], options).counts.inserted == 6
    mark_deploy(store, "v1", BASE_TIME)
    mark_deploy(store, "v2", BASE_TIME + 3 * HOUR)
    again = import_files(store, [path], options).counts
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 6)
    assert {r.name: r.spans for r in list_releases(store, "deploy_markers")} == {"v1": 3, "v2": 3}
    assert {r.name: r.spans for r in list_releases(store, "span")} == {None: 6}


def test_regressions_compare_marker_releases(store: Store) -> None:
    spans, verdicts = [], []
    for i in range(400):
        later = i >= 200
        spans.append(make_span(i, start_time=BASE_TIME + timedelta(minutes=i), release=None))
        outcome = "fail" if later and i % 4 == 0 else "pass"
        verdicts.append(VerdictRow(source="test", span_id=f"span-{i:06d}", grader="g",
                                   grader_version="v", outcome=outcome, reason="",
                                   inclusion_probability=1.0, run_id="r"))
    store.upsert_spans(spans)
    store.insert_verdicts(verdicts)
    mark_deploy(store, "blue", BASE_TIME)
    mark_deploy(store, "green", BASE_TIME + timedelta(minutes=200))
    report = find_regressions(store, settings=RegressionSettings(releases="deploy_markers"))
    assert (report.baseline, report.candidate) == ("blue", "green")
    assert report.findings[0].candidate.failed == 50
    assert [f.grader for f in report.regressed] == ["g"]


def test_deploy_mark_and_releases_commands(workspace: Path) -> None:
    Path("tracegrade.yaml").write_text("analysis:\n  releases: deploy_markers\n")
    runner = CliRunner()
    marked = runner.invoke(cli, ["deploy", "mark", "2026.11.2", "--at", "2026-11-08T12:00",
                                 "--environment", "production", "--format", "json"])
    assert marked.exit_code == 0, marked.output
    record = orjson.loads(marked.stdout)
    assert record["deployed_at"] == "2026-11-08T12:00:00+00:00"
    assert record["outcome"] == "created"
    retried = runner.invoke(cli, ["deploy", "mark", "2026.11.2", "--environment", "production"])
    assert retried.exit_code == 0 and "Already marked" in retried.stdout
    bad = runner.invoke(cli, ["deploy", "mark", "x", "--at", "yesterday"])
    assert bad.exit_code == 2 and "ISO 8601" in bad.output
    listed = orjson.loads(runner.invoke(cli, ["releases", "--format", "json"]).stdout)
    assert listed == [{"release": "2026.11.2", "spans": 0, "graded_spans": 0, "first_span": None,
                       "last_span": None, "deployed": [
                           {"name": "2026.11.2", "environment": "production",
                            "deployed_at": datetime(2026, 11, 8, 12, tzinfo=UTC).isoformat()}]}]
    table = runner.invoke(cli, ["releases"])
    assert "2026.11.2" in table.stdout and "production" in table.stdout


def test_replayed_spans_keep_their_own_release_under_markers(store: Store) -> None:
    """`tracegrade replay --release rc1` stores spans that start now: they are rc1's, not
    production traffic of whatever release was deployed last."""
    from tracegrade.datasets import REPLAY_SOURCE

    production = [make_span(i, start_time=BASE_TIME + timedelta(minutes=i), release=None)
                  for i in range(400)]
    replayed = [make_span(1000 + i, source=REPLAY_SOURCE, release="rc1",
                          start_time=BASE_TIME + timedelta(days=1, seconds=i))
                for i in range(40)]
    store.upsert_spans([*production, *replayed])
    store.insert_verdicts([
        VerdictRow(source=span.source, span_id=span.span_id, grader="g", grader_version="v",
                   outcome="fail" if span.source == REPLAY_SOURCE else "pass", reason="",
                   inclusion_probability=1.0, run_id="r")
        for span in [*production, *replayed]])
    mark_deploy(store, "blue", BASE_TIME)
    mark_deploy(store, "green", BASE_TIME + timedelta(minutes=200))

    listed = {r.name: r.spans for r in list_releases(store, "deploy_markers")}
    settings = RegressionSettings(releases="deploy_markers")
    default = find_regressions(store, settings=settings)
    named = find_regressions(store, candidate="rc1", settings=settings)

    assert listed == {"blue": 200, "green": 200, "rc1": 40}
    assert (default.baseline, default.candidate) == ("blue", "green")
    assert default.findings[0].candidate.failed == 0 and default.regressed == []
    assert (named.baseline, named.candidate) == ("green", "rc1")
    assert named.findings[0].candidate.failed == 40
