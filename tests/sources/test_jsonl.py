"""tracegrade's span JSONL: the documented format, its time forms and its bad lines."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tracegrade.sources._base import IngestProblem, MappingOptions
from tracegrade.sources.conventions import ConventionError
from tracegrade.sources.files import TraceFileFormat, detect_format, line_mapper, read_file
from tracegrade.sources.jsonl import span_from_record
from tracegrade.spans import Span, SpanKind, StatusCode

OPTIONS = MappingOptions(source="import")
DOC = Path(__file__).parents[2] / "docs" / "spans-jsonl.md"
MINIMAL = {"span_id": "s1", "trace_id": "t1", "start_time": "2025-06-01T12:00:00Z"}


def write_lines(tmp_path: Path, *lines: bytes | dict[str, Any]) -> Path:
    path = tmp_path / "spans.jsonl"
    path.write_bytes(
        b"".join(
            (line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines
        )
    )
    return path


def read_one(tmp_path: Path, record: dict[str, Any], **kwargs: Any) -> Span | IngestProblem:
    [result] = list(read_file(write_lines(tmp_path, record), OPTIONS, **kwargs))
    return result


def test_the_documented_example_imports(tmp_path: Path) -> None:
    example = re.search(r"```jsonl\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert example is not None
    path = tmp_path / "example.jsonl"
    path.write_text(example.group(1))
    assert detect_format(path) is TraceFileFormat.SPANS_JSONL
    answer, lookup = list(read_file(path, OPTIONS))
    assert isinstance(answer, Span) and isinstance(lookup, Span)
    assert (answer.source, answer.kind, answer.model) == ("import", SpanKind.LLM, "gpt-4.1-mini")
    assert answer.start_time == datetime(2025, 6, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert answer.latency_ms == pytest.approx(1650.0)
    assert (answer.input_tokens, answer.output_tokens, answer.total_tokens) == (41, 9, 50)
    assert answer.attributes["tool_calls"][0]["name"] == "lookup_order"
    assert (lookup.kind, lookup.parent_id, lookup.input) == (SpanKind.TOOL, "s1", {"order_id": 7})
    assert lookup.output == {"order_status": "shipped"}
    assert lookup.start_time == datetime(2025, 6, 1, 12, 0, 0, 500000, tzinfo=UTC)
    assert (lookup.status.code, lookup.status.message) == (StatusCode.ERROR, "timeout")


def test_source_defaults_to_the_options_and_an_explicit_one_is_kept(tmp_path: Path) -> None:
    path = write_lines(tmp_path, MINIMAL, MINIMAL | {"span_id": "s2", "source": "langfuse"})
    assert [span.source for span in read_file(path, OPTIONS) if isinstance(span, Span)] == [
        "import",
        "langfuse",
    ]


@pytest.mark.parametrize(
    "start_time",
    [
        "2025-06-01T12:00:00.5Z",
        "2025-06-01T14:00:00.5+02:00",
        1_748_779_200.5,
        1_748_779_200_500,
        1_748_779_200_500_000,
        1_748_779_200_500_000_000,
    ],
)
def test_times_in_every_accepted_form_give_the_same_instant(
    tmp_path: Path, start_time: Any
) -> None:
    result = read_one(tmp_path, MINIMAL | {"start_time": start_time})
    assert isinstance(result, Span)
    assert result.start_time == datetime(2025, 6, 1, 12, 0, 0, 500000, tzinfo=UTC)


def test_status_as_a_word(tmp_path: Path) -> None:
    result = read_one(tmp_path, MINIMAL | {"status": "ERROR"})
    assert isinstance(result, Span)
    assert result.status.code is StatusCode.ERROR


def test_release_and_environment_fall_back_to_the_attributes_options_name(
    tmp_path: Path,
) -> None:
    record = MINIMAL | {"attributes": {"service.version": "2.0", "deployment.environment": "prod"}}
    result = read_one(tmp_path, record)
    assert isinstance(result, Span)
    assert (result.release, result.environment) == ("2.0", "prod")
    explicit = read_one(tmp_path, record | {"release": "1.0"})
    assert isinstance(explicit, Span)
    assert explicit.release == "1.0"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"span_id": "s9", "trace_id": ', "invalid JSON"),
        (b'{"span_id": "s9", "trace_id": "t", "start_time": 1, "cost": NaN}', "invalid JSON"),
        (b'{"span_id": "s9", "trace_id": "t", "start_time": Infinity}', "invalid JSON"),
        (b'{"span_id": "s\xff\xfe", "trace_id": "t", "start_time": 1}', "invalid JSON"),
        (b"[" * 10_000 + b"]" * 10_000, "invalid JSON"),
        (b'["a list"]', "a line must hold a JSON object"),
        (orjson.dumps({"trace_id": "t1", "start_time": 1}), "span_id: Field required"),
        (orjson.dumps(MINIMAL | {"span_id": ""}), "span_id: String should have at least 1"),
        (orjson.dumps(MINIMAL | {"input_tokens": "x"}), "input_tokens 'x' is not a whole number"),
        (orjson.dumps(MINIMAL | {"output_tokens": 1.5}), "output_tokens 1.5 is not a whole"),
        (orjson.dumps(MINIMAL | {"start_time": "abc"}), "start_time 'abc' is not an ISO-8601"),
        (orjson.dumps(MINIMAL | {"start_time": "2025-06-01T12:00:00"}), "has no UTC offset"),
        (orjson.dumps(MINIMAL | {"start_time": True}), "start_time must be an ISO-8601 string"),
        (b'{"span_id": "s9", "trace_id": "t", "start_time": 1e30}', "start_time 1e+30 is out of"),
        (orjson.dumps(MINIMAL | {"kind": "robot"}), "kind: Input should be 'llm'"),
        (orjson.dumps(MINIMAL | {"colour": "red"}), "colour: Extra inputs are not permitted"),
        (orjson.dumps(MINIMAL | {"input": "x" * (20 * 1024 * 1024)}), "input: value is 20971520"),
        (orjson.dumps(MINIMAL | {"input": "[" * 300 + "]" * 300}), "input: value nested deeper"),
        (
            orjson.dumps(MINIMAL | {"attributes": {"a": [[[[[[1]]]]]] * 200_000}}),
            "attributes.a: value is",
        ),
    ],
)
def test_bad_lines_are_problems_and_their_neighbours_still_import(
    tmp_path: Path, line: bytes, reason: str
) -> None:
    path = write_lines(tmp_path, MINIMAL, line, MINIMAL | {"span_id": "s3"})
    results = list(read_file(path, OPTIONS))
    assert [result.span_id for result in results if isinstance(result, Span)] == ["s1", "s3"]
    [problem] = [result for result in results if isinstance(result, IngestProblem)]
    assert problem.location == f"{path}:2"
    assert reason in problem.reason


def test_value_size_limit_is_a_parameter(tmp_path: Path) -> None:
    record = MINIMAL | {"output": "y" * 500}
    assert isinstance(read_one(tmp_path, record), Span)
    result = read_one(tmp_path, record, max_attribute_bytes=100)
    assert isinstance(result, IngestProblem)
    assert result.reason == "output: value is 500 bytes, over the limit of 100"


def test_blank_lines_are_skipped_and_line_numbers_stay_true(tmp_path: Path) -> None:
    path = write_lines(tmp_path, MINIMAL, b"", b"   ", b"{bad")
    results = list(read_file(path, OPTIONS))
    assert isinstance(results[0], Span)
    assert isinstance(results[1], IngestProblem)
    assert results[1].location == f"{path}:4"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
FIELDS = [
    "span_id",
    "trace_id",
    "start_time",
    "end_time",
    "kind",
    "status",
    "input",
    "output",
    "input_tokens",
    "total_tokens",
    "cost",
    "tags",
    "attributes",
    "release",
    "source",
]


@settings(max_examples=300, deadline=None)
@given(
    record=st.dictionaries(
        st.sampled_from(FIELDS),
        json_values | st.sampled_from(["2025-06-01T12:00:00Z", 1_748_779_200, "error", "tool"]),
    ),
    expected=st.none(),
)
@example(record={}, expected={"span_id": "s1", "trace_id": "t1", "kind": SpanKind.OTHER,
                              "start_time": datetime(2025, 6, 1, 12, tzinfo=UTC)})
@example(
    record={"kind": "tool", "start_time": 1_748_779_200, "input": {"q": "A1"}, "cost": 0.25,
            "tags": ["beta"], "release": "2026.11.2"},
    expected={"kind": SpanKind.TOOL, "start_time": datetime(2025, 6, 1, 12, tzinfo=UTC),
              "input": {"q": "A1"}, "cost": 0.25, "tags": ["beta"], "release": "2026.11.2"},
)
def test_arbitrary_records_become_spans_or_mapping_errors(
        record: dict[str, Any], expected: dict[str, Any] | None) -> None:
    """``expected``: None for a drawn record (which may be refused), else fields it must have."""
    try:
        span = span_from_record(MINIMAL | record, OPTIONS)
    except (ConventionError, ValidationError) as error:
        assert expected is None, f"a valid record was refused: {error}"
        return
    assert {key: getattr(span, key) for key in expected or {}} == (expected or {})
    assert orjson.loads(orjson.dumps(span.model_dump(mode="json")))["span_id"] == span.span_id


@pytest.mark.parametrize("name", ["spans.ndjson", "spans.json", "spans.log", "spans.jsonl",
                                  "spans.ndjson.gz"])
def test_a_first_line_longer_than_the_head_is_still_told_apart(tmp_path: Path, name: str) -> None:
    # A long input ahead of span_id puts every key but the first past the first 64 KiB.
    first = {"input": "q" * 300_000} | MINIMAL
    content = b"".join(orjson.dumps(line) + b"\n" for line in
                       [first, MINIMAL | {"span_id": "s2"}, MINIMAL | {"span_id": "s3"}])
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    assert detect_format(path) is TraceFileFormat.SPANS_JSONL
    results = list(read_file(path, OPTIONS))
    assert [r.span_id for r in results if isinstance(r, Span)] == ["s1", "s2", "s3"]
    assert line_mapper(path) is not None


def test_a_long_invalid_first_line_is_still_told_apart_by_its_keys(tmp_path: Path) -> None:
    first = orjson.dumps({"input": "q" * 300_000} | MINIMAL).replace(b'"s1"', b'"s1", "c": NaN')
    path = tmp_path / "spans.log"
    path.write_bytes(first + b"\n" + orjson.dumps(MINIMAL | {"span_id": "s2"}) + b"\n")
    assert detect_format(path) is TraceFileFormat.SPANS_JSONL
    results = list(read_file(path, OPTIONS))
    assert [r.span_id for r in results if isinstance(r, Span)] == ["s2"]
    assert [r.location for r in results if isinstance(r, IngestProblem)] == [f"{path}:1"]


@pytest.mark.parametrize("field", ["span_id", "trace_id", "parent_id", "source"])
def test_a_nul_character_in_an_id_is_a_problem(tmp_path: Path, field: str) -> None:
    path = write_lines(tmp_path, MINIMAL, MINIMAL | {"span_id": "s2", field: "a\u0000b"},
                       MINIMAL | {"span_id": "s3"})
    results = list(read_file(path, OPTIONS))
    assert [r.span_id for r in results if isinstance(r, Span)] == ["s1", "s3"]
    [problem] = [r for r in results if isinstance(r, IngestProblem)]
    assert problem.location == f"{path}:2"
    assert f"{field} contains a NUL character" in problem.reason


def test_nul_characters_elsewhere_are_kept() -> None:
    span = span_from_record(MINIMAL | {"name": "a\u0000b", "output": "x\u0000"}, OPTIONS)
    assert (span.name, span.output) == ("a\u0000b", "x\u0000")


def test_a_byte_order_mark_opening_the_file_costs_no_record(tmp_path: Path) -> None:
    path = write_lines(tmp_path, b"\xef\xbb\xbf" + orjson.dumps(MINIMAL),
                       MINIMAL | {"span_id": "s2"})
    results = list(read_file(path, OPTIONS))
    assert [r.span_id for r in results if isinstance(r, Span)] == ["s1", "s2"]
    assert len(results) == 2
