"""A fake Langfuse server: the public REST endpoints tracegrade calls, checked against the spec.

It holds observations (in the v2 API's shape, every field group), traces, scores and datasets in
memory and serves:

* ``GET /api/public/v2/observations`` — newest first by (startTime, traceId, id), the keyset
  cursor Langfuse uses (base64 JSON of ``lastStartTimeTo``/``lastTraceId``/``lastId``), field
  groups, ``fromStartTime``/``toStartTime``, ``environment``, ``type``, ``name``; answers 404
  when ``v2_enabled`` is off, like a self-hosted Langfuse v3;
* ``GET /api/public/observations`` and ``GET /api/public/traces`` (page-based, legacy);
* ``POST /api/public/scores``, ``GET /api/public/v3/scores`` and ``/api/public/v2/scores``;
* ``GET/POST /api/public/v2/datasets`` and ``POST /api/public/dataset-items``.

Every answer is validated against ``langfuse-openapi.yml`` before it is sent, and every request
body tracegrade sends is validated too; problems land in :attr:`FakeLangfuse.violations`.
"""

from __future__ import annotations

import base64
import bisect
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import orjson

from tests.fakes._server import FakeRequest, FakeResponse, LoopbackServer
from tests.fakes.spec import OpenApiSpec, langfuse_spec

PUBLIC_KEY = "pk-lf-test-public"
SECRET_KEY = "sk-lf-test-secret-5b1f0e"
PROJECT_ID = "proj-tracegrade-test"

_FIELD_GROUPS = {
    "core": ("id", "traceId", "startTime", "endTime", "projectId", "parentObservationId", "type"),
    "basic": ("name", "level", "statusMessage", "version", "environment", "bookmarked",
              "public", "userId", "sessionId", "isRootObservation"),
    "time": ("completionStartTime", "createdAt", "updatedAt"),
    "io": ("input", "output"),
    "metadata": ("metadata",),
    "model": ("providedModelName", "internalModelId", "modelParameters", "modelId",
              "inputPrice", "outputPrice", "totalPrice"),
    "usage": ("usageDetails", "costDetails", "totalCost", "usagePricingTierName"),
    "prompt": ("promptId", "promptName", "promptVersion"),
    "metrics": ("latency", "timeToFirstToken"),
    "trace_context": ("tags", "release", "traceName"),
}
_ALWAYS = ("modelId", "inputPrice", "outputPrice", "totalPrice")
"""Required by ObservationV2 in every answer; null unless the ``model`` group was asked for."""


def iso(moment: datetime) -> str:
    """Langfuse's timestamp format: ISO 8601, milliseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(value: str) -> datetime:
    """A Langfuse timestamp as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def observation(
    index: int,
    start: datetime,
    *,
    trace_id: str | None = None,
    kind: str = "GENERATION",
    parent_id: str | None = None,
    environment: str = "production",
    release: str | None = "2026.11.1",
    level: str = "DEFAULT",
    status_message: str | None = None,
    updated_at: datetime | None = None,
    payload_chars: int = 0,
) -> dict[str, Any]:
    """A realistic observation in the v2 shape (every field group present)."""
    observation_id = f"obs-{index:07d}"
    end = start + timedelta(milliseconds=850)
    padding = "x" * payload_chars
    messages = [{"role": "system", "content": "You are a support agent."},
                {"role": "user", "content": f"Where is order {index}? {padding}"}]
    output = {"role": "assistant", "content": None,
              "tool_calls": [{"id": f"call_{index}", "type": "function",
                              "function": {"name": "lookup_order",
                                           "arguments": orjson.dumps({"order_id": index}).decode()
                                           }}]}
    if kind == "TOOL":
        messages_text = orjson.dumps({"order_id": index}).decode()
        output_text = orjson.dumps({"order_status": "shipped", "note": padding}).decode()
    else:
        messages_text = orjson.dumps(messages).decode()
        output_text = orjson.dumps(output).decode()
    is_generation = kind == "GENERATION"
    return {
        "id": observation_id,
        "traceId": trace_id or f"trace-{index // 3:07d}",
        "startTime": iso(start),
        "endTime": iso(end),
        "projectId": PROJECT_ID,
        "parentObservationId": parent_id,
        "type": kind,
        "isRootObservation": parent_id is None,
        "name": "ChatCompletion" if is_generation else "lookup_order",
        "level": level,
        "statusMessage": status_message,
        "version": None,
        "environment": environment,
        "bookmarked": False,
        "public": False,
        "userId": f"user-{index % 17}",
        "sessionId": f"session-{index % 29}",
        "completionStartTime": iso(start + timedelta(milliseconds=300)) if is_generation else None,
        "createdAt": iso(start + timedelta(seconds=1)),
        "updatedAt": iso(updated_at or start + timedelta(seconds=1)),
        "input": messages_text,
        "output": output_text,
        "metadata": {"customer_tier": "gold", "region": "eu-west-1"},
        "providedModelName": "gpt-4.1-mini" if is_generation else None,
        "internalModelId": "cm-gpt-4-1-mini" if is_generation else None,
        "modelParameters": {"temperature": 0.2} if is_generation else None,
        "modelId": "cm-gpt-4-1-mini" if is_generation else None,
        "inputPrice": "0.0000004" if is_generation else None,
        "outputPrice": "0.0000016" if is_generation else None,
        "totalPrice": None,
        "usageDetails": {"input": 120 + index % 50, "output": 30, "total": 150 + index % 50}
        if is_generation else {},
        "costDetails": {"input": 0.000048, "output": 0.000048, "total": 0.000096}
        if is_generation else {},
        "totalCost": 0.000096 if is_generation else None,
        "usagePricingTierName": None,
        "promptId": None,
        "promptName": None,
        "promptVersion": None,
        "latency": 0.85,
        "timeToFirstToken": 0.3 if is_generation else None,
        "traceName": "support-agent",
        "tags": ["support"],
        "release": release,
    }


def trace_of(observation_row: dict[str, Any]) -> dict[str, Any]:
    """The trace an observation belongs to, in the legacy traces API's shape."""
    return {
        "id": observation_row["traceId"],
        "timestamp": observation_row["startTime"],
        "name": observation_row["traceName"],
        "input": None,
        "output": None,
        "sessionId": observation_row["sessionId"],
        "release": observation_row["release"],
        "version": None,
        "userId": observation_row["userId"],
        "metadata": None,
        "tags": observation_row["tags"],
        "public": False,
        "environment": observation_row["environment"],
        "htmlPath": f"/project/{PROJECT_ID}/traces/{observation_row['traceId']}",
        "latency": 1.2,
        "totalCost": 0.0001,
        "observations": [],
        "scores": [],
    }


@dataclass
class FakeLangfuse:
    """The fake's state and behaviour; :attr:`server` serves it on 127.0.0.1."""

    v2_enabled: bool = True
    v3_scores_enabled: bool = True
    validate: bool = True
    """Check every answer and request body against the spec (off only in the benchmark)."""
    observations: dict[str, dict[str, Any]] = field(default_factory=dict)
    traces: dict[str, dict[str, Any]] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    score_posts: int = 0
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    dataset_items: dict[str, dict[str, Any]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    trace_filter_supported: bool = True
    """``GET /api/public/traces`` honours ``filter`` (self-hosted servers before October 2025
    ignore it and list the newest traces)."""
    repeat_boundary_row_once: bool = False
    """Serve the previous page's last row again on top of the next page, once."""
    on_page: Callable[[int], None] | None = None
    """Called after each observations page is built, with how many pages were served so far
    (a test changes the data there, between two pages of one pull)."""
    pages_served: int = 0

    def __post_init__(self) -> None:
        self.spec: OpenApiSpec | None = langfuse_spec() if self.validate else None
        self.server = LoopbackServer(self.handle)
        self._lock = threading.RLock()
        self._sorted: list[dict[str, Any]] | None = None
        self._keys: list[tuple[str, str, str]] = []
        self._last_served: dict[str, Any] | None = None

    # -- state ----------------------------------------------------------------------------------

    def add(self, *rows: dict[str, Any]) -> None:
        """Make observations visible (and their traces), as if just ingested."""
        with self._lock:
            for row in rows:
                self.observations[row["id"]] = row
                self.traces.setdefault(row["traceId"], trace_of(row))
            self._sorted = None

    def update(self, observation_id: str, **changes: Any) -> dict[str, Any]:
        """Change an observation; its ``updatedAt`` moves to now."""
        with self._lock:
            row = {**self.observations[observation_id], **changes,
                   "updatedAt": iso(datetime.now(tz=UTC))}
            self.observations[observation_id] = row
            self._sorted = None
            return row

    def add_annotation(self, score_id: str, name: str, value: Any, *, data_type: str = "BOOLEAN",
                       observation_id: str | None = None, trace_id: str | None = None,
                       comment: str | None = None, author: str | None = "reviewer-1") -> None:
        """A score a human gave in the Langfuse UI (source ANNOTATION)."""
        now = iso(datetime.now(tz=UTC))
        self.scores[score_id] = {
            "id": score_id, "name": name, "value": value, "dataType": data_type,
            "source": "ANNOTATION", "observationId": observation_id, "traceId": trace_id,
            "comment": comment, "authorUserId": author, "timestamp": now, "createdAt": now,
            "updatedAt": now, "environment": "production", "metadata": None, "configId": None,
            "queueId": None, "sessionId": None, "datasetRunId": None,
        }

    # -- dispatch -------------------------------------------------------------------------------

    def handle(self, request: FakeRequest) -> FakeResponse:
        """Answer one request (after the fault plan had its say)."""
        if not self._authorized(request):
            return FakeResponse(401, {"message": "Invalid credentials"})
        route = self._route(request)
        if route is None:
            return FakeResponse(404, {"message": "Not found"})
        template, handler = route
        if request.method == "POST" and self.spec is not None:
            problems = self.spec.check_request(template, "POST", request.json())
            if problems:
                self.violations.extend(problems)
                return FakeResponse(400, {"message": "; ".join(problems)})
        response = handler(request)
        if self.spec is not None and isinstance(response.body, dict | list):
            self.violations.extend(
                self.spec.check_response(template, request.method, response.status,
                                         response.body))
        return response

    def _authorized(self, request: FakeRequest) -> bool:
        expected = base64.b64encode(f"{PUBLIC_KEY}:{SECRET_KEY}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    def _route(self, request: FakeRequest) -> tuple[str, Any] | None:
        path, method = request.path, request.method
        routes: dict[tuple[str, str], tuple[str, Any]] = {
            ("GET", "/api/public/observations"): ("/api/public/observations",
                                                  self._observations_legacy),
            ("GET", "/api/public/traces"): ("/api/public/traces", self._traces),
            ("POST", "/api/public/scores"): ("/api/public/scores", self._create_score),
            ("GET", "/api/public/v2/scores"): ("/api/public/v2/scores", self._scores_v2),
            ("POST", "/api/public/v2/datasets"): ("/api/public/v2/datasets",
                                                  self._create_dataset),
            ("POST", "/api/public/dataset-items"): ("/api/public/dataset-items",
                                                    self._create_dataset_item),
        }
        if self.v2_enabled:
            routes[("GET", "/api/public/v2/observations")] = (
                "/api/public/v2/observations", self._observations_v2)
        if self.v3_scores_enabled:
            routes[("GET", "/api/public/v3/scores")] = ("/api/public/v3/scores", self._scores_v3)
        if method == "GET" and path.startswith("/api/public/traces/"):
            return "/api/public/traces/{traceId}", self._trace
        if method == "GET" and path.startswith("/api/public/v2/datasets/"):
            return "/api/public/v2/datasets/{datasetName}", self._get_dataset
        return routes.get((method, path))

    # -- observations ---------------------------------------------------------------------------

    def _ordered(self) -> tuple[list[tuple[str, str, str]], list[dict[str, Any]]]:
        """Keys and rows in ascending (startTime, traceId, id) order."""
        with self._lock:
            if self._sorted is None:
                self._sorted = sorted(self.observations.values(),
                                      key=lambda r: (r["startTime"], r["traceId"], r["id"]))
                self._keys = [(r["startTime"], r["traceId"], r["id"]) for r in self._sorted]
            return self._keys, self._sorted

    def _window(self, request: FakeRequest, before: tuple[str, str, str] | None = None,
                take: int | None = None) -> list[dict[str, Any]]:
        """The rows a request selects, newest first (at most ``take`` when given)."""
        keys, rows = self._ordered()
        start, end = request.param("fromStartTime"), request.param("toStartTime")
        low = bisect.bisect_left(keys, (iso(parse(start)),)) if start else 0
        high = bisect.bisect_left(keys, (iso(parse(end)),)) if end else len(keys)
        if before is not None:
            high = min(high, bisect.bisect_left(keys, before))
        environments = request.query.get("environment")
        kind, name = request.param("type"), request.param("name")
        if not (environments or kind or name):
            return rows[max(low, high - take) if take else low:high][::-1]
        return [row for row in rows[low:high][::-1]
                if (not environments or row["environment"] in environments)
                and (kind is None or row["type"] == kind)
                and (name is None or row["name"] == name)]

    def _observations_v2(self, request: FakeRequest) -> FakeResponse:
        limit = int(request.param("limit") or 50)
        if limit > 1000:
            return FakeResponse(400, {"message": "limit must be at most 1000"})
        cursor = request.param("cursor")
        before = None
        if cursor:
            position = orjson.loads(base64.b64decode(cursor))
            before = (iso(parse(position["lastStartTimeTo"])), position["lastTraceId"],
                      position["lastId"])
        rows = self._window(request, before, take=limit + 1)
        page = rows[:limit]
        groups = ["core", "basic"] if not request.param("fields") else [
            g.strip() for g in (request.param("fields") or "").split(",")]
        data = [_project(row, groups) for row in page]
        if cursor and self.repeat_boundary_row_once and self._last_served is not None:
            self.repeat_boundary_row_once = False
            data.insert(0, _project(self._last_served, groups))
        meta: dict[str, Any] = {}
        if len(rows) > limit:
            last = page[-1]
            meta["cursor"] = base64.b64encode(orjson.dumps({
                "lastStartTimeTo": last["startTime"], "lastTraceId": last["traceId"],
                "lastId": last["id"]})).decode()
        if page:
            self._last_served = page[-1]
        self._served_page()
        return FakeResponse(200, {"data": data, "meta": meta})

    def _served_page(self) -> None:
        self.pages_served += 1
        if self.on_page is not None:
            self.on_page(self.pages_served)

    def _observations_legacy(self, request: FakeRequest) -> FakeResponse:
        rows = self._window(request)
        page, limit = int(request.param("page") or 1), int(request.param("limit") or 50)
        chunk = rows[(page - 1) * limit:page * limit]
        total_pages = (len(rows) + limit - 1) // limit
        self._served_page()
        return FakeResponse(200, {
            "data": [_legacy(row) for row in chunk],
            "meta": {"page": page, "limit": limit, "totalItems": len(rows),
                     "totalPages": total_pages},
            "_deprecation": {"message": "Use GET /api/public/v2/observations",
                             "replacement": "GET /api/public/v2/observations"},
        })

    def _traces(self, request: FakeRequest) -> FakeResponse:
        # newest first, the API's default order
        traces = sorted(self.traces.values(), key=lambda trace: trace["timestamp"], reverse=True)
        filters = orjson.loads(request.param("filter") or "[]") \
            if self.trace_filter_supported else []
        for condition in filters:
            if condition.get("column") == "id" and condition.get("operator") == "any of":
                wanted = set(condition["value"])
                traces = [trace for trace in traces if trace["id"] in wanted]
        page, limit = int(request.param("page") or 1), int(request.param("limit") or 50)
        chunk = traces[(page - 1) * limit:page * limit]
        return FakeResponse(200, {
            "data": chunk,
            "meta": {"page": page, "limit": limit, "totalItems": len(traces),
                     "totalPages": (len(traces) + limit - 1) // limit},
        })

    def _trace(self, request: FakeRequest) -> FakeResponse:
        trace = self.traces.get(unquote(request.path.rsplit("/", 1)[1]))
        if trace is None:
            return FakeResponse(404, {"message": "Trace not found"})
        return FakeResponse(200, trace)

    # -- scores ---------------------------------------------------------------------------------

    def _create_score(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        if body.get("dataType") == "BOOLEAN" and body.get("value") not in (0, 1):
            return FakeResponse(400, {"message": "boolean scores take 1 or 0"})
        score_id = body.get("id") or str(uuid.uuid4())
        now = iso(datetime.now(tz=UTC))
        with self._lock:
            self.score_posts += 1
            self.scores[score_id] = {**body, "id": score_id, "source": body.get("source") or "API",
                                     "timestamp": now, "createdAt": now, "updatedAt": now}
        return FakeResponse(200, {"id": score_id})

    def _annotations(self, request: FakeRequest) -> list[dict[str, Any]]:
        source = request.param("source")
        return [s for s in self.scores.values()
                if source is None or s.get("source", "").upper() == source.upper()]

    def _scores_v3(self, request: FakeRequest) -> FakeResponse:
        limit = int(request.param("limit") or 50)
        if limit > 100:
            return FakeResponse(400, {"message": "limit must be at most 100"})
        rows = self._annotations(request)
        start = int(base64.urlsafe_b64decode(request.param("cursor") or "MA==").decode())
        chunk = rows[start:start + limit]
        meta: dict[str, Any] = {"limit": limit}
        if start + limit < len(rows):
            meta["cursor"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
        return FakeResponse(200, {"data": [_score_v3(s) for s in chunk], "meta": meta})

    def _scores_v2(self, request: FakeRequest) -> FakeResponse:
        rows = self._annotations(request)
        page, limit = int(request.param("page") or 1), int(request.param("limit") or 50)
        chunk = rows[(page - 1) * limit:page * limit]
        return FakeResponse(200, {
            "data": [_score_v2(s) for s in chunk],
            "meta": {"page": page, "limit": limit, "totalItems": len(rows),
                     "totalPages": (len(rows) + limit - 1) // limit},
        })

    # -- datasets -------------------------------------------------------------------------------

    def _get_dataset(self, request: FakeRequest) -> FakeResponse:
        dataset = self.datasets.get(unquote(request.path.rsplit("/", 1)[1]))
        if dataset is None:
            return FakeResponse(404, {"message": "Dataset not found"})
        return FakeResponse(200, dataset)

    def _create_dataset(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        now = iso(datetime.now(tz=UTC))
        dataset = self.datasets.get(body["name"]) or {
            "id": f"ds-{uuid.uuid4().hex[:12]}", "name": body["name"], "projectId": PROJECT_ID,
            "createdAt": now}
        dataset.update({"description": body.get("description"),
                        "metadata": body.get("metadata"), "inputSchema": None,
                        "expectedOutputSchema": None, "updatedAt": now})
        self.datasets[body["name"]] = dataset
        return FakeResponse(200, dataset)

    def _create_dataset_item(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        dataset = self.datasets.get(body["datasetName"])
        if dataset is None:
            return FakeResponse(404, {"message": f"dataset {body['datasetName']} not found"})
        now = iso(datetime.now(tz=UTC))
        item_id = body.get("id") or str(uuid.uuid4())
        item = {"id": item_id, "status": body.get("status") or "ACTIVE",
                "input": body.get("input"), "expectedOutput": body.get("expectedOutput"),
                "metadata": body.get("metadata"), "sourceTraceId": body.get("sourceTraceId"),
                "sourceObservationId": body.get("sourceObservationId"),
                "datasetId": dataset["id"], "datasetName": dataset["name"],
                "createdAt": self.dataset_items.get(item_id, {}).get("createdAt", now),
                "updatedAt": now, "mediaReferences": []}
        self.dataset_items[item_id] = item
        return FakeResponse(200, item)


def _project(row: dict[str, Any], groups: list[str]) -> dict[str, Any]:
    keys = [*_FIELD_GROUPS["core"],
            *(key for group in groups if group != "core" for key in _FIELD_GROUPS.get(group, ()))]
    projected = {key: row.get(key) for key in keys}
    for key in _ALWAYS:
        projected.setdefault(key, None)
    return projected


def _legacy(row: dict[str, Any]) -> dict[str, Any]:
    usage = row["usageDetails"] or {}
    input_price = float(row["inputPrice"]) if row["inputPrice"] else None
    output_price = float(row["outputPrice"]) if row["outputPrice"] else None
    return {
        "id": row["id"], "traceId": row["traceId"], "type": row["type"], "name": row["name"],
        "startTime": row["startTime"], "endTime": row["endTime"],
        "completionStartTime": row["completionStartTime"], "model": row["providedModelName"],
        "modelParameters": row["modelParameters"], "input": row["input"],
        "version": row["version"], "metadata": row["metadata"], "output": row["output"],
        "usage": {"input": usage.get("input", 0), "output": usage.get("output", 0),
                  "total": usage.get("total", 0), "unit": "TOKENS"},
        "level": row["level"], "statusMessage": row["statusMessage"],
        "parentObservationId": row["parentObservationId"], "promptId": row["promptId"],
        "usageDetails": row["usageDetails"] or {}, "costDetails": row["costDetails"] or {},
        "environment": row["environment"], "promptName": row["promptName"],
        "promptVersion": row["promptVersion"], "modelId": row["modelId"],
        "inputPrice": input_price, "outputPrice": output_price, "totalPrice": None,
        "calculatedInputCost": (row["costDetails"] or {}).get("input"),
        "calculatedOutputCost": (row["costDetails"] or {}).get("output"),
        "calculatedTotalCost": row["totalCost"], "latency": row["latency"],
        "timeToFirstToken": row["timeToFirstToken"], "createdAt": row["createdAt"],
        "updatedAt": row["updatedAt"],
    }


def _score_v3(score: dict[str, Any]) -> dict[str, Any]:
    value = score["value"]
    if score["dataType"] == "BOOLEAN":
        value = bool(value)
    if score.get("observationId"):
        subject = {"kind": "observation", "id": score["observationId"],
                   "traceId": score.get("traceId")}
    else:
        subject = {"kind": "trace", "id": score.get("traceId")}
    return {
        "id": score["id"], "projectId": PROJECT_ID, "name": score["name"], "value": value,
        "dataType": score["dataType"], "source": score["source"],
        "timestamp": score["timestamp"], "environment": score.get("environment") or "default",
        "createdAt": score["createdAt"], "updatedAt": score["updatedAt"],
        "comment": score.get("comment"), "configId": score.get("configId"),
        "metadata": score.get("metadata"), "authorUserId": score.get("authorUserId"),
        "queueId": score.get("queueId"), "subject": subject,
    }


def _score_v2(score: dict[str, Any]) -> dict[str, Any]:
    value = score["value"]
    row = {
        "id": score["id"], "traceId": score.get("traceId"), "sessionId": None,
        "observationId": score.get("observationId"), "datasetRunId": None,
        "name": score["name"], "source": score["source"], "timestamp": score["timestamp"],
        "createdAt": score["createdAt"], "updatedAt": score["updatedAt"],
        "authorUserId": score.get("authorUserId"), "comment": score.get("comment"),
        "metadata": score.get("metadata"), "configId": score.get("configId"),
        "queueId": score.get("queueId"), "environment": score.get("environment") or "default",
        "dataType": score["dataType"],
    }
    if score["dataType"] == "BOOLEAN":
        row.update(value=float(value), stringValue="True" if value else "False")
    elif score["dataType"] == "CATEGORICAL":
        row.update(value=0.0, stringValue=str(value))  # no config: the category maps to 0
    else:
        row["value"] = float(value)
    return row
