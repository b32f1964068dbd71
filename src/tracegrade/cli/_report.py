"""``tracegrade report`` and ``tracegrade regressions``."""

from __future__ import annotations

import sys

import click

from tracegrade.analysis import FindingStatus, RegressionSettings, find_regressions, pass_rates
from tracegrade.cli._common import (
    EXIT_FINDINGS,
    EXIT_INSUFFICIENT,
    AppContext,
    format_option,
    pass_app,
    print_json,
)
from tracegrade.reports.terminal import rates_table, regression_summary, regressions_table


@click.command("report")
@format_option
@pass_app
def report_command(app: AppContext, output_format: str) -> None:
    """Pass rate per release × grader with counts and 95% Wilson intervals.

    Rates are over pass + fail; errors and skips are shown apart and never
    counted as passes.
    """
    with app.open_store() as store:
        rates = pass_rates(store)
    if output_format == "json":
        print_json([rate.as_dict() for rate in rates])
    else:
        app.console.print(rates_table(rates))


@click.command("regressions")
@click.option("--baseline", help="Baseline release. [default: the release before the candidate]")
@click.option("--candidate", help="Candidate release. [default: the latest release]")
@click.option("--alpha", type=click.FloatRange(0.0001, 0.5), default=0.05, show_default=True,
              help="False discovery rate across graders.")
@click.option("--effect", type=click.FloatRange(0.001, 1.0), default=0.05, show_default=True,
              help="Smallest drop in pass rate (absolute) worth detecting.")
@click.option("--strict", is_flag=True, help="Exit 3 when a grader has insufficient data.")
@format_option
@pass_app
def regressions_command(app: AppContext, baseline: str | None, candidate: str | None,
                        alpha: float, effect: float, strict: bool, output_format: str) -> None:
    """Which grader got worse in the candidate release than in the baseline.

    Each grader ends as regressed, improved, unchanged, or insufficient data
    (with how many more spans per release would detect --effect). Exit code 1
    if anything regressed.
    """
    settings = RegressionSettings(alpha=alpha, effect=effect)
    with app.open_store() as store:
        report = find_regressions(store, baseline, candidate, settings)
    if output_format == "json":
        print_json(report.as_dict())
    else:
        app.console.print(regressions_table(report))
        app.console.print(regression_summary(report))
    if report.regressed:
        sys.exit(EXIT_FINDINGS)
    if strict and any(f.status is FindingStatus.INSUFFICIENT for f in report.findings):
        sys.exit(EXIT_INSUFFICIENT)
