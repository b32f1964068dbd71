"""One-line descriptions of pydantic validation errors, for the config and grader parameters."""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import ValidationError


def describe_validation_error(exc: ValidationError, raw: dict[str, Any] | None = None,
                              root: str = "config") -> str:
    """The first problem of a pydantic error as ``key.path: what is wrong``.

    ``raw`` (the input) lets list items be named by their ``name``; ``root`` names an error
    of the whole value.

    An unknown key is named before anything else: a misspelt key usually also leaves a required
    one missing, and the missing one alone would not say what to fix.
    """
    errors = exc.errors()
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    error = unknown[0] if unknown else errors[0]
    location = _location(error["loc"], raw) or root
    rest = len(errors) - 1
    if error["type"] == "extra_forbidden":
        message = "unknown key"
        meant = _meant(error, errors)
        if meant is not None:
            message += f" (did you mean {meant}?)"
            rest -= 1  # the missing key it replaces is the same mistake
    elif error["type"] == "string_pattern_mismatch":
        message = _pattern_message(error)
    elif error["type"] == "value_error" and (error.get("ctx") or {}).get("error") is not None:
        message = str(error["ctx"]["error"])  # a validator's own words, without "Value error, "
    else:
        message = error["msg"]
    extra = f" (and {rest} more)" if rest > 0 else ""
    return f"{location}: {message}{extra}"


def _meant(unknown: Any, errors: list[Any]) -> str | None:
    """The missing sibling key an unknown key most resembles (a misspelling of it)."""
    parent, key = unknown["loc"][:-1], unknown["loc"][-1]
    missing = [str(e["loc"][-1]) for e in errors
               if e["type"] == "missing" and e["loc"][:-1] == parent and e["loc"]]
    close = difflib.get_close_matches(str(key), missing, n=1, cutoff=0.6)
    return close[0] if close else None


_PATTERN_HINTS = {
    r"^[A-Za-z0-9_.:-]+$": "use only ASCII letters, digits and _ . : -",
    r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$": "write it as module:function (e.g. my_graders:check)",
}
_CHOICE_PATTERN = re.compile(r"^\^\(([\w|-]+)\)\$$")


def _pattern_message(error: Any) -> str:
    """What a value that failed a ``pattern=`` must look like, in words rather than a regex."""
    pattern = str((error.get("ctx") or {}).get("pattern", ""))
    value = error.get("input")
    choices = _CHOICE_PATTERN.match(pattern)
    if pattern in _PATTERN_HINTS:
        hint = _PATTERN_HINTS[pattern]
    elif choices:
        hint = f"use one of {', '.join(choices.group(1).split('|'))}"
    else:
        hint = f"it must match the regular expression {pattern}"
    return f"{value!r} is not allowed: {hint}"


def _location(loc: tuple[int | str, ...], raw: dict[str, Any] | None) -> str:
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int):
            label = ""
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                label = f" ({node[item].get('name')})" if node[item].get("name") else ""
            parts.append(f"[{item}]{label}")
        elif item in ("otlp_file", "jsonl", "langfuse", "braintrust", "otlp",
                      "function-after[_unique_names()]"):
            continue
        else:
            parts.append(f".{item}" if parts else str(item))
        node = _child(node, item)
    return "".join(parts)


def _child(node: Any, key: int | str) -> Any:
    if isinstance(node, list) and isinstance(key, int) and key < len(node):
        return node[key]
    if isinstance(node, dict):
        return node.get(key)
    return None
