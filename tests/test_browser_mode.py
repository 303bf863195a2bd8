"""Listings in ``browser`` fetch mode: real headless Chromium, real Scrapy, the fixture platform.

The fixture's signed-only tag and search answer item-list requests only when they carry the
signature that the fixture web app's script computes; plain HTTP gets an empty 200 body.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from crawler.browser import (
    ITEM_LIST_PATHS,
    BrowserError,
    BrowserPage,
    cookie_pairs,
    extra_headers,
    find_browser,
    proxy_settings,
)
from fixture_platform import catalog as C
from fixture_platform import webapp
from fixture_platform.pages import Request
from storage import ListingStatus
from tests.conftest import CHROMIUM, needs_chromium
from tests.test_spiders import Crawl, crawl, expected_ids, listing_ids, make_config

pytestmark = pytest.mark.timeout(180)

MARK_VAR = "BROWSER_MODE_TEST_MARK"  # inherited by the browser processes the crawl starts
SIGNED_TAG = f"tiktok:hashtag:{C.TIKTOK_SIGNED_TAG}"
SIGNED_SEARCH = f"tiktok:search:{C.TIKTOK_SIGNED_SEARCH}"


def marked_processes(mark: str) -> list[int]:
    """Live processes whose environment carries ``MARK_VAR=mark``."""
    needle = f"{MARK_VAR}={mark}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(proc.name))
    return found


def browser_config(tmp: Path, base_url: str, **crawl_opts: Any) -> Any:
    cfg = make_config(tmp, base_url, **crawl_opts)
    cfg.platforms.tiktok.fetch = {"hashtag": "browser", "search": "browser", "user": "http"}
    cfg.platforms.tiktok.cooldown_s = 0
    return cfg


@pytest.fixture(scope="module")
def browser_crawl(
    fixture_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Crawl, dict[str, int]]:
    """One browser-mode crawl of the signed tag, the demo tag and a missing tag."""
    tmp = tmp_path_factory.mktemp("crawl-browser")
    cfg = browser_config(tmp, fixture_server.base_url)
    mark = secrets.token_hex(8)
    before = {
        path: fixture_server.request_count(path)
        for path in ("/webapp/app.js", "/api/challenge/item_list/")
    }
    os.environ[MARK_VAR] = mark
    try:
        result = crawl(
            cfg, [SIGNED_TAG, "tiktok:hashtag:charwatchdemo", "tiktok:hashtag:nosuchtag"]
        )
    finally:
        del os.environ[MARK_VAR]
    counts = {path: fixture_server.request_count(path) - n for path, n in before.items()}
    counts["leftover_processes"] = len(marked_processes(mark))
    return result, counts


# --------------------------------------------------------------------- the web app (no browser)


def fixture_request(path: str, query: dict[str, str]) -> Request:
    return Request("GET", path, query, {}, {}, b"", "http://127.0.0.1:1")


def test_fixture_item_lists_need_the_signature_for_signed_only_listings() -> None:
    query = {"challengeID": "1", "count": "30", "cursor": "0", "aid": "1988"}
    unsigned = fixture_request("/api/challenge/item_list/", query)
    refused = webapp.refuse_unsigned(unsigned, "tag", C.TIKTOK_SIGNED_TAG)
    assert refused is not None and refused.status == 200 and refused.body == b""
    assert webapp.refuse_unsigned(unsigned, "tag", C.DEMO_TAG) is None  # others stay open
    assert webapp.refuse_unsigned(unsigned, "search", " Signed  ONLY ") is not None
    signed = fixture_request(
        "/api/challenge/item_list/", {**query, webapp.SIGN_PARAM: webapp.signature(query)}
    )
    assert webapp.is_signed(signed)
    assert webapp.refuse_unsigned(signed, "tag", C.TIKTOK_SIGNED_TAG) is None
    forged = fixture_request("/api/challenge/item_list/", {**query, webapp.SIGN_PARAM: "0" * 8})
    assert webapp.refuse_unsigned(forged, "tag", C.TIKTOK_SIGNED_TAG) is not None
    # the signature covers every field: another cursor needs another signature
    moved = fixture_request(
        "/api/challenge/item_list/",
        {**query, "cursor": "4", webapp.SIGN_PARAM: webapp.signature(query)},
    )
    assert not webapp.is_signed(moved)


def test_fixture_pages_load_the_web_app(fixture_server: Any) -> None:
    import urllib.request

    base = fixture_server.base_url
    for path in (f"/tag/{C.TIKTOK_SIGNED_TAG}", "/search/video?q=signed+only"):
        with urllib.request.urlopen(base + path) as resp:
            html = resp.read().decode()
        assert webapp.SCRIPT_PATH in html and f'id="{webapp.CONFIG_ID}"' in html
    with urllib.request.urlopen(base + webapp.SCRIPT_PATH) as resp:
        assert resp.headers["Content-Type"].startswith("application/javascript")
        assert b"X-Bogus" not in resp.read()  # the parameter name comes from the config


# --------------------------------------------------------------------- helpers (no browser)


def test_find_browser_explains_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(BrowserError, match="apt-get install chromium"):
        find_browser(str(tmp_path / "no-such-chromium"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrowserError, match="no Chromium found on PATH"):
        find_browser()
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_browser() == str(fake)
    assert find_browser(str(fake)) == str(fake)


def test_proxy_and_cookie_helpers() -> None:
    assert proxy_settings("") is None
    assert proxy_settings("http://u%40x:p%3Aw@proxy.example:8080") == {
        "server": "http://proxy.example:8080",
        "username": "u@x",
        "password": "p:w",
    }
    assert proxy_settings("socks5://10.0.0.1:1080") == {"server": "socks5://10.0.0.1:1080"}
    assert extra_headers({"User-Agent": "x", "Sec-CH-UA": "y", "Accept-Language": "ja"}) == {
        "Accept-Language": "ja"
    }
    assert extra_headers({"user-agent": "x"}) is None
    assert cookie_pairs(b"sessionid=abc; tt_webid=1=2;bad; ") == [
        ("sessionid", "abc"),
        ("tt_webid", "1=2"),
    ]


# --------------------------------------------------------------------- real Chromium


@needs_chromium
def test_browser_page_captures_the_item_lists_and_closes(
    fixture_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page as the middleware drives it: user agent, cookies, scrolling, clean close."""
    mark = secrets.token_hex(8)
    monkeypatch.setenv(MARK_VAR, mark)
    base = fixture_server.base_url

    async def drive() -> tuple[list[dict[str, Any]], Any, str, list[int]]:
        page = BrowserPage(ITEM_LIST_PATHS["tiktok"], idle_s=0.5, scrolls=2)
        try:
            await page.start(
                CHROMIUM,
                user_agent="charwatch-browser-test/1.0",
                cookies=[("sessionid", "s3cret")],
                cookie_url=base + "/",
                timeout_s=30,
            )
            await page.goto(f"{base}/tag/{C.TIKTOK_SIGNED_TAG}")
            bodies = []
            first = await page.next_item_list(scroll=False, timeout_s=20)
            while first is not None:
                bodies.append(json.loads(first.body))
                first = await page.next_item_list(scroll=True, timeout_s=20)
            app_context = await page.evaluate(
                "JSON.parse(document.getElementById('__UNIVERSAL_DATA_FOR_REHYDRATION__')"
                ".textContent).__DEFAULT_SCOPE__['webapp.app-context'].userAgent"
            )
            cookie = await page.evaluate("document.cookie")
            running = marked_processes(mark)
        finally:
            await page.close()
        return bodies, app_context, cookie, running

    bodies, user_agent, cookie, running = asyncio.run(drive())
    assert running, "the browser did not run with this process's environment"
    assert [len(b["itemList"]) for b in bodies] == [4, 4, 2]  # scrolled twice past the first
    assert [b["hasMore"] for b in bodies] == [True, True, False]
    catalog_ids = expected_ids(fixture_server.catalog, SIGNED_TAG)
    assert [i["id"] for b in bodies for i in b["itemList"]] == catalog_ids
    assert user_agent == "charwatch-browser-test/1.0"
    assert "sessionid=s3cret" in cookie
    assert marked_processes(mark) == []


@needs_chromium
def test_browser_does_not_announce_itself_as_headless_or_automated(fixture_server: Any) -> None:
    async def drive() -> tuple[str, Any]:
        page = BrowserPage(ITEM_LIST_PATHS["tiktok"])
        try:
            await page.start(CHROMIUM, timeout_s=30)
            await page.goto(fixture_server.base_url + "/login")
            return await page.evaluate("[navigator.userAgent, navigator.webdriver]")
        finally:
            await page.close()

    user_agent, webdriver = asyncio.run(drive())
    assert "Chrome/" in user_agent and "Headless" not in user_agent
    assert not webdriver


@pytest.mark.slow  # a whole crawl through headless Chromium
@needs_chromium
def test_browser_mode_gets_every_item_of_the_signed_tag(
    browser_crawl: tuple[Crawl, dict[str, int]], fixture_server: Any
) -> None:
    result, counts = browser_crawl
    run = result.run(SIGNED_TAG)
    assert run.status == ListingStatus.OK, run.message
    want = expected_ids(fixture_server.catalog, SIGNED_TAG)
    assert sorted(listing_ids(result.store, SIGNED_TAG)) == sorted(want)
    assert (run.items_seen, run.items_new, run.pages) == (10, 10, 3)  # 4 + 4 + 2, scrolled
    assert "end of listing" in (run.message or "")
    assert counts["/webapp/app.js"] >= 2  # the pages' own script did the fetching
    assert counts["/api/challenge/item_list/"] >= 3 + 1


@pytest.mark.slow  # a whole crawl through headless Chromium
@needs_chromium
def test_browser_mode_matches_http_mode_on_an_open_tag(
    browser_crawl: tuple[Crawl, dict[str, int]], fixture_server: Any
) -> None:
    result, _ = browser_crawl
    key = "tiktok:hashtag:charwatchdemo"
    run = result.run(key)
    assert run.status == ListingStatus.OK, run.message
    assert sorted(listing_ids(result.store, key)) == sorted(
        expected_ids(fixture_server.catalog, key)
    )


@pytest.mark.slow  # a whole crawl through headless Chromium
@needs_chromium
def test_browser_mode_classifies_a_page_without_item_list(
    browser_crawl: tuple[Crawl, dict[str, int]],
) -> None:
    result, _ = browser_crawl
    run = result.run("tiktok:hashtag:nosuchtag")
    assert run.status == ListingStatus.NOT_FOUND, run.message
    assert "10205" in (run.message or "")
    assert run.debug_path and Path(run.debug_path).is_file()


@pytest.mark.slow  # a whole crawl through headless Chromium
@needs_chromium
def test_no_browser_process_is_left_after_the_crawl(
    browser_crawl: tuple[Crawl, dict[str, int]],
) -> None:
    _, counts = browser_crawl
    assert counts["leftover_processes"] == 0


@pytest.mark.slow  # a whole crawl through headless Chromium
@needs_chromium
def test_browser_search_with_max_items_cookies_and_user_agent(
    fixture_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """max_items ends the scrolling exactly as it ends HTTP paging; the platform's cookies and
    headers and the crawl's User-Agent reach the site through the browser."""
    from fixture_platform import pages_tiktok

    seen: list[tuple[str, Request]] = []

    def recording(name: str, handler: Any) -> Any:
        def wrapper(req: Request, cat: Any) -> Any:
            seen.append((name, req))
            return handler(req, cat)

        return wrapper

    monkeypatch.setattr(webapp, "search_page", recording("page", webapp.search_page))
    api = pages_tiktok.search_item_full
    monkeypatch.setattr(pages_tiktok, "search_item_full", recording("api", api))
    cfg = browser_config(tmp_path, fixture_server.base_url)
    cfg.crawl.user_agent = "charwatch-browser-test/2.0"
    cfg.platforms.tiktok.impersonate = ""  # impersonation leaves the User-Agent to the browser
    cfg.platforms.tiktok.cookies = {"sessionid": "browser-cookie"}
    cfg.platforms.tiktok.headers = {"X-Charwatch-Test": "yes"}
    result = crawl(cfg, [SIGNED_SEARCH], max_items=5)
    assert [name for name, _ in seen] == ["page", "api", "api"]
    for _, req in seen:
        assert req.headers.get("user-agent") == "charwatch-browser-test/2.0"
        assert req.cookies.get("sessionid") == "browser-cookie"
        assert req.headers.get("x-charwatch-test") == "yes"
    run = result.run(SIGNED_SEARCH)
    assert run.status == ListingStatus.OK, run.message
    assert (run.items_seen, run.pages) == (5, 2)
    assert "max_items (5)" in (run.message or "")
    want = expected_ids(fixture_server.catalog, SIGNED_SEARCH)[:5]
    assert sorted(listing_ids(result.store, SIGNED_SEARCH)) == sorted(want)


def test_http_mode_on_signed_only_listings_is_blocked(fixture_server: Any, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, fixture_server.base_url)
    cfg.platforms.tiktok.cooldown_s = 0
    result = crawl(cfg, [SIGNED_TAG, SIGNED_SEARCH])
    for key in (SIGNED_TAG, SIGNED_SEARCH):
        run = result.run(key)
        assert run.status == ListingStatus.BLOCKED, (key, run.message)
        assert "empty response body" in (run.message or ""), run.message
        assert run.items_seen == 0


def test_missing_chromium_is_a_clear_error(fixture_server: Any, tmp_path: Path) -> None:
    cfg = browser_config(tmp_path, fixture_server.base_url)
    cfg.crawl.browser_path = str(tmp_path / "no-such-chromium")
    result = crawl(cfg, [SIGNED_TAG])
    run = result.run(SIGNED_TAG)
    assert run.status == ListingStatus.ERROR, run.message
    assert "apt-get install chromium" in (run.message or "")
    assert "browser_path" in (run.message or "")
