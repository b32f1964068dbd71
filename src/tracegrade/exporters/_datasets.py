"""Push a golden dataset (the ``dataset_items`` table) to Langfuse or Braintrust.

Every item gets a deterministic remote id (from the dataset and item id), so pushing again
updates the remote items instead of duplicating them. An item whose span came from the
destination keeps its link back to it: Langfuse's ``sourceTraceId``/``sourceObservationId``,
Braintrust's ``origin`` (the project-logs row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import and_, select

from tracegrade.config import Config
from tracegrade.exporters._common import ExportError, remote_source, stable_id
from tracegrade.sources.braintrust import BraintrustApi, BraintrustSourceConfig
from tracegrade.sources.langfuse import LangfuseApi, LangfuseSourceConfig
from tracegrade.store import Store
from tracegrade.store import _schema as t

INSERT_BATCH = 100


@dataclass
class DatasetItemRow:
    """One row of ``dataset_items``, with the span's Braintrust row id when it has one."""

    item_id: str
    input: Any
    expected_output: Any
    source: str | None
    span_id: str | None
    trace_id: str | None
    valid_as_of: Any
    time_sensitive: bool
    item_metadata: Any
    row_id: str | None


@dataclass
class DatasetPush:
    """What a push did."""

    dataset: str
    destination: str
    remote_dataset_id: str | None = None
    items: int = 0
    pushed: int = 0

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {"dataset": self.dataset, "destination": self.destination,
                "remote_dataset_id": self.remote_dataset_id, "items": self.items,
                "pushed": self.pushed}


def push_dataset(
    store: Store,
    dataset_name: str,
    destination_source_name: str,
    *,
    config: Config | None = None,
) -> DatasetPush:
    """Create the dataset remotely if missing and upsert every item of it.

    Args:
        store: Where ``datasets`` / ``dataset_items`` are read.
        dataset_name: The dataset to push.
        destination_source_name: A configured Langfuse or Braintrust source.
        config: The configuration (default: ``tracegrade.yaml`` in the working directory).

    Returns:
        The remote dataset's id and how many items were pushed.

    Raises:
        ExportError: no such dataset, or the destination is not a Langfuse/Braintrust source.
        tracegrade.sources.RemoteError: the service refused or kept failing (items pushed so
            far stay; pushing again is safe).
    """
    destination = remote_source(config, destination_source_name)
    description, items = _dataset(store, dataset_name)
    result = DatasetPush(dataset=dataset_name, destination=destination.name, items=len(items))
    if isinstance(destination, LangfuseSourceConfig):
        _push_to_langfuse(destination, dataset_name, description, items, result)
    else:
        _push_to_braintrust(destination, dataset_name, description, items, result)
    return result


def _dataset(store: Store, name: str) -> tuple[str | None, list[DatasetItemRow]]:
    d, i, s = t.datasets.c, t.dataset_items.c, t.spans.c
    query = (
        select(i.item_id, i.input, i.expected_output, i.source, i.span_id, i.trace_id,
               i.valid_as_of, i.time_sensitive, i.item_metadata,
               s.attributes["braintrust.id"].as_string())
        .select_from(t.dataset_items.outerjoin(
            t.spans, and_(s.source == i.source, s.span_id == i.span_id)))
        .where(i.dataset == name)
        .order_by(i.id)
    )
    with store.engine.connect() as conn:
        described = conn.execute(select(d.description).where(d.name == name)).first()
        items = [DatasetItemRow(*list(row)) for row in conn.execute(query)]
    if described is None and not items:
        raise ExportError(f"no dataset named {name!r} in the store")
    return (described[0] if described else None), items


def _metadata(item: DatasetItemRow) -> dict[str, Any]:
    metadata = dict(item.item_metadata) if isinstance(item.item_metadata, dict) else {}
    metadata.update({
        "tracegrade_item_id": item.item_id,
        "tracegrade_source": item.source,
        "tracegrade_span_id": item.span_id,
        "valid_as_of": item.valid_as_of.isoformat() if item.valid_as_of else None,
        "time_sensitive": bool(item.time_sensitive),
    })
    return metadata


def _push_to_langfuse(config: LangfuseSourceConfig, name: str, description: str | None,
                      items: list[DatasetItemRow], result: DatasetPush) -> None:
    api = LangfuseApi(config)
    try:
        dataset = api.dataset(name) or api.post(
            "/api/public/v2/datasets",
            {"name": name, "description": description, "metadata": {"tracegrade": True}})
        result.remote_dataset_id = str(dataset.get("id")) if isinstance(dataset, dict) else None
        for item in items:
            from_here = item.source == config.name
            api.post("/api/public/dataset-items", {
                "datasetName": name,
                "id": stable_id("langfuse-dataset-item", name, item.item_id),
                "input": item.input,
                "expectedOutput": item.expected_output,
                "metadata": _metadata(item),
                "sourceTraceId": item.trace_id if from_here else None,
                "sourceObservationId": item.span_id if from_here else None,
            })
            result.pushed += 1
    finally:
        api.close()


def _push_to_braintrust(config: BraintrustSourceConfig, name: str, description: str | None,
                        items: list[DatasetItemRow], result: DatasetPush) -> None:
    api = BraintrustApi(config)
    try:
        project_id = api.project_id()
        dataset = api.post("/v1/dataset", {"project_id": project_id, "name": name,
                                           "description": description})
        dataset_id = str(dataset["id"])
        result.remote_dataset_id = dataset_id
        for start in range(0, len(items), INSERT_BATCH):
            batch = items[start:start + INSERT_BATCH]
            events = [_braintrust_event(item, name, config.name, project_id) for item in batch]
            api.post(f"/v1/dataset/{quote(dataset_id, safe='')}/insert", {"events": events})
            result.pushed += len(batch)
    finally:
        api.close()


def _braintrust_event(item: DatasetItemRow, name: str, source: str, project_id: str
                      ) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": stable_id("braintrust-dataset-item", name, item.item_id),
        "input": item.input,
        "expected": item.expected_output,
        "metadata": _metadata(item),
    }
    if item.source == source and item.row_id:
        event["origin"] = {"object_type": "project_logs", "object_id": project_id,
                           "id": item.row_id}
    return event
