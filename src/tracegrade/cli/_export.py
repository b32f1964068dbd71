"""``tracegrade export``."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from tracegrade.cli._common import (
    EXIT_FINDINGS,
    AppContext,
    format_option,
    pass_app,
    print_json,
    progress_bar,
)
from tracegrade.exporters import ExportSummary, export_verdicts


@click.command("export")
@click.argument("destination", required=False)
@click.option("--grader", "graders", multiple=True, help="Only this grader (repeatable).")
@format_option
@pass_app
def export_command(app: AppContext, destination: str | None, graders: tuple[str, ...],
                   output_format: str) -> None:
    """Send verdicts back to Langfuse (as scores) and Braintrust (as feedback).

    Each pass/fail verdict goes to the source its span was pulled from: a
    BOOLEAN score named after the grader (1 pass, 0 fail, the reason as its
    comment) on the Langfuse observation, or a 1/0 score and comment on the
    Braintrust row. DESTINATION limits it to one source. Only verdicts not yet
    accepted are sent, and a re-sent one updates the same remote score.

    Exit code 1 if a destination failed (what it accepted is kept).
    """
    config = app.config()
    with app.open_store(config, existing=True) as store, \
            progress_bar(app.err_console, "Exporting verdicts", None) as advance:
        summary = export_verdicts(store, config, destination, graders=list(graders) or None,
                                  progress=advance)
    if output_format == "json":
        print_json(summary.as_dict())
    else:
        print_export_summary(app, summary)
    exit_if_export_failed(summary)


def exit_if_export_failed(summary: ExportSummary | None) -> None:
    """Exit 1 when a destination stopped on an error."""
    if summary is not None and summary.failed:
        sys.exit(EXIT_FINDINGS)


def print_export_summary(app: AppContext, summary: ExportSummary) -> None:
    """The export table, refused verdicts and errors, for people."""
    if not summary.destinations:
        app.console.print("No destinations: add langfuse or braintrust sources to "
                          "tracegrade.yaml (see docs/sources.md).")
        return
    table = Table(title="Exported verdicts")
    for column in ("destination", "type", "exported", "rejected", "skipped"):
        table.add_column(column, justify="left" if column in ("destination", "type")
                         else "right")
    for result in summary.destinations:
        table.add_row(result.destination, result.type, f"{result.exported:,}",
                      f"{result.rejected:,}", f"{result.skipped:,}")
    app.console.print(table)
    for result in summary.destinations:
        for failure in result.failures:
            app.err_console.print(f"[yellow]not exported[/] {failure}", highlight=False,
                                  soft_wrap=True)
        if result.error:
            click.echo(f"Error: {result.error} (run `tracegrade export` again to send the "
                       "rest)", err=True)
