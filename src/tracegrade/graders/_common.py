"""Shared scaffolding for tracegrade's built-in graders.

Built-ins subclass :class:`CheckGrader` (no parameters) or :class:`ParamsGrader` (typed
parameters) and implement :meth:`CheckGrader.check`. They are plain :class:`Grader` subclasses, so
they register and build exactly like third-party graders.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

import orjson
from pydantic import BaseModel

from tracegrade.graders._base import Grader, GraderConfig, Outcome, Result
from tracegrade.graders._targets import TargetMissing, compile_path, resolve, resolve_all
from tracegrade.spans import JSONValue, Span

if TYPE_CHECKING:
    from tracegrade.graders._targets import TraceContext

P = TypeVar("P", bound=BaseModel)

_EXCERPT_CHARS = 60


class CheckGrader(Grader):
    """A grader whose missing target is an ``error`` verdict with the reason why.

    Construction checks the configured JSONPath, so a typo fails when the config is loaded
    rather than as one error verdict per span.
    """

    reads: ClassVar[str | None] = None
    """What the grader reads when it is no target (``the span's status``): setting ``target``
    or ``path`` on it is then a mistake, refused at build."""

    def __init__(self, config: GraderConfig, params: BaseModel | None) -> None:
        super().__init__(config, params)
        if self.reads is not None:
            ignored = sorted({"target", "path"} & config.model_fields_set)
            if ignored:
                raise ValueError(f"grader {config.name!r} ({self.type_name}) reads "
                                 f"{self.reads}: `{'` and `'.join(ignored)}` would be ignored; "
                                 "remove it")
        if config.path is not None:
            _check_path(config.path, config.name)

    def grade(self, span: Span, context: TraceContext) -> Result:
        """Grade one span; a missing target becomes ``error``."""
        try:
            return self.check(span, context)
        except TargetMissing as exc:
            return Result.errored(str(exc))

    @abstractmethod
    def check(self, span: Span, context: TraceContext) -> Result:
        """Decide pass / fail / skip for one span; may raise :class:`TargetMissing`."""

    def target(self, span: Span) -> JSONValue:
        """The configured target of ``span``, narrowed by the configured path (first match)."""
        return resolve(span, self.config.target, self.config.path)

    @property
    def where(self) -> str:
        """The target as reasons name it: ``output`` or ``output at $.reply``."""
        if self.config.path is None:
            return self.config.target
        return f"{self.config.target} at {self.config.path}"


class ValueGrader(CheckGrader):
    """A grader of the target's value. With a path, every match is graded and all must pass:
    ``$.items[*].status`` equals "shipped" only when each item's status does."""

    skip_null_matches: ClassVar[bool] = False
    """Whether, among several matches, those holding null are left out (a text grader over
    ``$.messages[*].content`` has no text to check in a message that only calls a tool)."""

    def check(self, span: Span, context: TraceContext) -> Result:
        """Grade each match of the target: the first that fails decides, else the first that
        does not pass (an error), else all pass."""
        matches = resolve_all(span, self.config.target, self.config.path)
        if len(matches) > 1 and self.skip_null_matches:
            matches = [m for m in matches if m.value is not None] or matches
        if len(matches) == 1:
            return self.check_value(matches[0].value)
        results: list[Result] = []
        for match in matches:
            results.append(self.check_value(match.value))
            if results[-1].outcome == Outcome.FAIL:
                break
        index = _deciding(results)
        if index is None:
            return _reworded(results[0], f"all {len(matches)} matches: {results[0].reason}")
        where = f"match {index + 1} of {len(matches)} ({matches[index].location})"
        return _reworded(results[index], f"{where}: {results[index].reason}")

    @abstractmethod
    def check_value(self, value: JSONValue) -> Result:
        """Decide pass / fail / error for one value of the target (one match of the path)."""


class ParamsGrader(CheckGrader, Generic[P]):
    """A :class:`CheckGrader` whose ``params`` is an instance of its ``Params`` model."""

    params: P

    def __init__(self, config: GraderConfig, params: BaseModel | None) -> None:
        model = type(self).Params
        if model is None:
            raise TypeError(f"{type(self).__name__} declares no Params model")
        if params is None:
            params = model.model_validate(config.params())
        if not isinstance(params, model):
            raise TypeError(f"{type(self).__name__} needs {model.__name__}, got {params!r}")
        super().__init__(config, params)
        self.params = cast(P, params)


def _deciding(results: list[Result]) -> int | None:
    """Which result decides: a fail (grading stops at one), else the first that did not pass."""
    if results[-1].outcome == Outcome.FAIL:
        return len(results) - 1
    return next((i for i, result in enumerate(results) if result.outcome != Outcome.PASS), None)


def _reworded(result: Result, reason: str) -> Result:
    return result.model_copy(update={"reason": reason})


def _check_path(path: str, grader_name: str) -> None:
    try:
        compile_path(path)
    except Exception as exc:  # python-jsonpath raises several error types
        raise ValueError(f"grader {grader_name!r}: invalid JSONPath {path!r}: {exc}") from exc


def excerpt(value: Any, limit: int = _EXCERPT_CHARS) -> str:
    """A short, single-line rendering of a value for a reason: repr for strings, else JSON."""
    text = repr(value) if isinstance(value, str) else _compact_json(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compact_json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # e.g. an integer beyond 64 bits
        return repr(value)


def describe_path(path: str) -> str:
    """A JSONPath as a reason names it: ``$.order_status`` reads as ``order_status``."""
    stripped = path.removeprefix("$.")
    return stripped if stripped.replace(".", "").replace("_", "").isalnum() else path


def json_type(value: Any) -> str:
    """The JSON type name of a value, for reasons."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
