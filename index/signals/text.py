"""Text folding for names, aliases, captions and hashtags."""

from __future__ import annotations

import re
import unicodedata


def fold_text(text: str) -> str:
    """NFKC + casefold, hiragana folded to katakana, whitespace collapsed."""
    s = unicodedata.normalize("NFKC", text).casefold()
    s = "".join(chr(ord(c) + 0x60) if "\u3041" <= c <= "\u3096" else c for c in s)
    return " ".join(s.split())


def compact(text: str) -> str:
    """Folded text without spaces, ``_``, ``-``, ``.`` or ``・`` (hashtag form of a name)."""
    return re.sub(r"[\s_\-.・·#]+", "", fold_text(text))


def has_word_chars(term: str) -> bool:
    """True when ``term`` has ASCII letters or digits (matched on word boundaries)."""
    return any(c.isascii() and c.isalnum() for c in term)
