"""What one crawl target is: a platform, a listing kind and its target, normalized."""

from __future__ import annotations

import re
from dataclasses import dataclass

from charwatch.config import PLATFORMS, ConfigError
from charwatch.platforms import DESCRIPTIONS

KINDS = ("hashtag", "user", "search", "rss")

# kinds each platform's spider can crawl (others give a clear "not supported" status)
SUPPORTED: dict[str, tuple[str, ...]] = {p.name: p.kinds for p in DESCRIPTIONS}


def normalize_target(platform: str, kind: str, target: str) -> str:
    """The canonical target text of a listing; raises ConfigError when it is unusable.

    Hashtags lose a leading ``#``; user handles lose a leading ``@`` (a YouTube handle names
    its Shorts tab, so a trailing ``/shorts`` is dropped too); searches get single spaces.
    """
    if not isinstance(target, str):
        raise ConfigError(f"{platform} {kind}: the target must be text")
    text = target.strip()
    if kind == "hashtag":
        text = text.lstrip("#＃").strip()
        if not text or re.search(r"[\s/?#&]", text):
            raise ConfigError(f"{platform} hashtag {target!r} is not a single hashtag")
    elif kind == "user":
        text = text.lstrip("@").rstrip("/")
        if text.lower().endswith("/shorts"):
            text = text[: -len("/shorts")]
        if text.lower().endswith("/reels"):
            text = text[: -len("/reels")]
        text = text.lstrip("@")
        if not text or re.search(r"[\s/?#&]", text):
            raise ConfigError(f"{platform} user {target!r} is not a handle")
    elif kind == "search":
        text = " ".join(text.split())
        if not text:
            raise ConfigError(f"{platform} search: empty query")
    elif kind == "rss" and not re.fullmatch(r"[A-Za-z0-9_-]{10,64}", text):
        raise ConfigError(f"{platform} rss: {target!r} is not a channel or playlist id")
    return text


@dataclass(frozen=True)
class Listing:
    """One listing to crawl, e.g. ``Listing("tiktok", "hashtag", "naruto")``.

    The target is normalized on creation (see :func:`normalize_target`); ``key`` is the
    ``platform:kind:target`` text stored on every item (``Video.listing``).
    """

    platform: str
    kind: str
    target: str

    def __post_init__(self) -> None:
        platform = (self.platform or "").strip().lower()
        kind = (self.kind or "").strip().lower()
        if platform not in PLATFORMS:
            raise ConfigError(f"unknown platform {self.platform!r} (known: {', '.join(PLATFORMS)})")
        if kind not in KINDS:
            raise ConfigError(f"unknown listing kind {self.kind!r} (known: {', '.join(KINDS)})")
        object.__setattr__(self, "platform", platform)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "target", normalize_target(platform, kind, self.target))

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.kind}:{self.target}"

    @property
    def supported(self) -> bool:
        return self.kind in SUPPORTED[self.platform]

    @classmethod
    def parse(cls, text: str) -> Listing:
        """``"tiktok:hashtag:naruto"`` -> Listing (the target may contain ``:``)."""
        parts = (text or "").split(":", 2)
        if len(parts) != 3:
            raise ConfigError(f"listing {text!r} is not platform:kind:target")
        return cls(*parts)

    def __str__(self) -> str:
        return self.key
