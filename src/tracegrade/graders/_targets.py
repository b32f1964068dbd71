"""Resolving what a grader looks at: a span's input, output, an attribute, or a JSONPath into them.

This module is tracegrade's one JSONPath helper (RFC 9535 through ``python-jsonpath``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import jsonpath
from jsonpath import JSONPath

from tracegrade.spans import JSONValue, Span


class TargetMissing(Exception):
    """The grader's target is absent or unreadable; the verdict is ``error``, never ``pass``."""


class TraceContext:
    """The other spans of a span's trace, loaded only when a grader asks for them."""

    def __init__(self, load: Callable[[], list[Span]] | None = None) -> None:
        self._load = load
        self._spans: list[Span] | None = None

    def spans(self) -> list[Span]:
        """Every span of the trace known to the store (the span itself included)."""
        if self._spans is None:
            self._spans = self._load() if self._load else []
        return self._spans


EMPTY_CONTEXT = TraceContext()


def target_value(span: Span, target: str) -> JSONValue:
    """The value a target names: ``input``, ``output``, ``attributes.KEY``, ``status`` or a field.

    Raises:
        TargetMissing: when the span has no such value.
    """
    if target in ("input", "output"):
        value = getattr(span, target)
    elif target.startswith("attributes."):
        key = target.removeprefix("attributes.")
        if key not in span.attributes:
            raise TargetMissing(f"span has no attribute {key!r}")
        value = span.attributes[key]
    elif target == "status":
        value = span.status.model_dump(mode="json")
    elif target in Span.model_fields:
        value = getattr(span, target)
    else:
        raise TargetMissing(f"unknown target {target!r}")
    if value is None:
        raise TargetMissing(f"span has no {target}")
    return value


@lru_cache(maxsize=256)
def compile_path(path: str) -> JSONPath:
    """Compile a JSONPath once; raises ``jsonpath.JSONPathError`` on bad syntax."""
    compiled = jsonpath.compile(path)
    if not isinstance(compiled, JSONPath):
        raise ValueError(f"JSONPath {path!r} is a compound query; use a single path")
    return compiled


def find_all(path: str, value: JSONValue) -> list[Any]:
    """Every match of ``path`` in ``value`` (an empty list when nothing matches)."""
    if not isinstance(value, dict | list):
        return []
    names = _member_names(path)
    if names is None:
        return list(compile_path(path).findall(value))
    # ``$.a.b``: each name selector picks that member of an object and nothing from anything
    # else, so a walk gives the same single match as the JSONPath engine, many times faster.
    for name in names:
        if not isinstance(value, dict) or name not in value:
            return []
        value = value[name]
    return [value]


_MEMBER_PATH = re.compile(r"\$(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


@lru_cache(maxsize=256)
def _member_names(path: str) -> tuple[str, ...] | None:
    """The names of a path made only of ``.name`` selectors (``$.a.b``), else None."""
    if not _MEMBER_PATH.fullmatch(path):
        return None
    return tuple(path.split(".")[1:])


def resolve(span: Span, target: str, path: str | None) -> JSONValue:
    """The target's value, narrowed by ``path`` when given (the first match).

    Raises:
        TargetMissing: when the target or the path is absent.
    """
    value = target_value(span, target)
    if path is None:
        return value
    matches = find_all(path, value)
    if not matches:
        raise TargetMissing(f"{path} not found in {target}")
    return matches[0]


_TEXT_KEYS = ("content", "text", "output", "answer", "reply", "response", "message")


def text_of(value: JSONValue) -> str:
    """The human-readable text in a value: a string itself, or the text inside chat structures."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, list):
        # Chat content parts and message lists: the text of each, without their "type"/"role".
        return " ".join(text for item in value if (text := text_of(item)))
    if isinstance(value, dict):
        if isinstance(value.get("messages"), list) and value["messages"]:
            return text_of(value["messages"][-1])
        if isinstance(value.get("choices"), list) and value["choices"]:
            return text_of(value["choices"][0])
        for key in _TEXT_KEYS:
            if key in value and value[key] is not None:
                return text_of(value[key])
    return " ".join(_string_leaves(value))


def _string_leaves(value: JSONValue) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _string_leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _string_leaves(item)
