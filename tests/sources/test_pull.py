"""The pull engine and ``tracegrade pull``: choosing sources, windows, and what it reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import orjson
import pytest
import yaml
from click.testing import CliRunner

from tests.fakes._server import Status
from tests.fakes.braintrust import FakeBraintrust, log_row
from tests.fakes.fixtures import braintrust_source, config_of, langfuse_source, stored_ids
from tests.fakes.langfuse import SECRET_KEY, FakeLangfuse, observation
from tracegrade.cli import cli
from tracegrade.cli._pull import Moment
from tracegrade.config import ConfigError
from tracegrade.sources.pull import load_cursor, pull_sources, reset_cursor
from tracegrade.store import Store

NOW = datetime.now(tz=UTC)  # reset for each test by the wall_clock fixture
pytestmark = pytest.mark.usefixtures("wall_clock")


def test_unknown_or_unpullable_sources_are_user_errors(store: Store,
                                                       fake_langfuse: FakeLangfuse) -> None:
    config = config_of(langfuse_source(fake_langfuse), {"name": "live", "type": "otlp"})
    with pytest.raises(ConfigError, match=r"no source named 'nope' .*sources: live, prod"):
        pull_sources(store, config, ["nope"])
    with pytest.raises(ConfigError, match="run `tracegrade serve`"):
        pull_sources(store, config, ["live"])
    with pytest.raises(ConfigError, match="must be before --until"):
        pull_sources(store, config, since=NOW, until=NOW - timedelta(hours=1))


def test_every_source_is_pulled_and_one_failing_does_not_stop_the_others(
        store: Store, fake_langfuse: FakeLangfuse, fake_braintrust: FakeBraintrust) -> None:
    fake_langfuse.add(*[observation(i, NOW - timedelta(minutes=5, seconds=i)) for i in range(3)])
    fake_braintrust.insert(*[log_row(i, NOW - timedelta(minutes=5)) for i in range(4)])
    fake_langfuse.server.faults.add("/api/public/v2/observations", *[Status(500)] * 5)
    config = config_of(langfuse_source(fake_langfuse), braintrust_source(fake_braintrust))

    summary = pull_sources(store, config)

    assert [s.source for s in summary.failed] == ["prod"]
    assert len(stored_ids(store, "bt")) == 4 and stored_ids(store, "prod") == []
    assert load_cursor(store, "prod").watermark is None
    assert pull_sources(store, config, ["prod"]).sources[0].counts.inserted == 3


def test_trace_file_sources_are_re_imported_idempotently(store: Store, workspace: Path) -> None:
    line = {"span_id": "s1", "trace_id": "t1", "name": "step", "kind": "llm",
            "start_time": "2026-11-01T10:00:00Z"}
    Path("spans.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
    config = config_of({"name": "files", "type": "jsonl", "paths": ["*.jsonl"]})
    first = pull_sources(store, config).sources[0]
    second = pull_sources(store, config).sources[0]
    assert (first.counts.inserted, second.counts.inserted, second.counts.unchanged) == (1, 0, 1)


def test_a_time_window_with_a_file_source_selected_is_a_user_error(
        store: Store, workspace: Path, fake_langfuse: FakeLangfuse) -> None:
    config = config_of({"name": "files", "type": "jsonl", "paths": ["*.jsonl"]},
                       langfuse_source(fake_langfuse))
    since = NOW - timedelta(days=1)
    with pytest.raises(ConfigError, match="file source\\(s\\) files are always re-imported"):
        pull_sources(store, config, since=since)
    with pytest.raises(ConfigError, match="file source"):
        pull_sources(store, config, ["files"], until=NOW)
    assert pull_sources(store, config, ["prod"], since=since).sources[0].error is None


def test_a_reset_source_reads_its_history_again(store: Store,
                                                fake_langfuse: FakeLangfuse) -> None:
    fake_langfuse.add(observation(1, NOW - timedelta(days=2)))
    config = config_of(langfuse_source(fake_langfuse))
    pull_sources(store, config)
    fake_langfuse.add(observation(2, NOW - timedelta(days=2)))
    assert pull_sources(store, config).sources[0].counts.inserted == 0
    reset_cursor(store, "prod")
    assert pull_sources(store, config).sources[0].counts.inserted == 1


def test_the_pull_command_reports_json_and_exits_1_when_a_source_fails(
        store: Store, store_url: str, fake_langfuse: FakeLangfuse,
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake_langfuse.add(*[observation(i, NOW - timedelta(minutes=3)) for i in range(3)])
    source = {**langfuse_source(fake_langfuse), "secret_key": "${LF_SECRET}"}
    Path("tracegrade.yaml").write_text(yaml.safe_dump({"sources": [source]}), encoding="utf-8")
    monkeypatch.setenv("LF_SECRET", SECRET_KEY)

    ok = CliRunner().invoke(cli, ["--store", store_url, "pull", "--format", "json"])
    fake_langfuse.server.faults.add("/api/public/v2/observations", *[Status(503)] * 5)
    failed = CliRunner().invoke(cli, ["--store", store_url, "pull", "prod"])

    assert ok.exit_code == 0, ok.output
    assert orjson.loads(ok.output)["sources"][0]["inserted"] == 3
    assert failed.exit_code == 1
    assert "HTTP 503" in failed.output and "resumes" in failed.output
    assert SECRET_KEY not in failed.output + ok.output


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
    ("2026-11-01T08:30:00Z", datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),
    ("2026-11-01T08:30:00+02:00", datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),
])
def test_times_parse_as_utc_unless_they_say_otherwise(text: str, expected: datetime) -> None:
    assert Moment().convert(text, None, None) == expected


def test_relative_times_count_back_from_now() -> None:
    before = datetime.now(tz=UTC)
    moment = Moment().convert("6h", None, None)
    after = datetime.now(tz=UTC)
    assert before - timedelta(hours=6) <= moment <= after - timedelta(hours=6)
    with pytest.raises(click.BadParameter, match="not a time"):
        Moment().convert("yesterday-ish", None, None)


def test_the_pull_command_prints_each_skipped_observation_on_one_line(
        store: Store, store_url: str, fake_langfuse: FakeLangfuse) -> None:
    bad = {**observation(7, NOW - timedelta(minutes=3)), "id": "obs-" + "x" * 120,
           "endTime": "2026-11-01T25:61:00Z"}
    fake_langfuse.add(observation(1, NOW - timedelta(minutes=3)), bad)
    Path("tracegrade.yaml").write_text(yaml.safe_dump({"sources": [
        langfuse_source(fake_langfuse)]}), encoding="utf-8")

    result = CliRunner().invoke(cli, ["--store", store_url, "pull"])

    assert result.exit_code == 0, result.output
    skipped = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 1, result.stderr
    assert "x" * 120 in skipped[0]
    assert "endTime '2026-11-01T25:61:00Z' is not a timestamp" in skipped[0]
    # The bad row is off-spec on purpose (a malformed record); the fixture checks the rest.
    assert [v for v in fake_langfuse.violations if "25:61" not in v] == []
    fake_langfuse.violations.clear()
