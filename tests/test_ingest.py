"""Import with grading while writing, and import in worker processes: same result as in-process."""

from __future__ import annotations

import gc
import gzip
import signal
import subprocess
import time
import weakref
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from tests.conftest import make_span, processes_running, slow_grader_command
from tests.sources import collector_json, request, span
from tracegrade import _gc, _parallel_import
from tracegrade._gc import between_batches, bulk_allocation
from tracegrade.cli import cli
from tracegrade.config import SamplingConfig
from tracegrade.demo.generate import BUNDLED_DATA
from tracegrade.graders import GraderConfig, build_graders
from tracegrade.grading import InlineGrading, grade
from tracegrade.ingest import import_files
from tracegrade.sources._base import MappingOptions
from tracegrade.store import Store, open_store

GRADERS = [
    {"name": "order_status_present", "type": "field_present",
     "applies_to": {"kind": "tool", "name": "lookup_order"}, "path": "$.order_status"},
    {"name": "reply_finds_order", "type": "not_regex", "applies_to": {"kind": "agent"},
     "pattern": "(cannot|can't|could not) find", "flags": ["IGNORECASE"]},
    {"name": "llm_latency_3s", "type": "max_latency_ms", "applies_to": {"kind": "llm"},
     "max_ms": 3000},
    {"name": "reply_script_latin", "type": "script_is", "applies_to": {"kind": "agent"},
     "scripts": ["Latin"]},
]


def graders() -> list:  # type: ignore[type-arg]
    return build_graders([GraderConfig.model_validate(c) for c in GRADERS])


def demo_lines(tmp_path: Path, broken_at: tuple[int, ...] = ()) -> Path:
    """The demo's OTLP JSON lines, uncompressed, with malformed lines put in where asked."""
    with gzip.open(BUNDLED_DATA, "rb") as stream:
        lines = stream.read().splitlines()
    # A carriage return is whitespace inside a line, not a line break.
    lines[1] = lines[1].replace(b'{"resourceSpans":', b'{"resourceSpans":\r', 1)
    assert b"\r" in lines[1]
    for index in broken_at:
        lines.insert(index, b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 1}]}]}]}')
    lines.insert(len(lines) // 3, b"{not json")
    lines.insert(len(lines) // 2, b"")
    path = tmp_path / "traces.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def stored(store: Store) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Every span's content and every verdict, without write times, row ids or run ids."""
    with store.engine.connect() as conn:
        spans = conn.execute(text(
            "SELECT source, span_id, trace_id, name, kind, release, start_time, latency_ms, "
            "status, input, output, model, attributes, content_hash FROM spans")).all()
        verdicts = conn.execute(text(
            "SELECT source, span_id, grader, grader_version, outcome, reason, "
            "inclusion_probability FROM verdicts")).all()
    return sorted(map(tuple, spans), key=repr), sorted(map(tuple, verdicts), key=repr)


def test_grading_while_importing_matches_grading_after(tmp_path: Path, store_url: str) -> None:
    path = demo_lines(tmp_path)
    options, sampling = MappingOptions(source="demo"), SamplingConfig(rate=0.5)
    with open_store(store_url) as store:
        with InlineGrading(store, graders(), sampling) as inline:
            summary = import_files(store, [path], options, grade=inline, workers=1)
        inline_state = stored(store)
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM verdicts"))
        after = grade(store, graders(), sampling)
        after_state = stored(store)
    assert inline_state == after_state
    assert summary.counts.verdicts == inline.summary.verdicts_written == after.verdicts_written
    assert inline.summary.outcomes == after.outcomes
    assert inline.summary.not_sampled == after.not_sampled > 0
    assert not inline.deferred


def test_workers_write_what_one_process_writes(tmp_path: Path, store_url: str) -> None:
    path = demo_lines(tmp_path, broken_at=(5, 40))
    options, sampling = MappingOptions(source="demo"), SamplingConfig()
    results = []
    for workers in (1, 2):
        with open_store(store_url) as store:
            with store.engine.begin() as conn:
                conn.execute(text("DELETE FROM verdicts"))
                conn.execute(text("DELETE FROM spans"))
            with InlineGrading(store, graders(), sampling) as inline:
                summary = import_files(store, [path], options, grade=inline, workers=workers)
            results.append((stored(store), summary, inline.summary))
    (one_state, one, one_grading), (two_state, two, two_grading) = results
    assert one_state == two_state
    assert len(one_state[0]) == one.spans == two.spans > 10_000
    assert [str(p) for p in one.problems] == [str(p) for p in two.problems]
    assert two.problem_count == 3
    lines = path.read_bytes().split(b"\n")
    bad = {lines[int(p.location.rsplit(":", 1)[1]) - 1][:12] for p in two.problems}
    assert bad == {b"{not json", b'{"resourceSp'}  # each problem names its own line
    assert (one.counts.inserted, one.counts.verdicts) == (two.counts.inserted,
                                                          two.counts.verdicts)
    assert one_grading.outcomes == two_grading.outcomes
    assert one_grading.spans_seen == two_grading.spans_seen == one.spans


def test_a_span_repeated_within_a_chunk_is_written_and_graded_as_its_last_copy(
        tmp_path: Path) -> None:
    path = demo_lines(tmp_path)
    lines = path.read_bytes().split(b"\n")
    request = orjson.loads(lines[2])
    agent = next(span for span in request["resourceSpans"][0]["scopeSpans"][0]["spans"]
                 if {"key": "openinference.span.kind", "value": {"stringValue": "AGENT"}}
                 in span["attributes"])
    for attribute in agent["attributes"]:
        if attribute["key"] == "output.value":
            attribute["value"] = {"stringValue": "Sorry, I cannot find that order."}
    lines.insert(6, orjson.dumps(request))  # a later copy, well inside the first chunk
    lines.insert(4, b'{"resourceSpans": [')  # and a damaged line, reported once
    path.write_bytes(b"\n".join(lines))
    results = []
    for workers in (1, 2):
        with open_store(f"sqlite:///{tmp_path / f'repeat{workers}.db'}") as store:
            with InlineGrading(store, graders(), SamplingConfig()) as inline:
                summary = import_files(store, [path], MappingOptions(source="demo"),
                                       grade=inline, workers=workers)
            with store.engine.connect() as conn:
                output = conn.execute(text("SELECT output FROM spans WHERE span_id = :id"),
                                      {"id": agent["spanId"]}).scalar_one()
                outcome = conn.execute(text(
                    "SELECT outcome FROM verdicts WHERE span_id = :id "
                    "AND grader = 'reply_finds_order'"), {"id": agent["spanId"]}).scalar_one()
            results.append((stored(store), inline.summary.outcomes, inline.summary.spans_seen))
            assert inline.summary.spans_seen == summary.counts.inserted  # each span graded once
        assert orjson.loads(output) == "Sorry, I cannot find that order."
        assert outcome == "fail"
        locations = [problem.location for problem in summary.problems]
        assert f"{path}:5" in locations  # beside demo_lines' own damaged line, each once
        assert len(locations) == len(set(locations)) == summary.problem_count == 2
        results[-1] += (summary.spans, summary.counts)
    assert results[0] == results[1]


def test_reimport_with_workers_changes_nothing(tmp_path: Path) -> None:
    path = demo_lines(tmp_path)
    with open_store(f"sqlite:///{tmp_path / 'again.db'}") as store:
        first = import_files(store, [path], MappingOptions(source="demo"), workers=2)
        second = import_files(store, [path], MappingOptions(source="demo"), workers=2)
    assert first.counts.inserted == second.counts.unchanged == first.spans > 10_000
    assert (second.counts.inserted, second.counts.updated) == (0, 0)


def test_reimport_with_grading_tallies_only_what_it_wrote(tmp_path: Path) -> None:
    path = demo_lines(tmp_path)
    runs = []
    with open_store(f"sqlite:///{tmp_path / 'tally.db'}") as store:
        for _ in range(2):
            with InlineGrading(store, graders(), SamplingConfig()) as inline:
                import_files(store, [path], MappingOptions(source="demo"), grade=inline,
                             workers=2)
            runs.append(inline.summary)
    first, second = runs
    assert first.verdicts_written == sum(sum(c.values()) for c in first.outcomes.values()) > 0
    assert (second.verdicts_written, second.outcomes) == (0, {})


def test_workers_leave_checkpoints_to_the_parent(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's commit never checkpoints (it would fsync inside the write turn); the parent
    does, so the WAL still reaches the database file during the import."""
    path = demo_lines(tmp_path)
    monkeypatch.setattr(_parallel_import, "CHECKPOINT_EVERY", 1)
    monkeypatch.setattr(_parallel_import, "CHUNK_BYTES", 1 << 20)
    calls: list[int] = []
    checkpoint = _parallel_import.WalCheckpointer.__call__

    def counted(self: _parallel_import.WalCheckpointer) -> None:
        calls.append(self.written)
        checkpoint(self)

    monkeypatch.setattr(_parallel_import.WalCheckpointer, "__call__", counted)
    database = tmp_path / "ckpt.db"
    with open_store(f"sqlite:///{database}") as store:
        summary = import_files(store, [path], MappingOptions(source="demo"), workers=2)
        assert len(calls) >= 4
        # Only what the database file itself holds: the spans reached it through checkpoints.
        copy = tmp_path / "main-file-only.db"
        copy.write_bytes(database.read_bytes())
        with open_store(f"sqlite:///{copy}", migrate=False) as alone:
            assert alone.count_spans() > summary.spans // 2

    setup = _parallel_import._Setup(path, None, {}, MappingOptions(source="demo"),  # type: ignore[arg-type]
                                    f"sqlite:///{database}", None)
    worker = _parallel_import._Worker(setup, None, None, None)
    with worker.store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 0
    worker.store.close()


CONFIG = """\
store: sqlite:///tracegrade.db
sampling: {rate: 1.0%s}
graders:
  - name: order_status_present
    type: field_present
    applies_to: {kind: tool, name: lookup_order}
    path: $.order_status
  - name: reply_latin
    type: script_is
    applies_to: {kind: agent}
    scripts: [Latin]
"""


def test_import_grade_on_the_command_line(workspace: Path) -> None:
    Path("tracegrade.yaml").write_text(CONFIG % "")
    path = demo_lines(workspace)
    result = CliRunner().invoke(cli, ["import", "--grade", "--format", "json", str(path)])
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    [run] = summary["grade_runs"]
    assert run["verdicts_written"] == summary["verdicts"] > 5000
    assert set(run["outcomes"]) == {"order_status_present", "reply_latin"}
    again = orjson.loads(CliRunner().invoke(
        cli, ["import", "--grade", "--format", "json", str(path)]).stdout)
    assert again["grade_runs"][0]["verdicts_written"] == 0
    graded = orjson.loads(CliRunner().invoke(cli, ["grade", "--format", "json"]).stdout)
    assert graded["verdicts_written"] == 0
    table = CliRunner().invoke(cli, ["import", "--grade", str(path)])
    assert "0 new verdicts" in table.stdout


def test_import_grade_defers_what_needs_the_whole_import(workspace: Path) -> None:
    # A per-release cap depends on how many spans the release ends up with.
    Path("tracegrade.yaml").write_text(CONFIG % ", max_per_release: 500")
    path = demo_lines(workspace)
    result = CliRunner().invoke(cli, ["import", "--grade", "--format", "json", str(path)])
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    [run] = summary["grade_runs"]
    assert summary["verdicts"] == 0 < run["verdicts_written"] < 2000
    with open_store("sqlite:///tracegrade.db") as store:
        assert store.count_verdicts() == run["verdicts_written"]


def test_grade_options_need_grade(workspace: Path) -> None:
    result = CliRunner().invoke(cli, ["import", "--all", "x.jsonl"])
    assert result.exit_code == 2
    assert "--grader and --all only apply with --grade" in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_killed_import_keeps_each_span_with_its_verdict(tmp_path: Path, workers: str) -> None:
    # 2.5 KB a span: the file spans several of the chunks workers take at a time.
    pad = {"note": "x" * 2500}
    lines = [orjson.dumps(make_span(i, attributes=pad).model_dump(mode="json"))
             for i in range(6000)]
    traces = tmp_path / "spans.jsonl"
    traces.write_bytes(b"\n".join(lines) + b"\n")
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    command, env = slow_grader_command(tmp_path, url, "import", "--grade", "--workers", workers,
                                       "--format", "json", str(traces))
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    with open_store(url) as store:
        deadline = time.monotonic() + 60
        while store.count_spans() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 10
        while processes_running(traces) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not processes_running(traces), "worker processes outlived their killed parent"
        spans, verdicts = store.count_spans(), store.count_verdicts()
    assert 0 < spans < 6000, "the kill must land mid-import for this test to mean anything"
    assert verdicts == spans  # each committed span came with its verdict
    finished = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                              check=True)
    summary = orjson.loads(finished.stdout)
    assert (summary["inserted"], summary["unchanged"]) == (6000 - spans, spans)
    assert summary["grade_runs"][0]["verdicts_written"] == 6000 - spans
    with open_store(url) as store:
        assert store.count_spans() == store.count_verdicts() == 6000


def test_bulk_allocation_turns_the_collector_off_and_restores_it() -> None:
    assert gc.isenabled()
    with bulk_allocation():
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_cyclic_garbage_of_a_bulk_job_stays_bounded_across_batches() -> None:
    alive = 0

    class Node:
        def __init__(self) -> None:
            nonlocal alive
            alive += 1
            self.self = self  # a cycle: only the collector frees it

        def __del__(self) -> None:
            nonlocal alive
            alive -= 1

    batch, most = 5_000, 0
    with bulk_allocation():
        first = Node()
        gone = weakref.ref(first)
        del first
        between_batches()
        assert gone() is not None  # the collector is off, and one cycle is not worth a pass
        for _ in range(4 * _gc.YOUNG_LIMIT // batch):
            for _ in range(batch):
                Node()
            between_batches()
            most = max(most, alive)
        assert gone() is None  # freed once enough garbage piled up
        # a pass runs as soon as a batch pushes the pile past the limit: never much more
        assert _gc.YOUNG_LIMIT // 2 <= most <= _gc.YOUNG_LIMIT + batch
    between_batches()  # outside a bulk job it does nothing (and the collector is on)
    assert gc.isenabled()


def test_a_compressed_file_imports_with_workers_as_in_one_process(tmp_path: Path) -> None:
    plain = demo_lines(tmp_path)
    packed = tmp_path / "traces.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    results = []
    for workers in (1, 2):
        with open_store(f"sqlite:///{tmp_path / f'gz{workers}.db'}") as store:
            summary = import_files(store, [packed], MappingOptions(source="demo"),
                                   workers=workers)
            results.append((stored(store), [str(p) for p in summary.problems], summary.spans))
    assert results[0] == results[1]
    assert results[0][2] > 10_000 and len(results[0][1]) == 1


# --- review fixes: directories, truncated gzip, NUL in ids ---------------------------------------


def test_a_directory_is_refused_as_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "traces"
    folder.mkdir()
    with open_store(f"sqlite:///{tmp_path / 'dir.db'}") as store, \
            pytest.raises(IsADirectoryError, match="traces: is a directory$"):
        import_files(store, [folder], MappingOptions(source="demo"))


def test_importing_a_directory_is_a_one_line_error(workspace: Path) -> None:
    Path("traces").mkdir()
    result = CliRunner().invoke(cli, ["import", "traces"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "Error: traces: is a directory"


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("name", ["traces.gz", "traces.jsonl.gz", "traces.pb.gz"])
def test_a_gzip_of_only_its_magic_bytes_is_a_bad_record(tmp_path: Path, workers: int,
                                                        name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x1f\x8b")
    with open_store(f"sqlite:///{tmp_path / 'magic.db'}") as store:
        summary = import_files(store, [path], MappingOptions(source="demo"), workers=workers)
    assert (summary.spans, summary.problem_count) == (0, 1)
    [problem] = summary.problems
    assert problem.location in (f"{path}:1", f"{path}@0")
    assert problem.reason.startswith("cannot read the file: ")


def test_strict_import_of_a_truncated_gzip_fails(workspace: Path) -> None:
    Path("magic.gz").write_bytes(b"\x1f\x8b")
    result = CliRunner().invoke(cli, ["import", "--strict", "magic.gz"])
    assert result.exit_code == 1, result.output
    assert "magic.gz:1: cannot read the file" in result.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_a_nul_in_an_id_is_a_bad_record_on_every_backend(tmp_path: Path, store: Store,
                                                         workers: int) -> None:
    good = [make_span(i).model_dump(mode="json") for i in range(4)]
    bad = [good[0] | {"span_id": "nul\u0000span"}, good[1] | {"trace_id": "t\u0000"},
           good[2] | {"span_id": "x1", "parent_id": "p\u0000"}]
    path = tmp_path / "spans.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in [*bad, *good]))
    summary = import_files(store, [path], MappingOptions(source="demo"), workers=workers)
    assert (summary.spans, summary.counts.inserted, summary.problem_count) == (4, 4, 3)
    assert [p.location for p in summary.problems] == [f"{path}:{n}" for n in (1, 2, 3)]
    assert [p.reason.rpartition(", ")[2] for p in summary.problems] == [
        f"{field} contains a NUL character" for field in ("span_id", "trace_id", "parent_id")]
    assert store.count_spans() == 4


def repeated_span_lines(tmp_path: Path, name: str = "repeated.jsonl") -> Path:
    """3000 OTLP JSON lines, one span each; span 1 again at line 2500 with other content."""
    lines = [orjson.dumps(collector_json(request([span({"k": i}, span_id=i)])))
             for i in range(1, 3001)]
    lines[2499] = orjson.dumps(collector_json(request([span({"k": "changed"}, span_id=1)])))
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_a_span_repeated_far_apart_keeps_its_last_copy_on_reimport(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    """Which batch or chunk holds each copy changes nothing: the file's last copy is written,
    once, and a re-import of the unchanged file rewrites nothing (so no verdict is dropped)."""
    monkeypatch.setattr(_parallel_import, "CHUNK_BYTES", 64 * 1024)
    path = repeated_span_lines(tmp_path)
    options = MappingOptions(source="rep")
    with open_store(f"sqlite:///{tmp_path / f'rep{workers}.db'}") as store:
        first = import_files(store, [path], options, batch_size=100, workers=workers)
        second = import_files(store, [path], options, batch_size=100, workers=workers)
        [stored] = [s for s in store.iter_spans() if s.span.span_id == f"{1:016x}"]
    assert (first.spans, first.counts.inserted, first.counts.updated) == (2999, 2999, 0)
    assert (second.counts.unchanged, second.counts.updated, second.counts.regraded) == (
        2999, 0, 0)
    assert stored.span.attributes["k"] == "changed"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_link_to_an_earlier_span_is_not_a_later_copy_of_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    """The first pass finds repeated ids by scanning bytes, which a link's spanId also matches:
    the span it links to must still be imported."""
    monkeypatch.setattr(_parallel_import, "CHUNK_BYTES", 64 * 1024)
    lines = [orjson.dumps(collector_json(request([span({"k": i}, span_id=i)])))
             for i in range(1, 2001)]
    linking = span({"k": "links"}, span_id=5000)
    linking.links.add(trace_id=linking.trace_id, span_id=(1).to_bytes(8, "big"))
    document = collector_json(request([linking]))
    [link] = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["links"]
    link.update(traceId=linking.trace_id.hex(), spanId=f"{1:016x}")  # hex, as the collector
    lines.append(orjson.dumps(document))
    path = tmp_path / "linked.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert path.read_bytes().count(b'"spanId":"' + f"{1:016x}".encode()) == 2
    with open_store(f"sqlite:///{tmp_path / f'link{workers}.db'}") as store:
        summary = import_files(store, [path], MappingOptions(source="lnk"), batch_size=100,
                               workers=workers)
        assert store.get_span("lnk", f"{1:016x}") is not None
    assert (summary.spans, summary.counts.inserted) == (2001, 2001)
