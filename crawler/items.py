"""The one normalized item every spider yields, whatever the platform."""

from __future__ import annotations

from typing import Any

import scrapy

from crawler.parsers.common import ITEM_FIELDS


class VideoItem(scrapy.Item):
    """A listed video, normalized.

    Fields: ``platform``, ``platform_id``, ``url`` (canonical, built from the platform's
    configured base URL), ``author``, ``caption``, ``hashtags`` (list of str without ``#``),
    ``posted_at`` (aware UTC datetime or None), ``view_count``, ``like_count``,
    ``duration_s``, ``thumbnail_url``, ``ai_label`` (the platform's own AI-content label, or
    None), ``listing`` (``platform:kind:target``) and ``raw`` (the item's JSON, as evidence).
    """

    platform = scrapy.Field()
    platform_id = scrapy.Field()
    url = scrapy.Field()
    author = scrapy.Field()
    caption = scrapy.Field()
    hashtags = scrapy.Field()
    posted_at = scrapy.Field()
    view_count = scrapy.Field()
    like_count = scrapy.Field()
    duration_s = scrapy.Field()
    thumbnail_url = scrapy.Field()
    ai_label = scrapy.Field()
    listing = scrapy.Field()
    raw = scrapy.Field()


assert set(VideoItem.fields) == set(ITEM_FIELDS), "VideoItem and parsers.common.ITEM_FIELDS differ"


def video_item(data: dict[str, Any]) -> VideoItem:
    """A :class:`VideoItem` from a parser's item dict (unknown keys are an error)."""
    item = VideoItem()
    for key in ITEM_FIELDS:
        item[key] = data.get(key)
    extra = set(data) - set(ITEM_FIELDS)
    if extra:
        raise KeyError(f"unknown item field(s): {sorted(extra)}")
    if item["hashtags"] is None:
        item["hashtags"] = []
    return item
