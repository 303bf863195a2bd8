"""Two kinds of download failure: one video's, or the whole platform's.

A video's own failure (removed, private, age or geo restricted, too long, not a video, corrupt
media) ends that video as ``failed`` with a one-line reason. A platform's failure (HTTP 429 or
rate-limit text, a bot check, a login wall, a missing JS runtime or PO token, a WAF page)
says nothing about the video: the platform is paused and its videos stay queued.
:func:`classify_error` reads yt-dlp's exception chain and decides which.
"""

from __future__ import annotations

import re
import socket
import ssl

_TRANSIENT_STATUS = {403, 408, 425, 500, 502, 503, 504, 520, 521, 522, 523, 524}
_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})")

# text of yt-dlp errors that concern the platform, not the video (lower case)
_PLATFORM_MARKERS: tuple[tuple[str, str], ...] = (
    ("not a bot", 'bot check ("sign in to confirm you\'re not a bot"): add cookies or wait'),
    ("rate-limit reached", "rate limited by the platform"),
    ("rate limit", "rate limited by the platform"),
    ("too many requests", "rate limited by the platform"),
    ("ip address is blocked", "the platform blocked this IP address"),
    ("locked behind the login page", "the platform asks for a login for every video"),
    ("login page", "redirected to a login page"),
    ("only images are available", "only images offered: yt-dlp has no working JS runtime"),
    ("js runtime", "yt-dlp needs a JavaScript runtime (run `charwatch doctor`)"),
    ("challenge solving failed", "yt-dlp could not solve the player challenge (JS runtime)"),
    ("po token", "a PO token is required (see the README's YouTube notes)"),
    ("waf", "the platform's WAF challenge page"),
)
# per-video texts that contain a platform marker's words but concern only the video
_VIDEO_OVERRIDES = ("confirm your age", "age-restricted", "inappropriate for some users")


class DownloadError(Exception):
    """A failed download.

    ``transient``: trying this video again later may succeed. ``platform_wide``: the failure
    is the platform's (a block, a rate limit, a set-up problem), so the video must stay queued
    and the platform be paused.
    """

    def __init__(self, message: str, transient: bool, platform_wide: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient or platform_wide
        self.platform_wide = platform_wide

    def __str__(self) -> str:
        return self.message


class TooLarge(Exception):
    """Raised from a progress hook when a download passes the size cap."""


def walk_causes(exc: BaseException | None) -> list[BaseException]:
    """The exception and what caused it (yt-dlp's ``exc_info`` and ``cause`` included)."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen and len(seen) < 10:
        seen.append(exc)
        nxt = getattr(exc, "exc_info", None)
        nxt = nxt[1] if isinstance(nxt, tuple) and len(nxt) > 1 else None
        exc = nxt or getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return seen


def short(exc: BaseException | str) -> str:
    """The first line of an error without yt-dlp's ``ERROR: [extractor] id:`` prefix."""
    msg = re.sub(r"^(ERROR: )?(\[[\w:]+\] )*", "", str(exc).strip()).splitlines()
    return (msg[0] if msg else type(exc).__name__)[:300]


def platform_block(text: str, platform: str = "") -> str | None:
    """Why ``text`` (an error message) is a platform-wide block, or None."""
    low = text.lower()
    if any(v in low for v in _VIDEO_OVERRIDES):
        return None
    for marker, why in _PLATFORM_MARKERS:
        if marker in low:
            return why
    if platform == "youtube" and "requested format is not available" in low:
        return "YouTube offered no video format: JS runtime or PO token missing"
    return None


def classify_error(exc: BaseException, url: str, platform: str = "") -> DownloadError:
    """Turn a yt-dlp exception into a one-line :class:`DownloadError` of the right kind."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError
    from yt_dlp.utils import UnsupportedError

    chain = walk_causes(exc)
    text = " ".join(str(e) for e in chain)
    for e in chain:
        if isinstance(e, TooLarge):
            return DownloadError(str(e), transient=False)
        if isinstance(e, HTTPError):
            return http_error(e.status, e.reason or "")
    if m := _HTTP_STATUS.search(text):
        return http_error(int(m.group(1)), "")
    if why := platform_block(text, platform):
        return DownloadError(f"{why}: {short(exc)}", transient=True, platform_wide=True)
    for e in chain:
        if isinstance(e, UnsupportedError) or "Unsupported URL" in str(e):
            return DownloadError(f"no video found at {url} (page without a video)", False)
        if isinstance(e, TransportError | socket.timeout | TimeoutError | ConnectionError):
            return DownloadError(f"network error: {short(e)}", transient=True)
        if isinstance(e, ssl.SSLError):
            return DownloadError(f"TLS error: {short(e)}", transient=True)
    low = text.lower()
    if "timed out" in low or "connection" in low or "temporarily" in low:
        return DownloadError(f"network error: {short(exc)}", transient=True)
    if "did not get any data" in low:
        return DownloadError("server sent an empty (zero-byte) file", transient=False)
    if "content too short" in low or "incomplete" in low or "more expected" in low:
        return DownloadError(f"incomplete download: {short(exc)}", transient=True)
    if "requested format is not available" in low or "no video formats" in low:
        return DownloadError("no downloadable video format", transient=False)
    if "private" in low or "login" in low or "sign in" in low:
        return DownloadError(f"video needs a login or is private: {short(exc)}", False)
    if "removed" in low or "not available" in low or "unavailable" in low:
        return DownloadError(f"video unavailable: {short(exc)}", transient=False)
    return DownloadError(f"download failed: {short(exc)}", transient=True)


def http_error(status: int, reason: str) -> DownloadError:
    """The failure an HTTP status means for a video download."""
    label = f"HTTP {status}{' ' + reason if reason else ''}"
    if status in (404, 410):
        return DownloadError(f"{label}: video not found (deleted or wrong URL)", transient=False)
    if status == 429:
        return DownloadError(f"{label}: rate limited by the platform", True, platform_wide=True)
    if status in _TRANSIENT_STATUS:
        return DownloadError(f"{label}: server refused or failed, will retry", transient=True)
    return DownloadError(f"{label}: request rejected", transient=status >= 500)
