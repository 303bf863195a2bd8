"""Media helpers shared by the pipeline: the ffmpeg binary, a container probe, data-dir paths,
the JPEG round trip of stored frames.

There is no ffprobe and no system ffmpeg: the binary ships with ``imageio-ffmpeg``. The probe
reads what ``ffmpeg -i FILE`` prints about the container (duration, streams, size), which is
enough to reject audio-only, empty and unreadable files with a clear reason before decoding.
"""

from __future__ import annotations

import functools
import io
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from charwatch.config import Config
from storage import blobs

_DURATION = re.compile(r"Duration:\s*(\d+):(\d\d):(\d\d(?:\.\d+)?)")
_VIDEO_STREAM = re.compile(r"Stream #\d+:\d+.*?: Video: (\w+).*?, (\d{2,5})x(\d{2,5})")
_AUDIO_STREAM = re.compile(r"Stream #\d+:\d+.*?: Audio: ")
_ERROR_HINTS = {
    "moov atom not found": "moov atom not found (truncated download or not an MP4)",
    "End of file": "file ends early (truncated)",
    "Invalid data found when processing input": "invalid data (not a media file)",
    "does not contain any stream": "no streams in the file",
    "No such file or directory": "file not found",
}


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (or ``$IMAGEIO_FFMPEG_EXE``)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class MediaInfo:
    """What the container header says; ``error`` is set when ffmpeg could not open it."""

    duration: float | None
    has_video: bool
    has_audio: bool
    width: int | None
    height: int | None
    video_codec: str | None
    error: str | None = None


def probe(path: Path, timeout_s: float = 30.0) -> MediaInfo:
    """Read a media file's header with ``ffmpeg -i`` (no decoding)."""
    try:
        proc = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return MediaInfo(
            None, False, False, None, None, None, "ffmpeg timed out reading the header"
        )
    text = proc.stderr.decode("utf-8", "replace")
    duration = None
    if m := _DURATION.search(text):
        h, mi, s = m.groups()
        duration = int(h) * 3600 + int(mi) * 60 + float(s)
    video = _VIDEO_STREAM.search(text)
    error = None
    if "Input #0" not in text:
        found = (text_ for hint, text_ in _ERROR_HINTS.items() if hint in text)
        error = next(found, None) or _last_line(text)
    return MediaInfo(
        duration=duration,
        has_video=video is not None,
        has_audio=_AUDIO_STREAM.search(text) is not None,
        width=int(video.group(2)) if video else None,
        height=int(video.group(3)) if video else None,
        video_codec=video.group(1) if video else None,
        error=error,
    )


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "ffmpeg could not read the file"


def sniff_html(path: Path) -> bool:
    """True when a file starts like an HTML/XML page (a block or login page saved as media)."""
    with open(path, "rb") as fh:
        head = fh.read(512).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body", b"<!--"))


def to_data_path(data_dir: Path, path: Path) -> str:
    """Store a file path relative to ``data_dir`` (POSIX separators) when it lies below it."""
    try:
        return path.resolve().relative_to(data_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def objects_for(cfg: Config) -> blobs.Blobs | None:
    """The remote object store of the config (activated for this process, so
    :func:`storage.blobs.data_file` fetches from it), or None."""
    st = cfg.storage
    if not st.objects_remote:
        return None
    return blobs.activate(st.data_dir, st.data_path, st.objects_options)


def jpeg_round_trip(img: Image.Image, quality: int) -> tuple[bytes, Image.Image]:
    """``img`` encoded as JPEG, and those bytes decoded again (RGB): the pixels a later read
    of the stored file gives, without reading it back from disk."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as im:
        return data, im.convert("RGB")
