"""TikTok's defences and TLS impersonation: the WAF proof-of-work solver, soft-block retries,
cursor roll-back, layout-change detection and browser-consistent headers.

Pure functions are checked on crafted inputs and on the real recorded responses under
``../shared/recorded/tiktok``; the spider behaviour with real Scrapy crawls (curl_cffi
impersonation on for TikTok and Instagram, as configured by default) against the fixture.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from charwatch.config import DEFAULT_USER_AGENT
from crawler import waf
from crawler.middlewares import soft_block_reason
from crawler.parsers.tiktok import (
    item_like_keys,
    parse_tiktok_item_list,
    parse_universal_data,
    scope_video_count,
    user_detail,
)
from crawler.settings import config_settings
from crawler.spiders.tiktok import WEB_DEVICE_ID_RANGE, TiktokSpider, verify_fp, web_device_id
from crawler.status import is_tiktok_challenge
from fixture_platform import catalog as C
from storage import ListingStatus
from tests.test_spiders import Crawl, crawl, listing_ids, make_config

pytestmark = pytest.mark.timeout(300)


def challenge_html(
    prefix: bytes,
    answer: int,
    *,
    cookie: str = "_wafchallengeid",
    reid: tuple[str, str] | None = ("waforiginalreid", "r" * 32),
    class_first: bool = False,
    padded: bool = False,
) -> str:
    """A 'Please wait...' page in the live format, built independently of the fixture."""
    digest = hashlib.sha256(prefix + str(answer).encode()).digest()
    blob = {
        "v": {"a": base64.b64encode(prefix).decode(), "c": base64.b64encode(digest).decode()},
        "s": "sig",
        "e": 1,
    }
    cs = base64.b64encode(json.dumps(blob, separators=(",", ":")).encode()).decode()
    cs = cs if padded else cs.rstrip("=")

    def p(elem_id: str, cls: str) -> str:
        if class_first:
            return f"<p class='{cls}' id='{elem_id}'></p>"
        return f'<p id="{elem_id}" class="{cls}"></p>'

    parts = [p("cs", cs), p("wci", cookie)]
    if reid:
        parts += [p("rci", reid[0]), p("rs", reid[1])]
    return (
        "<!DOCTYPE html><html><head><title>Please wait...</title></head><body>"
        "<p>Please wait...</p>" + "\n".join(parts) + "<script>/* solver */</script></body></html>"
    )


def decode_cookie(value: str) -> dict[str, Any]:
    return json.loads(base64.b64decode(value))


# --------------------------------------------------------------------- the WAF solver


@pytest.mark.parametrize(
    "answer, class_first, padded", [(0, False, False), (73, True, True), (654_321, False, True)]
)
def test_waf_solver_on_a_page_in_the_live_format(
    answer: int, class_first: bool, padded: bool
) -> None:
    prefix = b"Xq3" + bytes([answer % 251]) + b"prefix"
    html = challenge_html(prefix, answer, class_first=class_first, padded=padded)
    assert is_tiktok_challenge(html)
    challenge = waf.parse_challenge(html)
    assert challenge is not None
    assert challenge.prefix == prefix and challenge.cookie_name == "_wafchallengeid"
    assert challenge.extra_cookie == ("waforiginalreid", "r" * 32)
    assert waf.solve(challenge.prefix, challenge.digest) == answer
    cookies = waf.solution_cookies(html)
    assert cookies is not None and set(cookies) == {"_wafchallengeid", "waforiginalreid"}
    assert cookies["waforiginalreid"] == "r" * 32
    data = decode_cookie(cookies["_wafchallengeid"])
    assert base64.b64decode(data["d"]) == str(answer).encode()
    assert data["s"] == "sig" and data["e"] == 1  # the rest of the challenge is sent back
    a, c = base64.b64decode(data["v"]["a"]), base64.b64decode(data["v"]["c"])
    assert hashlib.sha256(a + base64.b64decode(data["d"])).digest() == c
    assert " " not in base64.b64decode(cookies["_wafchallengeid"]).decode()  # compact JSON


def test_waf_solver_limits_and_non_challenges() -> None:
    html = challenge_html(b"abc", 5000, reid=None, cookie="custom_waf")
    assert waf.solution_cookies(html, limit=4999) is None  # answer outside the search range
    assert waf.solution_cookies(html) is not None
    assert set(waf.solution_cookies(html) or {}) == {"custom_waf"}  # no rci/rs: one cookie
    assert waf.parse_challenge("<html><body><p>hello</p></body></html>") is None
    broken = '<p id="cs" class="not*base64"></p><p id="wci" class="_wafchallengeid"></p>'
    assert waf.parse_challenge(broken) is None
    short = base64.b64encode(b'{"v":{"a":"YQ","c":"YWJj"}}').decode()  # a 3-byte digest
    assert waf.parse_challenge(f'<p id="cs" class="{short}"></p><p id="wci" class="w"></p>') is None
    assert waf.parse_challenge('<p id="cs" class=""></p>') is None


def test_recorded_pages_are_not_challenges(recorded_dir: Path) -> None:
    for path in sorted((recorded_dir / "tiktok").glob("*.html")):
        html = path.read_text(encoding="utf-8", errors="replace")
        assert not is_tiktok_challenge(html), path.name
        assert waf.parse_challenge(html) is None, path.name


def _fetch(url: str, cookie: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()


def test_fixture_interstitial_has_the_live_format_and_clears_when_solved(
    fixture_server: Any,
) -> None:
    url = f"{fixture_server.base_url}/tag/{C.TIKTOK_CHALLENGE_TAG}"
    _, body = _fetch(url)
    html = body.decode()
    assert re.search(r'<p id="cs" class="[A-Za-z0-9+/]+"', html)  # unpadded base64 in a <p>
    assert '<p id="wci" class="_wafchallengeid">' in html
    cookies = waf.solution_cookies(html)
    assert cookies is not None
    jar = "; ".join(f"{k}={v}" for k, v in cookies.items())
    _, solved = _fetch(url, jar)
    assert b"__UNIVERSAL_DATA_FOR_REHYDRATION__" in solved and not is_tiktok_challenge(
        solved.decode()
    )
    data = decode_cookie(cookies["_wafchallengeid"])
    data["d"] = base64.b64encode(b"1").decode()  # a wrong answer keeps the interstitial
    wrong = base64.b64encode(json.dumps(data).encode()).decode()
    _, again = _fetch(url, f"_wafchallengeid={wrong}")
    assert is_tiktok_challenge(again.decode())


# --------------------------------------------------------------------- device id, verifyFp


def test_device_id_and_verify_fp() -> None:
    ids = {int(web_device_id()) for _ in range(200)}
    assert all(WEB_DEVICE_ID_RANGE[0] <= i <= WEB_DEVICE_ID_RANGE[1] for i in ids)
    assert len(ids) > 150
    fp = verify_fp(now=1_700_000_000)
    assert re.fullmatch(
        r"verify_[0-9a-z]+_[A-Za-z0-9]{8}_[A-Za-z0-9]{4}_[A-Za-z0-9]{4}_"
        r"[A-Za-z0-9]{4}_[A-Za-z0-9]{12}",
        fp,
    ), fp
    assert int(fp.split("_")[1], 36) == 1_700_000_000_000  # the time in ms, base 36
    spider = TiktokSpider(user="someone")
    first = spider.web_params(cursor=1)
    assert spider.web_params(cursor=2).split("&")[:-1] == first.split("&")[:-1]  # stable
    params = dict(kv.split("=", 1) for kv in first.split("&"))
    assert WEB_DEVICE_ID_RANGE[0] <= int(params["device_id"]) <= WEB_DEVICE_ID_RANGE[1]
    assert params["aid"] == "1988" and params["verifyFp"] == spider.verify_fp


def test_fixture_creator_list_refuses_device_ids_outside_the_web_range(
    fixture_server: Any,
) -> None:
    sec = fixture_server.catalog.author("tiktok", C.DEMO_USER["tiktok"]).sec_uid
    base = f"{fixture_server.base_url}/api/creator/item_list/?aid=1988&secUid={sec}&count=15"
    assert _fetch(base + "&device_id=7999999999999999999")[1] == b""
    ok = json.loads(_fetch(base + f"&device_id={web_device_id()}")[1])
    assert len(ok["itemList"]) == 15


# --------------------------------------------------------------------- parsers and helpers


def test_soft_block_reason() -> None:
    assert soft_block_reason(200, b"") == "empty body"
    assert soft_block_reason(200, b"  \n") == "empty body"
    assert "verify" in (soft_block_reason(200, b'{"type":"verify","code":10000}') or "")
    assert soft_block_reason(200, b'{"statusCode":0,"itemList":[]}') is None
    assert soft_block_reason(200, b'{"desc":"verify me","type":"video"}') is None
    assert soft_block_reason(404, b"") is None  # status codes have their own handling


def _item(i: int) -> dict[str, Any]:
    return {
        "id": str(7_300_000_000_000_000_000 + i),
        "desc": f"clip {i}",
        "createTime": 1_700_000_000,
    }


def test_item_list_with_a_renamed_key_is_not_recognized() -> None:
    renamed = {"statusCode": 0, "items": [_item(1), _item(2)], "hasMore": False, "cursor": "2"}
    page = parse_tiktok_item_list(renamed)
    assert not page.items and not page.recognized
    assert page.extra["item_like_keys"] == ["items"] and page.extra["list_key"] is None
    nested = {"statusCode": 0, "data": {"videos": [_item(3)]}, "hasMore": False}
    assert item_like_keys(nested) == ["data.videos"]
    # an empty listing without itemList (as the live API answers) stays recognized
    empty = {"statusCode": 0, "hasMore": False, "cursor": "0", "extra": {"now": 1}}
    page = parse_tiktok_item_list(empty)
    assert page.recognized and not page.items and page.extra["item_like_keys"] == []
    normal = parse_tiktok_item_list({"statusCode": 0, "itemList": [_item(4)], "hasMore": False})
    assert normal.extra["list_key"] == "itemList" and len(normal.items) == 1


def test_recorded_item_list_and_profile(recorded_dir: Path) -> None:
    data = json.loads(
        (recorded_dir / "tiktok/tiktok_api_recommend_item_list_2022-11_foryou.json").read_bytes()
    )
    page = parse_tiktok_item_list(data)
    assert page.recognized and len(page.items) == len(data["itemList"]) == 28
    assert page.extra["list_key"] == "itemList" and page.extra["item_like_keys"] == []
    html = (
        recorded_dir
        / "tiktok/tiktok_profile_page_illojuan_2025-12_rendered_with_UNIVERSAL_DATA.html"
    ).read_text(encoding="utf-8")
    scope = parse_universal_data(html)
    _, sec_uid, handle = user_detail(scope)
    assert handle == "illojuan" and sec_uid and sec_uid.startswith("MS4wLjABAAAA")
    stated = scope["webapp.user-detail"]["userInfo"]["statsV2"]["videoCount"]
    assert scope_video_count(scope) == int(stated) > 0  # the exact statsV2 string wins


def test_empty_first_page_is_judged_against_the_stated_count() -> None:
    spider = TiktokSpider(hashtag="x")
    assert spider.empty_verdict("itemList") is None  # nothing stated: an empty listing
    spider.expected_count = 0
    assert spider.empty_verdict(None) is None
    spider.expected_count = 12
    assert spider.empty_verdict(None).status == ListingStatus.LAYOUT_CHANGED
    assert spider.empty_verdict("itemList").status == ListingStatus.BLOCKED
    assert "12 video(s)" in spider.empty_verdict("itemList").reason


def test_impersonation_settings() -> None:
    from charwatch.config import Config

    cfg = Config()
    cfg.platforms.tiktok.impersonate = "chrome"
    cfg.platforms.youtube.impersonate = ""
    tt, yt = config_settings(cfg, "tiktok"), config_settings(cfg, "youtube")
    assert tt["USER_AGENT"] == "" and tt["DEFAULT_REQUEST_HEADERS"] == {}
    assert tt["COMPRESSION_ENABLED"] is False
    assert yt["USER_AGENT"] == cfg.crawl.user_agent and "COMPRESSION_ENABLED" not in yt


# --------------------------------------------------------------------- real crawls

MAIN = [
    f"tiktok:hashtag:{C.TIKTOK_CHALLENGE_TAG}",
    f"tiktok:hashtag:{C.TIKTOK_WAFLOOP_TAG}",
    f"tiktok:hashtag:{C.TIKTOK_RENAMED_TAG}",
    f"tiktok:hashtag:{C.TIKTOK_BLOCKED_TAG}",
    f"tiktok:hashtag:{C.TIKTOK_VERIFY_TAG}",
    f"tiktok:user:{C.TIKTOK_GAP_USER}",
    "tiktok:hashtag:charwatchdemo",
    "instagram:user:demo_creator",
    "youtube:hashtag:charwatchdemo",
]


def _counts(srv: Any) -> dict[str, int]:
    return dict(srv.requests)


@pytest.fixture(scope="module")
def main(fixture_server: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Crawl, dict]:
    tmp = tmp_path_factory.mktemp("crawl-defences")
    cfg = make_config(tmp, fixture_server.base_url)
    cfg.platforms.tiktok.cooldown_s = 0  # each blocked listing stays its own case
    cfg.platforms.tiktok.headers = {"X-Charwatch-Probe": "1", "User-Agent": "Bogus/1.0"}
    assert cfg.platforms.tiktok.impersonate and cfg.platforms.instagram.impersonate
    assert not cfg.platforms.youtube.impersonate
    before = _counts(fixture_server)
    done = crawl(cfg, MAIN, max_items=600)
    after = _counts(fixture_server)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    headers = {k: list(v) for k, v in fixture_server.last_headers.items()}
    return done, {"delta": delta, "headers": headers}


def test_interstitial_is_solved_and_bounded(main: tuple[Crawl, dict]) -> None:
    done, seen = main
    ok = done.run(f"tiktok:hashtag:{C.TIKTOK_CHALLENGE_TAG}")
    assert ok.status == ListingStatus.OK, ok.message
    assert ok.items_seen == 3 and ok.debug_path is None
    assert seen["delta"][f"/tag/{C.TIKTOK_CHALLENGE_TAG}"] == 2  # interstitial, then the page
    cookies = [v for k, v in seen["headers"][f"/tag/{C.TIKTOK_CHALLENGE_TAG}"] if k == "cookie"]
    assert len(cookies) == 1  # one Cookie header, not a second copy from curl_cffi
    assert "_wafchallengeid=" in cookies[0] and "waforiginalreid=" in cookies[0]

    loop = done.run(f"tiktok:hashtag:{C.TIKTOK_WAFLOOP_TAG}")
    assert loop.status == ListingStatus.BLOCKED, loop.message
    assert "proof-of-work" in loop.message and "2 solves" in loop.message
    assert seen["delta"][f"/tag/{C.TIKTOK_WAFLOOP_TAG}"] == 3  # 2 solves, then give up
    assert 'id="wci"' in Path(loop.debug_path).read_text(encoding="utf-8")


def test_soft_blocks_are_retried_then_blocked(main: tuple[Crawl, dict]) -> None:
    done, _ = main
    for tag, words in (
        (C.TIKTOK_BLOCKED_TAG, "empty response body"),
        (C.TIKTOK_VERIFY_TAG, "verify"),
    ):
        run = done.run(f"tiktok:hashtag:{tag}")
        assert run.status == ListingStatus.BLOCKED, run.message
        assert words in run.message and "3 tries" in run.message, run.message
        assert run.debug_path and Path(run.debug_path).is_file()


def test_renamed_item_key_is_a_layout_change(main: tuple[Crawl, dict]) -> None:
    done, _ = main
    run = done.run(f"tiktok:hashtag:{C.TIKTOK_RENAMED_TAG}")
    assert run.status == ListingStatus.LAYOUT_CHANGED, run.message
    assert "items" in run.message and run.items_seen == 0
    saved = json.loads(Path(run.debug_path).read_bytes())
    assert "itemList" not in saved and len(saved["items"]) == 3


def test_creator_cursor_steps_back_over_a_gap(
    main: tuple[Crawl, dict], fixture_server: Any
) -> None:
    done, seen = main
    key = f"tiktok:user:{C.TIKTOK_GAP_USER}"
    run = done.run(key)
    assert run.status == ListingStatus.OK, run.message
    want = fixture_server.catalog.listing("tiktok", "user", C.TIKTOK_GAP_USER).video_ids
    assert sorted(listing_ids(done.store, key)) == sorted(want) and len(want) == 8
    assert "end of listing" in run.message and run.pages == 2
    # recent page, 2 empty pages stepped back over (20 days without posts), older page
    assert seen["delta"]["/api/creator/item_list/"] == 4


def test_impersonated_headers_match_the_browser(main: tuple[Crawl, dict]) -> None:
    done, seen = main
    assert done.run("tiktok:hashtag:charwatchdemo").status == ListingStatus.OK
    assert done.run("instagram:user:demo_creator").status == ListingStatus.OK
    assert done.run("youtube:hashtag:charwatchdemo").status == ListingStatus.OK
    tiktok = dict(seen["headers"]["/tag/charwatchdemo"])
    ua = tiktok["user-agent"]
    assert ua != DEFAULT_USER_AGENT and "Bogus" not in ua
    major = re.search(r"Chrome/(\d+)\.", ua)[1]  # type: ignore[index]
    assert f'"Google Chrome";v="{major}"' in tiktok["sec-ch-ua"]
    platform = tiktok["sec-ch-ua-platform"].strip('"')
    assert {"Windows": "Windows NT", "macOS": "Macintosh", "Linux": "Linux"}[platform] in ua
    assert tiktok["sec-ch-ua-mobile"] == "?0"
    assert tiktok["x-charwatch-probe"] == "1"  # other configured headers still apply
    names = [k for k, _ in seen["headers"]["/tag/charwatchdemo"]]
    assert names.count("user-agent") == 1 and names.count("sec-ch-ua") == 1
    # paths this crawl asked for (the server keeps the last headers of earlier tests too)
    asked = {p for p, n in seen["delta"].items() if n > 0}
    instagram = [p for p in seen["headers"] if p.startswith("/api/v1/") and p in asked]
    assert instagram
    for path in instagram:  # Instagram's APIs: impersonated, the configured cookie kept
        h = dict(seen["headers"][path])
        assert "sec-ch-ua" in h and "Chrome/" in h["user-agent"], path
        assert "sessionid=test-session" in h.get("cookie", ""), path
    yt_path = next(
        p for p in seen["headers"] if p.startswith("/hashtag/charwatchdemo") and p in asked
    )
    youtube = dict(seen["headers"][yt_path])
    assert youtube["user-agent"] == DEFAULT_USER_AGENT and "sec-ch-ua" not in youtube


def test_flaky_empty_answers_are_retried(fixture_server: Any, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, fixture_server.base_url)
    before = fixture_server.requests["/api/challenge/item_list/"]
    done = crawl(cfg, [f"tiktok:hashtag:{C.TIKTOK_FLAKY_TAG}"])
    run = done.run(f"tiktok:hashtag:{C.TIKTOK_FLAKY_TAG}")
    assert run.status == ListingStatus.OK, run.message
    assert run.items_seen == 3 and run.debug_path is None
    assert fixture_server.requests["/api/challenge/item_list/"] - before == 3  # 2 empty, 1 page


def test_configured_proxy_carries_impersonated_requests(
    fixture_server: Any, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path, fixture_server.base_url, retry_times=0)
    cfg.platforms.tiktok.proxy = fixture_server.base_url  # it answers absolute-form requests
    cfg.platforms.instagram.proxy = "http://127.0.0.1:9"  # nothing listens there
    cfg.platforms.instagram.cooldown_s = 0
    done = crawl(cfg, ["tiktok:hashtag:charwatchdemo", "instagram:user:demo_creator"])
    assert done.run("tiktok:hashtag:charwatchdemo").status == ListingStatus.OK
    dead = done.run("instagram:user:demo_creator")
    assert dead.status == ListingStatus.ERROR and "request failed" in dead.message, dead.message
