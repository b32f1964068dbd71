"""``tracegrade demo``."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import click

from tracegrade.cli._common import AppContext, format_option, pass_app, print_json, progress_bar
from tracegrade.demo.run import run_demo
from tracegrade.reports.terminal import rates_table, regression_summary, regressions_table


@click.command("demo")
@click.option("--workspace", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the demo's store. [default: a fresh temporary directory]")
@format_option
@pass_app
def demo_command(app: AppContext, workspace: Path | None, output_format: str) -> None:
    """Run the whole flow on bundled traces of a customer-support agent.

    Imports two releases of traces, grades them, and shows which grader
    regressed in the second release. Nothing outside the workspace is touched.
    """
    if workspace:
        workspace.mkdir(parents=True, exist_ok=True)
    result = run_demo(workspace, progress=partial(progress_bar, app.err_console))
    if output_format == "json":
        print_json({"workspace": str(result.workspace), "import": result.imported.as_dict(),
                    "grade": result.graded.as_dict(),
                    "regressions": result.regressions.as_dict()})
        return
    console = app.console
    console.print(f"Workspace: {result.workspace}")
    console.print(f"Imported {result.imported.spans:,} spans; "
                  f"graded {result.graded.verdicts_written:,} verdicts.\n")
    console.print(rates_table(result.rates))
    console.print(regressions_table(result.regressions))
    console.print(regression_summary(result.regressions))
    console.print(f"\nExplore: tracegrade --store sqlite:///{result.workspace}/tracegrade.db "
                  "report")
