"""A downloader middleware that takes every crawl request from the platform's rate budget.

Downloads and re-checks take their slots from the same budget (``storage.platform_state``),
so a crawl in one process and downloads in another never ask a platform faster together than
the platform's settings allow. Within one crawl Scrapy's own per-domain delay already spaces
requests; the budget adds what other processes are doing.
"""

from __future__ import annotations

import logging

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.task import deferLater

from crawler.pipelines import shared_store
from storage import platform_state

logger = logging.getLogger(__name__)

MAX_WAIT_S = 300.0


class PlatformBudgetMiddleware:
    """Waits, before each request of a spider, for a slot of its platform's rate budget."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PlatformBudgetMiddleware:
        return cls(crawler)

    async def process_request(self, request: Request) -> None:
        spider = self.crawler.spider
        platform = getattr(spider, "platform", "")
        pc = getattr(spider, "platform_cfg", None)
        cfg = getattr(spider, "cfg", None)
        if not platform or pc is None or cfg is None or pc.download_delay <= 0:
            return None
        store = shared_store(cfg)
        waited = 0.0
        while True:
            wait = platform_state.take_slot(store, platform, pc.download_delay)
            if wait <= 0 or waited >= MAX_WAIT_S:
                return None
            step = min(wait, MAX_WAIT_S - waited)
            logger.debug("%s: waiting %.1f s for the shared rate budget", platform, step)
            from twisted.internet import reactor  # the running one, installed by Scrapy

            await maybe_deferred_to_future(deferLater(reactor, step, lambda: None))
            waited += step
