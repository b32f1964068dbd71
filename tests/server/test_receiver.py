"""The live OTLP/HTTP receiver, fed by the real OpenTelemetry SDK and real instrumentation."""

from __future__ import annotations

import base64
import gzip
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import orjson
import pytest
from click.testing import CliRunner
from google.protobuf.json_format import MessageToDict
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status as OtelStatus
from opentelemetry.trace import StatusCode as OtelStatusCode

from tests.conftest import make_span, processes_running
from tests.fakes._chat import chat_server
from tests.sources import key_values
from tracegrade.cli import cli
from tracegrade.server import (
    BackgroundReceiver,
    ServerConfigError,
    ServerSettings,
    check_binding,
    create_app,
)
from tracegrade.server._mapping import decode_part
from tracegrade.server._writer import BatchWriter
from tracegrade.sources._base import MappingOptions
from tracegrade.spans import Span, SpanKind, StatusCode
from tracegrade.store import Store
from tracegrade.store._store import PreparedBatch, prepare_batch

TOKEN = "receiver-token-9f2e"
RESOURCE = {"service.name": "support-agent", "service.version": "2026.11.2",
            "deployment.environment.name": "production"}


@pytest.fixture(params=[0, 2], ids=["in-thread", "2-workers"])
def receiver(store: Store, request: pytest.FixtureRequest) -> Iterator[BackgroundReceiver]:
    """The receiver mapping in a thread, and with worker processes sharing each request."""
    settings = ServerSettings(port=0, workers=request.param)
    with BackgroundReceiver(store, MappingOptions(source="live"), settings) as running:
        yield running


def provider_to(endpoint: str, **exporter: Any) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create(RESOURCE))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint,
                                                                     **exporter)))
    return provider


def stored(store: Store) -> dict[str, Span]:
    return {s.span.name: s.span for s in store.iter_spans() if s.span.source == "live"}


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_the_sdk_exporter_delivers_a_trace(store: Store, receiver: BackgroundReceiver,
                                           compression: Compression) -> None:
    provider = provider_to(f"{receiver.url}/v1/traces", compression=compression)
    tracer = provider.get_tracer("support")
    with tracer.start_as_current_span("handle_request") as root:
        root.set_attribute("openinference.span.kind", "CHAIN")
        with tracer.start_as_current_span("lookup_order") as tool:
            tool.set_attributes({"openinference.span.kind": "TOOL", "tool.name": "lookup_order",
                                 "input.value": '{"order_id": "A-1"}',
                                 "input.mime_type": "application/json"})
            tool.set_status(OtelStatus(OtelStatusCode.ERROR, "order service down"))
    provider.shutdown()

    spans = stored(store)
    assert set(spans) == {"handle_request", "lookup_order"}
    child, parent = spans["lookup_order"], spans["handle_request"]
    assert child.parent_id == parent.span_id and child.trace_id == parent.trace_id
    assert (child.kind, child.input) == (SpanKind.TOOL, {"order_id": "A-1"})
    assert (child.status.code, child.status.message) == (StatusCode.ERROR, "order service down")
    assert (parent.release, parent.environment) == ("2026.11.2", "production")
    assert receiver.stats.spans_accepted == 2 and receiver.stats.spans_rejected == 0


def test_openinference_openai_spans_arrive_with_model_messages_tokens_and_tool_calls(
        store: Store, receiver: BackgroundReceiver) -> None:
    provider = provider_to(f"{receiver.url}/v1/traces")
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    tools = [{"type": "function", "function": {
        "name": "lookup_order", "description": "Find an order by id",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                       "required": ["order_id"]}}}]
    try:
        with chat_server() as chat:
            client = openai.OpenAI(base_url=f"{chat.url}/v1", api_key="sk-test",
                                   max_retries=0)
            client.chat.completions.create(
                model="gpt-4.1-mini", tools=tools,  # type: ignore[arg-type]
                messages=[{"role": "system", "content": "You help with orders."},
                          {"role": "user", "content": "Where is my order A-1001?"}])
    finally:
        instrumentor.uninstrument()
        provider.shutdown()

    (span,) = stored(store).values()
    assert span.kind is SpanKind.LLM
    assert span.model == "gpt-4.1-mini-2026-04-14"
    assert (span.input_tokens, span.output_tokens, span.total_tokens) == (9, 17, 26)
    assert span.input["messages"][-1] == {"role": "user", "content": "Where is my order A-1001?"}
    assert span.attributes["tool_calls"] == [
        {"id": "call_7f3a", "name": "lookup_order", "arguments": {"order_id": "A-1001"}}]
    assert span.attributes["tool_definitions"][0]["name"] == "lookup_order"
    assert span.release == "2026.11.2"


def otlp_json(*spans: dict[str, Any]) -> dict[str, Any]:
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.version",
                                     "value": {"stringValue": "r7"}}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}]}]}


def json_span(span_id: str, **fields: Any) -> dict[str, Any]:
    return {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": span_id,
            "name": "step", "startTimeUnixNano": "1764000000000000000",
            "endTimeUnixNano": "1764000000500000000", **fields}


def test_json_in_json_out_with_partial_success_naming_the_rejected_spans(
        store: Store, receiver: BackgroundReceiver) -> None:
    body = otlp_json(json_span("b7ad6b7169203331"),
                     json_span("00f067aa0ba902b7", startTimeUnixNano="yesterday"),
                     json_span("", name="no id"))
    response = httpx.post(f"{receiver.url}/v1/traces", content=orjson.dumps(body),
                          headers={"Content-Type": "application/json"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 2
    assert "span 00f067aa0ba902b7" in partial["errorMessage"]
    assert "startTimeUnixNano" in partial["errorMessage"]
    assert "spans[2]" in partial["errorMessage"]
    assert [s.span.span_id for s in store.iter_spans()] == ["b7ad6b7169203331"]


def test_protobuf_gzip_in_protobuf_out_with_partial_success(
        store: Store, receiver: BackgroundReceiver) -> None:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    good = scope.spans.add(trace_id=bytes(range(16)), span_id=bytes(range(1, 9)), name="ok",
                           start_time_unix_nano=1_764_000_000_000_000_000)
    good.attributes.extend(key_values({"openinference.span.kind": "LLM"}))
    scope.spans.add(trace_id=bytes(range(16)), span_id=b"", name="missing id",
                    start_time_unix_nano=1_764_000_000_000_000_000)
    response = httpx.post(f"{receiver.url}/v1/traces",
                          content=gzip.compress(request.SerializeToString()),
                          headers={"Content-Type": "application/x-protobuf",
                                   "Content-Encoding": "gzip"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "spanId" in answer.partial_success.error_message
    assert [s.span.name for s in store.iter_spans()] == ["ok"]


def test_a_fully_accepted_request_gets_an_empty_response(receiver: BackgroundReceiver) -> None:
    response = httpx.post(f"{receiver.url}/v1/traces", content=orjson.dumps(
        otlp_json(json_span("b7ad6b7169203331"))), headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and response.json() == {}


@pytest.mark.parametrize(("content_type", "body", "status"), [
    ("application/x-protobuf", b"\x0a\xff\xff\xff", 400),
    ("application/json", b"{not json", 400),
    ("application/json", b'{"resourceSpans": 5}', 400),
    ("text/plain", b"hello", 415),
])
def test_undecodable_or_unsupported_bodies_are_refused(
        receiver: BackgroundReceiver, content_type: str, body: bytes, status: int) -> None:
    response = httpx.post(f"{receiver.url}/v1/traces", content=body,
                          headers={"Content-Type": content_type})
    assert response.status_code == status
    if content_type == "application/json":
        assert response.json()["code"] == 3 and response.json()["message"]


def test_an_unknown_content_encoding_is_refused(receiver: BackgroundReceiver) -> None:
    response = httpx.post(f"{receiver.url}/v1/traces", content=b"x",
                          headers={"Content-Type": "application/json",
                                   "Content-Encoding": "br"})
    assert response.status_code == 415


def test_with_a_token_only_authorised_requests_get_in(store: Store) -> None:
    settings = ServerSettings(port=0, token=TOKEN)
    body = orjson.dumps(otlp_json(json_span("b7ad6b7169203331")))
    headers = {"Content-Type": "application/json"}
    basic = base64.b64encode(f"pk-lf-any:{TOKEN}".encode()).decode()
    with BackgroundReceiver(store, MappingOptions(source="live"), settings) as rx:
        refused = httpx.post(f"{rx.url}/v1/traces", content=body, headers=headers)
        wrong = httpx.post(f"{rx.url}/v1/traces", content=body,
                           headers={**headers, "Authorization": "Bearer nope"})
        bearer = httpx.post(f"{rx.url}/v1/traces", content=body,
                            headers={**headers, "Authorization": f"Bearer {TOKEN}"})
        langfuse_sdk = httpx.post(f"{rx.url}/api/public/otel/v1/traces", content=body,
                                  headers={**headers, "Authorization": f"Basic {basic}"})
    assert (refused.status_code, wrong.status_code) == (401, 401)
    assert (bearer.status_code, langfuse_sdk.status_code) == (200, 200)
    assert store.count_spans() == 1


def test_the_langfuse_sdk_path_takes_the_sdk_exporter(store: Store,
                                                      receiver: BackgroundReceiver) -> None:
    provider = provider_to(f"{receiver.url}/api/public/otel/v1/traces")
    with provider.get_tracer("langfuse-sdk").start_as_current_span("generation"):
        pass
    provider.shutdown()
    assert list(stored(store)) == ["generation"]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_exposed_addresses_need_a_token(host: str) -> None:
    with pytest.raises(ServerConfigError, match="without a token"):
        check_binding(host, None)
    check_binding(host, TOKEN)
    for loopback in ("127.0.0.1", "::1", "localhost"):
        check_binding(loopback, None)


def test_serve_on_an_exposed_address_without_a_token_is_a_one_line_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACEGRADE_SERVER_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("Error: refusing to listen on 0.0.0.0")


class _GatedStore:
    """A store whose first write waits for a signal, to make requests pile up."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.gate = threading.Event()
        self.writing = threading.Event()
        self.writes: list[int] = []

    @property
    def dialect(self) -> str:
        return self.store.dialect

    def write_prepared(self, prepared: PreparedBatch) -> Any:
        self.writing.set()
        self.gate.wait(10)
        self.writes.append(len(prepared.rows))
        return self.store.write_prepared(prepared)


def spans_for(index: int, dialect: str) -> PreparedBatch:
    return prepare_batch([make_span(index * 10 + i, source="live") for i in range(10)], None,
                         dialect)


def test_requests_waiting_on_a_write_share_the_next_transaction(store: Store) -> None:
    gated = _GatedStore(store)
    writer = BatchWriter(gated, max_batch_spans=1000)  # type: ignore[arg-type]
    first = writer.submit(spans_for(0, store.dialect))
    assert gated.writing.wait(10)  # the writer is busy with the first request
    later = [writer.submit(spans_for(i, store.dialect)) for i in range(1, 6)]
    gated.gate.set()
    for future in [first, *later]:
        future.result(10)
    writer.close()
    assert gated.writes == [10, 50]
    assert store.count_spans() == 60


def test_a_backed_up_writer_answers_503_with_retry_after(store: Store) -> None:
    gated = _GatedStore(store)
    writer = BatchWriter(gated, max_pending_spans=15)  # type: ignore[arg-type]
    app = create_app(writer, MappingOptions(source="live"))
    writer.submit(spans_for(0, store.dialect))
    body = orjson.dumps(otlp_json(*[json_span(f"{i:016x}") for i in range(1, 11)]))
    transport = httpx.ASGITransport(app=app)

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
            return await http.post("/v1/traces", content=body,
                                   headers={"Content-Type": "application/json"})

    response = anyio.run(post)
    gated.gate.set()
    writer.close()
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert "spans are waiting" in response.json()["message"]


def test_a_request_dict_round_trips_through_message_to_dict() -> None:
    # The JSON path reads what protobuf's JSON mapping writes (base64 ids included).
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=bytes(range(16)), span_id=bytes(range(8)), name="x",
        start_time_unix_nano=1_764_000_000_000_000_000)
    decoded = decode_part(orjson.dumps(MessageToDict(request)), "application/json",
                          MappingOptions(source="live"), "sqlite")
    assert decoded.rejected == [] and list(decoded.prepared.rows) == [
        ("live", bytes(range(8)).hex())]


def test_queued_acknowledgement_answers_before_the_write_commits(store: Store) -> None:
    gated = _GatedStore(store)
    writer = BatchWriter(gated)  # type: ignore[arg-type]
    app = create_app(writer, MappingOptions(source="live"), acknowledge="queued")
    body = orjson.dumps(otlp_json(json_span("b7ad6b7169203331")))

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
            return await http.post("/v1/traces", content=body,
                                   headers={"Content-Type": "application/json"})

    response = anyio.run(post)
    assert response.status_code == 200 and store.count_spans() == 0  # answered, not written
    gated.gate.set()
    writer.close()
    assert store.count_spans() == 1 and app.state.stats.spans_lost == 0


def mixed_request(spans: int) -> ExportTraceServiceRequest:
    """A request of ``spans`` spans over two resources; every fifth has no span id."""
    request = ExportTraceServiceRequest()
    for resource_index in range(2):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(key_values({"service.version": "r1"}))
        scope = resource_spans.scope_spans.add()
        for i in range(resource_index, spans, 2):
            scope.spans.add(trace_id=bytes(range(16)),
                            span_id=b"" if i % 5 == 0 else (i + 1).to_bytes(8, "big"),
                            name=f"step-{i}", start_time_unix_nano=1_764_000_000_000_000_000)
    return request


@pytest.mark.parametrize("media_type", ["application/x-protobuf", "application/json"])
def test_parts_of_a_request_add_up_to_the_whole(media_type: str) -> None:
    request = mixed_request(23)
    body = request.SerializeToString() if media_type.endswith("protobuf") \
        else orjson.dumps(MessageToDict(request))
    options = MappingOptions(source="live")
    whole = decode_part(body, media_type, options, "sqlite")
    parts = [decode_part(body, media_type, options, "sqlite", (k, 3)) for k in range(3)]
    assert sum(part.accepted for part in parts) == whole.accepted == 18
    assert all(part.accepted for part in parts)  # each part did its share
    assert sorted(key for part in parts for key in part.prepared.rows) == sorted(
        whole.prepared.rows)
    assert sorted(r for part in parts for r in part.rejected) == sorted(whole.rejected)
    assert len(whole.rejected) == 5


@pytest.mark.parametrize(("media_type", "body"), [
    ("application/x-protobuf", b"\x0a\xff\xff\xff"), ("application/json", b"{not json")])
def test_an_undecodable_request_is_reported_by_one_part_only(media_type: str,
                                                             body: bytes) -> None:
    options = MappingOptions(source="live")
    parts = [decode_part(body, media_type, options, "sqlite", (k, 2)) for k in range(2)]
    assert parts[0].undecodable is not None and parts[0].rejected
    assert (parts[1].undecodable, parts[1].rejected, parts[1].accepted) == (None, [], 0)


def test_workers_answer_partial_success_like_one_process(store: Store,
                                                         receiver: BackgroundReceiver) -> None:
    body = mixed_request(40).SerializeToString()
    response = httpx.post(f"{receiver.url}/v1/traces", content=body,
                          headers={"Content-Type": "application/x-protobuf"})
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert response.status_code == 200
    assert answer.partial_success.rejected_spans == 8
    assert store.count_spans() == 32 == receiver.stats.spans_accepted


def test_a_killed_receiver_leaves_no_workers_behind(workspace: Path) -> None:
    command = [sys.executable, "-m", "tracegrade", "--store", "sqlite:///r.db", "serve",
               "--port", "0", "--workers", "2"]
    process = subprocess.Popen(command, cwd=workspace, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        assert "Receiving OTLP/HTTP traces" in process.stderr.readline()
        # The fork server and its workers carry the working directory in their command line.
        deadline = time.monotonic() + 60
        while len(processes_running(workspace)) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = [pid for pid in processes_running(workspace) if pid != process.pid]
        assert len(workers) >= 3, "expected a fork server and two workers"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + 15
    while processes_running(workspace) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_running(workspace) == []


def test_a_dead_mapping_worker_leaves_the_receiver_mapping_in_process(store: Store) -> None:
    settings = ServerSettings(port=0, workers=2)
    with BackgroundReceiver(store, MappingOptions(source="live"), settings) as receiver:
        assert receiver.pool is not None
        receiver.pool._processes[0].kill()
        receiver.pool._processes[0].join(10)
        body = mixed_request(40).SerializeToString()
        response = httpx.post(f"{receiver.url}/v1/traces", content=body,
                              headers={"Content-Type": "application/x-protobuf"})
        assert response.status_code == 200
        assert receiver.pool.broken is not None
        assert store.count_spans() == 32
