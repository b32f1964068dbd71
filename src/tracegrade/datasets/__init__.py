"""Golden datasets: items with expected outputs, promoted from production, exchanged as JSONL,
replayed through the application, and checked for how well they still cover production."""

from tracegrade.datasets._items import GoldenItem, SourceSpan
from tracegrade.datasets._promote import (
    Promotion,
    failing_reasons,
    failing_span_keys,
    item_from_span,
    labeled_span_keys,
    promote_labeled,
    promote_spans,
    resolve_span_keys,
)
from tracegrade.datasets._replay import (
    EXCLUDED_SOURCES,
    REPLAY_SOURCE,
    ReplaySummary,
    function_target,
    replay,
    url_target,
)
from tracegrade.datasets._rules import TIME_SENSITIVE_PATTERNS, time_sensitive_reason
from tracegrade.datasets._store import (
    DatasetError,
    DatasetInfo,
    ItemCounts,
    add_items,
    create_dataset,
    dataset_items,
    export_dataset,
    import_dataset,
    list_datasets,
    require_dataset,
)

__all__ = [
    "EXCLUDED_SOURCES",
    "REPLAY_SOURCE",
    "ReplaySummary",
    "function_target",
    "replay",
    "url_target",
    "TIME_SENSITIVE_PATTERNS",
    "DatasetError",
    "DatasetInfo",
    "GoldenItem",
    "ItemCounts",
    "Promotion",
    "SourceSpan",
    "add_items",
    "create_dataset",
    "dataset_items",
    "export_dataset",
    "failing_reasons",
    "failing_span_keys",
    "import_dataset",
    "item_from_span",
    "labeled_span_keys",
    "list_datasets",
    "promote_labeled",
    "promote_spans",
    "require_dataset",
    "resolve_span_keys",
    "time_sensitive_reason",
]
