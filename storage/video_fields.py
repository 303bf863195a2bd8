"""One definition of a listed video's fields; the spiders' item, the store's refresh rules and
the CLI's columns derive from it (the table itself stays the SQLAlchemy model ``Video``).

Each field's ``metadata`` says what happens when a stored video is seen again in a listing:

* ``key``: identifies the video (never changes);
* ``refresh``: the new value replaces the stored one (a missing value never erases one);
* ``first``: the first value seen stays (e.g. the author: a handle and a display name are
  both right, and flipping between them would churn);
* ``merge``: replaced when the new value is not empty (hashtags).

``column`` marks the fields ``charwatch videos`` prints.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any


def _f(on_reseen: str, *, column: bool = True, default: Any = None) -> Any:
    meta = {"on_reseen": on_reseen, "column": column}
    if callable(default):
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ListedVideo:
    """A video as a listing shows it, normalised the same way on every platform.

    ``url`` is canonical (built from the platform's configured base URL); ``hashtags`` are
    without ``#``; ``posted_at`` is an aware UTC datetime; ``ai_label`` is the platform's own
    AI-content label; ``listing`` is ``platform:kind:target``; ``raw`` keeps the item's JSON as
    evidence.
    """

    platform: str = _f("key")
    platform_id: str = _f("key")
    url: str = _f("refresh")
    author: str | None = _f("first")
    caption: str | None = _f("refresh")
    hashtags: list[str] = _f("merge", default=list)
    posted_at: dt.datetime | None = _f("refresh")
    view_count: int | None = _f("refresh")
    like_count: int | None = _f("refresh")
    duration_s: float | None = _f("refresh")
    thumbnail_url: str | None = _f("refresh", column=False)
    ai_label: str | None = _f("refresh")
    listing: str | None = _f("first")
    raw: dict[str, Any] | None = _f("refresh", column=False)


FIELDS: tuple[dataclasses.Field[Any], ...] = dataclasses.fields(ListedVideo)
ITEM_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS)


def fields_where(on_reseen: str) -> tuple[str, ...]:
    """Names of the fields with that re-seen rule, in definition order."""
    return tuple(f.name for f in FIELDS if f.metadata["on_reseen"] == on_reseen)


KEY_FIELDS = fields_where("key")
REFRESHED = fields_where("refresh")
KEPT_FIRST = fields_where("first")
MERGED = fields_where("merge")

# what `charwatch videos` prints: the listed fields people read, then the processing state
PROCESSING_COLUMNS = ("state", "attempts", "error", "first_seen", "last_seen")
COLUMNS: tuple[str, ...] = (
    *(f.name for f in FIELDS if f.metadata["column"]),
    *PROCESSING_COLUMNS,
)
