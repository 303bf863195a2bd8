"""The pure listing parsers on real recorded platform responses (../shared/recorded).

Counts and values below are those of the recorded files (see MANIFEST.md there). Files are
read in place; a test skips when the folder is absent.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from crawler.parsers.common import (
    ITEM_FIELDS,
    JSLiteralError,
    epoch_to_dt,
    hashtags_from_text,
    parse_count,
    parse_duration,
    parse_js_literal,
)
from crawler.parsers.instagram import (
    parse_instagram_clips,
    parse_instagram_graphql,
    parse_instagram_media,
    parse_instagram_sections,
    parse_profile_user_id,
)
from crawler.parsers.tiktok import (
    challenge_detail,
    is_challenge_page,
    parse_sigi_state,
    parse_tiktok_item,
    parse_tiktok_item_list,
    parse_tiktok_scope_items,
    parse_tiktok_sigi_items,
    parse_universal_data,
    user_detail,
)
from crawler.parsers.youtube import (
    channel_author,
    innertube_context,
    parse_youtube_initial_data,
    parse_youtube_page,
    parse_youtube_rss,
    parse_ytcfg,
)

BASE = "http://127.0.0.1:9"


def load_json(recorded_dir: Path, name: str) -> Any:
    return json.loads((recorded_dir / name).read_text(encoding="utf-8"))


def load_text(recorded_dir: Path, name: str) -> str:
    return (recorded_dir / name).read_text(encoding="utf-8")


def grid_renderers(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """Renderers of one kind in the selected tab's rich grid, read independently of the parser."""
    for tab in data["contents"]["twoColumnBrowseResultsRenderer"]["tabs"]:
        tr = tab.get("tabRenderer", {})
        if tr.get("selected"):
            grid = tr["content"]["richGridRenderer"]["contents"]
            return [e["richItemRenderer"]["content"][key] for e in grid if "richItemRenderer" in e]
    raise AssertionError("no selected tab")


def assert_normalized(item: dict[str, Any], platform: str) -> None:
    assert set(item) == set(ITEM_FIELDS)
    assert item["platform"] == platform
    assert isinstance(item["platform_id"], str) and item["platform_id"]
    assert isinstance(item["hashtags"], list)
    assert item["posted_at"] is None or item["posted_at"].tzinfo is not None
    assert isinstance(item["raw"], dict)


# --------------------------------------------------------------------------- common


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("895k views", 895_000),
        ("1m views", 1_000_000),
        ("1.2M", 1_200_000),
        ("635K views", 635_000),
        ("1,234 views", 1_234),
        ("1,074,394 views", 1_074_394),
        ("1.5B views", 1_500_000_000),
        ("1 million views", 1_000_000),
        ("192.1K", 192_100),
        ("783427", 783_427),
        ("No views", 0),
        (42, 42),
        ("", None),
        ("views", None),
        (None, None),
        (True, None),
    ],
)
def test_parse_count(text: Any, expected: int | None) -> None:
    assert parse_count(text) == expected


def test_parse_duration_and_epoch() -> None:
    assert parse_duration("0:56") == 56.0
    assert parse_duration("1:02:20") == 3740.0
    assert parse_duration(13) == 13.0
    assert parse_duration("20.433") == 20.433
    assert parse_duration("soon") is None
    t = epoch_to_dt("1654619431")
    assert t == dt.datetime(2022, 6, 7, 16, 30, 31, tzinfo=dt.UTC)
    assert epoch_to_dt(1654619431000) == t  # milliseconds
    assert epoch_to_dt(None) is None and epoch_to_dt("x") is None and epoch_to_dt(0) is None


def test_hashtags_unicode_and_dedup() -> None:
    text = "見て #ナルト #Naruto と #naruto, #fypシ! see http://x.example/#frag & #1"
    assert hashtags_from_text(text) == ["ナルト", "Naruto", "fypシ", "1"]
    assert hashtags_from_text(None) == []


def test_js_literal_reader() -> None:
    text = """{ a: 1, $b: 'it\\'s', "c": [1, 2.5, -3e2,], d: { e: null, f: undefined },
      // comment
      g: 'https:\\u002F\\u002Fx', h: '\\ud83d\\ude00', i: true, /* c */ j: 0x10, }"""
    assert parse_js_literal(text) == {
        "a": 1,
        "$b": "it's",
        "c": [1, 2.5, -300.0],
        "d": {"e": None, "f": None},
        "g": "https://x",
        "h": "😀",
        "i": True,
        "j": 16,
    }
    with pytest.raises(JSLiteralError):
        parse_js_literal("{a: foo()}")


# --------------------------------------------------------------------------- YouTube


def test_youtube_shorts_tab_2026_shorts_lockups(recorded_dir: Path) -> None:
    data = load_json(
        recorded_dir, "youtube/yt_channel_shorts_tab_browse_2026-01_shortsLockupViewModel.json"
    )
    page = parse_youtube_page(data, "youtube:user:Doobydobap", base_url=BASE)
    lockups = grid_renderers(data, "shortsLockupViewModel")
    assert len(lockups) == 48
    assert page.recognized and len(page.items) == 48
    assert page.next_token and page.next_token.startswith("4qmFsgLBGBIY")
    first = page.items[0]
    assert_normalized(first, "youtube")
    assert first["platform_id"] == "l-X5WbDSH2o"
    assert first["url"] == f"{BASE}/shorts/l-X5WbDSH2o"
    assert first["caption"] == "Packing lunch for my special roommate"
    assert first["view_count"] == 895_000
    assert first["author"] == "Doobydobap"  # from the channel metadata, not the item
    assert first["thumbnail_url"].startswith("https://i.ytimg.com/vi/l-X5WbDSH2o/")
    assert first["listing"] == "youtube:user:Doobydobap"
    assert first["duration_s"] is None and first["posted_at"] is None  # not in lockups
    ids = [i["platform_id"] for i in page.items]
    expected = [x["onTap"]["innertubeCommand"]["reelWatchEndpoint"]["videoId"] for x in lockups]
    assert ids == expected
    assert all(i["view_count"] is not None for i in page.items)


def test_youtube_shorts_tab_continuation(recorded_dir: Path) -> None:
    data = load_json(
        recorded_dir,
        "youtube/yt_channel_shorts_tab_continuation_2026-01_shortsLockupViewModel.json",
    )
    page = parse_youtube_page(data, base_url=BASE)
    assert page.recognized and len(page.items) == 48
    assert page.next_token and page.next_token.startswith("4qmFsgKhNhIY")
    assert all(i["author"] is None for i in page.items)  # continuation has no channel metadata
    page = parse_youtube_page(data, base_url=BASE, author="Doobydobap")
    assert {i["author"] for i in page.items} == {"Doobydobap"}


def test_youtube_shorts_tab_2024_reel_items(recorded_dir: Path) -> None:
    data = load_json(
        recorded_dir, "youtube/yt_channel_shorts_tab_browse_2024-07_reelItemRenderer_legacy.json"
    )
    assert len(grid_renderers(data, "reelItemRenderer")) == 48
    page = parse_youtube_page(data, base_url=BASE)
    assert page.recognized and len(page.items) == 48 and page.next_token
    first = page.items[0]
    assert_normalized(first, "youtube")
    assert first["platform_id"] == "rXdHpkkOVMM"
    assert first["caption"] == "second guessing myself"
    assert first["view_count"] == 635_000  # "635K views"
    assert first["url"] == f"{BASE}/shorts/rXdHpkkOVMM"
    assert channel_author(data) == "Doobydobap"


def test_youtube_search_page_with_shorts_shelves(recorded_dir: Path) -> None:
    data = load_json(
        recorded_dir, "youtube/yt_search_query-test_2026-01_with_shorts_gridShelfViewModel.json"
    )
    sections = data["contents"]["twoColumnSearchResultsRenderer"]["primaryContents"][
        "sectionListRenderer"
    ]["contents"]
    entries = sections[0]["itemSectionRenderer"]["contents"]
    videos = [e["videoRenderer"] for e in entries if "videoRenderer" in e]
    shelves = [e["gridShelfViewModel"] for e in entries if "gridShelfViewModel" in e]
    assert len(videos) == 20 and len(shelves) == 2
    assert [len(s["contents"]) for s in shelves] == [10, 10]
    shelf_ids = {
        c["shortsLockupViewModel"]["onTap"]["innertubeCommand"]["reelWatchEndpoint"]["videoId"]
        for s in shelves
        for c in s["contents"]
    }

    page = parse_youtube_page(data, "youtube:search:test", base_url=BASE)
    assert page.recognized
    assert page.next_token and page.next_token.startswith("EqEDEgR0ZXN0")
    ids = [i["platform_id"] for i in page.items]
    assert len(ids) == len(set(ids))  # a Short in both shelves is listed once
    assert set(ids) == {v["videoId"] for v in videos} | shelf_ids
    assert len(ids) == 35  # 20 videos + 20 shelf entries, 5 of them repeated across shelves
    by_id = {i["platform_id"]: i for i in page.items}
    short = by_id["58ObmKvWkCM"]  # a videoRenderer that is a Short (reelWatchEndpoint)
    assert short["url"] == f"{BASE}/shorts/58ObmKvWkCM"
    assert short["duration_s"] == 56.0
    assert short["view_count"] == 1_074_394
    assert short["author"] == "TeacherTimmm"
    assert {"asmr", "school", "teacher"} <= set(short["hashtags"])
    long_form = by_id["6GDBMbMU0ew"]
    assert long_form["url"] == f"{BASE}/watch?v=6GDBMbMU0ew"
    assert long_form["duration_s"] == 136.0
    assert sum(i["url"].startswith(f"{BASE}/shorts/") for i in page.items) == 7 + 15
    # the "Popular in ..." shelfRenderer recommendations are not search results
    shelf_renderer_ids = {
        v["videoRenderer"]["videoId"]
        for e in entries
        if "shelfRenderer" in e
        for v in e["shelfRenderer"]["content"]["verticalListRenderer"]["items"]
    }
    assert not (shelf_renderer_ids - {v["videoId"] for v in videos}) & set(ids)


def test_youtube_search_continuation_uses_commands(recorded_dir: Path) -> None:
    data = load_json(recorded_dir, "youtube/yt_search_query-test_continuation_2026-01.json")
    assert "onResponseReceivedCommands" in data
    page = parse_youtube_page(data, base_url=BASE)
    items = data["onResponseReceivedCommands"][0]["appendContinuationItemsAction"]
    entries = items["continuationItems"][0]["itemSectionRenderer"]["contents"]
    videos = {e["videoRenderer"]["videoId"] for e in entries if "videoRenderer" in e}
    shelves = {
        c["shortsLockupViewModel"]["onTap"]["innertubeCommand"]["reelWatchEndpoint"]["videoId"]
        for e in entries
        if "gridShelfViewModel" in e
        for c in e["gridShelfViewModel"]["contents"]
    }
    assert len([e for e in entries if "videoRenderer" in e]) == 24
    assert page.recognized and page.next_token
    assert {i["platform_id"] for i in page.items} == videos | shelves
    assert len(page.items) == len(videos | shelves)


def test_youtube_hashtag_reload_command_2022(recorded_dir: Path) -> None:
    data = load_json(recorded_dir, "youtube/yt_hashtag_martingarrix_page1_2022-06_FEhashtag.json")
    page = parse_youtube_page(data, "youtube:hashtag:martingarrix", base_url=BASE)
    assert page.recognized and len(page.items) == 60 and page.next_token
    first = page.items[0]
    assert first["platform_id"] == "gCYcHz2k5x0"
    assert first["url"] == f"{BASE}/watch?v=gCYcHz2k5x0"  # long-form, not a Short
    assert first["view_count"] == 1_566_000_625
    assert first["duration_s"] == 192.0
    assert first["author"] == "Spinnin' Records"


def test_youtube_html_page_initial_data_and_ytcfg(recorded_dir: Path) -> None:
    html = load_text(recorded_dir, "youtube/yt_channel_home_page_ONE-Media_2024-01.html")
    data = parse_youtube_initial_data(html)
    assert isinstance(data, dict) and "contents" in data
    cfg = parse_ytcfg(html)
    assert cfg["INNERTUBE_API_KEY"].startswith("AIza")
    assert innertube_context(cfg)["client"]["clientVersion"] == "2.20240105.01.00"
    page = parse_youtube_page(data, base_url=BASE)
    # 60 gridVideoRenderer in 6 home shelves; 4 videos appear in two shelves
    assert page.recognized and len(page.items) == 56
    assert all(i["url"].startswith(f"{BASE}/watch?v=") for i in page.items)


def test_youtube_unknown_layout_and_garbage() -> None:
    changed = {
        "contents": {
            "twoColumnBrowseResultsRenderer": {
                "tabs": [
                    {
                        "tabRenderer": {
                            "selected": True,
                            "content": {"somethingNewRenderer": {"contents": []}},
                        }
                    }
                ]
            }
        }
    }
    assert not parse_youtube_page(changed).recognized
    assert not parse_youtube_page({"foo": 1}).recognized
    assert parse_youtube_page(None).items == []
    assert parse_youtube_initial_data("<html>nothing</html>") is None
    # a lockup with only an entity id still gives an item, missing fields None
    bare = {
        "onResponseReceivedActions": [
            {
                "appendContinuationItemsAction": {
                    "continuationItems": [
                        {
                            "richItemRenderer": {
                                "content": {
                                    "shortsLockupViewModel": {
                                        "entityId": "shorts-shelf-item-abcdefghijk"
                                    }
                                }
                            }
                        },
                        {"richItemRenderer": {"content": {"shortsLockupViewModel": {}}}},
                    ]
                }
            }
        ]
    }
    page = parse_youtube_page(bare, base_url=BASE)
    assert page.recognized and page.next_token is None
    assert [i["platform_id"] for i in page.items] == ["abcdefghijk"]
    assert page.items[0]["view_count"] is None and page.items[0]["caption"] is None


RSS = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns:yt="http://www.youtube.com/xml/schemas/2015"
      xmlns:media="http://search.yahoo.com/mrss/" xmlns="http://www.w3.org/2005/Atom">
 <id>yt:channel:UCabcdefghijklmnopqrstuv</id><title>Chan</title>
 <author><name>Chan</name><uri>https://www.youtube.com/channel/UCabcdefghijklmnopqrstuv</uri></author>
 <entry>
  <id>yt:video:VIDEOID0001</id><yt:videoId>VIDEOID0001</yt:videoId>
  <yt:channelId>UCabcdefghijklmnopqrstuv</yt:channelId><title>Cosplay #ナルト #shorts</title>
  <link rel="alternate" href="https://www.youtube.com/shorts/VIDEOID0001"/>
  <author><name>Chan</name><uri>https://www.youtube.com/channel/UCabcdefghijklmnopqrstuv</uri></author>
  <published>2026-01-20T01:40:02+00:00</published><updated>2026-01-21T00:00:00+00:00</updated>
  <media:group><media:title>Cosplay</media:title>
   <media:thumbnail url="https://i1.ytimg.com/vi/VIDEOID0001/hqdefault.jpg" width="480"/>
   <media:description>desc</media:description>
   <media:community><media:starRating count="8" average="5.00" min="1" max="5"/>
   <media:statistics views="176"/></media:community>
  </media:group></entry>
 <entry><id>yt:video:VIDEOID0002</id><title>no group</title></entry>
</feed>"""


def test_youtube_rss_feed() -> None:
    page = parse_youtube_rss(RSS, "youtube:rss:UCabcdefghijklmnopqrstuv", base_url=BASE)
    assert page.recognized and page.next_token is None
    assert [i["platform_id"] for i in page.items] == ["VIDEOID0001", "VIDEOID0002"]
    first, second = page.items
    assert_normalized(first, "youtube")
    assert first["url"] == f"{BASE}/shorts/VIDEOID0001"
    assert first["posted_at"] == dt.datetime(2026, 1, 20, 1, 40, 2, tzinfo=dt.UTC)
    assert first["view_count"] == 176 and first["like_count"] == 8
    assert first["hashtags"] == ["ナルト", "shorts"]
    assert first["author"] == "Chan"
    assert second["posted_at"] is None and second["view_count"] is None
    assert not parse_youtube_rss("<html/>").recognized
    assert not parse_youtube_rss("not xml").recognized


# --------------------------------------------------------------------------- TikTok


def test_tiktok_recommend_item_list(recorded_dir: Path) -> None:
    data = load_json(recorded_dir, "tiktok/tiktok_api_recommend_item_list_2022-11_foryou.json")
    page = parse_tiktok_item_list(data, "tiktok:hashtag:x", base_url=BASE)
    assert page.recognized and len(page.items) == 28 == len(data["itemList"])
    assert page.next_token is None  # hasMore but no cursor key in this feed
    first = page.items[0]
    assert_normalized(first, "tiktok")
    assert first["platform_id"] == "7158770362770099483"
    assert first["author"] == "zoey._.03.18"
    assert first["url"] == f"{BASE}/@zoey._.03.18/video/7158770362770099483"
    assert first["posted_at"] == dt.datetime(2022, 10, 26, 10, 45, 16, tzinfo=dt.UTC)
    assert (first["view_count"], first["like_count"], first["duration_s"]) == (
        376_700,
        56_900,
        13.0,
    )
    assert first["hashtags"] == ["第三隻唉居帳號點主頁連結", "天青色等烟雨而我在等你"]
    assert first["ai_label"] is None
    assert all(i["thumbnail_url"] for i in page.items)
    # items without challenges still get the hashtags written in their caption
    bare = [i for i in page.items if not i["raw"].get("challenges")]
    assert len(bare) == 6
    for item in bare:
        assert item["hashtags"] == hashtags_from_text(item["caption"])


def test_tiktok_profile_universal_data(recorded_dir: Path) -> None:
    html = load_text(
        recorded_dir,
        "tiktok/tiktok_profile_page_illojuan_2025-12_rendered_with_UNIVERSAL_DATA.html",
    )
    scope = parse_universal_data(html)
    assert scope is not None and "webapp.user-detail" in scope
    code, sec_uid, handle = user_detail(scope)
    assert code == 0 and handle == "illojuan"
    assert sec_uid and sec_uid.startswith("MS4wLjABAAAA")
    page = parse_tiktok_scope_items(scope)
    assert page.recognized and page.items == []  # itemList is empty: items come from the API
    assert not is_challenge_page(html)
    assert challenge_detail(scope) == (None, None, None)


def test_tiktok_legacy_sigi_state_js_literal(recorded_dir: Path) -> None:
    html = load_text(recorded_dir, "tiktok/tiktok_foryou_page_2022-03_SIGI_STATE_prettified.html")
    state = parse_sigi_state(html)
    assert state is not None and len(state["ItemModule"]) == 9
    page = parse_tiktok_sigi_items(state, base_url=BASE)
    assert page.recognized and len(page.items) == 9
    assert [i["platform_id"] for i in page.items] == [
        str(x) for x in state["ItemList"]["foryou"]["list"]
    ]
    first = page.items[0]
    assert first["platform_id"] == "7068327818786032901"
    assert first["author"] == "lenoutsaa"  # author is a plain string in SIGI items
    assert first["posted_at"] == dt.datetime(2022, 2, 24, 17, 21, 57, tzinfo=dt.UTC)
    assert first["hashtags"] == ["comdab"]
    assert first["thumbnail_url"].startswith("https://p16-sign-va.tiktokcdn.com/obj/")


def _tt_item(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(7000 + i),
        "desc": f"clip {i} #Naruto",
        "createTime": 1_700_000_000 - i,
        "author": {"uniqueId": "someone"},
        "video": {"duration": 9},
        **extra,
    }


def test_tiktok_item_list_paging_shapes() -> None:
    challenge = {
        "statusCode": 0,
        "itemList": [_tt_item(1), _tt_item(2)],
        "hasMore": True,
        "cursor": "30",
    }
    page = parse_tiktok_item_list(challenge, base_url=BASE)
    assert page.next_token == "30" and len(page.items) == 2
    creator = {"statusCode": 0, "itemList": [_tt_item(1), _tt_item(2)], "hasMorePrevious": True}
    assert parse_tiktok_item_list(creator).next_token == str((1_700_000_000 - 2) * 1000)
    creator["hasMorePrevious"] = False
    assert parse_tiktok_item_list(creator).next_token is None
    search = {"status_code": 0, "item_list": [_tt_item(3)], "has_more": 1, "cursor": 12}
    page = parse_tiktok_item_list(search)
    assert page.next_token == "12" and page.items[0]["platform_id"] == "7003"
    last = {"statusCode": 0, "itemList": [], "hasMore": False, "cursor": "60"}
    page = parse_tiktok_item_list(last)
    assert page.recognized and page.items == [] and page.next_token is None
    assert not parse_tiktok_item_list({"type": "verify"}).recognized
    assert not parse_tiktok_item_list(None).recognized


def test_tiktok_item_fields_ai_label_and_defaults() -> None:
    item = parse_tiktok_item(
        _tt_item(
            1,
            IsAigc=True,
            aigcLabelType=2,
            AIGCDescription="AI-generated",
            stats={"playCount": 10, "diggCount": 1},
            statsV2={"playCount": "12345", "diggCount": "67"},
            challenges=[{"title": "naruto"}],
            textExtra=[{"hashtagName": "cosplay"}, {"hashtagName": ""}],
        ),
        "tiktok:hashtag:naruto",
        base_url=BASE,
    )
    assert item is not None
    assert item["ai_label"] == "IsAigc; aigcLabelType=2; AI-generated"
    assert (item["view_count"], item["like_count"]) == (12345, 67)  # statsV2 preferred
    assert item["hashtags"] == ["naruto", "cosplay"]  # #Naruto in the caption is the same tag
    assert parse_tiktok_item(_tt_item(2, aigcLabelType=0, IsAigc=False))["ai_label"] is None
    minimal = parse_tiktok_item({"id": "1"}, base_url=BASE)
    assert minimal is not None and minimal["url"] == f"{BASE}/@_/video/1"
    assert minimal["author"] is None and minimal["view_count"] is None and minimal["hashtags"] == []
    assert parse_tiktok_item({"desc": "no id"}) is None
    assert parse_tiktok_item("junk") is None


def test_tiktok_challenge_page_detection() -> None:
    wall = (
        '<html><body><div id="cs" class="eyJ2Ijp7fX0="></div>'
        '<p id="wci" class="_wafchallengeid"></p>Please wait...</body></html>'
    )
    assert is_challenge_page(wall)
    assert parse_universal_data(wall) is None
    unknown = (
        '<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">'
        '{"__DEFAULT_SCOPE__":{"webapp.challenge-detail":{"statusCode":10205,'
        '"challengeInfo":{}}}}</script>'
    )
    assert challenge_detail(parse_universal_data(unknown)) == (10205, None, None)


# --------------------------------------------------------------------------- Instagram


def test_instagram_clips_user(recorded_dir: Path) -> None:
    data = load_json(recorded_dir, "instagram/instagram_api_v1_clips_user_2021_reels_tab.json")
    page = parse_instagram_clips(data, "instagram:user:noholita", base_url=BASE)
    assert page.recognized and len(page.items) == 12 == len(data["items"])
    assert page.next_token and page.next_token.startswith("QVFDcVkyR09p")
    first = page.items[0]
    assert_normalized(first, "instagram")
    assert first["platform_id"] == "CPv3UqsBFvg"
    assert first["url"] == f"{BASE}/reel/CPv3UqsBFvg/"
    assert first["author"] == "noholita"
    assert first["view_count"] == 401_421  # play_count, not the smaller view_count
    assert first["like_count"] == 16_965
    assert first["duration_s"] == 20.433
    assert first["posted_at"] == dt.datetime(2021, 6, 5, 18, 11, 50, tzinfo=dt.UTC)
    assert first["thumbnail_url"].startswith("https://scontent")
    assert first["ai_label"] is None


@pytest.mark.parametrize(
    ("name", "edges", "videos"),
    [
        ("instagram_graphql_hashtag_paris_page1_2021-01.json", 34, 4),
        ("instagram_graphql_hashtag_paris_page2_2021-01.json", 11, 2),
        ("instagram_graphql_profile_timeline_media_2020-01.json", 12, 6),
    ],
)
def test_instagram_legacy_graphql(recorded_dir: Path, name: str, edges: int, videos: int) -> None:
    data = load_json(recorded_dir, f"instagram/{name}")
    root = data["data"].get("hashtag") or data["data"]["user"]
    conn = root.get("edge_hashtag_to_media") or root["edge_owner_to_timeline_media"]
    assert len(conn["edges"]) == edges
    page = parse_instagram_graphql(data, base_url=BASE)
    assert page.recognized and len(page.items) == videos  # photos and carousels skipped
    assert page.next_token == conn["page_info"]["end_cursor"]
    for item in page.items:
        assert_normalized(item, "instagram")
        assert item["url"] == f"{BASE}/reel/{item['platform_id']}/"
        assert item["posted_at"] is not None
        assert item["hashtags"] == hashtags_from_text(item["caption"])


def _ig_media(code: str, media_type: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "pk": "1",
        "id": "1_2",
        "code": code,
        "media_type": media_type,
        "taken_at": 1718000000,
        "caption": {"text": "cosplay #ナルト #reels"},
        "user": {"username": "someone"},
        "play_count": 2414000,
        "like_count": 49000,
        "video_duration": 14.9,
        **extra,
    }


def test_instagram_sections_and_ai_label() -> None:
    data = {
        "sections": [
            {
                "layout_type": "media_grid",
                "layout_content": {
                    "medias": [
                        {
                            "media": _ig_media(
                                "AAA",
                                gen_ai_detection_method={
                                    "detection_method": "SELF_DISCLOSURE_FLOW"
                                },
                            )
                        },
                        {"media": _ig_media("BBB", media_type=1)},  # a photo
                        {
                            "media": _ig_media(
                                "CCC", gen_ai_detection_method={"detection_method": "NONE"}
                            )
                        },
                    ]
                },
            },
            {
                "layout_type": "one_by_two_left",
                "layout_content": {
                    "one_by_two_item": {"clips": {"items": [{"media": _ig_media("DDD")}]}}
                },
            },
        ],
        "more_available": True,
        "next_max_id": "NEXT",
        "next_page": 2,
        "status": "ok",
    }
    page = parse_instagram_sections(data, "instagram:hashtag:naruto", base_url=BASE)
    assert page.recognized and page.next_token == "NEXT" and page.extra["next_page"] == 2
    assert [i["platform_id"] for i in page.items] == ["AAA", "CCC", "DDD"]
    assert page.items[0]["ai_label"] == "SELF_DISCLOSURE_FLOW"
    assert page.items[1]["ai_label"] is None
    assert page.items[0]["hashtags"] == ["ナルト", "reels"]
    data["more_available"] = False
    assert parse_instagram_sections(data).next_token is None
    assert not parse_instagram_sections({"status": "fail"}).recognized


def test_instagram_defensive() -> None:
    assert parse_instagram_media({"code": "X", "media_type": 2}, base_url=BASE)["caption"] is None
    assert parse_instagram_media({"media_type": 2}) is None
    assert parse_instagram_media(None) is None
    assert not parse_instagram_clips({"message": "Please wait"}).recognized
    assert parse_profile_user_id({"data": {"user": {"id": "123", "username": "u"}}}) == "123"
    assert parse_profile_user_id({"data": {"user": None}}) is None
