"""Langfuse: read observations incrementally, and the REST calls the exporters make.

Reading uses ``GET /api/public/v2/observations`` (cursor pagination, newest first, the field
groups tracegrade maps, ``fromStartTime``/``toStartTime``). A self-hosted Langfuse v3 answers 404
there; the reader then falls back to the page-based ``GET /api/public/observations`` and looks up
each page's traces with ``GET /api/public/traces`` for their release, tags, user and session.

Observations Langfuse's own LLM-as-a-judge evaluators produce (environment
``langfuse-llm-as-a-judge``) are skipped: they grade the application, they are not part of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import quote

import orjson
from pydantic import Field, SecretStr, ValidationError

from tracegrade.sources._base import IngestProblem
from tracegrade.sources._http import (
    HttpClient,
    RemoteRejected,
    RemoteUnavailable,
    UnexpectedResponse,
)
from tracegrade.sources._langfuse_map import observation_to_span
from tracegrade.sources._remote import (
    Page,
    RemoteSourceConfig,
    Window,
    newest_per_key,
    optional_timestamp,
)
from tracegrade.sources.conventions import describe_error
from tracegrade.spans import JSONValue

CLOUD_HOSTS = {
    "eu": "https://cloud.langfuse.com",
    "us": "https://us.cloud.langfuse.com",
    "hipaa": "https://hipaa.cloud.langfuse.com",
}
PLAN_REQUESTS_PER_MINUTE = {"hobby": 20.0, "core": 100.0, "pro": 1000.0}
"""Langfuse Cloud's documented per-organization limit for its general API, per plan
(langfuse.com/faq/all/api-limits). Self-hosted Langfuse has no limit of its own."""

V2_FIELDS = "core,basic,time,io,metadata,model,usage,prompt,metrics,trace_context"
JUDGE_ENVIRONMENT = "langfuse-llm-as-a-judge"
_TRACE_LOOKUP_CHUNK = 50
_TRACE_CACHE_LIMIT = 20_000



class LangfuseSourceConfig(RemoteSourceConfig):
    """A Langfuse project (Cloud or self-hosted), read with the project's API keys."""

    type: Literal["langfuse"]
    host: str = CLOUD_HOSTS["eu"]
    """``https://cloud.langfuse.com`` (EU), ``https://us.cloud.langfuse.com`` (US), or yours."""
    public_key: str = Field(min_length=1)
    secret_key: SecretStr
    api: Literal["auto", "v2", "legacy"] = "auto"
    """``auto`` tries the v2 observations API and falls back to the legacy one on a 404."""
    plan: Literal["hobby", "core", "pro"] | None = None
    """Langfuse Cloud plan, for the default request rate (hobby when unset on Cloud)."""
    environments: list[str] = Field(default_factory=list)
    """Only these environments (all when empty)."""
    observation_type: str | None = None
    """Only observations of this type (e.g. ``GENERATION``)."""
    observation_name: str | None = None
    """Only observations with this name."""
    skip_environments: list[str] = Field(default_factory=lambda: [JUDGE_ENVIRONMENT])
    expand_metadata: list[str] = Field(default_factory=list)
    """Metadata keys to return in full (Langfuse truncates metadata values at 200 characters)."""
    legacy_page_size: int = Field(default=100, ge=1, le=1000)

    def requests_per_minute(self) -> float | None:
        """The documented rate limit for this host and plan (``None``: self-hosted, no limit)."""
        if self.http.requests_per_minute:
            return self.http.requests_per_minute
        if self.plan:
            return PLAN_REQUESTS_PER_MINUTE[self.plan]
        is_cloud = self.host.rstrip("/").endswith("langfuse.com")
        return PLAN_REQUESTS_PER_MINUTE["hobby"] if is_cloud else None


class LangfuseApi:
    """The Langfuse public REST calls tracegrade makes, through the one HTTP policy."""

    def __init__(self, config: LangfuseSourceConfig, client: HttpClient | None = None) -> None:
        self.config = config
        secret = config.secret_key.get_secret_value()
        self.http = client or HttpClient(
            config.host,
            service=f"langfuse ({config.name})",
            policy=config.http,
            default_rpm=config.requests_per_minute(),
            auth=(config.public_key, secret),
            secrets=[secret],
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a JSON resource."""
        return self.http.request_json("GET", path, params=params)[0]

    def post(self, path: str, body: Any) -> Any:
        """POST a JSON body; returns the parsed answer."""
        return self.http.request_json("POST", path, json=body)[0]

    def observations_v2(self, params: dict[str, Any]) -> Any:
        """``GET /api/public/v2/observations``."""
        return self.get("/api/public/v2/observations", params)

    def observations_legacy(self, params: dict[str, Any]) -> Any:
        """``GET /api/public/observations`` (self-hosted v3 and older)."""
        return self.get("/api/public/observations", params)

    def traces(self, params: dict[str, Any]) -> Any:
        """``GET /api/public/traces``."""
        return self.get("/api/public/traces", params)

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """``GET /api/public/traces/{traceId}`` (core fields), or ``None`` when it is gone."""
        try:
            body = self.get(f"/api/public/traces/{quote(trace_id, safe='')}", {"fields": "core"})
        except RemoteRejected as error:
            if error.not_found:
                return None
            raise
        return body if isinstance(body, dict) else None

    def create_score(self, score: dict[str, Any]) -> Any:
        """``POST /api/public/scores``; a score with an existing ``id`` is updated."""
        return self.post("/api/public/scores", score)

    def dataset(self, name: str) -> Any | None:
        """``GET /api/public/v2/datasets/{name}``, or ``None`` when it does not exist."""
        try:
            return self.get(f"/api/public/v2/datasets/{quote(name, safe='')}")
        except RemoteRejected as error:
            if error.not_found:
                return None
            raise


class LangfuseReader:
    """Reads a Langfuse project's observations window by window, page by page."""

    version_attribute = "langfuse.updated_at"

    def __init__(self, config: LangfuseSourceConfig, api: LangfuseApi | None = None) -> None:
        self.config = config
        self.name = config.name
        self.api: str = config.api if config.api != "auto" else "v2"
        self._langfuse = api or LangfuseApi(config)
        self._traces: dict[str, dict[str, Any]] = {}
        self._trace_filter_ignored = False
        self.mark: JSONValue = None
        """Unused: Langfuse's cursors need nothing carried between windows."""

    def close(self) -> None:
        """Close the HTTP connections."""
        self._langfuse.close()

    def version_key(self, value: JSONValue) -> Any:
        """Versions are ``updatedAt`` timestamps; compare them as instants."""
        return optional_timestamp(value, "updatedAt")

    def read(self, window: Window, resume: JSONValue) -> Iterator[Page]:
        """Read the window's observations, newest first, after ``resume``."""
        state = resume if isinstance(resume, dict) else {}
        mode = state.get("api") or (None if self.config.api == "auto" else self.config.api)
        if mode == "legacy":
            yield from self._read_legacy(window, int(state.get("page") or 1))
            return
        cursor = state.get("cursor")
        try:
            body = self._v2_page(window, cursor)
        except RemoteRejected as error:
            if not (error.not_found and mode is None):
                raise
            # Self-hosted Langfuse v3 has no v2 observations API.
            yield from self._read_legacy(window, 1)
            return
        self.api = "v2"
        yield from self._read_v2(window, body, cursor)

    # -- v2: cursor pages ---------------------------------------------------------------------

    def _read_v2(self, window: Window, body: Any, cursor: Any) -> Iterator[Page]:
        while True:
            rows = _rows(body, "data")
            next_cursor = _meta(body).get("cursor") or None
            if next_cursor is not None and next_cursor == cursor:
                raise RemoteUnavailable(f"langfuse ({self.name}): the v2 observations cursor "
                                        "did not advance", service=f"langfuse ({self.name})")
            resume = {"api": "v2", "cursor": next_cursor} if next_cursor else None
            yield self._page(rows, {}, resume)
            if resume is None:
                return
            cursor = next_cursor
            body = self._v2_page(window, cursor)

    def _v2_page(self, window: Window, cursor: Any) -> Any:
        config = self.config
        params: dict[str, Any] = {
            "fields": V2_FIELDS,
            "limit": config.page_size,
            "fromStartTime": window.start,
            "toStartTime": window.end,
            "environment": config.environments or None,
            "type": config.observation_type,
            "name": config.observation_name,
            "expandMetadata": ",".join(config.expand_metadata) or None,
            "cursor": cursor,
        }
        return self._langfuse.observations_v2(params)

    # -- legacy: numbered pages plus trace lookups --------------------------------------------

    def _read_legacy(self, window: Window, page: int) -> Iterator[Page]:
        self.api = "legacy"
        config = self.config
        while True:
            body = self._langfuse.observations_legacy({
                "page": page,
                "limit": config.legacy_page_size,
                "fromStartTime": window.start,
                "toStartTime": window.end,
                "environment": config.environments or None,
                "type": config.observation_type,
                "name": config.observation_name,
            })
            rows = _rows(body, "data")
            total_pages = _meta(body).get("totalPages")
            more = bool(rows) and isinstance(total_pages, int) and page < total_pages
            resume = {"api": "legacy", "page": page + 1} if more else None
            yield self._page(rows, self._traces_of(rows), resume)
            if resume is None:
                return
            page += 1

    def _traces_of(self, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The traces of a page's observations: from the cache, else looked up in chunks.

        The lookup filters ``GET /api/public/traces`` by id. Self-hosted servers older than
        that filter ignore it and answer with the newest traces instead; then (and for any id
        a filtered answer lacks) each missing trace is read with ``GET
        /api/public/traces/{traceId}``.
        """
        needed = {r["traceId"] for r in rows if isinstance(r.get("traceId"), str)}
        if len(self._traces) > _TRACE_CACHE_LIMIT:
            self._traces = {key: trace for key, trace in self._traces.items() if key in needed}
        wanted = sorted(needed - set(self._traces))
        for start in range(0, len(wanted), _TRACE_LOOKUP_CHUNK):
            chunk = wanted[start:start + _TRACE_LOOKUP_CHUNK]
            if not self._trace_filter_ignored:
                trace_filter = [{"type": "stringOptions", "column": "id",
                                 "operator": "any of", "value": chunk}]
                body = self._langfuse.traces({"fields": "core", "limit": 100,
                                              "filter": orjson.dumps(trace_filter).decode()})
                for trace in _rows(body, "data"):
                    if isinstance(trace.get("id"), str):
                        self._traces[trace["id"]] = trace
                        if trace["id"] not in chunk:
                            self._trace_filter_ignored = True
            for trace_id in chunk:
                if trace_id not in self._traces:
                    found = self._langfuse.trace(trace_id)
                    if found is not None:
                        self._traces[trace_id] = found
        return {key: self._traces[key] for key in needed if key in self._traces}

    # -- mapping a page -----------------------------------------------------------------------

    def _page(self, rows: list[dict[str, Any]], traces: dict[str, dict[str, Any]],
              resume: JSONValue) -> Page:
        page = Page(spans=[], resume=resume, rows=len(rows))
        skip = set(self.config.skip_environments)
        for row in newest_per_key(rows, "id", _updated_at):
            if row.get("environment") in skip:
                page.skipped += 1
                continue
            try:
                trace = traces.get(str(row.get("traceId")))
                page.spans.append(observation_to_span(row, self.name, trace))
            except (ValueError, TypeError, ValidationError) as error:
                page.problems.append(IngestProblem(
                    f"langfuse {self.name}: observation {row.get('id')!r}", describe_error(error)))
        return page


def _updated_at(row: dict[str, Any]) -> str:
    value = row.get("updatedAt")
    return value if isinstance(value, str) else ""


def _rows(body: Any, key: str) -> list[dict[str, Any]]:
    rows = body.get(key) if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise UnexpectedResponse(f"langfuse: the response has no {key!r} list",
                                 service="langfuse")
    return [row for row in rows if isinstance(row, dict)]


def _meta(body: Any) -> dict[str, Any]:
    meta = body.get("meta") if isinstance(body, dict) else None
    return meta if isinstance(meta, dict) else {}


