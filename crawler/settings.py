"""Scrapy settings for the charwatch crawler.

Static defaults live here. Values that come from the charwatch config (User-Agent, timeouts,
retries, AutoThrottle, and per-platform delay/concurrency) are applied by each spider's
``update_settings`` via :func:`config_settings`, from the config object that ``crawler.run``
injects as ``CHARWATCH_CONFIG_OBJ``, or, under Scrapy's own CLI (``scrapy crawl youtube -a
hashtag=NAME`` from the repo root), from :func:`charwatch.config.load_config`
(``$CHARWATCH_CONFIG`` or defaults, plus ``CHARWATCH_*`` environment overrides).

A platform with ``impersonate`` set (a curl_cffi browser target, e.g. ``chrome``) is fetched
through scrapy-impersonate with that browser's TLS fingerprint; its User-Agent, ``Accept*`` and
``sec-ch-ua*`` headers are then the impersonated browser's own (``crawl.user_agent`` is not
used for it), so headers and fingerprint always agree.

``ROBOTSTXT_OBEY`` is off: the listing endpoints crawled here (hashtag pages, item-list and
innertube APIs) are disallowed for generic bots in the platforms' robots.txt, so obeying it
would crawl nothing. Politeness comes from per-platform delays, low concurrency, AutoThrottle
and Retry-After-aware backoff instead; operators are responsible for the platforms' terms.
"""

from __future__ import annotations

from typing import Any

from charwatch.config import DEFAULT_USER_AGENT, Config, load_config

BOT_NAME = "charwatch"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

ROBOTSTXT_OBEY = False
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False  # no code-execution HTTP endpoint in crawl processes
LOG_LEVEL = "INFO"

USER_AGENT = DEFAULT_USER_AGENT
DEFAULT_REQUEST_HEADERS = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
}

COOKIES_ENABLED = True
CONCURRENT_REQUESTS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 2
DOWNLOAD_DELAY = 1.0
DOWNLOAD_DELAY_JITTER = 0.5  # each delay varies by +-50%
DOWNLOAD_TIMEOUT = 30

AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0

RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [429, 500, 502, 503, 504, 522, 524, 408]
# Backoff for retried responses: Retry-After when the server sends one (capped), else
# exponential from the base.
CHARWATCH_RETRY_BACKOFF_BASE = 0.5
CHARWATCH_RETRY_BACKOFF_MAX = 30.0
CHARWATCH_RETRY_AFTER_MAX = 120.0

DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "crawler.middlewares.BackoffRetryMiddleware": 550,
    "crawler.middlewares.PlatformRequestMiddleware": 560,
    "crawler.ratebudget.PlatformBudgetMiddleware": 570,
}
ITEM_PIPELINES = {"crawler.pipelines.StorePipeline": 300}

FEED_EXPORT_ENCODING = "utf-8"

# TLS impersonation: scrapy-impersonate's handler sends requests that carry
# ``meta["impersonate"]`` (set from ``platforms.<p>.impersonate``) through curl_cffi with that
# browser's fingerprint, and all others through Scrapy's own HTTP/1.1 handler. It needs the
# asyncio reactor.
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
DOWNLOAD_HANDLERS = {
    "http": "scrapy_impersonate.ImpersonateDownloadHandler",
    "https": "scrapy_impersonate.ImpersonateDownloadHandler",
}
# Soft blocks (a 200 with an empty body, ``{"type": "verify"}``) on requests that ask for it
# (``meta["retry_soft_blocks"]``) are retried this many times before the listing is blocked.
CHARWATCH_SOFT_RETRY_TIMES = 2
CHARWATCH_SOFT_RETRY_BACKOFF = 0.5

# set by crawler.run to the charwatch Config object; None: load_config()
CHARWATCH_CONFIG_OBJ = None


def get_config(settings: Any) -> Config:
    """The charwatch config for a crawl: the injected object, else ``load_config()``."""
    cfg = settings.get("CHARWATCH_CONFIG_OBJ") if settings is not None else None
    if isinstance(cfg, Config):
        return cfg
    return load_config()


def config_settings(cfg: Config, platform: str) -> dict[str, Any]:
    """Scrapy settings derived from the charwatch config for one platform's spider."""
    pc = cfg.platforms.get(platform)
    concurrency = max(1, int(pc.concurrency))
    delay = max(0.0, float(pc.download_delay))
    impersonate: dict[str, Any] = {}
    if pc.impersonate:
        # the impersonated browser's own User-Agent, Accept* and client hints are sent
        # (PlatformRequestMiddleware), and curl_cffi decodes the body itself
        impersonate = {
            "USER_AGENT": "",
            "DEFAULT_REQUEST_HEADERS": {},
            "COMPRESSION_ENABLED": False,
        }
    return {
        "USER_AGENT": cfg.crawl.user_agent or DEFAULT_USER_AGENT,
        "DOWNLOAD_TIMEOUT": float(cfg.crawl.timeout_s),
        "RETRY_TIMES": int(cfg.crawl.retry_times),
        "AUTOTHROTTLE_ENABLED": bool(cfg.crawl.autothrottle),
        "AUTOTHROTTLE_START_DELAY": max(delay, 0.5),
        "DOWNLOAD_DELAY": delay,
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "CONCURRENT_REQUESTS": max(concurrency, 1),
        "CHARWATCH_CONFIG_OBJ": cfg,
        **impersonate,
    }
