"""Rich tables for golden datasets: the list, drift against production, stale items."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from tracegrade.analysis.drift import DriftReport
from tracegrade.analysis.staleness import StalenessReport
from tracegrade.datasets import DatasetInfo
from tracegrade.reports.terminal import percent

_CLUSTER_STYLE = {"missing": "bold red", "under-represented": "yellow",
                  "over-represented": "cyan", "covered": "dim", "rare": "dim yellow"}


def datasets_table(datasets: Sequence[DatasetInfo]) -> Table:
    """One row per dataset."""
    table = Table(title="Golden datasets")
    table.add_column("dataset")
    for column in ("items", "with expected output", "time-sensitive"):
        table.add_column(column, justify="right")
    table.add_column("created")
    table.add_column("description")
    for info in datasets:
        table.add_row(info.name, str(info.items), str(info.with_expected_output),
                      str(info.time_sensitive), info.created_at.strftime("%Y-%m-%d %H:%M"),
                      info.description or "")
    return table


def drift_tables(report: DriftReport) -> list[Table]:
    """The cluster table, and the suggestions when there are any."""
    clusters = Table(title=f"Production clusters of {report.release} "
                           f"(n={report.production_n:,}) vs {report.dataset} "
                           f"(n={report.golden_n:,})"
                           + (f"; {report.empty_production:,} spans without input left out"
                              if report.empty_production else ""))
    clusters.add_column("topic")
    for column in ("production", "golden", "covered", "q"):
        clusters.add_column(column, justify="right")
    clusters.add_column("status")
    clusters.add_column("example inputs")
    for cluster in report.clusters:
        clusters.add_row(
            cluster.name, f"{percent(cluster.production_share)} ({cluster.production_count:,})",
            f"{percent(cluster.golden_share)} ({cluster.golden_count})",
            percent(cluster.coverage), f"{cluster.q_value:.3f}",
            Text(cluster.status, style=_CLUSTER_STYLE[cluster.status]),
            "\n".join(_short(e) for e in cluster.examples[:2]))
    tables = [clusters]
    if report.suggestions:
        suggestions = Table(title="Promote these to close the biggest gaps")
        for column in ("span", "topic", "covers", "input"):
            suggestions.add_column(column, justify="right" if column == "covers" else "left")
        for suggestion in report.suggestions:
            suggestions.add_row(f"{suggestion.source}:{suggestion.span_id}",
                                suggestion.cluster_name, percent(suggestion.gain),
                                _short(suggestion.input))
        tables.append(suggestions)
    return tables


def drift_summary(report: DriftReport) -> str:
    """The verdict in a few lines: missing topics, AUC, coverage."""
    lines = []
    if report.missing:
        topics = "; ".join(f"{c.name} ({percent(c.uncovered_share)} of production uncovered)"
                           for c in report.missing)
        lines.append(f"MISSING from {report.dataset}: {topics}")
    else:
        lines.append(f"No production topic is missing from {report.dataset}.")
    if report.auc is not None:
        lines.append(f"Classifier two-sample AUC {report.auc:.3f} (p={report.auc_p_value:.3g}; "
                     "0.5 = golden and production indistinguishable).")
    if report.coverage is not None:
        lines.append(f"Nearest-neighbour coverage: {percent(report.coverage)} of production "
                     f"inputs have a golden item within distance {report.radius:.3f}.")
    return "\n".join(lines)


def stale_table(report: StalenessReport) -> Table:
    """One row per flagged item with every reason."""
    table = Table(title=f"{len(report.stale)} of {report.items} items of {report.dataset} "
                        "may be stale")
    for column in ("item", "why", "input", "expected", "production answers"):
        table.add_column(column)
    for item in report.stale:
        table.add_row(item.item_id, "\n".join(item.reasons), _short(item.input),
                      _short(item.expected_output or ""), _short(item.production_answer or ""))
    return table


def _short(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
