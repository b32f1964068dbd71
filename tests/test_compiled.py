"""The mypyc-compiled hot paths: built, current, and equal to their pure-Python source."""

from __future__ import annotations

import ast
import gzip
import hashlib
import os
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import orjson
import pytest
import yaml
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from pydantic import ValidationError

from tests.fakes.langfuse import observation
from tracegrade import _compiled
from tracegrade.config import parse_config
from tracegrade.demo.generate import DEMO_CONFIG
from tracegrade.graders import build_graders
from tracegrade.grading import BatchGrader, _inline_capable
from tracegrade.sources._base import IngestProblem
from tracegrade.sources._langfuse_map import observation_to_span
from tracegrade.sources.otlp import map_json_line, map_proto_request
from tracegrade.spans import Span
from tracegrade.store import _fast

ROOT = Path(__file__).resolve().parents[1]
DEMO_DATA = ROOT / "src/tracegrade/demo/data/support_agent.otlp.jsonl.gz"

# Records the mapping must reject, each for its own reason.
BAD_LINES = [
    b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "01"}]}]}]}',
    b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0af7651916cd43dd8448eb211c'
    b'80319c", "spanId": "b7ad6b7169203331", "startTimeUnixNano": "x"}]}]}]}',
    b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0af7651916cd43dd8448eb211c'
    b'80319c", "spanId": "b7ad6b7169203332", "startTimeUnixNano": "1", "attributes": '
    b'[{"key": "llm.token_count.prompt", "value": {"doubleValue": 1.5}}]}]}]}]}',
    b'{"resourceSpans": 7}',
    b"not json",
]


def digest(lines: int = 12) -> str:
    """A hash of everything the compiled modules produce from demo data and bad records.

    Spans, their store rows, problems and graded verdicts (less their timing), from OTLP JSON
    lines and the same requests as protobuf.
    """
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    config = parse_config(raw)
    options = config.mapping("demo")
    inline = [g for g in build_graders(config.graders) if _inline_capable(g)]
    assert len(inline) >= 6
    graders = BatchGrader(inline, config.sampling, True, "run")
    with gzip.open(DEMO_DATA, "rb") as stream:
        requests = [line for line in islice(stream, lines) if line.strip()]
    records = []
    for number, line in enumerate([*requests, *BAD_LINES]):
        records += map_json_line(line, f"line {number}", options, 1 << 20)
    for number, line in enumerate(requests[:4]):
        message = json_format.Parse(line, trace_service_pb2.ExportTraceServiceRequest())
        records += map_proto_request(message.SerializeToString(), options, name=f"proto {number}")
    records += langfuse_records()
    spans = [r for r in records if not isinstance(r, IngestProblem)]
    assert len(spans) > 500 and len(records) - len(spans) >= len(BAD_LINES)
    stamp = _fast.db_time(datetime(2026, 1, 1, tzinfo=UTC), "sqlite")
    hasher = hashlib.sha256()
    for record in records:
        if isinstance(record, IngestProblem):
            hasher.update(f"{record.location} {record.reason}".encode())
        else:
            hasher.update(orjson.dumps(record.model_dump(mode="json")))
            values, content_hash = _fast.span_values(record, stamp, "sqlite")
            hasher.update(repr((values, content_hash)).encode())
    for verdict in graders(spans):
        hasher.update(repr({**asdict(verdict), "latency_ms": None}).encode())
    hasher.update(repr(graders.summary).encode())
    return hasher.hexdigest()


def langfuse_records() -> list[Span | IngestProblem]:
    """Langfuse observations of every type and odd shape, mapped (or refused, with why)."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [observation(i, start, kind=kind, level="ERROR" if i % 3 == 0 else "DEFAULT",
                        status_message="boom" if i % 3 == 0 else None, payload_chars=i)
            for i, kind in enumerate(("GENERATION", "TOOL", "SPAN", "EVENT", "AGENT", "chain",
                                      "RETRIEVER", "EMBEDDING", "GUARDRAIL", "EVALUATOR", "NEW"))]
    legacy = {**rows[0], "id": "legacy", "usageDetails": {}, "costDetails": None,
              "usage": {"input": 3, "output": -1, "total": 4.0}, "totalCost": None,
              "calculatedTotalCost": 0.5, "metadata": '{"a": [1, 2]}', "release": None,
              "endTime": "", "startTime": "2026-11-01T01:00:00+02:00", "tags": None,
              "output": [{"role": "assistant", "content": [
                  {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}}]}]}
    trace = {"name": "agent", "release": "r9", "tags": ["a", 2], "userId": "u", "sessionId": "s"}
    bad = [{**rows[0], "id": ""}, {**rows[0], "startTime": "yesterday"},
           {**rows[0], "id": "n", "startTime": None}, {**rows[0], "id": "t", "traceId": 7},
           {**rows[0], "id": "c", "totalCost": float("inf"), "costDetails": {"total": True}}]
    records: list[Span | IngestProblem] = []
    for row in [*rows, legacy, *bad]:
        try:
            records.append(observation_to_span(row, "lf", trace if row is legacy else None))
        except (ValueError, TypeError, ValidationError) as error:
            records.append(IngestProblem(str(row.get("id")), f"{type(error).__name__}: {error}"))
    return records


def test_setup_compiles_the_modules_the_package_lists() -> None:
    tree = ast.parse((ROOT / "setup.py").read_text())
    listed = next(ast.literal_eval(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Assign)
                  and any(isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets))
    modules = [path.removeprefix("src/").removesuffix(".py").replace("/", ".")
               for path in listed]
    assert modules == list(_compiled.COMPILED)


def test_the_hot_paths_run_compiled_and_current() -> None:
    if _compiled.pure_python_requested():
        assert _compiled.compiled_modules() == []
        return
    assert _compiled.compiled_modules() == list(_compiled.COMPILED), (
        "the mypyc build failed or was skipped: reinstall with `make venv` and read pip's output")
    assert _compiled.stale_extensions() == []


def test_compiled_and_pure_python_give_the_same_spans_rows_and_verdicts() -> None:
    loaded = _compiled.compiled_modules()
    if loaded != list(_compiled.COMPILED):
        pytest.fail(f"of {list(_compiled.COMPILED)}, this process runs compiled only "
                    f"{loaded}, so the comparison would check pure Python against itself: run "
                    f"it without {_compiled.PURE_PYTHON_ENV}=1, after a build that compiled "
                    "them (`make venv`)")
    env = {**os.environ, _compiled.PURE_PYTHON_ENV: "1"}
    script = ("from tracegrade import _compiled; assert _compiled.compiled_modules() == []; "
              "from tests.test_compiled import digest; print(digest())")
    pure = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()
    assert pure == digest()
