"""The Scrapy spiders for real: ``run_crawl`` subprocesses against the fixture platform.

Each crawl runs the real crawler process (Scrapy, the store pipeline, SQLite) against the
fixture server on 127.0.0.1 and is checked against the fixture catalog's ground truth.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from charwatch.config import Config, ConfigError, load_config
from crawler.listing import Listing
from crawler.middlewares import backoff_delay, retry_after_seconds
from crawler.run import _settle_rows, main, parse_listing_args, run_crawl
from crawler.status import classify_response, instagram_status, save_debug, tiktok_status
from storage import CrawlRun, ListingStatus, Store, Video, VideoState
from tests.conftest import REPO, write_config

pytestmark = pytest.mark.timeout(300)


@dataclass
class Crawl:
    cfg: Config
    store: Store
    batch: str
    runs: dict[str, CrawlRun]

    def run(self, key: str) -> CrawlRun:
        return self.runs[Listing.parse(key).key]


def make_config(tmp: Path, base_url: str, **crawl: Any) -> Config:
    cfg = load_config(write_config(tmp / "charwatch.toml", tmp / "data", base_url), environ={})
    for key, value in crawl.items():
        setattr(cfg.crawl, key, value)
    return cfg


def crawl(cfg: Config, keys: list[str], *, max_items: int | None = None) -> Crawl:
    listings = [Listing.parse(k) for k in keys]
    batch = run_crawl(cfg, listings, max_items=max_items)
    store = Store(cfg.storage.database_url)
    with store.session() as s:
        rows = list(s.scalars(select(CrawlRun).where(CrawlRun.batch == batch)))
    runs = {f"{r.platform}:{r.kind}:{r.target}": r for r in rows}
    assert len(rows) == len(listings), [r.target for r in rows]  # one row per listing
    return Crawl(cfg, store, batch, runs)


def listing_ids(store: Store, key: str) -> list[str]:
    with store.session() as s:
        return list(s.scalars(select(Video.platform_id).where(Video.listing == key)))


def expected_ids(catalog: Any, key: str) -> list[str]:
    lst = Listing.parse(key)
    if lst.kind == "search":
        return list(catalog.search(lst.platform, lst.target).video_ids)
    if lst.kind == "rss":
        author = catalog.author_by_id("youtube", lst.target)
        return list(catalog.user_listing(author).video_ids[:15])
    kind = "tag" if lst.kind == "hashtag" else lst.kind
    return list(catalog.listing(lst.platform, kind, lst.target).video_ids)


# --------------------------------------------------------------------- every listing kind

POSITIVE = [
    "tiktok:hashtag:charwatchdemo",
    "tiktok:user:demo_creator",
    "tiktok:search:charwatch demo",
    "youtube:hashtag:charwatchdemo",
    "youtube:user:@democreator",
    "youtube:search:charwatch demo",
    "instagram:hashtag:charwatchdemo",
    "instagram:user:demo_creator",
    "tiktok:hashtag:bulk500",
    "youtube:hashtag:bulk500",
]


@pytest.fixture(scope="module")
def full(fixture_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Crawl:
    tmp = tmp_path_factory.mktemp("crawl-full")
    cfg = make_config(tmp, fixture_server.base_url)
    channel = fixture_server.catalog.author("youtube", "democreator").user_id
    return crawl(cfg, [*POSITIVE, f"youtube:rss:{channel}"], max_items=600)


def test_every_listing_kind_pages_to_the_end(full: Crawl, fixture_server: Any) -> None:
    cat = fixture_server.catalog
    for key, run in full.runs.items():
        want = expected_ids(cat, key)
        assert run.status == ListingStatus.OK, (key, run.message)
        assert run.finished_at is not None and run.finished_at >= run.started_at
        assert run.items_seen == len(want), (key, run.items_seen, len(want))
        assert "end of listing" in (run.message or ""), key
        assert run.debug_path is None
        if run.kind != "rss":
            assert run.pages >= 2, key  # every demo listing spans 2+ pages
    with full.store.session() as s:
        stored = {(v.platform, v.platform_id) for v in s.scalars(select(Video))}
        for key in full.runs:
            platform = Listing.parse(key).platform
            missing = {(platform, i) for i in expected_ids(cat, key)} - stored
            assert not missing, key
        assert s.scalar(
            select(func.sum(CrawlRun.items_new)).where(CrawlRun.batch == full.batch)
        ) == len(stored)
        assert {v.state for v in s.scalars(select(Video))} == {VideoState.DISCOVERED}


def test_bulk_listings_store_exactly_500(full: Crawl, fixture_server: Any) -> None:
    for key, pages in (("tiktok:hashtag:bulk500", 17), ("youtube:hashtag:bulk500", 11)):
        ids = listing_ids(full.store, key)
        assert len(ids) == len(set(ids)) == 500
        assert ids and set(ids) == set(expected_ids(fixture_server.catalog, key))
        assert full.run(key).pages == pages  # 30 per TikTok page, 48 per YouTube page


def test_items_match_the_platform_data(full: Crawl, fixture_server: Any) -> None:
    cat = fixture_server.catalog
    base = fixture_server.base_url
    with full.store.session() as s:
        rows = list(s.scalars(select(Video)))
    assert len(rows) > 1000
    for row in rows:
        truth = cat.video(row.platform, row.platform_id)
        assert truth is not None, row.platform_id
        assert row.url == base + truth.path
        assert row.view_count is not None
        if row.platform == "youtube":
            continue  # Shorts lockups carry no author, date, likes or duration
        assert row.author == truth.author.handle
        assert row.posted_at is not None and int(row.posted_at.timestamp()) == truth.create_time
        assert (row.view_count, row.like_count) == (truth.plays, truth.likes)
        assert row.duration_s == pytest.approx(truth.duration, abs=0.01)
        assert (row.ai_label is not None) == truth.ai_label, row.platform_id
        assert [h.casefold() for h in row.hashtags] == [
            h.casefold() for h in dict.fromkeys(truth.hashtags)
        ]
        assert isinstance(row.raw, dict) and row.raw
    labelled = [r for r in rows if r.ai_label]
    assert {r.platform for r in labelled} == {"tiktok", "instagram"}
    # YouTube: the feed gives exact dates, the channel tab gives the channel
    by_id = {(r.platform, r.platform_id): r for r in rows}
    channel = cat.author("youtube", "democreator")
    for vid in cat.user_listing(channel).video_ids[:15]:
        truth = cat.video("youtube", vid)
        assert int(by_id[("youtube", vid)].posted_at.timestamp()) == truth.create_time
    for vid in cat.user_listing(channel).video_ids:
        assert by_id[("youtube", vid)].author in ("democreator", channel.name)


def test_recrawl_adds_no_duplicates_and_stops_on_known(full: Crawl, fixture_server: Any) -> None:
    keys = [
        "tiktok:hashtag:charwatchdemo",
        "youtube:hashtag:charwatchdemo",
        "instagram:hashtag:charwatchdemo",
    ]
    with full.store.session() as s:
        before = s.scalar(select(func.count(Video.id)))
        demo_id = fixture_server.catalog.demo_video_ids("tiktok")[0]
        marked = s.scalar(select(Video).where(Video.platform_id == demo_id))
        marked.state = VideoState.MATCHED
        first_seen, last_seen, marked_id = marked.first_seen, marked.last_seen, marked.id
    cfg = dataclasses.replace(
        full.cfg, crawl=dataclasses.replace(full.cfg.crawl, stop_after_known=3)
    )
    again = crawl(cfg, keys)
    for key in keys:
        run = again.run(key)
        assert run.status == ListingStatus.OK, run.message
        assert run.items_new == 0 and run.items_seen >= 3
        assert run.pages == 1  # every first page holds 3+ known items: no second page
        assert "consecutive known items" in (run.message or "")
    with full.store.session() as s:
        assert s.scalar(select(func.count(Video.id))) == before
        dupes = s.execute(
            select(Video.platform, Video.platform_id)
            .group_by(Video.platform, Video.platform_id)
            .having(func.count(Video.id) > 1)
        ).all()
        assert dupes == []
        row = s.get(Video, marked_id)
        assert row.state == VideoState.MATCHED  # the work-queue state is kept
        assert row.first_seen == first_seen and row.last_seen > last_seen


# --------------------------------------------------------------------- failures


NEGATIVE = {
    "tiktok:hashtag:blockedtag": (ListingStatus.BLOCKED, "empty response body"),
    "tiktok:hashtag:verifytag": (ListingStatus.BLOCKED, "verify"),
    "tiktok:hashtag:wafloop": (ListingStatus.BLOCKED, "proof-of-work"),  # never accepts
    "tiktok:hashtag:nosuchtag": (ListingStatus.NOT_FOUND, "10205"),
    "tiktok:hashtag:loginwalltag": (ListingStatus.LOGIN_REQUIRED, "login"),
    "tiktok:user:nosuchuser": (ListingStatus.NOT_FOUND, "10221"),
    "tiktok:user:privateuser": (ListingStatus.NOT_FOUND, "private"),
    "youtube:hashtag:layoutchangedtag": (ListingStatus.LAYOUT_CHANGED, "ytInitialData"),
    "youtube:hashtag:nosuchtag": (ListingStatus.NOT_FOUND, "404"),
    "youtube:user:nosuchchannel": (ListingStatus.NOT_FOUND, "404"),
    "instagram:hashtag:charwatchdemo": (ListingStatus.LOGIN_REQUIRED, "login"),  # no sessionid
    "instagram:user:pleasewait": (ListingStatus.BLOCKED, "Please wait"),
    "instagram:search:charwatch demo": (ListingStatus.ERROR, "not supported"),
}


@pytest.fixture(scope="module")
def negative(fixture_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Crawl:
    tmp = tmp_path_factory.mktemp("crawl-negative")
    cfg = make_config(tmp, fixture_server.base_url)
    cfg.platforms.instagram.cookies = {}
    for name in ("tiktok", "youtube", "instagram"):  # each case on its own, no pause between
        cfg.platforms.get(name).cooldown_s = 0
    keys = [*NEGATIVE, "youtube:hashtag:ratelimitedtag", "youtube:hashtag:bulk500"]
    return crawl(cfg, keys, max_items=7)


def test_each_negative_case_maps_to_its_status(negative: Crawl) -> None:
    for key, (status, words) in NEGATIVE.items():
        run = negative.run(key)
        assert run.status == status, (key, run.status, run.message)
        assert words.lower() in (run.message or "").lower(), (key, run.message)
        assert run.items_seen == 0 and run.finished_at is not None
        if status != ListingStatus.ERROR:  # the offending body is kept as evidence
            assert run.debug_path and Path(run.debug_path).is_file(), key
            assert Path(run.debug_path).parent == negative.cfg.data_dir / "debug"
    body = Path(negative.run("tiktok:hashtag:wafloop").debug_path).read_text(encoding="utf-8")
    assert 'id="wci"' in body
    assert Path(negative.run("tiktok:hashtag:blockedtag").debug_path).stat().st_size == 0


def test_rate_limited_page_is_retried(negative: Crawl, fixture_server: Any) -> None:
    run = negative.run("youtube:hashtag:ratelimitedtag")
    assert run.status == ListingStatus.OK, run.message
    assert run.items_seen == 3
    # two 429s, then the page (the hashtag's Shorts view)
    assert fixture_server.requests["/hashtag/ratelimitedtag/shorts"] >= 3


def test_max_items_caps_a_listing(negative: Crawl) -> None:
    run = negative.run("youtube:hashtag:bulk500")
    assert run.status == ListingStatus.OK
    assert (run.items_seen, run.items_new, run.pages) == (7, 7, 1)
    assert "max_items (7)" in (run.message or "")
    assert len(listing_ids(negative.store, "youtube:hashtag:bulk500")) == 7


def test_unreachable_site_and_bad_base_url(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, "http://127.0.0.1:9", retry_times=1)
    cfg.platforms.tiktok.base_url = "no-scheme.invalid"
    done = crawl(cfg, ["youtube:hashtag:anything", "tiktok:hashtag:anything"])
    yt, tt = done.run("youtube:hashtag:anything"), done.run("tiktok:hashtag:anything")
    assert yt.status == ListingStatus.ERROR and "request failed" in (yt.message or "")
    assert tt.status == ListingStatus.ERROR and "first request" in (tt.message or "")
    log = tmp_path / "data" / "logs" / f"crawl-{done.batch}.log"
    assert log.is_file() and "youtube:hashtag:anything" in log.read_text(encoding="utf-8")


def test_settle_rows_closes_what_a_dead_process_left(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, "http://127.0.0.1:9")
    store = Store(cfg.storage.database_url)
    with store.session() as s:
        s.add(CrawlRun(batch="b1", platform="tiktok", kind="hashtag", target="a"))
    listings = [Listing("tiktok", "hashtag", "a"), Listing("youtube", "user", "@b")]
    _settle_rows(cfg, listings, "b1", -9, tmp_path / "x.log")
    with store.session() as s:
        rows = {r.target: r for r in s.scalars(select(CrawlRun).where(CrawlRun.batch == "b1"))}
    assert set(rows) == {"a", "b"}
    assert all(r.status == ListingStatus.ERROR and "exit -9" in r.message for r in rows.values())


# --------------------------------------------------------------------- entry points


def test_scrapy_cli_runs_a_spider(fixture_server: Any, tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.toml", tmp_path / "data", fixture_server.base_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARWATCH_")}
    env["CHARWATCH_CONFIG"] = str(path)
    scrapy = Path(sys.executable).with_name("scrapy")
    cmd = [str(scrapy)] if scrapy.exists() else [sys.executable, "-m", "scrapy"]
    res = subprocess.run(
        [*cmd, "crawl", "tiktok", "-a", "hashtag=charwatchdemo", "-a", "max_items=3"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    store = Store(load_config(path, environ={}).storage.database_url)
    with store.session() as s:
        run = s.scalar(select(CrawlRun))
        assert (run.platform, run.target, run.status, run.items_seen) == (
            "tiktok",
            "charwatchdemo",
            ListingStatus.OK,
            3,
        )


def test_listing_normalization_and_arguments(tmp_path: Path) -> None:
    assert Listing("YouTube", "user", " @Some.Handle/shorts ").key == "youtube:user:Some.Handle"
    assert Listing("tiktok", "hashtag", "#ナルト").target == "ナルト"
    assert Listing.parse("tiktok:search:a:b  c").target == "a:b c"
    for bad in (
        ("myspace", "user", "x"),
        ("tiktok", "feed", "x"),
        ("tiktok", "hashtag", "two words"),
    ):
        with pytest.raises(ConfigError):
            Listing(*bad)
    with pytest.raises(ConfigError):
        Listing("youtube", "rss", "not/an/id")
    got = parse_listing_args("all", hashtag="#naruto")
    assert [x.key for x in got] == [
        "tiktok:hashtag:naruto",
        "youtube:hashtag:naruto",
        "instagram:hashtag:naruto",
    ]
    with pytest.raises(ConfigError):
        parse_listing_args("tiktok", hashtag="a", user="b")
    with pytest.raises(ConfigError):
        run_crawl(make_config(tmp_path, "http://127.0.0.1:9"), [])
    path = write_config(tmp_path / "c.toml", tmp_path / "data", "http://127.0.0.1:9")
    assert main(["--config", str(path), "--listing", "tiktok:nonsense"]) == 2


# --------------------------------------------------------------------- symptom mapping


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"status": 200, "url": "https://x/login", "body": "<html>"}, ListingStatus.LOGIN_REQUIRED),
        (
            {
                "status": 200,
                "url": "https://x/a",
                "body": "x",
                "redirect_urls": ["https://x/a", "https://x/accounts/login/?next=/a"],
            },
            ListingStatus.LOGIN_REQUIRED,
        ),
        (
            {
                "status": 401,
                "url": "https://x/a",
                "body": '{"message":"Please wait a few minutes before you try again.",'
                '"status":"fail"}',
            },
            ListingStatus.BLOCKED,
        ),
        ({"status": 401, "url": "https://x/a", "body": "{}"}, ListingStatus.LOGIN_REQUIRED),
        ({"status": 429, "url": "https://x/a", "body": ""}, ListingStatus.BLOCKED),
        ({"status": 403, "url": "https://x/a", "body": ""}, ListingStatus.BLOCKED),
        ({"status": 404, "url": "https://x/a", "body": ""}, ListingStatus.NOT_FOUND),
        ({"status": 503, "url": "https://x/a", "body": ""}, ListingStatus.ERROR),
        ({"status": 200, "url": "https://x/api", "body": b"  "}, ListingStatus.BLOCKED),
        (
            {"status": 200, "url": "https://x/api", "body": '{"type":"verify"}'},
            ListingStatus.BLOCKED,
        ),
        ({"status": 200, "url": "https://consent.x/a", "body": "<html>"}, ListingStatus.BLOCKED),
        (
            {
                "status": 200,
                "url": "https://x/tag/a",
                "body": '<html><div id="cs" class="e"></div><div id="wci" class="w"></div>',
            },
            ListingStatus.BLOCKED,
        ),
        ({"status": 200, "url": "https://x/a", "body": '{"statusCode":0,"itemList":[]}'}, None),
        ({"status": 200, "url": "https://x/a", "body": "<html><body>fine</body></html>"}, None),
    ],
)
def test_classify_response(kwargs: dict[str, Any], status: str | None) -> None:
    verdict = classify_response(**kwargs)
    assert (verdict.status if verdict else None) == status
    if verdict:
        assert verdict.reason and "\n" not in verdict.reason


def test_platform_status_codes_and_debug_files(tmp_path: Path) -> None:
    assert tiktok_status(0, what="x") is None
    assert tiktok_status(10205, what="#x").status == ListingStatus.NOT_FOUND
    assert tiktok_status(10204, what="x").status == ListingStatus.BLOCKED
    assert tiktok_status(12345, what="x").status == ListingStatus.ERROR
    assert instagram_status({"message": "login_required", "status": "fail"}).status == (
        ListingStatus.LOGIN_REQUIRED
    )
    assert instagram_status({"status": "ok"}) is None
    path = Path(
        save_debug(tmp_path, "tiktok_hashtag_ナルト/../x", b'{"type":"verify"}', status=200)
    )
    assert path.parent == tmp_path / "debug" and path.suffix == ".json"
    assert path.read_bytes() == b'{"type":"verify"}'


def test_retry_backoff() -> None:
    assert retry_after_seconds(b"7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 60) == 60.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    assert backoff_delay(1, 500.0, base=0.5, cap=30, after_cap=120) == 120  # Retry-After, capped
    assert backoff_delay(1, 2.0, base=0.5, cap=30, after_cap=120) == 2.0
    assert 0.4 <= backoff_delay(1, None, base=0.5, cap=30, after_cap=120) <= 0.6
    assert 1.6 <= backoff_delay(3, None, base=0.5, cap=30, after_cap=120) <= 2.4
    assert backoff_delay(20, None, base=0.5, cap=30, after_cap=120) == 30
