"""The TikTok/ByteDance WAF proof-of-work interstitial ("Please wait..."), solved natively.

The page carries its puzzle in element classes:

* ``id="cs"``: base64 JSON (padding often stripped) ``{"v": {"a": <b64 prefix>, "c": <b64
  SHA-256 digest>}, ...}``;
* ``id="wci"``: the name of the cookie that carries the answer (seen: ``_wafchallengeid``);
* optional ``id="rci"`` / ``id="rs"``: a second cookie's name and value (``waforiginalreid``).

The answer is the number ``i`` in 0..1,000,000 with ``sha256(prefix + str(i)) == digest``. The
client stores ``d = base64(str(i))`` in the JSON, sets ``<wci> = base64(compact JSON)`` (and
``<rci> = rs``) and loads the page again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

MAX_ANSWER = 1_000_000
_IDS = ("cs", "wci", "rci", "rs")


class _ClassById(HTMLParser):
    """Collects the ``class`` attribute of the elements whose ids are in ``_IDS``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        elem_id = (values.get("id") or "").strip()
        if elem_id in _IDS and elem_id not in self.found:
            self.found[elem_id] = (values.get("class") or "").strip()

    handle_startendtag = handle_starttag


def b64decode_loose(text: str) -> bytes:
    """Standard or URL-safe base64, with or without padding; raises ``ValueError``."""
    text = "".join(text.split())
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64: {exc}") from exc


@dataclass(frozen=True)
class WafChallenge:
    """One parsed interstitial: the decoded ``cs`` JSON and the cookie names."""

    data: dict[str, Any]
    prefix: bytes
    digest: bytes
    cookie_name: str
    extra_cookie: tuple[str, str] | None = None


def find_challenge_fields(html: str) -> dict[str, str]:
    """``{"cs": ..., "wci": ..., "rci": ..., "rs": ...}`` classes present in a page."""
    if not isinstance(html, str) or "cs" not in html:
        return {}
    parser = _ClassById()
    try:
        parser.feed(html[:500_000])
        parser.close()
    except (AssertionError, ValueError):  # pragma: no cover - HTMLParser is lenient
        pass
    return parser.found


def parse_challenge(html: str) -> WafChallenge | None:
    """The challenge in a page, or None when the page is not a (well-formed) interstitial."""
    fields = find_challenge_fields(html)
    cs, cookie_name = fields.get("cs"), fields.get("wci")
    if not cs or not cookie_name:
        return None
    try:
        data = json.loads(b64decode_loose(cs))
        prefix = b64decode_loose(data["v"]["a"])
        digest = b64decode_loose(data["v"]["c"])
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(data, dict) or len(digest) != hashlib.sha256().digest_size:
        return None
    extra = None
    if fields.get("rci") and fields.get("rs"):
        extra = (fields["rci"], fields["rs"])
    return WafChallenge(data, prefix, digest, cookie_name, extra)


def solve(prefix: bytes, digest: bytes, limit: int = MAX_ANSWER) -> int | None:
    """The ``i`` in 0..limit with ``sha256(prefix + str(i)) == digest``, or None."""
    base = hashlib.sha256(prefix)
    for i in range(limit + 1):
        h = base.copy()
        h.update(str(i).encode())
        if h.digest() == digest:
            return i
    return None


def answer_cookie(challenge: WafChallenge, answer: int) -> str:
    """The cookie value: base64 of the compact challenge JSON with ``d`` set."""
    data = dict(challenge.data)
    data["d"] = base64.b64encode(str(answer).encode()).decode()
    compact = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(compact.encode()).decode()


def solution_cookies(html: str, limit: int = MAX_ANSWER) -> dict[str, str] | None:
    """The cookies that clear the interstitial in ``html``; None if it is none or unsolvable."""
    challenge = parse_challenge(html)
    if challenge is None:
        return None
    answer = solve(challenge.prefix, challenge.digest, limit)
    if answer is None:
        return None
    cookies = {challenge.cookie_name: answer_cookie(challenge, answer)}
    if challenge.extra_cookie:
        name, value = challenge.extra_cookie
        cookies[name] = value
    return cookies
