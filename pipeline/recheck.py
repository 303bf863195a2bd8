"""Re-check flagged videos: is each one still up on its platform?

Rights holders send notices for confirmed detections; this job revisits those URLs later and
records whether the video is still reachable (``up``), gone (``removed``) or could not be told
(``unknown``, e.g. a 429 or a timeout), so reports can show what was taken down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from charwatch.config import Config
from storage import Detection, Store, Video, utcnow

RECHECK_STATES = ("confirmed", "notice_sent", "removed")

_GONE_MARKERS = (
    "http error 404",
    "http error 410",
    "video unavailable",
    "has been removed",
    "no longer available",
    "private video",
    "this video is private",
    "does not exist",
    "couldn't find this",
    "unsupported url",
    "no video formats found",
    "unable to extract",
)


@dataclass
class RecheckStats:
    """What one re-check pass found."""

    checked: int = 0
    up: int = 0
    removed: int = 0
    unknown: int = 0
    changes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.checked} checked: {self.up} still up, {self.removed} removed, "
            f"{self.unknown} unknown"
        )


def check_url(url: str, cfg: Config, platform: str) -> tuple[str, str]:
    """Ask the platform (through yt-dlp, no download) whether a video is still up."""
    from yt_dlp import YoutubeDL
    from yt_dlp.utils import DownloadError

    pcfg = cfg.platforms.get(platform)
    opts: dict[str, Any] = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "skip_download": True,
        "socket_timeout": cfg.process.download_timeout_s,
        "retries": 1,
        "extractor_retries": 1,
    }
    if pcfg.proxy:
        opts["proxy"] = pcfg.proxy
    if pcfg.headers:
        opts["http_headers"] = dict(pcfg.headers)
    try:
        with YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=False)
    except DownloadError as exc:
        text = str(exc).lower()
        if any(m in text for m in _GONE_MARKERS):
            return "removed", str(exc).splitlines()[0][:300]
        return "unknown", str(exc).splitlines()[0][:300]
    if not info:
        return "unknown", "no information returned"
    return "up", ""


def recheck_flagged(
    cfg: Config, store: Store, *, states: tuple[str, ...] = RECHECK_STATES
) -> RecheckStats:
    """Re-check every video with a detection in ``states`` and record its availability."""
    stats = RecheckStats()
    with store.session() as s:
        q = (
            select(Video.id, Video.url, Video.platform, Video.availability)
            .join(Detection, Detection.video_id == Video.id)
            .where(Detection.review_state.in_(states))
            .distinct()
        )
        targets = list(s.execute(q))
    for video_id, url, platform, before in targets:
        state, note = check_url(url, cfg, platform)
        stats.checked += 1
        setattr(stats, state, getattr(stats, state) + 1)
        if before and before != state:
            stats.changes.append(f"{platform} {url}: {before} -> {state}")
        with store.session() as s:
            video = s.get(Video, video_id)
            if video is not None:
                video.availability = state
                video.availability_checked_at = utcnow()
                video.availability_note = note or None
    return stats
