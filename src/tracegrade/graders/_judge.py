"""LLM-judge graders: ``llm_judge`` (pass / fail with a critique) and ``classify`` (named labels).

The rubric is a sandboxed Jinja2 template over the span and, when it refers to ``trace``, the
span's whole trace. The judge's provider, model, temperature, seed and the prompt template's hash
are part of the grader's version and are stored with every verdict. A judge that cannot answer
readably after its retries gives an ``error`` verdict carrying the raw answer — never a pass.
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tracegrade.graders._async import AsyncGrader, GradingRun
from tracegrade.graders._base import GraderConfig, Outcome, Result, grader_version, register
from tracegrade.graders._targets import TraceContext
from tracegrade.llm._client import JudgeAnswer, JudgeClient, JudgeSession, PreparedCall
from tracegrade.llm._config import DEFAULT_JUDGE, JudgeConfig, JudgeGraderConfig
from tracegrade.llm._errors import JudgeError
from tracegrade.llm._fewshot import Example, examples_for, train_examples
from tracegrade.llm._parse import LabelAnswer, VerdictAnswer, parse_label, parse_verdict
from tracegrade.llm._providers import JudgeRequest, check_available
from tracegrade.llm._rubrics import (
    VERDICT_SYSTEM,
    Rubric,
    RubricError,
    compile_rubric,
    label_schema,
    label_system,
    shipped_rubric,
    template_hash,
    verdict_schema,
)
from tracegrade.llm._views import SpanView, span_view, trace_view
from tracegrade.spans import Span
from tracegrade.store import Store

_SESSION = "tracegrade.llm.session"


class JudgeParams(BaseModel):
    """Parameters shared by ``llm_judge`` and ``classify``."""

    model_config = ConfigDict(extra="forbid")

    judge: str = Field(default=DEFAULT_JUDGE, description="The name of a judge under `judges:`.")
    rubric: str | None = Field(default=None, description="The rubric, a Jinja2 template.")
    template: str | None = Field(default=None, description="A shipped rubric's name instead.")
    rubric_file: str | None = Field(default=None, description="A rubric template file instead.")
    scope: Literal["span", "trace"] = "span"
    quiet_seconds: float = Field(
        default=120.0, ge=0.0,
        description="When the rubric reads the trace (or scope is trace), grade a trace only "
                    "once its newest span ended this long ago; 0 grades at once.")
    few_shot: int = Field(default=0, ge=0, le=20,
                          description="How many train-split human labels to show as examples.")
    few_shot_criterion: str | None = Field(
        default=None, description="The labels' criterion [default: the grader's name].")

    @model_validator(mode="after")
    def _one_rubric(self) -> JudgeParams:
        given = [key for key in ("rubric", "template", "rubric_file") if getattr(self, key)]
        if len(given) != 1:
            raise ValueError("give exactly one of rubric, template (a shipped rubric's name) "
                             f"or rubric_file (got {', '.join(given) or 'none'})")
        return self


class LlmJudgeParams(JudgeParams):
    """Parameters of ``llm_judge``."""

    model_config = ConfigDict(extra="forbid", title="llm_judge params")

    score: bool = Field(default=False, description="Also ask for a numeric score.")


class ClassifyParams(JudgeParams):
    """Parameters of ``classify``."""

    model_config = ConfigDict(extra="forbid", title="classify params")

    labels: list[str] | dict[str, str] = Field(
        description="The labels to choose from, optionally with a description each.")
    pass_labels: list[str] = Field(min_length=1, description="The labels that count as pass.")

    @model_validator(mode="after")
    def _labels_make_sense(self) -> ClassifyParams:
        names = list(self.labels)
        if len(names) < 2 or len(set(names)) != len(names):
            raise ValueError("labels needs at least two distinct labels")
        unknown = sorted(set(self.pass_labels) - set(names))
        if unknown:
            raise ValueError(f"pass_labels {', '.join(unknown)} not among labels")
        if self.few_shot:
            raise ValueError("few_shot draws on pass/fail labels; it is for llm_judge only")
        return self

    def descriptions(self) -> dict[str, str]:
        """Label → description (empty when none was given)."""
        if isinstance(self.labels, dict):
            return dict(self.labels)
        return dict.fromkeys(self.labels, "")


_Prepared = tuple[PreparedCall, list[int]] | RubricError


class JudgeGrader(AsyncGrader):
    """What ``llm_judge`` and ``classify`` share: the rubric, the judge, the version, the call."""

    Params: ClassVar[type[BaseModel] | None] = JudgeParams
    schema_name: ClassVar[str]

    def __init__(self, config: GraderConfig, params: BaseModel | None) -> None:
        super().__init__(config, params)
        if not isinstance(params, JudgeParams):
            raise TypeError(f"{type(self).__name__} needs JudgeParams, got {params!r}")
        self.options = params
        self.judge_name, self.judge = _resolved_judge(config, params)
        try:
            check_available(self.judge)
        except JudgeError as exc:
            raise ValueError(f"judge {self.judge_name!r}: {exc}") from None
        self.rubric = self._compile(params)
        self.system, self.schema = self.instructions()
        self.template_hash = template_hash(self.system, self.rubric.source, self.schema)
        self.version = _judge_version(config, self.judge, self.template_hash)
        self.scope = params.scope
        self.quiet_seconds = params.quiet_seconds
        self._client: JudgeClient | None = None
        self._examples: list[tuple[Example, str]] = []
        self._prepared: dict[tuple[str, str], _Prepared] = {}

    @abstractmethod
    def instructions(self) -> tuple[str, dict[str, Any]]:
        """The judge's system prompt and the JSON schema of its answer."""

    @abstractmethod
    def read(self, text: str) -> Any:
        """The answer's value; raises AnswerUnreadable."""

    @abstractmethod
    def result(self, value: Any, details: dict[str, Any]) -> Result:
        """The verdict a read answer means."""

    @abstractmethod
    def example_answer(self, example: Example) -> str:
        """How a human label reads as this judge's answer, for a few-shot turn."""

    @property
    def reads_trace(self) -> bool:
        """Whether the trace is loaded for the rubric (it mentions ``trace``, or scope is trace)."""
        return self.rubric.reads_trace or self.scope == "trace"

    def labels(self) -> Sequence[str]:
        """Label names a rubric may list (``classify`` only)."""
        return ()

    async def open(self, run: GradingRun) -> None:
        """Get this run's client for the judge and load the few-shot examples."""
        session = run.resources.get(_SESSION)
        if not isinstance(session, JudgeSession):
            session = JudgeSession(run.store, run.budget, use_cache=run.use_cache)
            run.resources[_SESSION] = session
            run.cleanup.push_async_callback(session.aclose)
        self._client = session.client(self.judge_name, self.judge)
        if run.store is None:
            return
        criterion = self.options.few_shot_criterion or self.name
        examples = train_examples(run.store, criterion, self.options.few_shot)
        self._examples = [(e, self._render(e.span, self._example_trace(run.store, e)))
                          for e in examples]

    def prepare(self, items: Sequence[tuple[Span, TraceContext]]) -> None:
        """Render these spans' prompts and fetch their cached answers in one query."""
        client = self._need_client()
        views: dict[tuple[str, str], dict[str, SpanView]] = {}
        prepared = {span.key: self._prepare_one(client, span, context, views)
                    for span, context in items}
        self._prepared.update(prepared)
        client.prefetch(p[0] for p in prepared.values() if not isinstance(p, RubricError))

    def finish_page(self) -> None:
        """Forget the page's prompts and prefetched answers (memory stays flat)."""
        self._prepared = {}
        if self._client is not None:
            self._client.forget_prefetched()

    async def grade_async(self, span: Span, context: TraceContext) -> Result:
        """Ask the judge about one span."""
        client = self._need_client()
        prepared = self._prepared.pop(span.key, None) or self._prepare_one(client, span, context)
        if isinstance(prepared, RubricError):
            return Result(outcome=Outcome.ERROR, reason=f"rubric failed to render: {prepared}",
                          details=self._details([]))
        call, example_ids = prepared
        answer = await client.ask(call, self.read)
        return self._verdict(answer, example_ids)

    # -- building the request -----------------------------------------------------------------

    def _prepare_one(self, client: JudgeClient, span: Span, context: TraceContext,
                     views: dict[tuple[str, str], dict[str, SpanView]] | None = None) -> _Prepared:
        trace = context.spans() if self.reads_trace else None
        shared = views.setdefault((span.source, span.trace_id), {}) if views is not None else None
        try:
            prompt = self._render(span, trace, shared)
        except RubricError as exc:
            return exc
        examples = examples_for([e for e, _ in self._examples], span, self.options.few_shot)
        rendered = {id(example): text for example, text in self._examples}
        messages: list[tuple[str, str]] = []
        for example in examples:
            messages += [("user", rendered[id(example)]),
                         ("assistant", self.example_answer(example))]
        messages.append(("user", prompt))
        request = JudgeRequest(self.system, tuple(messages), self.schema_name, self.schema)
        return client.prepare(request), [example.label_id for example in examples]

    def _render(self, span: Span, trace: Sequence[Span] | None,
                views: dict[str, SpanView] | None = None) -> str:
        views = views if views is not None else {}
        trace_context = trace_view(span, trace or [span], views) if self.reads_trace else None
        context = {"span": views.get(span.span_id) or span_view(span), "trace": trace_context,
                   "labels": list(self.labels())}
        return self.rubric.render(context)

    def _example_trace(self, store: Store, example: Example) -> list[Span] | None:
        if not self.reads_trace:
            return None
        return store.trace_spans(example.span.source, example.span.trace_id)

    def _compile(self, params: JudgeParams) -> Rubric:
        if params.template:
            source = shipped_rubric(params.template)
        elif params.rubric_file:
            path = Path(params.rubric_file).expanduser()
            try:
                source = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"rubric_file {params.rubric_file}: {exc.strerror}") from None
        else:
            source = params.rubric or ""
        try:
            return compile_rubric(source, labels=self.labels())
        except RubricError as exc:
            raise ValueError(str(exc)) from None

    def _need_client(self) -> JudgeClient:
        if self._client is None:
            raise RuntimeError(f"grader {self.name!r} was not opened for a grading run")
        return self._client

    # -- reading the answer -------------------------------------------------------------------

    def _verdict(self, answer: JudgeAnswer[Any], example_ids: list[int]) -> Result:
        details = self._details(example_ids, answer)
        if answer.value is None:
            details["raw_answer"] = answer.text
            return Result(outcome=Outcome.ERROR, reason=f"judge failed: {answer.problem}",
                          cost=answer.cost, details=details)
        return self.result(answer.value, details).model_copy(update={"cost": answer.cost})

    def _details(self, example_ids: list[int], answer: JudgeAnswer[Any] | None = None
                 ) -> dict[str, Any]:
        details: dict[str, Any] = {
            "judge": self.judge_name, **self.judge.identity(),
            "template_hash": self.template_hash, "few_shot_label_ids": example_ids,
        }
        if answer is not None:
            details.update(usage={"input_tokens": answer.input_tokens,
                                  "output_tokens": answer.output_tokens},
                           cost=answer.cost, cached=answer.cached, attempts=answer.attempts)
        return details


@register
class LlmJudge(JudgeGrader):
    """``llm_judge``: the judge answers pass or fail against the rubric, with a critique."""

    type_name = "llm_judge"
    Params = LlmJudgeParams
    schema_name = "verdict"

    def instructions(self) -> tuple[str, dict[str, Any]]:
        """The binary judge's system prompt and answer schema."""
        with_score = isinstance(self.options, LlmJudgeParams) and self.options.score
        return VERDICT_SYSTEM, verdict_schema(with_score)

    def read(self, text: str) -> VerdictAnswer:
        """A pass/fail verdict."""
        return parse_verdict(text)

    def result(self, value: Any, details: dict[str, Any]) -> Result:
        """Pass or fail, the critique as the reason."""
        answer: VerdictAnswer = value
        return Result(outcome=Outcome.PASS if answer.passed else Outcome.FAIL,
                      reason=answer.critique or "(the judge gave no critique)",
                      score=answer.score, details=details)

    def example_answer(self, example: Example) -> str:
        """The human's label as a JSON answer."""
        return orjson.dumps({"critique": example.critique,
                             "verdict": "pass" if example.passed else "fail"}).decode()


@register
class Classify(JudgeGrader):
    """``classify``: the judge picks one of named labels; the config says which labels pass."""

    type_name = "classify"
    Params = ClassifyParams
    schema_name = "classification"

    def instructions(self) -> tuple[str, dict[str, Any]]:
        """The classifying judge's system prompt (listing the labels) and answer schema."""
        return label_system(self._params().descriptions()), label_schema(self.labels())

    def labels(self) -> Sequence[str]:
        """The label names, in configured order."""
        return list(self._params().labels)

    def read(self, text: str) -> LabelAnswer:
        """One of the labels; any other is unreadable (and asked again)."""
        return parse_label(text, self.labels())

    def result(self, value: Any, details: dict[str, Any]) -> Result:
        """Pass when the label is one of ``pass_labels``."""
        answer: LabelAnswer = value
        details["label"] = answer.label
        passed = answer.label in self._params().pass_labels
        reason = f"{answer.label}: {answer.critique}" if answer.critique else answer.label
        return Result(outcome=Outcome.PASS if passed else Outcome.FAIL, reason=reason,
                      details=details)

    def example_answer(self, example: Example) -> str:
        """Not used: classify takes no few-shot examples."""
        raise NotImplementedError

    def _params(self) -> ClassifyParams:
        params = self.params
        if not isinstance(params, ClassifyParams):
            raise TypeError("classify needs ClassifyParams")
        return params


def _resolved_judge(config: GraderConfig, params: JudgeParams) -> tuple[str, JudgeConfig]:
    judge = config.judge if isinstance(config, JudgeGraderConfig) else None
    if judge is None:
        raise ValueError(f"judge {params.judge!r} is not configured: add it under `judges:`")
    return config.judge_name if isinstance(config, JudgeGraderConfig) else params.judge, judge


def _judge_version(config: GraderConfig, judge: JudgeConfig, prompt_hash: str) -> str:
    identity = {"grader": grader_version(config), "judge": judge.identity(),
                "template_hash": prompt_hash}
    return hashlib.sha256(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]

