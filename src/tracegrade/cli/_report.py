"""``tracegrade report`` and ``tracegrade regressions``."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import click
import orjson
from rich.console import Console

from tracegrade.analysis import (
    FindingStatus,
    RegressionReport,
    RegressionSettings,
    find_regressions,
    pass_rates,
)
from tracegrade.analysis.examples import FailingSpan, failing_spans
from tracegrade.analysis.regressions import configured
from tracegrade.cli._common import (
    EXIT_FINDINGS,
    EXIT_INSUFFICIENT,
    AppContext,
    pass_app,
    require_environment,
)
from tracegrade.reports import (
    rates_html,
    rates_markdown,
    regressions_html,
    regressions_junit,
    regressions_markdown,
)
from tracegrade.reports.terminal import (
    rates_table,
    regression_summary,
    regressions_table,
    slices_table,
)

output_option = click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the report to this file instead of stdout.")
environment_option = click.option(
    "--environment", help="Only spans of this environment (e.g. production).")


def _emit(app: AppContext, text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    app.err_console.print(f"Wrote {output}", highlight=False)


@click.command("report")
@click.option("--format", "output_format", default="table", show_default=True,
              type=click.Choice(["table", "json", "markdown", "html"]),
              help="table for people, json for scripts, markdown for a comment, html for a "
                   "self-contained page of charts.")
@environment_option
@output_option
@pass_app
def report_command(app: AppContext, output_format: str, environment: str | None,
                   output: Path | None) -> None:
    """Pass rate per release × grader with counts and 95% Wilson intervals.

    Rates are over pass + fail; errors and skips are shown apart and never
    counted as passes. Unequal sampling probabilities are corrected (Hajek).
    """
    config = app.config()
    settings = RegressionSettings.from_config(config.analysis, environment=environment)
    with app.open_store(config, existing=True) as store:
        require_environment(store, environment)
        rates = pass_rates(store, settings=settings)
    if output_format == "table":
        _emit_rich(app, [rates_table(rates)], output)
    elif output_format == "json":
        _emit(app, _json([rate.as_dict() for rate in rates]), output)
    elif output_format == "html":
        _emit(app, rates_html(rates), output)
    else:
        _emit(app, rates_markdown(rates), output)


@click.command("regressions")
@click.option("--baseline", help="Baseline release. [default: the release before the candidate]")
@click.option("--candidate", help="Candidate release. [default: the latest release]")
@click.option("--alpha", type=click.FloatRange(0.0001, 0.5),
              help="False discovery rate across graders and slices. [default: analysis.alpha, "
                   "0.05]")
@click.option("--effect", type=click.FloatRange(0.001, 1.0),
              help="Smallest drop in pass rate (absolute) worth detecting. [default: "
                   "analysis.effect, 0.05]")
@environment_option
@click.option("--strict", is_flag=True, help="Exit 3 when a grader has insufficient data.")
@click.option("--format", "output_format", default="table", show_default=True,
              type=click.Choice(["table", "json", "markdown", "junit", "html"]),
              help="table for people, json for scripts, markdown for a pull-request comment, "
                   "junit for CI test reports, html for one self-contained page.")
@output_option
@click.option("--examples", default=5, show_default=True, type=click.IntRange(0, 100),
              help="Failing spans shown per regressed grader in the html report.")
@pass_app
def regressions_command(app: AppContext, baseline: str | None, candidate: str | None,
                        alpha: float | None, effect: float | None, environment: str | None,
                        strict: bool, output_format: str, output: Path | None,
                        examples: int) -> None:
    """Which grader got worse in the candidate release than in the baseline.

    Each grader (and each configured slice of its spans, under the same
    false-discovery control) ends as regressed, improved, unchanged, or
    insufficient data with how many more spans would detect --effect.

    \b
    Exit codes: 1 if anything regressed (overall or in a slice), 0 otherwise;
    with --strict, 3 when a grader has insufficient data.
    """
    config = app.config()
    settings = RegressionSettings.from_config(config.analysis, alpha=alpha, effect=effect,
                                              environment=environment,
                                              **configured(config.graders))
    with app.open_store(config, existing=True) as store:
        require_environment(store, environment)
        report = find_regressions(store, baseline, candidate, settings)
        shown = failing_spans(store, report, examples) if output_format == "html" else None
    _print_report(app, report, output_format, output, strict, shown)
    if report.regressed:
        sys.exit(EXIT_FINDINGS)
    if strict and any(f.status is FindingStatus.INSUFFICIENT for f in report.findings):
        sys.exit(EXIT_INSUFFICIENT)


def _print_report(app: AppContext, report: RegressionReport, output_format: str,
                  output: Path | None, strict: bool,
                  shown: Mapping[str, Sequence[FailingSpan]] | None) -> None:
    if output_format == "table":
        renderables: list[object] = [regressions_table(report), slices_table(report),
                                     regression_summary(report)]
        _emit_rich(app, [r for r in renderables if r is not None], output)
    elif output_format == "json":
        _emit(app, _json(report.as_dict()), output)
    elif output_format == "junit":
        _emit(app, regressions_junit(report, strict=strict), output)
    elif output_format == "html":
        _emit(app, regressions_html(report, shown), output)
    else:
        _emit(app, regressions_markdown(report), output)


def _json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode() + "\n"


def _emit_rich(app: AppContext, renderables: list[object], output: Path | None) -> None:
    if output is None:
        for renderable in renderables:
            app.console.print(renderable)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as handle:
        console = Console(file=handle, width=160, no_color=True)
        for renderable in renderables:
            console.print(renderable)
    app.err_console.print(f"Wrote {output}", highlight=False)
