"""Shared page-building pieces: the request/response types, safe HTML/JSON embedding, and the
Open Graph video page every platform serves for a single video."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fixture_platform.catalog import FixtureVideo


@dataclass
class Request:
    """What a page handler sees of an HTTP request."""

    method: str
    path: str  # without the query string, percent-decoded
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    cookies: dict[str, str]
    body: bytes
    base: str  # scheme://host:port the client used

    @property
    def url(self) -> str:
        return self.base + self.path

    def form(self) -> dict[str, str]:
        """The urlencoded form body (first value of each field)."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            return {}
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}

    def json(self) -> Any:
        """The JSON body, or None when it is missing or not JSON."""
        try:
            return json.loads(self.body.decode("utf-8")) if self.body else None
        except (UnicodeDecodeError, ValueError):
            return None


@dataclass
class Response:
    """A page's answer; ``file_path`` streams a file instead of ``body`` (with Range support)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    file_path: Path | None = None


def html_response(text: str, status: int = 200, headers: list[tuple[str, str]] | None = None):
    return Response(status, text.encode("utf-8"), "text/html; charset=utf-8", headers or [])


def json_response(obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None):
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, body, "application/json; charset=utf-8", headers or [])


def redirect(location: str, status: int = 302) -> Response:
    return Response(status, b"", "text/html; charset=utf-8", [("Location", location)])


def esc(text: object) -> str:
    """HTML-escape text for element content and double-quoted attributes."""
    return html.escape(str(text), quote=True)


def script_json(obj: Any) -> str:
    """JSON that is safe inside a ``<script>`` element (``<``, ``>``, ``&`` and line separators
    escaped as ``\\uXXXX``, which JSON parsers read back unchanged)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for ch, rep in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, rep)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def token(*parts: object, n: int = 16) -> str:
    """A stable opaque base64url token derived from ``parts``."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:n]


def encode_cursor(prefix: str, data: dict[str, Any]) -> str:
    """An opaque continuation/cursor string carrying ``data``."""
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return prefix + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(prefix: str, value: str) -> dict[str, Any] | None:
    """Inverse of :func:`encode_cursor`; None when ``value`` is not one of ours."""
    if not value or not value.startswith(prefix):
        return None
    raw = value[len(prefix) :]
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def int_param(value: str | None, default: int, lo: int, hi: int) -> int:
    """An integer query/form parameter clamped to [lo, hi] (default when missing or bad)."""
    try:
        n = int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        n = default
    return max(lo, min(hi, n))


def compact_count(n: int) -> str:
    """YouTube's short view counts: 950, 1.2k, 895k, 1m, 2.9m."""
    if n < 1000:
        return str(n)
    for div, suffix in ((1_000_000_000, "b"), (1_000_000, "m"), (1_000, "k")):
        if n >= div:
            v = n / div
            text = f"{v:.1f}" if v < 10 else f"{v:.0f}"
            return text.removesuffix(".0") + suffix
    return str(n)


def relative_time(ts: int, now: float | None = None) -> str:
    """'3 days ago' style text."""
    delta = max(0, int((now if now is not None else time.time()) - ts))
    for secs, unit in (
        (31536000, "year"),
        (2592000, "month"),
        (604800, "week"),
        (86400, "day"),
        (3600, "hour"),
        (60, "minute"),
    ):
        if delta >= secs:
            k = delta // secs
            return f"{k} {unit}{'s' if k != 1 else ''} ago"
    return "just now"


def og_video_head(v: FixtureVideo, base: str, title: str, site: str) -> str:
    """Open Graph tags for a video page (og:video points at the fixture MP4)."""
    spec = v.spec
    tags = [
        ("og:site_name", site),
        ("og:type", "video.other"),
        ("og:title", title),
        ("og:description", v.caption),
        ("og:url", base + v.path),
        ("og:image", base + v.cover_path),
        ("og:image:width", str(spec.width)),
        ("og:image:height", str(spec.height)),
        ("og:video", base + v.media_path),
        ("og:video:url", base + v.media_path),
        ("og:video:type", "video/mp4"),
        ("og:video:width", str(spec.width)),
        ("og:video:height", str(spec.height)),
    ]
    lines = [f'<meta property="{k}" content="{esc(val)}">' for k, val in tags]
    lines.append(f'<link rel="canonical" href="{esc(base + v.path)}">')
    return "\n".join(lines)


def page(title: str, head: str = "", body: str = "", lang: str = "en") -> str:
    """A small complete HTML document."""
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n{head}\n</head>\n<body>\n{body}\n</body></html>\n"
    )


def not_found(message: str = "Page not found") -> Response:
    return html_response(page("404 Not Found", body=f"<h1>404</h1><p>{esc(message)}</p>"), 404)
