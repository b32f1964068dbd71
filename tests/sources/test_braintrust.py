"""Pulling Braintrust project logs (BTQL, and the fetch API as fallback) into the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes._server import Status
from tests.fakes.braintrust import (
    ORG_NAME,
    PROJECT_ID,
    PROJECT_NAME,
    USER_ID,
    FakeBraintrust,
    log_row,
)
from tests.fakes.fixtures import braintrust_source, config_of, stored_ids
from tests.fakes.spec import braintrust_spec
from tracegrade.sources.braintrust import row_to_span
from tracegrade.sources.pull import load_cursor, pull_sources
from tracegrade.spans import SpanKind, StatusCode
from tracegrade.store import Store

NOW = datetime.now(tz=UTC)  # reset for each test by the wall_clock fixture
pytestmark = pytest.mark.usefixtures("wall_clock")


def seed(fake: FakeBraintrust, count: int, *, minutes_ago: float = 60) -> list[str]:
    """``count`` rows: each trace an LLM root span with a tool child."""
    start = NOW - timedelta(minutes=minutes_ago)
    rows = []
    for i in range(count):
        root = f"span-{i - i % 2:07d}"
        rows.append(log_row(i, start + timedelta(seconds=i),
                            span_type="llm" if i % 2 == 0 else "tool",
                            root=root, parent=None if i % 2 == 0 else root))
    fake.insert(*rows)
    return sorted(row["span_id"] for row in rows)


def test_btql_pull_fills_the_store_exactly_and_a_second_pull_adds_nothing(
        store: Store, fake_braintrust: FakeBraintrust) -> None:
    expected = seed(fake_braintrust, 120)
    config = config_of(braintrust_source(fake_braintrust))

    first = pull_sources(store, config).sources[0]
    second = pull_sources(store, config).sources[0]

    assert stored_ids(store, "bt") == expected
    assert (first.api, first.pages, first.counts.inserted, first.error) == ("btql", 3, 120, None)
    assert (second.counts.inserted, second.counts.updated) == (0, 0)


def test_every_btql_query_is_bounded_by_created_and_pages_with_the_cursor(
        store: Store, fake_braintrust: FakeBraintrust) -> None:
    seed(fake_braintrust, 120)
    pull_sources(store, config_of(braintrust_source(fake_braintrust)))
    queries = fake_braintrust.queries
    assert len(queries) == 3
    assert all(f"FROM project_logs('{PROJECT_ID}')" in q and "WHERE created >= '" in q
               and "AND created < '" in q and "ORDER BY _pagination_key LIMIT 50" in q
               for q in queries)
    assert "OFFSET" not in queries[0] and "OFFSET 'p" in queries[1]


def test_the_cursor_may_come_in_the_x_bt_cursor_header(store: Store,
                                                       fake_braintrust: FakeBraintrust) -> None:
    fake_braintrust.cursor_in_header = True
    expected = seed(fake_braintrust, 120)
    pull_sources(store, config_of(braintrust_source(fake_braintrust)))
    assert stored_ids(store, "bt") == expected


def test_the_project_can_be_named(store: Store, fake_braintrust: FakeBraintrust) -> None:
    expected = seed(fake_braintrust, 10)
    config = config_of(braintrust_source(fake_braintrust, project_id=None, project=PROJECT_NAME))
    pull_sources(store, config)
    assert stored_ids(store, "bt") == expected
    assert fake_braintrust.server.requests_to("/v1/project")[0].param("project_name") \
        == PROJECT_NAME


def test_a_project_name_in_several_organizations_needs_org_name(
        store: Store, fake_braintrust: FakeBraintrust) -> None:
    expected = seed(fake_braintrust, 10)
    fake_braintrust.other_org_projects.append({
        "id": "7f3a9c2e-0b1d-4e5f-8a6b-9c0d1e2f3a4b",
        "org_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "name": PROJECT_NAME,
        "description": None, "created": "2026-02-01T10:00:00.000Z", "deleted_at": None,
        "user_id": USER_ID})
    ambiguous = config_of(braintrust_source(fake_braintrust, project_id=None,
                                            project=PROJECT_NAME))
    chosen = config_of(braintrust_source(fake_braintrust, project_id=None, project=PROJECT_NAME,
                                         org_name=ORG_NAME))

    refused = pull_sources(store, ambiguous).sources[0]
    pulled = pull_sources(store, chosen).sources[0]

    assert refused.error is not None and "set org_name or project_id" in refused.error
    assert pulled.error is None and stored_ids(store, "bt") == expected
    assert fake_braintrust.server.requests_to("/v1/project")[-1].param("org_name") == ORG_NAME


def test_rows_map_to_spans_with_tree_tokens_model_release_and_errors(
        store: Store, fake_braintrust: FakeBraintrust) -> None:
    seed(fake_braintrust, 4)
    fake_braintrust.insert(log_row(9, NOW - timedelta(minutes=30),
                                   error={"message": "tool timed out"}, span_type="tool"))
    pull_sources(store, config_of(braintrust_source(fake_braintrust, release_key="release")))

    llm, tool, failed = (store.get_span("bt", f"span-{i:07d}") for i in (2, 3, 9))
    assert llm is not None and tool is not None and failed is not None
    assert (llm.kind, llm.model, llm.release, llm.environment) == (
        SpanKind.LLM, "gpt-4.1-mini", "2026.11.1", "production")
    assert (llm.input_tokens, llm.output_tokens, llm.total_tokens) == (120, 30, 150)
    assert llm.latency_ms is not None and abs(llm.latency_ms - 800) < 1
    assert (tool.kind, tool.trace_id, tool.parent_id) == (SpanKind.TOOL, "span-0000002",
                                                          "span-0000002")
    assert tool.attributes["braintrust.id"] == "row-0000003"
    assert (failed.status.code, failed.status.message) == (StatusCode.ERROR, "tool timed out")


def test_scorer_spans_are_skipped(store: Store, fake_braintrust: FakeBraintrust) -> None:
    seed(fake_braintrust, 4)
    fake_braintrust.insert(log_row(50, NOW - timedelta(minutes=20), span_type="score",
                                   purpose="scorer"))
    result = pull_sources(store, config_of(braintrust_source(fake_braintrust))).sources[0]
    assert result.skipped == 1 and "span-0000050" not in stored_ids(store, "bt")


def test_a_row_updated_while_paging_is_stored_once_in_its_newest_version(
        store: Store, fake_braintrust: FakeBraintrust) -> None:
    expected = seed(fake_braintrust, 120)

    def update_a_row_already_read(page: int) -> None:
        if page == 1:
            fake_braintrust.update("row-0000004", output={"role": "assistant", "content": "v2"})

    fake_braintrust.on_page = update_a_row_already_read
    result = pull_sources(store, config_of(braintrust_source(fake_braintrust))).sources[0]

    span = store.get_span("bt", "span-0000004")
    assert stored_ids(store, "bt") == expected
    assert result.rows == 121  # the updated row came back on a later page
    assert span is not None and span.output["content"] == "v2"


def test_without_btql_the_fetch_api_is_used_and_old_versions_are_dropped(
        store: Store, fake_braintrust: FakeBraintrust) -> None:
    fake_braintrust.btql_enabled = False
    expected = seed(fake_braintrust, 60, minutes_ago=10)
    fake_braintrust.update("row-0000005", output={"role": "assistant", "content": "newest"})
    config = config_of(braintrust_source(fake_braintrust))

    result = pull_sources(store, config).sources[0]
    again = pull_sources(store, config).sources[0]

    span = store.get_span("bt", "span-0000005")
    assert result.api == "fetch" and stored_ids(store, "bt") == expected
    assert span is not None and span.output["content"] == "newest"
    assert (again.counts.inserted, again.counts.updated) == (0, 0)


def test_after_a_full_first_read_the_fetch_fallback_stops_at_versions_it_has_read(
        store: Store, fake_braintrust: FakeBraintrust) -> None:
    fake_braintrust.btql_enabled = False
    seed(fake_braintrust, 200, minutes_ago=24 * 60)  # yesterday
    config = config_of(braintrust_source(fake_braintrust))
    first = pull_sources(store, config).sources[0]
    recent = [log_row(1000 + i, NOW - timedelta(minutes=2, seconds=i)) for i in range(5)]
    fake_braintrust.insert(*recent)

    second = pull_sources(store, config).sources[0]

    assert first.pages == 5  # the first pull has no mark: it reads the whole history
    # The next one stops after the first page wholly at or below its mark (page 1 holds the 5
    # new rows and 45 old ones, page 2 only old ones).
    assert second.pages == 2
    assert second.counts.inserted == 5
    assert len(stored_ids(store, "bt")) == 205


def test_new_rows_behind_a_page_of_updated_old_rows_are_pulled(
        store: Store, fake_braintrust: FakeBraintrust) -> None:
    # Feedback, reviews and SDK merges give old rows new, higher _xact_ids and keep their
    # created: the fetch API then serves a whole page of old rows before the new ones.
    fake_braintrust.btql_enabled = False
    old = seed(fake_braintrust, 60, minutes_ago=24 * 60)
    config = config_of(braintrust_source(fake_braintrust))
    pull_sources(store, config)
    new = [log_row(2000 + i, NOW - timedelta(minutes=1, seconds=i)) for i in range(10)]
    fake_braintrust.insert(*new)
    for i in range(50):
        fake_braintrust.update(f"row-{i:07d}", scores={"helpful": 1.0})

    result = pull_sources(store, config).sources[0]

    assert result.pages >= 2 and result.counts.inserted == 10
    assert stored_ids(store, "bt") == sorted([*old, *(row["span_id"] for row in new)])
    assert (pull_sources(store, config).sources[0].counts.inserted) == 0


def test_a_fetch_backfill_reads_past_the_mark(store: Store,
                                              fake_braintrust: FakeBraintrust) -> None:
    fake_braintrust.btql_enabled = False
    config = config_of(braintrust_source(fake_braintrust))
    seed(fake_braintrust, 100, minutes_ago=3 * 24 * 60)  # three days ago
    pull_sources(store, config, since=NOW - timedelta(days=1))  # reads all, stores none
    assert stored_ids(store, "bt") == []

    backfill = pull_sources(store, config, since=NOW - timedelta(days=4)).sources[0]

    assert backfill.counts.inserted == 100


def test_a_killed_fetch_read_resumes_with_the_mark_it_began_with(
        store: Store, fake_braintrust: FakeBraintrust) -> None:
    fake_braintrust.btql_enabled = False
    config = config_of(braintrust_source(fake_braintrust))
    seed(fake_braintrust, 60, minutes_ago=24 * 60)
    pull_sources(store, config)
    mark = load_cursor(store, "bt").mark
    fresh = [log_row(3000 + i, NOW - timedelta(minutes=3, seconds=i)) for i in range(120)]
    fake_braintrust.insert(*fresh)
    fake_braintrust.server.faults.add("/v1/project_logs", *[Status(500)] * 5, after=1)

    failed = pull_sources(store, config).sources[0]
    state = load_cursor(store, "bt")
    resumed = pull_sources(store, config).sources[0]

    assert failed.error and failed.counts.inserted == 50
    assert state.checkpoint is not None and state.checkpoint.resume["stop_at"] == mark
    assert resumed.error is None and len(stored_ids(store, "bt")) == 180
    new_mark = load_cursor(store, "bt").mark
    assert int(new_mark) > int(mark)


@pytest.mark.parametrize("where", ["redirect", "object"])
def test_a_btql_answer_behind_a_redirect_keeps_its_cursor(
        store: Store, fake_braintrust: FakeBraintrust, where: str) -> None:
    fake_braintrust.btql_redirect = where
    expected = seed(fake_braintrust, 120)
    result = pull_sources(store, config_of(braintrust_source(fake_braintrust))).sources[0]
    assert result.error is None and result.pages == 3
    assert stored_ids(store, "bt") == expected


def test_a_full_btql_page_without_a_cursor_stops_the_pull_instead_of_skipping_rows(
        store: Store, fake_braintrust: FakeBraintrust) -> None:
    fake_braintrust.btql_cursor_lost = True
    seed(fake_braintrust, 120)
    result = pull_sources(store, config_of(braintrust_source(fake_braintrust))).sources[0]
    assert result.error is not None and "full page of 50 rows without a cursor" in result.error
    assert load_cursor(store, "bt").watermark is None  # the window is not marked as read
    assert load_cursor(store, "bt").checkpoint is not None


def test_row_to_span_reads_unix_second_metrics() -> None:
    row = log_row(1, datetime(2026, 11, 3, 12, 0, tzinfo=UTC))
    span = row_to_span(row, "bt")
    assert span.start_time == datetime(2026, 11, 3, 11, 59, 59, tzinfo=UTC)


def test_the_spec_check_catches_a_drifted_row() -> None:
    row = log_row(1, NOW)
    row["_xact_id"], row["_pagination_key"] = "1", "p1"
    assert braintrust_spec().check_component("ProjectLogsEvent", row) == []
    row["project_id"] = "not-a-uuid"
    row["metrics"]["prompt_tokens"] = "many"
    problems = braintrust_spec().check_component("ProjectLogsEvent", row)
    assert any("project_id" in p for p in problems)
    assert any("prompt_tokens" in p for p in problems)
