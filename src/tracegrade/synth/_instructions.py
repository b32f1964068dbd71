"""Instructions in a system prompt, and the check each one becomes.

A prompt is split into instructions (bullets, or sentences that direct: "always", "never", "do
not", "keep", "respond"…). Each becomes a deterministic check where one fits — a length limit,
a script for a named language, JSON validity, no emoji / markdown / links, a quoted phrase that
must or must not appear — and otherwise an ``llm_judge`` rubric that quotes the instruction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_BULLET = re.compile(r"^\s*(?:[-*•·]|\d{1,2}[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'“(])")
_DIRECTIVE = re.compile(
    r"\b(always|never|do not|don't|must|should|only|make sure|ensure|avoid|keep|respond|"
    r"reply|answer|use|include|limit|write|refuse|decline|mention|cite|ask|call|return|"
    r"output|format|greet|sign off|end with|start with|begin with)\b",
    re.IGNORECASE,
)
_IMPERATIVE = re.compile(
    r"^(please\s+)?(classify|mark|summari[sz]e|explain|list|translate|extract|return|output|"
    r"provide|include|use|keep|answer|reply|respond|write|ask|call|check|confirm|offer|refuse|"
    r"decline|cite|quote|format|greet|sign|flag|escalate|apologi[sz]e|be|stay|focus|prefer|"
    r"give|state|tell|describe|recommend|suggest|limit|end|start|begin|avoid|verify|"
    r"mention|add|identify|rate|score|choose|pick|select)\b",
    re.IGNORECASE,
)
_PERSONA = re.compile(r"^\s*(you are|you're|you work|you help|your name is|as an?)\b", re.I)
_LENGTH = re.compile(
    r"\b(?P<bound>under|below|fewer than|less than|at most|no more than|not exceed(?:ing)?|"
    r"not more than|maximum(?: of)?|max(?:imum)?|up to|within|limited to|limit(?: it)? to|"
    r"shorter than|at least|minimum(?: of)?|no fewer than|no less than)\s+"
    r"(?P<count>\d[\d,]*)\s+(?P<unit>words?|characters?|chars?|letters?)\b",
    re.IGNORECASE,
)
_LENGTH_TRAILING = re.compile(
    r"\b(?P<count>\d[\d,]*)\s+(?P<unit>words?|characters?|chars?)\s+or\s+(?P<dir>fewer|less|"
    r"more)\b", re.IGNORECASE)
_JSON = re.compile(
    r"(\b(respond|reply|answer|output|return|format|write)\w*\b[^.;]*?\b(in|with|as)\s+"
    r"(valid\s+|a\s+|an\s+|strict\s+|only\s+)*JSON\b)|\bJSON only\b|\bonly (valid )?JSON\b|"
    r"\bvalid JSON\b", re.IGNORECASE)
_LANGUAGE = re.compile(
    r"\b(?i:answer|respond|reply|write|speak|communicate)\w*\b[^.;]*?\bin\s+"
    r"(?:(?i:plain|simple|clear|fluent|only)\s+)*(?P<language>[A-Z][a-z]+)\b")
_USER_LANGUAGE = re.compile(
    r"\b(user'?s?|customer'?s?|same|their|the language of the)\b[^.;]*\blanguage\b"
    r"|\blanguage\b[^.;]*\b(user|customer)\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(never|do not|don't|must not|mustn't|should not|shouldn't|avoid|"
                       r"no|without|refrain from)\b", re.IGNORECASE)
_EMOJI = re.compile(r"\bemojis?\b|\bemoticons?\b", re.IGNORECASE)
_MARKDOWN = re.compile(r"\bmarkdown\b|\bplain text\b", re.IGNORECASE)
_LINKS = re.compile(r"\b(links?|urls?|hyperlinks?)\b", re.IGNORECASE)
_QUOTED = re.compile(r"[\"“]([^\"”]{2,80})[\"”]|(?<![A-Za-z])'([^']{2,80})'(?![A-Za-z])")
_ENDS = re.compile(r"\b(end|finish|sign off|close)\w*\b[^.;]*?\bwith\b", re.IGNORECASE)
_STARTS = re.compile(r"\b(start|begin|open)\w*\b[^.;]*?\bwith\b", re.IGNORECASE)
_REQUIRES = re.compile(r"\b(always|must|include|mention|say|add|append)\b", re.IGNORECASE)
_CONDITIONAL = re.compile(
    r"\b(if|when|whenever|unless|except|excepting|other than|apart from|besides|only for|"
    r"in case)\b"
    r"|\bfor (?:\w+[ -]){0,4}(?:questions?|requests?|queries|topics?|customers?|users?|"
    r"orders?|cases?)\b"
    r"|\b(?:more than|at most|no more than|up to) (?:once|twice|\d+ times)\b",
    re.IGNORECASE)
"""An instruction that holds only sometimes ("for legal questions, end with …", "when
discussing safety, mention …", "never include links except …", "don't apologise more than
once"): a deterministic check on every reply would fail the replies it does not concern."""
_NOT_A_CONDITION = re.compile(r"\beven (?:if|when)\b", re.IGNORECASE)

LANGUAGE_SCRIPTS: dict[str, list[str]] = {
    **{language: ["Latin"] for language in (
        "English", "Spanish", "French", "German", "Italian", "Portuguese", "Dutch", "Polish",
        "Swedish", "Norwegian", "Danish", "Finnish", "Czech", "Romanian", "Turkish",
        "Indonesian", "Vietnamese", "Hungarian", "Catalan", "Croatian", "Slovak", "Slovenian",
        "Estonian", "Latvian", "Lithuanian", "Malay", "Tagalog", "Swahili", "Icelandic")},
    **{language: ["Cyrillic"] for language in (
        "Russian", "Ukrainian", "Bulgarian", "Belarusian", "Macedonian")},
    "Greek": ["Greek"], "Arabic": ["Arabic"], "Persian": ["Arabic"], "Farsi": ["Arabic"],
    "Urdu": ["Arabic"], "Hebrew": ["Hebrew"], "Hindi": ["Devanagari"],
    "Marathi": ["Devanagari"], "Nepali": ["Devanagari"], "Thai": ["Thai"],
    "Korean": ["Hangul"], "Japanese": ["Han", "Hiragana", "Katakana"], "Chinese": ["Han"],
    "Mandarin": ["Han"], "Bengali": ["Bengali"], "Tamil": ["Tamil"], "Georgian": ["Georgian"],
    "Armenian": ["Armenian"],
}

MARKDOWN_PATTERN = r"^ {0,3}#{1,6} |\*\*[^*\n]+\*\*|__[^_\n]+__|```|^ {0,3}[-*+] \S|^ {0,3}> "
EMOJI_PATTERN = r"\p{Extended_Pictographic}"
LINK_PATTERN = r"https?://|www\."


@dataclass(frozen=True)
class Check:
    """The grader an instruction becomes (``llm_judge`` when nothing deterministic fits)."""

    instruction: str
    type: str
    slug: str
    params: dict[str, Any] = field(default_factory=dict)
    mentions: tuple[str, ...] = ()
    """Tool names the instruction mentions: a judge then needs the whole trace."""
    key: str = ""
    """What the check stands for, independent of its numbers (``length_max_words``), so a
    changed limit reads as a change, not as one grader gone and another new."""

    @property
    def identity(self) -> str:
        """The check's stable identity within its prompt."""
        return self.key or self.slug

    @property
    def judged(self) -> bool:
        """Whether this check needs an LLM judge."""
        return self.type == "llm_judge"


def instructions(prompt: str) -> list[str]:
    """The instructions in a system prompt, in order, each as written (markers stripped)."""
    found: list[str] = []
    for raw_line in prompt.splitlines():
        line = raw_line.strip()
        if not line or line.endswith(":"):
            continue
        bullet = _BULLET.match(line)
        if bullet:
            text = line[bullet.end():].strip()
            if text and not _PERSONA.match(text):
                found.append(text)
            continue
        for sentence in _SENTENCE_END.split(line):
            sentence = sentence.strip()
            if sentence and _directs(sentence):
                found.append(sentence)
    return found


def _directs(sentence: str) -> bool:
    """Whether a sentence (not a bullet) instructs, rather than describes or sets a persona."""
    if _PERSONA.match(sentence):
        return False
    return bool(_DIRECTIVE.search(sentence) or _IMPERATIVE.match(sentence)
                or _LENGTH.search(sentence))


def check_for(instruction: str, tool_names: list[str]) -> Check:
    """The check an instruction becomes."""
    mentions = tuple(name for name in tool_names if re.search(rf"\b{re.escape(name)}\b",
                                                              instruction))
    if _CONDITIONAL.search(_NOT_A_CONDITION.sub("", instruction)):
        return Check(instruction, "llm_judge", slug(instruction), mentions=mentions)
    for rule in (_length_check, _json_check, _language_check, _negated_style_check,
                 _quoted_check):
        check = rule(instruction)
        if check is not None:
            return check
    return Check(instruction, "llm_judge", slug(instruction), mentions=mentions)


def _length_check(instruction: str) -> Check | None:
    match = _LENGTH.search(instruction)
    if match is not None:
        bound, count, unit = match["bound"].lower(), _count(match["count"]), match["unit"]
        lower = bound.startswith(("at least", "minimum", "no fewer", "no less"))
    else:
        trailing = _LENGTH_TRAILING.search(instruction)
        if trailing is None:
            return None
        count, unit = _count(trailing["count"]), trailing["unit"]
        lower = trailing["dir"].lower() == "more"
    words = unit.lower().startswith("word")
    key = ("min_" if lower else "max_") + ("words" if words else "chars")
    label = f"{'at_least' if lower else 'under'}_{count}_{'words' if words else 'chars'}"
    return Check(instruction, "length", label, {key: count}, key=f"length_{key}")


def _json_check(instruction: str) -> Check | None:
    if _JSON.search(instruction) and not _NEGATION.search(instruction.split("JSON")[0]):
        return Check(instruction, "json_valid", "json_valid")
    return None


def _language_check(instruction: str) -> Check | None:
    if _USER_LANGUAGE.search(instruction):
        return None  # the user's language varies per conversation: a judge decides
    match = _LANGUAGE.search(instruction)
    if match is None or match["language"] not in LANGUAGE_SCRIPTS:
        return None
    clause = re.split(r"[.;,:]", instruction[:match.start("language")])[-1]
    if _NEGATION.search(clause):
        return None  # "never respond in Russian" forbids a script; no grader checks that
    scripts = LANGUAGE_SCRIPTS[match["language"]]
    return Check(instruction, "script_is", "script_" + "_".join(s.lower() for s in scripts),
                 {"scripts": scripts}, key="language")


def _negated_style_check(instruction: str) -> Check | None:
    if not _NEGATION.search(instruction):
        return None
    if _EMOJI.search(instruction):
        return Check(instruction, "not_regex", "no_emoji", {"pattern": EMOJI_PATTERN})
    if _MARKDOWN.search(instruction):
        return Check(instruction, "not_regex", "no_markdown",
                     {"pattern": MARKDOWN_PATTERN, "flags": ["MULTILINE"]})
    if _LINKS.search(instruction) and not _QUOTED.search(instruction):
        return Check(instruction, "not_regex", "no_links",
                     {"pattern": LINK_PATTERN, "flags": ["IGNORECASE"]})
    return None


def _quoted_check(instruction: str) -> Check | None:
    phrases = [a or b for a, b in _QUOTED.findall(instruction)]
    if not phrases:
        return None
    if _NEGATION.search(instruction.split(phrases[0])[0]):
        return Check(instruction, "not_contains", "avoids_" + slug(phrases[0], 4),
                     {"values": phrases, "case_sensitive": False})
    if _ENDS.search(instruction):
        return Check(instruction, "regex", "ends_with_" + slug(phrases[0], 4),
                     {"pattern": re.escape(phrases[0]) + r"\W*$"})
    if _STARTS.search(instruction):
        return Check(instruction, "regex", "starts_with_" + slug(phrases[0], 4),
                     {"pattern": r"^\W*" + re.escape(phrases[0])})
    if _REQUIRES.search(instruction):
        return Check(instruction, "contains", "mentions_" + slug(phrases[0], 4),
                     {"values": phrases, "mode": "all", "case_sensitive": False})
    return None


def _count(raw: str) -> int:
    return int(raw.replace(",", ""))


def slug(text: str, words: int = 6) -> str:
    """A grader-name fragment from text: its first significant words, lower-case, underscored."""
    tokens = re.findall(r"[a-z0-9]+", re.sub(r"['’]", "", text.lower()))
    skipped = {"the", "a", "an", "to", "of", "and", "or", "your", "you", "is", "be", "in"}
    kept = [token for token in tokens if token not in skipped] or tokens
    chosen: list[str] = []
    for token in kept[:words]:
        if chosen and len("_".join([*chosen, token])) > 48:
            break
        chosen.append(token[:48])
    return "_".join(chosen) or "instruction"
