"""``tracegrade labels import`` and ``tracegrade labels queue``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tracegrade.analysis.calibration import CalibrationError, latest_grader_version
from tracegrade.cli._common import (
    AppContext,
    fail,
    format_option,
    pass_app,
    print_json,
    require_release,
)
from tracegrade.config import Config
from tracegrade.labels import LabelFileError, import_label_file, label_queue, write_queue
from tracegrade.store import Store


@click.group("labels")
def labels_group() -> None:
    """Human labels: import them from files or sources, and export spans worth labeling next.

    A label is a person's pass/fail on one span for one criterion (a grader's
    name), with an optional critique and labeler. Each label is given a split
    (train/dev/test) once, from its key, and keeps it; `tracegrade calibrate`
    checks graders on the test split.
    """


@labels_group.command("import")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.option("--source", help="Span source for rows without a source column. [default: looked "
                                "up by span id in the store]")
@click.option("--from", "remote", metavar="SOURCE",
              help="Import annotation scores from a configured Langfuse or Braintrust source "
                   "instead of a file.")
@format_option
@pass_app
def import_command(app: AppContext, file: Path | None, source: str | None, remote: str | None,
                   output_format: str) -> None:
    """Import human labels from a CSV or JSONL file (or from a Langfuse/Braintrust source).

    Columns (CSV header or JSONL keys): span_id, criterion (or grader), label
    (pass/fail, true/false, 1/0, yes/no), and optionally source, critique,
    labeler. Rows with an empty label (an unfilled queue row) are skipped; bad
    rows are reported with their line and skipped. Re-importing updates labels
    in place: a label's key is (source, span_id, criterion, labeler).
    """
    if (file is None) == (remote is None):
        fail("give a label FILE or --from SOURCE (one of them)")
    config = app.config()
    with app.open_store(config) as store:
        if remote is not None:
            summary: Any = _import_remote(store, remote, config)
        else:
            assert file is not None
            try:
                summary = import_label_file(store, file, source)
            except LabelFileError as exc:
                fail(str(exc))
    result = summary.as_dict() if hasattr(summary, "as_dict") else summary
    if output_format == "json":
        print_json(result)
        return
    for problem in result.get("problems", []):
        app.err_console.print(f"[yellow]skipped[/] {problem}", highlight=False, soft_wrap=True)
    unchanged = f", {result['unchanged']} unchanged" if result.get("unchanged") else ""
    app.console.print(
        f"Imported {result.get('inserted', 0)} new and {result.get('updated', 0)} updated "
        f"labels{unchanged}; {result.get('blank', 0)} unlabeled rows and "
        f"{result.get('bad_rows', 0)} bad rows skipped.", highlight=False)
    if result.get("superseded"):
        app.console.print(f"{result['superseded']} rows were overridden by a later row for the "
                          "same span, criterion and labeler (the later row was kept):",
                          highlight=False)
        for override in result.get("overrides", []):
            app.console.print(f"  {override}", highlight=False, soft_wrap=True)
    if result.get("unknown_spans"):
        app.console.print(f"{result['unknown_spans']} labels name spans not in the store "
                          "(kept; import those spans to use them).", highlight=False)


def _import_remote(store: Store, remote: str, config: Config) -> Any:
    # Imported here: the Langfuse/Braintrust clients are needed only for this option.
    from tracegrade.exporters import import_remote_labels
    from tracegrade.sources._http import RemoteError

    try:
        return import_remote_labels(store, remote, config=config)
    except RemoteError as exc:
        fail(f"{remote}: {exc}")


@labels_group.command("queue")
@click.argument("grader")
@click.option("-n", "--size", type=click.IntRange(1, 100_000), default=50, show_default=True,
              help="How many spans to export.")
@click.option("--release", help="Only spans of this release.")
@click.option("--grader-version", help="Grader version. [default: the latest graded]")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write. [default: stdout]")
@click.option("--file-format", type=click.Choice(["csv", "jsonl"]),
              help="[default: from the output's suffix, else csv]")
@click.option("--random", "random_order", is_flag=True,
              help="A random sample within each verdict instead of the least certain first "
                   "(what an unbiased corrected pass rate assumes).")
@pass_app
def queue_command(app: AppContext, grader: str, size: int, release: str | None,
                  grader_version: str | None, output: Path | None, file_format: str | None,
                  random_order: bool) -> None:
    """Export the spans most worth labeling next for GRADER, to fill in and import.

    Half are spans the grader passed and half spans it failed (so both of its
    error rates get measured), least certain first when verdicts carry a
    score. Spans already labeled for GRADER are left out. Fill in the label,
    critique and labeler columns, then run `tracegrade labels import FILE`.
    """
    chosen_format = file_format or ("jsonl" if output and output.suffix.lower() in
                                    (".jsonl", ".ndjson") else "csv")
    with app.open_store(existing=True) as store:
        require_release(store, release)
        try:
            version = grader_version or latest_grader_version(store, grader)
        except CalibrationError as exc:
            fail(str(exc))
        items = label_queue(store, grader, version, size, release=release,
                            uncertain_first=not random_order)
    if not items:
        fail(f"no unlabeled span has a pass/fail verdict from {grader} version {version}")
    count = write_queue(items, output, chosen_format)
    if output:
        judged_fail = sum(1 for item in items if item.judge == "fail")
        app.err_console.print(f"Wrote {count} spans to {output} ({count - judged_fail} judged "
                              f"pass, {judged_fail} judged fail).", highlight=False)
