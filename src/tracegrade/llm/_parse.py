"""Reading a judge's answer: JSON when the provider enforced it, robustly when it did not.

An answer that cannot be read, or names a label outside the allowed set, raises
:class:`AnswerUnreadable`; the judge asks again and finally records an ``error`` verdict with the
raw text. Nothing here ever guesses a pass.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

_VERDICT_KEYS = ("verdict", "result", "decision", "outcome", "answer", "grade", "pass")
_LABEL_KEYS = ("label", "class", "category", "answer", "choice")
_CRITIQUE_KEYS = ("critique", "reason", "reasoning", "explanation", "rationale", "justification")
_PASS_WORDS = frozenset({"pass", "passed", "yes", "true"})
_FAIL_WORDS = frozenset({"fail", "failed", "no", "false"})
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_CRITIQUE_CHARS = 2000


class AnswerUnreadable(ValueError):
    """The judge's answer does not say a verdict (or an allowed label) unambiguously."""


@dataclass(frozen=True)
class VerdictAnswer:
    """A binary judge's answer."""

    passed: bool
    critique: str
    score: float | None = None


@dataclass(frozen=True)
class LabelAnswer:
    """A classifying judge's answer: one of the allowed labels."""

    label: str
    critique: str


def parse_verdict(text: str) -> VerdictAnswer:
    """The verdict in a judge's answer: a JSON object, or a ``Verdict: PASS`` line.

    Raises:
        AnswerUnreadable: no unambiguous pass or fail — including JSON objects that disagree
            with each other or with a ``Verdict:`` line outside them (a judge that changed its
            mind).
    """
    objects, outside = _answer_parts(text)
    if objects:
        values = [_first(answer, _VERDICT_KEYS) for answer in objects]
        verdicts = {_pass_or_fail(value) for value in values}
        if None in verdicts:
            raise AnswerUnreadable(f"no pass/fail verdict in the answer (got {_show(values[0])})")
        # Another verdict-like key that names the other outcome: the fields disagree
        verdicts |= {_pass_or_fail(answer[key]) for answer in objects
                     for key in _VERDICT_KEYS if key in answer} - {None}
        if len(verdicts) > 1:
            raise AnswerUnreadable("the answer holds JSON verdicts that disagree")
        passed = bool(verdicts.pop())
        _agrees(outside, ("pass", "fail"), "pass" if passed else "fail")
        return VerdictAnswer(passed, _critique(objects[-1], text),
                             _score(objects[-1].get("score")))
    word = _labelled_line(text, ("pass", "fail"))
    if word is None:
        raise AnswerUnreadable("the answer is neither JSON nor a 'Verdict: pass/fail' line "
                               "(nor says one verdict unambiguously)")
    return VerdictAnswer(word == "pass", _prose_critique(text))


def parse_label(text: str, labels: Sequence[str]) -> LabelAnswer:
    """The label a classifying judge chose, matched case-insensitively against ``labels``.

    Raises:
        AnswerUnreadable: no label, one outside ``labels``, or several that disagree.
    """
    by_folded = {label.casefold(): label for label in labels}
    objects, outside = _answer_parts(text)
    if objects:
        values = [_first(answer, _LABEL_KEYS) for answer in objects]
        chosen = set()
        for value in values:
            if not isinstance(value, str) or value.strip().casefold() not in by_folded:
                raise AnswerUnreadable(f"label {_show(value)} is not one of {', '.join(labels)}")
            chosen.add(value.strip().casefold())
        chosen |= {answer[key].strip().casefold() for answer in objects for key in _LABEL_KEYS
                   if isinstance(answer.get(key), str)
                   and answer[key].strip().casefold() in by_folded}
        if len(chosen) > 1:
            raise AnswerUnreadable("the answer holds JSON labels that disagree")
        label = chosen.pop()
        _agrees(outside, tuple(by_folded), label)
        return LabelAnswer(by_folded[label], _critique(objects[-1], text))
    word = _labelled_line(text, tuple(by_folded))
    if word is None:
        raise AnswerUnreadable(f"the answer names none of the labels {', '.join(labels)}")
    return LabelAnswer(by_folded[word], _prose_critique(text))


def answer_object(text: str) -> dict[str, Any] | None:
    """The JSON object in an answer: the whole text, a fenced block, or the outermost braces."""
    objects, _ = _answer_parts(text)
    return objects[-1] if objects else None


def _answer_parts(text: str) -> tuple[list[dict[str, Any]], str]:
    """Every JSON object the answer holds (the whole text; else each fenced block and the
    outermost braces), keys folded, and the text outside them."""
    whole = _object(text.strip())
    if whole is not None:
        return [whole], ""
    objects: list[dict[str, Any]] = []
    spans: list[tuple[int, int]] = []
    for match in _FENCE.finditer(text):
        found = _object(match.group(1).strip())
        if found is not None:
            objects.append(found)
            spans.append(match.span())
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        found = _object(text[start:end + 1])
        if found is not None:
            objects.append(found)
            spans.append((start, end + 1))
    outside = text
    for first, last in spans:  # blank what was read as JSON, keeping the other offsets
        outside = outside[:first] + " " * (last - first) + outside[last:]
    if not objects and _JSON_START.search(text):
        # A JSON answer cut off or mangled: its words are not read as prose (a critique that
        # says "the expected result: pass only when…" is no verdict).
        raise AnswerUnreadable("the answer's JSON is cut off or malformed")
    return objects, outside


_JSON_START = re.compile(r'\{\s*"')
_CHOICE_KEYS = frozenset(_VERDICT_KEYS + _LABEL_KEYS)


def _object(candidate: str) -> dict[str, Any] | None:
    try:
        value = json.loads(candidate, object_pairs_hook=_folded_object)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _folded_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object with its keys folded; a verdict or label key given twice with different
    values (JSON parsers keep the last one silently) makes the answer unreadable."""
    folded: dict[str, Any] = {}
    for key, item in pairs:
        name = key.strip().casefold()
        if name in _CHOICE_KEYS and name in folded and folded[name] != item:
            raise AnswerUnreadable(f"the answer's JSON gives {name!r} twice, differently")
        folded[name] = item
    return folded


def _agrees(outside: str, words: Sequence[str], chosen: str) -> None:
    """Raise unless every ``Verdict:``/``Label:`` line outside the JSON names ``chosen``."""
    said = _labelled_words(outside, words)
    if said - {chosen}:
        raise AnswerUnreadable(f"the answer's JSON says {chosen!r} but its text says "
                               f"{', '.join(sorted(said - {chosen}))!r}")


def _first(answer: dict[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in answer:
            return answer[key]
    return None


def _pass_or_fail(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().strip(".!").casefold()
        if word in _PASS_WORDS:
            return True
        if word in _FAIL_WORDS:
            return False
    return None


def _score(value: Any) -> float | None:
    if isinstance(value, str):  # "0.8": a judge that quoted its number
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _critique(answer: dict[str, Any], text: str) -> str:
    value = _first(answer, _CRITIQUE_KEYS)
    critique = value if isinstance(value, str) else ""
    return " ".join(critique.split())[:_CRITIQUE_CHARS]


def _labelled_line(text: str, words: Sequence[str]) -> str | None:
    """The word every ``Verdict: X`` / ``Label: X`` in the text names, or the answer as one word.

    None when a ``Verdict:`` (``Label:``, ``Decision:``) is followed by anything else on its
    line ("My verdict: the reply fails." beside "Answer: pass" is no pass).
    """
    matches = _labelled(text, words)
    found = {match.group(1).casefold() for match in matches}
    bare = text.strip().strip(".!*\"'").casefold()
    if bare in words:
        found.add(bare)
    named = {match.start() for match in matches}
    if any(keyed.start() not in named for keyed in _KEYED.finditer(text)):
        return None
    return found.pop() if len(found) == 1 else None


_KEYED = re.compile(r"\b(?:verdict|label|decision)\W*?[:=\-][ \t*_]*(?=\S)", re.IGNORECASE)
"""A ``Verdict:`` with something after it on its line (checked to name a choice)."""


def _labelled_words(text: str, words: Sequence[str]) -> set[str]:
    """Every word named after ``Verdict:``, ``Label:`` and the like, anywhere in the text."""
    return {match.group(1).casefold() for match in _labelled(text, words)}


def _labelled(text: str, words: Sequence[str]) -> list[re.Match[str]]:
    """Each ``Verdict: X``, ``Label: X`` and the like, anywhere in the text.

    Anywhere, so a judge that changes its mind ("…actually, verdict: fail") gives two different
    words and is unreadable rather than read by its first line. Only a word that ends its line
    or sentence counts: "Verdict: pass or fail cannot be decided", "verdict: pass, but it
    fails", "result: pass rate…", "Verdict: PASS?" and "pass@1" name no choice.
    """
    alternatives = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
    pattern = re.compile(rf"\b(?:verdict|label|answer|result|decision)\W*?[:=\-]\W*"
                         rf"({alternatives})[*\"'`)\]}}]*(?=[ \t]*$|[.!](?:\s|$))",
                         re.IGNORECASE | re.MULTILINE)
    return list(pattern.finditer(text))


def _prose_critique(text: str) -> str:
    return " ".join(text.split())[:_CRITIQUE_CHARS]


def _show(value: Any) -> str:
    shown = repr(value) if not isinstance(value, dict | list) else orjson.dumps(value).decode()
    return shown if len(shown) <= 60 else shown[:59] + "…"
