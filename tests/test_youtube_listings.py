"""YouTube listings: continuation shapes, Shorts-only requests, layout changes and captions.

Parser tests run on crafted pages and on the real recorded responses (../shared/recorded,
skipped when absent); the crawl tests run the real crawler against the fixture platform.
"""

from __future__ import annotations

import copy
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from charwatch.config import Config, load_config
from crawler.listing import Listing
from crawler.parsers.youtube import (
    DESCRIPTION_SNIPPET_KEY,
    SHORTS_SEARCH_PARAMS,
    bot_check_text,
    continuation_token,
    header_video_count,
    parse_youtube_initial_data,
    parse_youtube_page,
    parse_youtube_rss,
    text_of,
)
from crawler.run import run_crawl
from crawler.spiders.youtube import FULL_PAGE, ONE_PAGE_WARNING, YoutubeSpider
from fixture_platform import catalog as C
from storage import CrawlRun, ListingStatus, Store, Video
from tests.conftest import write_config

BASE = "http://127.0.0.1:9"
SHORTS_SP = "sp=EgIQCQ%3D%3D"


def _command(token: str) -> dict[str, Any]:
    return {
        "commandMetadata": {"webCommandMetadata": {"apiUrl": "/youtubei/v1/browse"}},
        "continuationCommand": {"token": token, "request": "CONTINUATION_REQUEST_TYPE_BROWSE"},
    }


def _executor(token: str) -> dict[str, Any]:
    signal = {"signalServiceEndpoint": {"signal": "CLIENT_SIGNAL"}}
    return {"commandExecutorCommand": {"commands": [signal, _command(token)]}}


def renderer(token: str) -> dict[str, Any]:
    return {"continuationItemRenderer": {"continuationEndpoint": _command(token)}}


def view_model(token: str, *, wrapped: bool = False) -> dict[str, Any]:
    inner = _executor(token) if wrapped else _command(token)
    return {"continuationItemViewModel": {"continuationCommand": {"innertubeCommand": inner}}}


def lockup(video_id: str, title: str = "a short") -> dict[str, Any]:
    return {
        "richItemRenderer": {
            "content": {
                "shortsLockupViewModel": {
                    "entityId": f"shorts-shelf-item-{video_id}",
                    "overlayMetadata": {"primaryText": {"content": title}},
                }
            }
        }
    }


def browse_page(entries: list[dict[str, Any]], header: dict[str, Any] | None = None) -> dict:
    tab = {
        "tabRenderer": {"selected": True, "content": {"richGridRenderer": {"contents": entries}}}
    }
    data: dict[str, Any] = {"contents": {"twoColumnBrowseResultsRenderer": {"tabs": [tab]}}}
    if header is not None:
        data["header"] = header
    return data


# --------------------------------------------------------------------- continuation shapes


@pytest.mark.parametrize(
    "entry",
    [
        renderer("TOK"),
        {
            "continuationItemRenderer": {
                "continuationEndpoint": {"commandExecutorCommand": {"commands": [_command("TOK")]}}
            }
        },
        {"continuationItemRenderer": {"button": {"buttonRenderer": {"command": _command("TOK")}}}},
        view_model("TOK"),
        view_model("TOK", wrapped=True),
    ],
    ids=["renderer", "renderer-executor", "renderer-button", "viewmodel", "viewmodel-executor"],
)
def test_every_continuation_shape_on_first_and_api_pages(entry: dict[str, Any]) -> None:
    value = next(iter(entry.values()))
    assert continuation_token(value) == "TOK"
    first = parse_youtube_page(browse_page([lockup("aaaaaaaaaaa"), entry]), base_url=BASE)
    assert first.recognized and first.next_token == "TOK"
    assert [i["platform_id"] for i in first.items] == ["aaaaaaaaaaa"]
    search = {
        "contents": {
            "twoColumnSearchResultsRenderer": {
                "primaryContents": {"sectionListRenderer": {"contents": [entry]}}
            }
        }
    }
    assert parse_youtube_page(search).next_token == "TOK"
    for key in ("onResponseReceivedActions", "onResponseReceivedCommands"):
        for action in ("appendContinuationItemsAction", "reloadContinuationItemsCommand"):
            data = {key: [{action: {"continuationItems": [lockup("bbbbbbbbbbb"), entry]}}]}
            page = parse_youtube_page(data, base_url=BASE)
            assert page.next_token == "TOK", (key, action)
            assert [i["platform_id"] for i in page.items] == ["bbbbbbbbbbb"]
            assert "unknown_kinds" not in page.extra


def test_continuation_without_a_token_or_in_an_unknown_shape() -> None:
    assert continuation_token({"continuationCommand": {"innertubeCommand": {}}}) is None
    assert continuation_token(None) is None
    odd = {"paginationItemViewModel": {"onShown": {"fetchCommand": _command("TOK")}}}
    page = parse_youtube_page(browse_page([lockup("aaaaaaaaaaa"), odd]), base_url=BASE)
    assert page.next_token is None
    assert page.extra["unknown_kinds"] == {"paginationItemViewModel": 1}


def _swap_last_continuation(items: list[dict[str, Any]], wrapped: bool) -> str:
    """Replace the real continuationItemRenderer by a view model carrying the same token."""
    assert "continuationItemRenderer" in items[-1]
    token = continuation_token(items[-1]["continuationItemRenderer"])
    assert token
    items[-1] = view_model(token, wrapped=wrapped)
    return token


def test_recorded_pages_with_view_model_continuations(recorded_dir: Path) -> None:
    name = "youtube/yt_channel_shorts_tab_browse_2026-01_shortsLockupViewModel.json"
    data = json.loads((recorded_dir / name).read_text(encoding="utf-8"))
    real = parse_youtube_page(data, base_url=BASE)
    tabs = data["contents"]["twoColumnBrowseResultsRenderer"]["tabs"]
    tab = next(t["tabRenderer"] for t in tabs if t.get("tabRenderer", {}).get("selected"))
    changed = copy.deepcopy(data)
    grid = next(
        t["tabRenderer"]
        for t in changed["contents"]["twoColumnBrowseResultsRenderer"]["tabs"]
        if t.get("tabRenderer", {}).get("selected")
    )["content"]["richGridRenderer"]["contents"]
    assert len(grid) == len(tab["content"]["richGridRenderer"]["contents"])
    token = _swap_last_continuation(grid, wrapped=False)
    page = parse_youtube_page(changed, base_url=BASE)
    assert token == real.next_token and page.next_token == token
    assert [i["platform_id"] for i in page.items] == [i["platform_id"] for i in real.items]
    assert len(page.items) == FULL_PAGE["user"] == 48

    name = "youtube/yt_search_query-test_continuation_2026-01.json"
    data = json.loads((recorded_dir / name).read_text(encoding="utf-8"))
    real = parse_youtube_page(data, base_url=BASE)
    action = data["onResponseReceivedCommands"][0]["appendContinuationItemsAction"]
    token = _swap_last_continuation(action["continuationItems"], wrapped=True)
    page = parse_youtube_page(data, base_url=BASE)
    assert token == real.next_token and page.next_token == token
    assert len(page.items) == len(real.items) > 20


def test_recorded_header_video_count(recorded_dir: Path) -> None:
    name = "youtube/yt_channel_shorts_tab_browse_2026-01_shortsLockupViewModel.json"
    data = json.loads((recorded_dir / name).read_text(encoding="utf-8"))
    assert header_video_count(data) == 466  # "466 videos" in the channel's page header


# --------------------------------------------------------------------- layout and captions


def test_renamed_renderers_are_counted_not_silently_dropped() -> None:
    renamed = [
        {"richItemRenderer": {"content": {"shortsLockupViewModelV2": {"entityId": "x"}}}},
        {"richItemRenderer": {"content": {"shortsLockupViewModelV2": {"entityId": "y"}}}},
        {"adSlotRenderer": {}},  # skipped on purpose: not a sign of a layout change
    ]
    header = {"hashtagHeaderRenderer": {"hashtagInfoText": {"simpleText": "2 videos · 1 channel"}}}
    page = parse_youtube_page(browse_page(renamed, header))
    assert page.recognized and page.items == [] and page.next_token is None
    assert page.extra["unknown_kinds"] == {"shortsLockupViewModelV2": 2}
    assert header_video_count(browse_page(renamed, header)) == 2
    v2 = {"pageHeaderViewModelV2": {"metadata": {"runs": [{"text": "1.2K"}, {"text": " videos"}]}}}
    assert header_video_count({"header": v2}) == 1200
    zero = {"hashtagHeaderRenderer": {"hashtagInfoText": {"simpleText": "No videos"}}}
    assert header_video_count({"header": zero}) == 0
    assert header_video_count({"header": {"title": "#cats"}}) is None


def test_bot_check_text() -> None:
    assert bot_check_text("<h1>Sign in to confirm you\u2019re not a bot</h1>")
    assert bot_check_text(b"Sign in to confirm you're not a bot")
    assert bot_check_text("Our systems have detected unusual traffic from your computer network")
    assert bot_check_text("<html>#notabot clips</html>") is None


def test_search_caption_is_the_title_and_the_snippet_is_kept_apart() -> None:
    title = "Goku edit \U0001f525 #dbz"
    video = {
        "videoId": "gokuedit001",
        "title": {"runs": [{"text": title}]},
        "detailedMetadataSnippets": [{"snippetText": {"runs": [{"text": title + " #anime"}]}}],
        "navigationEndpoint": {"reelWatchEndpoint": {"videoId": "gokuedit001"}},
    }
    section = {"itemSectionRenderer": {"contents": [{"videoRenderer": video}]}}
    data = {
        "contents": {
            "twoColumnSearchResultsRenderer": {
                "primaryContents": {"sectionListRenderer": {"contents": [section]}}
            }
        }
    }
    (item,) = parse_youtube_page(data, base_url=BASE).items
    assert item["caption"] == title
    assert item["raw"][DESCRIPTION_SNIPPET_KEY] == title + " #anime"
    assert item["hashtags"] == ["dbz", "anime"]
    assert "gokuedit001" in item["url"] and item["url"].endswith("/shorts/gokuedit001")
    assert DESCRIPTION_SNIPPET_KEY not in video  # the response itself is left unchanged


def test_recorded_search_captions_are_titles(recorded_dir: Path) -> None:
    name = "youtube/yt_search_query-test_2026-01_with_shorts_gridShelfViewModel.json"
    data = json.loads((recorded_dir / name).read_text(encoding="utf-8"))
    entries = data["contents"]["twoColumnSearchResultsRenderer"]["primaryContents"][
        "sectionListRenderer"
    ]["contents"][0]["itemSectionRenderer"]["contents"]
    titles = {
        e["videoRenderer"]["videoId"]: text_of(e["videoRenderer"]["title"])
        for e in entries
        if "videoRenderer" in e
    }
    by_id = {i["platform_id"]: i for i in parse_youtube_page(data, base_url=BASE).items}
    with_snippet = 0
    for vid, title in titles.items():
        item = by_id[vid]
        assert item["caption"] == title, vid
        snippet = item["raw"].get(DESCRIPTION_SNIPPET_KEY)
        if snippet:
            with_snippet += 1
            assert snippet not in item["caption"]
    assert with_snippet >= 10
    # a Short whose hashtags are in its title and a snippet without any
    notation = by_id["58ObmKvWkCM"]
    assert "\n" not in notation["caption"]


def test_rss_caption_is_the_title() -> None:
    feed = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns:yt="http://www.youtube.com/xml/schemas/2015"
      xmlns:media="http://search.yahoo.com/mrss/" xmlns="http://www.w3.org/2005/Atom">
 <entry><id>yt:video:VIDEOID0001</id><yt:videoId>VIDEOID0001</yt:videoId>
  <title>Goku edit #dbz</title>
  <link rel="alternate" href="https://www.youtube.com/shorts/VIDEOID0001"/>
  <media:group><media:description>Goku edit #dbz
more edits every week #anime</media:description></media:group></entry>
</feed>"""
    (item,) = parse_youtube_rss(feed, base_url=BASE).items
    assert item["caption"] == "Goku edit #dbz"
    assert item["raw"]["description"].startswith("Goku edit #dbz\nmore edits")
    assert item["hashtags"] == ["dbz", "anime"]


# --------------------------------------------------------------------- requests


def test_shorts_only_requests() -> None:
    spider = YoutubeSpider(search="goku edit")
    spider.base_url = BASE
    (first,) = spider.first_requests()
    assert first.url == f"{BASE}/results?search_query=goku+edit&{SHORTS_SP}"
    nxt = spider.continuation("TOKEN1")
    assert nxt is not None and nxt.url.startswith(f"{BASE}/youtubei/v1/search")
    body = json.loads(nxt.body)
    assert body["params"] == SHORTS_SEARCH_PARAMS == "EgIQCQ=="
    assert body["continuation"] == "TOKEN1" and body["query"] == "goku edit"
    assert spider.continuation("TOKEN1") is None  # a repeated token ends the listing

    tag = YoutubeSpider(hashtag="#Goku")
    tag.base_url = BASE
    (first,) = tag.first_requests()
    assert first.url == f"{BASE}/hashtag/Goku/shorts"
    nxt = tag.continuation("TOKEN2")
    assert nxt is not None and nxt.url.startswith(f"{BASE}/youtubei/v1/browse")
    assert "params" not in json.loads(nxt.body)


# --------------------------------------------------------------------- real crawls

CRAWLED = [
    f"youtube:hashtag:{C.YOUTUBE_VIEWMODEL_TAG}",
    f"youtube:hashtag:{C.YOUTUBE_ONEPAGE_TAG}",
    f"youtube:hashtag:{C.YOUTUBE_RENAMED_TAG}",
    f"youtube:hashtag:{C.YOUTUBE_LAYOUT_TAG}",
    f"youtube:hashtag:{C.YOUTUBE_EMPTY_TAG}",
    f"youtube:search:{C.DEMO_SEARCH}",
    "youtube:search:no such clip anywhere",
]


class Crawled:
    def __init__(self, store: Store, runs: dict[str, CrawlRun], hits: dict[str, int]) -> None:
        self.store = store
        self.runs = runs
        self.hits = hits

    def run(self, key: str) -> CrawlRun:
        return self.runs[Listing.parse(key).key]

    def videos(self, key: str) -> list[Video]:
        with self.store.session() as s:
            return list(s.scalars(select(Video).where(Video.listing == Listing.parse(key).key)))


def _config(fixture_server: Any, tmp: Path) -> Config:
    path = write_config(tmp / "charwatch.toml", tmp / "data", fixture_server.base_url)
    return load_config(path, environ={})


def _runs(cfg: Config, batch: str) -> tuple[Store, dict[str, CrawlRun]]:
    store = Store(cfg.storage.database_url)
    with store.session() as s:
        rows = list(s.scalars(select(CrawlRun).where(CrawlRun.batch == batch)))
    return store, {f"{r.platform}:{r.kind}:{r.target}": r for r in rows}


@pytest.fixture(scope="module")
def crawled(fixture_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Crawled:
    cfg = _config(fixture_server, tmp_path_factory.mktemp("yt-listings"))
    paths = [f"/hashtag/{C.YOUTUBE_VIEWMODEL_TAG}/shorts", f"/hashtag/{C.YOUTUBE_VIEWMODEL_TAG}"]
    before = {p: fixture_server.request_count(p) for p in paths}
    batch = run_crawl(cfg, [Listing.parse(k) for k in CRAWLED])
    hits = {p: fixture_server.request_count(p) - before[p] for p in paths}
    store, runs = _runs(cfg, batch)
    assert len(runs) == len(CRAWLED)
    return Crawled(store, runs, hits)


@pytest.mark.timeout(300)
def test_view_model_continuations_page_to_the_end(crawled: Crawled, fixture_server: Any) -> None:
    key = f"youtube:hashtag:{C.YOUTUBE_VIEWMODEL_TAG}"
    run = crawled.run(key)
    want = fixture_server.catalog.listing("youtube", "tag", C.YOUTUBE_VIEWMODEL_TAG).video_ids
    assert len(want) == 12
    assert run.status == ListingStatus.OK, run.message
    assert run.pages == 3 and run.items_seen == 12  # pages of 5, 5 and 2
    assert sorted(v.platform_id for v in crawled.videos(key)) == sorted(want)
    assert "warning" not in (run.message or "")
    # the Shorts view of the hashtag was requested, not the mixed one
    hashtag_paths = [
        f"/hashtag/{C.YOUTUBE_VIEWMODEL_TAG}/shorts",
        f"/hashtag/{C.YOUTUBE_VIEWMODEL_TAG}",
    ]
    assert [crawled.hits[p] for p in hashtag_paths] == [1, 0]


@pytest.mark.timeout(300)
def test_shorts_search_with_view_models_keeps_titles(crawled: Crawled, fixture_server: Any) -> None:
    key = f"youtube:search:{C.DEMO_SEARCH}"
    run = crawled.run(key)
    cat = fixture_server.catalog
    want = cat.search("youtube", C.DEMO_SEARCH)
    assert run.status == ListingStatus.OK, run.message
    assert run.pages == 2 and run.items_seen == len(want.video_ids) == 16
    rows = crawled.videos(key)
    assert sorted(r.platform_id for r in rows) == sorted(want.video_ids)
    for row in rows:
        truth = cat.video("youtube", row.platform_id)
        assert row.caption == truth.caption  # the title alone
        assert "videoId" in row.raw  # the Shorts filter's plain results, no shelves
        assert row.raw[DESCRIPTION_SNIPPET_KEY].startswith("New Shorts from")
        assert row.raw[DESCRIPTION_SNIPPET_KEY] not in row.caption
        assert "shorts" in row.hashtags  # from the snippet


@pytest.mark.timeout(300)
def test_one_full_page_without_a_token_is_warned(crawled: Crawled) -> None:
    run = crawled.run(f"youtube:hashtag:{C.YOUTUBE_ONEPAGE_TAG}")
    assert run.status == ListingStatus.OK, run.message
    assert (run.pages, run.items_seen) == (1, FULL_PAGE["hashtag"])
    assert f"stopped: end of listing ({ONE_PAGE_WARNING}" in run.message
    assert "paginationItemViewModel" in run.message


@pytest.mark.timeout(300)
def test_changed_layouts_are_not_empty_listings(crawled: Crawled) -> None:
    expected = {
        C.YOUTUBE_RENAMED_TAG: (ListingStatus.LAYOUT_CHANGED, "shortsLockupViewModelV2"),
        C.YOUTUBE_LAYOUT_TAG: (ListingStatus.LAYOUT_CHANGED, "ytInitialData"),
        C.YOUTUBE_EMPTY_TAG: (ListingStatus.NOT_FOUND, "0 videos"),
    }
    for tag, (status, words) in expected.items():
        run = crawled.run(f"youtube:hashtag:{tag}")
        assert run.status == status, (tag, run.status, run.message)
        assert words in (run.message or ""), (tag, run.message)
        assert run.items_seen == 0
        assert run.debug_path and Path(run.debug_path).is_file(), tag
    renamed = crawled.run(f"youtube:hashtag:{C.YOUTUBE_RENAMED_TAG}")
    assert "the page says 3 videos" in renamed.message
    body = Path(renamed.debug_path).read_text(encoding="utf-8")
    assert "shortsLockupViewModelV2" in body and "ytInitialData" in body


@pytest.mark.timeout(300)
def test_a_search_that_says_no_results_is_empty(crawled: Crawled) -> None:
    run = crawled.run("youtube:search:no such clip anywhere")
    assert run.status == ListingStatus.OK, run.message
    assert run.items_seen == 0 and run.debug_path is None
    assert "the listing is empty (No results found" in run.message


@pytest.mark.timeout(300)
def test_bot_check_page_blocks_the_listing(fixture_server: Any, tmp_path: Path) -> None:
    # a crawl of its own: a blocked listing pauses the platform for the rest of a batch
    cfg = _config(fixture_server, tmp_path)
    key = f"youtube:hashtag:{C.YOUTUBE_BOTCHECK_TAG}"
    _, runs = _runs(cfg, run_crawl(cfg, [Listing.parse(key)]))
    run = runs[key]
    assert run.status == ListingStatus.BLOCKED, run.message
    assert "confirm you\u2019re not a bot" in run.message
    assert run.debug_path and "not a bot" in Path(run.debug_path).read_text(encoding="utf-8")


def _get(url: str, body: dict[str, Any] | None = None) -> str:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=30) as resp:
        return resp.read().decode("utf-8")


def test_fixture_serves_both_continuation_shapes(fixture_server: Any) -> None:
    base = fixture_server.base_url
    plain = _get(f"{base}/results?search_query=charwatch+demo")
    shorts = _get(f"{base}/results?search_query=charwatch+demo&{SHORTS_SP}")
    assert "continuationItemRenderer" in plain and "continuationItemViewModel" not in plain
    assert "gridShelfViewModel" in plain
    assert "continuationItemViewModel" in shorts and "continuationItemRenderer" not in shorts
    assert "gridShelfViewModel" not in shorts

    first = _get(f"{base}/hashtag/{C.YOUTUBE_VIEWMODEL_TAG}/shorts")
    assert "continuationItemViewModel" in first and "commandExecutorCommand" not in first
    data = parse_youtube_initial_data(first)
    page = parse_youtube_page(data, base_url=base)
    assert len(page.items) == 5 and page.next_token
    second = json.loads(
        _get(f"{base}/youtubei/v1/browse", {"context": {}, "continuation": page.next_token})
    )
    (entry,) = [
        e
        for e in second["onResponseReceivedActions"][0]["appendContinuationItemsAction"][
            "continuationItems"
        ]
        if "continuationItemViewModel" in e
    ]
    inner = entry["continuationItemViewModel"]["continuationCommand"]["innertubeCommand"]
    assert "commandExecutorCommand" in inner and "continuationCommand" not in inner
    assert parse_youtube_page(second, base_url=base).next_token == continuation_token(
        entry["continuationItemViewModel"]
    )
