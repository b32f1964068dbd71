"""The demo data: reproducible, equal to the bundle, and carrying the planted rates it promises.

Rates are computed from the raw OTLP/JSON attributes, independently of tracegrade's importer
and graders, so a mistake there cannot hide a mistake here.
"""

from __future__ import annotations

import ast
import gzip
import json
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tracegrade.config import parse_config
from tracegrade.demo import generate as gen
from tracegrade.graders import build_graders

R1, R2 = (release.version for release in gen.RELEASES)
ORDER_ID = re.compile(r"^A[0-9]{6}$")
THAI = re.compile(r"[\u0e00-\u0e7f]")
SPANISH = re.compile(r"\bpedido\b")


@dataclass
class RawSpan:
    """A span as the file has it, with attributes decoded to plain values."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status_code: int | None
    attributes: dict[str, Any]

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, int]]:
    """The default data set, uncompressed, and the counts ``generate`` returned."""
    path = tmp_path_factory.mktemp("demo") / "traces.otlp.jsonl"
    counts = gen.generate(path)
    return path.read_bytes(), counts


@pytest.fixture(scope="module")
def spans(generated: tuple[bytes, dict[str, int]]) -> dict[str, list[RawSpan]]:
    """Every span of the default data set, by release."""
    return parse(generated[0])


def parse(content: bytes) -> dict[str, list[RawSpan]]:
    by_release: dict[str, list[RawSpan]] = defaultdict(list)
    for line in content.splitlines():
        for resource_spans in orjson.loads(line)["resourceSpans"]:
            release = decode(resource_spans["resource"]["attributes"])["service.version"]
            for scope_spans in resource_spans["scopeSpans"]:
                by_release[release] += [raw_span(span) for span in scope_spans["spans"]]
    return dict(by_release)


def raw_span(span: dict[str, Any]) -> RawSpan:
    attributes = decode(span["attributes"])
    return RawSpan(
        trace_id=span["traceId"],
        span_id=span["spanId"],
        parent_id=span.get("parentSpanId"),
        name=span["name"],
        kind=attributes["openinference.span.kind"].lower(),
        start_ns=int(span["startTimeUnixNano"]),
        end_ns=int(span["endTimeUnixNano"]),
        status_code=span["status"].get("code"),
        attributes=attributes,
    )


def decode(key_values: list[dict[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: any_value(kv["value"]) for kv in key_values}


def any_value(value: dict[str, Any]) -> Any:
    ((kind, inner),) = value.items()
    if kind == "intValue":
        return int(inner)
    if kind == "arrayValue":
        return [any_value(item) for item in inner["values"]]
    return inner


def of_kind(spans: list[RawSpan], kind: str) -> list[RawSpan]:
    return [span for span in spans if span.kind == kind]


def rate(spans: list[RawSpan], predicate: Any) -> float:
    assert spans
    return sum(1 for span in spans if predicate(span)) / len(spans)


def demo_config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(gen.DEMO_CONFIG.read_text(encoding="utf-8"))
    return loaded


def not_found_pattern() -> re.Pattern[str]:
    (grader,) = (g for g in demo_config()["graders"] if g["name"] == "reply_finds_order")
    return re.compile(grader["pattern"], re.IGNORECASE)


def reply(span: RawSpan) -> str:
    text: str = span.attributes["output.value"]
    return text


# --- reproducibility ---------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "a.otlp.jsonl.gz", tmp_path / "b.otlp.jsonl.gz"
    assert gen.generate(first, traces_per_release=60) == gen.generate(second, traces_per_release=60)
    assert first.read_bytes() == second.read_bytes()


def test_another_seed_gives_other_traces(tmp_path: Path) -> None:
    gen.generate(tmp_path / "a.jsonl", traces_per_release=60)
    gen.generate(tmp_path / "b.jsonl", seed=8, traces_per_release=60)
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "b.jsonl").read_bytes()


def test_bundled_file_is_the_generator_output(generated: tuple[bytes, dict[str, int]]) -> None:
    # Compare uncompressed content: compressed bytes may differ between zlib builds.
    bundled = gzip.decompress(gen.BUNDLED_DATA.read_bytes())
    assert bundled == generated[0], (
        "the bundled demo data is stale; regenerate it with "
        "`python -m tracegrade.demo.generate src/tracegrade/demo/data/support_agent.otlp.jsonl.gz`"
    )


def test_bundle_is_small() -> None:
    assert gen.BUNDLED_DATA.stat().st_size < 3_000_000


# --- shape ---------------------------------------------------------------------------------------


def test_counts_are_thousands_of_spans_per_release(
    generated: tuple[bytes, dict[str, int]], spans: dict[str, list[RawSpan]]
) -> None:
    counts = generated[1]
    for release in (R1, R2):
        assert counts[f"{release}/traces"] == counts[f"{release}/agent"] == 1500
        assert counts[f"{release}/llm"] > 2900 and counts[f"{release}/tool"] > 1400
        assert len(spans[release]) == sum(
            counts[f"{release}/{kind}"] for kind in ("agent", "llm", "tool")
        )
        assert len(spans[release]) > 5000


def test_traces_are_well_formed(spans: dict[str, list[RawSpan]]) -> None:
    by_trace: dict[str, list[RawSpan]] = defaultdict(list)
    for span in spans[R1] + spans[R2]:
        by_trace[span.trace_id].append(span)
    for trace in by_trace.values():
        (root,) = (span for span in trace if span.parent_id is None)
        assert root.kind == "agent" and root.name == "support_agent"
        children = sorted((span for span in trace if span is not root), key=lambda s: s.start_ns)
        assert [span.kind for span in children] in (["llm"], ["llm", "tool", "llm"])
        for child in trace:
            assert root.start_ns <= child.start_ns < child.end_ns <= root.end_ns
            assert child is root or child.parent_id == root.span_id


def test_traces_match_the_app_source() -> None:
    """The app parses, and its prompt and tool schema are the ones the traces carry."""
    module = ast.parse(gen.APP_SOURCE.read_text(encoding="utf-8"))
    literals = {
        node.targets[0].id: node.value
        for node in module.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    prompt = ast.literal_eval(literals["SYSTEM_PROMPT"])
    assert "Always answer in English." in prompt and "under 120 words" in prompt
    content = gzip.decompress(gen.BUNDLED_DATA.read_bytes()).split(b"\n", 1)[0]
    llm = next(s for s in parse(content)[R1] if s.kind == "llm")
    assert llm.attributes["llm.input_messages.0.message.content"] == prompt
    tool = json.loads(llm.attributes["llm.tools.0.tool.json_schema"])
    assert tool["function"]["parameters"] == {
        "type": "object",
        "properties": {"order_id": {"type": "string", "pattern": "^A[0-9]{6}$"}},
        "required": ["order_id"],
    }


def test_demo_config_builds_every_grader() -> None:
    raw = demo_config()
    config = parse_config({**raw, "store": "sqlite://"}, "demo/tracegrade.yaml")
    assert [grader.name for grader in build_graders(config.graders)] == [
        g["name"] for g in raw["graders"]
    ]


# --- planted regressions -------------------------------------------------------------------------


def test_tool_output_renames_order_status(spans: dict[str, list[RawSpan]]) -> None:
    def has_order_status(span: RawSpan) -> bool:
        return "order_status" in json.loads(span.attributes["output.value"])

    assert rate(of_kind(spans[R1], "tool"), has_order_status) == 1.0
    assert rate(of_kind(spans[R2], "tool"), has_order_status) == 0.0


def test_not_found_replies_jump(spans: dict[str, list[RawSpan]]) -> None:
    pattern = not_found_pattern()
    before, after = (
        rate(of_kind(spans[release], "agent"), lambda s: pattern.search(reply(s)) is not None)
        for release in (R1, R2)
    )
    assert 0.005 < before < 0.04
    assert 0.20 < after < 0.30


def test_llm_latency_tail_grows(spans: dict[str, list[RawSpan]]) -> None:
    llm = {release: of_kind(spans[release], "llm") for release in (R1, R2)}
    over = {release: rate(llm[release], lambda s: s.duration_ms > 3000) for release in llm}
    assert over[R1] < 0.06 and 0.13 < over[R2] < 0.20
    p95 = {
        release: statistics.quantiles([s.duration_ms for s in llm[release]], n=20)[-1]
        for release in llm
    }
    assert p95[R1] < 2500 < 4000 < p95[R2]


# --- noise: the same true rate in both releases ---------------------------------------------------


NOISE: dict[str, tuple[str, float, Any]] = {
    "reply over 120 words": ("agent", 0.10, lambda s: len(reply(s).split()) > 120),
    "llm error": ("llm", 0.02, lambda s: s.status_code == 2),
    "spanish reply": ("agent", 0.02, lambda s: SPANISH.search(reply(s)) is not None),
    "thai phrase in reply": ("agent", 0.01, lambda s: THAI.search(reply(s)) is not None),
    "malformed tool argument": (
        "tool",
        0.03,
        lambda s: not ORDER_ID.match(json.loads(s.attributes["input.value"])["order_id"]),
    ),
}


@pytest.mark.parametrize("noise", sorted(NOISE))
def test_noise_is_steady_across_releases(noise: str, spans: dict[str, list[RawSpan]]) -> None:
    kind, intended, predicate = NOISE[noise]
    before, after = (rate(of_kind(spans[r], kind), predicate) for r in (R1, R2))
    assert 0 < before and 0 < after
    assert abs(before - intended) < 0.025 and abs(after - intended) < 0.025
    assert abs(before - after) < 0.025


def test_short_and_long_replies_are_far_from_the_word_limit(
    spans: dict[str, list[RawSpan]],
) -> None:
    """No reply sits near 120 words, so any sane word count gives the same verdict."""
    for span in of_kind(spans[R1] + spans[R2], "agent"):
        words = len(reply(span).split())
        assert words <= 100 or words >= 125


def test_not_found_pattern_matches_exactly_the_not_found_replies(
    spans: dict[str, list[RawSpan]],
) -> None:
    """In the first release the reply says "not found" exactly when the lookup found nothing."""
    pattern = not_found_pattern()
    unknown_orders = {
        span.trace_id
        for span in of_kind(spans[R1], "tool")
        if json.loads(span.attributes["output.value"])["order_status"] == "not_found"
    }
    matched = {span.trace_id for span in of_kind(spans[R1], "agent") if pattern.search(reply(span))}
    assert matched and matched <= unknown_orders
    assert len(unknown_orders - matched) <= 5  # the final model call failed: a fallback reply
