"""Pulling from Langfuse (v2 observations, and the legacy API of self-hosted v3) into the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes._server import Status
from tests.fakes.fixtures import config_of, langfuse_source, stored_ids
from tests.fakes.langfuse import SECRET_KEY, FakeLangfuse, iso, observation
from tests.fakes.spec import langfuse_spec
from tracegrade.sources.langfuse import LangfuseSourceConfig, observation_to_span
from tracegrade.sources.pull import load_cursor, pull_sources
from tracegrade.spans import SpanKind, StatusCode
from tracegrade.store import Store

NOW = datetime.now(tz=UTC)  # reset for each test by the wall_clock fixture
pytestmark = pytest.mark.usefixtures("wall_clock")


def seed(fake: FakeLangfuse, count: int, *, minutes_ago: float = 60) -> list[str]:
    """``count`` observations a second apart, alternating generations and tool calls."""
    start = NOW - timedelta(minutes=minutes_ago)
    rows = [observation(i, start + timedelta(seconds=i),
                        kind="GENERATION" if i % 2 else "TOOL") for i in range(count)]
    fake.add(*rows)
    return sorted(row["id"] for row in rows)


def test_pull_fills_the_store_exactly_and_a_second_pull_adds_nothing(
        store: Store, fake_langfuse: FakeLangfuse) -> None:
    expected = seed(fake_langfuse, 130)
    config = config_of(langfuse_source(fake_langfuse))

    first = pull_sources(store, config).sources[0]
    second = pull_sources(store, config).sources[0]

    assert stored_ids(store, "prod") == expected
    assert (first.api, first.pages, first.counts.inserted) == ("v2", 3, 130)
    assert first.error is None and first.watermark is not None
    assert (second.counts.inserted, second.counts.updated) == (0, 0)
    assert load_cursor(store, "prod").checkpoint is None


def test_v2_requests_ask_for_the_mapped_field_groups_and_the_window(
        store: Store, fake_langfuse: FakeLangfuse) -> None:
    seed(fake_langfuse, 10)
    config = config_of(langfuse_source(fake_langfuse, environments=["production", "staging"],
                                       observation_type="GENERATION"))
    pull_sources(store, config, since=NOW - timedelta(hours=2), until=NOW)

    request = fake_langfuse.server.requests_to("/api/public/v2/observations")[0]
    assert request.param("fields") == ("core,basic,time,io,metadata,model,usage,prompt,"
                                       "metrics,trace_context")
    assert request.param("fromStartTime") == iso(NOW - timedelta(hours=2))
    assert request.param("toStartTime") == iso(NOW)
    assert request.query["environment"] == ["production", "staging"]
    assert request.param("type") == "GENERATION"
    assert stored_ids(store, "prod") == sorted(f"obs-{i:07d}" for i in range(1, 10, 2))


def test_a_generation_maps_to_an_llm_span_with_usage_cost_release_and_tool_calls(
        store: Store, fake_langfuse: FakeLangfuse) -> None:
    seed(fake_langfuse, 4)
    pull_sources(store, config_of(langfuse_source(fake_langfuse)))

    span = store.get_span("prod", "obs-0000001")
    assert span is not None
    assert (span.kind, span.name, span.model) == (SpanKind.LLM, "ChatCompletion", "gpt-4.1-mini")
    assert (span.input_tokens, span.output_tokens, span.total_tokens) == (121, 30, 151)
    assert span.cost == pytest.approx(0.000096)
    assert (span.release, span.environment, span.tags) == ("2026.11.1", "production",
                                                           ["support"])
    assert (span.session_id, span.user_id) == ("session-1", "user-1")
    assert span.input[1] == {"role": "user", "content": "Where is order 1? "}
    assert span.attributes["tool_calls"] == [
        {"id": "call_1", "name": "lookup_order", "arguments": {"order_id": 1}}]
    tool = store.get_span("prod", "obs-0000002")
    assert tool is not None and tool.kind is SpanKind.TOOL
    assert tool.input == {"order_id": 2} and tool.output["order_status"] == "shipped"


@pytest.mark.parametrize(("kind", "expected"), [
    ("GENERATION", SpanKind.LLM), ("TOOL", SpanKind.TOOL), ("RETRIEVER", SpanKind.RETRIEVER),
    ("AGENT", SpanKind.AGENT), ("CHAIN", SpanKind.CHAIN), ("EMBEDDING", SpanKind.EMBEDDING),
    ("GUARDRAIL", SpanKind.GUARDRAIL), ("EVALUATOR", SpanKind.OTHER), ("SPAN", SpanKind.OTHER),
    ("EVENT", SpanKind.OTHER),
])
def test_observation_types_map_to_span_kinds(kind: str, expected: SpanKind) -> None:
    row = observation(1, NOW, kind=kind)
    assert observation_to_span(row, "prod").kind is expected


def test_error_level_becomes_an_error_status_and_version_is_the_fallback_release() -> None:
    row = observation(1, NOW, level="ERROR", status_message="rate limited by provider",
                      release=None)
    row["version"] = "v42"
    span = observation_to_span(row, "prod")
    assert span.status.code is StatusCode.ERROR
    assert span.status.message == "rate limited by provider"
    assert span.release == "v42"
    assert observation_to_span(observation(2, NOW, level="WARNING"), "p").status.code \
        is StatusCode.OK


def test_plain_text_input_stays_text_and_json_text_is_parsed() -> None:
    row = observation(1, NOW)
    row["input"] = "what is 2+2?"
    row["output"] = '{"answer": 4}'
    span = observation_to_span(row, "prod")
    assert (span.input, span.output) == ("what is 2+2?", {"answer": 4})


def test_langfuse_judge_observations_are_skipped(store: Store,
                                                fake_langfuse: FakeLangfuse) -> None:
    seed(fake_langfuse, 4)
    fake_langfuse.add(observation(90, NOW - timedelta(minutes=5),
                                  environment="langfuse-llm-as-a-judge"))
    result = pull_sources(store, config_of(langfuse_source(fake_langfuse))).sources[0]
    assert result.skipped == 1
    assert "obs-0000090" not in stored_ids(store, "prod")


def test_self_hosted_v3_falls_back_to_the_legacy_api_with_trace_lookups(
        store: Store, fake_langfuse: FakeLangfuse) -> None:
    fake_langfuse.v2_enabled = False
    expected = seed(fake_langfuse, 130)
    config = config_of(langfuse_source(fake_langfuse, legacy_page_size=40))

    result = pull_sources(store, config).sources[0]
    again = pull_sources(store, config).sources[0]

    assert result.api == "legacy" and result.error is None
    assert stored_ids(store, "prod") == expected
    assert (again.counts.inserted, again.counts.updated) == (0, 0)
    span = store.get_span("prod", "obs-0000007")
    assert span is not None
    # legacy observations carry no user: it comes from the trace (first seen: obs 6)
    assert (span.release, span.tags, span.user_id) == ("2026.11.1", ["support"], "user-6")
    assert (span.kind, span.model, span.input_tokens) == (SpanKind.LLM, "gpt-4.1-mini", 127)
    trace_requests = fake_langfuse.server.requests_to("/api/public/traces")
    assert trace_requests and all('"any of"' in (r.param("filter") or "")
                                  for r in trace_requests)


def trace_users(store: Store, count: int) -> list[tuple[str | None, str | None]]:
    """Each span's (release, user): the legacy API gives both only through the trace."""
    spans = [store.get_span("prod", f"obs-{i:07d}") for i in range(count)]
    return [(s.release, s.user_id) if s else (None, None) for s in spans]


def expected_trace_users(count: int) -> list[tuple[str | None, str | None]]:
    # a trace's user is its first observation's (trace-N holds observations 3N..3N+2)
    return [("2026.11.1", f"user-{(i - i % 3) % 17}") for i in range(count)]


def test_legacy_trace_lookups_survive_the_trace_cache_filling_up(
        store: Store, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tracegrade.sources.langfuse._TRACE_CACHE_LIMIT", 2)
    fake_langfuse.v2_enabled = False
    seed(fake_langfuse, 40)
    pull_sources(store, config_of(langfuse_source(fake_langfuse, legacy_page_size=4)))
    assert trace_users(store, 40) == expected_trace_users(40)


def test_a_server_that_ignores_the_trace_filter_gets_each_trace_read_by_id(
        store: Store, fake_langfuse: FakeLangfuse) -> None:
    fake_langfuse.v2_enabled = False
    fake_langfuse.trace_filter_supported = False
    seed(fake_langfuse, 600)  # 200 traces: more than one unfiltered answer (100) holds

    result = pull_sources(store, config_of(langfuse_source(fake_langfuse,
                                                           legacy_page_size=40))).sources[0]

    assert result.error is None
    assert trace_users(store, 600) == expected_trace_users(600)
    by_id = [r.path for r in fake_langfuse.server.requests_to("/api/public/traces/")]
    assert by_id and len(by_id) == len(set(by_id))  # the missing ones, each once
    assert len(by_id) + 100 == 200  # the rest came with the first, unfiltered, answer
    assert len(fake_langfuse.server.requests_to("/api/public/traces")) == len(by_id) + 1


def test_a_late_observation_inside_the_overlap_is_picked_up_by_the_next_pull(
        store: Store, fake_langfuse: FakeLangfuse) -> None:
    expected = seed(fake_langfuse, 20)
    config = config_of(langfuse_source(fake_langfuse))
    pull_sources(store, config)
    late = observation(500, NOW - timedelta(minutes=5))  # started before the last pull
    fake_langfuse.add(late)

    result = pull_sources(store, config).sources[0]

    assert result.counts.inserted == 1
    assert stored_ids(store, "prod") == sorted([*expected, late["id"]])


def test_since_backfills_what_started_before_the_overlap(
        store: Store, fake_langfuse: FakeLangfuse) -> None:
    seed(fake_langfuse, 10)
    config = config_of(langfuse_source(fake_langfuse))
    pull_sources(store, config)
    old = observation(600, NOW - timedelta(days=3))
    fake_langfuse.add(old)
    assert pull_sources(store, config).sources[0].counts.inserted == 0

    backfill = pull_sources(store, config, since=NOW - timedelta(days=4)).sources[0]
    assert backfill.counts.inserted == 1 and old["id"] in stored_ids(store, "prod")


def test_an_updated_observation_replaces_the_stored_one(
        store: Store, fake_langfuse: FakeLangfuse) -> None:
    seed(fake_langfuse, 10, minutes_ago=10)
    config = config_of(langfuse_source(fake_langfuse))
    pull_sources(store, config)
    fake_langfuse.update("obs-0000003", output='{"role": "assistant", "content": "Shipped."}')

    result = pull_sources(store, config).sources[0]

    span = store.get_span("prod", "obs-0000003")
    assert result.counts.updated == 1 and span is not None
    assert span.output == {"role": "assistant", "content": "Shipped."}


def test_an_older_copy_never_replaces_a_newer_stored_one(
        store: Store, fake_langfuse: FakeLangfuse) -> None:
    seed(fake_langfuse, 4, minutes_ago=10)
    config = config_of(langfuse_source(fake_langfuse))
    fresh = fake_langfuse.update("obs-0000001", output='{"copy": "fresh"}')
    pull_sources(store, config)
    stale_time = iso(datetime.fromisoformat(fresh["updatedAt"].replace("Z", "+00:00"))
                     - timedelta(minutes=1))
    fake_langfuse.observations["obs-0000001"] = {**fresh, "output": '{"copy": "stale"}',
                                                 "updatedAt": stale_time}
    fake_langfuse.add()  # re-sort

    result = pull_sources(store, config).sources[0]

    span = store.get_span("prod", "obs-0000001")
    assert result.older_dropped == 1 and span is not None and span.output == {"copy": "fresh"}


def test_a_failed_pull_never_prints_the_secret_key(store: Store,
                                                   fake_langfuse: FakeLangfuse) -> None:
    seed(fake_langfuse, 5)
    leaked = f"upstream said: Authorization Basic for {SECRET_KEY}"
    fake_langfuse.server.faults.add("/api/public/v2/observations",
                                    *[Status(500, body=leaked)] * 5)
    result = pull_sources(store, config_of(langfuse_source(fake_langfuse))).sources[0]
    assert result.error is not None and "HTTP 500" in result.error
    assert SECRET_KEY not in result.error and "***" in result.error


def test_wrong_credentials_fail_clearly_without_the_key(store: Store,
                                                         fake_langfuse: FakeLangfuse) -> None:
    config = config_of(langfuse_source(fake_langfuse, secret_key="sk-lf-wrong-key-123"))
    result = pull_sources(store, config).sources[0]
    assert result.error is not None and "HTTP 401" in result.error
    assert "sk-lf-wrong-key-123" not in result.error


def test_cloud_hosts_default_to_the_documented_plan_rate() -> None:
    base = {"name": "p", "type": "langfuse", "public_key": "pk", "secret_key": "sk"}
    assert LangfuseSourceConfig.model_validate(base).requests_per_minute() == 20
    assert LangfuseSourceConfig.model_validate(
        {**base, "plan": "pro"}).requests_per_minute() == 1000
    assert LangfuseSourceConfig.model_validate(
        {**base, "host": "https://langfuse.internal.example"}).requests_per_minute() is None


def test_the_spec_check_catches_a_drifted_answer() -> None:
    row = {key: value for key, value in observation(1, NOW).items() if key != "startTime"}
    row["totalCost"] = "cheap"
    problems = langfuse_spec().check_response(
        "/api/public/v2/observations", "GET", 200, {"data": [row], "meta": {}})
    assert any("startTime" in p for p in problems)
    assert any("totalCost" in p for p in problems)
