"""The one place that maps HTTP and page symptoms to a listing status.

Spiders call :func:`classify_response` on every response before parsing, and the
``*_status`` functions for platform status codes found inside a parsed page. A failing verdict
ends the listing: the spider saves the offending body with :func:`save_debug` and records the
status, the one-line reason and the debug path on its ``CrawlRun`` row.

Symptom -> status:

* redirect to a login/checkpoint page (``/login``, ``/accounts/login``, ``/challenge/``),
  401 without a rate-limit message, Instagram ``login_required`` JSON -> ``login_required``
* 401/429 "please wait" / rate-limit, 403, the TikTok JS proof-of-work interstitial
  (``id="cs"`` + ``id="wci"``), a 200 with an empty body, ``{"type": "verify"}`` (captcha),
  a consent wall, TikTok status 10204 -> ``blocked``
* 404/410, TikTok 10205 (unknown hashtag), 10202/10221 (unknown user), 10222 (private
  account), a YouTube "does not exist" alert, a hashtag page that says it has no videos
  -> ``not_found``
* a page without the expected embedded data or item container, or one that parses to zero
  items where the page itself says there are some (a video count, a header, a non-empty data
  blob, entries of unknown kinds) -> ``layout_changed``: a changed layout never looks like an
  empty or missing listing
* any other 4xx/5xx, network errors, unsupported listing kinds -> ``error``
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from storage.models import ListingStatus

LOGIN_PATH_RE = re.compile(
    r"^/(?:accounts/login|login|signin|challenge|accounts/suspended|checkpoint)(?:/|$|\?)",
    re.IGNORECASE,
)
RATE_LIMIT_RE = re.compile(
    r"please wait a few minutes|rate.?limit|too many requests|try again later", re.IGNORECASE
)


@dataclass(frozen=True)
class Verdict:
    """A listing outcome: a ``ListingStatus`` value and a one-line reason."""

    status: str
    reason: str

    @property
    def failed(self) -> bool:
        return self.status in ListingStatus.FAILURES


def blocked(reason: str) -> Verdict:
    return Verdict(ListingStatus.BLOCKED, reason)


def login_required(reason: str) -> Verdict:
    return Verdict(ListingStatus.LOGIN_REQUIRED, reason)


def not_found(reason: str) -> Verdict:
    return Verdict(ListingStatus.NOT_FOUND, reason)


def layout_changed(reason: str) -> Verdict:
    return Verdict(ListingStatus.LAYOUT_CHANGED, reason)


def error(reason: str) -> Verdict:
    return Verdict(ListingStatus.ERROR, reason)


def is_login_url(url: str | None) -> bool:
    """True when a URL points at a login/checkpoint page."""
    if not url:
        return False
    parts = urlsplit(url)
    return bool(LOGIN_PATH_RE.match(parts.path or "/"))


def _text(body: bytes | str) -> str:
    if isinstance(body, bytes):
        return body[:200_000].decode("utf-8", "replace")
    return body[:200_000]


def _json(body: bytes | str) -> Any:
    text = _text(body).strip()
    if not text.startswith(("{", "[")):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def classify_response(
    *,
    status: int,
    url: str,
    body: bytes | str,
    redirect_urls: list[str] | None = None,
    content_type: str = "",
) -> Verdict | None:
    """A failing verdict for an HTTP response, or None when it looks usable.

    ``url`` is the final URL, ``redirect_urls`` the URLs redirected through (Scrapy's
    ``response.meta["redirect_urls"]``).
    """
    for hop in [*(redirect_urls or [])[1:], url]:
        if is_login_url(hop):
            return login_required(f"redirected to a login page ({urlsplit(hop).path})")
    host = urlsplit(url).hostname or ""
    if host.startswith("consent."):
        return blocked("redirected to a consent page")
    text = _text(body)
    data = _json(body)
    message = ""
    if isinstance(data, dict):
        message = str(data.get("message") or data.get("statusMsg") or "")
    if status == 401:
        if RATE_LIMIT_RE.search(message or text):
            return blocked(f"HTTP 401: {_short(message or 'rate limited')}")
        return login_required(f"HTTP 401: {_short(message or 'authentication required')}")
    if status == 429:
        return blocked("HTTP 429: too many requests (retries exhausted)")
    if status == 403:
        return blocked(f"HTTP 403: forbidden{': ' + _short(message) if message else ''}")
    if status in (404, 410):
        return not_found(f"HTTP {status}: {urlsplit(url).path}")
    if status >= 400:
        return error(f"HTTP {status} from {urlsplit(url).path}")
    if 300 <= status < 400:
        return error(f"HTTP {status} redirect not followed")
    if not text.strip():
        return blocked("empty response body (bot detection)")
    if isinstance(data, dict):
        if data.get("type") == "verify":
            return blocked('captcha required ({"type": "verify"})')
        verdict = instagram_status(data)
        if verdict:
            return verdict
    looks_html = "<html" in text[:2000].lower() or "text/html" in content_type
    if looks_html and is_tiktok_challenge(text):
        return blocked("JS proof-of-work challenge page")
    return None


def is_tiktok_challenge(html: str) -> bool:
    """The TikTok/WAF interstitial: elements ``id="cs"`` and ``id="wci"``, no page data."""
    return bool(
        re.search(r"\bid=[\"']cs[\"']", html)
        and re.search(r"\bid=[\"']wci[\"']", html)
        and "__UNIVERSAL_DATA_FOR_REHYDRATION__" not in html
    )


def tiktok_status(code: Any, *, what: str) -> Verdict | None:
    """A verdict for a TikTok ``statusCode`` (0 or None: fine). ``what`` names the target."""
    if code in (None, 0, "0"):
        return None
    try:
        code = int(code)
    except (TypeError, ValueError):
        return error(f"unexpected statusCode {code!r} for {what}")
    if code == 10205:
        return not_found(f"hashtag not found: {what} (statusCode 10205)")
    if code in (10202, 10221):
        return not_found(f"user not found: {what} (statusCode {code})")
    if code == 10222:
        return not_found(f"private account: {what} (statusCode 10222)")
    if code == 10216:
        return not_found(f"private content: {what} (statusCode 10216)")
    if code == 10204:
        return blocked(f"IP blocked (statusCode 10204) for {what}")
    return error(f"statusCode {code} for {what}")


def instagram_status(data: Any) -> Verdict | None:
    """A verdict for Instagram JSON errors (``status: fail``, ``require_login``...)."""
    if not isinstance(data, dict):
        return None
    message = str(data.get("message") or "")
    if data.get("require_login") is True or message in ("login_required", "checkpoint_required"):
        return login_required(f"login required ({message or 'require_login'})")
    if data.get("status") == "fail":
        if RATE_LIMIT_RE.search(message) or data.get("spam") is True:
            return blocked(_short(message or "rate limited"))
        return error(_short(message or "request failed"))
    return None


def youtube_alert_status(alerts: list[str]) -> Verdict | None:
    """A verdict for YouTube page alerts (e.g. "This channel does not exist.")."""
    for text in alerts:
        if re.search(r"does not exist|isn't available|not available|unavailable", text, re.I):
            return not_found(_short(text))
    return None


def save_debug(
    data_dir: Path | str,
    label: str,
    body: bytes | str,
    *,
    status: int | None = None,
) -> str:
    """Write an offending body under ``<data_dir>/debug/`` and return its path.

    The body is written unchanged; the file name carries the time, label and HTTP status.
    """
    folder = Path(data_dir) / "debug"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    safe = re.sub(r"[^\w.-]+", "_", label, flags=re.ASCII).strip("_")[:80] or "listing"
    raw = body if isinstance(body, bytes) else body.encode("utf-8")
    head = raw.lstrip()[:1]
    ext = ".json" if head in (b"{", b"[") else ".html" if head == b"<" else ".txt"
    path = folder / f"{stamp}_{safe}_{status if status is not None else 'na'}{ext}"
    path.write_bytes(raw)
    return str(path)
