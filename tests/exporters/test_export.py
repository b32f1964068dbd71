"""Verdicts back to Langfuse and Braintrust, datasets out, human labels in — against the fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import insert, select

from tests.fakes._server import Reset, Status, Truncate
from tests.fakes.braintrust import FakeBraintrust, log_row
from tests.fakes.fixtures import braintrust_source, config_of, langfuse_source
from tests.fakes.langfuse import FakeLangfuse, observation
from tracegrade.cli import cli
from tracegrade.config import Config
from tracegrade.exporters import (
    ExportError,
    export_verdicts,
    import_remote_labels,
    push_dataset,
    stable_id,
)
from tracegrade.sources.pull import pull_sources
from tracegrade.spans import utc_now
from tracegrade.store import Store, VerdictRow
from tracegrade.store import _schema as t

NOW = datetime.now(tz=UTC)  # reset for each test by the wall_clock fixture
pytestmark = pytest.mark.usefixtures("wall_clock")


def verdict(source: str, span_id: str, outcome: str, *, grader: str = "order_status_present",
            version: str = "v1", reason: str = "") -> VerdictRow:
    return VerdictRow(source=source, span_id=span_id, grader=grader, grader_version=version,
                      outcome=outcome, reason=reason or f"{outcome} for {span_id}",
                      inclusion_probability=0.5, run_id="run-1")


def exports(store: Store) -> list[tuple[str, str, str]]:
    e = t.exports.c
    with store.engine.connect() as conn:
        return sorted((row[0], row[1], row[2]) for row in conn.execute(
            select(e.span_id, e.grader_version, e.destination)))


@pytest.fixture
def langfuse_pulled(store: Store, fake_langfuse: FakeLangfuse) -> Config:
    fake_langfuse.add(*[observation(i, NOW - timedelta(minutes=30) + timedelta(seconds=i))
                        for i in range(6)])
    config = config_of(langfuse_source(fake_langfuse))
    assert pull_sources(store, config).sources[0].counts.inserted == 6
    return config


@pytest.fixture
def braintrust_pulled(store: Store, fake_braintrust: FakeBraintrust) -> Config:
    fake_braintrust.insert(*[log_row(i, NOW - timedelta(minutes=30) + timedelta(seconds=i))
                             for i in range(6)])
    config = config_of(braintrust_source(fake_braintrust))
    assert pull_sources(store, config).sources[0].counts.inserted == 6
    return config


# -- Langfuse scores ---------------------------------------------------------------------------


def test_verdicts_become_boolean_langfuse_scores_on_their_observations(
        store: Store, fake_langfuse: FakeLangfuse, langfuse_pulled: Config) -> None:
    store.insert_verdicts([verdict("prod", "obs-0000001", "pass"),
                           verdict("prod", "obs-0000002", "fail", reason="no order_status"),
                           verdict("prod", "obs-0000003", "error"),
                           verdict("prod", "obs-0000004", "skip")])

    summary = export_verdicts(store, langfuse_pulled, "prod")

    assert summary.destinations[0].exported == 2 and not summary.failed
    by_observation = {s["observationId"]: s for s in fake_langfuse.scores.values()}
    assert set(by_observation) == {"obs-0000001", "obs-0000002"}
    failed = by_observation["obs-0000002"]
    assert (failed["dataType"], failed["value"], failed["name"]) == (
        "BOOLEAN", 0, "order_status_present")
    assert (failed["comment"], failed["traceId"]) == ("no order_status", "trace-0000000")
    assert failed["metadata"]["tracegrade_grader_version"] == "v1"
    assert by_observation["obs-0000001"]["value"] == 1
    assert exports(store) == [("obs-0000001", "v1", "prod"), ("obs-0000002", "v1", "prod")]


def test_re_exporting_sends_nothing_and_a_new_version_updates_the_same_score(
        store: Store, fake_langfuse: FakeLangfuse, langfuse_pulled: Config) -> None:
    store.insert_verdicts([verdict("prod", "obs-0000001", "pass")])
    export_verdicts(store, langfuse_pulled, "prod")
    posts = fake_langfuse.score_posts

    again = export_verdicts(store, langfuse_pulled, "prod")
    assert again.destinations[0].exported == 0 and fake_langfuse.score_posts == posts

    store.insert_verdicts([verdict("prod", "obs-0000001", "fail", version="v2")])
    export_verdicts(store, langfuse_pulled, "prod")
    (score,) = fake_langfuse.scores.values()
    assert score["value"] == 0 and score["metadata"]["tracegrade_grader_version"] == "v2"
    assert score["id"] == stable_id("langfuse-score", "prod", "obs-0000001",
                                    "order_status_present")


def test_a_raised_inclusion_probability_is_exported_again(
        store: Store, fake_langfuse: FakeLangfuse, langfuse_pulled: Config) -> None:
    # The score kept the old probability (weight 10 where the store now says 2).
    store.insert_verdicts([verdict("prod", "obs-0000001", "pass")])  # at 0.5
    export_verdicts(store, langfuse_pulled, "prod")
    assert store.raise_inclusion_probabilities(
        [("prod", "obs-0000001", "order_status_present", "v1", 0.8)]) == 1
    again = export_verdicts(store, langfuse_pulled, "prod")
    (score,) = fake_langfuse.scores.values()
    assert again.destinations[0].exported == 1
    assert score["metadata"]["tracegrade_inclusion_probability"] == 0.8


def test_only_verdicts_of_spans_from_that_source_are_exported(
        store: Store, fake_langfuse: FakeLangfuse, langfuse_pulled: Config) -> None:
    from tests.conftest import make_span

    store.write_span_batch([make_span(1, source="import")])
    store.insert_verdicts([verdict("import", "span-000001", "pass"),
                           verdict("prod", "obs-0000005", "pass")])
    export_verdicts(store, langfuse_pulled)
    assert [s["observationId"] for s in fake_langfuse.scores.values()] == ["obs-0000005"]


def test_an_interrupted_export_keeps_what_was_accepted_and_resumes(
        store: Store, fake_langfuse: FakeLangfuse, langfuse_pulled: Config) -> None:
    store.insert_verdicts([verdict("prod", f"obs-{i:07d}", "pass") for i in range(6)])
    fake_langfuse.server.faults.add("/api/public/scores", *[Status(503)] * 5, after=3)

    failed = export_verdicts(store, langfuse_pulled, "prod")

    assert failed.failed and "HTTP 503" in (failed.destinations[0].error or "")
    assert failed.destinations[0].exported == 3 and len(exports(store)) == 3

    resumed = export_verdicts(store, langfuse_pulled, "prod")

    assert resumed.destinations[0].exported == 3 and len(exports(store)) == 6
    assert len(fake_langfuse.scores) == 6
    assert fake_langfuse.score_posts == 6  # nothing accepted was sent twice


def test_a_score_the_service_refuses_is_reported_and_the_rest_go_on(
        store: Store, fake_langfuse: FakeLangfuse, langfuse_pulled: Config) -> None:
    store.insert_verdicts([verdict("prod", f"obs-{i:07d}", "pass") for i in range(3)])
    fake_langfuse.server.faults.add("/api/public/scores",
                                    Status(400, body={"message": "observation not found"}))
    summary = export_verdicts(store, langfuse_pulled, "prod").destinations[0]
    assert (summary.exported, summary.rejected, summary.error) == (2, 1, None)
    assert "observation not found" in summary.failures[0]
    # A refused verdict is not recorded, so the next export tries it again.
    assert export_verdicts(store, langfuse_pulled, "prod").destinations[0].exported == 1


def test_a_wrong_langfuse_key_stops_the_export_at_the_first_refusal(
        store: Store, fake_langfuse: FakeLangfuse, langfuse_pulled: Config) -> None:
    store.insert_verdicts([verdict("prod", f"obs-{i:07d}", "pass") for i in range(6)])
    wrong = config_of(langfuse_source(fake_langfuse, secret_key="sk-lf-revoked"))

    summary = export_verdicts(store, wrong, "prod")

    [destination] = summary.destinations
    assert summary.failed and "401" in (destination.error or "")
    assert (destination.exported, destination.rejected) == (0, 0)
    # One refused request, not one a verdict (each ~3 s under Langfuse's default rate limit).
    assert len(fake_langfuse.server.requests_to("/api/public/scores")) == 1
    assert exports(store) == []


def test_a_wrong_braintrust_key_stops_the_export_without_trying_item_by_item(
        store: Store, fake_braintrust: FakeBraintrust, braintrust_pulled: Config) -> None:
    store.insert_verdicts([verdict("bt", f"span-{i:07d}", "pass") for i in range(6)])
    wrong = config_of(braintrust_source(fake_braintrust, api_key="sk-revoked"))

    summary = export_verdicts(store, wrong, "bt")

    [destination] = summary.destinations
    assert summary.failed and "401" in (destination.error or "")
    assert (destination.exported, destination.rejected) == (0, 0)
    feedback = f"/v1/project_logs/{braintrust_pulled.sources[0].project_id}/feedback"
    assert len(fake_braintrust.server.requests_to(feedback)) == 1
    assert exports(store) == []


def test_an_unknown_destination_is_a_user_error(store: Store, langfuse_pulled: Config) -> None:
    with pytest.raises(ExportError, match="no langfuse or braintrust source named 'nope'"):
        export_verdicts(store, langfuse_pulled, "nope")


# -- Braintrust feedback -----------------------------------------------------------------------


def test_verdicts_become_braintrust_feedback_on_their_rows(
        store: Store, fake_braintrust: FakeBraintrust, braintrust_pulled: Config) -> None:
    store.insert_verdicts([verdict("bt", "span-0000001", "pass"),
                           verdict("bt", "span-0000002", "fail", reason="made up an order"),
                           verdict("bt", "span-0000003", "error")])

    summary = export_verdicts(store, braintrust_pulled, "bt")

    assert summary.destinations[0].exported == 2 and fake_braintrust.feedback_posts == 1
    assert fake_braintrust.feedback["row-0000002"]["scores"] == {"order_status_present": 0}
    assert fake_braintrust.feedback["row-0000002"]["comments"] == ["made up an order"]
    assert fake_braintrust.feedback["row-0000001"]["scores"] == {"order_status_present": 1}
    assert export_verdicts(store, braintrust_pulled, "bt").destinations[0].exported == 0


def test_feedback_logged_on_a_row_does_not_make_its_span_graded_again(
        store: Store, fake_braintrust: FakeBraintrust, braintrust_pulled: Config) -> None:
    store.insert_verdicts([verdict("bt", "span-0000001", "pass"),
                           verdict("bt", "span-0000002", "fail")])
    export_verdicts(store, braintrust_pulled, "bt")

    again = pull_sources(store, braintrust_pulled, since=NOW - timedelta(hours=1)).sources[0]

    # The feedback made new versions of both rows (scores merged, new _xact_id): the spans
    # are updated, but their verdicts stand and are not exported again.
    assert (again.counts.updated, again.counts.regraded) == (2, 0)
    assert store.count_verdicts() == 2
    assert export_verdicts(store, braintrust_pulled, "bt").destinations[0].exported == 0


def test_a_refused_feedback_batch_is_retried_item_by_item(
        store: Store, fake_braintrust: FakeBraintrust, braintrust_pulled: Config) -> None:
    from tests.conftest import make_span

    store.write_span_batch([make_span(7, source="bt", span_id="span-gone",
                                      attributes={"braintrust.id": "row-deleted"})])
    store.insert_verdicts([verdict("bt", "span-0000001", "pass"),
                           verdict("bt", "span-gone", "pass"),
                           verdict("bt", "span-0000004", "fail")])

    summary = export_verdicts(store, braintrust_pulled, "bt").destinations[0]

    assert (summary.exported, summary.rejected) == (2, 1)
    assert set(fake_braintrust.feedback) == {"row-0000001", "row-0000004"}


def test_feedback_whose_answer_was_cut_off_counts_as_sent_and_is_not_repeated(
        store: Store, fake_braintrust: FakeBraintrust, braintrust_pulled: Config) -> None:
    # Every feedback call logs its comment again: a call the service applied must not be
    # resent, or the row gets the comment twice.
    store.insert_verdicts([verdict("bt", "span-0000001", "fail", reason="looks wrong")])
    fake_braintrust.server.faults.add("/v1/project_logs", Truncate(0.3), method="POST")

    first = export_verdicts(store, braintrust_pulled, "bt").destinations[0]
    again = export_verdicts(store, braintrust_pulled, "bt").destinations[0]

    assert (first.exported, first.error, again.exported) == (1, None, 0)
    assert fake_braintrust.feedback_posts == 1
    assert fake_braintrust.feedback["row-0000001"]["comments"] == ["looks wrong"]


@pytest.mark.parametrize("fault", [Status(500), Status(503), Reset()])
def test_feedback_whose_fate_is_unknown_is_not_retried_in_the_run(
        store: Store, fake_braintrust: FakeBraintrust, braintrust_pulled: Config,
        fault: Status | Reset) -> None:
    store.insert_verdicts([verdict("bt", "span-0000001", "fail", reason="looks wrong")])
    fake_braintrust.server.faults.add("/v1/project_logs", fault, method="POST")

    first = export_verdicts(store, braintrust_pulled, "bt").destinations[0]
    second = export_verdicts(store, braintrust_pulled, "bt").destinations[0]

    assert first.exported == 0 and first.error and "not resent" in first.error
    assert len(fake_braintrust.server.requests_to("/v1/project_logs")) == 2  # one a run
    assert (second.exported, second.error) == (1, None)
    assert fake_braintrust.feedback["row-0000001"]["comments"] == ["looks wrong"]


def test_rate_limited_feedback_is_retried_after_the_wait(
        store: Store, fake_braintrust: FakeBraintrust, braintrust_pulled: Config) -> None:
    store.insert_verdicts([verdict("bt", "span-0000001", "pass")])
    fake_braintrust.server.faults.add("/v1/project_logs", Status(429, {"Retry-After": "0"}),
                                      method="POST")

    summary = export_verdicts(store, braintrust_pulled, "bt").destinations[0]

    assert (summary.exported, summary.error) == (1, None)
    assert len(fake_braintrust.server.requests_to("/v1/project_logs")) == 2
    assert fake_braintrust.feedback_posts == 1


# -- the commands ------------------------------------------------------------------------------


def write_config(config: Config, **extra: object) -> Path:
    sources = [s.model_dump(mode="json") for s in config.sources]
    for source, original in zip(sources, config.sources, strict=True):
        for key in ("secret_key", "api_key"):
            if key in source:
                source[key] = getattr(original, key).get_secret_value()
    path = Path("tracegrade.yaml")
    path.write_text(yaml.safe_dump({"sources": sources, **extra}), encoding="utf-8")
    return path


def test_grade_export_grades_then_scores_in_langfuse(
        store: Store, store_url: str, fake_langfuse: FakeLangfuse,
        langfuse_pulled: Config) -> None:
    write_config(langfuse_pulled, graders=[{"name": "llm_ok", "type": "status_ok",
                                            "applies_to": {"kind": "llm"}}])
    result = CliRunner().invoke(cli, ["--store", store_url, "grade", "--export",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.output)
    assert report["export"]["destinations"][0]["exported"] == 6  # every generation
    assert {s["name"] for s in fake_langfuse.scores.values()} == {"llm_ok"}


def test_export_command_reports_json_and_exits_1_when_a_destination_fails(
        store: Store, store_url: str, fake_langfuse: FakeLangfuse,
        langfuse_pulled: Config) -> None:
    write_config(langfuse_pulled)
    store.insert_verdicts([verdict("prod", "obs-0000001", "pass")])
    fake_langfuse.server.faults.add("/api/public/scores", *[Status(502)] * 5)

    failed = CliRunner().invoke(cli, ["--store", store_url, "export", "prod"])
    ok = CliRunner().invoke(cli, ["--store", store_url, "export", "--format", "json"])

    assert failed.exit_code == 1 and "HTTP 502" in failed.output
    assert ok.exit_code == 0
    assert orjson.loads(ok.output)["destinations"][0]["exported"] == 1


def test_export_of_an_unknown_grader_is_a_one_line_error(
        store: Store, store_url: str, fake_langfuse: FakeLangfuse,
        langfuse_pulled: Config) -> None:
    write_config(langfuse_pulled, graders=[{"name": "llm_ok", "type": "status_ok",
                                            "applies_to": {"kind": "llm"}}])
    store.insert_verdicts([verdict("prod", "obs-0000001", "pass")])

    typo = CliRunner().invoke(cli, ["--store", store_url, "export", "--grader", "nope"])
    assert typo.exit_code == 2, typo.output
    assert typo.stderr.strip().splitlines() == [
        "Error: no grader named 'nope' in the config or the store (graders: llm_ok, "
        "order_status_present)"]
    assert fake_langfuse.scores == {}

    stored = CliRunner().invoke(cli, ["--store", store_url, "export", "--grader",
                                      "order_status_present", "--format", "json"])
    assert stored.exit_code == 0, stored.output  # known from its verdicts alone
    assert orjson.loads(stored.stdout)["destinations"][0]["exported"] == 1
    with pytest.raises(ExportError, match="'nope'"):
        export_verdicts(store, langfuse_pulled, graders=["nope"])


# -- datasets ----------------------------------------------------------------------------------


def seed_dataset(store: Store, source: str, span_ids: list[str], trace_id: str) -> None:
    now = utc_now()
    with store.engine.begin() as conn:
        conn.execute(insert(t.datasets).values(name="golden", description="known cases",
                                               created_at=now))
        conn.execute(insert(t.dataset_items), [
            {"dataset": "golden", "item_id": f"item-{i}", "input": {"q": f"order {i}?"},
             "expected_output": {"status": "shipped"}, "source": source, "span_id": span_id,
             "trace_id": trace_id, "valid_as_of": now, "time_sensitive": i == 0,
             "item_metadata": {"why": "regression"}, "created_at": now}
            for i, span_id in enumerate(span_ids)])


def test_push_dataset_to_langfuse_creates_it_and_upserts_items(
        store: Store, fake_langfuse: FakeLangfuse, langfuse_pulled: Config) -> None:
    seed_dataset(store, "prod", ["obs-0000001", "obs-0000002"], "trace-0000000")

    first = push_dataset(store, "golden", "prod", config=langfuse_pulled)
    again = push_dataset(store, "golden", "prod", config=langfuse_pulled)

    assert (first.pushed, again.pushed) == (2, 2) and first.remote_dataset_id
    assert list(fake_langfuse.datasets) == ["golden"]
    assert len(fake_langfuse.dataset_items) == 2  # re-pushing updated, not duplicated
    item = fake_langfuse.dataset_items[stable_id("langfuse-dataset-item", "golden", "item-0")]
    assert (item["sourceObservationId"], item["sourceTraceId"]) == ("obs-0000001",
                                                                   "trace-0000000")
    assert item["expectedOutput"] == {"status": "shipped"}
    assert item["metadata"]["time_sensitive"] is True


def test_push_dataset_to_braintrust_inserts_rows_with_their_origin(
        store: Store, fake_braintrust: FakeBraintrust, braintrust_pulled: Config) -> None:
    seed_dataset(store, "bt", ["span-0000001", "span-0000002"], "span-0000001")

    first = push_dataset(store, "golden", "bt", config=braintrust_pulled)
    push_dataset(store, "golden", "bt", config=braintrust_pulled)

    rows = fake_braintrust.dataset_rows[first.remote_dataset_id or ""]
    assert len(rows) == 2
    event = rows[stable_id("braintrust-dataset-item", "golden", "item-1")]
    assert event["origin"]["id"] == "row-0000002" and event["expected"] == {"status": "shipped"}


def test_pushing_an_unknown_dataset_is_a_user_error(store: Store,
                                                    langfuse_pulled: Config) -> None:
    with pytest.raises(ExportError, match="no dataset named 'missing'"):
        push_dataset(store, "missing", "prod", config=langfuse_pulled)


# -- labels ------------------------------------------------------------------------------------


def labels(store: Store) -> list[tuple[str, str, str, str | None]]:
    c = t.labels.c
    with store.engine.connect() as conn:
        return sorted((r[0], r[1], r[2], r[3]) for r in conn.execute(
            select(c.span_id, c.criterion, c.label, c.critique)))


@pytest.mark.parametrize("v3", [True, False])
def test_langfuse_annotations_become_labels(store: Store, fake_langfuse: FakeLangfuse,
                                            langfuse_pulled: Config, v3: bool) -> None:
    fake_langfuse.v3_scores_enabled = v3
    for child in ("obs-0000004", "obs-0000005"):  # trace-0000001 gets a single root span
        fake_langfuse.update(child, parentObservationId="obs-0000003")
    pull_sources(store, langfuse_pulled, since=NOW - timedelta(hours=1))
    fake_langfuse.add_annotation("s1", "order_status_present", 1, observation_id="obs-0000001",
                                 trace_id="trace-0000000", comment="status is there")
    fake_langfuse.add_annotation("s2", "order_status_present", 0, observation_id="obs-0000004",
                                 trace_id="trace-0000001")
    fake_langfuse.add_annotation("s3", "tone", "fail", data_type="CATEGORICAL",
                                 trace_id="trace-0000001")  # on the trace: its root span
    fake_langfuse.add_annotation("s4", "helpfulness", 0.7, data_type="NUMERIC",
                                 observation_id="obs-0000002", trace_id="trace-0000000")
    fake_langfuse.scores["api-score"] = {**fake_langfuse.scores["s1"], "id": "api-score",
                                         "source": "API"}

    result = import_remote_labels(store, "prod", config=langfuse_pulled)

    assert (result.scores_read, result.inserted, result.not_binary) == (4, 3, 1)
    assert labels(store) == [
        ("obs-0000001", "order_status_present", "pass", "status is there"),
        ("obs-0000003", "tone", "fail", None),
        ("obs-0000004", "order_status_present", "fail", None),
    ]
    assert import_remote_labels(store, "prod", config=langfuse_pulled).inserted == 0


def test_braintrust_human_review_scores_become_labels(
        store: Store, fake_braintrust: FakeBraintrust, braintrust_pulled: Config) -> None:
    fake_braintrust.add_review_score("accuracy", "categorical")
    fake_braintrust.add_review_score("auto_check", "online")
    fake_braintrust.update("row-0000001", scores={"accuracy": 1, "auto_check": 0})
    fake_braintrust.update("row-0000002", scores={"accuracy": 0})
    fake_braintrust.update("row-0000003", scores={"accuracy": 0.5})

    result = import_remote_labels(store, "bt", config=braintrust_pulled)

    assert (result.inserted, result.not_binary) == (2, 1)
    assert labels(store) == [("span-0000001", "accuracy", "pass", None),
                             ("span-0000002", "accuracy", "fail", None)]


def test_a_verdict_replaced_while_it_was_sent_is_not_marked_exported(
        store: Store, langfuse_pulled: Config) -> None:
    """An import changes a span (dropping its verdict) and a grade stores the new verdict while
    the old one is on its way: the new one must not look exported (the destination holds the
    old value), so the next export sends it. Export records are keyed by span and grader, so
    recording the old verdict's acceptance marked the new one."""
    from tracegrade.exporters._verdicts import _pending, record_exports

    store.insert_verdicts([verdict("prod", f"obs-{i:07d}", "pass") for i in range(2)])
    sent = _pending(store, "prod", [], 0, 10)
    with store.engine.begin() as conn:  # the import drops obs-0's verdict, grade adds another
        conn.execute(t.verdicts.delete().where(t.verdicts.c.span_id == "obs-0000000"))
    store.insert_verdicts([verdict("prod", "obs-0000000", "fail")])
    record_exports(store, "prod", [(item, f"remote-{item.span_id}") for item in sent])
    assert [row[0] for row in exports(store)] == ["obs-0000001"]
    (waiting,) = _pending(store, "prod", [], 0, 10)
    assert (waiting.span_id, waiting.outcome) == ("obs-0000000", "fail")
