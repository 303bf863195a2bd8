"""Item pipeline: upsert every VideoItem into the store and count it on the listing's run."""

from __future__ import annotations

import logging
import threading
from typing import Any

from scrapy.crawler import Crawler
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from charwatch.config import Config
from crawler.settings import get_config
from storage import CrawlRun, Store, Video, VideoState, utcnow
from storage.video_fields import KEPT_FIRST, MERGED, REFRESHED

logger = logging.getLogger(__name__)

_STORES: dict[str, Store] = {}
_STORES_LOCK = threading.Lock()

_UPDATABLE = (
    "url",
    "caption",
    "posted_at",
    "view_count",
    "like_count",
    "duration_s",
    "thumbnail_url",
    "ai_label",
    "raw",
)


def shared_store(cfg: Config) -> Store:
    """One migrated :class:`Store` per database URL for the whole crawl process."""
    url = cfg.storage.database_url
    with _STORES_LOCK:
        store = _STORES.get(url)
        if store is None:
            cfg.data_dir.mkdir(parents=True, exist_ok=True)
            store = _STORES[url] = Store(url)
        return store


def upsert_video(session: Session, item: dict[str, Any]) -> tuple[Video, bool]:
    """Insert or refresh one video by (platform, platform_id); returns (row, is_new).

    New rows start in state ``discovered``. A known row gets fresh metadata and
    ``last_seen``; its ``first_seen``, ``state``, first ``listing`` and author are kept.
    """
    now = utcnow()
    q = select(Video).where(
        Video.platform == item["platform"], Video.platform_id == item["platform_id"]
    )
    row = session.scalar(q)
    if row is None:
        row = Video(
            platform=item["platform"],
            platform_id=item["platform_id"],
            url=item["url"],
            author=item.get("author"),
            caption=item.get("caption"),
            hashtags=list(item.get("hashtags") or []),
            posted_at=item.get("posted_at"),
            view_count=item.get("view_count"),
            like_count=item.get("like_count"),
            duration_s=item.get("duration_s"),
            thumbnail_url=item.get("thumbnail_url"),
            ai_label=item.get("ai_label"),
            listing=item.get("listing"),
            raw=item.get("raw"),
            first_seen=now,
            last_seen=now,
            state=VideoState.DISCOVERED,
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # inserted meanwhile by another process: refresh it instead
            row = session.scalar(q)
            if row is None:
                raise
        else:
            return row, True
    for key in REFRESHED:  # None values never erase stored ones
        value = item.get(key)
        if value is not None:
            setattr(row, key, value)
    for key in MERGED:
        if item.get(key):
            setattr(row, key, list(item[key]))
    for key in KEPT_FIRST:  # e.g. the first author form seen stays (handle vs. name)
        if not getattr(row, key) and item.get(key):
            setattr(row, key, item[key])
    row.last_seen = now
    return row, False


class StorePipeline:
    """Stores items and counts ``items_seen``/``items_new`` on the spider's ``CrawlRun``.

    After each item it calls ``spider.item_stored(item, is_new)`` so the spider can stop
    paging after ``crawl.stop_after_known`` consecutive known items.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.store: Store | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StorePipeline:
        return cls(crawler)

    def open_spider(self) -> None:
        self.store = shared_store(get_config(self.crawler.settings))

    def process_item(self, item: Any) -> Any:
        spider = self.crawler.spider
        assert self.store is not None
        data = dict(item)
        run_id = getattr(spider, "run_id", None)
        is_new = None
        try:
            with self.store.session() as s:
                _, is_new = upsert_video(s, data)
                if run_id is not None:
                    s.execute(
                        update(CrawlRun)
                        .where(CrawlRun.id == run_id)
                        .values(
                            items_seen=CrawlRun.items_seen + 1,
                            items_new=CrawlRun.items_new + (1 if is_new else 0),
                        )
                    )
        finally:
            hook = getattr(spider, "item_stored", None)
            if callable(hook):
                hook(data, is_new)
        return item
