"""Label files in, a balanced labeling queue out."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from tests.conftest import make_span
from tests.helpers_golden import GRADER, VERSION, add_labels, add_verdicts, spans
from tracegrade.cli import cli
from tracegrade.labels import (
    Label,
    LabelFileError,
    import_label_file,
    label_queue,
    labeled_pairs,
    parse_label_value,
    split_for,
    store_labels,
)
from tracegrade.store import Store
from tracegrade.store import _schema as t


def stored_labels(store: Store) -> list[dict[str, object]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.labels).order_by(t.labels.c.span_id)).all()
    return [dict(row._mapping) for row in rows]


def test_csv_import_finds_the_source_by_span_id_and_reports_bad_rows(
        store: Store, workspace: Path) -> None:
    store.upsert_spans(spans(3))
    path = workspace / "labels.csv"
    path.write_text(
        "span_id,grader,label,critique,labeler\n"
        "span-000000,reply_ok,pass,,ann\n"
        "span-000001,reply_ok,FAIL,says the order is missing,ann\n"
        "span-000002,reply_ok,maybe,,ann\n"
        "span-000002,reply_ok,,,ann\n"
        "span-999999,reply_ok,pass,,ann\n", encoding="utf-8")
    summary = import_label_file(store, path)
    assert (summary.inserted, summary.blank, summary.problem_count) == (2, 1, 2)
    assert summary.problems[0] == f"{path}:line 4: label 'maybe' is not pass or fail"
    assert "span-999999 is in no source" in summary.problems[1]
    rows = stored_labels(store)
    assert [(r["source"], r["span_id"], r["label"]) for r in rows] == [
        ("test", "span-000000", "pass"), ("test", "span-000001", "fail")]
    assert rows[1]["critique"] == "says the order is missing"
    assert rows[1]["split"] == split_for("test", "span-000001", GRADER).value


def test_jsonl_import_updates_in_place_and_keeps_the_split(store: Store, workspace: Path) -> None:
    path = workspace / "labels.jsonl"
    line = {"source": "prod", "span_id": "a", "criterion": "c", "label": True, "labeler": "bo"}
    path.write_text(orjson.dumps(line).decode() + "\n[1]\n", encoding="utf-8")
    first = import_label_file(store, path)
    assert (first.inserted, first.unknown_spans, first.problem_count) == (1, 1, 1)
    path.write_text(orjson.dumps({**line, "label": "fail"}).decode() + "\n", encoding="utf-8")
    second = import_label_file(store, path)
    assert (second.inserted, second.updated) == (0, 1)
    (row,) = stored_labels(store)
    assert row["label"] == "fail" and row["split"] == split_for("prod", "a", "c").value


def test_a_csv_without_the_needed_columns_is_refused(store: Store, workspace: Path) -> None:
    path = workspace / "labels.csv"
    path.write_text("id,verdict\n1,pass\n", encoding="utf-8")
    with pytest.raises(LabelFileError, match="needs the columns span_id"):
        import_label_file(store, path)


@pytest.mark.parametrize(("word", "label"), [("pass", "pass"), ("Yes", "pass"), ("1", "pass"),
                                             ("false", "fail"), (" FAIL ", "fail"), (0, "fail")])
def test_label_words(word: object, label: str) -> None:
    assert parse_label_value(word) == label


def test_queue_balances_verdicts_puts_uncertain_first_and_skips_labeled(store: Store) -> None:
    made = spans(40)
    outcomes = ["pass"] * 34 + ["fail"] * 6
    scores = [0.9] * 30 + [0.55, 0.6, 0.52, 0.95] + [0.1] * 5 + [0.45]
    add_verdicts(store, made, outcomes, scores=scores)
    add_labels(store, made[32:33], ["pass"])  # the 0.52 one is already labeled
    queue = label_queue(store, GRADER, VERSION, size=10)
    assert [item.judge for item in queue].count("fail") == 5
    assert [item.judge for item in queue].count("pass") == 5
    assert made[32].span_id not in {item.span_id for item in queue}
    assert queue[0].judge_score == 0.45 and queue[1].judge_score == 0.55
    # Too few fails: passes fill the queue.
    assert len(label_queue(store, GRADER, VERSION, size=30)) == 30


def test_queue_cli_writes_a_csv_that_imports_back_once_filled(store: Store, store_url: str,
                                                             workspace: Path) -> None:
    add_verdicts(store, spans(12), ["pass"] * 8 + ["fail"] * 4)
    out = workspace / "queue.csv"
    result = CliRunner().invoke(cli, ["--store", store_url, "labels", "queue", GRADER, "-n", "6",
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == 6 and {r["judge"] for r in rows} == {"pass", "fail"}
    assert rows[0]["input"].startswith("question ")
    rows[0]["label"], rows[1]["label"] = "pass", "fail"
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = CliRunner().invoke(cli, ["--store", store_url, "labels", "import", str(out),
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    assert (summary["inserted"], summary["blank"], summary["bad_rows"]) == (2, 4, 0)


def test_labels_import_needs_a_file_or_a_source(store_url: str) -> None:
    result = CliRunner().invoke(cli, ["--store", store_url, "labels", "import"])
    assert result.exit_code == 2 and "give a label FILE or --from SOURCE" in result.stderr


def test_labeled_pairs_take_the_majority_label(store: Store) -> None:
    made = spans(3)
    add_verdicts(store, made, ["pass", "fail", "pass"])
    add_labels(store, made, ["pass", "pass", "fail"], labeler="ann")
    add_labels(store, made, ["pass", "pass", "pass"], labeler="bo")
    add_labels(store, made[:1], ["fail"], labeler="cy")
    pairs = labeled_pairs(store, GRADER, VERSION)
    # span 0: pass 2-1; span 1: pass 2-0; span 2: a 1-1 tie is left out.
    assert pairs == [("test", "span-000000", "pass", "pass"), ("test", "span-000001", "pass",
                                                                "fail")]


def test_a_label_file_that_is_not_utf8_is_refused_naming_it(store: Store,
                                                            workspace: Path) -> None:
    path = workspace / "bad.csv"
    path.write_bytes(b"span_id,criterion,label\n\xff\xfe,x,pass\n")  # cp1252, from Excel
    with pytest.raises(LabelFileError, match=r"bad\.csv: not UTF-8 text .*save it as UTF-8"):
        import_label_file(store, path)


def test_labels_import_of_a_non_utf8_file_is_one_line(workspace: Path) -> None:
    Path("bad.csv").write_bytes(b"span_id,criterion,label\n\xff\xfe,x,pass\n")
    result = CliRunner().invoke(cli, ["labels", "import", "bad.csv"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: bad.csv: not UTF-8 text")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_label_file_with_a_utf8_bom_is_read(store: Store, workspace: Path) -> None:
    store.upsert_spans(spans(1))
    path = workspace / "bom.csv"
    path.write_bytes("span_id,criterion,label,critique\nspan-000000,c,pass,naïve\n"
                     .encode("utf-8-sig"))
    summary = import_label_file(store, path)
    assert (summary.inserted, summary.problem_count) == (1, 0)
    assert stored_labels(store)[0]["critique"] == "naïve"


def test_jsonl_labels_false_and_zero_are_fail_labels_not_blank(store: Store,
                                                               workspace: Path) -> None:
    store.upsert_spans(spans(4))
    path = workspace / "labels.jsonl"
    values: list[object] = [False, 0, True, None]
    path.write_text("".join(orjson.dumps({"source": "test", "span_id": f"span-00000{i}",
                                          "criterion": "c", "label": value}).decode() + "\n"
                            for i, value in enumerate(values)), encoding="utf-8")
    summary = import_label_file(store, path)
    assert (summary.read, summary.blank, summary.inserted) == (3, 1, 3)
    assert [row["label"] for row in stored_labels(store)] == ["fail", "fail", "pass"]


def test_a_malformed_jsonl_line_is_a_bad_row_naming_its_line(store: Store,
                                                              workspace: Path) -> None:
    path = workspace / "labels.jsonl"
    path.write_text('{"source": "p", "span_id": "a", "criterion": "c", "label": "pass"}\n'
                    '{"source": "p", "span_id": "b", "criterion": "c", "label": "fail"\n',
                    encoding="utf-8")
    summary = import_label_file(store, path)
    assert (summary.inserted, summary.blank, summary.problem_count) == (1, 0, 1)
    assert summary.problems[0].startswith(f"{path}:line 2: not JSON")


def test_the_same_label_twice_in_one_file_keeps_the_later_row(store: Store,
                                                              workspace: Path) -> None:
    store.upsert_spans(spans(2))
    path = workspace / "labels.csv"
    path.write_text("source,span_id,criterion,label,labeler\n"
                    "test,span-000000,c,pass,ann\n"
                    "test,span-000000,c,fail,ann\n", encoding="utf-8")
    first = import_label_file(store, path)
    assert (first.inserted, first.updated, first.superseded) == (1, 0, 1)
    assert [row["label"] for row in stored_labels(store)] == ["fail"]
    path.write_text("source,span_id,criterion,label,labeler\n"
                    "test,span-000000,c,pass,ann\n"
                    "test,span-000001,c,pass,ann\n"
                    "test,span-000000,c,fail,ann\n"
                    "test,span-000000,c,pass,ann\n", encoding="utf-8")
    second = import_label_file(store, path)
    assert (second.inserted, second.updated, second.superseded) == (1, 1, 2)
    assert [row["label"] for row in stored_labels(store)] == ["pass", "pass"]


def test_labels_import_cli_says_how_many_rows_a_later_row_overrode(store: Store,
                                                                  store_url: str,
                                                                  workspace: Path) -> None:
    store.upsert_spans(spans(1))
    path = workspace / "labels.csv"
    path.write_text("span_id,criterion,label\nspan-000000,c,pass\nspan-000000,c,fail\n",
                    encoding="utf-8")
    result = CliRunner().invoke(cli, ["--store", store_url, "labels", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "Imported 1 new and 0 updated labels" in result.stdout
    assert "1 rows were overridden by a later row" in result.stdout
    assert f"{path}:line 2 by line 3 (pass → fail)" in result.stdout  # where, and what changed


def test_importing_the_same_labels_again_changes_nothing_and_says_so(
        store: Store, store_url: str, workspace: Path) -> None:
    store.upsert_spans(spans(2))
    path = workspace / "labels.csv"
    path.write_text("span_id,criterion,label,critique\nspan-000000,c,pass,\n"
                    "span-000001,c,fail,too long\n", encoding="utf-8")
    assert (import_label_file(store, path).inserted) == 2
    again = import_label_file(store, path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    result = CliRunner().invoke(cli, ["--store", store_url, "labels", "import", str(path)])
    assert "Imported 0 new and 0 updated labels, 2 unchanged" in result.stdout


def test_a_cut_off_csv_row_is_a_bad_row_not_an_unlabeled_one(store: Store,
                                                             workspace: Path) -> None:
    store.upsert_spans(spans(2))
    path = workspace / "labels.csv"
    path.write_text("span_id,criterion,label,critique\nspan-000000,c\n"  # cut off
                    "span-000001,c,,\n", encoding="utf-8")  # filled in later: unlabeled
    summary = import_label_file(store, path)
    assert (summary.blank, summary.problem_count) == (1, 1)
    assert summary.problems[0].startswith(f"{path}:line 2: the row has 2 of the header's 4")


def test_queue_leaves_out_replayed_spans(store: Store) -> None:
    production = spans(4)
    replayed = [make_span(10 + i, source="replay") for i in range(4)]
    add_verdicts(store, production + replayed, ["pass", "fail"] * 4)
    queue = label_queue(store, GRADER, VERSION, size=20)
    assert {item.source for item in queue} == {"test"} and len(queue) == 4


# The fewest labels one lookup of the stored ones could not take: SQLite's bound-parameter limit
# (three per label), PostgreSQL's stack depth.
ONE_QUERY_BROKE_AT = {"sqlite": 90_000, "postgresql": 10_000}


def test_a_batch_too_big_for_one_query_is_stored_and_finds_the_stored_labels(
        store: Store) -> None:
    count = ONE_QUERY_BROKE_AT[store.dialect]
    labels = [Label("test", f"span-{i:06d}", GRADER, "pass", labeler="ann") for i in range(count)]
    stored_before = labels[::90]  # spread over every chunk of the lookup
    store_labels(store, stored_before)
    corrected = {label.span_id for label in stored_before[::2]}
    batch = [replace(label, label="fail") if label.span_id in corrected else label
             for label in labels]
    counts = store_labels(store, batch)
    assert (counts.inserted, counts.updated, counts.unchanged) == (
        count - len(stored_before), len(corrected), len(stored_before) - len(corrected))
    with store.engine.connect() as conn:
        fails = conn.execute(select(t.labels.c.span_id).where(t.labels.c.label == "fail")).all()
        total = conn.execute(select(func.count()).select_from(t.labels)).scalar_one()
    assert total == count and {row.span_id for row in fails} == corrected


def fill_in(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Queue rows as a person returns them: every one labeled."""
    return [{**row, "label": "pass", "labeler": "ann"} for row in rows]


def test_a_queue_csv_with_a_field_past_the_csv_limit_imports_back(
        store: Store, store_url: str, workspace: Path) -> None:
    made = [make_span(i, output={"messages": [{"role": "assistant",
                                              "content": "long answer " * 20_000}]})
            for i in range(2)]
    add_verdicts(store, made, ["pass", "fail"])
    out = workspace / "queue.csv"
    result = CliRunner().invoke(cli, ["--store", store_url, "labels", "queue", GRADER,
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    default_limit = csv.field_size_limit(1 << 30)  # this test's own reading of the file
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    csv.field_size_limit(default_limit)
    assert len(rows) == 2 and len(rows[0]["output"]) > default_limit
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(fill_in(rows))
    result = CliRunner().invoke(cli, ["--store", store_url, "labels", "import", str(out),
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    assert (summary["inserted"], summary["bad_rows"]) == (2, 0)
    assert csv.field_size_limit() == default_limit  # other csv readers keep their limit


def test_a_queue_jsonl_with_unicode_line_separators_in_a_span_imports_back(
        store: Store, store_url: str, workspace: Path) -> None:
    # U+2028, U+2029 and U+0085 may stand unescaped in a JSON string (orjson writes them so),
    # but str.splitlines() breaks lines at them.
    made = [make_span(i, output=f"first line\u2028second\u2029third\x85fourth {i}")
            for i in range(4)]
    add_verdicts(store, made, ["pass", "fail"] * 2)
    out = workspace / "queue.jsonl"
    result = CliRunner().invoke(cli, ["--store", store_url, "labels", "queue", GRADER,
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "\u2028" in text and "\x85" in text
    rows = [orjson.loads(line) for line in text.split("\n") if line]
    assert len(rows) == 4
    # Saved back by an editor that writes \r\n.
    out.write_bytes(b"".join(orjson.dumps(row) + b"\r\n" for row in fill_in(rows)))
    result = CliRunner().invoke(cli, ["--store", store_url, "labels", "import", str(out),
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    assert (summary["inserted"], summary["bad_rows"], summary["problems"]) == (4, 0, [])
    assert {row["span_id"] for row in stored_labels(store)} == {s.span_id for s in made}
