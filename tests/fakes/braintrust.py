"""A fake Braintrust server: project logs (BTQL and fetch), feedback, datasets, review scores.

Rows are kept as versions: every insert or update of a row id gets a new, larger ``_xact_id``
and a new ``_pagination_key``. ``POST /btql`` answers the SQL tracegrade sends (``SELECT ...
FROM project_logs('<id>') WHERE created >= '...' AND created < '...' ORDER BY _pagination_key
LIMIT n [OFFSET '<cursor>']``) with the latest version of each row; a row updated while a pull
pages through moves past the cursor and comes back on a later page, as in Braintrust.
``POST /v1/project_logs/{id}/fetch`` pages newest first over every version, older versions
included, as its documentation warns.

Answers are validated against ``braintrust-openapi.yaml`` (``/btql`` is not in the spec: its
rows are validated as ``ProjectLogsEvent``); request bodies too.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes._server import FakeRequest, FakeResponse, LoopbackServer
from tests.fakes.spec import OpenApiSpec, braintrust_spec

API_KEY = "sk-bt-test-key-8d2c71"
ORG_ID = "5d0f6c1e-3a8b-4f2e-9c71-0b6a2d4e8f10"
ORG_NAME = "acme"
PROJECT_ID = "9b2e4c6a-1f3d-4b5e-8a7c-2d4f6b8e0a1c"
PROJECT_NAME = "support-agent"
USER_ID = "0e1d2c3b-4a59-4687-9a8b-7c6d5e4f3a2b"

_PROJECT_LOGS = re.compile(r"FROM project_logs\('((?:[^']|'')*)'\)")
_CREATED = re.compile(r"created >= '([^']*)' AND created < '([^']*)'")
_LIMIT = re.compile(r"LIMIT (\d+)")
_OFFSET = re.compile(r"OFFSET '((?:[^']|'')*)'")


_RESULTS = "/btql-results/"
"""Where the fake keeps BTQL answers it redirects to."""


def iso(moment: datetime) -> str:
    """A timestamp as Braintrust writes ``created``."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse(value: str) -> datetime:
    """A ``created`` timestamp as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def log_row(
    index: int,
    created: datetime,
    *,
    span_type: str = "llm",
    purpose: str | None = None,
    root: str | None = None,
    parent: str | None = None,
    error: Any = None,
    release: str = "2026.11.1",
) -> dict[str, Any]:
    """A realistic project-logs row (without ``_xact_id``/``_pagination_key``, set on insert)."""
    span_id = f"span-{index:07d}"
    start = created.timestamp() - 1.0
    attributes: dict[str, Any] = {"name": "Chat Completion" if span_type == "llm"
                                  else "lookup_order", "type": span_type}
    if purpose:
        attributes["purpose"] = purpose
    return {
        "id": f"row-{index:07d}",
        "created": iso(created),
        "org_id": ORG_ID,
        "project_id": PROJECT_ID,
        "log_id": "g",
        "input": [{"role": "user", "content": f"Where is order {index}?"}]
        if span_type == "llm" else {"order_id": index},
        "output": {"role": "assistant", "content": f"Order {index} has shipped."}
        if span_type == "llm" else {"order_status": "shipped"},
        "expected": None,
        "error": error,
        "scores": None,
        "metadata": {"model": "gpt-4.1-mini", "release": release, "environment": "production"}
        if span_type == "llm" else {"release": release},
        "tags": ["support"],
        "metrics": {"start": start, "end": start + 0.8,
                    **({"prompt_tokens": 120, "completion_tokens": 30, "tokens": 150}
                       if span_type == "llm" else {})},
        "context": None,
        "span_id": span_id,
        "span_parents": [parent] if parent else [],
        "root_span_id": root or span_id,
        "is_root": parent is None,
        "span_attributes": attributes,
    }


@dataclass
class FakeBraintrust:
    """The fake's state and behaviour; :attr:`server` serves it on 127.0.0.1."""

    btql_enabled: bool = True
    cursor_in_header: bool = False
    """Send the BTQL cursor as ``x-bt-cursor`` instead of in the body."""
    btql_redirect: str | None = None
    """Answer ``/btql`` with a 303 to a stored result object, as Braintrust does for large
    answers: ``"redirect"`` puts the cursor in the 303's ``x-bt-cursor`` header, ``"object"``
    in the object's ``x-amz-meta-bt_cursor`` metadata header."""
    other_org_projects: list[dict[str, Any]] = field(default_factory=list)
    """Projects of another organization (``org_name`` ``other-org``) the API key also reaches."""
    btql_cursor_lost: bool = False
    """Answer ``/btql`` without any cursor (as a proxy that dropped it would)."""
    validate: bool = True
    versions: list[dict[str, Any]] = field(default_factory=list)
    feedback: dict[str, dict[str, Any]] = field(default_factory=dict)
    feedback_posts: int = 0
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    dataset_rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    project_scores: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    on_page: Callable[[int], None] | None = None
    pages_served: int = 0

    def __post_init__(self) -> None:
        self.spec: OpenApiSpec | None = braintrust_spec() if self.validate else None
        self.server = LoopbackServer(self.handle)
        self._lock = threading.RLock()
        self._xact = 1_000_192_656_880_881_000
        self._latest: dict[str, dict[str, Any]] | None = None
        self._results: dict[str, FakeResponse] = {}

    # -- state ----------------------------------------------------------------------------------

    def insert(self, *rows: dict[str, Any]) -> list[dict[str, Any]]:
        """Log rows (or new versions of rows): each gets the next ``_xact_id``."""
        stored = []
        with self._lock:
            for row in rows:
                self._xact += 1
                version = {**row, "_xact_id": str(self._xact),
                           "_pagination_key": f"p{self._xact:022d}"}
                self.versions.append(version)
                stored.append(version)
            self._latest = None
        return stored

    def update(self, row_id: str, **changes: Any) -> dict[str, Any]:
        """A new version of a row (as a merge from the SDK would make)."""
        return self.insert({**self.latest()[row_id], **changes})[0]

    def latest(self) -> dict[str, dict[str, Any]]:
        """The newest version of every row, by id."""
        with self._lock:
            if self._latest is None:
                latest: dict[str, dict[str, Any]] = {}
                for version in self.versions:
                    latest[version["id"]] = version
                self._latest = latest
            return self._latest

    def add_review_score(self, name: str, score_type: str = "categorical") -> None:
        """A human-review score configured in the project."""
        self.project_scores.append({
            "id": str(uuid.uuid4()), "project_id": PROJECT_ID, "user_id": USER_ID,
            "created": iso(datetime.now(tz=UTC)), "name": name, "description": None,
            "score_type": score_type, "categories": None, "config": None, "position": None})

    # -- dispatch -------------------------------------------------------------------------------

    def handle(self, request: FakeRequest) -> FakeResponse:
        """Answer one request (after the fault plan had its say)."""
        if request.method == "GET" and request.path.startswith(_RESULTS):
            # A stored BTQL answer behind a signed URL: no API key needed.
            stored = self._results.pop(request.path[len(_RESULTS):], None)
            return stored or FakeResponse(404, {"error": "no such result"})
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return FakeResponse(401, {"error": "Invalid API key"})
        route = self._route(request)
        if route is None:
            return FakeResponse(404, {"error": "Not found"})
        template, handler = route
        if request.method == "POST" and self.spec is not None and template != "/btql":
            problems = self.spec.check_request(template, "POST", request.json())
            if problems:
                self.violations.extend(problems)
                return FakeResponse(400, {"error": "; ".join(problems)})
        response = handler(request)
        if self.spec is not None and response.status == 200:
            self.violations.extend(self._check(template, request.method, response.body))
        return response

    def _check(self, template: str, method: str, body: Any) -> list[str]:
        assert self.spec is not None
        if template != "/btql":
            return self.spec.check_response(template, method, 200, body)
        problems = [] if isinstance(body.get("data"), list) else ["/btql: no data list"]
        for row in body.get("data") or []:
            problems.extend(self.spec.check_component("ProjectLogsEvent", row))
        return problems

    def _route(self, request: FakeRequest) -> tuple[str, Any] | None:
        path, method = request.path, request.method
        logs = f"/v1/project_logs/{PROJECT_ID}"
        routes: dict[tuple[str, str], tuple[str, Any]] = {
            ("GET", "/v1/project"): ("/v1/project", self._projects),
            ("POST", f"{logs}/fetch"): ("/v1/project_logs/{project_id}/fetch", self._fetch),
            ("POST", f"{logs}/feedback"): ("/v1/project_logs/{project_id}/feedback",
                                           self._feedback),
            ("POST", "/v1/dataset"): ("/v1/dataset", self._create_dataset),
            ("GET", "/v1/project_score"): ("/v1/project_score", self._project_scores),
        }
        if self.btql_enabled:
            routes[("POST", "/btql")] = ("/btql", self._btql)
        if method == "POST" and path.startswith("/v1/dataset/") and path.endswith("/insert"):
            return "/v1/dataset/{dataset_id}/insert", self._insert_dataset
        return routes.get((method, path))

    # -- logs -----------------------------------------------------------------------------------

    def _projects(self, request: FakeRequest) -> FakeResponse:
        name, org = request.param("project_name"), request.param("org_name")
        project = {"id": PROJECT_ID, "org_id": ORG_ID, "name": PROJECT_NAME,
                   "description": None, "created": "2026-01-05T10:00:00.000Z",
                   "deleted_at": None, "user_id": USER_ID}
        projects = [project, *self.other_org_projects]
        return FakeResponse(200, {"objects": [
            p for p in projects if name in (None, p["name"])
            and org in (None, ORG_NAME if p["org_id"] == ORG_ID else "other-org")]})

    def _btql(self, request: FakeRequest) -> FakeResponse:
        body = request.json() or {}
        query = str(body.get("query") or "")
        self.queries.append(query)
        project = _PROJECT_LOGS.search(query)
        created = _CREATED.search(query)
        if project is None or created is None or "ORDER BY _pagination_key" not in query:
            return FakeResponse(400, {"error": "expected project_logs('<id>') with a created "
                                               "range, ordered by _pagination_key"})
        if project.group(1) != PROJECT_ID:
            return FakeResponse(403, {"error": "no access to that project"})
        start, end = parse(created.group(1)), parse(created.group(2))
        limit_match = _LIMIT.search(query)
        limit = int(limit_match.group(1)) if limit_match else 1000
        offset = _OFFSET.search(query)
        after = offset.group(1).replace("''", "'") if offset else ""
        rows = sorted((row for row in self.latest().values()
                       if start <= parse(row["created"]) < end and row["_pagination_key"] > after),
                      key=lambda row: row["_pagination_key"])
        page = rows[:limit]
        cursor = page[-1]["_pagination_key"] if len(page) == limit else None
        self._served_page()
        if self.btql_cursor_lost:
            return FakeResponse(200, {"data": page})
        if self.btql_redirect is not None:
            if self.spec is not None:  # the 303 itself is not checked: check the rows here
                self.violations.extend(self._check("/btql", "POST", {"data": page}))
            token = uuid.uuid4().hex
            on_object = self.btql_redirect == "object"
            self._results[token] = FakeResponse(
                200, {"data": page}, {"x-amz-meta-bt_cursor": cursor} if cursor and on_object
                else {})
            headers = {"Location": f"{_RESULTS}{token}"}
            if cursor and not on_object:
                headers["x-bt-cursor"] = cursor
            return FakeResponse(303, b"", headers)
        if self.cursor_in_header:
            return FakeResponse(200, {"data": page},
                                {"x-bt-cursor": cursor} if cursor else {})
        return FakeResponse(200, {"data": page, "cursor": cursor})

    def _fetch(self, request: FakeRequest) -> FakeResponse:
        body = request.json() or {}
        limit = int(body.get("limit") or 1000)
        start = int(body.get("cursor") or 0)
        newest_first = sorted(self.versions, key=lambda v: int(v["_xact_id"]), reverse=True)
        page = newest_first[start:start + limit]
        self._served_page()
        answer: dict[str, Any] = {"events": page}
        if page:
            answer["cursor"] = str(start + len(page))
        return FakeResponse(200, answer)

    def _served_page(self) -> None:
        self.pages_served += 1
        if self.on_page is not None:
            self.on_page(self.pages_served)

    def _feedback(self, request: FakeRequest) -> FakeResponse:
        items = request.json()["feedback"]
        latest = self.latest()
        unknown = [item["id"] for item in items if item["id"] not in latest]
        if unknown:
            return FakeResponse(400, {"error": f"unknown row ids: {unknown}"})
        with self._lock:
            self.feedback_posts += 1
            for item in items:
                record = self.feedback.setdefault(item["id"], {"scores": {}, "comments": []})
                record["scores"].update(item.get("scores") or {})
                if item.get("comment"):
                    record["comments"].append(item["comment"])
                record["metadata"] = item.get("metadata")
                if item.get("scores"):
                    # Feedback merges the scores into the row: a new version, a new _xact_id,
                    # the same created.
                    row = latest[item["id"]]
                    self.update(item["id"], scores={**(row.get("scores") or {}),
                                                    **item["scores"]})
        return FakeResponse(200, {"status": "success"})

    def _project_scores(self, request: FakeRequest) -> FakeResponse:
        return FakeResponse(200, {"objects": [s for s in self.project_scores
                                              if request.param("project_id") in (None,
                                                                                 PROJECT_ID)]})

    # -- datasets -------------------------------------------------------------------------------

    def _create_dataset(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        key = f"{body['project_id']}/{body['name']}"
        dataset = self.datasets.get(key) or {
            "id": str(uuid.uuid4()), "project_id": body["project_id"], "name": body["name"],
            "description": body.get("description"), "created": iso(datetime.now(tz=UTC)),
            "deleted_at": None, "user_id": USER_ID, "tags": None, "metadata": None,
            "url_slug": body["name"].lower().replace(" ", "-")}
        self.datasets[key] = dataset
        return FakeResponse(200, dataset)

    def _insert_dataset(self, request: FakeRequest) -> FakeResponse:
        dataset_id = request.path.split("/")[3]
        if dataset_id not in {d["id"] for d in self.datasets.values()}:
            return FakeResponse(404, {"error": "no such dataset"})
        rows = self.dataset_rows.setdefault(dataset_id, {})
        ids = []
        for event in request.json()["events"]:
            event_id = event.get("id") or str(uuid.uuid4())
            rows[event_id] = event
            ids.append(event_id)
        return FakeResponse(200, {"row_ids": ids})


def minutes_ago(minutes: float) -> datetime:
    """A moment in the recent past."""
    return datetime.now(tz=UTC) - timedelta(minutes=minutes)
