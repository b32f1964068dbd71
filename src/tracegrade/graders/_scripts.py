"""Naming the Unicode script of a character, for ``script_is`` reasons.

The ``regex`` package knows every script (``\\p{Script=...}``) but offers no public way to ask
which one a character is in, so the names come from its property table, read once. Should that
table ever be unavailable, characters are reported as "non-allowed" rather than failing.
"""

from __future__ import annotations

import importlib
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
    return _display_name(names[found.lastindex - 1])


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


def _display_name(compact: str) -> str:
    """``OLDITALIC`` becomes ``Old Italic``: the script's Unicode long name (its property value
    alias, ``Old_Italic``) with spaces for underscores."""
    return _LONG_NAMES.get(compact) or compact.capitalize()


# The Unicode long names (PropertyValueAliases.txt) that capitalizing the regex package's
# compact name would get wrong: several words, or an inner capital. Every other script's long
# name is one capitalized word (``Thai``, ``Cyrillic``).
_LONG_NAMES = {
    name.replace("_", "").upper(): name.replace("_", " ")
    for name in (
        "Anatolian_Hieroglyphs", "Bassa_Vah", "Beria_Erfe", "Canadian_Aboriginal",
        "Caucasian_Albanian", "Cypro_Minoan", "Dives_Akuru", "Egyptian_Hieroglyphs",
        "Gunjala_Gondi", "Gurung_Khema", "Hanifi_Rohingya", "Imperial_Aramaic",
        "Inscriptional_Pahlavi", "Inscriptional_Parthian", "Katakana_Or_Hiragana", "Kayah_Li",
        "Khitan_Small_Script", "Kirat_Rai", "Linear_A", "Linear_B", "Masaram_Gondi",
        "Meetei_Mayek", "Mende_Kikakui", "Meroitic_Cursive", "Meroitic_Hieroglyphs",
        "Nag_Mundari", "New_Tai_Lue", "Nyiakeng_Puachue_Hmong", "Ol_Chiki", "Ol_Onal",
        "Old_Hungarian", "Old_Italic", "Old_North_Arabian", "Old_Permic", "Old_Persian",
        "Old_Sogdian", "Old_South_Arabian", "Old_Turkic", "Old_Uyghur", "Pahawh_Hmong",
        "Pau_Cin_Hau", "Phags_Pa", "Proto_Cuneiform", "Psalter_Pahlavi", "SignWriting",
        "Sora_Sompeng", "Syloti_Nagri", "Tai_Le", "Tai_Tham", "Tai_Viet", "Tai_Yo",
        "Tolong_Siki", "Tulu_Tigalari", "Warang_Citi", "Zanabazar_Square",
    )
}
