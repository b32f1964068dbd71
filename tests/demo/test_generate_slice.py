"""The demo's slice regression: ~2% of traffic in production-eu, broken only in 2026.11.2.

Read straight from the generated OTLP/JSON (not through tracegrade's importer), like
test_generate.py, so a mistake in the importer cannot hide one here.
"""

from __future__ import annotations

from collections import defaultdict

import orjson
import pytest

from tests.demo.test_generate import RawSpan, decode, raw_span
from tracegrade.demo import generate as gen

R1, R2 = (release.version for release in gen.RELEASES)
Traces = dict[str, dict[str, list[RawSpan]]]
"""release → trace id → spans."""


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> tuple[Traces, dict[str, str]]:
    """Every trace of the default data set, and each trace's environment."""
    path = tmp_path_factory.mktemp("demo") / "traces.otlp.jsonl"
    gen.generate(path)
    by_release: Traces = defaultdict(lambda: defaultdict(list))
    environment: dict[str, str] = {}
    for line in path.read_bytes().splitlines():
        for resource_spans in orjson.loads(line)["resourceSpans"]:
            resource = decode(resource_spans["resource"]["attributes"])
            for scope_spans in resource_spans["scopeSpans"]:
                for span in map(raw_span, scope_spans["spans"]):
                    by_release[resource["service.version"]][span.trace_id].append(span)
                    previous = environment.setdefault(span.trace_id,
                                                      resource["deployment.environment.name"])
                    assert previous == resource["deployment.environment.name"]
    return by_release, environment


def in_eu(traces: tuple[Traces, dict[str, str]], release: str) -> list[list[RawSpan]]:
    by_release, environment = traces
    return [spans for trace_id, spans in by_release[release].items()
            if environment[trace_id] == gen.EU_ENVIRONMENT]


def error_rate(traces: list[list[RawSpan]]) -> float:
    calls = [s for spans in traces for s in spans if s.kind == "llm"]
    return sum(s.status_code == 2 for s in calls) / len(calls)


def test_about_two_percent_of_traffic_is_in_the_eu(traces: tuple[Traces, dict[str, str]]
                                                   ) -> None:
    for release in (R1, R2):
        share = len(in_eu(traces, release)) / len(traces[0][release])
        assert 0.01 < share < 0.035


def test_the_eu_breaks_only_in_the_candidate_and_the_overall_rate_hides_it(
        traces: tuple[Traces, dict[str, str]]) -> None:
    eu_before, eu_after = in_eu(traces, R1), in_eu(traces, R2)
    assert error_rate(eu_before) < 0.06
    assert error_rate(eu_after) > 0.15
    overall = {release: error_rate(list(traces[0][release].values())) for release in (R1, R2)}
    assert abs(overall[R2] - overall[R1]) < 0.006


def test_refused_reply_calls_leave_the_customer_the_fallback_reply(
        traces: tuple[Traces, dict[str, str]]) -> None:
    app = gen._read_app(gen.APP_SOURCE)
    refusals = 0
    for spans in in_eu(traces, R2):
        calls = sorted((s for s in spans if s.kind == "llm"), key=lambda s: s.start_ns)
        if len(calls) == 2 and calls[1].status_code == 2 \
                and "output.value" not in calls[1].attributes:
            (agent,) = (s for s in spans if s.kind == "agent")
            assert agent.attributes["output.value"] == app.fallback_reply
            assert agent.end_ns >= calls[1].end_ns
            refusals += 1
    eligible = sum(1 for spans in in_eu(traces, R2) if len(spans) == 4)
    assert 0.2 < refusals / eligible < 0.65
