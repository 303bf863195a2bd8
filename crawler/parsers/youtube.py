"""YouTube listing parsers: ``ytInitialData`` pages, innertube continuations and the RSS feed.

Pure functions from a response body to normalized items. Handles the item renderers seen on
hashtag pages, channel Shorts tabs and search results: ``shortsLockupViewModel`` (Shorts since
2024), ``reelItemRenderer`` (older Shorts), ``videoRenderer``, ``lockupViewModel`` and
``gridVideoRenderer``, inside ``richItemRenderer``, ``richSectionRenderer``,
``itemSectionRenderer``, ``gridShelfViewModel``, ``reelShelfRenderer`` and ``shelfRenderer``
containers. Continuation tokens come from ``continuationItemRenderer`` or the newer
``continuationItemViewModel`` (also when wrapped in a ``commandExecutorCommand``).

Entries of kinds the parser does not know are counted in ``Page.extra["unknown_kinds"]`` and the
texts of "no results" style messages kept in ``Page.extra["messages"]``, so that a spider can
tell a changed layout from a listing that is really empty.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from crawler.parsers.common import (
    Page,
    as_str,
    dig,
    find_json_after,
    first,
    hashtags_from_text,
    iso_to_dt,
    join_base,
    make_item,
    merge_hashtags,
    parse_count,
    parse_duration,
)

PLATFORM = "youtube"
DEFAULT_BASE_URL = "https://www.youtube.com"

_INITIAL_DATA_RE = re.compile(
    r"(?:window\s*\[\s*[\"']ytInitialData[\"']\s*\]|\bytInitialData)\s*=\s*"
)
_YTCFG_RE = re.compile(r"ytcfg\.set\s*\(\s*")
_BOT_CHECK_RE = re.compile(
    r"confirm you(?:'|\u2019|&#39;)?re not a bot|unusual traffic from your computer network",
    re.IGNORECASE,
)
_VIDEO_COUNT_RE = re.compile(r"(\d[\d,.\u00a0\u202f ]*\s*[KMB]?|\bno)\s+videos?\b", re.IGNORECASE)

# the ``sp``/``params`` filter of a Shorts-only search ("Type: Shorts")
SHORTS_SEARCH_PARAMS = "EgIQCQ=="

# the key under which an item's ``raw`` keeps a search result's description snippet (the
# caption is the title alone)
DESCRIPTION_SNIPPET_KEY = "descriptionSnippetText"

# item renderers -> converter name (filled at the end of the module)
_ITEM_KEYS = (
    "shortsLockupViewModel",
    "reelItemRenderer",
    "videoRenderer",
    "lockupViewModel",
    "gridVideoRenderer",
)
_CONTINUATION_KEYS = ("continuationItemRenderer", "continuationItemViewModel")
# entries that are not videos and are skipped on purpose (not a sign of a changed layout)
_SKIPPED_KINDS = frozenset(
    {
        "adSlotRenderer",
        "backgroundPromoRenderer",
        "channelRenderer",
        "channelVideoPlayerRenderer",
        "chipCloudRenderer",
        "didYouMeanRenderer",
        "feedFilterChipBarRenderer",
        "gridChannelRenderer",
        "gridPlaylistRenderer",
        "hashtagTileRenderer",
        "horizontalCardListRenderer",
        "includingResultsForRenderer",
        "messageRenderer",
        "movieRenderer",
        "playlistRenderer",
        "promotedSparklesWebRenderer",
        "radioRenderer",
        "searchPyvRenderer",
        "shelfRenderer",
        "showingResultsForRenderer",
        "universalWatchCardRenderer",
    }
)


def parse_youtube_initial_data(html: str) -> dict[str, Any] | None:
    """The ``ytInitialData`` object embedded in a YouTube HTML page, or None."""
    if not isinstance(html, str):
        return None
    for m in _INITIAL_DATA_RE.finditer(html):
        data = find_json_after(html, _INITIAL_DATA_RE, m.start())
        if isinstance(data, dict):
            return data
    return None


def parse_ytcfg(html: str) -> dict[str, Any]:
    """All JSON ``ytcfg.set({...})`` objects of a page merged (later calls win)."""
    cfg: dict[str, Any] = {}
    if not isinstance(html, str):
        return cfg
    for m in _YTCFG_RE.finditer(html):
        data = find_json_after(html, _YTCFG_RE, m.start())
        if isinstance(data, dict):
            cfg.update(data)
    return cfg


def innertube_context(ytcfg: dict[str, Any]) -> dict[str, Any]:
    """The ``context`` for innertube POSTs (from ytcfg, else a WEB client default)."""
    ctx = ytcfg.get("INNERTUBE_CONTEXT")
    if isinstance(ctx, dict) and isinstance(ctx.get("client"), dict):
        return ctx
    version = ytcfg.get("INNERTUBE_CLIENT_VERSION") or ytcfg.get("INNERTUBE_CONTEXT_CLIENT_VERSION")
    client = {"clientName": "WEB", "clientVersion": version or "2.20260101.00.00", "hl": "en"}
    if ytcfg.get("VISITOR_DATA"):
        client["visitorData"] = ytcfg["VISITOR_DATA"]
    return {"client": client}


def text_of(obj: Any) -> str | None:
    """Text of a YouTube text object: ``simpleText``, ``runs[].text`` or ``content``."""
    if isinstance(obj, str):
        return obj or None
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("simpleText"), str):
        return obj["simpleText"]
    runs = obj.get("runs")
    if isinstance(runs, list):
        joined = "".join(r.get("text", "") for r in runs if isinstance(r, dict))
        return joined or None
    if isinstance(obj.get("content"), str):
        return obj["content"]
    return None


def channel_author(data: Any) -> str | None:
    """The channel handle (or title) of a channel page, from its metadata/header."""
    meta = dig(data, "metadata", "channelMetadataRenderer")
    if isinstance(meta, dict):
        urls = [meta.get("vanityChannelUrl"), *(meta.get("ownerUrls") or [])]
        for url in urls:
            handle = _handle_from_url(url)
            if handle:
                return handle
        return as_str(meta.get("title"))
    header = dig(data, "header", "pageHeaderRenderer", "pageTitle")
    return as_str(header)


def channel_id(data: Any) -> str | None:
    """The ``UC...`` id of a channel page."""
    return as_str(dig(data, "metadata", "channelMetadataRenderer", "externalId"))


def _handle_from_url(url: Any) -> str | None:
    if not isinstance(url, str):
        return None
    m = re.search(r"/@([^/?#]+)", url)
    return m.group(1) if m else None


def _command_token(command: Any, depth: int = 0) -> str | None:
    """The token of a command: ``continuationCommand``, possibly inside an ``innertubeCommand``
    or the ``commands`` of a ``commandExecutorCommand``."""
    if not isinstance(command, dict) or depth > 4:
        return None
    token = as_str(dig(command, "continuationCommand", "token"))
    if token:
        return token
    for key in ("innertubeCommand", "continuationCommand"):
        token = _command_token(command.get(key), depth + 1)
        if token:
            return token
    commands = dig(command, "commandExecutorCommand", "commands")
    for cmd in commands if isinstance(commands, list) else []:
        token = _command_token(cmd, depth + 1)
        if token:
            return token
    return None


def continuation_token(renderer: Any) -> str | None:
    """The token of a ``continuationItemRenderer`` or ``continuationItemViewModel``.

    Renderer: ``continuationEndpoint`` (or ``button.buttonRenderer.command``) holding a
    ``continuationCommand`` or a ``commandExecutorCommand``. View model:
    ``continuationCommand.innertubeCommand.continuationCommand.token``, the innertube command
    possibly a ``commandExecutorCommand`` whose ``commands`` hold the continuation.
    """
    if not isinstance(renderer, dict):
        return None
    for command in (
        renderer.get("continuationEndpoint"),
        dig(renderer, "button", "buttonRenderer", "command"),
        renderer,
    ):
        token = _command_token(command)
        if token:
            return token
    return None


class _Walk:
    """Collects items and the continuation token from a list of renderer entries."""

    def __init__(self, listing: str | None, base_url: str, author: str | None) -> None:
        self.listing = listing
        self.base_url = base_url
        self.author = author
        self.items: list[dict[str, Any]] = []
        self.token: str | None = None
        self.seen: set[str] = set()
        self.unknown: dict[str, int] = {}
        self.messages: list[str] = []

    def entries(self, entries: Any, *, shelves: bool = True) -> None:
        if not isinstance(entries, list):
            return
        for entry in entries:
            if isinstance(entry, dict):
                self.entry(entry, shelves=shelves)

    def entry(self, entry: dict[str, Any], *, shelves: bool) -> None:
        for key, value in entry.items():
            if key in _ITEM_KEYS:
                self.add(key, value)
            elif key == "richItemRenderer":
                content = dig(value, "content")
                if isinstance(content, dict):
                    self.entry(content, shelves=shelves)
            elif key == "richSectionRenderer":
                self.entries(dig(value, "content", "richShelfRenderer", "contents"))
            elif key == "itemSectionRenderer":
                self.entries(dig(value, "contents"), shelves=shelves)
            elif key == "gridShelfViewModel":
                self.entries(dig(value, "contents"))
            elif key == "reelShelfRenderer":
                self.entries(dig(value, "items"))
            elif key == "shelfRenderer" and shelves:
                content = dig(value, "content", default={})
                for inner in ("horizontalListRenderer", "verticalListRenderer", "gridRenderer"):
                    self.entries(dig(content, inner, "items"))
                self.entries(dig(content, "expandedShelfContentsRenderer", "items"))
            elif key in _CONTINUATION_KEYS:
                self.token = continuation_token(value) or self.token
            elif key in ("messageRenderer", "backgroundPromoRenderer"):
                self.message(value)
            elif key == "shelfRenderer" or key in _SKIPPED_KINDS:
                continue
            elif "Renderer" in key or "ViewModel" in key:
                self.unknown[key] = self.unknown.get(key, 0) + 1

    def message(self, renderer: Any) -> None:
        if not isinstance(renderer, dict):
            return
        parts = [text_of(renderer.get(k)) for k in ("title", "text", "bodyText", "subtext")]
        text = " ".join(p for p in parts if p)
        if text:
            self.messages.append(text)

    def add(self, key: str, renderer: Any) -> None:
        if not isinstance(renderer, dict):
            return
        item = _CONVERTERS[key](renderer, self.listing, self.base_url)
        if item is None or item["platform_id"] in self.seen:
            return
        if item["author"] is None and self.author:
            item["author"] = self.author
        self.seen.add(item["platform_id"])
        self.items.append(item)


def parse_youtube_page(
    data: Any,
    listing: str | None = None,
    *,
    base_url: str = DEFAULT_BASE_URL,
    author: str | None = None,
) -> Page:
    """Items and the next continuation token of an initial page or a continuation response.

    ``data`` is ``ytInitialData`` (hashtag page, channel tab, search results) or an innertube
    ``browse``/``search`` continuation response (``onResponseReceivedActions`` with
    ``appendContinuationItemsAction`` or ``reloadContinuationItemsCommand``, or
    ``onResponseReceivedCommands``). ``author`` fills items that carry none (Shorts lockups on a
    channel tab); on a channel page it defaults to the page's own channel.
    """
    if not isinstance(data, dict):
        return Page()
    if author is None:
        author = channel_author(data)
    walk = _Walk(listing, base_url, author)
    recognized = False

    # initial browse page: the selected tab's grid or section list
    tabs = dig(data, "contents", "twoColumnBrowseResultsRenderer", "tabs")
    if isinstance(tabs, list):
        selected = [t for t in tabs if dig(t, "tabRenderer", "selected") is True]
        for tab in selected or tabs[:1]:
            content = dig(tab, "tabRenderer", "content") or dig(
                tab, "expandableTabRenderer", "content"
            )
            if not isinstance(content, dict):
                continue
            grid = dig(content, "richGridRenderer", "contents")
            if isinstance(grid, list):
                recognized = True
                walk.entries(grid)
            sections = dig(content, "sectionListRenderer", "contents")
            if isinstance(sections, list):
                recognized = True
                walk.entries(sections)

    # initial search page
    sections = dig(
        data,
        "contents",
        "twoColumnSearchResultsRenderer",
        "primaryContents",
        "sectionListRenderer",
        "contents",
    )
    if isinstance(sections, list):
        recognized = True
        walk.entries(sections, shelves=False)

    # continuation responses (browse: actions; search: commands)
    for key in (
        "onResponseReceivedActions",
        "onResponseReceivedCommands",
        "onResponseReceivedEndpoints",
    ):
        actions = data.get(key)
        if not isinstance(actions, list):
            continue
        for action in actions:
            for kind in ("appendContinuationItemsAction", "reloadContinuationItemsCommand"):
                items = dig(action, kind, "continuationItems")
                if isinstance(items, list):
                    recognized = True
                    walk.entries(items, shelves=key != "onResponseReceivedCommands")

    # legacy continuation form
    legacy = dig(data, "continuationContents")
    if isinstance(legacy, dict):
        for value in legacy.values():
            items = dig(value, "contents") or dig(value, "items")
            if isinstance(items, list):
                recognized = True
                walk.entries(items)
            token = dig(value, "continuations", 0, "nextContinuationData", "continuation")
            if token:
                walk.token = token

    extra: dict[str, Any] = {}
    if walk.unknown:
        extra["unknown_kinds"] = dict(walk.unknown)
    if walk.messages:
        extra["messages"] = list(walk.messages)
    return Page(items=walk.items, next_token=walk.token, recognized=recognized, extra=extra)


def _texts(obj: Any, depth: int = 0) -> list[str]:
    """Every display text under ``obj`` (strings, and joined ``runs``)."""
    if depth > 12:
        return []
    if isinstance(obj, str):
        return [obj]
    out: list[str] = []
    if isinstance(obj, dict):
        if isinstance(obj.get("runs"), list):
            joined = text_of(obj)
            if joined:
                out.append(joined)
        for key, value in obj.items():
            if key not in ("runs", "trackingParams", "clickTrackingParams", "url"):
                out.extend(_texts(value, depth + 1))
    elif isinstance(obj, list):
        for value in obj:
            out.extend(_texts(value, depth + 1))
    return out


def header_video_count(data: Any) -> int | None:
    """The video count a page's header states ("1.2K videos · 300 channels"), or None.

    Read from any text under ``header``, so a renamed header renderer still counts.
    """
    header = data.get("header") if isinstance(data, dict) else None
    for text in _texts(header):
        m = _VIDEO_COUNT_RE.search(text)
        if m:
            number = m.group(1).strip()
            return 0 if number.lower() == "no" else parse_count(number)
    return None


def page_title(data: Any) -> str | None:
    """The page's own title (``microformat``/``metadata``), or None."""
    for path in (
        ("microformat", "microformatDataRenderer", "title"),
        ("metadata", "channelMetadataRenderer", "title"),
    ):
        title = as_str(dig(data, *path))
        if title:
            return title
    return None


def bot_check_text(html: Any) -> str | None:
    """The "Sign in to confirm you're not a bot" / "unusual traffic" text of a page, or None."""
    if isinstance(html, bytes):
        html = html.decode("utf-8", "replace")
    if not isinstance(html, str):
        return None
    m = _BOT_CHECK_RE.search(html[:500_000])
    return m.group(0) if m else None


def youtube_alerts(data: Any) -> list[str]:
    """Texts of error alerts on a page (e.g. "This channel does not exist.")."""
    out: list[str] = []
    for alert in dig(data, "alerts", default=[]) if isinstance(data, dict) else []:
        if not isinstance(alert, dict):
            continue
        for renderer in alert.values():
            if isinstance(renderer, dict) and renderer.get("type") in ("ERROR", None):
                text = text_of(renderer.get("text"))
                if text:
                    out.append(text)
    return out


def _url(base_url: str, video_id: str, short: bool) -> str:
    if short:
        return join_base(base_url, f"/shorts/{video_id}")
    return join_base(base_url, f"/watch?v={video_id}")


def _best_thumb(sources: Any) -> str | None:
    if not isinstance(sources, list):
        return None
    best = None
    best_area = -1
    for src in sources:
        url = dig(src, "url")
        if not isinstance(url, str):
            continue
        area = (dig(src, "width", default=0) or 0) * (dig(src, "height", default=0) or 0)
        if area > best_area:
            best, best_area = url, area
    return best


def _is_short_nav(nav: Any) -> bool:
    if not isinstance(nav, dict):
        return False
    if "reelWatchEndpoint" in nav:
        return True
    url = dig(nav, "commandMetadata", "webCommandMetadata", "url")
    return isinstance(url, str) and url.startswith("/shorts/")


def _byline(renderer: dict[str, Any]) -> tuple[str | None, str | None]:
    """(handle or name, channel id) of a video renderer's owner."""
    for key in ("ownerText", "shortBylineText", "longBylineText"):
        runs = dig(renderer, key, "runs")
        if not isinstance(runs, list) or not runs:
            continue
        run = runs[0]
        ep = dig(run, "navigationEndpoint", default={})
        handle = _handle_from_url(
            dig(ep, "browseEndpoint", "canonicalBaseUrl")
        ) or _handle_from_url(dig(ep, "commandMetadata", "webCommandMetadata", "url"))
        return handle or as_str(dig(run, "text")), as_str(dig(ep, "browseEndpoint", "browseId"))
    return None, None


def _from_shorts_lockup(vm: dict[str, Any], listing: str | None, base_url: str) -> dict | None:
    video_id = as_str(dig(vm, "onTap", "innertubeCommand", "reelWatchEndpoint", "videoId"))
    if not video_id:
        entity = as_str(vm.get("entityId")) or ""
        video_id = (
            entity.removeprefix("shorts-shelf-item-")
            if entity.startswith("shorts-shelf-item-")
            else None
        )
    if not video_id:
        return None
    title = as_str(dig(vm, "overlayMetadata", "primaryText", "content"))
    if title is None:
        acc = as_str(vm.get("accessibilityText"))
        title = acc.split(",")[0] if acc else None
    return make_item(
        platform=PLATFORM,
        platform_id=video_id,
        url=_url(base_url, video_id, True),
        caption=title,
        hashtags=hashtags_from_text(title),
        view_count=parse_count(dig(vm, "overlayMetadata", "secondaryText", "content")),
        thumbnail_url=_best_thumb(
            dig(vm, "thumbnailViewModel", "thumbnailViewModel", "image", "sources")
        ),
        listing=listing,
        raw=vm,
    )


def _from_reel_item(r: dict[str, Any], listing: str | None, base_url: str) -> dict | None:
    video_id = as_str(r.get("videoId")) or as_str(
        dig(r, "navigationEndpoint", "reelWatchEndpoint", "videoId")
    )
    if not video_id:
        return None
    title = text_of(r.get("headline"))
    return make_item(
        platform=PLATFORM,
        platform_id=video_id,
        url=_url(base_url, video_id, True),
        caption=title,
        hashtags=hashtags_from_text(title),
        view_count=parse_count(text_of(r.get("viewCountText"))),
        thumbnail_url=_best_thumb(dig(r, "thumbnail", "thumbnails")),
        listing=listing,
        raw=r,
    )


def _from_video_renderer(r: dict[str, Any], listing: str | None, base_url: str) -> dict | None:
    video_id = as_str(r.get("videoId"))
    if not video_id:
        return None
    overlays = r.get("thumbnailOverlays") if isinstance(r.get("thumbnailOverlays"), list) else []
    styles = [dig(o, "thumbnailOverlayTimeStatusRenderer", "style") for o in overlays]
    short = _is_short_nav(r.get("navigationEndpoint")) or "SHORTS" in styles
    caption = text_of(r.get("title"))
    snippet = text_of(r.get("descriptionSnippet")) or text_of(
        dig(r, "detailedMetadataSnippets", 0, "snippetText")
    )
    raw = {**r, DESCRIPTION_SNIPPET_KEY: snippet} if snippet else r
    author, _ = _byline(r)
    duration = parse_duration(first(r.get("lengthSeconds"), text_of(r.get("lengthText"))))
    if duration is None:
        for o in overlays:
            duration = parse_duration(text_of(dig(o, "thumbnailOverlayTimeStatusRenderer", "text")))
            if duration is not None:
                break
    views = parse_count(text_of(r.get("viewCountText")))
    if views is None:
        views = parse_count(text_of(r.get("shortViewCountText")))
    return make_item(
        platform=PLATFORM,
        platform_id=video_id,
        url=_url(base_url, video_id, short),
        author=author,
        caption=caption,
        hashtags=merge_hashtags(hashtags_from_text(caption), hashtags_from_text(snippet)),
        view_count=views,
        duration_s=duration,
        thumbnail_url=_best_thumb(dig(r, "thumbnail", "thumbnails")),
        listing=listing,
        raw=raw,
    )


def _from_grid_video(r: dict[str, Any], listing: str | None, base_url: str) -> dict | None:
    return _from_video_renderer(r, listing, base_url)


def _from_lockup(vm: dict[str, Any], listing: str | None, base_url: str) -> dict | None:
    content_type = vm.get("contentType")
    if content_type not in (None, "LOCKUP_CONTENT_TYPE_VIDEO", "LOCKUP_CONTENT_TYPE_SHORTS"):
        return None  # playlists, podcasts, ...
    video_id = as_str(vm.get("contentId"))
    if not video_id:
        return None
    meta = dig(vm, "metadata", "lockupMetadataViewModel", default={})
    title = as_str(dig(meta, "title", "content"))
    author = None
    views = None
    rows = dig(meta, "metadata", "contentMetadataViewModel", "metadataRows", default=[])
    for row in rows if isinstance(rows, list) else []:
        for part in dig(row, "metadataParts", default=[]) or []:
            text = dig(part, "text", default={})
            ep = dig(text, "commandRuns", 0, "onTap", "innertubeCommand", "browseEndpoint")
            if isinstance(ep, dict) and author is None:
                author = _handle_from_url(ep.get("canonicalBaseUrl")) or as_str(text.get("content"))
            content = as_str(text.get("content")) or ""
            if views is None and re.search(r"\bviews?\b", content, re.IGNORECASE):
                views = parse_count(content)
    duration = None
    overlays = dig(vm, "contentImage", "thumbnailViewModel", "overlays", default=[])
    for o in overlays if isinstance(overlays, list) else []:
        for badge in dig(o, "thumbnailBottomOverlayViewModel", "badges", default=[]) or []:
            duration = duration or parse_duration(dig(badge, "thumbnailBadgeViewModel", "text"))
    nav = dig(vm, "rendererContext", "commandContext", "onTap", "innertubeCommand")
    short = _is_short_nav(nav) or content_type == "LOCKUP_CONTENT_TYPE_SHORTS"
    return make_item(
        platform=PLATFORM,
        platform_id=video_id,
        url=_url(base_url, video_id, short),
        author=author,
        caption=title,
        hashtags=hashtags_from_text(title),
        view_count=views,
        duration_s=duration,
        thumbnail_url=_best_thumb(
            dig(vm, "contentImage", "thumbnailViewModel", "image", "sources")
        ),
        listing=listing,
        raw=vm,
    )


_CONVERTERS = {
    "shortsLockupViewModel": _from_shorts_lockup,
    "reelItemRenderer": _from_reel_item,
    "videoRenderer": _from_video_renderer,
    "lockupViewModel": _from_lockup,
    "gridVideoRenderer": _from_grid_video,
}

_NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "yt": "http://www.youtube.com/xml/schemas/2015",
    "media": "http://search.yahoo.com/mrss/",
}


def parse_youtube_rss(
    xml_text: str | bytes, listing: str | None = None, *, base_url: str = DEFAULT_BASE_URL
) -> Page:
    """Entries of a channel/playlist Atom feed (``/feeds/videos.xml``). No paging."""
    try:
        root = ET.fromstring(xml_text)
    except (ET.ParseError, TypeError, ValueError):
        return Page()
    if root.tag != f"{{{_NS['atom']}}}feed":
        return Page()
    feed_author = root.findtext("atom:author/atom:name", default=None, namespaces=_NS)
    items: list[dict[str, Any]] = []
    for entry in root.findall("atom:entry", _NS):
        video_id = entry.findtext("yt:videoId", default=None, namespaces=_NS)
        if not video_id:
            eid = entry.findtext("atom:id", default="", namespaces=_NS) or ""
            video_id = eid.rsplit(":", 1)[-1] if eid.startswith("yt:video:") else None
        if not video_id:
            continue
        link = entry.find("atom:link[@rel='alternate']", _NS)
        href = link.get("href", "") if link is not None else ""
        title = entry.findtext("atom:title", default=None, namespaces=_NS)
        desc = entry.findtext("media:group/media:description", default=None, namespaces=_NS)
        caption = as_str(title)
        author = entry.findtext("atom:author/atom:name", default=None, namespaces=_NS)
        author_uri = entry.findtext("atom:author/atom:uri", default=None, namespaces=_NS)
        thumb = entry.find("media:group/media:thumbnail", _NS)
        stats = entry.find("media:group/media:community/media:statistics", _NS)
        rating = entry.find("media:group/media:community/media:starRating", _NS)
        raw = {
            "videoId": video_id,
            "title": title,
            "link": href,
            "author": author,
            "authorUri": author_uri,
            "channelId": entry.findtext("yt:channelId", default=None, namespaces=_NS),
            "published": entry.findtext("atom:published", default=None, namespaces=_NS),
            "updated": entry.findtext("atom:updated", default=None, namespaces=_NS),
            "description": desc,
            "views": stats.get("views") if stats is not None else None,
            "starRatingCount": rating.get("count") if rating is not None else None,
            "thumbnail": thumb.get("url") if thumb is not None else None,
        }
        items.append(
            make_item(
                platform=PLATFORM,
                platform_id=video_id,
                url=_url(base_url, video_id, "/shorts/" in href or "/watch" not in href),
                author=_handle_from_url(author_uri) or as_str(author) or as_str(feed_author),
                caption=caption,
                hashtags=merge_hashtags(hashtags_from_text(caption), hashtags_from_text(desc)),
                posted_at=iso_to_dt(raw["published"]),
                view_count=parse_count(raw["views"]),
                like_count=parse_count(raw["starRatingCount"]),
                thumbnail_url=raw["thumbnail"],
                listing=listing,
                raw=raw,
            )
        )
    return Page(items=items, next_token=None, recognized=True)
