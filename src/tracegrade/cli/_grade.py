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
from tracegrade.cli._export import exit_if_export_failed, print_export_summary
from tracegrade.exporters import export_verdicts
from tracegrade.graders import build_graders
from tracegrade.grading import GradeSummary, grade
from tracegrade.llm import JudgeError


@click.command("grade")
@click.option("--grader", "only", multiple=True, help="Run only this grader (repeatable).")
@click.option("--all", "grade_all", is_flag=True,
              help="Grade every applicable span, ignoring the sampling settings.")
@click.option("--export", "export", is_flag=True,
              help="Then send the verdicts to the Langfuse/Braintrust sources their spans "
                   "came from (as `tracegrade export` does).")
@click.option("--budget", type=click.FloatRange(min=0.0), default=None, metavar="DOLLARS",
              help="Stop LLM-judge calls before this run spends more; spans not reached keep "
                   "no verdict and are graded by the next run.")
@click.option("--no-cache", "no_cache", is_flag=True,
              help="Ask the LLM judges afresh instead of reusing cached answers.")
@format_option
@pass_app
def grade_command(app: AppContext, only: tuple[str, ...], grade_all: bool,
                  output_format: str, export: bool = False, budget: float | None = None,
                  no_cache: bool = False) -> None:
    """Run the configured graders on spans that lack a verdict from their current version.

    Sampling follows the config (hash-based Poisson; the inclusion probability
    is stored with each verdict). A killed run picks up where it stopped and a
    re-run grades nothing twice. A changed grader config is a new version and
    grades everything again, keeping the old verdicts.
    """
    config = app.config()
    config.require_graders(only)
    graders = build_graders(config.graders, list(only) or None)
    if not graders:
        fail("no graders configured: add some under `graders:` in tracegrade.yaml "
             "(`tracegrade init` writes a starter config)")
    with app.open_store(config) as store:
        total = store.count_spans()
        try:
            with progress_bar(app.err_console, "Grading spans", total) as advance:
                summary = grade(store, graders, config.sampling, grade_all=grade_all,
                                progress=advance, budget=budget, use_cache=not no_cache)
        except JudgeError as exc:
            if output_format == "json" and isinstance(exc.summary, GradeSummary):
                # Scripts get what the run did (its verdicts are kept) beside the exit code
                print_json({**exc.summary.as_dict(), "error": f"LLM judge: {exc}"})
            fail(f"LLM judge: {exc} (verdicts graded so far are kept)")
        exported = export_verdicts(store, config, graders=list(only) or None) \
            if export else None
    if output_format == "json":
        print_json(summary.as_dict() if exported is None
                   else {**summary.as_dict(), "export": exported.as_dict()})
        exit_if_export_failed(exported)
        return
    print_grade_summary(app, summary)
    if exported is not None:
        print_export_summary(app, exported)
    exit_if_export_failed(exported)


def print_grade_summary(app: AppContext, summary: GradeSummary, title: str = "") -> None:
    """A run's verdict counts per grader and outcome, then what its judges cost."""
    table = Table(title=f"{title}Run {summary.run_id}: {summary.verdicts_written:,} new verdicts")
    for column in ("grader", "pass", "fail", "error", "skip"):
        table.add_column(column, justify="left" if column == "grader" else "right")
    for grader, counts in sorted(summary.outcomes.items()):
        table.add_row(grader, *(f"{counts.get(o, 0):,}" for o in ("pass", "fail", "error",
                                                                    "skip")))
    app.console.print(table)
    print_judge_costs(app, summary)


def print_judge_costs(app: AppContext, summary: GradeSummary) -> None:
    """Judge cost per grader and for the run, cache reuse, budget and quiet-trace notes."""
    judged = sorted(set(summary.cost) | set(summary.unpriced) | set(summary.cached))
    for grader in judged:
        unpriced = summary.unpriced.get(grader, 0)
        note = f" (+{unpriced:,} calls of an unpriced model)" if unpriced else ""
        app.console.print(f"  {grader}: ${summary.cost.get(grader, 0.0):.4f}{note}, "
                          f"{summary.cached.get(grader, 0):,} answers from the judge cache")
    if judged:
        app.console.print(f"Judge cost this run: ${summary.total_cost:.4f}")
    if summary.budget_exhausted:
        app.console.print("Budget reached: the judges stopped; the next run grades the rest.")
    if summary.deferred:
        spans = sum(summary.deferred.values())
        app.err_console.print(
            f"{spans:,} spans got no verdict from their judge ({summary.deferred_reason}); "
            "nothing was recorded for them, and the next run asks again.", soft_wrap=True)
    if summary.waiting:
        app.console.print(f"{summary.waiting:,} spans wait for their trace to go quiet; "
                          "a later run grades them.")
