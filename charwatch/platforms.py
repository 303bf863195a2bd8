"""One description per platform; config defaults, listing kinds, spider lookup and display
names are all derived from it.

Adding a platform means one entry here, its spider (``crawler/spiders/<name>.py`` with
``name = "<name>"``, found by Scrapy's spider loader), its parsers and its fixture pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Platform:
    """What charwatch knows about a platform before any config is read.

    ``kinds``: listing kinds its spider crawls (others get a clear "not supported" status).
    ``defaults``: ``PlatformConfig`` values that work on the live site today.
    ``login_cookies``: cookies that make a session logged in (checked by ``doctor``).
    """

    name: str
    display: str
    base_url: str
    kinds: tuple[str, ...]
    defaults: dict[str, Any] = field(default_factory=dict)
    login_cookies: tuple[str, ...] = ()
    notes: str = ""


DESCRIPTIONS: tuple[Platform, ...] = (
    Platform(
        name="tiktok",
        display="TikTok",
        base_url="https://www.tiktok.com",
        kinds=("hashtag", "user", "search"),
        defaults={
            "impersonate": "chrome",
            # hashtag and search item lists are signed by the webapp's own script
            "fetch": {"hashtag": "browser", "search": "browser", "user": "http"},
            "sleep_interval": 2.0,
        },
        login_cookies=("sessionid", "sessionid_ss", "sid_tt"),
        notes="hashtags and search need Chromium (fetch = browser); IP blocks need a proxy",
    ),
    Platform(
        name="youtube",
        display="YouTube Shorts",
        base_url="https://www.youtube.com",
        kinds=("hashtag", "user", "search", "rss"),
        defaults={
            # the guest limit is about 300 videos an hour; 5-10 s between downloads
            "sleep_interval": 5.0,
            "sleep_requests": 0.75,
            "max_downloads_per_hour": 250,
        },
        login_cookies=("SID", "__Secure-1PSID", "__Secure-3PSID", "LOGIN_INFO"),
        notes="downloads need a JS runtime (deno); bot checks need cookies or a PO token",
    ),
    Platform(
        name="instagram",
        display="Instagram Reels",
        base_url="https://www.instagram.com",
        kinds=("hashtag", "user"),
        defaults={
            "impersonate": "chrome",
            "download_delay": 6.0,  # 6-12 s between requests
            "concurrency": 1,
            "sleep_interval": 6.0,
        },
        login_cookies=("sessionid",),
        notes="reels tabs and tags need a logged-in sessionid cookie",
    ),
)

BY_NAME: dict[str, Platform] = {p.name: p for p in DESCRIPTIONS}
PLATFORMS: tuple[str, ...] = tuple(BY_NAME)


def display_name(name: str) -> str:
    """``youtube`` -> ``YouTube Shorts``; unknown names come back as given."""
    p = BY_NAME.get(str(name))
    return p.display if p else str(name)
