"""Downloader middlewares: Retry-After-aware backoff, bounded retries of soft blocks (empty 200
bodies, ``{"type": "verify"}``), and per-platform cookies/headers/proxy/TLS impersonation."""

from __future__ import annotations

import email.utils
import json
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


def soft_block_reason(status: int, body: bytes | str) -> str | None:
    """Why a 200 answer is a soft block worth retrying (empty body, captcha JSON), or None."""
    if status != 200:
        return None
    raw = body.encode("utf-8") if isinstance(body, str) else body
    text = raw[:4096].strip()
    if not text:
        return "empty body"
    if text.startswith(b"{") and b"verify" in text:
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        if isinstance(data, dict) and data.get("type") == "verify":
            return 'captcha ({"type": "verify"})'
    return None


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        from twisted.internet import reactor  # the running one, installed by Scrapy

        await maybe_deferred_to_future(deferLater(reactor, seconds, lambda: None))


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's retry on ``RETRY_HTTP_CODES`` (429, 5xx...) with a wait before each retry.

    Requests with ``meta["retry_soft_blocks"]`` are also retried, up to
    ``CHARWATCH_SOFT_RETRY_TIMES`` times with a short exponential backoff, when a 200 answer
    is a soft block (:func:`soft_block_reason`); ``meta["soft_retry_times"]`` counts them.
    """

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.base = settings.getfloat("CHARWATCH_RETRY_BACKOFF_BASE", 0.5)
        self.cap = settings.getfloat("CHARWATCH_RETRY_BACKOFF_MAX", 30.0)
        self.after_cap = settings.getfloat("CHARWATCH_RETRY_AFTER_MAX", 120.0)
        self.soft_times = settings.getint("CHARWATCH_SOFT_RETRY_TIMES", 2)
        self.soft_base = settings.getfloat("CHARWATCH_SOFT_RETRY_BACKOFF", 0.5)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BackoffRetryMiddleware:
        o = cls(crawler.settings)
        o.crawler = crawler
        return o

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        if request.meta.get("dont_retry", False):
            return response
        if request.meta.get("retry_soft_blocks"):
            reason = soft_block_reason(response.status, response.body)
            if reason is not None:
                return await self._retry_soft(request, response, reason)
        if response.status not in self.retry_http_codes:
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
        await _sleep(delay)
        return self._retry(request, response_status_message(response.status)) or response

    async def _retry_soft(self, request: Request, response: Response, reason: str) -> Any:
        attempt = int(request.meta.get("soft_retry_times", 0)) + 1
        max_times = int(request.meta.get("max_soft_retries", self.soft_times))
        if attempt > max_times:
            return response
        delay = backoff_delay(
            attempt, None, base=self.soft_base, cap=self.cap, after_cap=self.after_cap
        )
        logger.info(
            "%s from %s: retry %d/%d in %.1fs", reason, request.url, attempt, max_times, delay
        )
        await _sleep(delay)
        retry = request.copy()
        retry.meta["soft_retry_times"] = attempt
        retry.dont_filter = True
        stats = getattr(getattr(self, "crawler", None), "stats", None)
        if stats is not None:
            stats.inc_value("charwatch/soft_block_retries")
        return retry


# headers that name the browser: with TLS impersonation they come from the impersonated
# browser (curl_cffi's defaults for the target), never from Scrapy or the config
BROWSER_IDENTITY_HEADERS = ("user-agent", "sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform")


class PlatformRequestMiddleware:
    """Applies the spider's platform settings to every request it makes.

    Cookies (the spider's ``default_cookies``, then ``platforms.<p>.cookies``), extra headers
    (``platforms.<p>.headers``; request headers already set win) and the proxy
    (``platforms.<p>.proxy``) come from the charwatch config held by the spider.

    With ``platforms.<p>.impersonate`` (a curl_cffi target such as ``chrome``) the request is
    marked for scrapy-impersonate's download handler (``meta["impersonate"]``), so it leaves
    with that browser's TLS and HTTP/2 fingerprint. The User-Agent and ``sec-ch-ua*`` client
    hints are then left to the target's own defaults, so they always match the fingerprint:
    any set by Scrapy or the config are dropped. Cookies travel in the ``Cookie`` header that
    Scrapy's cookie middleware writes (not a second time through curl_cffi), and the
    download timeout and proxy apply as for plain requests.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.cookies_enabled = crawler.settings.getbool("COOKIES_ENABLED", True)
        self._warned = False

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
        target = request.meta.get("impersonate", pc.impersonate or None)
        for name, value in (pc.headers or {}).items():
            if target and name.lower() in BROWSER_IDENTITY_HEADERS:
                if not self._warned:
                    logger.warning(
                        "platforms.%s.headers: %s ignored, the impersonated browser (%s) "
                        "sends its own",
                        getattr(spider, "platform", "?"),
                        name,
                        target,
                    )
                    self._warned = True
                continue
            if name not in request.headers:
                request.headers[name] = value
        if pc.proxy and "proxy" not in request.meta:
            request.meta["proxy"] = pc.proxy
        if target:
            self._impersonate(request, str(target))
        return None

    def _impersonate(self, request: Request, target: str) -> None:
        request.meta["impersonate"] = target
        for name in BROWSER_IDENTITY_HEADERS:
            request.headers.pop(name, None)
        args = dict(request.meta.get("impersonate_args") or {})
        if self.cookies_enabled:
            args.setdefault("cookies", {})  # already in the Cookie header
        timeout = request.meta.get("download_timeout")
        if timeout:
            args.setdefault("timeout", float(timeout))
        request.meta["impersonate_args"] = args
