"""Rubrics: Jinja2 templates rendered in a sandbox, the named ones tracegrade ships, the prompts.

A rubric is user-controlled text turned into code, so it runs in Jinja2's immutable sandbox
(no attribute starting with ``_``, no mutation, no imports or includes, bounded ``range``) and
sees only plain values: ``span``, ``trace`` and, for ``classify``, ``labels``. A rubric is
compiled and test-rendered when its grader is built, so a typo or an unsafe construct is a config
error, not one error verdict per span.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib.resources import files
from typing import Any

import orjson
from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tracegrade.llm._views import span_view, trace_view
from tracegrade.spans import Span, SpanKind, Status, StatusCode

VARIABLES = frozenset({"span", "trace", "labels"})
"""What a rubric may refer to."""

_TEMPLATE_PREFIX = "rubric_"
_HEADER = re.compile(r"^\{#-?\s*(.*?)\s*-?#\}\s*", re.DOTALL)


class RubricError(ValueError):
    """A rubric cannot be used: unknown name, syntax error, unknown variable or unsafe code."""


@dataclass(frozen=True)
class Rubric:
    """A compiled rubric template."""

    source: str
    variables: frozenset[str]

    @property
    def reads_trace(self) -> bool:
        """Whether the rubric looks at the span's trace (which then has to be loaded)."""
        return "trace" in self.variables

    def render(self, context: Mapping[str, Any]) -> str:
        """The rubric filled in for one span.

        Raises:
            RubricError: rendering failed (a missing key, an unsafe operation…).
        """
        try:
            rendered: str = _compiled(self.source).render(context)
        except Exception as exc:  # a template can raise anything: SecurityError, TypeError…
            raise RubricError(f"{type(exc).__name__}: {exc}") from None
        return rendered.strip()


def compile_rubric(source: str, *, labels: Sequence[str] = ()) -> Rubric:
    """Compile ``source`` and render it once on a sample span to catch mistakes early.

    Raises:
        RubricError: with what is wrong.
    """
    environment = sandbox()
    try:
        variables = frozenset(meta.find_undeclared_variables(environment.parse(source)))
    except TemplateError as exc:
        raise RubricError(f"rubric does not compile: {exc}") from None
    unknown = sorted(variables - VARIABLES)
    if unknown:
        raise RubricError(f"rubric uses unknown variable {', '.join(unknown)}; "
                          f"available: {', '.join(sorted(VARIABLES))}")
    rubric = Rubric(source, variables)
    sample = _sample_span()
    try:
        rubric.render(rubric_context(sample, [sample], labels))
    except RubricError as exc:
        raise RubricError(f"rubric fails on a sample span: {exc}") from None
    return rubric


def rubric_context(span: Span, trace: Sequence[Span] | None, labels: Sequence[str] = ()
                   ) -> dict[str, Any]:
    """The variables a rubric renders with."""
    return {"span": span_view(span),
            "trace": trace_view(span, trace) if trace is not None else None,
            "labels": list(labels)}


@lru_cache(maxsize=1)
def sandbox() -> ImmutableSandboxedEnvironment:
    """The one Jinja2 environment rubrics render in: sandboxed, strict about undefined names."""
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
        finalize=_as_prompt_text)


@lru_cache(maxsize=256)
def _compiled(source: str) -> Any:
    return sandbox().from_string(source)


def _as_prompt_text(value: Any) -> Any:
    """JSON for structures (a tool result reads as JSON), nothing for None."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=str).decode()
    return value


# -- named rubrics ---------------------------------------------------------------------------


def shipped_rubrics() -> dict[str, str]:
    """Every rubric tracegrade ships: name → its one-line description."""
    folder = files("tracegrade") / "templates"
    found = {}
    for entry in folder.iterdir():
        if entry.name.startswith(_TEMPLATE_PREFIX) and entry.name.endswith(".j2"):
            name = entry.name.removeprefix(_TEMPLATE_PREFIX).removesuffix(".j2")
            found[name] = _description(entry.read_text(encoding="utf-8"))
    return dict(sorted(found.items()))


def shipped_rubric(name: str) -> str:
    """The source of a shipped rubric.

    Raises:
        RubricError: no rubric has that name.
    """
    known = shipped_rubrics()
    if name not in known:
        raise RubricError(f"no rubric named {name!r}; shipped rubrics: {', '.join(known)}")
    path = files("tracegrade") / "templates" / f"{_TEMPLATE_PREFIX}{name}.j2"
    return path.read_text(encoding="utf-8")


def _description(source: str) -> str:
    match = _HEADER.match(source)
    if not match:
        return ""
    first = " ".join(match.group(1).split("\n", 1)[0].split())
    return first.split(":", 1)[1].strip() if ":" in first else first


# -- the judge's instructions and answer schemas ---------------------------------------------

VERDICT_SYSTEM = """\
You are a careful evaluator of an LLM application. The user's message gives one criterion and \
the material to grade against it. Decide only that criterion, from the material shown.
Answer with a JSON object and nothing else:
{"critique": "<at most three sentences: the evidence your decision rests on>", \
"verdict": "pass" or "fail"}"""

LABEL_SYSTEM = """\
You are a careful evaluator of an LLM application. The user's message describes the case to \
classify. Choose exactly one of these labels:
{labels}
Answer with a JSON object and nothing else:
{{"critique": "<at most three sentences: the evidence your choice rests on>", \
"label": "<one of: {names}>"}}"""


def verdict_schema(with_score: bool = False) -> dict[str, Any]:
    """The JSON schema of a binary judge's answer (critique first: reasons before the verdict)."""
    properties: dict[str, Any] = {"critique": {"type": "string"},
                                  "verdict": {"type": "string", "enum": ["pass", "fail"]}}
    if with_score:
        properties["score"] = {"type": "number"}
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def label_schema(labels: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of a classifying judge's answer."""
    return {"type": "object",
            "properties": {"critique": {"type": "string"},
                           "label": {"type": "string", "enum": list(labels)}},
            "required": ["critique", "label"], "additionalProperties": False}


def label_system(labels: Mapping[str, str]) -> str:
    """The classifying judge's instructions, listing the labels with their descriptions."""
    lines = "\n".join(f"- {name}: {text}" if text else f"- {name}" for name, text in labels.items())
    return LABEL_SYSTEM.format(labels=lines, names=", ".join(labels))


def template_hash(system: str, rubric: str, schema: Mapping[str, Any]) -> str:
    """A short hash of everything fixed in a judge's prompt; part of the grader's version."""
    payload = orjson.dumps([system, rubric, schema], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()[:16]


def _sample_span() -> Span:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return Span.model_construct(
        source="sample", span_id="sample", trace_id="sample", parent_id=None, name="sample",
        kind=SpanKind.LLM, start_time=start, end_time=start, status=Status(code=StatusCode.OK),
        input={"messages": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "Where is my order?"}]},
        output="It ships tomorrow.", model="sample", input_tokens=None, output_tokens=None,
        total_tokens=None, cost=None, release=None, environment=None, session_id=None,
        user_id=None, tags=[], attributes={})
