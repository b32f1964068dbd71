"""``tracegrade pull``."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

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
from tracegrade.sources.pull import PullSummary, pull_sources

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Moment(click.ParamType[datetime]):
    """An ISO 8601 date or time (UTC unless it says otherwise), or ``30m``/``6h``/``7d`` ago."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        relative = _RELATIVE.match(text)
        if relative:
            amount, unit = float(relative.group(1)), relative.group(2)
            return datetime.now(tz=UTC) - timedelta(**{_UNITS[unit]: amount})
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{text!r} is not a time: use ISO 8601 (2026-11-01 or "
                      "2026-11-01T08:00:00Z) or a duration ago (30m, 6h, 7d)", param, ctx)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@click.command("pull")
@click.argument("sources", nargs=-1)
@click.option("--since", type=Moment(), default=None,
              help="Backfill from this time instead of the last pull (ISO 8601, or 7d / 6h "
                   "ago). Times without a zone are UTC.")
@click.option("--until", type=Moment(), default=None,
              help="Only spans that started before this time. [default: now]")
@format_option
@pass_app
def pull_command(app: AppContext, sources: tuple[str, ...], since: datetime | None,
                 until: datetime | None, output_format: str) -> None:
    """Pull new spans from the configured Langfuse and Braintrust sources.

    Each source is read from where its last pull stopped, re-reading the last
    15 minutes (overlap_minutes) because these services ingest late. A span
    read twice is stored once, and an updated span replaces the older copy. A
    pull that fails or is killed resumes at its last committed page. Give
    SOURCE names to pull only those; trace-file sources are re-imported.

    Exit code 1 if a source could not be pulled (the others still are).
    """
    config = app.config()
    with app.open_store(config) as store, \
            progress_bar(app.err_console, "Pulling spans", None) as advance:
        summary = pull_sources(store, config, list(sources) or None, since, until, advance)
    if output_format == "json":
        print_json(summary.as_dict())
    else:
        _print_summary(app, summary)
    if summary.failed:
        sys.exit(EXIT_FINDINGS)


def _print_summary(app: AppContext, summary: PullSummary) -> None:
    if not summary.sources:
        app.console.print("No sources to pull: add langfuse or braintrust sources to "
                          "tracegrade.yaml (see docs/sources.md).")
        return
    table = Table(title="Pulled")
    for column in ("source", "api", "pages", "new", "updated", "unchanged", "skipped",
                   "bad", "watermark"):
        table.add_column(column, justify="left" if column in ("source", "api", "watermark")
                         else "right")
    for source in summary.sources:
        table.add_row(source.source, source.api or "-", f"{source.pages:,}",
                      f"{source.counts.inserted:,}", f"{source.counts.updated:,}",
                      f"{source.counts.unchanged:,}", f"{source.skipped:,}",
                      f"{source.problem_count:,}",
                      source.watermark.isoformat(timespec="seconds") if source.watermark else "-")
    app.console.print(table)
    for source in summary.sources:
        for problem in source.problems:
            app.err_console.print(f"[yellow]skipped[/] {problem}", highlight=False, soft_wrap=True)
        if source.error:
            click.echo(f"Error: {source.error} (the next pull resumes where this one stopped)",
                       err=True)
