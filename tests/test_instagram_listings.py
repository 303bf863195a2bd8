"""Instagram listings as the live site needs them: user id lookups (profile page meta,
topsearch, web_profile_info), the id cache, ``id:NNN`` targets, CSRF and the www claim, and
the request pacing. Crawls are real Scrapy runs against the fixture platform."""

from __future__ import annotations

import json
import random
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from scrapy.core.downloader import Slot
from scrapy.settings import Settings
from sqlalchemy import select

import crawler.settings as project_settings
from charwatch.config import Config, load_config
from crawler.listing import Listing
from crawler.parsers.instagram import (
    is_id_target,
    parse_instagram_clips,
    parse_profile_page_user_id,
    parse_profile_user_id,
    parse_topsearch_user_id,
    user_id_from_target,
)
from crawler.run import run_crawl
from crawler.spiders.instagram import InstagramSpider, UserIdCache, new_csrf_token, paced_delay
from fixture_platform import pages_instagram as IG
from fixture_platform.catalog import INSTAGRAM_PLEASEWAIT_USER
from fixture_platform.pages import Request
from storage import CrawlRun, ListingStatus, Store
from tests.conftest import write_config

pytestmark = pytest.mark.timeout(300)

LOOKUP_PATHS = ("/web/search/topsearch/", "/api/v1/users/web_profile_info/")
ALNUM32 = re.compile(r"[A-Za-z0-9]{32}")


# -- parsers -----------------------------------------------------------------------------------


def test_profile_page_meta_in_any_attribute_order() -> None:
    page = (
        '<head><meta property="og:type" content="profile">'
        '<meta property="instapp:owner_user_id" content="787132"></head>'
    )
    assert parse_profile_page_user_id(page) == "787132"
    swapped = b"<META content='42' name='instapp:owner_user_id' />"
    assert parse_profile_page_user_id(swapped) == "42"
    # the embedded page data when the meta is missing
    assert parse_profile_page_user_id('<script>{"profile_id":"9001","x":1}</script>') == "9001"
    bad = '<meta property="instapp:owner_user_id" content="n/a">'
    assert parse_profile_page_user_id(bad) is None
    assert parse_profile_page_user_id("<html><title>Login</title></html>") is None


def test_topsearch_takes_the_exact_username_only() -> None:
    data = {
        "users": [
            {"position": 0, "user": {"pk": "111", "username": "natgeo.travel"}},
            {"position": 1, "user": {"pk": 222, "username": "NatGeo"}},
            {"position": 2, "user": {"pk_id": "333", "username": "natgeo_kids"}},
        ],
        "places": [],
        "hashtags": [],
        "status": "ok",
    }
    assert parse_topsearch_user_id(data, "natgeo") == "222"  # case-insensitive, int pk
    assert parse_topsearch_user_id(data, "@natgeo_kids") == "333"
    assert parse_topsearch_user_id(data, "natge") is None
    assert parse_topsearch_user_id({"users": []}, "natgeo") is None
    assert parse_topsearch_user_id({"message": "Please wait"}, "natgeo") is None


def test_topsearch_with_a_real_v1_user_struct(recorded_dir: Path) -> None:
    """topsearch lists the same v1 user struct as the recorded clips/user answer."""
    data = json.loads(
        (recorded_dir / "instagram/instagram_api_v1_clips_user_2021_reels_tab.json").read_text(
            encoding="utf-8"
        )
    )
    user = data["items"][0]["media"]["user"]
    answer = {"users": [{"position": 0, "user": user}], "places": [], "status": "ok"}
    assert isinstance(user["pk"], int)
    assert parse_topsearch_user_id(answer, user["username"].upper()) == str(user["pk"])
    # the reels found with that id are the user's own
    page = parse_instagram_clips(data, "instagram:user:id:" + str(user["pk"]))
    assert page.items and {i["author"] for i in page.items} == {user["username"]}


def test_web_profile_info_id_and_id_targets() -> None:
    assert parse_profile_user_id({"data": {"user": {"id": "123", "username": "a"}}}) == "123"
    assert parse_profile_user_id({"data": {"user": None}, "status": "ok"}) is None
    assert parse_profile_user_id({"data": {"user": {"id": "abc"}}}) is None
    assert user_id_from_target("id:25025320") == "25025320"
    assert user_id_from_target("ID:7") == "7"
    assert user_id_from_target("id:nope") is None and is_id_target("id:nope")
    assert user_id_from_target("natgeo") is None and not is_id_target("natgeo")
    lst = Listing.parse("instagram:user:id:25025320")
    assert (lst.kind, lst.target, lst.key) == ("user", "id:25025320", "instagram:user:id:25025320")


# -- pacing, CSRF token, id cache --------------------------------------------------------------


def _spider_settings(download_delay: float) -> Settings:
    cfg = Config()
    cfg.platforms.instagram.download_delay = download_delay
    settings = Settings()
    settings.setmodule(project_settings, priority="project")
    settings.set("CHARWATCH_CONFIG_OBJ", cfg, priority="cmdline")
    InstagramSpider.update_settings(settings)
    return settings


def test_default_pacing_spaces_requests_6_to_12_seconds() -> None:
    settings = _spider_settings(Config().platforms.instagram.download_delay)
    slot = Slot(1, settings.getfloat("DOWNLOAD_DELAY"), settings.getfloat("DOWNLOAD_DELAY_JITTER"))
    random.seed(5)
    gaps = [slot.download_delay() for _ in range(5000)]
    assert 6.0 - 1e-9 <= min(gaps) < 6.2 and 11.8 < max(gaps) <= 12.0 + 1e-9
    assert 8.7 < sum(gaps) / len(gaps) < 9.3  # uniform over the range
    assert settings.getfloat("AUTOTHROTTLE_START_DELAY") >= 6.0
    assert paced_delay(3.0) == (4.5, pytest.approx(1 / 3))
    off = _spider_settings(0.0)  # the tests' configs: no delay at all
    assert (off.getfloat("DOWNLOAD_DELAY"), paced_delay(0.0)) == (0.0, (0.0, 0.0))


def test_csrf_tokens_are_fresh_32_alphanumerics() -> None:
    tokens = {new_csrf_token() for _ in range(50)}
    assert len(tokens) == 50 and all(ALNUM32.fullmatch(t) for t in tokens)


def test_user_id_cache_is_per_site_and_rewritten_whole(tmp_path: Path) -> None:
    cache = UserIdCache.in_data_dir(tmp_path)
    assert cache.path == tmp_path / "cache" / "instagram_user_ids.json"
    assert cache.get("https://www.instagram.com", "someone") is None
    cache.put("https://www.instagram.com", "SomeOne", "123", "topsearch")
    cache.put("http://127.0.0.1:8000", "someone", "999", "profile page")
    assert cache.get("https://www.instagram.com/", "someone") == "123"
    assert cache.get("http://127.0.0.1:8000", "SOMEONE") == "999"
    stored = json.loads(cache.path.read_text(encoding="utf-8"))
    assert stored["www.instagram.com"]["someone"]["via"] == "topsearch"
    cache.forget("https://www.instagram.com", "someone")
    assert cache.get("https://www.instagram.com", "someone") is None
    assert cache.get("http://127.0.0.1:8000", "someone") == "999"
    assert [p.name for p in cache.path.parent.iterdir()] == [cache.path.name]  # no temp files
    cache.path.write_text("{not json", encoding="utf-8")
    assert cache.get("http://127.0.0.1:8000", "someone") is None
    cache.put("http://127.0.0.1:8000", "other", "5", "web_profile_info")
    assert cache.get("http://127.0.0.1:8000", "other") == "5"


# -- the fixture platform ----------------------------------------------------------------------


def _fetch(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_fixture_csrf_claim_and_lookup_endpoints(fixture_server: Any) -> None:
    base, cat = fixture_server.base_url, fixture_server.catalog
    demo = cat.author("instagram", "demo_creator")
    form = f"target_user_id={demo.user_id}&page_size=12".encode()
    web = {"Content-Type": "application/x-www-form-urlencoded", "X-IG-App-ID": "936619743392459"}

    status, _, body = _fetch(f"{base}/api/v1/clips/user/", form, web)
    assert status == 403
    assert json.loads(body) == {"message": "CSRF token missing or incorrect", "status": "fail"}
    wrong = {**web, "Cookie": "csrftoken=" + "a" * 32, "X-CSRFToken": "b" * 32}
    assert _fetch(f"{base}/api/v1/clips/user/", form, wrong)[0] == 403
    good = {**web, "Cookie": "sessionid=s1; csrftoken=" + "a" * 32, "X-CSRFToken": "a" * 32}
    status, headers, body = _fetch(f"{base}/api/v1/clips/user/", form, good)
    assert status == 200 and len(json.loads(body)["items"]) == 12
    claim = headers["x-ig-set-www-claim"]
    assert claim.startswith("hmac.")
    assert _fetch(f"{base}/api/v1/clips/user/", form, {**good, "X-IG-WWW-Claim": claim})[0] == 200
    assert _fetch(f"{base}/api/v1/clips/user/", form, {**good, "X-IG-WWW-Claim": "0"})[0] == 200
    bad_claim = {**good, "X-IG-WWW-Claim": "hmac.forged"}
    assert _fetch(f"{base}/api/v1/clips/user/", form, bad_claim)[0] == 403

    status, headers, body = _fetch(f"{base}/demo_creator/")
    assert status == 200
    assert parse_profile_page_user_id(body) == demo.user_id
    assert ALNUM32.fullmatch(headers["Set-Cookie"].split(";")[0].split("=", 1)[1])
    assert _fetch(f"{base}/demo_creator/reels/")[0] == 200
    assert parse_profile_page_user_id(_fetch(f"{base}/{IG.TOPSEARCH_USER}/")[2]) is None
    assert _fetch(f"{base}/no.such.person/")[0] == 404

    found = json.loads(_fetch(f"{base}/web/search/topsearch/?query={IG.TOPSEARCH_USER}")[2])
    want = cat.author("instagram", IG.TOPSEARCH_USER).user_id
    assert parse_topsearch_user_id(found, IG.TOPSEARCH_USER) == want
    hidden = json.loads(_fetch(f"{base}/web/search/topsearch/?query={IG.PROFILE_INFO_USER}")[2])
    assert parse_topsearch_user_id(hidden, IG.PROFILE_INFO_USER) is None
    info = f"{base}/api/v1/users/web_profile_info/?username="
    assert _fetch(info + IG.PROFILE_INFO_429_USER)[0] == 429
    assert _fetch(info + IG.PROFILE_INFO_USER)[0] == 200


# -- crawls ------------------------------------------------------------------------------------


def _config(tmp: Path, base_url: str, **cookies: str) -> Config:
    cfg = load_config(write_config(tmp / "charwatch.toml", tmp / "data", base_url), environ={})
    cfg.platforms.instagram.cookies = {"sessionid": "test-session", **cookies}
    cfg.crawl.retry_times = 1
    cfg.platforms.instagram.cooldown_s = 0  # a blocked listing must not pause the others
    return cfg


def _crawl(cfg: Config, keys: list[str]) -> tuple[dict[str, CrawlRun], list[dict[str, Any]]]:
    """Crawl for real; the CrawlRun rows by key and the fixture's Instagram request log."""
    IG.REQUEST_LOG.clear()
    batch = run_crawl(cfg, [Listing.parse(k) for k in keys], max_items=100)
    log = list(IG.REQUEST_LOG)
    with Store(cfg.storage.database_url).session() as s:
        rows = list(s.scalars(select(CrawlRun).where(CrawlRun.batch == batch)))
        s.expunge_all()
    runs = {f"{r.platform}:{r.kind}:{r.target}": r for r in rows}
    assert len(runs) == len(keys), sorted(runs)
    return runs, log


def _lookups(log: list[dict[str, Any]], username: str) -> list[str]:
    """Which id lookups the crawl made for ``username``."""
    out = []
    for e in log:
        if e["method"] == "GET" and e["path"] == f"/{username}/":
            out.append("profile page")
        elif e["path"] == LOOKUP_PATHS[0] and e["query"].get("query") == username:
            out.append("topsearch")
        elif e["path"] == LOOKUP_PATHS[1] and e["query"].get("username") == username:
            out.append("web_profile_info")
    return out


def _clips_targets(log: list[dict[str, Any]]) -> set[str]:
    return {e["form"].get("target_user_id") for e in log if e["path"] == "/api/v1/clips/user/"}


def test_user_ids_resolve_by_fallback_then_come_from_the_cache(
    fixture_server: Any, tmp_path: Path
) -> None:
    cat = fixture_server.catalog
    uid = {h: a.user_id for (p, h), a in cat.authors.items() if p == "instagram"}
    size = {h: len(cat.listing("instagram", "user", h).video_ids) for h in uid}
    cfg = _config(tmp_path, fixture_server.base_url)
    users = ["demo_creator", IG.TOPSEARCH_USER, IG.PROFILE_INFO_USER, IG.PROFILE_INFO_429_USER]
    runs, log = _crawl(cfg, [f"instagram:user:{u}" for u in [*users, "no.such.person"]])

    for user in users[:3]:
        run = runs[f"instagram:user:{user}"]
        assert run.status == ListingStatus.OK, (user, run.message)
        assert run.items_seen == size[user], (user, run.items_seen)
    assert size["demo_creator"] > 12 and size[IG.TOPSEARCH_USER] > 0  # paging, non-empty
    assert _lookups(log, "demo_creator") == ["profile page"]
    assert _lookups(log, IG.TOPSEARCH_USER) == ["profile page", "topsearch"]
    assert _lookups(log, IG.PROFILE_INFO_USER) == ["profile page", "topsearch", "web_profile_info"]

    limited = runs[f"instagram:user:{IG.PROFILE_INFO_429_USER}"]
    assert limited.status == ListingStatus.BLOCKED, limited.message
    assert "web_profile_info: HTTP 429" in limited.message
    assert "topsearch: no user named" in limited.message and limited.debug_path
    missing = runs["instagram:user:no.such.person"]
    assert missing.status == ListingStatus.NOT_FOUND, missing.message
    assert _clips_targets(log) == {uid[u] for u in users[:3]}

    cache = UserIdCache.in_data_dir(cfg.data_dir)
    stored = json.loads(cache.path.read_text(encoding="utf-8"))
    host = fixture_server.base_url.split("://", 1)[1]
    assert {u: e["via"] for u, e in stored[host].items()} == {
        "demo_creator": "profile page",
        IG.TOPSEARCH_USER: "topsearch",
        IG.PROFILE_INFO_USER: "web_profile_info",
    }
    assert all(stored[host][u]["id"] == uid[u] for u in users[:3])

    # the next run: cached ids and an id: target need no lookup; a configured csrftoken is used
    token = "Zq" * 16
    cfg.platforms.instagram.cookies["csrftoken"] = token
    by_id = f"instagram:user:id:{uid[IG.PROFILE_INFO_429_USER]}"
    runs, log = _crawl(cfg, [*(f"instagram:user:{u}" for u in users[:3]), by_id])
    assert all(r.status == ListingStatus.OK for r in runs.values()), [
        (k, r.message) for k, r in runs.items()
    ]
    assert runs[by_id].items_seen == size[IG.PROFILE_INFO_429_USER] > 0
    assert runs["instagram:user:demo_creator"].items_seen == size["demo_creator"]
    assert {e["path"] for e in log} == {"/api/v1/clips/user/"}
    assert {(e["csrf_cookie"], e["csrf_header"], e["status"]) for e in log} == {(token, token, 200)}

    # a stale cached id is dropped and looked up again
    cache.put(fixture_server.base_url, "demo_creator", "1", "profile page")
    runs, log = _crawl(cfg, ["instagram:user:demo_creator"])
    run = runs["instagram:user:demo_creator"]
    assert run.status == ListingStatus.OK and run.items_seen == size["demo_creator"], run.message
    assert _lookups(log, "demo_creator") == ["profile page"]
    assert cache.get(fixture_server.base_url, "demo_creator") == uid["demo_creator"]


def test_crawls_send_csrf_and_follow_the_www_claim(fixture_server: Any, tmp_path: Path) -> None:
    cfg = _config(tmp_path, fixture_server.base_url)
    keys = ["instagram:hashtag:charwatchdemo", f"instagram:user:{INSTAGRAM_PLEASEWAIT_USER}"]
    runs, log = _crawl(cfg, keys)
    tag = runs["instagram:hashtag:charwatchdemo"]
    assert tag.status == ListingStatus.OK and tag.pages >= 2, tag.message
    assert tag.items_seen == len(fixture_server.catalog.demo_video_ids("instagram"))
    wait = runs[f"instagram:user:{INSTAGRAM_PLEASEWAIT_USER}"]
    assert wait.status == ListingStatus.BLOCKED and "Please wait" in wait.message

    posts = [e for e in log if e["method"] == "POST"]
    assert posts and all(e["status"] != 403 for e in log)
    for e in posts:
        assert e["app_id"] and e["csrf_header"] == e["csrf_cookie"]
        assert ALNUM32.fullmatch(e["csrf_cookie"])
    sections = [e for e in posts if e["path"].startswith("/api/v1/tags/")]
    claim = IG.issued_claim(_session_request("test-session"))
    assert len(sections) >= 2 and len({e["csrf_cookie"] for e in sections}) == 1
    assert [e["claim"] for e in sections] == ["0"] + [claim] * (len(sections) - 1)
    # the user listing got its claim from the profile page, before its first POST
    clips = [e for e in posts if e["path"] == "/api/v1/clips/user/"]
    assert clips and all(e["claim"] == claim for e in clips)
    assert {e["csrf_cookie"] for e in clips} != {e["csrf_cookie"] for e in sections}


def test_a_post_without_the_token_is_refused(fixture_server: Any) -> None:
    """Tag sections too check the token against the cookie."""
    base = fixture_server.base_url
    form = b"tab=recent&surface=grid&include_persistent=0"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-IG-App-ID": "936619743392459",
        "Cookie": "sessionid=test-session; csrftoken=" + new_csrf_token(),
        "X-CSRFToken": new_csrf_token(),
    }
    status, _, body = _fetch(f"{base}/api/v1/tags/charwatchdemo/sections/", form, headers)
    assert status == 403 and b"CSRF token missing or incorrect" in body
    headers["X-CSRFToken"] = headers["Cookie"].rsplit("=", 1)[1]
    assert _fetch(f"{base}/api/v1/tags/charwatchdemo/sections/", form, headers)[0] == 200


def _session_request(session: str) -> Request:
    return Request("GET", "/", {}, {}, {"sessionid": session}, b"", "")


def test_bad_id_target_is_an_error(fixture_server: Any, tmp_path: Path) -> None:
    cfg = _config(tmp_path, fixture_server.base_url)
    runs, log = _crawl(cfg, ["instagram:user:id:notanumber"])
    run = runs["instagram:user:id:notanumber"]
    assert run.status == ListingStatus.ERROR and "numeric user id" in run.message
    assert log == []
