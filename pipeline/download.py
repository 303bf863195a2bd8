"""Download one video with yt-dlp's Python API: a small format, bounded size and length.

Format choice follows the platform research: ``b[ext=mp4]/bv*+ba/b`` sorted by
``res:480,codec:h264,+size`` (``res`` is the smallest dimension, so 9:16 videos stay in), never
``worst``. The file is written inside a hidden temporary folder next to its final place and
renamed when complete and checked, so a killed process never leaves a half file under the final
name. Failures raise :class:`DownloadError` with a one-line reason, whether a retry may help and
whether the failure is the platform's (see :mod:`pipeline.failures`). The ``YoutubeDL`` comes
from a :class:`~pipeline.ytdlp.YtdlpSessions` kept for the batch (JS runtime, impersonation,
cookies and cache set up once per platform).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charwatch.config import PlatformConfig, ProcessConfig
from pipeline.failures import DownloadError, TooLarge, classify_error, short
from pipeline.media import ffmpeg_exe, probe, sniff_html
from pipeline.ytdlp import YtdlpSessions

log = logging.getLogger(__name__)

__all__ = ["DownloadError", "DownloadResult", "YtdlpSessions", "batch_options", "download"]

FORMAT = "b[ext=mp4]/bv*+ba/b"
FORMAT_SORT = ["res:480", "codec:h264", "+size"]
TMP_PREFIX = ".dl-"


@dataclass(frozen=True)
class DownloadResult:
    """The stored file, its SHA-256 and size, and yt-dlp's (sanitised) info dict."""

    path: Path
    sha256: str
    size: int
    info: dict[str, Any] = field(repr=False)


class _Capture:
    """A yt-dlp logger that keeps this thread's messages and stays quiet."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def messages(self) -> list[str]:
        if not hasattr(self._local, "messages"):
            self._local.messages = []
        return self._local.messages

    def reset(self) -> None:
        self._local.messages = []

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


class _Hooks:
    """One progress hook per ``YoutubeDL`` that calls this thread's current video's hook."""

    def __init__(self) -> None:
        self._local = threading.local()

    def set(self, fn: Any) -> None:
        self._local.fn = fn

    def __call__(self, d: dict[str, Any]) -> None:
        fn = getattr(self._local, "fn", None)
        if fn is not None:
            fn(d)


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


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


def batch_options(pcfg: ProcessConfig) -> dict[str, Any]:
    """yt-dlp options shared by every video of a batch (format, retries, quiet logging)."""
    capture, hooks = _Capture(), _Hooks()
    return {
        "format": FORMAT,
        "format_sort": FORMAT_SORT,
        "retries": pcfg.download_retries,
        "fragment_retries": pcfg.download_retries,
        "extractor_retries": pcfg.download_retries,
        "file_access_retries": 1,
        "retry_sleep_functions": {"http": lambda n: min(2.0 * 2**n, 10.0)},
        "socket_timeout": pcfg.download_timeout_s,
        "ffmpeg_location": ffmpeg_exe(),
        "merge_output_format": "mp4",
        "noplaylist": True,
        "playlist_items": "1",
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": capture,
        "progress_hooks": [hooks],
        "overwrites": True,
        "continuedl": False,
        "writeinfojson": False,
        "color": {"stdout": "no_color", "stderr": "no_color"},
    }


def _clear_stale(dest_dir: Path, stem: str) -> None:
    for old in dest_dir.glob(f"{TMP_PREFIX}{stem}-*"):
        shutil.rmtree(old, ignore_errors=True)


def download(
    url: str,
    dest_dir: Path,
    stem: str,
    pcfg: ProcessConfig,
    platform: PlatformConfig | None = None,
    *,
    sessions: YtdlpSessions | None = None,
    platform_name: str = "",
) -> DownloadResult:
    """Download ``url`` to ``dest_dir/<stem>.<ext>``; raises :class:`DownloadError`.

    ``sessions`` is the batch's yt-dlp instances (a private one is made and closed when
    omitted); ``platform_name`` tells the error classifier which platform's rules apply.
    """
    from yt_dlp.utils import YoutubeDLError

    own = sessions is None
    if sessions is None:
        sessions = YtdlpSessions(batch_options(pcfg), None)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    _clear_stale(dest_dir, stem)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{stem}-", dir=dest_dir))
    max_bytes = int(pcfg.max_filesize_mb * 1024 * 1024)
    rejected: list[str] = []

    def guard_size(d: dict[str, Any]) -> None:
        done = d.get("downloaded_bytes") or 0
        if max_bytes and done > max_bytes:
            raise TooLarge(f"file too large (over {pcfg.max_filesize_mb} MB)")

    try:
        try:
            ydl = sessions.get(platform_name or "default", platform)
            capture: _Capture = ydl.params["logger"]
            capture.reset()
            ydl.params["progress_hooks"][0].set(guard_size)
            ydl.params.update(
                {
                    "outtmpl": {"default": str(tmp / "media.%(ext)s")},
                    "paths": {"home": str(tmp), "temp": str(tmp)},
                    "max_filesize": max_bytes or None,
                    "match_filter": _duration_filter(pcfg.max_duration_s, rejected),
                }
            )
            info = ydl.extract_info(url, download=True)
            info = ydl.sanitize_info(info) if info else {}
        except DownloadError:
            raise
        except TooLarge as exc:
            raise DownloadError(str(exc), transient=False) from exc
        except YoutubeDLError as exc:
            raise classify_error(exc, url, platform_name) from exc
        except OSError as exc:
            raise DownloadError(f"network or disk error: {short(exc)}", transient=True) from exc
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
        if own:
            sessions.close()


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
