"""Building blocks of the platform parsers: safe lookups, counts, times, hashtags, JS literals.

Every function is defensive: bad or missing input gives ``None`` (or an empty list), never an
exception, so one odd item cannot break a whole page.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from storage.video_fields import ITEM_FIELDS

AI_LABEL_MAX = 128


@dataclass
class Page:
    """One parsed listing page.

    ``recognized`` is False when none of the known containers was found (the page layout is
    not one this parser knows); an empty but recognized page is a real empty listing.
    ``extra`` carries platform paging details (e.g. Instagram's ``next_page``).
    """

    items: list[dict[str, Any]] = field(default_factory=list)
    next_token: str | None = None
    recognized: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def dig(obj: Any, *path: str | int, default: Any = None) -> Any:
    """Follow dict keys / list indices; ``default`` when any step is missing."""
    cur = obj
    for step in path:
        if isinstance(step, int):
            if not isinstance(cur, list) or not -len(cur) <= step < len(cur):
                return default
            cur = cur[step]
        else:
            if not isinstance(cur, dict) or step not in cur:
                return default
            cur = cur[step]
    return default if cur is None else cur


def first(*values: Any) -> Any:
    """The first value that is not None and not an empty string."""
    for v in values:
        if v is not None and v != "":
            return v
    return None


def as_str(value: Any) -> str | None:
    """A non-empty string, or None (ints become their decimal text)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


_COUNT_RE = re.compile(
    r"(\d[\d,.\u00a0\u202f ]*)\s*((?:thousand|million|billion|k|m|b)(?![a-z])|[千万萬億亿])?",
    re.IGNORECASE,
)
_MULT = {
    "k": 1_000,
    "thousand": 1_000,
    "千": 1_000,
    "m": 1_000_000,
    "million": 1_000_000,
    "b": 1_000_000_000,
    "billion": 1_000_000_000,
    "万": 10_000,
    "萬": 10_000,
    "億": 100_000_000,
    "亿": 100_000_000,
}


def parse_count(value: Any) -> int | None:
    """Read a view/like count: ints, digit strings, and display text.

    ``"895k views"`` -> 895000, ``"1.2M"`` -> 1200000, ``"635K views"`` -> 635000,
    ``"1,234 views"`` -> 1234, ``"No views"`` -> 0. Unreadable input gives None.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if re.match(r"^no\s+(views|likes)", text, re.IGNORECASE):
        return 0
    m = _COUNT_RE.search(text)
    if not m:
        return None
    number, unit = m.group(1).strip(), (m.group(2) or "").lower()
    number = re.sub(r"[\u00a0\u202f ]", "", number)
    if unit:
        # "1.2M" / "1,2 M" (decimal comma) -> a decimal number
        number = (
            number.replace(",", ".") if number.count(",") == 1 and "." not in number else number
        )
        number = number.replace(",", "")
        try:
            return int(round(float(number) * _MULT[unit]))
        except (ValueError, KeyError):
            return None
    digits = re.sub(r"[,.]", "", number)
    return int(digits) if digits.isdigit() else None


def parse_duration(value: Any) -> float | None:
    """Seconds from a number or a clock text (``"0:56"``, ``"1:02:20"``)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    m = re.fullmatch(r"(?:(\d+):)?(\d{1,2}):(\d{2})", text)
    if not m:
        return None
    h, mi, s = (int(x) if x else 0 for x in m.groups())
    return float(h * 3600 + mi * 60 + s)


def epoch_to_dt(value: Any) -> dt.datetime | None:
    """An aware UTC datetime from epoch seconds (or milliseconds), int or digit string."""
    if value is None or isinstance(value, bool):
        return None
    try:
        ts = float(value)
    except (TypeError, ValueError):
        return None
    if ts <= 0:
        return None
    if ts > 1e11:  # milliseconds
        ts /= 1000.0
    try:
        return dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def iso_to_dt(value: Any) -> dt.datetime | None:
    """An aware UTC datetime from ISO 8601 text (a missing zone is taken as UTC)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


_HASHTAG_RE = re.compile(r"(?<![\w&/])[#＃](\w+)")


def hashtags_from_text(text: Any) -> list[str]:
    """Hashtags in a caption, Unicode-aware (``#ナルト``), without ``#``, first spelling kept."""
    if not isinstance(text, str):
        return []
    return merge_hashtags(_HASHTAG_RE.findall(text))


def merge_hashtags(*groups: Iterable[Any]) -> list[str]:
    """Union of hashtag lists, order kept, duplicates dropped case-insensitively."""
    seen: set[str] = set()
    out: list[str] = []
    for group in groups:
        for tag in group or ():
            if not isinstance(tag, str):
                continue
            tag = tag.strip().lstrip("#＃").strip()
            if not tag or tag.casefold() in seen:
                continue
            seen.add(tag.casefold())
            out.append(tag)
    return out


def make_item(**fields: Any) -> dict[str, Any]:
    """A normalized item dict with every field present (missing ones None, hashtags [])."""
    item: dict[str, Any] = dict.fromkeys(ITEM_FIELDS)
    unknown = set(fields) - set(ITEM_FIELDS)
    if unknown:
        raise KeyError(f"unknown item field(s): {sorted(unknown)}")
    item.update(fields)
    if item["hashtags"] is None:
        item["hashtags"] = []
    if isinstance(item["ai_label"], str):
        item["ai_label"] = item["ai_label"][:AI_LABEL_MAX]
    return item


def join_base(base_url: str, path: str) -> str:
    """``base_url`` (no trailing slash) + ``path`` (leading slash)."""
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def find_json_after(text: str, marker: str | re.Pattern[str], start: int = 0) -> Any:
    """Decode the JSON value that follows ``marker`` (the first ``{`` or ``[`` after it)."""
    if isinstance(marker, str):
        idx = text.find(marker, start)
        if idx < 0:
            return None
        idx += len(marker)
    else:
        m = marker.search(text, start)
        if not m:
            return None
        idx = m.end()
    while idx < len(text) and text[idx] not in "{[":
        if not text[idx].isspace() and text[idx] not in "=(":
            return None
        idx += 1
    try:
        value, _ = json.JSONDecoder().raw_decode(text, idx)
    except (json.JSONDecodeError, ValueError):
        return None
    return value


def script_by_id(html: str, script_id: str) -> str | None:
    """The text of ``<script id="script_id" ...>...</script>``, or None."""
    m = re.search(
        r"<script\b[^>]*\bid=[\"']" + re.escape(script_id) + r"[\"'][^>]*>(.*?)</script>",
        html,
        re.DOTALL | re.IGNORECASE,
    )
    return m.group(1) if m else None


def loads_json(text: Any) -> Any:
    """``json.loads`` that returns None for empty or invalid input (bytes or str)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None


class JSLiteralError(ValueError):
    """Raised by :func:`parse_js_literal` on input it cannot read."""


class _JSParser:
    """A small reader for JavaScript object literals as found in old inline state scripts.

    Accepts JSON plus: unquoted (identifier, ``$name``) keys, single-quoted strings, trailing
    commas, ``undefined``, ``NaN``/``Infinity``, ``//`` and ``/* */`` comments and JS string
    escapes (``\\u002F``, ``\\x41``). Not a general JS evaluator: no expressions or calls.
    """

    _IDENT = re.compile(r"[A-Za-z_$][\w$]*")
    _NUMBER = re.compile(r"-?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")

    def __init__(self, text: str, pos: int = 0) -> None:
        self.text = text
        self.pos = pos

    def error(self, msg: str) -> JSLiteralError:
        snippet = self.text[self.pos : self.pos + 30]
        return JSLiteralError(f"{msg} at offset {self.pos}: {snippet!r}")

    def skip(self) -> None:
        text, n = self.text, len(self.text)
        while self.pos < n:
            c = text[self.pos]
            if c.isspace():
                self.pos += 1
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = n if end < 0 else end + 1
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise self.error("unterminated comment")
                self.pos = end + 2
            else:
                return

    def value(self) -> Any:
        self.skip()
        if self.pos >= len(self.text):
            raise self.error("unexpected end")
        c = self.text[self.pos]
        if c == "{":
            return self.obj()
        if c == "[":
            return self.arr()
        if c in "\"'":
            return self.string()
        m = self._NUMBER.match(self.text, self.pos)
        if m and (c.isdigit() or c in "-."):
            self.pos = m.end()
            tok = m.group(0)
            if tok.lower().lstrip("-").startswith("0x"):
                return int(tok, 16)
            return float(tok) if any(ch in tok for ch in ".eE") else int(tok)
        m = self._IDENT.match(self.text, self.pos)
        if m:
            word = m.group(0)
            consts = {
                "true": True,
                "false": False,
                "null": None,
                "undefined": None,
                "NaN": None,
                "Infinity": None,
            }
            if word in consts:
                self.pos = m.end()
                return consts[word]
        raise self.error("unexpected token")

    def string(self) -> str:
        quote = self.text[self.pos]
        self.pos += 1
        out: list[str] = []
        text, n = self.text, len(self.text)
        while self.pos < n:
            c = text[self.pos]
            if c == quote:
                self.pos += 1
                return "".join(out)
            if c == "\\":
                self.pos += 1
                if self.pos >= n:
                    break
                e = text[self.pos]
                simple = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v"}
                if e in simple:
                    out.append(simple[e])
                    self.pos += 1
                elif e == "u":
                    if text.startswith("{", self.pos + 1):
                        end = text.find("}", self.pos)
                        out.append(chr(int(text[self.pos + 2 : end], 16)))
                        self.pos = end + 1
                    else:
                        code = int(text[self.pos + 1 : self.pos + 5], 16)
                        self.pos += 5
                        # join UTF-16 surrogate pairs
                        if 0xD800 <= code < 0xDC00 and text.startswith("\\u", self.pos):
                            low = int(text[self.pos + 2 : self.pos + 6], 16)
                            if 0xDC00 <= low < 0xE000:
                                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                                self.pos += 6
                        out.append(chr(code))
                elif e == "x":
                    out.append(chr(int(text[self.pos + 1 : self.pos + 3], 16)))
                    self.pos += 3
                elif e == "\n":
                    self.pos += 1  # line continuation
                else:
                    out.append(e)
                    self.pos += 1
                continue
            out.append(c)
            self.pos += 1
        raise self.error("unterminated string")

    def key(self) -> str:
        self.skip()
        c = self.text[self.pos : self.pos + 1]
        if c in ("'", '"'):
            return self.string()
        m = self._IDENT.match(self.text, self.pos) or self._NUMBER.match(self.text, self.pos)
        if not m:
            raise self.error("expected a key")
        self.pos = m.end()
        return m.group(0)

    def obj(self) -> dict[str, Any]:
        self.pos += 1
        out: dict[str, Any] = {}
        while True:
            self.skip()
            if self.text.startswith("}", self.pos):
                self.pos += 1
                return out
            k = self.key()
            self.skip()
            if not self.text.startswith(":", self.pos):
                raise self.error("expected ':'")
            self.pos += 1
            out[k] = self.value()
            self.skip()
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif not self.text.startswith("}", self.pos):
                raise self.error("expected ',' or '}'")

    def arr(self) -> list[Any]:
        self.pos += 1
        out: list[Any] = []
        while True:
            self.skip()
            if self.text.startswith("]", self.pos):
                self.pos += 1
                return out
            out.append(self.value())
            self.skip()
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif not self.text.startswith("]", self.pos):
                raise self.error("expected ',' or ']'")


def parse_js_literal(text: str, start: int = 0) -> Any:
    """Read one JavaScript object/array literal starting at (or after whitespace from) ``start``.

    Raises :class:`JSLiteralError` when the text is not a plain literal.
    """
    return _JSParser(text, start).value()
