"""``tracegrade import`` and ``tracegrade stats``."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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
from tracegrade.cli._grade import print_grade_summary
from tracegrade.config import Config
from tracegrade.graders import build_graders
from tracegrade.grading import GradeSummary, InlineGrading, grade
from tracegrade.ingest import import_files
from tracegrade.llm import JudgeError
from tracegrade.sources._base import IngestProblem
from tracegrade.store import Store


@click.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--source", default="import", show_default=True,
              help="The source name the spans are stored under (their key is source + span id).")
@click.option("--strict", is_flag=True, help="Exit 1 if any record was malformed.")
@click.option("--grade", "grade_too", is_flag=True,
              help="Also grade the imported spans with the configured graders, as "
                   "`tracegrade grade` would: deterministic graders while the spans are written "
                   "(their verdicts commit with them), the others after the import.")
@click.option("--grader", "only", multiple=True,
              help="With --grade: run only this grader (repeatable).")
@click.option("--all", "grade_all", is_flag=True,
              help="With --grade: grade every applicable span, ignoring the sampling settings.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes that decode and map OTLP JSON lines / span JSONL files while this "
                   "one writes (default: one per CPU, at most 4, for files of 8 MB or more; "
                   "1 maps in this process).")
@format_option
@pass_app
def import_command(app: AppContext, files: tuple[Path, ...], source: str, strict: bool,
                   output_format: str, grade_too: bool = False, only: tuple[str, ...] = (),
                   grade_all: bool = False, workers: int | None = None) -> None:
    """Import trace files: OTLP JSON, OTLP protobuf, or tracegrade JSONL (.gz too).

    The format is detected from the content. FILE "-" reads standard input
    (copied to a temporary file first, so memory stays flat), e.g.
    `zcat traces.gz | tracegrade import -`. Re-importing a file changes
    nothing; malformed records are reported with file and line (or byte
    offset), skipped and counted, and the rest is imported.

    With --grade the spans are graded too. Graders that need only the span
    run while it is written, which saves reading every span back; LLM judges,
    trace-level graders and graders under a per-release cap or stratified
    sampling (which need the final span counts) run after the import.
    """
    if (only or grade_all) and not grade_too:
        fail("--grader and --all only apply with --grade")
    config = app.config()
    if grade_too:
        config.require_graders(only)
    graders = build_graders(config.graders, list(only) or None) if grade_too else []
    if grade_too and not graders:
        fail("no graders configured: add some under `graders:` in tracegrade.yaml "
             "(`tracegrade init` writes a starter config)")
    if files.count(STDIN) > 1:
        fail("'-' (standard input) can be given once")
    runs: list[GradeSummary] = []
    with app.open_store(config) as store, _stdin_spooled(files) as paths, \
            InlineGrading(store, graders, config.sampling, grade_all=grade_all) as inline:
        with progress_bar(app.err_console, "Importing spans", None, threaded=False) as advance:
            summary = import_files(store, paths, config.mapping(source), progress=advance,
                                   grade=inline if inline.graders else None, workers=workers)
        if STDIN in files:
            spool = str(paths[files.index(STDIN)])
            summary.problems = [IngestProblem(STDIN_NAME + p.location.removeprefix(spool),
                                              p.reason) if p.location.startswith(spool) else p
                                for p in summary.problems]
    if inline.graders:
        runs.append(inline.summary)
    if inline.deferred:
        with app.open_store(config) as store:
            runs.append(_grade_after_import(app, store, config, inline, grade_all))
    if output_format == "json":
        print_json(summary.as_dict() if not grade_too
                   else {**summary.as_dict(), "grade_runs": [run.as_dict() for run in runs]})
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
        if counts.regraded:
            app.console.print(f"{counts.regraded:,} updated spans changed content: their "
                              "verdicts were dropped and they are graded again.")
        for run in runs:
            print_grade_summary(app, run)
    if strict and summary.problem_count:
        sys.exit(EXIT_FINDINGS)


STDIN = Path("-")
STDIN_NAME = "<stdin>"
"""How records read from standard input are located in problems (``<stdin>:LINE``)."""


@contextmanager
def _stdin_spooled(files: tuple[Path, ...]) -> Iterator[list[Path]]:
    """``files`` with ``-`` replaced by a temporary copy of standard input (removed after).

    Formats are told from the content and worker processes read by byte range, so the stream
    is copied to disk in 1 MB blocks rather than read into memory.
    """
    if STDIN not in files:
        yield list(files)
        return
    if sys.stdin.isatty():
        fail("'-' reads traces from standard input, which is a terminal: pipe a file in, "
             "e.g. `zcat traces.jsonl.gz | tracegrade import -`")
    for path in files:  # what import_files would refuse, before reading all of stdin
        if path != STDIN and not path.exists():
            fail(f"{path}: no such file")
    with tempfile.TemporaryDirectory(prefix="tracegrade-stdin-") as directory:
        spool = Path(directory) / "stdin"
        try:
            with spool.open("wb") as out:
                shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
        except OSError as error:
            fail(f"cannot copy standard input to {directory} ({error.strerror or error}): "
                 "point TMPDIR at a disk with room, or import a file")
        yield [spool if path == STDIN else path for path in files]


def _grade_after_import(app: AppContext, store: Store, config: Config, inline: InlineGrading,
                        grade_all: bool) -> GradeSummary:
    try:
        with progress_bar(app.err_console, "Grading spans", store.count_spans()) as advance:
            return grade(store, inline.deferred, config.sampling, grade_all=grade_all,
                         progress=advance)
    except JudgeError as exc:
        fail(f"LLM judge: {exc} (the import and the verdicts graded so far are kept)")


@click.command("stats")
@format_option
@pass_app
def stats_command(app: AppContext, output_format: str) -> None:
    """Spans in the store per release, kind and source, with time ranges."""
    from tracegrade.reports.terminal import stats_table  # imports the statistics stack

    with app.open_store(existing=True) as store:
        rows = store.span_counts()
    if output_format == "json":
        print_json(rows)
    else:
        app.console.print(stats_table(rows))
