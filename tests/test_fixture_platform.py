"""The fixture platform over real HTTP on 127.0.0.1: listing shapes and paging, negative cases,
video pages, generated MP4s (checked with the ffmpeg binary) and a real yt-dlp download."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from fixture_platform import catalog as C
from fixture_platform.catalog import Catalog, get_catalog, pk_from_shortcode, shortcode_from_pk
from fixture_platform.characters import (
    DEMO_CHARACTERS,
    REGISTERED_KEYS,
    render_character,
    write_reference_images,
)
from fixture_platform.server import FixtureServer
from fixture_platform.videos import VideoSpec, make_video, render_frame

# Instagram POSTs carry X-CSRFToken equal to the csrftoken cookie
FORM = {
    "Content-Type": "application/x-www-form-urlencoded",
    "X-CSRFToken": "abc",
    "Cookie": "csrftoken=abc",
}
JSON_CT = {"Content-Type": "application/json"}
SESSION = {"Cookie": "sessionid=test-session; csrftoken=abc"}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def fetch(
    url: str,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) without following redirects."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with _OPENER.open(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get_json(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    status, _, body = fetch(url, data, headers)
    assert status == 200, (url, status, body[:200])
    return json.loads(body)


def universal(html: bytes) -> dict[str, Any]:
    m = re.search(
        rb'<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">(.*?)</script>',
        html,
        re.S,
    )
    assert m, "no universal data"
    return json.loads(m[1])["__DEFAULT_SCOPE__"]


def yt_initial(html: bytes) -> dict[str, Any]:
    m = re.search(rb"var ytInitialData = (\{.*?\});</script>", html, re.S)
    assert m, "no ytInitialData"
    return json.loads(m[1])


def probe(path: Path) -> str:
    """ffmpeg's description of a media file (decodes every frame; fails on a broken file)."""
    out = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stderr


@pytest.fixture
def srv(fixture_server: FixtureServer) -> Iterator[FixtureServer]:
    """The session's fixture platform; fails the test if a page raised."""
    before = len(fixture_server.errors)
    yield fixture_server
    assert fixture_server.errors[before:] == []


# -- catalog, characters, videos (no HTTP) -----------------------------------------------------


def test_catalog_ids_ground_truth_and_determinism() -> None:
    cat = get_catalog(7)
    for p in C.PLATFORMS:
        ids = cat.demo_video_ids(p)
        assert len(ids) == {"tiktok": 8, "youtube": 8, "instagram": 6}[p]
        names = [cat.expected_character(p, i) for i in ids]
        shown = {n for n in names if n}
        assert shown == {"Pompom", "Kitsumaru", "Gearbolt"}, p
        assert 0.4 <= sum(1 for n in names if n) / len(ids) <= 0.6
        assert any(cat.videos[(p, i)].character is None for i in ids)  # an abstract scene
        captions = " ".join(cat.videos[(p, i)].caption for i in ids)
        assert re.search(r"[\u3040-\u30ff]", captions), "no Japanese caption"
        hostile = [cat.videos[(p, i)] for i in ids if "<" in cat.videos[(p, i)].caption]
        assert hostile and all(v.expected_name is None for v in hostile)
    tt = cat.demo_video_ids("tiktok")[0]
    assert re.fullmatch(r"7\d{18}", tt) and int(tt) >> 32 == cat.videos[("tiktok", tt)].create_time
    yt = cat.demo_video_ids("youtube")[0]
    assert re.fullmatch(r"[\w-]{10}[AEIMQUYcgkosw048]", yt)
    v = cat.videos[("instagram", cat.demo_video_ids("instagram")[0])]
    assert shortcode_from_pk(int(v.pk)) == v.video_id and pk_from_shortcode(v.video_id) == int(v.pk)
    assert cat.expected_character("instagram", v.pk) == cat.expected_character(
        "instagram", v.video_id
    )
    assert cat.expected_character("tiktok", "123") is None
    for p in ("tiktok", "youtube"):
        bulk = cat.listing(p, "tag", C.BULK_TAG)
        assert bulk is not None and len(set(bulk.video_ids)) == 500
        assert all(cat.expected_character(p, i) is None for i in bulk.video_ids)
    again = Catalog(7)
    assert list(again.videos) == list(cat.videos)
    assert again.videos[("youtube", yt)].spec == cat.videos[("youtube", yt)].spec
    assert Catalog(8).demo_video_ids("youtube") != cat.demo_video_ids("youtube")


def test_characters_render_and_references(tmp_path: Path) -> None:
    keys = [c.key for c in DEMO_CHARACTERS]
    assert len(REGISTERED_KEYS) == 3 and len(keys) - 3 >= 3
    for c in DEMO_CHARACTERS:
        assert any(re.search(r"[\u3040-\u30ff]", a) for a in c.aliases), c.key
        if c.registered:
            assert c.franchise == "Charwatch Demo"
    means = {}
    for k in keys:
        img = render_character(k, 0, 128)
        assert img.mode == "RGBA" and img.size == (128, 128)
        assert img.getpixel((0, 0))[3] == 0 and img.getpixel((127, 127))[3] == 0
        covered = float((np.asarray(img.getchannel("A")) > 128).mean())
        assert 0.08 < covered < 0.75, (k, covered)
        means[k] = img.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
        assert render_character(k, 0, 128).tobytes() != render_character(k, 3, 128).tobytes()
    assert len(set(means.values())) == len(keys)
    with pytest.raises(KeyError):
        render_character("nobody", 0, 64)
    refs = write_reference_images(tmp_path / "refs", per_character=2)
    assert sorted(refs) == sorted(REGISTERED_KEYS)
    for paths in refs.values():
        assert len(paths) == 2
        for p in paths:
            with Image.open(p) as im:
                assert im.format == "PNG" and im.size == (512, 512)
    assert sorted(x.name for x in (tmp_path / "refs").iterdir()) == sorted(
        p.name for ps in refs.values() for p in ps
    )


def test_make_video_spec_checks_and_output(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        VideoSpec(1, layout="sideways")
    with pytest.raises(ValueError):
        VideoSpec(1, width=361)
    spec = VideoSpec(3, "gearbolt", "pip", 0.42, background="noise", caption="<b>x</b>", emojis=3)
    plain = VideoSpec(3, None, "pip", 0.42, background="noise", caption="<b>x</b>", emojis=3)
    assert render_frame(spec, 10).tobytes() != render_frame(plain, 10).tobytes()
    t0 = time.monotonic()
    out = make_video(spec, tmp_path / "sub" / "v.mp4")
    took = time.monotonic() - t0
    assert out.exists() and not list(out.parent.glob("*.part"))
    info = probe(out)
    assert re.search(r"Video: h264 .*yuv420p.*360x640", info), info
    assert "frame=   72" in info or "frame=72" in info.replace(" ", "")
    assert took < 10, f"make_video took {took:.1f} s"


# -- TikTok ------------------------------------------------------------------------------------


def _tiktok_tag_ids(base: str, tag: str) -> tuple[list[str], list[int]]:
    status, _, html = fetch(f"{base}/tag/{tag}")
    assert status == 200
    detail = universal(html)["webapp.challenge-detail"]
    assert detail["statusCode"] == 0 and detail["itemList"] == []
    info = detail["challengeInfo"]
    assert info["challenge"]["title"] == tag and int(info["stats"]["videoCount"]) > 0
    assert f"snssdk1233://challenge/detail/{info['challenge']['id']}".encode() in html
    ids: list[str] = []
    sizes: list[int] = []
    cursor = "0"
    while True:
        page = get_json(
            f"{base}/api/challenge/item_list/?aid=1988&challengeID={info['challenge']['id']}"
            f"&count=30&cursor={cursor}"
        )
        assert page["statusCode"] == 0
        ids += [it["id"] for it in page["itemList"]]
        sizes.append(len(page["itemList"]))
        if not page["hasMore"]:
            return ids, sizes
        assert int(page["cursor"]) == len(ids)
        cursor = page["cursor"]


def test_tiktok_tag_listing_pages_to_end(srv: FixtureServer) -> None:
    ids, sizes = _tiktok_tag_ids(srv.base_url, C.DEMO_TAG)
    assert ids == srv.catalog.demo_video_ids("tiktok") and len(sizes) >= 2
    page = get_json(
        f"{srv.base_url}/api/challenge/item_list/?challengeID={C.challenge_id(C.DEMO_TAG)}"
        "&count=30&cursor=0"
    )
    item = page["itemList"][0]
    for key in (
        "id",
        "desc",
        "createTime",
        "author",
        "video",
        "stats",
        "statsV2",
        "challenges",
        "textExtra",
        "IsAigc",
        "aigcLabelType",
        "AIGCDescription",
    ):
        assert key in item, key
    assert item["author"]["uniqueId"] and item["author"]["secUid"].startswith("MS4wLjABAAAA")
    assert item["video"]["duration"] == 6 and item["video"]["playAddr"].endswith(".mp4")
    assert isinstance(item["statsV2"]["playCount"], str)
    desc16 = item["desc"].encode("utf-16-le")
    for t in item["textExtra"]:
        assert desc16[2 * t["start"] : 2 * t["end"]].decode("utf-16-le") == "#" + t["hashtagName"]
    assert {c["title"] for c in item["challenges"]} >= {C.DEMO_TAG}
    labelled = [it for it in page["itemList"] if it["IsAigc"]]
    assert labelled and all(it["aigcLabelType"] in (1, 2) for it in labelled)

    bulk, sizes = _tiktok_tag_ids(srv.base_url, C.BULK_TAG)
    assert len(bulk) == 500 == len(set(bulk)) and max(sizes) == 30 and len(sizes) == 17


def test_tiktok_user_feed_and_search(srv: FixtureServer) -> None:
    base = srv.base_url
    status, _, html = fetch(f"{base}/@{C.DEMO_USER['tiktok']}")
    user = universal(html)["webapp.user-detail"]
    assert status == 200 and user["statusCode"] == 0
    sec = user["userInfo"]["user"]["secUid"]
    expected = int(user["userInfo"]["stats"]["videoCount"])
    cursor, ids, pages = int(time.time() * 1000), [], 0
    while True:
        page = get_json(
            f"{base}/api/creator/item_list/?secUid={sec}&count=15&cursor={cursor}&type=1"
        )
        times = [it["createTime"] for it in page["itemList"]]
        assert times == sorted(times, reverse=True) and all(t * 1000 < cursor for t in times)
        ids += [it["id"] for it in page["itemList"]]
        pages += 1
        if not page["hasMorePrevious"]:
            break
        cursor = page["itemList"][-1]["createTime"] * 1000
    assert len(ids) == len(set(ids)) == expected == 18 and pages == 2

    found, offset = [], 0
    while True:
        page = get_json(
            f"{base}/api/search/item/full/?keyword=charwatch%20demo&offset={offset}&count=12"
        )
        assert page["status_code"] == 0
        found += [it["id"] for it in page["item_list"]]
        if not page["has_more"]:
            break
        offset = page["cursor"]
    assert len(found) == 16 and set(srv.catalog.demo_video_ids("tiktok")) <= set(found)


def test_tiktok_negative_cases(srv: FixtureServer) -> None:
    base = srv.base_url
    status, _, html = fetch(f"{base}/tag/{C.TIKTOK_MISSING_TAG}")
    detail = universal(html)["webapp.challenge-detail"]
    assert status == 200 and detail["statusCode"] == 10205 and detail["challengeInfo"] == {}
    assert b"Couldn't find this hashtag" in html

    blocked = C.challenge_id(C.TIKTOK_BLOCKED_TAG)
    assert fetch(f"{base}/tag/{C.TIKTOK_BLOCKED_TAG}")[0] == 200
    status, _, body = fetch(
        f"{base}/api/challenge/item_list/?challengeID={blocked}&count=30&cursor=0"
    )
    assert status == 200 and body == b""
    verify = C.challenge_id(C.TIKTOK_VERIFY_TAG)
    page = get_json(f"{base}/api/challenge/item_list/?challengeID={verify}&count=30&cursor=0")
    assert page["type"] == "verify"

    status, headers, _ = fetch(f"{base}/tag/{C.TIKTOK_LOGINWALL_TAG}")
    assert status == 302 and headers["Location"].startswith(f"{base}/login")
    assert fetch(headers["Location"])[0] == 200

    # the proof-of-work page, solved the way yt-dlp does it
    status, _, html = fetch(f"{base}/tag/{C.TIKTOK_CHALLENGE_TAG}")
    text = html.decode()
    assert status == 200 and "__UNIVERSAL_DATA_FOR_REHYDRATION__" not in text
    cs = re.search(r'id="cs" class="([^"]+)"', text)[1]  # type: ignore[index]
    cookie_name = re.search(r'id="wci" class="([^"]+)"', text)[1]  # type: ignore[index]
    data = json.loads(base64.b64decode(cs + "==="))
    digest = base64.b64decode(data["v"]["c"])
    prefix = base64.b64decode(data["v"]["a"])
    answer = next(
        i for i in range(1_000_001) if hashlib.sha256(prefix + str(i).encode()).digest() == digest
    )
    data["d"] = base64.b64encode(str(answer).encode()).decode()
    cookie = base64.b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()
    status, _, html = fetch(
        f"{base}/tag/{C.TIKTOK_CHALLENGE_TAG}", headers={"Cookie": f"{cookie_name}={cookie}"}
    )
    assert status == 200 and universal(html)["webapp.challenge-detail"]["statusCode"] == 0

    _, _, html = fetch(f"{base}/@{C.TIKTOK_MISSING_USER}")
    assert universal(html)["webapp.user-detail"]["statusCode"] == 10221
    _, _, html = fetch(f"{base}/@{C.TIKTOK_PRIVATE_USER}")
    assert universal(html)["webapp.user-detail"]["statusCode"] == 10222


# -- YouTube -----------------------------------------------------------------------------------


def _rich_ids(items: list[dict[str, Any]]) -> tuple[list[str], str | None]:
    ids, tok = [], None
    for it in items:
        if "continuationItemRenderer" in it:
            tok = it["continuationItemRenderer"]["continuationEndpoint"]["continuationCommand"][
                "token"
            ]
            continue
        content = it["richItemRenderer"]["content"]
        if "shortsLockupViewModel" in content:
            vm = content["shortsLockupViewModel"]
            ids.append(vm["onTap"]["innertubeCommand"]["reelWatchEndpoint"]["videoId"])
            assert vm["entityId"] == "shorts-shelf-item-" + ids[-1]
            assert vm["overlayMetadata"]["secondaryText"]["content"].endswith("views")
        else:
            vr = content["videoRenderer"]
            ids.append(vr["videoId"])
            assert vr["navigationEndpoint"]["commandMetadata"]["webCommandMetadata"]["url"] == (
                "/shorts/" + vr["videoId"]
            )
    return ids, tok


def _browse_all(base: str, first_items: list[dict[str, Any]]) -> tuple[list[str], int]:
    ids, tok = _rich_ids(first_items)
    pages = 1
    while tok:
        resp = get_json(
            f"{base}/youtubei/v1/browse?prettyPrint=false",
            json.dumps(
                {"context": {"client": {"clientName": "WEB"}}, "continuation": tok}
            ).encode(),
            JSON_CT,
        )
        more, tok = _rich_ids(
            resp["onResponseReceivedActions"][0]["appendContinuationItemsAction"][
                "continuationItems"
            ]
        )
        ids += more
        pages += 1
    return ids, pages


def _grid(data: dict[str, Any]) -> list[dict[str, Any]]:
    tabs = data["contents"]["twoColumnBrowseResultsRenderer"]["tabs"]
    tab = next(t["tabRenderer"] for t in tabs if t.get("tabRenderer", {}).get("selected"))
    return tab["content"]["richGridRenderer"]["contents"]


def test_youtube_hashtag_and_bulk_page_to_end(srv: FixtureServer) -> None:
    base = srv.base_url
    status, _, html = fetch(f"{base}/hashtag/{C.DEMO_TAG}", headers={"Cookie": "SOCS=CAI"})
    assert status == 200
    cfg = json.loads(re.search(rb"ytcfg\.set\((\{.*?\})\);", html)[1])  # type: ignore[index]
    assert cfg["INNERTUBE_API_KEY"] and cfg["VISITOR_DATA"]
    assert cfg["INNERTUBE_CONTEXT"]["client"]["clientName"] == "WEB"
    data = yt_initial(html)
    assert data["header"]["hashtagHeaderRenderer"]["hashtag"]["simpleText"] == f"#{C.DEMO_TAG}"
    kinds = {
        next(iter(i["richItemRenderer"]["content"])) for i in _grid(data) if "richItemRenderer" in i
    }
    assert kinds == {"shortsLockupViewModel", "videoRenderer"}
    ids, pages = _browse_all(base, _grid(data))
    assert ids == srv.catalog.demo_video_ids("youtube") and pages >= 2

    ids, pages = _browse_all(base, _grid(yt_initial(fetch(f"{base}/hashtag/{C.BULK_TAG}")[2])))
    assert len(ids) == len(set(ids)) == 500 and pages == 11


def test_youtube_channel_search_and_rss(srv: FixtureServer) -> None:
    base = srv.base_url
    status, _, html = fetch(f"{base}/@{C.DEMO_USER['youtube']}/shorts")
    data = yt_initial(html)
    meta = data["metadata"]["channelMetadataRenderer"]
    assert status == 200 and meta["externalId"].startswith("UC")
    assert meta["vanityChannelUrl"].endswith("/@" + C.DEMO_USER["youtube"])
    ids, pages = _browse_all(base, _grid(data))
    assert len(ids) == len(set(ids)) == 30 and pages == 2

    status, _, html = fetch(f"{base}/results?search_query=charwatch+demo")
    section = yt_initial(html)["contents"]["twoColumnSearchResultsRenderer"]["primaryContents"][
        "sectionListRenderer"
    ]["contents"]
    found: list[str] = []
    while True:
        tok = None
        for part in section:
            if "continuationItemRenderer" in part:
                tok = part["continuationItemRenderer"]["continuationEndpoint"][
                    "continuationCommand"
                ]["token"]
                continue
            for it in part["itemSectionRenderer"]["contents"]:
                if "videoRenderer" in it:
                    found.append(it["videoRenderer"]["videoId"])
                    overlay = it["videoRenderer"]["thumbnailOverlays"][0]
                    assert overlay["thumbnailOverlayTimeStatusRenderer"]["style"] == "SHORTS"
                for vm in it.get("gridShelfViewModel", {}).get("contents", []):
                    found.append(
                        vm["shortsLockupViewModel"]["onTap"]["innertubeCommand"][
                            "reelWatchEndpoint"
                        ]["videoId"]
                    )
        if not tok:
            break
        resp = get_json(
            f"{base}/youtubei/v1/search?prettyPrint=false",
            json.dumps({"context": {}, "continuation": tok}).encode(),
            JSON_CT,
        )
        section = resp["onResponseReceivedCommands"][0]["appendContinuationItemsAction"][
            "continuationItems"
        ]
    assert len(found) == len(set(found)) == 16
    assert set(srv.catalog.demo_video_ids("youtube")) <= set(found)

    status, headers, body = fetch(f"{base}/feeds/videos.xml?channel_id={meta['externalId']}")
    assert status == 200 and headers["Content-Type"].startswith("text/xml")
    ns = {
        "a": "http://www.w3.org/2005/Atom",
        "yt": "http://www.youtube.com/xml/schemas/2015",
        "media": "http://search.yahoo.com/mrss/",
    }
    entries = ET.fromstring(body).findall("a:entry", ns)
    assert len(entries) == 15
    first = entries[0]
    assert first.find("yt:videoId", ns).text == ids[0]  # type: ignore[union-attr]
    assert first.find("media:group/media:community/media:statistics", ns) is not None
    assert fetch(f"{base}/feeds/videos.xml?channel_id=UCnope")[0] == 404


def test_youtube_negative_cases(srv: FixtureServer) -> None:
    base = srv.base_url
    status, _, html = fetch(f"{base}/hashtag/{C.YOUTUBE_LAYOUT_TAG}")
    assert status == 200 and b"richGridRenderer" not in html
    assert b"shortsLockupViewModel" not in html and b"videoRenderer" not in html
    assert yt_initial(html)["contents"]
    assert fetch(f"{base}/hashtag/nosuchhashtagatall")[0] == 404
    status, _, body = fetch(
        f"{base}/youtubei/v1/browse", json.dumps({"continuation": "bogus"}).encode(), JSON_CT
    )
    assert status == 400 and json.loads(body)["error"]["code"] == 400

    with FixtureServer() as fresh:  # a new server: the counter starts at zero
        url = f"{fresh.base_url}/hashtag/{C.YOUTUBE_RATELIMIT_TAG}"
        assert [fetch(url)[0] for _ in range(3)] == [429, 429, 200]
        assert fresh.request_count(f"/hashtag/{C.YOUTUBE_RATELIMIT_TAG}") == 3
        assert len(_rich_ids(_grid(yt_initial(fetch(url)[2])))[0]) == 3


# -- Instagram ---------------------------------------------------------------------------------


def test_instagram_profile_reels_and_tag_sections(srv: FixtureServer) -> None:
    base = srv.base_url
    prof = get_json(f"{base}/api/v1/users/web_profile_info/?username={C.DEMO_USER['instagram']}")
    assert prof["status"] == "ok" and prof["data"]["user"]["username"] == C.DEMO_USER["instagram"]
    uid = prof["data"]["user"]["id"]
    codes, max_id, pages = [], "", 0
    while True:
        page = get_json(
            f"{base}/api/v1/clips/user/",
            f"target_user_id={uid}&page_size=50&max_id={max_id}".encode(),
            FORM,
        )
        assert page["status"] == "ok"
        for it in page["items"]:
            media = it["media"]
            assert media["media_type"] == 2 and media["product_type"] == "clips"
            assert media["user"]["username"] == C.DEMO_USER["instagram"]
            assert shortcode_from_pk(int(media["pk"])) == media["code"]
            assert media["gen_ai_detection_method"]["detection_method"] in (
                "NONE",
                "SELF_DISCLOSURE_FLOW",
            )
            assert media["video_versions"][0]["url"].endswith(
                f"/media/instagram/{media['code']}.mp4"
            )
            codes.append(media["code"])
        pages += 1
        if not page["paging_info"]["more_available"]:
            break
        max_id = page["paging_info"]["max_id"]
    assert len(codes) == len(set(codes)) == 15 and pages == 2

    status, headers, _ = fetch(
        f"{base}/api/v1/tags/{C.DEMO_TAG}/sections/",
        b"tab=recent&surface=grid&max_id=&page=0",
        FORM,
    )
    assert status == 302 and "/accounts/login/" in headers["Location"]
    codes, max_id, page_no, pages, ai = [], "", 0, 0, 0
    while True:
        body = f"tab=recent&surface=grid&include_persistent=0&max_id={max_id}&page={page_no}"
        page = get_json(
            f"{base}/api/v1/tags/{C.DEMO_TAG}/sections/", body.encode(), {**FORM, **SESSION}
        )
        for sec in page["sections"]:
            assert sec["layout_type"] == "media_grid"
            for m in sec["layout_content"]["medias"]:
                codes.append(m["media"]["code"])
                ai += m["media"]["gen_ai_detection_method"]["detection_method"] != "NONE"
        pages += 1
        if not page["more_available"]:
            break
        max_id, page_no = page["next_max_id"], page["next_page"]
    assert codes == srv.catalog.demo_video_ids("instagram") and pages >= 2 and ai >= 1

    status, _, body = fetch(
        f"{base}/api/v1/users/web_profile_info/?username={C.INSTAGRAM_PLEASEWAIT_USER}"
    )
    answer = json.loads(body)
    assert status == 401 and answer["status"] == "fail"
    assert answer["message"] == "Please wait a few minutes before you try again."
    assert fetch(f"{base}/api/v1/users/web_profile_info/?username=nobody_here")[0] == 404


# -- video pages and media ---------------------------------------------------------------------


@pytest.mark.parametrize("platform", C.PLATFORMS)
def test_video_pages_have_og_video_and_escape_captions(srv: FixtureServer, platform: str) -> None:
    cat = srv.catalog
    hostile = next(
        cat.videos[(platform, i)]
        for i in cat.demo_video_ids(platform)
        if "<" in cat.videos[(platform, i)].caption
    )
    status, _, html = fetch(srv.base_url + hostile.path)
    text = html.decode()
    assert status == 200
    og = dict(re.findall(r'<meta property="(og:[\w:]+)" content="([^"]*)"', text))
    assert og["og:video"] == f"{srv.base_url}/media/{platform}/{hostile.video_id}.mp4"
    assert og["og:video:type"] == "video/mp4" and og["og:video:width"] == "360"
    assert og["og:video:height"] == "640" and og["og:image"].endswith(".jpg")
    assert "<script>alert(1)" not in text and "<img src=x" not in text
    if platform == "tiktok":  # the JSON in the page reads back to the exact caption
        struct = universal(html)["webapp.video-detail"]["itemInfo"]["itemStruct"]
        assert struct["desc"] == hostile.caption
    assert (
        fetch(
            f"{srv.base_url}{hostile.path.replace(hostile.video_id, 'A' + hostile.video_id[1:])}"
        )[0]
        == 404
    )


def test_mp4_media_head_and_ranges(srv: FixtureServer, tmp_path: Path) -> None:
    v = srv.catalog.videos[("youtube", srv.catalog.demo_video_ids("youtube")[0])]
    url = srv.base_url + v.media_path
    status, headers, body = fetch(url)
    assert (
        status == 200
        and headers["Content-Type"] == "video/mp4"
        and headers["Accept-Ranges"] == "bytes"
    )
    assert int(headers["Content-Length"]) == len(body) > 10_000
    path = tmp_path / "v.mp4"
    path.write_bytes(body)
    info = probe(path)
    assert re.search(r"Video: h264 .*yuv420p.*360x640", info) and "12 fps" in info
    assert re.search(r"Duration: 00:00:0[56]\.", info)
    assert body.find(b"moov") < body.find(b"mdat")  # +faststart
    status, headers, head_body = fetch(url, method="HEAD")
    assert status == 200 and head_body == b"" and int(headers["Content-Length"]) == len(body)
    status, headers, part = fetch(url, headers={"Range": "bytes=100-1099"})
    assert status == 206 and part == body[100:1100]
    assert headers["Content-Range"] == f"bytes 100-1099/{len(body)}"
    assert fetch(url, headers={"Range": "bytes=-500"})[2] == body[-500:]
    assert fetch(url, headers={"Range": f"bytes={len(body)}-"})[0] == 416
    status, headers, jpg = fetch(srv.base_url + v.cover_path)
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and jpg[:2] == b"\xff\xd8"
    assert fetch(f"{srv.base_url}/media/youtube/doesnotexist.mp4")[0] == 404


@pytest.mark.parametrize("platform", C.PLATFORMS)
def test_ytdlp_downloads_a_fixture_video_page(
    srv: FixtureServer, platform: str, tmp_path: Path
) -> None:
    import yt_dlp

    v = srv.catalog.videos[(platform, srv.catalog.demo_video_ids(platform)[2])]
    opts = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "ffmpeg_location": imageio_ffmpeg.get_ffmpeg_exe(),
        "outtmpl": str(tmp_path / "%(id)s.%(ext)s"),
    }
    with yt_dlp.YoutubeDL(opts) as ydl:
        info = ydl.extract_info(srv.base_url + v.path, download=True)
    assert info["extractor"] == "generic" and info["id"] == v.video_id
    out = Path(info["requested_downloads"][0]["filepath"])
    assert (
        out.exists() and out.stat().st_size == srv.media_file(platform, v.video_id).stat().st_size
    )  # type: ignore[union-attr]
    assert re.search(r"Video: h264 .*360x640", probe(out))


def test_serve_forever_runs_quietly_until_interrupted(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "from fixture_platform.server import serve_forever; "
        f"serve_forever('127.0.0.1', {port}, None)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _, body = fetch(f"http://127.0.0.1:{port}/tag/{C.DEMO_TAG}")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
                time.sleep(0.2)
        assert status == 200 and b"challenge-detail" in body
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and out == b"" and err == b""
