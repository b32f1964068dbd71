"""``tracegrade grade``."""

from __future__ import annotations

import click
from rich.table import Table

from tracegrade.cli._common import (
    AppContext,
    fail,
    format_option,
    pass_app,
    print_json,
    progress_bar,
)
from tracegrade.graders import build_graders
from tracegrade.grading import grade


@click.command("grade")
@click.option("--grader", "only", multiple=True, help="Run only this grader (repeatable).")
@click.option("--all", "grade_all", is_flag=True,
              help="Grade every applicable span, ignoring the sampling settings.")
@format_option
@pass_app
def grade_command(app: AppContext, only: tuple[str, ...], grade_all: bool,
                  output_format: str) -> None:
    """Run the configured graders on spans that lack a verdict from their current version.

    Sampling follows the config (hash-based Poisson; the inclusion probability
    is stored with each verdict). A killed run picks up where it stopped and a
    re-run grades nothing twice. A changed grader config is a new version and
    grades everything again, keeping the old verdicts.
    """
    config = app.config()
    graders = build_graders(config.graders, list(only) or None)
    if not graders:
        fail("no graders configured: add some under `graders:` in tracegrade.yaml "
             "(`tracegrade init` writes a starter config)")
    with app.open_store(config) as store:
        total = store.count_spans()
        with progress_bar(app.err_console, "Grading spans", total) as advance:
            summary = grade(store, graders, config.sampling, grade_all=grade_all,
                            progress=advance)
    if output_format == "json":
        print_json(summary.as_dict())
        return
    table = Table(title=f"Run {summary.run_id}: {summary.verdicts_written:,} new verdicts")
    for column in ("grader", "pass", "fail", "error", "skip"):
        table.add_column(column, justify="left" if column == "grader" else "right")
    for grader, counts in sorted(summary.outcomes.items()):
        table.add_row(grader, *(f"{counts.get(o, 0):,}" for o in ("pass", "fail", "error",
                                                                    "skip")))
    app.console.print(table)
