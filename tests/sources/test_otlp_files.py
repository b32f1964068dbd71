"""Reading OTLP files: collector JSON lines, whole JSON documents, protobuf streams, gzip."""

from __future__ import annotations

import gzip
import json
import re
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.sources import collector_json, key_values, request, span
from tracegrade.sources._base import IngestProblem, MappingOptions
from tracegrade.sources.files import TraceFileFormat, detect_format, line_mapper, read_file
from tracegrade.sources.otlp import map_json_line, map_proto_request
from tracegrade.spans import Span

OPTIONS = MappingOptions(source="prod")


def batch(first_id: int, count: int = 3, **attributes: Any) -> ExportTraceServiceRequest:
    return request(
        [
            span({"openinference.span.kind": "LLM"} | attributes, span_id=first_id + offset)
            for offset in range(count)
        ]
    )


def json_line(export: ExportTraceServiceRequest) -> bytes:
    return orjson.dumps(collector_json(export)) + b"\n"


def framed(*messages: bytes) -> bytes:
    """The collector file exporter's ``format: proto``: each message after its 4-byte length."""
    return b"".join(len(message).to_bytes(4, "big") + message for message in messages)


def read(path: Path, **kwargs: Any) -> list[Span | IngestProblem]:
    return list(read_file(path, OPTIONS, **kwargs))


def span_ids(results: list[Span | IngestProblem]) -> list[int]:
    return [int(result.span_id, 16) for result in results if isinstance(result, Span)]


def problems(results: list[Span | IngestProblem]) -> list[IngestProblem]:
    return [result for result in results if isinstance(result, IngestProblem)]


# --- JSON lines ----------------------------------------------------------------------------------


def test_collector_json_lines_yield_every_span(tmp_path: Path) -> None:
    path = tmp_path / "traces.json"
    path.write_bytes(json_line(batch(1)) + json_line(batch(10, count=2)))
    results = read(path)
    assert span_ids(results) == [1, 2, 3, 10, 11]
    first = results[0]
    assert isinstance(first, Span)
    assert (first.source, first.kind, first.release) == ("prod", "llm", "1.4.2")


def test_invalid_json_line_is_reported_and_the_next_lines_still_read(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    path.write_bytes(json_line(batch(1)) + b'{"resourceSpans": [\n' + json_line(batch(10)))
    results = read(path)
    assert span_ids(results) == [1, 2, 3, 10, 11, 12]
    [problem] = problems(results)
    assert problem.location == f"{path}:2"
    assert problem.reason.startswith("invalid JSON: ")


def test_one_bad_span_on_a_line_keeps_the_two_good_ones(tmp_path: Path) -> None:
    document = collector_json(batch(1))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["startTimeUnixNano"] = "abc"
    path = tmp_path / "traces.json"
    path.write_bytes(json_line(batch(20, count=1)) + orjson.dumps(document) + b"\n")
    results = read(path)
    assert span_ids(results) == [20, 1, 3]
    assert problems(results) == [
        IngestProblem(
            f"{path}:2",
            "resourceSpans[0].scopeSpans[0].spans[1]: "
            "startTimeUnixNano 'abc' is not a whole number of nanoseconds",
        )
    ]


@pytest.mark.parametrize(
    "bad_line",
    [
        pytest.param(b'{"resourceSpans": [{"x": "\xff\xfe"}]}', id="non-utf8"),
        pytest.param(b'{"resourceSpans": [{"resource": NaN}]}', id="nan"),
        pytest.param(b'{"resourceSpans": [{"resource": Infinity}]}', id="infinity"),
        pytest.param(b"[" * 10_000 + b"]" * 10_000, id="nested-10000"),
        pytest.param(b'{"resourceSpans": 5}', id="wrong-type"),
        pytest.param(b"garbage", id="not-json"),
    ],
)
def test_malformed_lines_are_problems_between_good_lines(tmp_path: Path, bad_line: bytes) -> None:
    path = tmp_path / "traces.json"
    path.write_bytes(json_line(batch(1, count=1)) + bad_line + b"\n" + json_line(batch(5, count=1)))
    results = read(path)
    assert span_ids(results) == [1, 5]
    assert [problem.location for problem in problems(results)] == [f"{path}:2"]


def test_nan_on_a_line_rejects_its_span_and_keeps_its_siblings(tmp_path: Path) -> None:
    document = collector_json(batch(1))
    attributes = document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["attributes"]
    attributes.append({"key": "score", "value": {"doubleValue": float("nan")}})
    path = tmp_path / "traces.json"
    path.write_bytes(json_line(batch(10, count=1)) + json.dumps(document).encode() + b"\n")
    results = read(path)
    assert span_ids(results) == [10, 1, 3]
    assert problems(results) == [IngestProblem(
        f"{path}:2", "resourceSpans[0].scopeSpans[0].spans[1]: invalid JSON: NaN is not a JSON "
        "value")]


def test_nan_outside_the_resources_of_a_line_is_still_a_problem(tmp_path: Path) -> None:
    line = json.dumps(collector_json(batch(1)) | {"note": float("nan")}).encode()
    path = tmp_path / "traces.json"
    path.write_bytes(line + b"\n" + json_line(batch(10, count=1)))
    results = read(path)
    assert span_ids(results) == [1, 2, 3, 10]
    [problem] = problems(results)
    assert problem.location == f"{path}:1"
    assert problem.reason.startswith("invalid JSON: ")


def test_a_number_beyond_a_double_where_the_mapping_never_looks_is_no_problem(
        tmp_path: Path) -> None:
    # orjson refuses 1e400 (it overflows a double), though it is valid JSON: the line is read
    # again one resource at a time, and must not also be reported as skipped.
    document = collector_json(batch(1))
    line = json.dumps(document).encode().replace(b'"spans": [{', b'"spans": [{"kind": 1e400, ', 1)
    assert b"1e400" in line
    path = tmp_path / "traces.json"
    path.write_bytes(line + b"\n")
    results = read(path)
    assert span_ids(results) == [1, 2, 3]
    assert problems(results) == []


def test_an_escaped_lone_surrogate_becomes_a_replacement_character(tmp_path: Path) -> None:
    # JavaScript cutting a string inside an emoji writes "\ud83d" alone: valid JSON, no
    # character. It was read as "?" (indistinguishable from a real one); a whole pair, and an
    # escaped backslash before "ud800", stay what they are.
    document = collector_json(batch(1))
    attributes = document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["attributes"]
    attributes.append({"key": "note", "value": {"stringValue": "cut SENTINEL here"}})
    attributes.append({"key": "kept", "value": {"stringValue": "PAIR and SLASH"}})
    line = json.dumps(document).encode().replace(b"SENTINEL", b"\\ud83d").replace(
        b"PAIR", b"\\ud83d\\ude00").replace(b"SLASH", b"\\\\ud800")
    path = tmp_path / "traces.json"
    path.write_bytes(line + b"\n")
    results = read(path)
    assert span_ids(results) == [1, 2, 3] and problems(results) == []
    [span] = [r for r in results if isinstance(r, Span) and r.attributes.get("note")]
    assert span.attributes["note"] == "cut \ufffd here"
    assert span.attributes["kept"] == "\U0001f600 and \\ud800"


def test_attribute_of_20_mib_rejects_its_span_only(tmp_path: Path) -> None:
    big = request(
        [
            span({"input.value": "x" * (20 * 1024 * 1024)}, span_id=1),
            span({"input.value": "fine"}, span_id=2),
        ]
    )
    path = tmp_path / "traces.json"
    path.write_bytes(json_line(big))
    results = read(path)
    assert span_ids(results) == [2]
    [problem] = problems(results)
    assert problem.location == f"{path}:1"
    assert "attribute 'input.value': value is 20971520 bytes, over the limit of 1048576" in (
        problem.reason
    )


def test_attribute_limit_is_a_parameter_of_read_file(tmp_path: Path) -> None:
    path = tmp_path / "traces.json"
    path.write_bytes(json_line(request([span({"input.value": "x" * 200})])))
    assert span_ids(read(path)) == [1]
    assert span_ids(read(path, max_attribute_bytes=100)) == []


# --- one JSON document per file ------------------------------------------------------------------


def pretty_document(exports: list[ExportTraceServiceRequest]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            resource_spans
            for export in exports
            for resource_spans in collector_json(export)["resourceSpans"]
        ]
    }


def test_pretty_printed_document_is_read(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(pretty_document([batch(1), batch(10)]), indent=2))
    assert span_ids(read(path)) == [1, 2, 3, 10, 11, 12]


def test_bad_span_in_a_document_is_located_by_byte_offset_and_path(tmp_path: Path) -> None:
    document = pretty_document([batch(1), batch(10)])
    del document["resourceSpans"][1]["scopeSpans"][0]["spans"][0]["spanId"]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(document, indent=2))
    results = read(path)
    assert span_ids(results) == [1, 2, 3, 11, 12]
    [problem] = problems(results)
    assert re.fullmatch(rf"{re.escape(str(path))}@\d+", problem.location)
    assert problem.reason == "resourceSpans[1].scopeSpans[0].spans[0]: span has no spanId"


def test_document_cut_short_yields_what_came_before_and_a_problem(tmp_path: Path) -> None:
    text = json.dumps(pretty_document([batch(1), batch(10)]), indent=2)
    path = tmp_path / "export.json"
    path.write_text(text[: text.index('"resource"', text.index("scopeSpans")) + 40])
    results = read(path)
    assert span_ids(results) == [1, 2, 3]
    [problem] = problems(results)
    assert re.fullmatch(rf"{re.escape(str(path))}@\d+", problem.location)
    assert problem.reason.startswith("invalid JSON: ")


def test_invalid_utf8_in_a_document_rejects_its_resource_and_the_rest_reads(
        tmp_path: Path) -> None:
    text = json.dumps(pretty_document([batch(1), batch(10), batch(20)]), indent=2).encode()
    second = text.index(b'"resource"', text.index(b"scopeSpans"))
    path = tmp_path / "export.json"
    path.write_bytes(text[:second] + b'"\xff\xfe": 1, ' + text[second:])
    results = read(path)
    assert span_ids(results) == [1, 2, 3, 20, 21, 22]
    [problem] = problems(results)
    assert problem.reason == "resourceSpans[1]: invalid JSON: a string is not valid UTF-8"


def test_invalid_utf8_in_a_span_of_a_document_rejects_that_span(tmp_path: Path) -> None:
    text = json.dumps(pretty_document([batch(1), batch(10, name="BAD!")]), indent=2).encode()
    path = tmp_path / "export.json"
    path.write_bytes(text.replace(b'"BAD!"', b'"\xff!"', 1))
    results = read(path)
    assert span_ids(results) == [1, 2, 3, 11, 12]
    [problem] = problems(results)
    assert problem.reason == ("resourceSpans[1].scopeSpans[0].spans[0]: invalid JSON: "
                              "a string is not valid UTF-8")


def test_deep_nesting_inside_a_document_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    document = pretty_document([batch(1, count=2)])
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] = "DEEP"
    # ijson's cost grows with the square of the depth: 2,000 levels keep this test quick.
    deep = '{"kvlistValue": {"values": [{"key": "k", "value": ' * 2_000 + '{"stringValue": "x"}'
    deep += "}]}}" * 2_000
    text = json.dumps(document, indent=2).replace('"DEEP"', f'[{{"key": "deep", "value": {deep}}}]')
    path = tmp_path / "export.json"
    path.write_text(text)
    results = read(path)
    assert span_ids(results) == [2]
    assert "nested deeper than 100 levels" in problems(results)[0].reason


def test_large_document_is_streamed_with_flat_memory(tmp_path: Path) -> None:
    one = collector_json(batch(1, count=5, payload="p" * 2000))["resourceSpans"][0]
    path = tmp_path / "big.json"
    with path.open("w") as out:
        out.write('{\n  "resourceSpans": [\n')
        out.write(",\n".join(json.dumps(one, indent=2) for _ in range(2000)))
        out.write("\n  ]\n}\n")
    file_size = path.stat().st_size
    tracemalloc.start()
    try:
        count = sum(1 for result in read_file(path, OPTIONS) if isinstance(result, Span))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert file_size > 10 * 1024 * 1024
    assert peak < 2 * 1024 * 1024  # the whole file would be over 25 MiB


# --- protobuf ------------------------------------------------------------------------------------


def test_collector_proto_stream_is_read(tmp_path: Path) -> None:
    path = tmp_path / "traces.pb"
    path.write_bytes(framed(batch(1).SerializeToString(), batch(10).SerializeToString()))
    results = read(path)
    assert span_ids(results) == [1, 2, 3, 10, 11, 12]
    assert results[0] == read_json_equivalent(tmp_path, batch(1))[0]


def test_events_links_and_resource_are_kept_from_protobuf_as_from_json(tmp_path: Path) -> None:
    built = span(span_id=1, status=2)
    event = built.events.add(name="exception", time_unix_nano=1_700_000_000_200_000_000)
    event.attributes.extend(key_values({"exception.type": "KeyError"}))
    link = built.links.add(trace_id=bytes(15) + b"\x01", span_id=(9).to_bytes(8, "big"))
    export = request([built], {"host.name": "h1"})
    path = tmp_path / "traces.pb"
    path.write_bytes(framed(export.SerializeToString()))
    [from_protobuf] = read(path)
    assert from_protobuf == read_json_equivalent(tmp_path, export)[0]
    assert isinstance(from_protobuf, Span)
    assert from_protobuf.status.message == "KeyError"
    assert from_protobuf.attributes == {
        "resource.host.name": "h1",
        "service.name": "shop",
        "otel.events": [
            {
                "name": "exception",
                "time": "2023-11-14T22:13:20.200000Z",
                "attributes": {"exception.type": "KeyError"},
            }
        ],
        "otel.links": [
            {"trace_id": link.trace_id.hex(), "span_id": "0000000000000009", "attributes": {}}
        ],
    }


def read_json_equivalent(
    tmp_path: Path, export: ExportTraceServiceRequest
) -> list[Span | IngestProblem]:
    path = tmp_path / "same.json"
    path.write_bytes(json_line(export))
    return read(path)


def test_single_raw_request_is_read(tmp_path: Path) -> None:
    path = tmp_path / "request.bin"
    export = request([span(span_id=1), span(span_id=2)])
    export.resource_spans.extend(batch(10).resource_spans)
    path.write_bytes(export.SerializeToString())
    assert span_ids(read(path)) == [1, 2, 10, 11, 12]


def test_a_request_body_maps_like_a_file(tmp_path: Path) -> None:
    body = batch(1).SerializeToString()
    results = list(map_proto_request(body, OPTIONS, name="POST /v1/traces"))
    path = tmp_path / "traces.pb"
    path.write_bytes(framed(body))
    assert results == read(path)
    assert list(map_proto_request(b"\x0a\xff", OPTIONS, name="body")) == [
        IngestProblem("body@0", "not an OTLP protobuf request: truncated or overlong varint")
    ]


def test_corrupt_frame_is_a_problem_and_the_next_frame_still_reads(tmp_path: Path) -> None:
    first = batch(1).SerializeToString()
    path = tmp_path / "traces.pb"
    path.write_bytes(framed(first, b"\x0a\xff\xff\xff\x0f garbage", batch(10).SerializeToString()))
    results = read(path)
    assert span_ids(results) == [1, 2, 3, 10, 11, 12]
    [problem] = problems(results)
    assert problem.location == f"{path}@{4 + len(first) + 4}"
    assert problem.reason.startswith("not an OTLP protobuf request: ")


def test_span_with_invalid_utf8_is_a_problem_and_its_siblings_read(tmp_path: Path) -> None:
    export = request(
        [span(name="good", span_id=1), span(name="BAD!", span_id=2), span(name="good", span_id=3)]
    )
    data = export.SerializeToString().replace(b"BAD!", b"\xff\xfe!!")
    path = tmp_path / "traces.pb"
    path.write_bytes(framed(data))
    results = read(path)
    assert span_ids(results) == [1, 3]
    [problem] = problems(results)
    assert re.fullmatch(rf"{re.escape(str(path))}@\d+", problem.location)
    assert problem.reason.startswith("span is not valid protobuf")


def test_truncated_proto_stream_keeps_the_complete_messages(tmp_path: Path) -> None:
    whole = batch(1).SerializeToString()
    path = tmp_path / "traces.pb"
    path.write_bytes(framed(whole, whole)[:-10])
    results = read(path)
    assert span_ids(results) == [1, 2, 3]
    assert problems(results) == [
        IngestProblem(f"{path}@{4 + len(whole)}", "truncated message: the file ends inside it")
    ]


def test_zstd_compressed_frames_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "traces.pb"
    path.write_bytes(framed(b"\x28\xb5\x2f\xfd" + b"\x00" * 10, batch(1).SerializeToString()))
    results = read(path)
    assert span_ids(results) == [1, 2, 3]
    assert problems(results)[0].reason == "zstd-compressed message: decompress the file first"


def test_proto_non_finite_double_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "traces.pb"
    export = request([span({"score": float("nan")}, span_id=1), span(span_id=2)])
    path.write_bytes(framed(export.SerializeToString()))
    results = read(path)
    assert span_ids(results) == [2]
    assert "not a finite number" in problems(results)[0].reason


# --- gzip, detection, files ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["traces.json.gz", "traces.gz", "traces.json"])
def test_gzip_is_recognised_by_content(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(json_line(batch(1)) + json_line(batch(7, count=1))))
    assert span_ids(read(path)) == [1, 2, 3, 7]


def test_gzipped_proto_stream_and_document_are_read(tmp_path: Path) -> None:
    proto = tmp_path / "traces.pb.gz"
    proto.write_bytes(gzip.compress(framed(batch(1).SerializeToString())))
    document = tmp_path / "export.json.gz"
    document.write_bytes(gzip.compress(json.dumps(pretty_document([batch(4)]), indent=2).encode()))
    assert span_ids(read(proto)) == [1, 2, 3]
    assert span_ids(read(document)) == [4, 5, 6]


def test_truncated_gzip_is_a_problem_after_the_spans_it_held(tmp_path: Path) -> None:
    lines = b"".join(json_line(batch(index * 10, count=1)) for index in range(1, 200))
    compressed = gzip.compress(lines)
    path = tmp_path / "traces.json.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    results = read(path)
    assert 0 < len(span_ids(results)) < 199
    [problem] = problems(results)
    assert problem.reason.startswith("cannot read the file: ")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.json", json_line(batch(1)), TraceFileFormat.OTLP_JSON),
        ("a.jsonl", json_line(batch(1)), TraceFileFormat.OTLP_JSON),
        ("a.json", framed(batch(1).SerializeToString()), TraceFileFormat.OTLP_PROTO),
        ("a.pb", batch(1).SerializeToString(), TraceFileFormat.OTLP_PROTO),
        ("a.json", b'{"span_id": "1", "trace_id": "t"}\n', TraceFileFormat.SPANS_JSONL),
        ("a.txt", b'{\n  "resourceSpans": []\n}', TraceFileFormat.OTLP_JSON),
        (
            "a.gz",
            gzip.compress(b'{"trace_id": "t", "span_id": "1"}\n', mtime=0),
            TraceFileFormat.SPANS_JSONL,
        ),
        ("a.pb", b"", TraceFileFormat.OTLP_PROTO),
        ("a.jsonl", b"", TraceFileFormat.SPANS_JSONL),
    ],
)
def test_detect_format_reads_the_content(
    tmp_path: Path, name: str, content: bytes, expected: TraceFileFormat
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert detect_format(path) is expected


def test_missing_file_raises_at_the_call(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_file(tmp_path / "nope.json", OPTIONS)
    with pytest.raises(FileNotFoundError):
        detect_format(tmp_path / "nope.json")


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(b"")
    assert read(path) == []


def test_a_well_formed_request_maps_as_it_does_span_by_span() -> None:
    # A valid request is parsed whole; one bad span sends it down the span-by-span path. Both
    # must give the same spans.
    attributes = {"llm.model_name": "gpt-4.1-mini", "input.value": '{"q": "where"}',
                  "input.mime_type": "application/json", "llm.token_count.prompt": 12}
    good = batch(1, count=5, **attributes)
    whole = list(map_proto_request(good.SerializeToString(), OPTIONS, name="body"))
    flawed = batch(1, count=5, **attributes)
    flawed.resource_spans[0].scope_spans[0].spans.add(name="no ids")  # no trace or span id
    by_span = list(map_proto_request(flawed.SerializeToString(), OPTIONS, name="body"))
    assert [r for r in by_span if isinstance(r, Span)] == whole
    assert len(whole) == 5 and all(isinstance(r, Span) for r in whole)
    [problem] = [r for r in by_span if isinstance(r, IngestProblem)]
    assert re.fullmatch(r"body@\d+", problem.location)


# --- review fixes: detection, recovery, truncated gzip -------------------------------------------


@pytest.mark.parametrize("bad_lines", [1, 19, 20, 21, 40])
@pytest.mark.parametrize(
    "bad_line",
    [
        pytest.param(b'{"resourceSpans": [{"resource": {}, "scopeSpans": [], "x": NaN}]}',
                     id="nan"),
        pytest.param(b'{"resourceSpans": [{"x": "\xff\xfe"}]}', id="non-utf8"),
        pytest.param(b'{"resourceSpans": 5}', id="wrong-type"),
        pytest.param(b'{"resourceSpans": [{"resource": Infinity}]}', id="infinity"),
        pytest.param(b'{"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": []}], '
                     b'"x": NaN}', id="nan-cut-short"),
        pytest.param(b'{"resourceSpans": [{"resource": {}}, {"resource": {}},', id="comma-cut"),
    ],
)
def test_json_lines_whose_first_lines_are_all_malformed_are_read_line_by_line(
        tmp_path: Path, bad_lines: int, bad_line: bytes) -> None:
    path = tmp_path / "traces.json"
    path.write_bytes(bad_line + b"\n" * 2 + (bad_line + b"\n") * (bad_lines - 1)
                     + json_line(batch(1)) + bad_line + b"\n" + json_line(batch(7, count=1)))
    results = read(path)
    assert span_ids(results) == [1, 2, 3, 7]
    lines = [1, *range(3, bad_lines + 2), bad_lines + 3]
    assert [problem.location for problem in problems(results)] == [f"{path}:{n}" for n in lines]
    assert line_mapper(path) is map_json_line  # the worker path reads it line by line too


def test_json_lines_after_a_first_line_cut_short_are_read_line_by_line(tmp_path: Path) -> None:
    nan = b'{"resourceSpans": [{"resource": NaN}]}\n'
    path = tmp_path / "traces.json"
    path.write_bytes(b'{"resourceSpans": [{"resource": \n' + nan * 30 + json_line(batch(1)))
    results = read(path)
    assert span_ids(results) == [1, 2, 3]
    assert [problem.location for problem in problems(results)] == [
        f"{path}:{n}" for n in range(1, 32)]


@pytest.mark.parametrize("items", [1, 2, 30])
def test_a_document_with_one_resource_per_line_is_one_document(tmp_path: Path,
                                                              items: int) -> None:
    rows = [orjson.dumps(collector_json(batch(10 * n, count=1))["resourceSpans"][0])
            for n in range(1, items + 1)]
    path = tmp_path / "export.json"
    path.write_bytes(b'{"resourceSpans": [\n' + b",\n".join(rows) + b"\n]}\n")
    results = read(path)
    assert span_ids(results) == [10 * n for n in range(1, items + 1)]
    assert line_mapper(path) is None


def test_pretty_printed_document_with_a_long_first_key_is_one_document(tmp_path: Path) -> None:
    document = {"note": "n" * 100_000} | pretty_document([batch(1), batch(10)])
    path = tmp_path / "export.json"
    path.write_text(json.dumps(document, indent=2))
    assert span_ids(read(path)) == [1, 2, 3, 10, 11, 12]
    assert line_mapper(path) is None


def nan_document(tmp_path: Path, indent: int | None = 2) -> tuple[Path, dict[str, Any]]:
    """Five resources of three spans; the second span of resourceSpans[3] holds a NaN, as
    Python's json.dumps writes a float('nan')."""
    document = pretty_document([batch(10 * n) for n in range(1, 6)])
    bad = document["resourceSpans"][3]["scopeSpans"][0]["spans"][1]
    bad["attributes"].append({"key": "score", "value": {"doubleValue": float("nan")}})
    path = tmp_path / "export.json"
    path.write_text(json.dumps(document, indent=indent))
    return path, document


@pytest.mark.parametrize("indent", [2, None])
def test_nan_in_a_document_rejects_its_span_only(tmp_path: Path, indent: int | None) -> None:
    path, _ = nan_document(tmp_path, indent)
    results = read(path)
    assert span_ids(results) == [10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 42, 50, 51, 52]
    [problem] = problems(results)
    assert problem.reason == ("resourceSpans[3].scopeSpans[0].spans[1]: invalid JSON: "
                              "NaN is not a JSON value")
    if indent is None:  # one line: read as JSON lines
        assert problem.location == f"{path}:1"
        return
    offset = int(problem.location.rpartition("@")[2])
    text = path.read_bytes()
    assert text[offset:].startswith(b"{") and text.count(b'"resource"', 0, offset) == 3
    assert problem.location == f"{path}@{offset}"  # where that resource starts


def test_nan_in_a_resource_rejects_that_resource_and_the_rest_still_reads(tmp_path: Path) -> None:
    document = pretty_document([batch(10 * n) for n in range(1, 4)])
    document["resourceSpans"][1]["resource"]["attributes"].append(
        {"key": "load", "value": {"doubleValue": float("inf")}})
    path = tmp_path / "export.json"
    path.write_text(json.dumps(document, indent=2))
    results = read(path)
    assert span_ids(results) == [10, 11, 12, 30, 31, 32]
    [problem] = problems(results)
    assert problem.reason == "resourceSpans[1]: invalid JSON: Infinity is not a JSON value"


def test_garbage_inside_a_document_rejects_that_resource_only(tmp_path: Path) -> None:
    text = json.dumps(pretty_document([batch(10 * n) for n in range(1, 5)]), indent=2).encode()
    third = text.index(b'"scopeSpans"', text.index(b'"scopeSpans"', text.index(b'"scopeSpans"')
                                                                    + 1) + 1)
    path = tmp_path / "export.json"
    path.write_bytes(text[:third] + b'"oops": @@, ' + text[third:])
    results = read(path)
    assert span_ids(results) == [10, 11, 12, 20, 21, 22, 40, 41, 42]
    [problem] = problems(results)
    assert problem.reason.startswith("resourceSpans[2]: invalid JSON: ")


def test_document_cut_short_says_the_rest_was_not_read(tmp_path: Path) -> None:
    text = json.dumps(pretty_document([batch(1), batch(10), batch(20)]), indent=2)
    path = tmp_path / "export.json"
    path.write_text(text[: text.index('"resource"', text.index("scopeSpans")) + 40])
    results = read(path)
    assert span_ids(results) == [1, 2, 3]
    [problem] = problems(results)
    assert problem.reason == (
        "invalid JSON: the document ends inside resourceSpans[1]; the rest of the document "
        "could not be read (3 spans read before it)")
    offset = int(problem.location.rpartition("@")[2])
    written = path.read_text()
    assert written[offset:].startswith("{") and '"scopeSpans"' not in written[offset:]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param("", ', "note": NaN}', id="nan-after-the-resources"),
        pytest.param('{"note": NaN, ', "}", id="nan-before-the-resources"),
        pytest.param("", "} garbage", id="garbage-after-the-document"),
    ],
)
def test_invalid_json_outside_the_resources_of_a_document_is_a_problem(
        tmp_path: Path, before: str, after: str) -> None:
    text = json.dumps(pretty_document([batch(1), batch(10)]), indent=2)
    path = tmp_path / "export.json"
    path.write_text(before + text[1:-1].strip() + after if before else text[:-1] + after)
    results = read(path)
    assert span_ids(results) == [1, 2, 3, 10, 11, 12]
    [problem] = problems(results)
    assert problem.reason.startswith("invalid JSON: ")


@pytest.mark.parametrize("size", [2, 3, 10, 15])
@pytest.mark.parametrize("name", ["traces.gz", "traces.jsonl.gz", "traces.pb.gz",
                                  "traces.json.gz"])
def test_gzip_cut_inside_its_header_is_a_problem(tmp_path: Path, size: int, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(json_line(batch(1)))[:size])
    [problem] = read(path)
    assert isinstance(problem, IngestProblem)
    assert re.fullmatch(rf"{re.escape(str(path))}(:1|@0)", problem.location)
    assert problem.reason.startswith("cannot read the file: ")
    assert line_mapper(path) is None  # the sequential reader reports it


@pytest.mark.parametrize("lines", [8, 12, 30])
def test_gzip_cut_within_the_first_lines_keeps_them(tmp_path: Path, lines: int) -> None:
    nan = b'{"resourceSpans": [{"resource": NaN}]}\n'
    content = nan * 6 + b"".join(json_line(batch(10 * n, count=1)) for n in range(1, lines + 1))
    compressed = gzip.compress(content)
    path = tmp_path / "traces.json.gz"
    path.write_bytes(compressed[:-40])  # cut inside the deflate data
    results = read(path)
    read_ids = span_ids(results)
    assert 0 < len(read_ids) < lines and read_ids == [10 * n for n in range(1, len(read_ids) + 1)]
    *bad, cut = problems(results)
    assert [problem.location for problem in bad] == [f"{path}:{n}" for n in range(1, 7)]
    assert cut.location == f"{path}:{len(read_ids) + 7}"
    assert cut.reason.startswith("cannot read the file: ")


def test_gzip_cut_among_malformed_first_lines_reports_each_line(tmp_path: Path) -> None:
    content = b"".join(b'{"resourceSpans": [{"resource": NaN, "n": %d}]}\n' % n
                       for n in range(15))
    compressed = gzip.compress(content)
    path = tmp_path / "traces.json.gz"
    path.write_bytes(compressed[:-20])
    *bad, cut = read(path)
    assert len(bad) > 5 and [problem.location for problem in bad] == [
        f"{path}:{n}" for n in range(1, len(bad) + 1)]
    assert all(problem.reason == "resourceSpans[0]: invalid JSON: NaN is not a JSON value"
               for problem in bad)
    assert cut == IngestProblem(f"{path}:{len(bad) + 1}", "cannot read the file: Compressed "
                                "file ended before the end-of-stream marker was reached")


def test_large_document_read_past_a_nan_still_streams_with_flat_memory(tmp_path: Path) -> None:
    one = collector_json(batch(1, count=5, payload="p" * 2000))["resourceSpans"][0]
    bad = json.loads(json.dumps(one))
    bad["scopeSpans"][0]["spans"][0]["attributes"].append(
        {"key": "score", "value": {"doubleValue": float("nan")}})
    path = tmp_path / "big.json"
    with path.open("w") as out:
        out.write('{\n  "resourceSpans": [\n' + json.dumps(bad, indent=2) + ",\n")
        out.write(",\n".join(json.dumps(one, indent=2) for _ in range(2000)))
        out.write("\n  ]\n}\n")
    tracemalloc.start()
    try:
        results = [None if isinstance(r, Span) else r for r in read_file(path, OPTIONS)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(results) == 10_005
    assert [r for r in results if r is not None] == [IngestProblem(
        f"{path}@23", "resourceSpans[0].scopeSpans[0].spans[0]: invalid JSON: NaN is not a "
        "JSON value")]
    assert peak < 4 * 1024 * 1024  # the whole file would be over 25 MiB


@pytest.mark.parametrize("name", ["lines.jsonl", "lines.txt"])
def test_json_lines_opening_with_a_line_that_is_not_json_are_still_json(
        tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"garbage line\n" + b"".join(json_line(batch(i, 1)) for i in range(1, 3001)))
    results = read(path)
    assert detect_format(path) is TraceFileFormat.OTLP_JSON
    assert span_ids(results) == list(range(1, 3001))
    assert [p.location for p in results if isinstance(p, IngestProblem)] == [f"{path}:1"]


@pytest.mark.parametrize("document", [
    {"resourceMetrics": [{"resource": {}, "scopeMetrics": []}]},
    {"resourceSpans": {"oops": 1}},
])
def test_a_document_that_is_not_a_trace_export_is_a_problem(
        tmp_path: Path, document: dict[str, Any]) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(document, indent=2))
    [problem] = read(path)
    assert problem == IngestProblem(f"{path}@0",
                                    "not an OTLP trace export: no resourceSpans list")


def test_an_empty_trace_export_document_is_no_problem(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"resourceSpans": []}, indent=2))
    assert read(path) == []


def test_a_byte_order_mark_opening_json_lines_costs_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(json_line(batch(i, 1)) for i in (1, 2, 3)))
    assert read(path) == [r for r in read(path) if isinstance(r, Span)]
    assert span_ids(read(path)) == [1, 2, 3]
