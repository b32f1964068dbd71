"""Braintrust: read project logs incrementally, and the REST calls the exporters make.

Reading uses ``POST /btql`` with SQL over ``project_logs('<project id>')``, always bounded by a
``created`` range and paged with the cursor the answer carries (in its body, the
``x-bt-cursor`` header, or, when the answer is a redirect to a stored object, that redirect's
header or the object's ``x-amz-meta-bt_cursor``), sent back as ``OFFSET '<cursor>'``. Where
``/btql`` is missing (404) the reader falls back to
``POST /v1/project_logs/{project_id}/fetch``, which pages newest first over the whole version
history with its own cursor (see :meth:`BraintrustReader._read_fetch` for where it stops).

Either way a row can come back more than once (an older version on a later page, or a row
updated while it was being read); rows are deduplicated by ``id`` keeping the highest
``_xact_id``. Spans Braintrust's own scorers produce (``span_attributes.purpose = 'scorer'``)
are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from pydantic import SecretStr, ValidationError, model_validator

from tracegrade.sources._base import IngestProblem
from tracegrade.sources._http import (
    BearerAuth,
    HttpClient,
    RemoteRejected,
    RemoteUnavailable,
    UnexpectedResponse,
    format_timestamp,
)
from tracegrade.sources._remote import (
    Page,
    RemoteSourceConfig,
    Window,
    newest_per_key,
    optional_timestamp,
)
from tracegrade.sources.conventions import describe_error
from tracegrade.spans import JSONValue, Span, SpanKind, Status, StatusCode, parse_json_string

API_URLS = {"us": "https://api.braintrust.dev", "eu": "https://api-eu.braintrust.dev"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SPAN_KINDS = {
    "llm": SpanKind.LLM,
    "tool": SpanKind.TOOL,
    "function": SpanKind.CHAIN,
    "task": SpanKind.CHAIN,
    "eval": SpanKind.CHAIN,
}
"""Braintrust ``span_attributes.type`` to span kinds; the rest (score, review…) are ``other``."""


class BraintrustSourceConfig(RemoteSourceConfig):
    """A Braintrust project's logs, read with an API key."""

    type: Literal["braintrust"]
    api_url: str = API_URLS["us"]
    """``https://api.braintrust.dev`` (US), ``https://api-eu.braintrust.dev`` (EU), or your data
    plane's URL when self-hosted."""
    api_key: SecretStr
    project_id: str | None = None
    project: str | None = None
    """The project's name, looked up with ``GET /v1/project?project_name=`` (or give its id)."""
    org_name: str | None = None
    """The organization to look the project name up in, when the API key reaches several."""
    api: Literal["auto", "btql", "fetch"] = "auto"
    release_key: str = "release"
    """The ``metadata`` key holding the release."""
    environment_key: str = "environment"
    """The ``metadata`` key holding the environment."""

    @model_validator(mode="after")
    def _names_a_project(self) -> BraintrustSourceConfig:
        if not self.project_id and not self.project:
            raise ValueError("set project_id or project (the project's name)")
        return self


class BraintrustApi:
    """The Braintrust REST calls tracegrade makes, through the one HTTP policy."""

    def __init__(self, config: BraintrustSourceConfig, client: HttpClient | None = None) -> None:
        self.config = config
        key = config.api_key.get_secret_value()
        # Braintrust documents no per-minute REST limit; it answers 429 with Retry-After.
        self.http = client or HttpClient(
            config.api_url,
            service=f"braintrust ({config.name})",
            policy=config.http,
            auth=BearerAuth(key),
            secrets=[key],
        )
        self._project_id = config.project_id

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()

    def post(self, path: str, body: Any) -> Any:
        """POST a JSON body; returns the parsed answer."""
        return self.http.request_json("POST", path, json=body)[0]

    def project_id(self) -> str:
        """The project's id, looked up by name once when the config gives a name."""
        if self._project_id:
            return self._project_id
        name = self.config.project or ""
        body, _ = self.http.request_json("GET", "/v1/project", params={
            "project_name": name, "org_name": self.config.org_name})
        projects = body.get("objects") if isinstance(body, dict) else None
        if not isinstance(projects, list) or not projects:
            where = f" in organization {self.config.org_name!r}" if self.config.org_name else ""
            raise RemoteRejected(f"braintrust ({self.config.name}): no project named "
                                 f"{name!r}{where}", service="braintrust", status=404)
        if len({str(p.get("org_id")) for p in projects if isinstance(p, dict)}) > 1:
            raise RemoteRejected(
                f"braintrust ({self.config.name}): projects named {name!r} exist in several "
                "organizations this API key reaches: set org_name or project_id",
                service="braintrust", status=409)
        self._project_id = str(projects[0]["id"])
        return self._project_id

    def btql(self, query: str) -> tuple[list[dict[str, Any]], str | None]:
        """Run a SQL query with ``POST /btql``; returns its rows and the next page's cursor."""
        body, response = self.http.request_json("POST", "/btql",
                                                json={"query": query, "fmt": "json"})
        cursor = body.get("cursor") if isinstance(body, dict) else None
        # A large answer comes as a redirect to a stored object: the cursor is then a header
        # of the redirect, or the object's metadata. httpx followed the redirect, so look at
        # every response on the way.
        for hop in (response, *reversed(response.history)):
            cursor = cursor or hop.headers.get("x-bt-cursor") \
                or hop.headers.get("x-amz-meta-bt_cursor")
        return _rows(body, "data"), cursor or None

    def fetch(self, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``POST /v1/project_logs/{id}/fetch``, newest first."""
        body = self.post(f"/v1/project_logs/{quote(self.project_id(), safe='')}/fetch",
                         {"limit": limit, "cursor": cursor})
        next_cursor = body.get("cursor") if isinstance(body, dict) else None
        return _rows(body, "events"), next_cursor or None

    def feedback(self, items: list[dict[str, Any]]) -> Any:
        """``POST /v1/project_logs/{id}/feedback`` for a batch of rows.

        Not idempotent: scores merge, but every call logs its comments again, so a call whose
        fate is unknown is not retried (see :meth:`HttpClient.request_json`).
        """
        path = f"/v1/project_logs/{quote(self.project_id(), safe='')}/feedback"
        return self.http.request_json("POST", path, json={"feedback": items},
                                      idempotent=False)[0]


class BraintrustReader:
    """Reads a Braintrust project's logs window by window, page by page."""

    version_attribute = "braintrust.xact_id"

    def __init__(self, config: BraintrustSourceConfig, api: BraintrustApi | None = None) -> None:
        self.config = config
        self.name = config.name
        self.mark: JSONValue = None
        """The highest ``_xact_id`` the last finished fetch-API window read."""
        self.api: str = config.api if config.api != "auto" else "btql"
        self._braintrust = api or BraintrustApi(config)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._braintrust.close()

    def version_key(self, value: JSONValue) -> Any:
        """Versions are ``_xact_id`` values: increasing integers sent as strings."""
        return xact_order(value)

    def read(self, window: Window, resume: JSONValue) -> Iterator[Page]:
        """Read the window's rows after ``resume``."""
        state = resume if isinstance(resume, dict) else {}
        mode = state.get("api") or (None if self.config.api == "auto" else self.config.api)
        cursor = state.get("cursor")
        if mode == "fetch":
            yield from self._read_fetch(window, state)
            return
        try:
            first = self._braintrust.btql(self._query(window, cursor))
        except RemoteRejected as error:
            if not (error.not_found and mode is None):
                raise
            yield from self._read_fetch(window, {})
            return
        self.api = "btql"
        yield from self._read_btql(window, first, cursor)

    def _read_btql(self, window: Window, first: tuple[list[dict[str, Any]], str | None],
                   cursor: str | None) -> Iterator[Page]:
        rows, next_cursor = first
        while True:
            if next_cursor is not None and next_cursor == cursor:
                raise RemoteUnavailable(f"braintrust ({self.name}): the BTQL cursor did not "
                                        "advance", service=f"braintrust ({self.name})")
            if next_cursor is None and len(rows) >= self.config.page_size:
                # A full page may have more behind it: ending the window here could skip rows.
                raise UnexpectedResponse(
                    f"braintrust ({self.name}): /btql returned a full page of "
                    f"{len(rows)} rows without a cursor (none in the body, nor in the "
                    "x-bt-cursor or x-amz-meta-bt_cursor headers); stopping so that no rows "
                    "are skipped. The next pull retries this page.",
                    service=f"braintrust ({self.name})")
            done = not rows or next_cursor is None
            resume = None if done else {"api": "btql", "cursor": next_cursor}
            yield self._page(rows, resume, window)
            if done:
                return
            cursor = next_cursor
            rows, next_cursor = self._braintrust.btql(self._query(window, cursor))

    def _query(self, window: Window, cursor: str | None) -> str:
        project_id = sql_string(self._braintrust.project_id())
        start = sql_string(format_timestamp(window.start or _EPOCH))
        end = sql_string(format_timestamp(window.end))
        query = (f"SELECT * FROM project_logs({project_id}) "
                 f"WHERE created >= {start} AND created < {end} "
                 f"ORDER BY _pagination_key LIMIT {self.config.page_size}")
        return f"{query} OFFSET {sql_string(cursor)}" if cursor else query

    def _read_fetch(self, window: Window, state: dict[str, Any]) -> Iterator[Page]:
        """Page the fetch API, newest version first, over the whole version history.

        An update (feedback, a review, a merge from the SDK) gives an old row a new, higher
        ``_xact_id`` and leaves its ``created`` alone, so the first pages can hold only old
        rows with new rows behind them: how old a page's rows are says nothing about what
        follows. What does is the transaction id: once a whole page is at or below the highest
        ``_xact_id`` a finished window read (the mark), everything after it was there for that
        read too. So the read stops there (and only once the page also predates the overlap,
        for rows that arrive late); without a mark (the first pull, a ``--since`` backfill) it
        reads to the end of the history.
        """
        self.api = "fetch"
        cursor: str | None = state.get("cursor")
        stop_at = state.get("stop_at") if "stop_at" in state else self.mark
        seen: str | None = state.get("seen")
        horizon = window.start - timedelta(minutes=self.config.overlap_minutes) \
            if window.start else None
        while True:
            rows, next_cursor = self._braintrust.fetch(cursor, self.config.page_size)
            created = [_created(row) for row in rows]
            for row in rows:
                if seen is None or xact_order(row.get("_xact_id")) > xact_order(seen):
                    seen = str(row.get("_xact_id") or "") or seen
            read_before = stop_at is not None and bool(rows) and all(
                xact_order(row.get("_xact_id")) <= xact_order(stop_at) for row in rows
            ) and (horizon is None or all(
                moment is not None and moment < horizon for moment in created))
            in_window = [row for row, moment in zip(rows, created, strict=True)
                         if moment is None or _within(moment, window)]
            done = not rows or next_cursor is None or read_before or next_cursor == cursor
            resume = None if done else {"api": "fetch", "cursor": next_cursor, "seen": seen,
                                        "stop_at": stop_at}
            page = self._page(in_window, resume, window)
            page.rows = len(rows)
            if done:
                page.mark = _highest(seen, self.mark)
            yield page
            if done:
                return
            cursor = next_cursor

    def _page(self, rows: list[dict[str, Any]], resume: JSONValue, window: Window) -> Page:
        page = Page(spans=[], resume=resume, rows=len(rows))
        for row in newest_per_key(rows, "id", lambda r: xact_order(r.get("_xact_id"))):
            attributes = row.get("span_attributes")
            if isinstance(attributes, dict) and attributes.get("purpose") == "scorer":
                page.skipped += 1
                continue
            try:
                page.spans.append(row_to_span(row, self.name, self.config.release_key,
                                              self.config.environment_key))
            except (ValueError, TypeError, ValidationError) as error:
                page.problems.append(IngestProblem(
                    f"braintrust {self.name}: row {row.get('id')!r}", describe_error(error)))
        return page


def row_to_span(row: dict[str, Any], source: str, release_key: str = "release",
                environment_key: str = "environment") -> Span:
    """Map one Braintrust project-logs row to a span.

    The span's id is the row's ``span_id`` (what ``span_parents`` refer to) and its trace is
    ``root_span_id``; the row's own ``id`` (what feedback is addressed to) and ``_xact_id`` are
    kept as ``attributes["braintrust.id"]`` and ``attributes["braintrust.xact_id"]``.

    Raises:
        ValueError: the row lacks its ids, or a field is malformed.
        pydantic.ValidationError: the mapped values do not make a valid span.
    """
    row_id, span_id = row.get("id"), row.get("span_id") or row.get("id")
    if not isinstance(row_id, str) or not row_id or not isinstance(span_id, str):
        raise ValueError("row has no id")
    span_attributes = row.get("span_attributes") or {}
    metrics = row.get("metrics") or {}
    metadata = row.get("metadata") or {}
    if not isinstance(span_attributes, dict) or not isinstance(metrics, dict) \
            or not isinstance(metadata, dict):
        raise ValueError("span_attributes, metrics and metadata must be objects")
    parents = row.get("span_parents") or []
    start = _unix_seconds(metrics.get("start"), "metrics.start") or _created(row)
    if start is None:
        raise ValueError("row has neither metrics.start nor created")
    return Span(
        source=source,
        span_id=span_id,
        trace_id=row.get("root_span_id") or span_id,
        parent_id=str(parents[0]) if isinstance(parents, list) and parents else None,
        name=str(span_attributes.get("name") or ""),
        kind=SPAN_KINDS.get(str(span_attributes.get("type") or ""), SpanKind.OTHER),
        start_time=start,
        end_time=_unix_seconds(metrics.get("end"), "metrics.end"),
        status=_status(row.get("error")),
        input=parse_json_string(row.get("input")),
        output=parse_json_string(row.get("output")),
        model=_text(metadata.get("model")),
        input_tokens=_tokens(metrics.get("prompt_tokens")),
        output_tokens=_tokens(metrics.get("completion_tokens")),
        total_tokens=_tokens(metrics.get("tokens")),
        cost=_cost(metrics),
        release=_text(metadata.get(release_key)),
        environment=_text(metadata.get(environment_key)),
        session_id=_text(metadata.get("session_id")),
        user_id=_text(metadata.get("user_id")),
        tags=[str(tag) for tag in row.get("tags") or []],
        attributes=_attributes(row, span_attributes, metrics, metadata),
    )


def xact_order(value: Any) -> tuple[int, str]:
    """A sortable form of an ``_xact_id`` (a decimal integer string; numbers compare first)."""
    text = str(value or "")
    return (int(text), text) if text.isdigit() else (-1, text)


def _attributes(row: dict[str, Any], span_attributes: dict[str, Any], metrics: dict[str, Any],
                metadata: dict[str, Any]) -> dict[str, JSONValue]:
    attributes: dict[str, JSONValue] = {
        "braintrust.id": row["id"],
        "braintrust.xact_id": str(row.get("_xact_id") or ""),
    }
    for field in ("created", "project_id", "is_root", "scores", "expected", "context",
                  "origin"):
        if row.get(field) not in (None, {}, []):
            attributes[f"braintrust.{field}"] = row[field]
    if span_attributes.get("type"):
        attributes["braintrust.span_type"] = span_attributes["type"]
    extra_span_attributes = {k: v for k, v in span_attributes.items()
                             if k not in ("name", "type")}
    if extra_span_attributes:
        attributes["braintrust.span_attributes"] = extra_span_attributes
    other_metrics = {k: v for k, v in metrics.items()
                     if k not in ("start", "end", "prompt_tokens", "completion_tokens", "tokens")}
    if other_metrics:
        attributes["braintrust.metrics"] = other_metrics
    if metadata:
        attributes["metadata"] = metadata
    return attributes


def _status(error: Any) -> Status:
    if error in (None, "", {}):
        return Status()
    if isinstance(error, dict):
        message = error.get("message") or error.get("error") or str(error)
    else:
        message = error
    return Status(code=StatusCode.ERROR, message=str(message)[:2000])


def _unix_seconds(value: Any, field_name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field_name} {value!r} is not a unix timestamp")
    return datetime.fromtimestamp(float(value), tz=UTC)


def _created(row: dict[str, Any]) -> datetime | None:
    try:
        return optional_timestamp(row.get("created"), "created")
    except ValueError:
        return None


def _highest(*xact_ids: JSONValue) -> str | None:
    known = [str(x) for x in xact_ids if x not in (None, "")]
    return max(known, key=xact_order) if known else None


def _within(moment: datetime, window: Window) -> bool:
    return (window.start is None or moment >= window.start) and moment < window.end


def _tokens(value: Any) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return int(value)
    return None


def _cost(metrics: dict[str, Any]) -> float | None:
    value = metrics.get("estimated_cost", metrics.get("cost"))
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int | float) and value != "" else None


def sql_string(value: str) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def _rows(body: Any, key: str) -> list[dict[str, Any]]:
    rows = body.get(key) if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise UnexpectedResponse(f"braintrust: the response has no {key!r} list",
                                 service="braintrust")
    return [row for row in rows if isinstance(row, dict)]


