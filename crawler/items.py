"""The one normalized item every spider yields, whatever the platform."""

from __future__ import annotations

from typing import Any

import scrapy

from crawler.parsers.common import ITEM_FIELDS


class VideoItem(scrapy.Item):
    """A listed video, normalized: one Scrapy field per field of
    :class:`storage.video_fields.ListedVideo` (see it for what each holds)."""

    fields = {name: scrapy.Field() for name in ITEM_FIELDS}


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
