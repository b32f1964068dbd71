"""Rules that say an input asks about something that changes with time."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

TIME_SENSITIVE_PATTERNS: tuple[str, ...] = (
    r"\b(current|currently|latest|newest|most recent|recent|recently|up[- ]to[- ]date)\b",
    r"\b(today|tonight|tomorrow|yesterday|right now|this (week|month|quarter|year|season))\b",
    r"\b(price|prices|pricing|cost of|how much (is|does|are)|exchange rate|stock price)\b",
    r"\bwho (is|'s) (the )?(ceo|president|prime minister|head|leader|chair|owner|coach)\b",
    r"\b(weather|forecast|score of|schedule|opening hours|open now|in stock|available now)\b",
    r"\b(19|20)\d{2}-\d{2}-\d{2}\b",
    r"\b(january|february|march|april|may|june|july|august|september|october|november|"
    r"december) \d{1,2}(st|nd|rd|th)?,? (19|20)\d{2}\b",
    r"\b(in|since|as of|until|by) (19|20)\d{2}\b",
)
"""Dates, and questions whose answer moves: current/latest, today, prices, who holds an office."""


def time_sensitive_reason(text: str, extra_patterns: Sequence[str] = ()) -> str | None:
    """The phrase that makes ``text`` time-sensitive, or None when no rule matches."""
    for pattern in _compiled(tuple(extra_patterns)):
        match = pattern.search(text)
        if match:
            return match.group(0)
    return None


@lru_cache(maxsize=32)
def _compiled(extra: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in TIME_SENSITIVE_PATTERNS + extra)
