"""Platform-wide blocks pause a platform instead of failing its videos.

The fixture platform answers a platform's media with 429 for a while (as a CDN rate limit
does); the real yt-dlp downloads through it, the worker pauses the platform, keeps its videos
queued with no attempt burnt, goes on with the other platforms, and picks them up after the
cool-down. The error classifier is checked on yt-dlp's own exception types.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from charwatch.config import load_config
from pipeline.failures import classify_error
from storage import Store, Video, VideoState, platform_state
from tests.conftest import write_config


def _queue(store: Store, srv, platform: str, n: int) -> list[str]:
    ids = srv.catalog.demo_video_ids(platform)[:n]
    with store.session() as s:
        for vid in ids:
            v = srv.catalog.videos[(platform, vid)]
            s.add(Video(platform=platform, platform_id=vid, url=srv.url(v.path)))
    return ids


def test_media_429_pauses_the_platform_and_resumes_after_the_cooldown(
    tmp_path: Path, fixture_server, embedder
) -> None:
    from pipeline.worker import process_pending

    path = write_config(
        tmp_path / "c.toml",
        tmp_path / "data",
        fixture_server.base_url,
        "[process]\ndownload_retries = 0\n\n",
    )
    cfg = load_config(path)
    cfg.platforms.tiktok.cooldown_s = 600
    store = Store(cfg.storage.database_url)
    _queue(store, fixture_server, "tiktok", 3)
    _queue(store, fixture_server, "youtube", 2)
    fixture_server.block_media("tiktok", 429)
    try:
        stats = process_pending(cfg, store, embedder, progress=False)
    finally:
        fixture_server.unblock_media("tiktok")
    # the other platform went on; nothing of the blocked one failed or lost an attempt
    assert stats.processed == 2 and stats.failed == 0
    assert "tiktok" in stats.paused and "429" in stats.paused["tiktok"]
    assert "PAUSED" in stats.summary()
    with store.session() as s:
        tiktok = list(s.scalars(select(Video).where(Video.platform == "tiktok")))
        assert [v.state for v in tiktok] == [VideoState.DISCOVERED] * 3
        assert all(v.attempts == 0 and v.lease_owner is None for v in tiktok)
    pause = platform_state.active_pause(store, "tiktok")
    assert pause is not None and pause.source == "download" and "429" in pause.reason
    assert platform_state.active_pause(store, "youtube") is None
    # during the cool-down nothing of the platform is claimed
    again = process_pending(cfg, store, embedder, progress=False)
    assert again.claimed == 0 and "tiktok" in again.paused
    _end_cooldown(store, "tiktok")  # ten minutes later
    after = process_pending(cfg, store, embedder, progress=False)
    assert after.processed == 3 and after.failed == 0 and not after.paused
    with store.session() as s:
        states = set(s.scalars(select(Video.state).where(Video.platform == "tiktok")))
    assert states == {VideoState.EMBEDDED}


def _end_cooldown(store: Store, platform: str) -> None:
    """Move the platform's cool-down end into the past, as the clock would."""
    import datetime as dt

    from storage import PlatformState, utcnow

    with store.session() as s:
        s.get(PlatformState, platform).paused_until = utcnow() - dt.timedelta(seconds=1)


def test_consecutive_errors_pause_the_platform(tmp_path: Path, embedder) -> None:
    """Five network errors in a row are a platform problem, not five broken videos."""
    import socket

    from pipeline.worker import process_pending

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)  # accepts, never answers: every download times out
    try:
        port = sock.getsockname()[1]
        path = write_config(
            tmp_path / "c.toml",
            tmp_path / "data",
            f"http://127.0.0.1:{port}",
            "[process]\ndownload_retries = 0\ndownload_timeout_s = 0.3\n\n",
        )
        cfg = load_config(path)
        cfg.platforms.instagram.max_consecutive_errors = 2
        store = Store(cfg.storage.database_url)
        with store.session() as s:
            for i in range(4):
                s.add(
                    Video(
                        platform="instagram",
                        platform_id=f"v{i}",
                        url=f"http://127.0.0.1:{port}/{i}.mp4",
                    )
                )
        stats = process_pending(cfg, store, embedder, progress=False)
    finally:
        sock.close()
    assert "instagram" in stats.paused and "in a row" in stats.paused["instagram"]
    with store.session() as s:
        videos = list(s.scalars(select(Video)))
    assert not any(v.state == VideoState.FAILED for v in videos)
    # the first error counted as that video's (transient, retried later); the rest kept theirs
    assert sum(v.attempts for v in videos) <= 2


def test_rate_budget_is_shared_between_stores(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    a, b = Store(url), Store(url)
    assert platform_state.take_slot(a, "youtube", 30.0) == 0.0
    wait = platform_state.take_slot(b, "youtube", 30.0)
    assert 25.0 < wait <= 30.0  # the other process's slot counts
    assert platform_state.take_slot(b, "tiktok", 30.0) == 0.0  # per platform
    # an hourly cap: two slots, then the wait runs to the end of the window
    assert platform_state.take_slot(a, "instagram", 0.0, per_hour=2) == 0.0
    assert platform_state.take_slot(b, "instagram", 0.0, per_hour=2) == 0.0
    assert platform_state.take_slot(a, "instagram", 0.0, per_hour=2) > 3500


def test_pause_keeps_the_longer_cooldown_and_can_be_lifted(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    first = platform_state.pause(store, "tiktok", "HTTP 429", "crawl", 600)
    shorter = platform_state.pause(store, "tiktok", "bot check", "download", 10)
    assert shorter.until == first.until
    assert [p.platform for p in platform_state.active_pauses(store)] == ["tiktok"]
    assert platform_state.resume(store, "tiktok")
    assert platform_state.active_pause(store, "tiktok") is None


def _extractor_error(text: str) -> BaseException:
    from yt_dlp.utils import DownloadError, ExtractorError

    inner = ExtractorError(text, expected=True)
    return DownloadError(f"ERROR: [youtube] abc: {text}", (type(inner), inner, None))


@pytest.mark.parametrize(
    ("platform", "text", "platform_wide"),
    [
        ("youtube", "Sign in to confirm you’re not a bot. Use --cookies-from-browser", True),
        ("youtube", "Requested format is not available. Use --list-formats", True),
        ("youtube", "Only images are available for download. Use --list-formats", True),
        (
            "instagram",
            "Requested content is not available, rate-limit reached or login required",
            True,
        ),
        ("tiktok", "Your IP address is blocked from accessing this post", True),
        ("youtube", "Sign in to confirm your age. This video may be inappropriate", False),
        ("youtube", "Private video. Sign in if you've been granted access", False),
        ("youtube", "Video unavailable. This video has been removed by the uploader", False),
        ("tiktok", "Requested format is not available", False),
    ],
)
def test_classifier_tells_platform_blocks_from_video_failures(
    platform: str, text: str, platform_wide: bool
) -> None:
    err = classify_error(_extractor_error(text), "https://example.invalid/v", platform)
    assert err.platform_wide is platform_wide
    assert "\n" not in err.message
    if platform_wide:
        assert err.transient  # never a permanent verdict on the video


def test_a_blocked_listing_pauses_its_platform_for_the_rest_of_the_crawl(
    tmp_path: Path, fixture_server
) -> None:
    """The real crawler: a blocked TikTok listing pauses TikTok; YouTube goes on."""
    from charwatch import jobs
    from crawler.listing import Listing
    from storage import ListingStatus

    cfg = load_config(write_config(tmp_path / "c.toml", tmp_path / "data", fixture_server.base_url))
    store = jobs.open_store(cfg)
    listings = [
        Listing("tiktok", "hashtag", "blockedtag"),
        Listing("tiktok", "hashtag", "charwatchdemo"),
        Listing("youtube", "hashtag", "charwatchdemo"),
    ]
    runs = {(r.platform, r.target): r for r in jobs.crawl(cfg, store, listings, max_items=3)}
    assert runs[("tiktok", "blockedtag")].status == ListingStatus.BLOCKED
    paused = runs[("tiktok", "charwatchdemo")]
    assert paused.status == ListingStatus.PAUSED and "blockedtag" in paused.message
    assert runs[("youtube", "charwatchdemo")].status == ListingStatus.OK
    pause = platform_state.active_pause(store, "tiktok")
    assert pause is not None and pause.source == "crawl"
    # the next crawl of the platform waits for the cool-down too
    again = jobs.crawl(cfg, store, [Listing("tiktok", "user", "demo_creator")], max_items=3)
    assert [r.status for r in again] == [ListingStatus.PAUSED]


def test_status_runs_report_and_resume_show_a_pause(tmp_path: Path, fixture_server) -> None:
    """What people see: `status` (exit 4), `runs`, the report's alert, and `resume`."""
    from charwatch import jobs
    from tests.conftest import run_cli

    path = write_config(tmp_path / "c.toml", tmp_path / "data", fixture_server.base_url)
    cfg = load_config(path)
    store = jobs.open_store(cfg)
    with store.session() as s:
        s.add(Video(platform="youtube", platform_id="q1", url=fixture_server.url("/shorts/q1")))
    platform_state.pause(store, "youtube", "bot check <script>x</script>", "download", 900)
    status = run_cli("status", config=path)
    assert status.returncode == 4, status.stderr
    assert "PAUSED" in status.stdout and "bot check" in status.stdout
    assert "youtube" in run_cli("runs", config=path).stdout
    result = jobs.report(cfg, store)
    html = Path(result.html_path).read_text(encoding="utf-8")
    assert 'id="pauses"' in html and 'data-platform="youtube"' in html
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    resumed = run_cli("resume", "youtube", config=path)
    assert resumed.returncode == 0 and "lifted" in resumed.stdout
    assert run_cli("status", config=path).returncode == 0
    assert platform_state.active_pause(store, "youtube") is None
