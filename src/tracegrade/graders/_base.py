"""The grader contract: what a grader is, what it returns, and how it is versioned."""

from __future__ import annotations

import fnmatch
import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Self

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from tracegrade.graders._targets import compile_path, find_all
from tracegrade.spans import JSONValue, Span, SpanKind, parse_json_string

if TYPE_CHECKING:
    from tracegrade.graders._targets import TraceContext


class Outcome(StrEnum):
    """A grader's answer for one span. ``error`` is never a pass."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"


class Result(BaseModel):
    """What a grader returns for one span."""

    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    reason: str = ""
    score: float | None = None
    cost: float | None = None
    details: dict[str, Any] | None = None
    """Grader-specific facts stored with the verdict (a judge's model, usage, raw answer…)."""

    @classmethod
    def passed(cls, reason: str = "", score: float | None = None) -> Result:
        """A pass with a reason."""
        return cls(outcome=Outcome.PASS, reason=reason, score=score)

    @classmethod
    def failed(cls, reason: str, score: float | None = None) -> Result:
        """A fail with a reason."""
        return cls(outcome=Outcome.FAIL, reason=reason, score=score)

    @classmethod
    def errored(cls, reason: str) -> Result:
        """The grader could not decide."""
        return cls(outcome=Outcome.ERROR, reason=reason)

    @classmethod
    def skipped(cls, reason: str) -> Result:
        """The grader does not apply to this span."""
        return cls(outcome=Outcome.SKIP, reason=reason)

    @classmethod
    def check(cls, ok: bool, passed: str, failed: str) -> Result:
        """A pass or a fail, each with its own reason."""
        return cls.passed(passed) if ok else cls.failed(failed)


class AppliesTo(BaseModel):
    """Which spans a grader looks at: kind, a name glob, attribute equality, and optionally
    not the spans whose output ``unless_output`` finds something in."""

    model_config = ConfigDict(extra="forbid")

    kind: SpanKind | list[SpanKind] | None = None
    name: str | None = None
    attributes: dict[str, JSONValue] = Field(default_factory=dict)
    unless_output: str | None = None
    """A JSONPath into the output: a span where it finds a value that is not empty is left out
    (``$.choices[*].message.tool_calls[0]``: a turn that called tools has no reply to grade)."""

    @field_validator("unless_output")
    @classmethod
    def _valid_path(cls, path: str | None) -> str | None:
        if path is None:
            return None
        if not path.strip():
            raise ValueError("empty JSONPath: give one such as $.tool_calls[0]")
        try:
            compile_path(path)
        except Exception as exc:  # python-jsonpath raises several error types
            # Its message goes on to draw the query with a caret: a config error is one line.
            first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"invalid JSONPath {path!r}: {first_line}") from exc
        return path

    @model_serializer(mode="wrap")
    def _without_unset_selector(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A grader's version hashes this dump: a config without `unless_output` must dump (and
        # hash) exactly as it did before the key existed.
        dumped: dict[str, Any] = handler(self)
        if self.unless_output is None:
            dumped.pop("unless_output", None)
        return dumped

    def kinds(self) -> list[SpanKind]:
        """The kinds this filter accepts; empty means any."""
        if self.kind is None:
            return []
        return self.kind if isinstance(self.kind, list) else [self.kind]

    def matches(self, span: Span) -> bool:
        """Whether ``span`` is one this grader applies to (asked for every span and grader)."""
        return self.selects(span) and not self.excludes(span)

    def selects(self, span: Span) -> bool:
        """Whether ``span`` has the kind, name and attributes asked for (not ``unless_output``)."""
        kind = self.kind
        if kind is not None and (span.kind not in kind if isinstance(kind, list)
                                 else span.kind != kind):
            return False
        if self.name is not None and not fnmatch.fnmatchcase(span.name, self.name):
            return False
        if not self.attributes:
            return True
        # JSON equality: `experiment: true` is not the number 1 (Python's True == 1). A null
        # asks for the attribute to be null or absent.
        return all(json_equal(span.attributes.get(k), v) for k, v in self.attributes.items())

    def excludes(self, span: Span) -> bool:
        """Whether ``unless_output`` finds a value in the span's output that is not empty.

        Empty is null, false, ``""``, ``[]`` and ``{}`` (a string holding JSON is judged by the
        value it holds, so ``"[]"`` is empty too); a span without output is never excluded, so a
        grader of its output still reports the output missing.
        """
        if self.unless_output is None or span.output is None:
            return False
        try:
            found = find_all(self.unless_output, span.output)
        except Exception:  # asked outside any grader's error handling: the span stays graded
            return False
        return any(not _empty(value) for value in found)


def _empty(value: JSONValue) -> bool:
    value = parse_json_string(value)
    return value is None or value is False or value in ("", [], {})


class GraderConfig(BaseModel):
    """One grader as the user configures it. Type-specific parameters ride along as extras."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    type: str = Field(min_length=1)
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    target: str = "output"
    path: str | None = None
    sample_rate: float | None = Field(default=None, gt=0.0, le=1.0)

    @field_validator("target")
    @classmethod
    def _known_target(cls, target: str) -> str:
        fields = Span.model_fields
        if target in fields or target == "status" or (
                target.startswith("attributes.") and len(target) > len("attributes.")):
            return target
        named = ", ".join(f for f in fields if f not in ("input", "output", "attributes"))
        raise ValueError(f"unknown target {target!r}: use input, output, status, "
                         f"attributes.KEY or a span field ({named})")

    @model_validator(mode="after")
    def _params_as_json(self) -> Self:
        # A grader compares what its version hashes: the parameters' JSON form. YAML reads an
        # unquoted `value: 2024-01-01` as a date, which would never equal the JSON text
        # "2024-01-01" in a span; its JSON form is that text.
        extra = self.__pydantic_extra__
        if extra:
            for key, value in extra.items():
                _reject_non_text_keys(value, key)
            extra.update(self.model_dump(mode="json", include=set(extra)))
        return self

    def params(self) -> dict[str, Any]:
        """The type-specific parameters (everything not common to all graders), as JSON."""
        return dict(self.model_extra or {})


def _reject_non_text_keys(value: Any, where: str) -> None:
    """Raise ValueError naming the first mapping key that is not a string (YAML's ``1:``), or
    the first number that JSON cannot hold (YAML's ``.nan``/``.inf``, which became null)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value}: JSON has no NaN or infinity, so no span field "
                         "can equal it or be compared with it")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"key {key!r} in {where} is not text: JSON keys are strings, "
                                 f"so quote it ('{key}':)")
            _reject_non_text_keys(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _reject_non_text_keys(item, f"{where}[{index}]")


# Keys that select spans or set sampling; they are not part of what a verdict means.
_UNVERSIONED_KEYS = frozenset({"name", "sample_rate"})


def grader_version(config: GraderConfig) -> str:
    """A short hash of the grader's normalized config; a changed grader starts a new series."""
    normalized = {
        k: v for k, v in config.model_dump(mode="json").items() if k not in _UNVERSIONED_KEYS
    }
    digest = hashlib.sha256(orjson.dumps(normalized, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return digest[:12]


class Grader(ABC):
    """Base class for every grader type.

    Subclasses set ``type_name``, optionally a pydantic ``Params`` model for their parameters,
    and implement :meth:`grade`. They are registered with :func:`register`.
    """

    type_name: ClassVar[str]
    Params: ClassVar[type[BaseModel] | None] = None
    needs_trace: ClassVar[bool] = False
    """Set when :meth:`grade` reads other spans of the trace through its context."""

    def __init__(self, config: GraderConfig, params: BaseModel | None) -> None:
        self.config = config
        self.params = params
        self.version = grader_version(config)

    @property
    def name(self) -> str:
        """The grader's configured name."""
        return self.config.name

    def applies_to(self, span: Span) -> bool:
        """Whether this grader looks at ``span`` at all (otherwise no verdict is stored)."""
        return self.config.applies_to.matches(span)

    @abstractmethod
    def grade(self, span: Span, context: TraceContext) -> Result:
        """Grade one span. Raising is allowed: the caller records an ``error`` verdict."""


GraderFactory = type[Grader]

_REGISTRY: dict[str, GraderFactory] = {}


def register(cls: GraderFactory) -> GraderFactory:
    """Class decorator that makes a grader type available under ``cls.type_name``."""
    existing = _REGISTRY.get(cls.type_name)
    if existing is not None and existing is not cls:
        raise ValueError(f"grader type {cls.type_name!r} is registered twice")
    _REGISTRY[cls.type_name] = cls
    return cls


def registered_types() -> dict[str, GraderFactory]:
    """Every grader type known, after loading plugins."""
    load_plugins()
    return dict(sorted(_REGISTRY.items()))


_plugins_loaded = False


def load_plugins(loader: Callable[[], Sequence[Any]] | None = None) -> None:
    """Import every module registered under the ``tracegrade`` entry-point group, once.

    tracegrade's own built-in graders are registered through this same group.
    """
    global _plugins_loaded
    if _plugins_loaded and loader is None:
        return
    from importlib.metadata import entry_points

    for entry_point in loader() if loader else entry_points(group="tracegrade"):
        try:
            entry_point.load()
        except (Exception, SystemExit) as exc:  # a broken package: one line, naming it
            raise PluginError(
                f"grader plugin {entry_point.name!r} ({entry_point.value}) failed to load: "
                f"{type(exc).__name__}: {exc}. Fix or uninstall the package that provides it."
            ) from exc
    _plugins_loaded = True


class PluginError(ValueError):
    """A package registered under the ``tracegrade`` entry-point group cannot be imported."""


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values, where a boolean never equals a number (Python's ``True == 1``)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict | list) or isinstance(right, dict | list):
        return False
    return bool(left == right)
