"""The store: every stage reads its input from here and writes its output here."""

from storage import platform_state
from storage.db import Store, make_engine, migrate
from storage.models import (
    AllowedAccount,
    Base,
    Character,
    CharacterThreshold,
    CrawlRun,
    Detection,
    Embedding,
    Frame,
    JobRun,
    ListingStatus,
    PlatformState,
    Reference,
    ReportRun,
    ReviewEvent,
    User,
    Video,
    VideoState,
    utcnow,
)

__all__ = [
    "platform_state",
    "AllowedAccount",
    "Base",
    "CharacterThreshold",
    "Character",
    "CrawlRun",
    "Detection",
    "Embedding",
    "Frame",
    "JobRun",
    "ListingStatus",
    "PlatformState",
    "Reference",
    "ReportRun",
    "ReviewEvent",
    "Store",
    "User",
    "Video",
    "VideoState",
    "make_engine",
    "migrate",
    "utcnow",
]
