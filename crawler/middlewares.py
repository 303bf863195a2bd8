"""Downloader middlewares: Retry-After-aware backoff and per-platform cookies/headers/proxy."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from typing import Any

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.response import response_status_message
from twisted.internet.task import deferLater

logger = logging.getLogger(__name__)


def _offline_public_suffix_list() -> None:
    """Make Scrapy's cookie middleware use tldextract's bundled suffix list.

    By default tldextract downloads the Public Suffix List on first use; a crawl should
    contact nothing but the platform it crawls, so the bundled snapshot is used instead.
    """
    try:
        import scrapy.downloadermiddlewares.cookies as cookies_mw
        from tldextract import TLDExtract
    except ImportError:  # pragma: no cover
        return
    if hasattr(cookies_mw, "_split_domain"):
        cookies_mw._split_domain = TLDExtract(
            cache_dir=None, suffix_list_urls=(), include_psl_private_domains=True
        )


_offline_public_suffix_list()


def retry_after_seconds(value: bytes | str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(
    attempt: int, retry_after: float | None, *, base: float, cap: float, after_cap: float
) -> float:
    """The wait before retry number ``attempt`` (1-based).

    ``Retry-After`` wins when present (capped at ``after_cap``); otherwise exponential
    ``base * 2**(attempt-1)`` with +-20% jitter, capped at ``cap``.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), after_cap)
    delay = base * (2 ** max(attempt - 1, 0))
    delay *= random.uniform(0.8, 1.2)
    return min(delay, cap)


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's retry on ``RETRY_HTTP_CODES`` (429, 5xx...) with a wait before each retry."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.base = settings.getfloat("CHARWATCH_RETRY_BACKOFF_BASE", 0.5)
        self.cap = settings.getfloat("CHARWATCH_RETRY_BACKOFF_MAX", 30.0)
        self.after_cap = settings.getfloat("CHARWATCH_RETRY_AFTER_MAX", 120.0)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BackoffRetryMiddleware:
        o = cls(crawler.settings)
        o.crawler = crawler
        return o

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        attempt = int(request.meta.get("retry_times", 0)) + 1
        max_times = int(request.meta.get("max_retry_times", self.max_retry_times))
        if attempt > max_times:
            return self._retry(request, response_status_message(response.status)) or response
        delay = backoff_delay(
            attempt,
            retry_after_seconds(response.headers.get(b"Retry-After")),
            base=self.base,
            cap=self.cap,
            after_cap=self.after_cap,
        )
        logger.info(
            "HTTP %s from %s: retry %d/%d in %.1fs",
            response.status,
            request.url,
            attempt,
            max_times,
            delay,
        )
        if delay > 0:
            from twisted.internet import reactor  # the running one, installed by Scrapy

            await maybe_deferred_to_future(deferLater(reactor, delay, lambda: None))
        return self._retry(request, response_status_message(response.status)) or response


class PlatformRequestMiddleware:
    """Applies the spider's platform settings to every request it makes.

    Cookies (the spider's ``default_cookies``, then ``platforms.<p>.cookies``), extra headers
    (``platforms.<p>.headers``; request headers already set win) and the proxy
    (``platforms.<p>.proxy``) come from the charwatch config held by the spider.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PlatformRequestMiddleware:
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        spider = self.crawler.spider
        pc = getattr(spider, "platform_cfg", None)
        if pc is None:
            return None
        cookies = dict(getattr(spider, "default_cookies", {}) or {})
        cookies.update(pc.cookies or {})
        if cookies and isinstance(request.cookies, dict):
            for name, value in cookies.items():
                request.cookies.setdefault(name, value)
        for name, value in (pc.headers or {}).items():
            if name not in request.headers:
                request.headers[name] = value
        if pc.proxy and "proxy" not in request.meta:
            request.meta["proxy"] = pc.proxy
        return None
