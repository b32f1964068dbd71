"""The live OTLP/HTTP receiver, fed by the real OpenTelemetry SDK and real instrumentation."""

from __future__ import annotations

import base64
import gzip
import math
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
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
    listen,
)
from tracegrade.server._mapping import PROTOBUF, MappingError, MappingPool, decode_part
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


LANGFUSE_APP = """\
import sys
from langfuse import Langfuse
from opentelemetry.sdk.trace import TracerProvider

langfuse = Langfuse(public_key="pk-lf-test", secret_key="sk-lf-test", base_url=sys.argv[1],
                    environment="production", release="2026.12.1",
                    tracer_provider=TracerProvider())
with langfuse.start_as_current_observation(as_type="span", name="support_agent",
                                           input={"question": "Where is my order?"}):
    with langfuse.start_as_current_observation(
            as_type="generation", name="chat", model="gpt-4.1-mini",
            input=[{"role": "user", "content": "Where is my order?"}]) as generation:
        generation.update(output={"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "lookup_order", "arguments": '{"order_id": 7}'}}]},
            usage_details={"input": 11, "output": 4}, cost_details={"total": 0.0002})
    with langfuse.start_as_current_observation(as_type="tool", name="lookup_order",
                                               input={"order_id": 7}) as tool:
        tool.update(output={"status": "shipped"}, level="ERROR", status_message="upstream 503")
langfuse.flush()
langfuse.shutdown()
"""


def test_the_langfuse_sdk_sends_generations_tools_and_errors_that_map(
        store: Store, receiver: BackgroundReceiver, workspace: Path) -> None:
    # The real Langfuse SDK in an app's process, pointed at the receiver as at Langfuse: its
    # spans carry only langfuse.* attributes, and were stored as empty `other` spans. (Its
    # own process: the SDK's threads and fork hooks would break this one's worker pools.)
    (workspace / "app.py").write_text(LANGFUSE_APP)
    subprocess.run([sys.executable, "app.py", receiver.url], cwd=workspace, check=True,
                   timeout=120)

    spans = {stored.span.name: stored.span for stored in store.iter_spans()}
    chat, lookup, agent = spans["chat"], spans["lookup_order"], spans["support_agent"]
    assert (chat.kind, chat.model, chat.input_tokens, chat.output_tokens, chat.total_tokens,
            chat.cost) == (SpanKind.LLM, "gpt-4.1-mini", 11, 4, 15, 0.0002)
    assert chat.input == [{"role": "user", "content": "Where is my order?"}]
    assert chat.attributes["tool_calls"] == [
        {"id": "c1", "name": "lookup_order", "arguments": {"order_id": 7}}]
    assert (lookup.kind, lookup.input, lookup.output) == (
        SpanKind.TOOL, {"order_id": 7}, {"status": "shipped"})
    assert (lookup.status.code, lookup.status.message) == (StatusCode.ERROR, "upstream 503")
    assert (agent.kind, agent.input) == (SpanKind.OTHER, {"question": "Where is my order?"})
    assert {(s.release, s.environment) for s in spans.values()} == {("2026.12.1", "production")}


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_exposed_addresses_need_a_token(host: str) -> None:
    with pytest.raises(ServerConfigError, match="without a token"):
        check_binding(host, None)
    check_binding(host, TOKEN)
    for loopback in ("127.0.0.1", "::1", "localhost"):
        check_binding(loopback, None)


def test_the_announced_address_takes_connections_before_the_server_runs() -> None:
    # `serve` prints its address once the socket is bound, then starts uvicorn: a client
    # that connects in between must wait in the backlog, not be refused (CI saw it refused).
    sock = listen(ServerSettings(port=0))
    try:
        with socket.create_connection(sock.getsockname()[:2], timeout=5):
            pass
    finally:
        sock.close()


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


@pytest.mark.parametrize("part", [None, (0, 2)], ids=["whole", "worker-part"])
def test_a_protobuf_anyvalue_field_newer_than_this_code_is_read_as_absent(
        part: tuple[int, int] | None) -> None:
    # string_value_strindex (a later proto field) made the request fail with 500: 0 of 1 kept.
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=bytes(range(16)), span_id=bytes(range(8)), name="x",
        start_time_unix_nano=1_764_000_000_000_000_000)
    attribute = span.attributes.add(key="future")
    attribute.value.string_value_strindex = 3
    args = (part,) if part else ()
    decoded = decode_part(request.SerializeToString(), PROTOBUF, MappingOptions(source="live"),
                          "sqlite", *args)
    assert decoded.rejected == [] and list(decoded.prepared.rows) == [
        ("live", bytes(range(8)).hex())]


def test_an_unknown_top_level_protobuf_field_never_becomes_spans() -> None:
    # A rejected span sends the request down the span-by-span path, which read every
    # length-delimited field as ResourceSpans: the one hidden in field 9 was stored.
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for span_id, value in ((1, 1.0), (2, math.nan)):
        scope.spans.add(trace_id=bytes(range(16)), span_id=span_id.to_bytes(8, "big"),
                        name="x", start_time_unix_nano=1_764_000_000_000_000_000,
                        attributes=[{"key": "x", "value": {"double_value": value}}])
    hidden = ExportTraceServiceRequest()
    hidden.resource_spans.add().scope_spans.add().spans.add(
        trace_id=bytes(range(16)), span_id=b"\xee" * 8, name="hidden",
        start_time_unix_nano=1_764_000_000_000_000_000)
    payload = hidden.resource_spans[0].SerializeToString()
    body = request.SerializeToString() + bytes([9 << 3 | 2]) + _varint(len(payload)) + payload
    decoded = decode_part(body, PROTOBUF, MappingOptions(source="live"), "sqlite")
    assert len(decoded.rejected) == 1
    assert list(decoded.prepared.rows) == [("live", (1).to_bytes(8, "big").hex())]


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


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


def small_receiver(store: Store, max_body_bytes: int) -> BackgroundReceiver:
    settings = ServerSettings(port=0, max_body_bytes=max_body_bytes)
    return BackgroundReceiver(store, MappingOptions(source="live"), settings)


@pytest.mark.parametrize("envelope", [
    {"resourceSpans": [{"scopeSpans": 5}]},
    {"resourceSpans": [{"scopeSpans": 2.5}]},
    {"resourceSpans": [{"scopeSpans": True}]},
    {"resourceSpans": [{"scopeSpans": {"spans": [json_span("b7ad6b7169203331")]}}]},
    {"resourceSpans": [{"scopeSpans": [{"spans": {"a": json_span("b7ad6b7169203331")}}]}]},
    {"resourceSpans": [{"scopeSpans": [7]}]},
    {"resourceSpans": [5]},
    {"resourceSpans": [{"resource": "r7", "scopeSpans": [{"spans": [
        json_span("b7ad6b7169203331")]}]}]},
], ids=["scopeSpans-int", "scopeSpans-float", "scopeSpans-bool", "scopeSpans-object",
        "spans-object", "scope-int", "resourceSpans-entry-int", "resource-string"])
def test_a_body_not_shaped_like_an_export_is_refused_and_the_workers_carry_on(
        store: Store, receiver: BackgroundReceiver, envelope: dict[str, Any]) -> None:
    url, headers = f"{receiver.url}/v1/traces", {"Content-Type": "application/json"}
    refused = httpx.post(url, content=orjson.dumps(envelope), headers=headers)
    later = httpx.post(url, content=orjson.dumps(otlp_json(json_span("00f067aa0ba902b7"))),
                       headers=headers)

    assert refused.status_code == 400
    assert refused.json()["code"] == 3
    assert "not an OTLP trace export: resourceSpans[0]" in refused.json()["message"]
    assert later.status_code == 200 and store.count_spans() == 1
    if receiver.pool is not None:  # an input error is not a worker failure
        assert receiver.pool.broken is None
        assert all(process.is_alive() for process in receiver.pool._processes)


def test_a_request_whose_mapping_raises_in_a_worker_fails_alone(store: Store) -> None:
    pool = MappingPool(2, MappingOptions(source="live"), store.dialect)
    try:
        pool.warm_up()
        with pytest.raises(MappingError, match="TypeError"):
            anyio.run(pool.decode, None, PROTOBUF)  # not bytes: mapping it raises
        decoded = anyio.run(pool.decode, mixed_request(10).SerializeToString(), PROTOBUF)
        assert pool.broken is None and decoded.accepted == 8
    finally:
        pool.close()


def rejected_resource_request(media_type: str) -> bytes:
    """A resource whose attributes are invalid, holding 3 spans; and a valid one with 1."""
    request = ExportTraceServiceRequest()
    for index, bad in enumerate([True, False]):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(key_values({"service.version": "r1"}))
        scope = resource_spans.scope_spans.add()
        for i in range(3 if bad else 1):
            scope.spans.add(trace_id=bytes(range(16)), span_id=bytes([index + 1, i + 1]) * 4,
                            name=f"step-{index}-{i}",
                            start_time_unix_nano=1_764_000_000_000_000_000)
    if media_type == PROTOBUF:
        request.resource_spans[0].resource.attributes.extend(key_values({"x": float("nan")}))
        return request.SerializeToString()
    body = MessageToDict(request)
    body["resourceSpans"][0]["resource"]["attributes"].append(
        {"key": "", "value": {"stringValue": "no key"}})
    return orjson.dumps(body)


@pytest.mark.parametrize("media_type", [PROTOBUF, "application/json"])
def test_a_rejected_resource_counts_every_span_it_held(
        store: Store, receiver: BackgroundReceiver, media_type: str) -> None:
    response = httpx.post(f"{receiver.url}/v1/traces",
                          content=rejected_resource_request(media_type),
                          headers={"Content-Type": media_type})

    assert response.status_code == 200
    if media_type == PROTOBUF:
        partial = ExportTraceServiceResponse.FromString(response.content).partial_success
        rejected, message = partial.rejected_spans, partial.error_message
    else:
        partial = response.json()["partialSuccess"]
        rejected, message = int(partial["rejectedSpans"]), partial["errorMessage"]
    assert rejected == 3 == receiver.stats.spans_rejected
    assert "resource" in message.lower()
    assert [s.span.name for s in store.iter_spans()] == ["step-1-0"]


def export_request(*span_ids: int) -> bytes:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for span_id in span_ids:
        scope.spans.add(trace_id=bytes(range(16)), span_id=span_id.to_bytes(8, "big"),
                        name=f"span-{span_id}", start_time_unix_nano=1_764_000_000_000_000_000)
    return request.SerializeToString()


GZIP_PROTOBUF = {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}


def test_a_gzip_body_of_several_members_is_read_whole(store: Store,
                                                      receiver: BackgroundReceiver) -> None:
    # Concatenated members decompress to the concatenated requests: one request, merged.
    body = gzip.compress(export_request(1)) + gzip.compress(export_request(2, 3))
    response = httpx.post(f"{receiver.url}/v1/traces", content=body, headers=GZIP_PROTOBUF)
    assert response.status_code == 200
    assert sorted(s.span.name for s in store.iter_spans()) == ["span-1", "span-2", "span-3"]


def test_a_gzip_body_of_thousands_of_members_is_read_whole(
        store: Store, receiver: BackgroundReceiver) -> None:
    # Each member's leftover input was copied whole: 4 MB of tiny members took 26 s and held
    # the event loop. Read in growing chunks, the same body is read once.
    body = gzip.compress(b"") * 5000 + gzip.compress(export_request(1, 2)) + gzip.compress(b"")
    response = httpx.post(f"{receiver.url}/v1/traces", content=body, headers=GZIP_PROTOBUF,
                          timeout=60)
    assert response.status_code == 200
    assert sorted(s.span.name for s in store.iter_spans()) == ["span-1", "span-2"]


def cut_after_sync_flush(payload: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)


@pytest.mark.parametrize("body", [
    cut_after_sync_flush(export_request(1, 2)),
    gzip.compress(export_request(1, 2))[:-4],
    gzip.compress(export_request(1, 2)) + b"GARBAGE",
    gzip.compress(export_request(1)) + gzip.compress(export_request(2))[:12],
    b"",
], ids=["cut-after-sync-flush", "no-size-trailer", "trailing-garbage", "cut-second-member",
        "empty"])
def test_a_truncated_or_trailed_gzip_body_is_refused(
        store: Store, receiver: BackgroundReceiver, body: bytes) -> None:
    response = httpx.post(f"{receiver.url}/v1/traces", content=body, headers=GZIP_PROTOBUF)
    assert response.status_code == 400
    assert "gzip" in response.content.decode(errors="replace")
    assert store.count_spans() == 0


def test_the_decompressed_size_limit_counts_every_gzip_member(store: Store) -> None:
    request = export_request(*range(1, 200))
    with small_receiver(store, len(request) + 100) as rx:  # room for one request, not two
        one = httpx.post(f"{rx.url}/v1/traces", content=gzip.compress(request),
                         headers=GZIP_PROTOBUF)
        two = httpx.post(f"{rx.url}/v1/traces", headers=GZIP_PROTOBUF,
                         content=gzip.compress(request) + gzip.compress(request))
    assert (one.status_code, two.status_code) == (200, 413)


def post_unfinished(url: str, headers: dict[str, str], body: bytes) -> int:
    """POST a body the client never finishes sending; the status of the answer it gets."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        sock.sendall(f"POST /v1/traces HTTP/1.1\r\nHost: receiver\r\n{head}\r\n".encode())
        sock.sendall(body)
        return int(sock.recv(4096).split()[1])  # the server waiting for the rest times out


def chunks(body: bytes, size: int = 16384) -> bytes:
    """``body`` in HTTP/1.1 chunked framing, without the closing empty chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
                    for i in range(0, len(body), size))


@pytest.mark.parametrize(("encoding", "body"), [
    ("identity", bytes(256 * 1024)),
    ("gzip", gzip.compress(random.Random(7).randbytes(256 * 1024))),  # compressed bytes count
], ids=["identity", "gzip"])
def test_an_oversized_chunked_body_is_refused_before_it_ends(store: Store, encoding: str,
                                                             body: bytes) -> None:
    with small_receiver(store, 64 * 1024) as rx:
        status = post_unfinished(rx.url, {
            "Content-Type": PROTOBUF, "Content-Encoding": encoding,
            "Transfer-Encoding": "chunked"}, chunks(body))
    assert status == 413


def test_a_declared_oversized_body_is_refused_before_it_is_sent(store: Store) -> None:
    with small_receiver(store, 64 * 1024) as rx:
        status = post_unfinished(rx.url, {"Content-Type": PROTOBUF,
                                          "Content-Length": str(400 * 1024 * 1024)}, b"")
    assert status == 413


def test_a_cancelled_request_leaves_the_writer_writing(store: Store) -> None:
    gated = _GatedStore(store)
    writer = BatchWriter(gated)  # type: ignore[arg-type]
    app = create_app(writer, MappingOptions(source="live"))
    writer.submit(spans_for(0, store.dialect))  # keeps the writer busy until the gate opens
    headers = {"Content-Type": "application/json"}

    async def post(client: httpx.AsyncClient, span_id: str) -> httpx.Response:
        return await client.post("/v1/traces", headers=headers,
                                 content=orjson.dumps(otlp_json(json_span(span_id))))

    async def cancel_one_then_post_another() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(post, http, "b7ad6b7169203331")
                    while writer.pending_spans < 11:  # the request handed its span over
                        await anyio.sleep(0.01)
                    tasks.cancel_scope.cancel()  # as when the exporter's connection drops
                gated.gate.set()
                return await post(http, "00f067aa0ba902b7")

    later = anyio.run(cancel_one_then_post_another)
    assert writer.close(10)
    assert later.status_code == 200 and writer.stats.errors == 0
    assert store.count_spans() == 12  # the cancelled request's span was written too
