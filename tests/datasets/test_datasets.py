"""Golden datasets: JSONL round trips, promotion, replay, and pushes to the fake servers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import make_span
from tests.fakes.braintrust import FakeBraintrust
from tests.fakes.fixtures import braintrust_source, langfuse_source
from tests.fakes.langfuse import FakeLangfuse
from tests.helpers_golden import GRADER, add_labels, add_verdicts, spans
from tracegrade.cli import cli
from tracegrade.config import ConfigError, parse_config
from tracegrade.datasets import (
    DatasetError,
    GoldenItem,
    Promotion,
    add_items,
    create_dataset,
    dataset_items,
    export_dataset,
    failing_span_keys,
    import_dataset,
    labeled_span_keys,
    list_datasets,
    promote_labeled,
    promote_spans,
    replay,
    time_sensitive_reason,
    url_target,
)
from tracegrade.datasets import function_target as target_of
from tracegrade.demo.golden import GOLDEN_FILE
from tracegrade.graders import Grader, build_graders
from tracegrade.labels import Label, store_labels
from tracegrade.store import Store

ITEMS = [
    {"id": "q1", "input": "Where is my order A123456?", "expected_output": "It ships today.",
     "source_span": {"source": "prod", "span_id": "s1", "trace_id": "t1"},
     "valid_as_of": "2026-11-01T00:00:00Z", "time_sensitive": False,
     "metadata": {"topic": "status"}},
    {"id": "q2", "input": {"messages": [{"content": "hi", "role": "user"}]},
     "expected_output": None, "source_span": None, "valid_as_of": None,
     "time_sensitive": True, "metadata": {}},
]


def jsonl(records: list[dict[str, object]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def test_jsonl_round_trips_byte_for_byte(store: Store, workspace: Path) -> None:
    source = workspace / "in.jsonl"
    source.write_bytes(jsonl(ITEMS))
    counts = import_dataset(store, "gold", source, description="regressions")
    assert (counts.inserted, counts.problem_count) == (2, 0)
    out = workspace / "out.jsonl"
    assert export_dataset(store, "gold", out) == 2
    assert out.read_bytes() == source.read_bytes()
    again = import_dataset(store, "gold", out)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    (info,) = list_datasets(store)
    assert (info.name, info.items, info.time_sensitive, info.with_expected_output) == (
        "gold", 2, 1, 1)


def test_the_demo_golden_set_round_trips(store: Store, workspace: Path) -> None:
    import_dataset(store, "golden", GOLDEN_FILE)
    out = workspace / "golden.jsonl"
    export_dataset(store, "golden", out)
    assert out.read_bytes() == GOLDEN_FILE.read_bytes()


def test_bad_lines_are_reported_and_skipped(store: Store, workspace: Path) -> None:
    source = workspace / "in.jsonl"
    source.write_bytes(jsonl([ITEMS[0], {"input": "no id"}, ITEMS[0],
                              {**ITEMS[1], "valid_as_of": "2026-11-01T00:00:00"}]) + b"{oops\n")
    counts = import_dataset(store, "gold", source)
    assert counts.inserted == 1 and counts.problem_count == 4
    assert counts.problems[0] == f"{source}:2: id: Field required"
    assert "appears twice" in counts.problems[1]
    assert "timezone-aware" in counts.problems[2]
    assert counts.problems[3].startswith(f"{source}:5: not JSON")


def test_a_line_that_is_not_an_object_says_so_and_strict_exits_1(store: Store, store_url: str,
                                                                 workspace: Path) -> None:
    source = workspace / "in.jsonl"
    source.write_bytes(jsonl([{**ITEMS[0], "metadata": None}]) + b"[1, 2]\n")
    counts = import_dataset(store, "gold", source)
    assert counts.inserted == 1  # a null metadata is no metadata, as for the other fields
    assert counts.problems == [f"{source}:2: a JSON array, not an item (a JSON object: "
                               '{"id": …, "input": …, …})']
    plain = CliRunner().invoke(cli, ["--store", store_url, "dataset", "import", "g2",
                                     str(source)])
    strict = CliRunner().invoke(cli, ["--store", store_url, "dataset", "import", "g3",
                                      str(source), "--strict"])
    assert (plain.exit_code, strict.exit_code) == (0, 1)
    assert "1 new" in strict.stdout  # the good lines are imported all the same


def test_a_date_means_midnight_utc() -> None:
    item = GoldenItem.model_validate({"id": "x", "input": "q", "valid_as_of": "2026-03-04"})
    assert item.valid_as_of == datetime(2026, 3, 4, tzinfo=UTC)


def test_changed_items_are_updated(store: Store, workspace: Path) -> None:
    source = workspace / "in.jsonl"
    source.write_bytes(jsonl(ITEMS))
    import_dataset(store, "gold", source)
    source.write_bytes(jsonl([{**ITEMS[0], "expected_output": "It shipped."}]))
    counts = import_dataset(store, "gold", source)
    assert (counts.updated, counts.unchanged) == (1, 0)
    assert dataset_items(store, "gold", ["q1"])[0].expected_output == "It shipped."


def test_promote_by_id_by_failing_and_by_label(store: Store) -> None:
    made = spans(4)
    add_verdicts(store, made, ["pass", "fail", "pass", "fail"])
    create_dataset(store, "gold")
    promote_spans(store, "gold", [("test", "span-000000")])
    promote_spans(store, "gold", [("test", "span-000001")],
                  Promotion("failed reply_ok", expected_from_output=False))
    add_labels(store, made[2:], ["pass", "fail"])
    promote_labeled(store, "gold", GRADER)
    items = {item.id: item for item in dataset_items(store, "gold")}
    assert set(items) == {f"test:span-00000{i}" for i in range(4)}
    first, failing = items["test:span-000000"], items["test:span-000001"]
    assert first.expected_output == made[0].output and first.source_span is not None
    assert first.source_span.trace_id == made[0].trace_id
    assert first.valid_as_of == made[0].start_time
    assert failing.expected_output is None
    assert failing.metadata["observed_output"] == made[1].output
    assert items["test:span-000003"].metadata["human_label"] == "fail"
    with pytest.raises(DatasetError, match="not in the store"):
        promote_spans(store, "gold", [("test", "nope")])


def test_promote_cli_by_failing_grader(store: Store, store_url: str) -> None:
    add_verdicts(store, spans(5), ["fail", "pass", "fail", "pass", "pass"])
    runner = CliRunner()
    assert runner.invoke(cli, ["--store", store_url, "dataset", "create", "gold"]).exit_code == 0
    result = runner.invoke(cli, ["--store", store_url, "dataset", "promote", "gold",
                                 "--failing", GRADER, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["inserted"] == 2
    missing = runner.invoke(cli, ["--store", store_url, "dataset", "promote", "nope", "x"])
    assert missing.exit_code == 2 and "no dataset named 'nope' (datasets: gold)" in missing.stderr


def test_promoting_again_keeps_a_hand_corrected_item_and_failing_keeps_the_critique(
        store: Store, store_url: str, workspace: Path) -> None:
    add_verdicts(store, spans(3), ["fail", "pass", "fail"])
    runner = CliRunner()
    promote = ["--store", store_url, "dataset", "promote", "gold", "--failing", GRADER,
               "--format", "json"]
    assert runner.invoke(cli, ["--store", store_url, "dataset", "create", "gold"]).exit_code == 0
    assert orjson.loads(runner.invoke(cli, promote).stdout)["inserted"] == 2
    items = {item.id: item for item in dataset_items(store, "gold")}
    assert items["test:span-000000"].metadata["critique"] == "fail by rule"
    # Someone writes the right answer in, as the docs ask...
    corrected = items["test:span-000000"].model_copy(update={"expected_output": "Shipped."})
    add_items(store, "gold", [corrected])
    # ...and the scheduled promote runs again: the correction stays.
    again = orjson.loads(runner.invoke(cli, promote).stdout)
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 2)
    assert dataset_items(store, "gold", ["test:span-000000"])[0].expected_output == "Shipped."


@pytest.mark.parametrize(("text", "phrase"), [
    ("Who is the CEO of Acme?", "Who is the CEO"),
    ("what's the latest version", "latest"),
    ("price of a tent?", "price"),
    ("Did it ship on 2026-11-02?", "2026-11-02"),
    ("Where is my order A123456?", None),
])
def test_time_sensitive_rules(text: str, phrase: str | None) -> None:
    assert time_sensitive_reason(text) == phrase


def replay_setup(store: Store) -> list[GoldenItem]:
    store.upsert_spans([make_span(0, name="support_agent", span_id="src-1")])
    create_dataset(store, "gold")
    items = [GoldenItem(id="a", input="where is my order", expected_output="WHERE",
                        source_span={"source": "test", "span_id": "src-1"}),
             GoldenItem(id="b", input="i want a refund", expected_output="no",
                        metadata={"span_kind": "llm", "span_name": "support_agent"})]
    add_items(store, "gold", items)
    return items


SHOUTS = {"name": "shouts", "type": "regex", "applies_to": {"name": "support_agent"},
          "pattern": "^[A-Z ]+$"}
"""A grader wanting replies in capitals, on the support_agent spans."""


def graders_checking_capitals() -> list[Grader]:
    return build_graders(parse_config({"graders": [SHOUTS]}).graders)


def write_shouts_config(workspace: Path) -> None:
    """A tracegrade.yaml holding only :data:`SHOUTS`."""
    (workspace / "tracegrade.yaml").write_text(yaml.safe_dump({"graders": [SHOUTS]}),
                                               encoding="utf-8")


def test_replay_stores_grades_and_replaces(store: Store) -> None:
    replay_setup(store)
    graders = graders_checking_capitals()
    summary = replay(store, "gold", "candidate", target_of(
        "tests.datasets.replay_targets:echo_upper"), graders)
    assert summary.items == 2 and summary.app_errors == 1
    assert dict(summary.outcomes["shouts"]) == {"pass": 1, "error": 1}
    assert summary.failed and summary.failures[0]["item_id"] == "b"
    replayed = [s.span for s in store.iter_spans() if s.span.source == "replay"]
    assert {s.release for s in replayed} == {"candidate"} and len(replayed) == 2
    answered = next(s for s in replayed if s.status.code.value == "ok")
    assert answered.output == "WHERE IS MY ORDER" and answered.name == "support_agent"
    assert answered.attributes["tracegrade.expected_output"] == "WHERE"
    verdicts_before = store.count_verdicts()
    replay(store, "gold", "candidate", target_of("tests.datasets.replay_targets:echo_async"),
           graders)
    assert store.count_verdicts() == verdicts_before
    assert store.count_spans() == 3


@pytest.fixture
def app_server() -> Iterator[str]:
    """A loopback HTTP application answering {"output": upper-cased input}."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
            payload = orjson.dumps({"output": str(body["input"]).upper(), "id": body["item_id"]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/answer"
    server.shutdown()
    server.server_close()


def test_replay_through_an_http_endpoint(store: Store, app_server: str) -> None:
    replay_setup(store)
    summary = replay(store, "gold", "r9", url_target(app_server), graders_checking_capitals())
    assert summary.app_errors == 0 and dict(summary.outcomes["shouts"]) == {"pass": 2}


def test_replay_cli_exits_1_on_a_failing_item(store: Store, store_url: str,
                                              workspace: Path) -> None:
    replay_setup(store)
    write_shouts_config(workspace)
    result = CliRunner().invoke(cli, ["--store", store_url, "replay", "gold", "--release", "c",
                                      "--target", "tests.datasets.replay_targets:echo_upper"])
    assert result.exit_code == 1, result.output
    assert "error: shouts on item b" in result.stdout


def test_replayed_spans_carry_the_attributes_graders_select_by(store: Store) -> None:
    """A grader scoped by attribute graded nothing on replays (their spans carried only the
    tracegrade.* attributes), and the replay still passed."""
    source = make_span(0, name="support_agent", span_id="src-1")
    source.attributes.update({"service.name": "support-agent", "tool_calls": ["production"]})
    store.upsert_spans([source])
    create_dataset(store, "gold")
    add_items(store, "gold", [
        GoldenItem(id="a", input="where is my order",
                   source_span={"source": "test", "span_id": "src-1"}),
        GoldenItem(id="b", input="my order?", metadata={
            "span_kind": "agent", "span_name": "support_agent",
            "span_attributes": {"service.name": "support-agent"}})])
    graders = build_graders(parse_config({"graders": [
        {"name": "shouts", "type": "regex", "pattern": "^[A-Z ?]+$", "applies_to": {
            "name": "support_agent", "attributes": {"service.name": "support-agent"}}}]}).graders)
    summary = replay(store, "gold", "c1", target_of(
        "tests.datasets.replay_targets:echo_upper"), graders)
    assert dict(summary.outcomes["shouts"]) == {"pass": 2} and not summary.failed
    replayed = next(s.span for s in store.iter_spans() if s.span.source == "replay"
                    and s.span.attributes["tracegrade.item_id"] == "a")
    assert replayed.attributes["service.name"] == "support-agent"
    assert "tool_calls" not in replayed.attributes  # the production answer's, not the replay's


def test_replay_of_items_no_grader_applies_to_fails_and_names_them(
        store: Store, store_url: str, workspace: Path) -> None:
    create_dataset(store, "gold")
    add_items(store, "gold", [GoldenItem(id="plain", input="where is my order")])
    write_shouts_config(workspace)
    args = ["--store", store_url, "replay", "gold", "--release", "c",
            "--target", "tests.datasets.replay_targets:echo_upper"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output  # was 0: an empty table, nothing checked
    assert "1 item(s) graded by no grader" in result.stdout
    assert "other span named 'replay'" in result.stdout
    result = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert result.exit_code == 1
    assert orjson.loads(result.stdout)["ungraded"] == [
        {"item_id": "plain", "kind": "other", "name": "replay"}]


def test_replay_shows_why_the_application_failed(store: Store, store_url: str,
                                                 workspace: Path) -> None:
    replay_setup(store)
    write_shouts_config(workspace)
    args = ["--store", store_url, "replay", "gold", "--release", "c",
            "--target", "tests.datasets.replay_targets:echo_upper"]
    result = CliRunner().invoke(cli, args)
    assert "app_error: the application on item b: RuntimeError: refunds are not " \
           "implemented" in result.stdout
    failures = orjson.loads(CliRunner().invoke(cli, [*args, "--format", "json"]).stdout)[
        "failures"]
    assert {"item_id": "b", "grader": None, "outcome": "app_error",
            "reason": "RuntimeError: refunds are not implemented"} in failures


def write_config(workspace: Path, *sources: dict[str, object]) -> None:
    (workspace / "tracegrade.yaml").write_text(yaml.safe_dump({"sources": list(sources)}),
                                               encoding="utf-8")


def test_dataset_round_trips_through_fake_langfuse(store: Store, store_url: str,
                                                   workspace: Path,
                                                   fake_langfuse: FakeLangfuse) -> None:
    write_config(workspace, langfuse_source(fake_langfuse))
    source = workspace / "in.jsonl"
    source.write_bytes(jsonl(ITEMS))
    import_dataset(store, "gold", source)
    for _ in range(2):  # pushing again updates the same remote items
        result = CliRunner().invoke(cli, ["--store", store_url, "dataset", "push", "gold",
                                          "--to", "prod"])
        assert result.exit_code == 0, result.output
    assert "Pushed 2 of 2 items" in result.stdout
    remote = sorted(fake_langfuse.dataset_items.values(),
                    key=lambda r: r["metadata"]["tracegrade_item_id"])
    assert [(r["input"], r["expectedOutput"]) for r in remote] == [
        (i["input"], i["expected_output"]) for i in ITEMS]
    assert remote[0]["metadata"]["topic"] == "status"


def test_dataset_round_trips_through_fake_braintrust(store: Store, store_url: str,
                                                     workspace: Path,
                                                     fake_braintrust: FakeBraintrust) -> None:
    write_config(workspace, braintrust_source(fake_braintrust))
    source = workspace / "in.jsonl"
    source.write_bytes(jsonl(ITEMS))
    import_dataset(store, "gold", source)
    result = CliRunner().invoke(cli, ["--store", store_url, "dataset", "push", "gold",
                                      "--to", "bt", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["pushed"] == 2
    (rows,) = fake_braintrust.dataset_rows.values()
    def canonical(value: object) -> bytes:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)

    assert sorted(canonical(r["input"]) for r in rows.values()) == sorted(
        canonical(i["input"]) for i in ITEMS)


def test_a_replay_output_that_is_not_json_is_an_application_error(store: Store) -> None:
    replay_setup(store)
    summary = replay(store, "gold", "c1", target_of(
        "tests.datasets.replay_targets:set_for_refunds"), graders_checking_capitals())
    assert summary.app_errors == 1 and dict(summary.outcomes["shouts"]) == {"pass": 1,
                                                                            "error": 1}
    replayed = {s.span.attributes["tracegrade.item_id"]: s.span for s in store.iter_spans()
                if s.span.source == "replay"}
    assert replayed["a"].output == "WHERE IS MY ORDER"
    assert replayed["b"].status.code.value == "error" and replayed["b"].output is None
    assert replayed["b"].status.message is not None
    assert "cannot be stored as JSON" in replayed["b"].status.message


def test_replay_cli_exits_1_without_a_traceback_on_an_output_that_is_not_json(
        store: Store, store_url: str, workspace: Path) -> None:
    replay_setup(store)
    write_shouts_config(workspace)
    result = CliRunner().invoke(cli, ["--store", store_url, "replay", "gold", "--release", "c",
                                      "--target", "tests.datasets.replay_targets:set_for_refunds",
                                      "--format", "json"])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert orjson.loads(result.stdout)["app_errors"] == 1


def test_promote_labeled_takes_what_the_labelers_agree_on(store: Store) -> None:
    majority, tie, mixed = made = spans(3)
    store.upsert_spans(made)
    store_labels(store, [
        Label(*majority.key, GRADER, "pass", labeler="ann"),
        Label(*majority.key, GRADER, "fail", "too curt", labeler="bob"),
        Label(*majority.key, GRADER, "pass", labeler="cy"),
        Label(*tie.key, GRADER, "pass", labeler="ann"),
        Label(*tie.key, GRADER, "fail", "wrong order", labeler="bob"),
        Label(*mixed.key, GRADER, "pass", labeler="ann"),
        Label(*mixed.key, "polite", "fail", "rude", labeler="ann"),
    ])
    agreed = {key[1]: key[2:] for key in labeled_span_keys(store)}
    assert agreed == {majority.span_id: ("pass", "too curt"),
                      tie.span_id: ("fail", "wrong order"),  # disputed: never expected
                      mixed.span_id: ("fail", "rude")}  # fails one criterion of two
    assert {key[1] for key in labeled_span_keys(store, GRADER, label="fail")} == {
        tie.span_id}
    create_dataset(store, "gold")
    promote_labeled(store, "gold")
    items = {item.id: item for item in dataset_items(store, "gold")}
    assert items[f"test:{majority.span_id}"].expected_output == majority.output
    assert items[f"test:{tie.span_id}"].expected_output is None
    assert items[f"test:{mixed.span_id}"].expected_output is None


def test_promote_failing_and_labeled_leave_out_replayed_spans(store: Store,
                                                              store_url: str) -> None:
    items = replay_setup(store)
    graders = graders_checking_capitals()
    replay(store, "gold", "c1", target_of("tests.datasets.replay_targets:echo_lower"), graders)
    replayed = [s.span for s in store.iter_spans() if s.span.source == "replay"]
    add_verdicts(store, spans(2), ["fail", "pass"], grader="shouts",
                 version=graders[0].version)
    add_labels(store, replayed + spans(1), ["fail"] * (len(replayed) + 1), criterion="shouts")
    assert failing_span_keys(store, "shouts", graders[0].version) == [("test", "span-000000")]
    assert [key[:2] for key in labeled_span_keys(store, "shouts")] == [
        ("test", "span-000000")]
    result = CliRunner().invoke(cli, ["--store", store_url, "dataset", "promote", "gold",
                                      "--failing", "shouts", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert {item.id for item in dataset_items(store, "gold")} == {
        *(item.id for item in items), "test:span-000000"}


def test_a_dataset_file_with_a_utf8_bom_keeps_its_first_item(store: Store,
                                                             workspace: Path) -> None:
    source = workspace / "bom.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + jsonl(ITEMS))
    counts = import_dataset(store, "gold", source)
    assert (counts.inserted, counts.problem_count) == (2, 0)
    assert [item.id for item in dataset_items(store, "gold")] == ["q1", "q2"]


def test_items_the_store_cannot_key_are_bad_lines_not_a_traceback(store: Store,
                                                                  workspace: Path) -> None:
    """On PostgreSQL a NUL in an id, or a source span id over 200 characters, failed the whole
    file with a driver traceback; a compact date became 1970-08-23."""
    good = {"id": "ok", "input": "where is my order"}
    path = workspace / "items.jsonl"
    path.write_bytes(jsonl([
        {"id": "o\u0000x", "input": "x"},
        {"id": "long-source", "input": "x",
         "source_span": {"source": "prod", "span_id": "s" * 201}},
        {"id": "compact", "input": "x", "valid_as_of": "20260101"},
        {"id": "seconds", "input": "x", "valid_as_of": 1767225600},
        good]))
    counts = import_dataset(store, "gold", path)
    assert (counts.inserted, counts.problem_count) == (1, 4)
    assert "NUL" in counts.problems[0] and "200" in counts.problems[1]
    assert "YYYY-MM-DD" in counts.problems[2] and "YYYY-MM-DD" in counts.problems[3]
    assert [item.id for item in dataset_items(store, "gold")] == ["ok"]
    with pytest.raises(DatasetError, match="at most 200 characters"):
        create_dataset(store, "d" * 201)


def test_an_input_holding_nul_is_unchanged_on_a_second_import(store: Store,
                                                               workspace: Path) -> None:
    path = workspace / "items.jsonl"
    path.write_bytes(jsonl([{"id": "n", "input": "nul \u0000 in input"}]))
    assert import_dataset(store, "gold", path).inserted == 1
    again = import_dataset(store, "gold", path)
    assert (again.updated, again.unchanged) == (0, 1)  # was "1 updated" on every import


def test_a_replay_release_the_store_cannot_hold_is_refused_before_calling_the_app(
        store: Store) -> None:
    replay_setup(store)
    calls: list[object] = []
    with pytest.raises(DatasetError, match="release name is 1 to 200 characters"):
        replay(store, "gold", "r" * 201, lambda value, _id: calls.append(value),
               graders_checking_capitals())
    assert calls == []


def test_export_to_stdout_is_utf8_whatever_the_locale(store: Store, store_url: str,
                                                      workspace: Path) -> None:
    create_dataset(store, "gold")
    add_items(store, "gold", [GoldenItem(id="zh", input="我的订单在哪里？")])
    exported = subprocess.run(
        [sys.executable, "-m", "tracegrade", "--store", store_url, "dataset", "export", "gold"],
        capture_output=True, env={**os.environ, "PYTHONIOENCODING": "ascii"}, cwd=workspace,
        check=False)
    assert exported.returncode == 0, exported.stderr.decode()
    (workspace / "out.jsonl").write_bytes(b"")
    export_dataset(store, "gold", workspace / "out.jsonl")
    assert exported.stdout == (workspace / "out.jsonl").read_bytes()
    assert "我的订单".encode() in exported.stdout


def test_a_time_sensitive_pattern_that_does_not_compile_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"time_sensitive_patterns: pattern '\(unclosed' "
                                          "does not compile"):
        parse_config({"datasets": {"time_sensitive_patterns": ["(unclosed"]}})
