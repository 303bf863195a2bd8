"""Download one video with yt-dlp's Python API: a small format, bounded size and length.

Format choice follows the platform research: ``b[ext=mp4]/bv*+ba/b`` sorted by
``res:480,codec:h264,+size`` (``res`` is the smallest dimension, so 9:16 videos stay in), never
``worst``. The file is written inside a hidden temporary folder next to its final place and
renamed when complete and checked, so a killed process never leaves a half file under the final
name. Failures raise :class:`DownloadError` with a one-line reason and whether a retry may help.
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import ipaddress
import logging
import os
import re
import shutil
import socket
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from charwatch.config import PlatformConfig, ProcessConfig
from pipeline.media import ffmpeg_exe, probe, sniff_html

log = logging.getLogger(__name__)

FORMAT = "b[ext=mp4]/bv*+ba/b"
FORMAT_SORT = ["res:480", "codec:h264", "+size"]
TMP_PREFIX = ".dl-"
_TRANSIENT_STATUS = {403, 408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524}
_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})")


class DownloadError(Exception):
    """A failed download; ``transient`` says whether trying again later may succeed."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class DownloadResult:
    """The stored file, its SHA-256 and size, and yt-dlp's (sanitised) info dict."""

    path: Path
    sha256: str
    size: int
    info: dict[str, Any] = field(repr=False)


class _Capture:
    """A yt-dlp logger that keeps messages (to find why nothing was written) and stays quiet."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def debug(self, msg: str) -> None:
        self.messages.append(msg)

    info = debug

    def warning(self, msg: str) -> None:
        self.messages.append(msg)
        log.debug("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        self.messages.append(msg)
        log.debug("yt-dlp: %s", msg)

    def find(self, needle: str) -> str | None:
        return next((m for m in self.messages if needle in m), None)


class _TooLarge(Exception):
    pass


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _cookie_domain(base_url: str) -> str:
    host = urlparse(base_url).hostname or ""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if "." not in host:
        return host
    return "." + host.removeprefix("www.")


def _add_cookies(ydl: Any, platform: PlatformConfig) -> None:
    """Scope the platform's cookies to its own domain (never sent to other hosts)."""
    domain = _cookie_domain(platform.base_url)
    if not domain:
        raise DownloadError("platform cookies need platforms.<name>.base_url", transient=False)
    for name, value in platform.cookies.items():
        ydl.cookiejar.set_cookie(
            http.cookiejar.Cookie(
                version=0,
                name=name,
                value=value,
                port=None,
                port_specified=False,
                domain=domain,
                domain_specified=True,
                domain_initial_dot=domain.startswith("."),
                path="/",
                path_specified=True,
                secure=False,
                expires=None,
                discard=True,
                comment=None,
                comment_url=None,
                rest={},
            )
        )


def _duration_filter(max_s: int, rejected: list[str]):  # type: ignore[no-untyped-def]
    def check(info: dict[str, Any], *, incomplete: bool = False) -> str | None:
        if info.get("is_live"):
            rejected.append("live stream, not a video")
            return rejected[-1]
        duration = info.get("duration")
        if duration is not None and max_s and float(duration) > max_s:
            rejected.append(f"video too long ({float(duration):.0f} s > {max_s} s)")
            return rejected[-1]
        return None

    return check


def _walk_causes(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen and len(seen) < 10:
        seen.append(exc)
        nxt = getattr(exc, "exc_info", None)
        nxt = nxt[1] if isinstance(nxt, tuple) and len(nxt) > 1 else None
        exc = nxt or getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return seen


def classify_error(exc: BaseException, url: str) -> DownloadError:
    """Turn a yt-dlp exception into a one-line :class:`DownloadError`."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError
    from yt_dlp.utils import UnsupportedError

    chain = _walk_causes(exc)
    text = " ".join(str(e) for e in chain)
    for e in chain:
        if isinstance(e, _TooLarge):
            return DownloadError(str(e), transient=False)
        if isinstance(e, HTTPError):
            return _http_error(e.status, e.reason or "")
    if m := _HTTP_STATUS.search(text):
        return _http_error(int(m.group(1)), "")
    for e in chain:
        if isinstance(e, UnsupportedError) or "Unsupported URL" in str(e):
            return DownloadError(f"no video found at {url} (page without a video)", False)
        if isinstance(e, TransportError | socket.timeout | TimeoutError | ConnectionError):
            return DownloadError(f"network error: {_short(e)}", transient=True)
        if isinstance(e, ssl.SSLError):
            return DownloadError(f"TLS error: {_short(e)}", transient=True)
    low = text.lower()
    if "timed out" in low or "connection" in low or "temporarily" in low:
        return DownloadError(f"network error: {_short(exc)}", transient=True)
    if "did not get any data" in low:
        return DownloadError("server sent an empty (zero-byte) file", transient=False)
    if "content too short" in low or "incomplete" in low or "more expected" in low:
        return DownloadError(f"incomplete download: {_short(exc)}", transient=True)
    if "requested format is not available" in low or "no video formats" in low:
        return DownloadError("no downloadable video format", transient=False)
    if "private" in low or "login" in low or "sign in" in low:
        return DownloadError(f"video needs a login or is private: {_short(exc)}", False)
    if "removed" in low or "not available" in low or "unavailable" in low:
        return DownloadError(f"video unavailable: {_short(exc)}", transient=False)
    return DownloadError(f"download failed: {_short(exc)}", transient=True)


def _http_error(status: int, reason: str) -> DownloadError:
    label = f"HTTP {status}{' ' + reason if reason else ''}"
    if status in (404, 410):
        return DownloadError(f"{label}: video not found (deleted or wrong URL)", transient=False)
    if status == 429:
        return DownloadError(f"{label}: rate limited by the platform", transient=True)
    if status in _TRANSIENT_STATUS:
        return DownloadError(f"{label}: server refused or failed, will retry", transient=True)
    return DownloadError(f"{label}: request rejected", transient=status >= 500)


def _short(exc: BaseException) -> str:
    msg = re.sub(r"^(ERROR: )?(\[[\w:]+\] )*", "", str(exc).strip()).splitlines()
    return (msg[0] if msg else type(exc).__name__)[:300]


def _clear_stale(dest_dir: Path, stem: str) -> None:
    for old in dest_dir.glob(f"{TMP_PREFIX}{stem}-*"):
        shutil.rmtree(old, ignore_errors=True)


def download(
    url: str,
    dest_dir: Path,
    stem: str,
    pcfg: ProcessConfig,
    platform: PlatformConfig | None = None,
) -> DownloadResult:
    """Download ``url`` to ``dest_dir/<stem>.<ext>``; raises :class:`DownloadError`."""
    from yt_dlp import YoutubeDL
    from yt_dlp.utils import YoutubeDLError

    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    _clear_stale(dest_dir, stem)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{stem}-", dir=dest_dir))
    max_bytes = int(pcfg.max_filesize_mb * 1024 * 1024)
    rejected: list[str] = []
    capture = _Capture()

    def guard_size(d: dict[str, Any]) -> None:
        done = d.get("downloaded_bytes") or 0
        if max_bytes and done > max_bytes:
            raise _TooLarge(f"file too large (over {pcfg.max_filesize_mb} MB)")

    opts: dict[str, Any] = {
        "format": FORMAT,
        "format_sort": FORMAT_SORT,
        "max_filesize": max_bytes or None,
        "match_filter": _duration_filter(pcfg.max_duration_s, rejected),
        "retries": pcfg.download_retries,
        "fragment_retries": pcfg.download_retries,
        "extractor_retries": pcfg.download_retries,
        "file_access_retries": 1,
        "retry_sleep_functions": {"http": lambda n: min(2.0 * 2**n, 10.0)},
        "socket_timeout": pcfg.download_timeout_s,
        "ffmpeg_location": ffmpeg_exe(),
        "outtmpl": {"default": str(tmp / "media.%(ext)s")},
        "paths": {"home": str(tmp), "temp": str(tmp)},
        "merge_output_format": "mp4",
        "noplaylist": True,
        "playlist_items": "1",
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": capture,
        "progress_hooks": [guard_size],
        "cachedir": False,
        "overwrites": True,
        "continuedl": False,
        "writeinfojson": False,
        "color": {"stdout": "no_color", "stderr": "no_color"},
    }
    if platform is not None:
        if platform.proxy:
            opts["proxy"] = platform.proxy
        if platform.headers:
            opts["http_headers"] = dict(platform.headers)
    try:
        try:
            with YoutubeDL(opts) as ydl:
                if platform is not None and platform.cookies:
                    _add_cookies(ydl, platform)
                info = ydl.extract_info(url, download=True)
                info = ydl.sanitize_info(info) if info else {}
        except DownloadError:
            raise
        except _TooLarge as exc:
            raise DownloadError(str(exc), transient=False) from exc
        except YoutubeDLError as exc:
            raise classify_error(exc, url) from exc
        except OSError as exc:
            raise DownloadError(f"network or disk error: {_short(exc)}", transient=True) from exc
        if rejected:
            raise DownloadError(rejected[-1], transient=False)
        src = _downloaded_file(info, tmp)
        if src is None:
            if capture.find("larger than max-filesize"):
                raise DownloadError(f"file too large (over {pcfg.max_filesize_mb} MB)", False)
            raise DownloadError("yt-dlp wrote no file (nothing downloadable found)", False)
        _check_file(src, pcfg)
        ext = src.suffix.lstrip(".").lower() or "mp4"
        final = dest_dir / f"{stem}.{ext}"
        digest = sha256_file(src)
        size = src.stat().st_size
        os.replace(src, final)
        return DownloadResult(path=final, sha256=digest, size=size, info=info)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _downloaded_file(info: dict[str, Any], tmp: Path) -> Path | None:
    for item in info.get("requested_downloads") or []:
        fp = item.get("filepath") or item.get("_filename")
        if fp and Path(fp).is_file():
            return Path(fp)
    files = [
        p for p in tmp.iterdir() if p.is_file() and not p.name.endswith((".part", ".ytdl", ".tmp"))
    ]
    return max(files, key=lambda p: p.stat().st_size) if files else None


def _check_file(path: Path, pcfg: ProcessConfig) -> None:
    """Reject what is clearly not a usable video before it gets a final name."""
    size = path.stat().st_size
    if size == 0:
        raise DownloadError("server sent an empty (zero-byte) file", transient=False)
    if pcfg.max_filesize_mb and size > pcfg.max_filesize_mb * 1024 * 1024:
        raise DownloadError(f"file too large ({size / 2**20:.1f} MB)", transient=False)
    if sniff_html(path):
        raise DownloadError("server sent an HTML page instead of the video", transient=False)
    meta = probe(path)
    if meta.duration is not None and pcfg.max_duration_s and meta.duration > pcfg.max_duration_s:
        raise DownloadError(
            f"video too long ({meta.duration:.0f} s > {pcfg.max_duration_s} s)", transient=False
        )
