"""Pure listing parsers: response body in, normalized item dicts out (one module per platform).

Each item dict has the fields of :class:`crawler.items.VideoItem`; each page parser returns a
:class:`~crawler.parsers.common.Page` (items, next paging token, whether the layout was
recognized). Nothing here does I/O, so the parsers are tested directly on recorded bodies.
"""

from crawler.parsers.common import ITEM_FIELDS, Page

__all__ = ["ITEM_FIELDS", "Page"]
