"""The store: every stage reads its input from here and writes its output here."""

from storage.db import Store, make_engine, migrate
from storage.models import (
    Base,
    Character,
    CrawlRun,
    Detection,
    Embedding,
    Frame,
    ListingStatus,
    Reference,
    ReportRun,
    Video,
    VideoState,
    utcnow,
)

__all__ = [
    "Base",
    "Character",
    "CrawlRun",
    "Detection",
    "Embedding",
    "Frame",
    "ListingStatus",
    "Reference",
    "ReportRun",
    "Store",
    "Video",
    "VideoState",
    "make_engine",
    "migrate",
    "utcnow",
]
