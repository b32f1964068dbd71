"""``tracegrade replay``."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from tracegrade.cli._common import (
    EXIT_FINDINGS,
    AppContext,
    fail,
    format_option,
    pass_app,
    print_json,
    progress_bar,
)
from tracegrade.cli._dataset import dataset_errors
from tracegrade.datasets import dataset_items, function_target, replay, url_target
from tracegrade.graders import build_graders


@click.command("replay")
@click.argument("dataset")
@click.option("--target", metavar="MODULE:FUNCTION",
              help="Your application's entry point, called with each item's input.")
@click.option("--target-url", metavar="URL",
              help='An HTTP endpoint; each item is POSTed as {"input": ..., "item_id": ...}.')
@click.option("--release", required=True,
              help="The release name the replayed outputs are stored under (e.g. the candidate).")
@click.option("--grader", "only", multiple=True, help="Run only this grader (repeatable).")
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True)
@format_option
@pass_app
@dataset_errors
def replay_command(app: AppContext, dataset: str, target: str | None, target_url: str | None,
                   release: str, only: tuple[str, ...], concurrency: int,
                   output_format: str) -> None:
    """Run DATASET's inputs through your application and grade the outputs before a deploy.

    Each output is stored as a span of --release (source `replay`, shaped like
    the item's source span) and graded with the configured graders, so known
    regressions show up before users see them; `tracegrade regressions
    --candidate RELEASE` compares it with production. Exit 1 when a grader
    failed or errored on an item, the application raised, or no grader applied
    to an item (nothing checked it).
    """
    if (target is None) == (target_url is None):
        fail("give --target MODULE:FUNCTION or --target-url URL (one of them)")
    config = app.config()
    config.require_graders(only)
    graders = build_graders(config.graders, list(only) or None)
    call = function_target(target) if target else url_target(str(target_url))
    with app.open_store(config) as store:
        total = len(dataset_items(store, dataset))
        with progress_bar(app.err_console, "Replaying items", total) as advance:
            summary = replay(store, dataset, release, call, graders, concurrency=concurrency,
                             progress=advance)
    if output_format == "json":
        print_json(summary.as_dict())
    else:
        table = Table(title=f"Replay of {dataset} as {release}: {summary.items} items, "
                            f"{summary.app_errors} application errors")
        for column in ("grader", "pass", "fail", "error", "skip"):
            table.add_column(column, justify="left" if column == "grader" else "right")
        for grader, counts in sorted(summary.outcomes.items()):
            table.add_row(grader, *(str(counts.get(o, 0)) for o in ("pass", "fail", "error",
                                                                     "skip")))
        app.console.print(table)
        for failure in summary.failures[:20]:
            who = failure["grader"] or "the application"
            app.console.print(f"  {failure['outcome']}: {who} on item {failure['item_id']}: "
                              f"{failure['reason']}", highlight=False)
        if summary.ungraded:
            first = summary.ungraded[0]
            app.console.print(
                f"  {len(summary.ungraded)} item(s) graded by no grader, so not checked "
                f"(first: {first['item_id']}, a {first['kind']} span named {first['name']!r}): "
                "check the graders' applies_to, or the items' source spans",
                highlight=False)
    if summary.failed:
        sys.exit(EXIT_FINDINGS)
