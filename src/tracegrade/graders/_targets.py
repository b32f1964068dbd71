"""Resolving what a grader looks at: a span's input, output, an attribute, or a JSONPath into them.

This module is tracegrade's one JSONPath helper (RFC 9535 through ``python-jsonpath``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonpath
from jsonpath import JSONPath

from tracegrade.spans import JSONValue, Span, parse_json_string


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


@dataclass(frozen=True)
class PathMatch:
    """One value a JSONPath selects, with where it was found (``$['items'][1]['status']``)."""

    value: JSONValue
    location: str


def target_value(span: Span, target: str) -> JSONValue:
    """The value a target names: ``input``, ``output``, ``attributes.KEY``, ``status`` or a field.

    Fields are read in their JSON form: ``start_time`` is its ISO 8601 text, ``status`` an object.

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
    elif target == "status" or target in Span.model_fields:
        value = span.model_dump(mode="json", include={target})[target]
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
    """Every match of ``path`` in ``value`` (an empty list when nothing matches).

    See :func:`find_matches` for how JSON held in strings is read.
    """
    return [match.value for match in find_matches(path, value)]


def find_matches(path: str, value: JSONValue) -> list[PathMatch]:
    """Every match of ``path`` in ``value``, in document order.

    The path reads into JSON held in text: a string met on the way (the target itself, or a
    member holding ``'{"order_status": "shipped"}'``) is walked as the object or array it
    holds. A matched value is returned as recorded, so a string the path ends on stays text.
    """
    names = _member_names(path)
    if names is not None:
        return _walk_names(path, names, value)
    parsed = _parse_json_strings(value)
    if not isinstance(parsed, dict | list):
        return []
    matches = compile_path(path).finditer(parsed)
    if parsed is value:
        return [PathMatch(match.obj, match.path) for match in matches]
    return [PathMatch(_recorded(value, match.parts, match.obj), match.path) for match in matches]


def _walk_names(path: str, names: tuple[str, ...], value: JSONValue) -> list[PathMatch]:
    # ``$.a.b``: each name selector picks that member of an object and nothing from anything
    # else, so a walk gives the same single match as the JSONPath engine, many times faster.
    for name in names:
        value = parse_json_string(value)
        if not isinstance(value, dict) or name not in value:
            return []
        value = value[name]
    return [PathMatch(value, path)]


def _parse_json_strings(value: JSONValue) -> JSONValue:
    """``value`` with every string that holds a JSON object or array replaced by that value.

    Returns ``value`` itself when no string in it holds JSON (the common case: no copy).
    """
    if isinstance(value, str):
        parsed = parse_json_string(value)
        return value if parsed is value else _parse_json_strings(parsed)
    if isinstance(value, dict):
        members = {key: _parse_json_strings(item) for key, item in value.items()}
        changed = any(members[key] is not item for key, item in value.items())
        return members if changed else value
    if isinstance(value, list):
        items = [_parse_json_strings(item) for item in value]
        return items if any(new is not old for new, old in zip(items, value, strict=True)) \
            else value
    return value


def _recorded(value: JSONValue, parts: tuple[Any, ...], parsed_match: JSONValue) -> JSONValue:
    """The match at ``parts`` as the target records it (text stays text), walking into JSON
    text on the way; the parsed match when the walk cannot follow ``parts``."""
    for part in parts:
        value = parse_json_string(value)
        if isinstance(value, dict) and isinstance(part, str) and part in value:
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and -len(value) <= part < len(
                value):
            value = value[part]
        else:
            return parsed_match
    return value


_MEMBER_PATH = re.compile(r"\$(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


@lru_cache(maxsize=256)
def _member_names(path: str) -> tuple[str, ...] | None:
    """The names of a path made only of ``.name`` selectors (``$.a.b``), else None."""
    if not _MEMBER_PATH.fullmatch(path):
        return None
    return tuple(path.split(".")[1:])


def resolve_all(span: Span, target: str, path: str | None) -> list[PathMatch]:
    """The target's value, or with ``path`` every match of it in the target (at least one).

    Raises:
        TargetMissing: when the target is absent, or the path matches nothing in it.
    """
    value = target_value(span, target)
    if path is None:
        return [PathMatch(value, "$")]
    matches = find_matches(path, value)
    if not matches:
        raise TargetMissing(f"{path} not found in {target}")
    return matches


def resolve(span: Span, target: str, path: str | None) -> JSONValue:
    """The target's value, narrowed by ``path`` when given: its first match.

    A grader that must hold for every match of a path uses :func:`resolve_all`.

    Raises:
        TargetMissing: when the target or the path is absent.
    """
    return resolve_all(span, target, path)[0].value


def text_of(value: JSONValue) -> str:
    """The human-readable text in a value, for the text graders.

    A string is itself and a number or boolean its JSON text. Chat structures give their reply:
    the content of every choice of a completion, the last message of a ``messages`` list, a
    message's content (nothing for a message that only calls tools), the text of content parts
    (nothing of image, audio or file parts). Any other object or array gives every string and
    number in it, joined by spaces, so that none of its content escapes a ``not_regex``.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return " ".join(text for text in _texts(value) if text)


# Content parts that carry no text of their own: their URLs and type markers are not the reply.
_SILENT_PARTS = frozenset({
    "image_url", "image", "input_image", "input_audio", "audio", "file", "input_file",
    "tool_use", "function_call", "tool_call",
})
_TEXT_PARTS = frozenset({"text", "input_text", "output_text", "refusal", "tool_result"})
_PARTS = _SILENT_PARTS | _TEXT_PARTS


def _texts(value: JSONValue) -> Iterator[str]:
    """The texts a value shows: see :func:`text_of` (a boolean inside a structure is no text)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield json.dumps(value)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        yield from _object_texts(value)


def _object_texts(value: dict[str, Any]) -> Iterator[str]:
    choices, messages = value.get("choices"), value.get("messages")
    if isinstance(choices, list) and choices:  # a chat completion: every choice's reply
        for choice in choices:
            yield from _choice_texts(choice)
    elif isinstance(messages, list) and messages:  # a conversation: its latest message
        yield from _texts(messages[-1])
    elif "role" in value and ("content" in value or "tool_calls" in value):  # one message
        yield from _texts(value.get("content"))
        if isinstance(value.get("refusal"), str):  # OpenAI's refusal, beside a null content
            yield value["refusal"]
    elif isinstance(value.get("type"), str) and value["type"] in _PARTS:  # a content part
        yield from _part_texts(value)
    else:
        for item in value.values():
            yield from _texts(item)


def _choice_texts(choice: JSONValue) -> Iterator[str]:
    if isinstance(choice, dict):
        for key in ("message", "delta"):
            if isinstance(choice.get(key), dict):
                yield from _texts(choice[key])
                return
        if isinstance(choice.get("text"), str):  # a text completion's choice
            yield choice["text"]
            return
    yield from _texts(choice)


def _part_texts(part: dict[str, Any]) -> Iterator[str]:
    kind = part["type"]
    if kind == "refusal":
        yield from _texts(part.get("refusal"))
    elif kind == "tool_result":
        yield from _texts(part.get("content"))
    elif kind in _TEXT_PARTS:
        yield from _texts(part.get("text"))
