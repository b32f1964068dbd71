"""``tracegrade runs``."""

from __future__ import annotations

import click

from tracegrade.cli._common import AppContext, format_option, pass_app, print_json
from tracegrade.reports.terminal import runs_table
from tracegrade.runs import KILLED, list_runs

_STATUSES = ("running", "finished", "failed", "interrupted", "budget_exhausted", KILLED)


@click.command("runs")
@click.option("--command", "command", type=click.Choice(["grade", "pull", "replay"]),
              help="Only runs of this command.")
@click.option("--status", type=click.Choice(_STATUSES),
              help="Only runs with this status (among the latest --limit).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many of the latest runs to show.")
@format_option
@pass_app
def runs_command(app: AppContext, command: str | None, status: str | None, limit: int,
                 output_format: str) -> None:
    """Recent grade, pull and replay runs: when, how long, how they ended, what they wrote.

    A run whose process died without recording an end (kill -9, out of
    memory, a reboot) shows as killed when it ran on this machine: its
    committed verdicts are kept, and the next `tracegrade grade` finishes
    the rest. A run of another machine cannot be checked from here.
    """
    config = app.config()
    with app.open_store(config, existing=True) as store:
        records = list_runs(store, limit=limit, command=command, status=status)
    if output_format == "json":
        print_json([record.as_dict() for record in records])
        return
    if not records:
        app.console.print("No runs recorded yet: `tracegrade grade` or `tracegrade pull` "
                          "records one each time it runs.")
        return
    app.console.print(runs_table(records))
    # Only while no later grade run has finished the work (records come newest first).
    latest_grade = next((record for record in records if record.command == "grade"), None)
    if latest_grade is not None and latest_grade.status == KILLED and status is None:
        app.err_console.print("A killed grade run kept what it committed; run `tracegrade "
                              "grade` to grade the rest.")
