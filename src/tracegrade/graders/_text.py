"""Built-in graders over the text of a target: patterns, substrings and length.

Each reads ``text_of(target)``: a string target as it is, the reply text inside chat structures,
or every string and number in another JSON value joined by spaces. With a path, each match is
read and all must pass; a target holding null is an ``error`` (among several matches, those
holding null are left out, as long as one holds something).
"""

from __future__ import annotations

from abc import abstractmethod
from functools import reduce
from itertools import takewhile
from typing import Literal, Self

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tracegrade.graders._base import GraderConfig, Result, register
from tracegrade.graders._common import ParamsGrader, ValueGrader, excerpt
from tracegrade.graders._scripts import script_of
from tracegrade.graders._targets import text_of
from tracegrade.spans import JSONValue

RegexFlag = Literal["IGNORECASE", "MULTILINE", "DOTALL", "VERBOSE", "ASCII"]

REGEX_TIMEOUT_S = 2.0
"""A pathological pattern on a long reply is cut off and recorded as ``error``."""

_SCRIPT_SCAN_CHARS = 500


class RegexParams(BaseModel):
    """Parameters of ``regex`` and ``not_regex``."""

    model_config = ConfigDict(extra="forbid", title="regex params")

    pattern: str = Field(
        min_length=1,
        description="Searched for anywhere in the text (anchor with ^ and $ for a full match). "
        "Python `re` syntax, plus \\p{...} Unicode properties (the `regex` package).",
    )
    flags: list[RegexFlag] = Field(
        default_factory=list,
        description='Any of "IGNORECASE", "MULTILINE", "DOTALL", "VERBOSE", "ASCII".',
    )

    @model_validator(mode="after")
    def _compiles(self) -> Self:
        try:
            compile_pattern(self.pattern, self.flags)
        except regex.error as exc:
            raise ValueError(f"pattern {self.pattern!r} does not compile: {exc}") from exc
        return self


def compile_pattern(pattern: str, flags: list[RegexFlag]) -> regex.Pattern[str]:
    """Compile ``pattern`` with the named flags."""
    combined = reduce(lambda acc, name: acc | getattr(regex, name), flags, 0)
    return regex.compile(pattern, combined)


class _TextGrader(ValueGrader):
    """A grader of the target's text; a null value (``$.reply`` holding null) is an ``error``,
    but among several matches one holding null has no text to check and is left out."""

    skip_null_matches = True

    def check_value(self, value: JSONValue) -> Result:
        """Grade the text of ``value``."""
        if value is None:
            return Result.errored(f"{self.where} is null")
        return self.check_text(text_of(value))

    @abstractmethod
    def check_text(self, text: str) -> Result:
        """Decide pass / fail / error on the text."""


class _PatternGrader(_TextGrader, ParamsGrader[RegexParams]):
    """Shared set-up of ``regex`` / ``not_regex``: the pattern is compiled once."""

    Params = RegexParams

    def __init__(self, config: GraderConfig, params: BaseModel | None) -> None:
        super().__init__(config, params)
        self.pattern = compile_pattern(self.params.pattern, self.params.flags)

    def check_text(self, text: str) -> Result:
        """Search the text; a search that runs too long is an ``error``."""
        try:
            found = self.pattern.search(text, timeout=REGEX_TIMEOUT_S)
        except TimeoutError:
            return Result.errored(f"pattern took over {REGEX_TIMEOUT_S:g} s on {self.where}")
        return self.verdict(found)

    @abstractmethod
    def verdict(self, found: regex.Match[str] | None) -> Result:
        """Pass or fail given the first match, or None when nothing matched."""

    def shown(self, found: regex.Match[str]) -> str:
        """A match as a reason shows it."""
        return f"{excerpt(found.group(0), 40)} at char {found.start()}"

    @property
    def no_match(self) -> str:
        """The reason for finding nothing."""
        # On one line: a VERBOSE pattern spans several.
        return f"no match for /{' '.join(self.params.pattern.split())}/ in {self.where}"


@register
class Regex(_PatternGrader):
    """Pass when ``pattern`` matches somewhere in the target's text."""

    type_name = "regex"

    def verdict(self, found: regex.Match[str] | None) -> Result:
        """A match passes."""
        if found is None:
            return Result.failed(self.no_match)
        return Result.passed(f"matched {self.shown(found)}")


@register
class NotRegex(_PatternGrader):
    """Pass when ``pattern`` matches nowhere in the target's text."""

    type_name = "not_regex"

    def verdict(self, found: regex.Match[str] | None) -> Result:
        """A match fails."""
        if found is None:
            return Result.passed(self.no_match)
        return Result.failed(f"forbidden match {self.shown(found)}")


class ContainsParams(BaseModel):
    """Parameters of ``contains`` and ``not_contains`` (give ``value`` or ``values``)."""

    model_config = ConfigDict(extra="forbid", title="contains params")

    value: str | None = Field(default=None, min_length=1, description="One substring.")
    values: list[str] | None = Field(
        default=None, min_length=1, description="Several substrings, combined by `mode`."
    )
    mode: Literal["any", "all"] = Field(
        default="any",
        description="contains: any = at least one appears, all = every one appears. "
        "not_contains is the negation: any = none may appear, all = not all may appear.",
    )
    case_sensitive: bool = Field(default=True, description="False compares case-folded text.")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.value is None) == (self.values is None):
            raise ValueError("give exactly one of `value` or `values`")
        if self.values is not None and not all(self.values):
            raise ValueError("`values` must not hold an empty string")
        return self

    def needles(self) -> list[str]:
        """The substrings to look for."""
        return [self.value] if self.value is not None else list(self.values or [])


class _SubstringGrader(_TextGrader, ParamsGrader[ContainsParams]):
    """Shared look-up of ``contains`` / ``not_contains``."""

    Params = ContainsParams

    def found(self, text: str) -> tuple[list[str], list[str]]:
        """The needles present in and missing from ``text``, in configured order."""
        fold = (lambda s: s) if self.params.case_sensitive else str.casefold
        haystack = fold(text)
        needles = self.params.needles()
        present = [n for n in needles if fold(n) in haystack]
        return present, [n for n in needles if n not in present]

    def holds(self, present: list[str], missing: list[str]) -> bool:
        """Whether ``contains`` holds under the configured mode."""
        return not missing if self.params.mode == "all" else bool(present)


@register
class Contains(_SubstringGrader):
    """Pass when the target's text contains ``value``, or any / all of ``values``."""

    type_name = "contains"

    def check_text(self, text: str) -> Result:
        """Look for the substrings."""
        present, missing = self.found(text)
        if self.holds(present, missing):
            return Result.passed(f"{_quoted(present)} found in {self.where}")
        if self.params.mode == "all":
            return Result.failed(f"{_quoted(missing)} missing from {self.where}")
        return Result.failed(f"none of {_quoted(missing)} in {self.where}")


@register
class NotContains(_SubstringGrader):
    """Pass when ``contains`` with the same parameters would fail."""

    type_name = "not_contains"

    def check_text(self, text: str) -> Result:
        """Look for the substrings."""
        present, missing = self.found(text)
        if self.holds(present, missing):
            return Result.failed(f"forbidden {_quoted(present)} found in {self.where}")
        if self.params.mode == "all":
            return Result.passed(f"{_quoted(missing)} absent from {self.where}")
        return Result.passed(f"none of {_quoted(missing)} in {self.where}")


def _quoted(needles: list[str], shown: int = 3) -> str:
    listed = ", ".join(excerpt(n, 30) for n in needles[:shown])
    return listed + (f" (+{len(needles) - shown} more)" if len(needles) > shown else "")


class LengthParams(BaseModel):
    """Parameters of ``length``; at least one bound is required."""

    model_config = ConfigDict(extra="forbid", title="length params")

    min_chars: int | None = Field(default=None, ge=0, description="Fewest characters allowed.")
    max_chars: int | None = Field(default=None, ge=0, description="Most characters allowed.")
    min_words: int | None = Field(
        default=None, ge=0, description="Fewest whitespace-separated words allowed."
    )
    max_words: int | None = Field(
        default=None, ge=0, description="Most whitespace-separated words allowed."
    )

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        bounds = (self.min_chars, self.max_chars, self.min_words, self.max_words)
        if all(bound is None for bound in bounds):
            raise ValueError("give at least one of min_chars, max_chars, min_words, max_words")
        for low, high, unit in (
            (self.min_chars, self.max_chars, "chars"),
            (self.min_words, self.max_words, "words"),
        ):
            if low is not None and high is not None and low > high:
                raise ValueError(f"min_{unit} {low} > max_{unit} {high}")
        return self


@register
class Length(_TextGrader, ParamsGrader[LengthParams]):
    """Pass when the target's text is within the configured character and word bounds."""

    type_name = "length"
    Params = LengthParams

    def check_text(self, text: str) -> Result:
        """Count characters (code points) and whitespace-separated words."""
        chars, words = len(text), len(text.split())
        problems = [
            *_outside(chars, self.params.min_chars, self.params.max_chars, "chars"),
            *_outside(words, self.params.min_words, self.params.max_words, "words"),
        ]
        if problems:
            return Result.failed(f"{self.where} has {'; '.join(problems)}")
        return Result.passed(f"{self.where} has {chars} chars, {words} words")


def _outside(count: int, low: int | None, high: int | None, unit: str) -> list[str]:
    if low is not None and count < low:
        return [f"{count} {unit} < {low}"]
    if high is not None and count > high:
        return [f"{count} {unit} > {high}"]
    return []


class ScriptIsParams(BaseModel):
    """Parameters of ``script_is``."""

    model_config = ConfigDict(extra="forbid", title="script_is params")

    scripts: list[str] = Field(
        min_length=1,
        description='Unicode scripts the letters may be in, e.g. ["Latin"] or ["Han", '
        '"Hiragana", "Katakana"]; Common and Inherited are always allowed.',
    )

    @field_validator("scripts")
    @classmethod
    def _known(cls, scripts: list[str]) -> list[str]:
        for name in scripts:
            if not regex.fullmatch(r"[A-Za-z][A-Za-z_ -]*", name):
                raise ValueError(f"{name!r} is not a Unicode script name")
            try:
                regex.compile(rf"\p{{Script={name}}}")
            except regex.error as exc:
                raise ValueError(f"unknown Unicode script {name!r}") from exc
        return scripts


@register
class ScriptIs(_TextGrader, ParamsGrader[ScriptIsParams]):
    """Pass when every letter of the target's text is in an allowed Unicode script."""

    type_name = "script_is"
    Params = ScriptIsParams

    def __init__(self, config: GraderConfig, params: BaseModel | None) -> None:
        super().__init__(config, params)
        allowed = "".join(
            rf"\p{{Script={name}}}" for name in [*self.params.scripts, "Common", "Inherited"]
        )
        # Letters and marks minus the allowed scripts, as one character class (set difference).
        self.foreign = regex.compile(rf"(?V1)[[\p{{L}}\p{{M}}]--[{allowed}]]+")
        self.all_allowed = f"all letters in {', '.join(self.params.scripts)}"

    def check_text(self, text: str) -> Result:
        """Find runs of letters outside the allowed scripts."""
        if self.foreign.search(text, timeout=REGEX_TIMEOUT_S) is None:
            return Result.passed(self.all_allowed)
        runs = [m.group(0) for m in self.foreign.finditer(text, timeout=REGEX_TIMEOUT_S)]
        return Result.failed(_foreign_letters_reason(runs))


def _foreign_letters_reason(runs: list[str]) -> str:
    first = runs[0]
    script = script_of(first[0])
    sample = "".join(takewhile(lambda char: script_of(char) == script, first))[:12]
    scripts = {script_of(char) for char in "".join(runs)[:_SCRIPT_SCAN_CHARS]}
    others = sorted(name for name in scripts if name != script)
    also = f" (also {', '.join(others[:3])})" if others else ""
    return f"found {script} letters: {sample!r}{also}"
