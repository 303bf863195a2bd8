"""Listings through a real browser: headless Chromium loads the listing's page, and the crawler
reads the item-list JSON that the page's own script fetches.

Some listings (TikTok hashtags and searches) need request signatures that only the platform's
web app computes. A listing whose ``platforms.<p>.fetch`` mode is ``browser`` is crawled so:

* the spider (with the :class:`BrowserListing` mix-in) sends one request with
  ``meta["browser"] = "open"`` for the page URL, and one with ``"more"`` for each further page;
* :class:`BrowserMiddleware`, a downloader middleware, fulfils them with Playwright: ``open``
  launches Chromium and loads the page, ``more`` scrolls it. Each answers with the next
  captured item-list response (its URL, status, headers and JSON body), which the spider hands
  to the same parser as in HTTP mode, so items, dedup, ``max_items``, ``stop_after_known`` and
  the run accounting are identical. Paging stays driven by the pipeline: the page is scrolled
  only when the spider asks for the next page.
* a page that fetched no item list is answered with its HTML (for the spider to classify:
  not found, login wall, WAF page...); a scroll that fetched nothing more ends the listing.

Chromium is the configured ``crawl.browser_path`` or ``chromium`` (``chromium-browser``,
``google-chrome``) on ``PATH``; Playwright's own browser download is not needed. The platform's
cookies, extra headers, proxy and the crawl's User-Agent apply to the browser; every wait is
bounded by ``crawl.timeout_s``; the browser is closed when the spider closes, and on any error.
Playwright is imported only when a browser is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.http import HtmlResponse, Response, TextResponse
from scrapy.responsetypes import responsetypes
from scrapy.settings import BaseSettings

from crawler.parsers.tiktok import challenge_detail, parse_universal_data, user_detail
from crawler.status import Verdict, layout_changed, tiktok_status

if TYPE_CHECKING:
    from charwatch.config import Config, PlatformConfig

logger = logging.getLogger(__name__)

MIDDLEWARE_PATH = "crawler.browser.BrowserMiddleware"
MIDDLEWARE_ORDER = 950  # after the cookie, header, proxy and retry middlewares
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = (
    "install Chromium (Debian/Ubuntu: `apt-get install chromium`) or set [crawl] browser_path "
    "(CHARWATCH_CRAWL__BROWSER_PATH) to a Chromium or Chrome executable"
)

# the item-list endpoints each platform's web app fetches
ITEM_LIST_PATHS: dict[str, re.Pattern[str]] = {
    "tiktok": re.compile(
        r"/api/(?:challenge/item_list|search/item/full|search/general/full|post/item_list"
        r"|creator/item_list)/?$"
    ),
}

LAUNCH_ARGS = [
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--disable-blink-features=AutomationControlled",  # no navigator.webdriver
]
# resources a listing page does not need (saves bandwidth; the item lists are fetch/XHR)
SKIPPED_RESOURCES = frozenset({"image", "media", "font"})
# response headers that no longer describe the body Playwright hands over (already decoded)
DROPPED_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class BrowserError(Exception):
    """The browser could not be found, started or could not load the page."""


def find_browser(configured: str = "") -> str:
    """The Chromium executable: ``configured`` when given, else the first on ``PATH``."""
    if configured:
        path = Path(configured).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        raise BrowserError(f"no Chromium at browser_path {configured!r}: {INSTALL_HINT}")
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError(f"no Chromium found on PATH ({', '.join(BROWSER_NAMES)}): {INSTALL_HINT}")


def proxy_settings(proxy: str) -> dict[str, str] | None:
    """Playwright's proxy dict for a proxy URL (credentials split out), or None."""
    if not proxy:
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    server = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    out = {"server": server}
    if parts.username:
        out["username"] = unquote(parts.username)
        out["password"] = unquote(parts.password or "")
    return out


def extra_headers(headers: dict[str, str] | None) -> dict[str, str] | None:
    """The configured extra headers a browser may send: not the ones that make up its
    identity (User-Agent, client hints), which must match the browser, nor cookies."""
    out = {
        k: v
        for k, v in (headers or {}).items()
        if k.lower() not in ("user-agent", "cookie") and not k.lower().startswith("sec-ch-ua")
    }
    return out or None


def cookie_pairs(header: bytes | str | None) -> list[tuple[str, str]]:
    """``(name, value)`` pairs of a ``Cookie`` request header."""
    if not header:
        return []
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    out = []
    for part in text.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            out.append((name, value))
    return out


@dataclass
class Captured:
    """One item-list response the page fetched."""

    url: str
    status: int
    headers: dict[str, str]
    body: bytes


class BrowserPage:
    """One headless Chromium showing one listing page, collecting its item-list responses.

    ``idle_s``: how long the network must be quiet (no item list in flight) before a wait
    concludes that the page fetches nothing more; ``scrolls``: scroll attempts per page.
    """

    def __init__(self, item_list: re.Pattern[str], *, idle_s: float = 1.5, scrolls: int = 3):
        self.item_list = item_list
        self.idle_s = idle_s
        self.scrolls = scrolls
        self.captured: deque[Captured] = deque()
        self.item_lists_seen = 0
        self._in_flight: set[Any] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_activity = time.monotonic()
        self._playwright: Any = None
        self._browser: Any = None
        self._page: Any = None

    def _is_item_list(self, url: str) -> bool:
        return bool(self.item_list.search(urlsplit(url).path))

    async def start(
        self,
        executable: str,
        *,
        user_agent: str = "",
        headers: dict[str, str] | None = None,
        cookies: Sequence[tuple[str, str]] = (),
        cookie_url: str = "",
        proxy: str = "",
        timeout_s: float = 30.0,
    ) -> None:
        """Launch Chromium and open an empty page set up for the platform."""
        try:
            from playwright.async_api import async_playwright
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise BrowserError(f"the playwright package is not installed ({exc})") from exc
        self._playwright = await asyncio.wait_for(async_playwright().start(), timeout_s)
        try:
            self._browser = await self._playwright.chromium.launch(
                executable_path=executable,
                headless=True,
                proxy=proxy_settings(proxy),
                timeout=timeout_s * 1000,
                args=LAUNCH_ARGS,
            )
        except Exception as exc:
            raise BrowserError(f"could not start {executable}: {_first_line(exc)}") from exc
        context = await self._browser.new_context(
            user_agent=user_agent or browser_user_agent(self._browser.version),
            extra_http_headers=headers or None,
            locale="en-US",
            viewport={"width": 1280, "height": 900},
            service_workers="block",
        )
        if cookies and cookie_url:
            await context.add_cookies(
                [{"name": n, "value": v, "url": cookie_url} for n, v in cookies]
            )
        context.set_default_timeout(timeout_s * 1000)
        await context.route("**/*", self._route)
        page = await context.new_page()
        page.on("request", self._on_request)
        page.on("response", self._on_response)
        page.on("requestfailed", self._on_request_failed)
        page.on("requestfinished", lambda _r: self._touch())
        self._page = page

    async def _route(self, route: Any) -> None:
        if route.request.resource_type in SKIPPED_RESOURCES:
            await route.abort()
        else:
            await route.continue_()

    def _touch(self) -> None:
        self._last_activity = time.monotonic()

    def _on_request(self, request: Any) -> None:
        self._touch()
        if self._is_item_list(request.url):
            self._in_flight.add(request)

    def _on_request_failed(self, request: Any) -> None:
        self._touch()
        self._in_flight.discard(request)

    def _on_response(self, response: Any) -> None:
        self._touch()
        if response.request in self._in_flight:
            task = asyncio.ensure_future(self._capture(response))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _capture(self, response: Any) -> None:
        try:
            body = await response.body()
            headers = await response.all_headers()
        except Exception as exc:  # the page navigated away or closed meanwhile
            logger.debug("could not read %s: %s", response.url, _first_line(exc))
        else:
            self.item_lists_seen += 1
            self.captured.append(Captured(response.url, response.status, headers, body))
        finally:
            self._in_flight.discard(response.request)
            self._touch()

    async def goto(self, url: str) -> tuple[int, str]:
        """Load ``url``; returns (status of the document, final URL)."""
        try:
            response = await self._page.goto(url, wait_until="domcontentloaded")
        except Exception as exc:
            raise BrowserError(f"could not load {url}: {_first_line(exc)}") from exc
        self._touch()
        return (response.status if response is not None else 200), self._page.url

    async def content(self) -> str:
        """The page's current HTML."""
        return str(await self._page.content())

    async def evaluate(self, expression: str) -> Any:
        """The value of a JS expression in the page."""
        return await self._page.evaluate(expression)

    async def _scroll(self) -> None:
        """Scroll up a little, then to the end (a scroll event even when already at the end)."""
        with contextlib.suppress(Exception):
            await self._page.mouse.move(640, 450)
            await self._page.evaluate("window.scrollBy(0, -300)")
            await asyncio.sleep(0.05)
            await self._page.mouse.wheel(0, 600)
            await self._page.evaluate("window.scrollTo(0, document.scrollingElement.scrollHeight)")
        self._touch()

    async def next_item_list(self, *, scroll: bool, timeout_s: float) -> Captured | None:
        """The next captured item list: one already waiting, else one the page fetches (after
        scrolling when ``scroll``); None when the page stays quiet or ``timeout_s`` passes."""
        if self.captured:
            return self.captured.popleft()
        deadline = time.monotonic() + timeout_s
        tries = self.scrolls if scroll else 0
        if scroll:
            await self._scroll()
            tries -= 1
        while True:
            if self.captured:
                return self.captured.popleft()
            now = time.monotonic()
            if now >= deadline or self._page is None:  # timed out, or closed meanwhile
                return None
            if not self._in_flight and now - self._last_activity >= self.idle_s:
                if tries <= 0:
                    return None
                await self._scroll()
                tries -= 1
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        """Close the browser and stop Playwright (safe to call more than once)."""
        for task in list(self._tasks):
            task.cancel()
        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = self._page = None
        if browser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(browser.close(), 15)
        if playwright is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(playwright.stop(), 15)


def browser_user_agent(version: str) -> str:
    """The User-Agent desktop Chrome of ``version`` sends on Linux (headless Chromium's own
    says ``HeadlessChrome``, which sites treat as a bot)."""
    major = (version or "").split(".")[0] or "131"
    return (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{major}.0.0.0 Safari/537.36"
    )


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", "") or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class BrowserMiddleware:
    """Fulfils requests with ``meta["browser"]`` (``open`` or ``more``) in headless Chromium.

    Sets ``meta["browser_result"]`` on the request: ``item_list`` (the response is a captured
    item list), ``page`` (the page's HTML; it fetched no item list) or ``end`` (scrolling
    fetched nothing more). Errors raise :class:`BrowserError` to the request's errback.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.page: BrowserPage | None = None
        settings = crawler.settings
        self.timeout_s = max(1.0, settings.getfloat("DOWNLOAD_TIMEOUT", 30.0))
        self.idle_s = settings.getfloat("CHARWATCH_BROWSER_IDLE_S", 1.5)
        self.scrolls = settings.getint("CHARWATCH_BROWSER_SCROLLS", 3)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BrowserMiddleware:
        mw = cls(crawler)
        crawler.signals.connect(mw.spider_closed, signal=signals.spider_closed)
        return mw

    async def spider_closed(self, spider: Any = None, reason: str = "") -> None:
        await self.close()

    async def close(self) -> None:
        page, self.page = self.page, None
        if page is not None:
            await page.close()
            logger.info("browser closed")

    async def process_request(self, request: Request) -> Response | None:
        action = request.meta.get("browser")
        if not action:
            return None
        from scrapy.utils.reactor import is_asyncio_reactor_installed

        if not is_asyncio_reactor_installed():
            raise BrowserError("browser fetch mode needs Scrapy's asyncio reactor")
        try:
            if action == "open":
                return await self._open(request)
            return await self._more(request)
        except BrowserError:
            await self.close()
            raise
        except Exception as exc:
            await self.close()
            raise BrowserError(f"browser: {_first_line(exc)}") from exc

    def _platform(self) -> tuple[str, Config | None, PlatformConfig | None]:
        spider = self.crawler.spider
        return (
            str(getattr(spider, "platform", "")),
            getattr(spider, "cfg", None),
            getattr(spider, "platform_cfg", None),
        )

    async def _open(self, request: Request) -> Response:
        await self.close()
        platform, cfg, pc = self._platform()
        pattern = ITEM_LIST_PATHS.get(platform)
        if pattern is None:
            raise BrowserError(f"no browser fetch mode for {platform or 'this spider'}")
        configured = str(getattr(cfg.crawl, "browser_path", "") or "") if cfg else ""
        executable = find_browser(configured)
        parts = urlsplit(request.url)
        ua = request.headers.get(b"User-Agent")
        page = BrowserPage(pattern, idle_s=self.idle_s, scrolls=self.scrolls)
        self.page = page
        await page.start(
            executable,
            user_agent=ua.decode("latin-1") if ua else "",
            headers=extra_headers(pc.headers if pc else None),
            cookies=cookie_pairs(request.headers.get(b"Cookie")),
            cookie_url=f"{parts.scheme}://{parts.netloc}/",
            proxy=str(request.meta.get("proxy") or (pc.proxy if pc else "") or ""),
            timeout_s=self.timeout_s,
        )
        logger.info("browser %s: loading %s", executable, request.url)
        status, final_url = await page.goto(request.url)
        captured = await page.next_item_list(scroll=False, timeout_s=self.timeout_s)
        if captured is not None:
            return self._captured_response(request, captured)
        request.meta["browser_result"] = "page"
        if final_url != request.url:
            request.meta["redirect_urls"] = [request.url, final_url]
        body = (await page.content()).encode("utf-8")
        return HtmlResponse(final_url, status=status, body=body, encoding="utf-8", request=request)

    async def _more(self, request: Request) -> Response:
        page = self.page
        if page is None:
            raise BrowserError("no browser page is open to scroll")
        captured = await page.next_item_list(scroll=True, timeout_s=self.timeout_s)
        if captured is not None:
            return self._captured_response(request, captured)
        request.meta["browser_result"] = "end"
        body = b'{"browser": "the page fetched no more item lists"}'
        headers = {"Content-Type": "application/json"}
        return TextResponse(request.url, body=body, headers=headers, request=request)

    @staticmethod
    def _captured_response(request: Request, captured: Captured) -> Response:
        request.meta["browser_result"] = "item_list"
        headers = {k: v for k, v in captured.headers.items() if k.lower() not in DROPPED_HEADERS}
        cls = responsetypes.from_args(headers=headers, url=captured.url, body=captured.body)
        return cls(
            captured.url,
            status=captured.status,
            headers=headers,
            body=captured.body,
            request=request,
        )


def browser_page_verdict(platform: str, kind: str, target: str, html: str) -> Verdict:
    """Why a listing page fetched no item list, from the page's embedded data."""
    if platform == "tiktok":
        scope = parse_universal_data(html)
        if scope is not None:
            if kind == "user":
                code, _, _ = user_detail(scope)
                what = f"@{target}"
            else:
                code, _, _ = challenge_detail(scope)
                what = f"#{target}" if kind == "hashtag" else target
            verdict = tiktok_status(code, what=what)
            if verdict is not None:
                return verdict
    return layout_changed(
        "the page fetched no known item list in the browser (endpoints the web app uses may "
        "have changed)"
    )


class BrowserListing:
    """Spider mix-in for listings in ``browser`` fetch mode (see the module docstring).

    The spider sets ``page_url`` and calls :meth:`browser_request` for the first page and
    ``browser_request(url, more=True)`` for each further page; responses go through
    :meth:`parse_browser` to the spider's ``parse_item_list``.
    """

    platform: str
    kind: str
    target: str
    platform_cfg: PlatformConfig
    verdict: Verdict | None
    stop_reason: str | None

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        super().update_settings(settings)  # type: ignore[misc]
        mws = settings["DOWNLOADER_MIDDLEWARES"]
        if isinstance(mws, BaseSettings):
            mws.set(MIDDLEWARE_PATH, MIDDLEWARE_ORDER, priority="spider")
        else:
            merged = {
                **settings.getdict("DOWNLOADER_MIDDLEWARES"),
                MIDDLEWARE_PATH: MIDDLEWARE_ORDER,
            }
            settings.set("DOWNLOADER_MIDDLEWARES", merged, priority="spider")

    def browser_mode(self) -> bool:
        """True when this listing is fetched through the browser."""
        return self.platform_cfg.fetch_mode(self.kind) == "browser"

    def browser_request(self, url: str, *, more: bool = False) -> Request:
        meta = {"browser": "more" if more else "open"}
        return self.request(  # type: ignore[attr-defined,no-any-return]
            url, self.parse_browser, meta=meta, dont_filter=True
        )

    def parse_browser(self, response: Response) -> Iterator[Any]:
        result = response.meta.get("browser_result")
        if result == "item_list":
            yield from self.parse_item_list(response)  # type: ignore[attr-defined]
            return
        if result == "end":
            if self.verdict is None:
                self.stop_reason = "the page loaded no more items when scrolled"
            return
        if not self.check(response):  # type: ignore[attr-defined]
            return
        verdict = browser_page_verdict(self.platform, self.kind, self.target, response.text)
        self.fail(verdict, response)  # type: ignore[attr-defined]
