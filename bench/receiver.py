"""Benchmark: ``tracegrade serve`` taking OTLP/HTTP from a real exporter, 512 spans a request.

The receiver runs in this process on 127.0.0.1 with a fresh SQLite store. A second process
creates LLM spans with the OpenTelemetry SDK (OpenInference attributes: model, messages, token
counts) and sends them with the real ``OTLPSpanExporter`` (protobuf over HTTP) in batches of
512, back to back. Measured: spans per second from the first request to the last answer, and
whether every span arrived (the exporter got SUCCESS for every batch and the store holds all
of them). Target: at least 5,000 spans/s sustained, none dropped. Prints one JSON document.

    python bench/receiver.py [--spans 102400] [--exporters 1]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tracegrade._gc import tune_for_service  # noqa: E402
from tracegrade.ingest import default_workers  # noqa: E402
from tracegrade.server import BackgroundReceiver, ServerSettings  # noqa: E402
from tracegrade.sources._base import MappingOptions  # noqa: E402
from tracegrade.store import open_store  # noqa: E402

BATCH = 512


def export(url: str, count: int, worker: int, ready: Any, go: Any, results: Any) -> None:
    """Make ``count`` spans, wait for the start signal, export them 512 at a time."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult, SpanProcessor

    class Collect(SpanProcessor):
        def __init__(self) -> None:
            self.spans: list[ReadableSpan] = []

        def on_end(self, span: ReadableSpan) -> None:
            self.spans.append(span)

    collector = Collect()
    provider = TracerProvider(resource=Resource.create({
        "service.name": "support-agent", "service.version": "2026.11.2",
        "deployment.environment.name": "production"}))
    provider.add_span_processor(collector)
    tracer = provider.get_tracer("bench")
    for i in range(count):
        with tracer.start_as_current_span("ChatCompletion") as span:
            span.set_attributes({
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4.1-mini",
                "llm.input_messages.0.message.role": "system",
                "llm.input_messages.0.message.content": "You are a support agent.",
                "llm.input_messages.1.message.role": "user",
                "llm.input_messages.1.message.content": f"Where is order {worker}-{i}? " * 4,
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "It shipped yesterday. " * 4,
                "llm.token_count.prompt": 120,
                "llm.token_count.completion": 30,
                "llm.token_count.total": 150,
                "session.id": f"session-{i % 97}",
                "user.id": f"user-{i % 31}",
            })
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=60)
    batches = [collector.spans[i:i + BATCH] for i in range(0, count, BATCH)]
    ready.put(worker)
    go.wait()
    failed = 0
    began = time.perf_counter()
    for batch in batches:
        if exporter.export(batch) is not SpanExportResult.SUCCESS:
            failed += len(batch)
    results.put({"worker": worker, "seconds": time.perf_counter() - began,
                 "sent": count, "failed": failed, "started": began})
    exporter.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=200 * BATCH,
                        help="Spans per exporter (a multiple of 512 keeps batches full).")
    parser.add_argument("--ack", choices=["stored", "queued"], default="stored",
                        help="When the receiver answers: after the commit, or once queued.")
    parser.add_argument("--exporters", type=int, default=1,
                        help="Exporter processes sending at once.")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="Receiver processes mapping each request (tracegrade serve's "
                             "default: one per CPU, at most 4); 0 maps in a thread.")
    args = parser.parse_args()
    tune_for_service()  # as `tracegrade serve` does before it starts the receiver
    context = multiprocessing.get_context("spawn")
    ready, go, results = context.Queue(), context.Event(), context.Queue()
    with tempfile.TemporaryDirectory() as directory, \
            open_store(f"sqlite:///{Path(directory) / 'receiver.db'}") as store, \
            BackgroundReceiver(store, MappingOptions(source="live"),
                               ServerSettings(port=0, acknowledge=args.ack,
                                              workers=args.workers)) as receiver:
        workers = [context.Process(target=export, args=(receiver.url, args.spans, w, ready, go,
                                                        results), daemon=True)
                   for w in range(args.exporters)]
        for worker in workers:
            worker.start()
        for _ in workers:
            ready.get(timeout=600)
        began = time.perf_counter()
        go.set()
        outcomes = [results.get(timeout=1800) for _ in workers]
        elapsed = time.perf_counter() - began
        expected = sum(o["sent"] - o["failed"] for o in outcomes)
        deadline = time.monotonic() + 600
        while store.count_spans() < expected and time.monotonic() < deadline:
            time.sleep(0.01)  # with --ack queued the writer may still be draining
        until_stored = time.perf_counter() - began
        for worker in workers:
            worker.join(60)
        receiver.stop()
        stored = store.count_spans()
        stats = receiver.stats
        batches = receiver.writer.stats.batches
    sent = sum(o["sent"] for o in outcomes)
    failed = sum(o["failed"] for o in outcomes)
    rate = sent / elapsed
    print(orjson.dumps({
        "benchmark": "receiver",
        "exporters": args.exporters,
        "receiver_workers": args.workers,
        "acknowledge": args.ack,
        "batch_spans": BATCH,
        "spans_sent": sent,
        "requests": stats.requests,
        "seconds": round(elapsed, 2),
        "spans_per_s": round(rate),
        "seconds_until_all_stored": round(until_stored, 2),
        "spans_per_s_until_all_stored": round(sent / until_stored),
        "target_spans_per_s": 5000,
        "meets_target": sent / until_stored >= 5000 and failed == 0 and stored == sent,
        "export_failures": failed,
        "spans_stored": stored,
        "spans_rejected": stats.spans_rejected,
        "spans_lost": stats.spans_lost,
        "store_transactions": batches,
        "http_errors": stats.errors,
    }, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
