"""tracegrade's built-in graders, registered through the ``tracegrade`` entry-point group.

Importing this module registers every built-in type with :func:`~tracegrade.graders.register`,
exactly as a third-party plugin module would.
"""

from __future__ import annotations

from tracegrade.graders._judge import Classify, LlmJudge
from tracegrade.graders._python import PythonGrader
from tracegrade.graders._span_checks import MaxCost, MaxLatency, MaxTokens, StatusOk
from tracegrade.graders._structure import Equals, FieldAbsent, FieldPresent, JsonSchema, JsonValid
from tracegrade.graders._text import Contains, Length, NotContains, NotRegex, Regex, ScriptIs
from tracegrade.graders._tools import ToolArgsValid

BUILTIN_GRADERS = (
    JsonValid,
    JsonSchema,
    FieldPresent,
    FieldAbsent,
    Regex,
    NotRegex,
    Contains,
    NotContains,
    Equals,
    MaxLatency,
    MaxCost,
    MaxTokens,
    StatusOk,
    ToolArgsValid,
    ScriptIs,
    Length,
    PythonGrader,
    LlmJudge,
    Classify,
)
"""Every built-in grader class, in the order the README lists them."""

BUILTIN_TYPES = tuple(cls.type_name for cls in BUILTIN_GRADERS)
"""Every built-in grader type name."""

__all__ = ["BUILTIN_GRADERS", "BUILTIN_TYPES"]
