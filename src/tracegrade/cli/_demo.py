"""``tracegrade demo``."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import click

from tracegrade.cli._common import (
    AppContext,
    fail,
    format_option,
    pass_app,
    print_json,
    progress_bar,
)
from tracegrade.demo.run import ENABLE_JUDGES_HINT, DemoResult, run_demo
from tracegrade.llm import JudgeError
from tracegrade.reports.terminal import (
    rates_table,
    regression_summary,
    regressions_table,
    slices_table,
)


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
    try:
        result = run_demo(workspace, progress=partial(progress_bar, app.err_console))
    except JudgeError as exc:
        fail(f"LLM judge: {exc}")
    if output_format == "json":
        print_json({"workspace": str(result.workspace), "import": result.imported.as_dict(),
                    "grade": result.graded.as_dict(),
                    "regressions": result.regressions.as_dict(),
                    "judges_run": result.judges_run})
        return
    console = app.console
    console.print(f"Workspace: {result.workspace}")
    console.print(f"Imported {result.imported.spans:,} spans; "
                  f"graded {result.graded.verdicts_written:,} verdicts.\n")
    console.print(rates_table(result.rates))
    console.print(regressions_table(result.regressions))
    slices = slices_table(result.regressions)
    if slices is not None:
        console.print(slices)
    console.print(regression_summary(result.regressions))
    console.print(f"\nExplore: tracegrade --config {result.workspace}/tracegrade.yaml "
                  "regressions", soft_wrap=True)
    console.print("(the demo's config, pointed at its store: `report`, `calibrate` against the "
                  "bundled human labels and `drift golden` for what the bundled golden set "
                  "misses work the same way)", soft_wrap=True)
    console.print(judge_line(result), soft_wrap=True)


def judge_line(result: DemoResult) -> str:
    """What the LLM judges cost, or the one line saying how to turn them on."""
    if not result.judges_run:
        return ENABLE_JUDGES_HINT
    graded = result.graded
    return (f"LLM judges: ${graded.total_cost:.4f} this run, "
            f"{sum(graded.cached.values()):,} answers from the judge cache.")
