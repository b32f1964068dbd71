"""``tracegrade init``: a starter config, or one proposed from the application's source code."""

from __future__ import annotations

import sys
from functools import partial
from importlib.resources import files
from pathlib import Path

import click

from tracegrade.cli._common import (
    EXIT_FINDINGS,
    AppContext,
    fail,
    format_option,
    pass_app,
    print_json,
    progress_bar,
)
from tracegrade.config import CONFIG_FILE
from tracegrade.synth import SOURCES, InitOptions, RubricModel, SynthError, init_from_code
from tracegrade.synth import check_config as check_synthesis
from tracegrade.synth._tables import check_table, dry_run_table, proposals_table


def starter_config() -> str:
    """The commented starter config ``tracegrade init`` writes."""
    return (files("tracegrade") / "templates" / "starter.yaml").read_text(encoding="utf-8")


@click.command("init")
@click.option("--force", is_flag=True, help="Overwrite an existing config file (with "
              "--from-code its store, sources and judges are kept).")
@click.option("--from-code", "code_path", type=click.Path(path_type=Path),
              help="Propose graders from this application's source (a directory or a file).")
@click.option("--source", type=click.Choice(SOURCES), default="otlp", show_default=True,
              help="Where the traces come from: decides the span names graders match.")
@click.option("--traces", type=click.Path(path_type=Path), multiple=True,
              help="A trace file (OTLP or JSONL) to add as a source and dry-run on "
                   "(repeatable).")
@click.option("--no-judges", is_flag=True,
              help="Write llm_judge graders commented out (all graders then run offline).")
@click.option("--with-llm", is_flag=True,
              help="Have a model draft the judge rubrics (key from OPENAI_API_KEY).")
@click.option("--llm-model", default="gpt-4.1-mini", show_default=True,
              help="The model for --with-llm and for the judges section.")
@click.option("--llm-base-url", envvar="OPENAI_BASE_URL",
              help="An OpenAI-compatible endpoint for --with-llm. [env OPENAI_BASE_URL]")
@click.option("--no-dry-run", is_flag=True, help="Do not sample the sources to try the graders.")
@click.option("--sample", "sample_size", type=click.IntRange(1), default=2000,
              show_default=True, help="About how many spans of each release the dry run "
              "grades with each grader (a hash-based sample).")
@click.option("--check", is_flag=True, help="Compare the existing config with the code: exit "
              "1 if a grader's source changed or vanished, or code has no grader.")
@format_option
@pass_app
def init_command(app: AppContext, force: bool, code_path: Path | None, source: str,
                 traces: tuple[Path, ...], no_judges: bool, with_llm: bool, llm_model: str,
                 llm_base_url: str | None, no_dry_run: bool, sample_size: int, check: bool,
                 output_format: str) -> None:
    """Write a commented tracegrade.yaml: a starter, or graders proposed from your code.

    With --from-code PATH, tracegrade reads the application's source without running it
    (Python, TypeScript, JavaScript) and proposes graders for its LLM calls, structured
    outputs, tools and the fields they return, system-prompt instructions, timeouts and token
    limits. Each says which file and line it came from and which spans it matches. With a
    source configured (or --traces), a first sample dry-runs the graders in a throwaway store.
    --check re-runs the analysis against the existing config, for CI.
    """
    path = app.config_path or Path(CONFIG_FILE)
    try:
        if check:
            _check(app, path, code_path, output_format)
        elif code_path is not None:
            model = RubricModel(llm_model, llm_base_url)
            options = InitOptions(code_path, path, source, list(traces), not no_judges, force,
                                  model if with_llm else None, not no_dry_run, sample_size)
            _from_code(app, options, output_format)
        else:
            _starter(app, path, force, output_format)
    except SynthError as exc:
        fail(str(exc))


NEXT_STEPS = ["tracegrade import FILE...", "tracegrade grade"]
"""What to run after `init` writes a config."""


def _starter(app: AppContext, path: Path, force: bool, output_format: str) -> None:
    if path.exists() and not force:
        fail(f"{path} already exists (use --force to overwrite it)")
    path.write_text(starter_config(), encoding="utf-8")
    if output_format == "json":
        # "config" names the written file, as `init --from-code --format json` does.
        print_json({"config": str(path), "next": NEXT_STEPS})
        return
    app.console.print(f"Wrote {path}. Next: `{NEXT_STEPS[0]}`, then `{NEXT_STEPS[1]}`.")


def _from_code(app: AppContext, options: InitOptions, output_format: str) -> None:
    result = init_from_code(options, progress=partial(progress_bar, app.err_console))
    if output_format == "json":
        print_json(result.as_dict())
        return
    console = app.console
    console.print(proposals_table(result.synthesis))
    for note in result.notes:
        console.print(f"[yellow]Note:[/yellow] {note}")
    if result.dry_run is not None:
        console.print(dry_run_table(result.dry_run))
        for problem in result.dry_run.problems:
            console.print(f"[yellow]Dry run:[/yellow] {problem}")
    live = len(result.synthesis.active())
    console.print(f"Wrote {result.config_path}: {live} graders "
                  f"({len(result.synthesis.proposals) - live} more commented out). Next: "
                  "`tracegrade import FILE...`, then `tracegrade grade`.")


def _check(app: AppContext, path: Path, code_path: Path | None, output_format: str) -> None:
    report = check_synthesis(path, code_path)
    if output_format == "json":
        print_json(report.as_dict())
    elif report.ok:
        app.console.print(f"{path} keeps step with {report.code_path}: "
                          f"{report.graders_checked} graders checked.")
    else:
        app.console.print(check_table(report))
        app.console.print(f"{report.count('changed')} changed, {report.count('vanished')} "
                          f"vanished, {report.count('uncovered')} without a grader.")
    if not report.ok:
        sys.exit(EXIT_FINDINGS)
