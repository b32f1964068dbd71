"""``tracegrade dataset``: golden datasets — create, promote, list, export, import, push, stale."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from tracegrade.analysis.calibration import CalibrationError, latest_grader_version
from tracegrade.analysis.drift import DriftError, DriftSettings, dataset_drift
from tracegrade.analysis.inputs import SpanFilter
from tracegrade.analysis.staleness import StalenessSettings, find_stale_items
from tracegrade.cli._common import (
    EXIT_FINDINGS,
    AppContext,
    fail,
    format_option,
    pass_app,
    print_json,
    require_release,
)
from tracegrade.datasets import (
    DatasetError,
    ItemCounts,
    Promotion,
    create_dataset,
    export_dataset,
    failing_reasons,
    failing_span_keys,
    import_dataset,
    list_datasets,
    promote_labeled,
    promote_spans,
    require_dataset,
    resolve_span_keys,
)
from tracegrade.reports.datasets import datasets_table, stale_table

P = ParamSpec("P")
R = TypeVar("R")


def dataset_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a dataset, calibration or drift mistake into a one-line error."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (DatasetError, CalibrationError, DriftError) as exc:
            fail(str(exc))

    return wrapper


@click.group("dataset")
def dataset_group() -> None:
    """Golden datasets: create, promote spans into, list, export, import, push, check staleness.

    An item holds an input, its expected output, a link to the span it came
    from, a valid-as-of date and a time-sensitive flag. Datasets are exchanged
    as JSONL (docs/datasets.md).
    """


@dataset_group.command("create")
@click.argument("name")
@click.option("--description", help="What the dataset is for.")
@pass_app
@dataset_errors
def create_command(app: AppContext, name: str, description: str | None) -> None:
    """Create an empty golden dataset NAME."""
    with app.open_store() as store:
        create_dataset(store, name, description)
    app.console.print(f"Created dataset {name}.", highlight=False)


@dataset_group.command("list")
@format_option
@pass_app
def list_command(app: AppContext, output_format: str) -> None:
    """Every golden dataset with its item counts."""
    with app.open_store(existing=True) as store:
        datasets = list_datasets(store)
    if output_format == "json":
        print_json([d.as_dict() for d in datasets])
    else:
        app.console.print(datasets_table(datasets))


@dataset_group.command("promote")
@click.argument("dataset")
@click.argument("span_ids", nargs=-1)
@click.option("--source", help="Source of the SPAN_IDS. [default: looked up by id]")
@click.option("--failing", metavar="GRADER", help="Promote spans GRADER (latest version) failed.")
@click.option("--labeled", "labeled", metavar="CRITERION",
              help="Promote spans people labeled for CRITERION ('any' for every criterion).")
@click.option("--novel", is_flag=True,
              help="Promote the production spans that would close the biggest coverage gaps "
                   "(as `tracegrade drift --suggest`).")
@click.option("--release", help="Only spans of this release.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=20, show_default=True,
              help="At most this many spans per query.")
@format_option
@pass_app
@dataset_errors
def promote_command(app: AppContext, dataset: str, span_ids: tuple[str, ...],
                    source: str | None, failing: str | None, labeled: str | None, novel: bool,
                    release: str | None, limit: int, output_format: str) -> None:
    """Add production spans to DATASET: by SPAN_IDS, or by query (failing, labeled, novel).

    A span's input becomes the item's input and its output the expected output
    — except for failing spans (and spans people labeled fail), whose output is
    kept in the metadata as observed_output for you to correct. valid_as_of is
    the span's start time; time-sensitive inputs are flagged by rule.
    """
    if sum(bool(x) for x in (span_ids, failing, labeled, novel)) != 1:
        fail("give SPAN_IDS, or exactly one of --failing, --labeled, --novel")
    config = app.config()
    patterns = config.datasets.time_sensitive_patterns
    with app.open_store(config) as store:
        require_dataset(store, dataset)
        require_release(store, release)
        if span_ids:
            counts = promote_spans(store, dataset, resolve_span_keys(store, span_ids, source),
                                   time_patterns=patterns)
        elif failing:
            version = latest_grader_version(store, failing)
            keys = failing_span_keys(store, failing, version, release=release, limit=limit)
            counts = promote_spans(store, dataset, keys, Promotion(
                f"failed {failing}", expected_from_output=False,
                details={"grader": failing, "grader_version": version}), patterns,
                critiques=failing_reasons(store, failing, version, keys))
        elif labeled:
            counts = promote_labeled(store, dataset, None if labeled == "any" else labeled,
                                     release=release, limit=limit, time_patterns=patterns)
        else:
            report = dataset_drift(store, dataset, release=release,
                                   settings=DriftSettings(suggest=limit))
            keys = [(s.source, s.span_id) for s in report.suggestions]
            counts = promote_spans(store, dataset, keys, Promotion("novel: not covered"),
                                   patterns)
    _print_counts(app, counts, output_format, f"Promoted into {dataset}")


def _print_counts(app: AppContext, counts: ItemCounts, output_format: str, what: str) -> None:
    if output_format == "json":
        print_json(counts.as_dict())
        return
    for problem in counts.problems:
        app.err_console.print(f"[yellow]skipped[/] {problem}", highlight=False, soft_wrap=True)
    app.console.print(f"{what}: {counts.inserted} new, {counts.updated} updated, "
                      f"{counts.unchanged} unchanged items; {counts.problem_count} bad lines "
                      "skipped.", highlight=False)


@dataset_group.command("export")
@click.argument("dataset")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="JSONL file to write. [default: stdout]")
@pass_app
@dataset_errors
def export_command(app: AppContext, dataset: str, output: Path | None) -> None:
    """Write DATASET as JSONL, one item per line (the format `dataset import` reads)."""
    with app.open_store(existing=True) as store:
        count = export_dataset(store, dataset, output)
    if output:
        app.err_console.print(f"Wrote {count} items to {output}.", highlight=False)


@dataset_group.command("import")
@click.argument("dataset")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--description", help="Description, if the dataset is created.")
@click.option("--strict", is_flag=True, help="Exit 1 if any line was bad (the others are "
              "imported all the same).")
@format_option
@pass_app
@dataset_errors
def import_command(app: AppContext, dataset: str, file: Path, description: str | None,
                   strict: bool, output_format: str) -> None:
    """Import a JSONL FILE into DATASET (created if missing); bad lines are reported and skipped.

    Items are keyed by id: importing again updates changed items and adds new ones.
    """
    with app.open_store() as store:
        counts = import_dataset(store, dataset, file, description=description)
    _print_counts(app, counts, output_format, f"Imported into {dataset}")
    if strict and counts.problem_count:
        sys.exit(EXIT_FINDINGS)


@dataset_group.command("push")
@click.argument("dataset")
@click.option("--to", "destination", required=True, metavar="SOURCE",
              help="A configured Langfuse or Braintrust source.")
@format_option
@pass_app
@dataset_errors
def push_command(app: AppContext, dataset: str, destination: str, output_format: str) -> None:
    """Push DATASET to Langfuse or Braintrust; pushing again updates the same remote items.

    Items promoted from that source keep their link to the trace
    (sourceTraceId/sourceObservationId in Langfuse, origin in Braintrust).
    """
    # Imported here: the Langfuse/Braintrust clients are needed only for this command.
    from tracegrade.exporters import push_dataset
    from tracegrade.sources._http import RemoteError

    config = app.config()
    with app.open_store(config, existing=True) as store:
        require_dataset(store, dataset)
        try:
            result: Any = push_dataset(store, dataset, destination, config=config)
        except RemoteError as exc:
            fail(f"{destination}: {exc}")
    if output_format == "json":
        print_json(result.as_dict())
    else:
        app.console.print(f"Pushed {result.pushed} of {result.items} items of {dataset} to "
                          f"{destination}.", highlight=False)


@dataset_group.command("stale")
@click.argument("dataset")
@click.option("--release", help="Release whose answers are compared. [default: the latest]")
@click.option("--max-age-days", type=click.IntRange(1), help="Override datasets.max_age_days.")
@click.option("--kind", help="Production span kind to compare with. [default: the items' own]")
@click.option("--name", "span_name", help="Production span name. [default: the items' own]")
@format_option
@pass_app
@dataset_errors
def stale_command(app: AppContext, dataset: str, release: str | None, max_age_days: int | None,
                  kind: str | None, span_name: str | None, output_format: str) -> None:
    """Golden items that may be stale: time-sensitive, old, or contradicted by production.

    Time-sensitive: flagged, or the input has a date or asks about something
    that changes ("current", "latest", "today", prices, "who is the CEO of"…).
    Old: valid_as_of older than datasets.max_age_days (default 180).
    Contradicted: near-identical production inputs consistently get another answer.
    """
    config = app.config()
    settings = StalenessSettings(
        max_age_days=max_age_days or config.datasets.max_age_days,
        time_sensitive_patterns=tuple(config.datasets.time_sensitive_patterns))
    span_filter = SpanFilter(kind, span_name) if kind or span_name else None
    with app.open_store(config, existing=True) as store:
        require_release(store, release)
        report = find_stale_items(store, dataset, settings, release=release,
                                  span_filter=span_filter)
    if output_format == "json":
        print_json(report.as_dict())
    else:
        app.console.print(stale_table(report))
