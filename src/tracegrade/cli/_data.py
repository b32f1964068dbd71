"""``tracegrade import`` and ``tracegrade stats``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tracegrade.cli._common import (
    EXIT_FINDINGS,
    AppContext,
    format_option,
    pass_app,
    print_json,
    progress_bar,
)
from tracegrade.ingest import import_files
from tracegrade.reports.terminal import stats_table


@click.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--source", default="import", show_default=True,
              help="The source name the spans are stored under (their key is source + span id).")
@click.option("--strict", is_flag=True, help="Exit 1 if any record was malformed.")
@format_option
@pass_app
def import_command(app: AppContext, files: tuple[Path, ...], source: str, strict: bool,
                   output_format: str) -> None:
    """Import trace files: OTLP JSON, OTLP protobuf, or tracegrade JSONL (.gz too).

    The format is detected from the content. Re-importing a file changes
    nothing; malformed records are reported with file and line (or byte
    offset), skipped and counted, and the rest is imported.
    """
    config = app.config()
    with app.open_store(config) as store, \
            progress_bar(app.err_console, "Importing spans", None) as advance:
        summary = import_files(store, list(files), config.mapping(source), progress=advance)
    if output_format == "json":
        print_json(summary.as_dict())
    else:
        for problem in summary.problems:
            app.err_console.print(f"[yellow]skipped[/] {problem}", highlight=False,
                                  soft_wrap=True)
        hidden = summary.problem_count - len(summary.problems)
        if hidden > 0:
            app.err_console.print(f"… and {hidden} more malformed records")
        counts = summary.counts
        app.console.print(
            f"Imported {summary.spans:,} spans from {summary.files} file(s): "
            f"{counts.inserted:,} new, {counts.updated:,} updated, "
            f"{counts.unchanged:,} unchanged; {summary.problem_count:,} malformed records skipped."
        )
    if strict and summary.problem_count:
        sys.exit(EXIT_FINDINGS)


@click.command("stats")
@format_option
@pass_app
def stats_command(app: AppContext, output_format: str) -> None:
    """Spans in the store per release, kind and source, with time ranges."""
    with app.open_store() as store:
        rows = store.span_counts()
    if output_format == "json":
        print_json(rows)
    else:
        app.console.print(stats_table(rows))
