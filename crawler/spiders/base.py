"""The listing spider base: arguments, the CrawlRun row, failure handling and paging control.

Each platform spider only builds requests and hands response bodies to the pure parsers.
Paging is driven by the pipeline: the next page of a listing is requested only after every
item of the current page has been stored, so the incremental stop (``crawl.stop_after_known``
consecutive already-known items) and ``max_items`` are exact.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import scrapy
from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.http import Response
from sqlalchemy import update
from twisted.python.failure import Failure

from charwatch.config import Config, PlatformConfig
from crawler.items import video_item
from crawler.listing import SUPPORTED, Listing
from crawler.parsers.common import Page
from crawler.pipelines import shared_store
from crawler.settings import config_settings, get_config
from crawler.status import Verdict, classify_response, error, save_debug
from storage import CrawlRun, ListingStatus, Store, utcnow

logger = logging.getLogger(__name__)

ERROR_STATUSES = list(range(400, 600))


@dataclass
class _PendingPage:
    remaining: int
    next_request: Request | None


class ListingSpider(scrapy.Spider):
    """Crawls one listing (hashtag, user, search or rss) of one platform.

    Spider arguments: exactly one of ``hashtag``, ``user``, ``search``, ``rss``; optional
    ``max_items`` (default ``crawl.max_items``) and ``batch`` (the CrawlRun batch id).
    """

    platform: ClassVar[str] = ""
    default_cookies: ClassVar[dict[str, str]] = {}

    cfg: Config
    platform_cfg: PlatformConfig
    store: Store

    @classmethod
    def update_settings(cls, settings: Any) -> None:
        super().update_settings(settings)
        cfg = get_config(settings)
        settings.setdict(config_settings(cfg, cls.platform), priority="spider")

    def __init__(
        self,
        hashtag: str | None = None,
        user: str | None = None,
        search: str | None = None,
        rss: str | None = None,
        max_items: int | str | None = None,
        batch: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        given = [
            (k, v)
            for k, v in (("hashtag", hashtag), ("user", user), ("search", search), ("rss", rss))
            if v
        ]
        if len(given) != 1:
            raise ValueError(f"{self.name}: give exactly one of hashtag=, user=, search=, rss=")
        self.listing = Listing(self.platform, given[0][0], str(given[0][1]))
        self.kind = self.listing.kind
        self.target = self.listing.target
        self.max_items_arg = int(max_items) if max_items not in (None, "", "0", 0) else None
        self.batch = batch or ""
        self.run_id: int | None = None
        self.verdict: Verdict | None = None
        self.debug_path: str | None = None
        self.stop_reason: str | None = None
        self.pages = 0
        self.yielded = 0
        self.stored = 0
        self.new = 0
        self.consecutive_known = 0
        self.seen_ids: set[str] = set()
        self.seen_tokens: set[str] = set()
        self._pending: dict[int, _PendingPage] = {}
        self._item_page: dict[str, int] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> ListingSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.cfg = get_config(crawler.settings)
        spider.platform_cfg = spider.cfg.platforms.get(cls.platform)
        spider.base_url = spider.platform_cfg.base_url.rstrip("/")
        spider.store = shared_store(spider.cfg)
        spider.max_items = spider.max_items_arg or spider.cfg.crawl.max_items
        crawler.signals.connect(spider._on_closed, signal=signals.spider_closed)
        crawler.signals.connect(spider._on_error, signal=signals.spider_error)
        crawler.signals.connect(spider._on_item_dropped, signal=signals.item_dropped)
        crawler.signals.connect(spider._on_item_error, signal=signals.item_error)
        spider._open_run()
        return spider

    # -- the CrawlRun row -------------------------------------------------------------

    @property
    def listing_key(self) -> str:
        return self.listing.key

    def _open_run(self) -> None:
        with self.store.session() as s:
            run = CrawlRun(
                batch=self.batch,
                platform=self.platform,
                kind=self.kind,
                target=self.target,
                status=ListingStatus.RUNNING,
                started_at=utcnow(),
            )
            s.add(run)
            s.flush()
            self.run_id = run.id

    def _on_closed(self, spider: scrapy.Spider, reason: str) -> None:
        if spider is not self or self.run_id is None:
            return
        verdict = self.verdict
        if verdict is None and reason != "finished":
            verdict = error(f"crawl ended early ({reason})")
        if verdict is not None:
            status, message = verdict.status, verdict.reason
        else:
            status = ListingStatus.OK
            message = self.summary()
        if verdict is not None and self.pages:
            message += f" (after {self.pages} page(s), {self.stored} item(s))"
        with self.store.session() as s:
            s.execute(
                update(CrawlRun)
                .where(CrawlRun.id == self.run_id)
                .values(
                    status=status,
                    message=message[:2000],
                    pages=self.pages,
                    debug_path=self.debug_path,
                    finished_at=utcnow(),
                )
            )
        logger.info("%s: %s - %s", self.listing_key, status, message)

    def summary(self) -> str:
        reason = self.stop_reason or "end of listing"
        return f"{self.stored} item(s), {self.new} new, {self.pages} page(s); stopped: {reason}"

    # -- failures ---------------------------------------------------------------------

    def fail(self, verdict: Verdict, response: Response | None = None) -> None:
        """Record the listing's failure (the first one wins) and keep the body as evidence."""
        if self.verdict is not None:
            return
        self.verdict = verdict
        if response is not None:
            try:
                self.debug_path = save_debug(
                    self.cfg.data_dir,
                    f"{self.platform}_{self.kind}_{self.target}",
                    response.body,
                    status=response.status,
                )
            except OSError as exc:
                logger.warning("could not save the debug body: %s", exc)
        logger.warning(
            "%s: %s - %s%s",
            self.listing_key,
            verdict.status,
            verdict.reason,
            f" (body saved to {self.debug_path})" if self.debug_path else "",
        )

    def check(self, response: Response) -> bool:
        """True when a response is usable; otherwise record why and return False."""
        if self.verdict is not None:
            return False
        ctype = response.headers.get(b"Content-Type", b"").decode("latin-1")
        verdict = classify_response(
            status=response.status,
            url=response.url,
            body=response.body,
            redirect_urls=response.meta.get("redirect_urls"),
            content_type=ctype,
        )
        if verdict is not None:
            self.fail(verdict, response)
            return False
        return True

    def on_request_error(self, failure: Failure) -> None:
        response = getattr(failure.value, "response", None)
        if isinstance(response, Response) and not self.check(response):
            return
        self.fail(error(f"request failed: {failure.getErrorMessage() or failure.type.__name__}"))

    def _on_error(self, failure: Failure, response: Response, spider: scrapy.Spider) -> None:
        if spider is self:
            self.fail(error(f"{failure.type.__name__}: {failure.getErrorMessage()}"), response)

    # -- requests ---------------------------------------------------------------------

    def request(self, url: str, callback: Any, **kwargs: Any) -> Request:
        """A request whose HTTP errors reach the callback (to be classified, not dropped)."""
        meta = {"handle_httpstatus_list": ERROR_STATUSES, **kwargs.pop("meta", {})}
        cls = kwargs.pop("request_cls", Request)
        return cls(url, callback=callback, errback=self.on_request_error, meta=meta, **kwargs)

    async def start(self) -> AsyncIterator[Any]:
        if self.kind not in SUPPORTED[self.platform]:
            self.fail(error(self.unsupported_message()))
            return
        try:
            requests = self.first_requests()
        except ValueError as exc:  # e.g. a base_url without a scheme
            self.fail(error(f"cannot build the first request: {exc}"))
            return
        for req in requests:
            yield req

    def unsupported_message(self) -> str:
        kinds = ", ".join(SUPPORTED[self.platform])
        return f"{self.platform} {self.kind} listings are not supported (supported: {kinds})"

    def first_requests(self) -> list[Request]:
        raise NotImplementedError

    # -- items and paging -------------------------------------------------------------

    def emit(self, page: Page, next_request: Request | None) -> Iterator[Any]:
        """Yield a page's new items; the next page is requested once they are all stored."""
        self.pages += 1
        out = []
        for item in page.items:
            if self.yielded >= self.max_items:
                self.stop_reason = f"max_items ({self.max_items}) reached"
                next_request = None
                break
            pid = item["platform_id"]
            if pid in self.seen_ids:
                continue
            self.seen_ids.add(pid)
            self.yielded += 1
            out.append(video_item(item))
        if next_request is not None and self.pages >= self.cfg.crawl.max_pages:
            self.stop_reason = f"max_pages ({self.cfg.crawl.max_pages}) reached"
            next_request = None
        if not out:
            if next_request is not None and self.may_continue():
                yield next_request
            return
        self._pending[self.pages] = _PendingPage(len(out), next_request)
        for item in out:
            self._item_page[item["platform_id"]] = self.pages
        yield from out

    def item_stored(self, item: dict[str, Any], is_new: bool | None) -> None:
        """Called by the pipeline after each item (``is_new`` None: it could not be stored)."""
        if is_new is None:
            self.fail(error(f"could not store item {item.get('platform_id')}"))
        else:
            self.stored += 1
            self.new += int(is_new)
            self.consecutive_known = 0 if is_new else self.consecutive_known + 1
        self._item_done(item)

    def _on_item_dropped(self, item: Any, spider: scrapy.Spider, **_: Any) -> None:
        if spider is self:
            self._item_done(dict(item))

    def _on_item_error(self, item: Any, spider: scrapy.Spider, failure: Failure, **_: Any) -> None:
        if spider is self:
            self.fail(error(f"storing an item failed: {failure.getErrorMessage()}"))
            self._item_done(dict(item))

    def _item_done(self, item: dict[str, Any]) -> None:
        """Page accounting: once a page's items are all through, request the next page."""
        page_no = self._item_page.pop(str(item.get("platform_id")), None)
        pending = self._pending.get(page_no) if page_no is not None else None
        if pending is None:
            return
        pending.remaining -= 1
        if pending.remaining > 0:
            return
        del self._pending[page_no]
        if pending.next_request is not None and self.may_continue():
            self.crawler.engine.crawl(pending.next_request)

    def may_continue(self) -> bool:
        """Whether to fetch another page (sets ``stop_reason`` when not)."""
        if self.verdict is not None:
            return False
        if self.yielded >= self.max_items:
            self.stop_reason = f"max_items ({self.max_items}) reached"
            return False
        limit = self.cfg.crawl.stop_after_known
        if limit > 0 and self.consecutive_known >= limit:
            self.stop_reason = f"{self.consecutive_known} consecutive known items"
            return False
        return True

    def new_token(self, token: str | None) -> bool:
        """True for a paging token not seen before in this listing (loop guard)."""
        if not token:
            return False
        if token in self.seen_tokens:
            self.stop_reason = "the listing repeated a page token"
            return False
        self.seen_tokens.add(token)
        return True
