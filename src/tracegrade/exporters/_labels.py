"""Import human labels from where reviewers already work: Langfuse annotations, Braintrust review.

* Langfuse: scores whose source is ``ANNOTATION`` (``GET /api/public/v3/scores``, falling back to
  the page-based ``GET /api/public/v2/scores`` on servers without v3). A score on an observation
  labels that span; a score on a trace labels the trace's root span when the store holds exactly
  one.
* Braintrust: the project's human-review scores (project scores of type ``slider`` or
  ``categorical``, ``GET /v1/project_score``) read off the project-logs rows with ``POST /btql``.

The score's name becomes the label's criterion (name it after the grader it calibrates). Only
pass/fail answers become labels: a boolean, a number that is exactly 1 or 0, or a category such
as ``pass``/``fail``, ``yes``/``no``, ``correct``/``incorrect``; anything else is counted as
not binary and left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from tracegrade.config import Config
from tracegrade.exporters._common import remote_source
from tracegrade.labels import Label, store_labels
from tracegrade.sources._http import RemoteRejected, format_timestamp
from tracegrade.sources.braintrust import BraintrustApi, BraintrustSourceConfig, sql_string
from tracegrade.sources.langfuse import LangfuseApi, LangfuseSourceConfig
from tracegrade.spans import utc_now
from tracegrade.store import Store
from tracegrade.store import _schema as t

PASS_WORDS = frozenset({"pass", "passed", "true", "yes", "correct", "good", "1"})
FAIL_WORDS = frozenset({"fail", "failed", "false", "no", "incorrect", "bad", "0"})
REVIEW_SCORE_TYPES = frozenset({"slider", "categorical"})
_SCORES_PAGE = 100


@dataclass
class LabelImport:
    """What a label import did."""

    source: str
    scores_read: int = 0
    inserted: int = 0
    updated: int = 0
    not_binary: int = 0
    unmatched: int = 0
    """Trace-level scores whose trace has no single root span in the store."""
    criteria: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {"source": self.source, "scores_read": self.scores_read,
                "inserted": self.inserted, "updated": self.updated,
                "not_binary": self.not_binary, "unmatched": self.unmatched,
                "criteria": self.criteria}


def import_remote_labels(
    store: Store,
    source_name: str,
    *,
    config: Config | None = None,
    since: datetime | None = None,
) -> LabelImport:
    """Import a Langfuse or Braintrust source's human review scores as labels.

    Args:
        store: Where labels are written (through :func:`tracegrade.labels.store_labels`).
        source_name: A configured Langfuse or Braintrust source.
        config: The configuration (default: ``tracegrade.yaml`` in the working directory).
        since: Only reviews made (Langfuse) or rows logged (Braintrust) since then.

    Returns:
        How many scores were read and how many labels were inserted or updated.

    Raises:
        ExportError: the source is not a configured Langfuse/Braintrust source.
        tracegrade.sources.RemoteError: the service refused or kept failing.
    """
    source = remote_source(config, source_name)
    result = LabelImport(source=source.name)
    if isinstance(source, LangfuseSourceConfig):
        labels = list(_langfuse_labels(store, source, since, result))
    else:
        labels = list(_braintrust_labels(source, since, result))
    # The last answer per (span, criterion, reviewer) wins: rows come oldest first.
    labels = list({(lb.span_id, lb.criterion, lb.labeler): lb for lb in labels}.values())
    counts = store_labels(store, labels)
    result.inserted, result.updated = counts.inserted, counts.updated
    result.criteria = sorted({label.criterion for label in labels})
    return result


def binary_label(value: Any) -> str | None:
    """``pass``/``fail`` for a boolean, 1/0, or a pass/fail-like category; else ``None``."""
    if isinstance(value, bool):
        return "pass" if value else "fail"
    if isinstance(value, int | float):
        return "pass" if value == 1 else "fail" if value == 0 else None
    if isinstance(value, str):
        word = value.strip().lower()
        return "pass" if word in PASS_WORDS else "fail" if word in FAIL_WORDS else None
    return None


# -- Langfuse ----------------------------------------------------------------------------------


def _langfuse_labels(store: Store, config: LangfuseSourceConfig, since: datetime | None,
                     result: LabelImport) -> Iterator[Label]:
    api = LangfuseApi(config)
    try:
        for score in _annotation_scores(api, since):
            result.scores_read += 1
            label = binary_label(_score_value(score))
            if label is None:
                result.not_binary += 1
                continue
            span_id = _scored_span(store, config.name, score)
            if span_id is None:
                result.unmatched += 1
                continue
            yield Label(source=config.name, span_id=span_id, criterion=str(score["name"]),
                        label=label, critique=score.get("comment") or None,
                        labeler=score.get("authorUserId") or "langfuse")
    finally:
        api.close()


def _annotation_scores(api: LangfuseApi, since: datetime | None) -> Iterator[dict[str, Any]]:
    params: dict[str, Any] = {"source": "ANNOTATION", "limit": _SCORES_PAGE,
                              "fromTimestamp": since, "fields": "details,subject,annotation"}
    try:
        body = api.get("/api/public/v3/scores", params)
    except RemoteRejected as error:
        if not error.not_found:
            raise
        yield from _annotation_scores_v2(api, since)
        return
    while True:
        yield from (s for s in body.get("data") or [] if isinstance(s, dict))
        cursor = (body.get("meta") or {}).get("cursor")
        if not cursor or not body.get("data"):
            return
        body = api.get("/api/public/v3/scores", {**params, "cursor": cursor})


def _annotation_scores_v2(api: LangfuseApi, since: datetime | None
                          ) -> Iterator[dict[str, Any]]:
    page = 1
    while True:
        body = api.get("/api/public/v2/scores", {"source": "ANNOTATION", "page": page,
                                                 "limit": _SCORES_PAGE, "fromTimestamp": since})
        rows = [s for s in body.get("data") or [] if isinstance(s, dict)]
        yield from rows
        total_pages = (body.get("meta") or {}).get("totalPages") or 0
        if not rows or page >= total_pages:
            return
        page += 1


def _score_value(score: dict[str, Any]) -> Any:
    if score.get("dataType") == "CATEGORICAL":
        return score.get("stringValue", score.get("value"))
    return score.get("value")


def _scored_span(store: Store, source: str, score: dict[str, Any]) -> str | None:
    subject: dict[str, Any] = score["subject"] if isinstance(score.get("subject"), dict) else {}
    observation_id = score.get("observationId") or (
        subject.get("id") if subject.get("kind") == "observation" else None)
    if observation_id:
        return str(observation_id)
    trace_id = score.get("traceId") or (
        subject.get("id") if subject.get("kind") == "trace" else None)
    if not trace_id:
        return None
    s = t.spans.c
    query = select(s.span_id).where(s.source == source, s.trace_id == trace_id,
                                    s.parent_id.is_(None)).limit(2)
    with store.engine.connect() as conn:
        roots = [row[0] for row in conn.execute(query)]
    return roots[0] if len(roots) == 1 else None


# -- Braintrust --------------------------------------------------------------------------------


def _braintrust_labels(config: BraintrustSourceConfig, since: datetime | None,
                       result: LabelImport) -> Iterator[Label]:
    api = BraintrustApi(config)
    try:
        project_id = api.project_id()
        names = _review_score_names(api, project_id)
        if not names:
            return
        for row in _scored_rows(api, project_id, since):
            scores: dict[str, Any] = row["scores"] if isinstance(row.get("scores"), dict) else {}
            for name in sorted(names & set(scores)):
                if scores[name] is None:
                    continue
                result.scores_read += 1
                label = binary_label(scores[name])
                if label is None:
                    result.not_binary += 1
                    continue
                yield Label(source=config.name, span_id=str(row.get("span_id") or row["id"]),
                            criterion=name, label=label, critique=_last_comment(row),
                            labeler="braintrust-review")
    finally:
        api.close()


def _review_score_names(api: BraintrustApi, project_id: str) -> set[str]:
    body, _ = api.http.request_json("GET", "/v1/project_score",
                                    params={"project_id": project_id})
    return {str(score["name"]) for score in body.get("objects") or []
            if isinstance(score, dict) and score.get("score_type") in REVIEW_SCORE_TYPES}


def _scored_rows(api: BraintrustApi, project_id: str, since: datetime | None
                 ) -> Iterator[dict[str, Any]]:
    start = format_timestamp(since) if since else "1970-01-01T00:00:00.000Z"
    end = format_timestamp(utc_now())
    base = (f"SELECT id, span_id, _xact_id, scores, comments FROM project_logs("
            f"{sql_string(project_id)}) WHERE created >= {sql_string(start)} "
            f"AND created < {sql_string(end)} ORDER BY _pagination_key LIMIT 1000")
    cursor: str | None = None
    while True:
        query = f"{base} OFFSET {sql_string(cursor)}" if cursor else base
        rows, next_cursor = api.btql(query)
        yield from rows
        if not rows or not next_cursor or next_cursor == cursor:
            return
        cursor = next_cursor


def _last_comment(row: dict[str, Any]) -> str | None:
    comments = row.get("comments")
    if not isinstance(comments, list) or not comments:
        return None
    last = comments[-1]
    if isinstance(last, dict):
        text = last.get("text") or last.get("comment")
        return str(text) if text else None
    return str(last) if last else None


