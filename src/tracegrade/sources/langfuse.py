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
from tracegrade.sources._remote import (
    Page,
    RemoteSourceConfig,
    Window,
    newest_per_key,
    optional_timestamp,
    parse_timestamp,
)
from tracegrade.sources.conventions import describe_error
from tracegrade.spans import JSONValue, Span, SpanKind, Status, StatusCode, parse_json_string

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

OBSERVATION_KINDS = {
    "GENERATION": SpanKind.LLM,
    "TOOL": SpanKind.TOOL,
    "RETRIEVER": SpanKind.RETRIEVER,
    "AGENT": SpanKind.AGENT,
    "CHAIN": SpanKind.CHAIN,
    "EMBEDDING": SpanKind.EMBEDDING,
    "GUARDRAIL": SpanKind.GUARDRAIL,
    "EVALUATOR": SpanKind.OTHER,
    "SPAN": SpanKind.OTHER,
    "EVENT": SpanKind.OTHER,
}
"""Langfuse observation types to span kinds (EVALUATOR has no kind of its own)."""


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


def observation_to_span(
    observation: dict[str, Any], source: str, trace: dict[str, Any] | None = None
) -> Span:
    """Map one Langfuse observation (v2 or legacy shape) to a span.

    Args:
        observation: The observation as the API returned it.
        source: The tracegrade source name the span is stored under.
        trace: The observation's trace (legacy API only: release, tags, user, session).

    Returns:
        The span: ``GENERATION`` becomes ``llm``; ``level: ERROR`` with its ``statusMessage``
        an error status; ``input``/``output`` strings holding JSON are parsed.

    Raises:
        ValueError: the observation lacks an id or a start time, or a field is malformed.
        pydantic.ValidationError: the mapped values do not make a valid span.
    """
    observation_id = observation.get("id")
    if not isinstance(observation_id, str) or not observation_id:
        raise ValueError("observation has no id")
    trace = trace or {}
    kind = OBSERVATION_KINDS.get(str(observation.get("type") or "").upper(), SpanKind.OTHER)
    output = parse_json_string(observation.get("output"))
    usage = _usage(observation)
    attributes = _attributes(observation, trace)
    if kind is SpanKind.LLM and (calls := _tool_calls(output)) is not None:
        attributes["tool_calls"] = calls
    return Span(
        source=source,
        span_id=observation_id,
        trace_id=observation.get("traceId") or observation_id,
        parent_id=observation.get("parentObservationId") or None,
        name=observation.get("name") or "",
        kind=kind,
        start_time=parse_timestamp(observation.get("startTime"), "startTime"),
        end_time=optional_timestamp(observation.get("endTime"), "endTime"),
        status=_status(observation),
        input=parse_json_string(observation.get("input")),
        output=output,
        model=observation.get("providedModelName") or observation.get("model") or None,
        input_tokens=usage[0],
        output_tokens=usage[1],
        total_tokens=usage[2],
        cost=_cost(observation),
        release=(observation.get("release") or trace.get("release")
                 or observation.get("version") or None),
        environment=observation.get("environment") or trace.get("environment") or None,
        session_id=observation.get("sessionId") or trace.get("sessionId") or None,
        user_id=observation.get("userId") or trace.get("userId") or None,
        tags=[str(tag) for tag in (observation.get("tags") or trace.get("tags") or [])],
        attributes=attributes,
    )


def _status(observation: dict[str, Any]) -> Status:
    if observation.get("level") == "ERROR":
        return Status(code=StatusCode.ERROR, message=observation.get("statusMessage") or None)
    return Status()


def _usage(observation: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    details = observation.get("usageDetails")
    if isinstance(details, dict) and details:
        return (_count(details, "input", "prompt_tokens", "input_tokens"),
                _count(details, "output", "completion_tokens", "output_tokens"),
                _count(details, "total", "total_tokens"))
    usage = observation.get("usage")
    if isinstance(usage, dict):
        return _count(usage, "input"), _count(usage, "output"), _count(usage, "total")
    return None, None, None


def _count(mapping: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return int(value)
    return None


def _cost(observation: dict[str, Any]) -> float | None:
    details = observation.get("costDetails")
    for value in (observation.get("totalCost"),
                  details.get("total") if isinstance(details, dict) else None,
                  observation.get("calculatedTotalCost")):
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return None


_ATTRIBUTE_FIELDS = {
    "type": "langfuse.type",
    "level": "langfuse.level",
    "statusMessage": "langfuse.status_message",
    "version": "langfuse.version",
    "projectId": "langfuse.project_id",
    "traceName": "langfuse.trace_name",
    "completionStartTime": "langfuse.completion_start_time",
    "createdAt": "langfuse.created_at",
    "updatedAt": "langfuse.updated_at",
    "modelParameters": "langfuse.model_parameters",
    "internalModelId": "langfuse.internal_model_id",
    "usageDetails": "langfuse.usage_details",
    "costDetails": "langfuse.cost_details",
    "promptId": "langfuse.prompt_id",
    "promptName": "langfuse.prompt_name",
    "promptVersion": "langfuse.prompt_version",
    "timeToFirstToken": "langfuse.time_to_first_token",
    "isRootObservation": "langfuse.is_root",
}


def _attributes(observation: dict[str, Any], trace: dict[str, Any]) -> dict[str, JSONValue]:
    attributes: dict[str, JSONValue] = {
        key: observation[field] for field, key in _ATTRIBUTE_FIELDS.items()
        if observation.get(field) not in (None, "", {}, [])
    }
    metadata = parse_json_string(observation.get("metadata"))
    if metadata not in (None, "", {}):
        attributes["metadata"] = metadata
    if trace.get("name") and "langfuse.trace_name" not in attributes:
        attributes["langfuse.trace_name"] = trace["name"]
    return attributes


def _tool_calls(output: Any) -> list[dict[str, JSONValue]] | None:
    """The tool calls in an LLM's output messages (``[]``: it called none), if it has messages."""
    messages = output if isinstance(output, list) else [output]
    messages = [m for m in messages if isinstance(m, dict) and "role" in m]
    if not messages:
        return None
    calls: list[dict[str, JSONValue]] = []
    for message in messages:
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict):
                function: dict[str, Any] = call["function"] \
                    if isinstance(call.get("function"), dict) else call
                calls.append({"id": call.get("id"), "name": function.get("name"),
                              "arguments": parse_json_string(function.get("arguments"))})
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                calls.append({"id": block.get("id"), "name": block.get("name"),
                              "arguments": block.get("input")})
    return calls


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


