"""Pulling Braintrust project logs (BTQL, and the fetch API as fallback) into the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.fakes.braintrust import PROJECT_ID, PROJECT_NAME, FakeBraintrust, log_row
from tests.fakes.fixtures import braintrust_source, config_of, stored_ids
from tests.fakes.spec import braintrust_spec
from tracegrade.sources.braintrust import row_to_span
from tracegrade.sources.pull import pull_sources
from tracegrade.spans import SpanKind, StatusCode
from tracegrade.store import Store

NOW = datetime.now(tz=UTC)


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


def test_the_fetch_fallback_stops_once_pages_predate_the_window(
        store: Store, fake_braintrust: FakeBraintrust) -> None:
    fake_braintrust.btql_enabled = False
    seed(fake_braintrust, 200, minutes_ago=24 * 60)  # yesterday
    recent = [log_row(1000 + i, NOW - timedelta(minutes=2, seconds=i)) for i in range(5)]
    fake_braintrust.insert(*recent)
    config = config_of(braintrust_source(fake_braintrust))

    result = pull_sources(store, config, since=NOW - timedelta(hours=1)).sources[0]

    assert stored_ids(store, "bt") == sorted(row["span_id"] for row in recent)
    assert result.pages <= 2  # it did not read all of yesterday's history


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
