"""The built-ins register like plugins; the factory builds, validates and versions graders."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import tracegrade.graders as graders_package
from tests.graders.helpers import grade, make_grader, make_span
from tracegrade.graders import (
    GraderConfig,
    Outcome,
    Result,
    build_grader,
    load_plugins,
    register,
    registered_types,
)
from tracegrade.graders import _base as base
from tracegrade.graders._targets import TraceContext, text_of
from tracegrade.graders.builtin import BUILTIN_TYPES
from tracegrade.spans import Span

ALL_BUILTINS = {
    "json_valid",
    "json_schema",
    "field_present",
    "field_absent",
    "regex",
    "not_regex",
    "contains",
    "not_contains",
    "equals",
    "max_latency_ms",
    "max_cost",
    "max_tokens",
    "status_ok",
    "tool_args_valid",
    "script_is",
    "length",
    "python",
    "llm_judge",
    "classify",
}


_REGISTERING_MODULES = ("builtin", "_structure", "_text", "_span_checks", "_tools", "_python",
                        "_judge")


def test_builtins_are_registered_through_the_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """From an empty registry, loading plugins imports the built-ins afresh and registers them."""
    monkeypatch.setattr(base, "_REGISTRY", {})
    monkeypatch.setattr(base, "_plugins_loaded", False)
    for short in _REGISTERING_MODULES:
        # Forget the modules for this test only, so the entry point really imports them.
        monkeypatch.setattr(graders_package, short, sys.modules[f"tracegrade.graders.{short}"])
        monkeypatch.delitem(sys.modules, f"tracegrade.graders.{short}")

    assert base._REGISTRY == {}
    load_plugins()

    assert ALL_BUILTINS <= set(base._REGISTRY)
    assert ALL_BUILTINS <= set(registered_types())


def test_registered_types_lists_every_builtin() -> None:
    assert ALL_BUILTINS <= set(registered_types())
    assert set(BUILTIN_TYPES) == ALL_BUILTINS


def test_entry_point_names_the_builtin_module() -> None:
    values = {point.value for point in entry_points(group="tracegrade")}
    assert "tracegrade.graders.builtin" in values


def test_unknown_type_names_it_and_lists_known_types() -> None:
    with pytest.raises(ValueError, match="unknown grader type 'regexp'") as caught:
        build_grader(GraderConfig(name="x", type="regexp"))
    assert "regex" in str(caught.value) and "json_schema" in str(caught.value)


def test_unknown_param_is_rejected_by_name() -> None:
    with pytest.raises(ValidationError) as caught:
        make_grader("regex", pattern="a", flagz=["IGNORECASE"])
    assert caught.value.errors()[0]["loc"] == ("flagz",)
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_wrongly_typed_param_is_rejected() -> None:
    with pytest.raises(ValidationError, match="max_ms"):
        make_grader("max_latency_ms", max_ms="fast")


def test_params_given_to_a_type_without_params() -> None:
    with pytest.raises(ValueError, match="'status_ok' takes no parameters; got strict"):
        make_grader("status_ok", strict=True)


def test_bad_jsonpath_fails_at_build_time() -> None:
    with pytest.raises(ValueError, match=r"invalid JSONPath '\$\.\['"):
        make_grader("field_present", path="$.[")


def _version(**settings: Any) -> str:
    return make_grader("length", **{"name": "reply_short", "max_chars": 100, **settings}).version


def test_version_changes_with_a_param() -> None:
    assert _version() != _version(max_chars=101)
    assert _version() != _version(target="input")
    assert _version() != _version(applies_to={"kind": "llm"})


def test_version_ignores_name_and_sample_rate() -> None:
    assert _version() == _version(name="renamed") == _version(sample_rate=0.5)


class WordCountParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_words: int = Field(ge=1)


@register
class WordCount(base.Grader):
    """A third-party style grader: registered with @register, built by the factory."""

    type_name = "test_word_count"
    Params = WordCountParams

    def grade(self, span: Span, context: TraceContext) -> Result:
        assert isinstance(self.params, WordCountParams)
        words = len(text_of(span.output).split())
        return Result.check(words <= self.params.max_words, f"{words} words", f"{words} words!")


def test_third_party_grader_works_through_the_factory() -> None:
    grader = make_grader("test_word_count", max_words=3)
    assert isinstance(grader, WordCount)
    assert grader.grade(make_span(output="one two"), TraceContext()).outcome == Outcome.PASS
    failed = grade("test_word_count", make_span(output="a b c d"), max_words=3)
    assert (failed.outcome, failed.reason) == (Outcome.FAIL, "4 words!")
    with pytest.raises(ValidationError, match="max_words"):
        make_grader("test_word_count", max_words=0)
