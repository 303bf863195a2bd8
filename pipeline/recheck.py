"""Re-check flagged videos: is each one still up on its platform?

Rights holders send notices for confirmed detections; this job revisits those URLs later and
records whether the video is still reachable (``up``), gone (``removed``) or could not be told
(``unknown``, e.g. a 429, a timeout or a page yt-dlp could not read), so reports can show
what was taken down. A platform-wide block pauses the platform (``storage.platform_state``)
and the rest of its videos wait for the next re-check; requests take the platform's shared
rate budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from charwatch.config import Config
from storage import Detection, Store, Video, platform_state, utcnow

RECHECK_STATES = ("confirmed", "notice_sent", "removed")

# what yt-dlp says when the video itself is gone (lower case); an extraction failure
# ("Unable to extract ...") or a block is not among them: that is "unknown"
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
)


@dataclass
class RecheckStats:
    """What one re-check pass found."""

    checked: int = 0
    up: int = 0
    removed: int = 0
    unknown: int = 0
    skipped: int = 0  # not asked: the platform was paused
    changes: list[str] = field(default_factory=list)
    paused: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{self.checked} checked: {self.up} still up, {self.removed} removed, "
            f"{self.unknown} unknown"
            + (f", {self.skipped} skipped (platform paused)" if self.skipped else "")
            + "".join(f"\n  PAUSED: {why}" for why in self.paused.values())
        )


def check_url(url: str, cfg: Config, platform: str) -> tuple[str, str, bool]:
    """Ask the platform (through yt-dlp, no download) whether a video is still up.

    Returns ``(state, note, platform_block)``: ``up``, ``removed`` or ``unknown``, a one-line
    note, and whether the answer was a platform-wide block (which pauses the platform).
    """
    from yt_dlp import YoutubeDL
    from yt_dlp.utils import DownloadError

    from pipeline.failures import classify_error, short
    from pipeline.ytdlp import add_cookies, platform_options

    pcfg = cfg.platforms.get(platform)
    opts: dict[str, Any] = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "skip_download": True,
        "socket_timeout": cfg.process.download_timeout_s,
        "retries": 1,
        "extractor_retries": 1,
        **platform_options(pcfg, cfg.data_dir, platform),
    }
    try:
        with YoutubeDL(opts) as ydl:
            if pcfg.cookies:
                add_cookies(ydl, pcfg)
            info = ydl.extract_info(url, download=False)
    except DownloadError as exc:
        failure = classify_error(exc, url, platform)
        if failure.platform_wide:
            return "unknown", failure.message, True
        text = str(exc).lower()
        if any(m in text for m in _GONE_MARKERS):
            return "removed", short(exc), False
        return "unknown", short(exc), False
    if not info:
        return "unknown", "no information returned", False
    return "up", "", False


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
            .order_by(Video.id)
        )
        targets = list(s.execute(q))
    for video_id, url, platform, before in targets:
        if platform_state.active_pause(store, platform) is not None:
            stats.skipped += 1  # the platform is cooling down: ask again next time
            continue
        pcfg = cfg.platforms.get(platform)
        wait = platform_state.take_slot(
            store, platform, pcfg.sleep_interval, pcfg.max_downloads_per_hour
        )
        if wait > 0:
            time.sleep(min(wait, 60.0))
        state, note, block = check_url(url, cfg, platform)
        if block:
            pause = platform_state.pause(store, platform, note, "recheck", pcfg.cooldown_s)
            stats.paused[platform] = pause.describe()
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
