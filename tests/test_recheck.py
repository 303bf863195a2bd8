"""Re-checks of confirmed detections: up, removed, or unknown (never "removed" on a block).

A small HTTP server on 127.0.0.1 plays the platform: a video page, a deleted video (404), a
page yt-dlp cannot read, and a rate limit (429). The real yt-dlp asks each URL.
"""

from __future__ import annotations

import http.server
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from charwatch.config import Config, StorageConfig
from pipeline.recheck import recheck_flagged
from storage import Character, Detection, Store, Video, platform_state
from tests.conftest import local_http_server

PAGES = {
    "/up": (
        200,
        '<html><head><meta property="og:video" content="/v.mp4">'
        '<meta property="og:title" content="a post"></head><body>post</body></html>',
    ),
    "/gone": (404, "<html><body>This video does not exist</body></html>"),
    "/changed": (200, "<html><head><title>x</title></head><body>new layout</body></html>"),
    "/limited": (429, "<html><body>Too Many Requests</body></html>"),
}


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/v.mp4":
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"\0\0\0\0")
            return
        status, body = PAGES.get(self.path, (404, "no"))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def site() -> Iterator[str]:
    with local_http_server(_Handler) as url:
        yield url


def _cfg(tmp_path, site: str) -> Config:
    cfg = Config(storage=StorageConfig(data_dir=str(tmp_path / "data")))
    for name in ("tiktok", "youtube", "instagram"):
        p = cfg.platforms.get(name)
        p.base_url = site
        p.sleep_interval = 0.0
        p.max_downloads_per_hour = 0
    cfg.process.download_timeout_s = 5.0
    return cfg


def _flag(store: Store, platform: str, pid: str, url: str) -> None:
    with store.session() as s:
        c = s.scalar(select(Character).where(Character.name == "Hero"))
        if c is None:
            c = Character(name="Hero")
            s.add(c)
            s.flush()
        v = Video(platform=platform, platform_id=pid, url=url)
        s.add(v)
        s.flush()
        s.add(Detection(video_id=v.id, character_id=c.id, score=0.9, review_state="confirmed"))


def _availability(store: Store) -> dict[str, str | None]:
    with store.session() as s:
        return {v.platform_id: v.availability for v in s.scalars(select(Video))}


def test_recheck_tells_removed_from_unreadable(tmp_path, site: str) -> None:
    cfg = _cfg(tmp_path, site)
    store = Store(cfg.storage.database_url)
    _flag(store, "youtube", "up", f"{site}/up")
    _flag(store, "youtube", "gone", f"{site}/gone")
    _flag(store, "youtube", "changed", f"{site}/changed")
    stats = recheck_flagged(cfg, store)
    assert _availability(store) == {"up": "up", "gone": "removed", "changed": "unknown"}
    assert stats.checked == 3 and stats.removed == 1 and stats.unknown == 1
    assert not stats.paused


def test_a_block_is_unknown_and_pauses_the_platform(tmp_path, site: str) -> None:
    cfg = _cfg(tmp_path, site)
    store = Store(cfg.storage.database_url)
    _flag(store, "tiktok", "limited", f"{site}/limited")
    _flag(store, "tiktok", "up", f"{site}/up")  # not asked: the platform is paused by then
    _flag(store, "youtube", "yt-up", f"{site}/up")  # another platform goes on
    stats = recheck_flagged(cfg, store)
    got = _availability(store)
    assert got["limited"] == "unknown" and got["up"] is None and got["yt-up"] == "up"
    assert stats.skipped == 1 and "tiktok" in stats.paused
    pause = platform_state.active_pause(store, "tiktok")
    assert pause is not None and pause.source == "recheck" and "429" in pause.reason
    assert "PAUSED" in stats.summary()
