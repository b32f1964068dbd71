"""The python grader: user functions named "module:function"."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.graders.helpers import context_of, grade, make_grader, make_span
from tracegrade.graders import GraderConfig, Outcome
from tracegrade.graders._base import PluginError, load_plugins
from tracegrade.graders._targets import EMPTY_CONTEXT
from tracegrade.grading import grade_one

MODULE = "tests.graders.grade_functions"


def test_bool_true_passes_and_false_fails() -> None:
    passed = grade("python", make_span(output="yes please"), function=f"{MODULE}:polite")
    assert (passed.outcome, passed.reason) == (Outcome.PASS, f"{MODULE}:polite returned True")
    failed = grade("python", make_span(output="no"), function=f"{MODULE}:polite")
    assert (failed.outcome, failed.reason) == (Outcome.FAIL, f"{MODULE}:polite returned False")


def test_tuple_gives_outcome_and_reason() -> None:
    result = grade("python", make_span(output="a b c d e f"), function=f"{MODULE}:with_reason")
    assert (result.outcome, result.reason) == (Outcome.FAIL, "6 words")


def test_result_is_returned_as_is() -> None:
    result = grade("python", make_span(output="x"), function=f"{MODULE}:as_result")
    assert (result.outcome, result.reason, result.score) == (Outcome.PASS, "custom", 0.75)


def test_outcome_string_is_accepted_in_any_case() -> None:
    result = grade("python", make_span(), function=f"{MODULE}:returns_outcome_string")
    assert result.outcome == Outcome.SKIP


def test_two_parameter_function_gets_the_trace_context() -> None:
    span = make_span(output="x")
    other = make_span(span_id="s2")
    result = grade("python", span, context_of(span, other), function=f"{MODULE}:trace_size")
    assert (result.outcome, result.reason) == (Outcome.PASS, "trace has 2 spans")


def test_class_attribute_path_is_importable() -> None:
    result = grade("python", make_span(model="gpt"), function=f"{MODULE}:Checks.has_model")
    assert result.outcome == Outcome.PASS


def test_unreadable_return_value_is_error_naming_it() -> None:
    result = grade("python", make_span(), function=f"{MODULE}:returns_number")
    assert result.outcome == Outcome.ERROR
    assert result.reason.startswith(f"{MODULE}:returns_number returned int 3; expected a Result")


def test_tuple_with_non_string_reason_is_error() -> None:
    result = grade("python", make_span(), function=f"{MODULE}:returns_bad_tuple")
    assert result.outcome == Outcome.ERROR
    assert 'returned tuple ["pass",5]' in result.reason


def test_raising_function_is_error_with_the_exception() -> None:
    result = grade("python", make_span(), function=f"{MODULE}:raises")
    assert (result.outcome, result.reason) == (
        Outcome.ERROR,
        f"{MODULE}:raises raised KeyError: \"'order_status'\"",
    )


def test_module_is_imported_once_at_construction() -> None:
    grader = make_grader("python", function=f"{MODULE}:polite")
    from tests.graders import grade_functions

    assert grader.function is grade_functions.polite  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("tests.graders.nope:check", "cannot import module 'tests.graders.nope': ModuleNotFound"),
        (
            "tests.graders.broken_module:check",
            "cannot import module 'tests.graders.broken_module': RuntimeError: database URL",
        ),
        (
            "tests.graders.exiting_module:check",
            "cannot import module 'tests.graders.exiting_module': SystemExit: no config",
        ),
        (f"{MODULE}:missing", f"'{MODULE}' has no 'missing'"),
        (f"{MODULE}:NOT_CALLABLE", "'NOT_CALLABLE' is not callable"),
        (f"{MODULE}:needs_three", "takes \\(span\\) or \\(span, context\\); it has"),
        (f"{MODULE}:takes_nothing", "takes \\(span\\) or \\(span, context\\); it has \\(\\)"),
    ],
)
def test_bad_function_fails_at_construction(function: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_grader("python", function=function)


def test_function_must_be_module_colon_name() -> None:
    with pytest.raises(ValidationError, match="function"):
        make_grader("python", function="tests.graders.grade_functions.polite")


def test_a_reason_is_one_line_of_at_most_300_chars() -> None:
    result = grade("python", make_span(), function=f"{MODULE}:long_multiline_reason")
    assert result.outcome == Outcome.FAIL
    assert result.reason.startswith("first line second line xxx")
    assert len(result.reason) == 300 and result.reason.endswith("…")


def test_sys_exit_in_a_grade_function_is_an_error() -> None:
    # SystemExit is no Exception: it ended the whole grade run, silently, with exit code 0.
    result = grade("python", make_span(), function=f"{MODULE}:exits")
    assert (result.outcome, result.reason) == (Outcome.ERROR, f"{MODULE}:exits called sys.exit(3)")


@pytest.mark.parametrize(("function", "reason"), [
    ("decimal_details", "grader returned details that are not JSON (Type is not JSON "
                        "serializable: decimal.Decimal); its verdict was pass"),
    ("infinite_score", "grader returned the score inf, which is no number; its verdict was fail"),
])
def test_what_the_store_cannot_write_is_an_error_verdict(function: str, reason: str) -> None:
    # Details the store could not serialise failed the write of every verdict of the page.
    grader = make_grader("python", function=f"{MODULE}:{function}")
    result = grade_one(grader, make_span(), EMPTY_CONTEXT)
    assert (result.outcome, result.reason) == (Outcome.ERROR, reason)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [1.0, float("-inf")]])
def test_a_parameter_json_cannot_hold_is_a_config_error(value: object) -> None:
    # YAML's .nan became null in the parameters' JSON form, and equals then passed nulls.
    with pytest.raises(ValidationError, match="JSON has no NaN or infinity"):
        GraderConfig(type="equals", name="score_set", path="$.score", value=value)


def test_a_plugin_that_fails_to_load_is_one_error_naming_it() -> None:
    from importlib.metadata import EntryPoint

    broken = EntryPoint(name="acme", value="tests.graders.broken_module", group="tracegrade")
    with pytest.raises(PluginError, match="grader plugin 'acme' \\(tests.graders.broken_module"
                                          "\\) failed to load: RuntimeError: database URL"):
        load_plugins(lambda: [broken])


def test_editing_the_function_starts_a_new_version(workspace: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # The version hashed the config only: an edited function never graded anything again.
    monkeypatch.syspath_prepend(str(workspace))
    versions = []
    for body in ("return True", "return 'sorry' not in str(span.output)"):
        (workspace / "edited_grader.py").write_text(f"def check(span):\n    {body}\n")
        sys.modules.pop("edited_grader", None)
        versions.append(make_grader("python", function="edited_grader:check").version)
    sys.modules.pop("edited_grader", None)
    assert versions[0] != versions[1]
    assert make_grader("python", function="edited_grader:check").version == versions[1]


@pytest.mark.parametrize("function", ["sleeps", "swallows_everything"])
def test_a_call_past_its_timeout_is_interrupted_as_an_error(function: str) -> None:
    # A grade function that never returned held the whole run, other graders' verdicts too.
    result = grade("python", make_span(), function=f"{MODULE}:{function}", timeout_s=0.3)
    assert (result.outcome, result.reason) == (
        Outcome.ERROR, f"{MODULE}:{function} did not return within 0.3 s (timeout_s)")
