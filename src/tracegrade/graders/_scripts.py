"""Naming the Unicode script of a character, for ``script_is`` reasons.

The ``regex`` package knows every script (``\\p{Script=...}``) but offers no public way to ask
which one a character is in, so the names come from its property table, read once. Should that
table ever be unavailable, characters are reported as "non-allowed" rather than failing.
"""

from __future__ import annotations

import importlib
import unicodedata
from functools import lru_cache

import regex

UNNAMED = "non-allowed"


def script_of(char: str) -> str:
    """The display name of ``char``'s Unicode script, e.g. ``"Thai"`` or ``"Old Italic"``."""
    table = _script_table()
    if table is None:
        return UNNAMED
    pattern, names = table
    found = pattern.match(char)
    if found is None or found.lastindex is None:
        return UNNAMED
    return _display_name(names[found.lastindex - 1], char)


@lru_cache(maxsize=1)
def _script_table() -> tuple[regex.Pattern[str], list[str]] | None:
    names = _script_names()
    if not names:
        return None
    return regex.compile("|".join(rf"(\p{{Script={name}}})" for name in names)), names


def _script_names() -> list[str]:
    """The long name of each script, as the ``regex`` package spells it (``OLDITALIC``)."""
    try:
        properties = importlib.import_module("regex._regex").get_properties()
        values: dict[str, int] = properties["SCRIPT"][1]
    except (ImportError, AttributeError, KeyError, TypeError, IndexError):
        return []
    first_name: dict[int, str] = {}
    for name, script_id in values.items():
        # The table lists each script's long name before its aliases; 0 is Unknown.
        if script_id != 0:
            first_name.setdefault(script_id, name)
    return list(first_name.values())


def _display_name(compact: str, char: str) -> str:
    """``OLDITALIC`` becomes ``Old Italic``, using the character's Unicode name for the spaces."""
    words: list[str] = []
    for word in unicodedata.name(char, "").split():
        if not compact.startswith("".join([*words, word])):
            break
        words.append(word)
        if "".join(words) == compact:
            return " ".join(w.capitalize() for w in words)
    return compact.capitalize()
