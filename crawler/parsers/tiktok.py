"""TikTok parsers: universal-data pages, the legacy ``SIGI_STATE`` page and item-list APIs.

Pure functions from a response body to normalized items. The item shape is the web
``itemStruct`` (``id``, ``desc``, ``createTime``, ``author``, ``video``, ``stats``/``statsV2``,
``challenges``, ``textExtra``, ``IsAigc``/``aigcLabelType``/``AIGCDescription``); the mobile
snake_case ``aweme`` shape is read as a fallback.
"""

from __future__ import annotations

import re
from typing import Any

from crawler.parsers.common import (
    JSLiteralError,
    Page,
    as_str,
    dig,
    epoch_to_dt,
    first,
    hashtags_from_text,
    join_base,
    loads_json,
    make_item,
    merge_hashtags,
    parse_count,
    parse_duration,
    parse_js_literal,
    script_by_id,
)

PLATFORM = "tiktok"
DEFAULT_BASE_URL = "https://www.tiktok.com"

# webapp statusCode values (yt-dlp, PyTok)
STATUS_OK = 0
STATUS_HASHTAG_NOT_FOUND = 10205
STATUS_USER_NOT_FOUND = (10202, 10221)
STATUS_PRIVATE_ACCOUNT = 10222
STATUS_PRIVATE_POST = 10216
STATUS_IP_BLOCKED = 10204


def parse_universal_data(html: str) -> dict[str, Any] | None:
    """``__DEFAULT_SCOPE__`` of the ``__UNIVERSAL_DATA_FOR_REHYDRATION__`` script, or None."""
    if not isinstance(html, str):
        return None
    text = script_by_id(html, "__UNIVERSAL_DATA_FOR_REHYDRATION__")
    data = loads_json(text)
    scope = dig(data, "__DEFAULT_SCOPE__")
    return scope if isinstance(scope, dict) else None


_SIGI_ASSIGN_RE = re.compile(r"window\s*\[\s*['\"]SIGI_STATE['\"]\s*\]\s*=\s*")


def parse_sigi_state(html: str) -> dict[str, Any] | None:
    """The legacy ``SIGI_STATE`` object (JSON script, or a JS object literal assignment)."""
    if not isinstance(html, str):
        return None
    for sid in ("SIGI_STATE", "sigi-persisted-data"):
        text = script_by_id(html, sid)
        if text is None:
            continue
        data = loads_json(text)
        if isinstance(data, dict):
            return data
        m = _SIGI_ASSIGN_RE.search(text)
        start = m.end() if m else text.find("{")
        if start < 0:
            continue
        try:
            data = parse_js_literal(text, start)
        except (JSLiteralError, ValueError, IndexError):
            continue
        if isinstance(data, dict):
            return data
    return None


def is_challenge_page(html: str) -> bool:
    """True for the JS proof-of-work interstitial (elements ``id="cs"`` and ``id="wci"``)."""
    if not isinstance(html, str):
        return False
    return bool(re.search(r"\bid=[\"']cs[\"']", html) and re.search(r"\bid=[\"']wci[\"']", html))


def challenge_detail(scope: Any) -> tuple[int | None, str | None, str | None]:
    """(statusCode, challenge id, title) of a ``/tag/NAME`` page's universal data."""
    detail = dig(scope, "webapp.challenge-detail")
    if not isinstance(detail, dict):
        return None, None, None
    code = detail.get("statusCode")
    challenge = dig(detail, "challengeInfo", "challenge", default={})
    return (
        code if isinstance(code, int) else None,
        as_str(dig(challenge, "id")),
        as_str(dig(challenge, "title")),
    )


def challenge_id_from_html(html: str) -> str | None:
    """The challenge id from the ``snssdk...://challenge/detail/<id>`` deep link, if any."""
    m = re.search(r"challenge/detail/(\d+)", html or "")
    return m.group(1) if m else None


def user_detail(scope: Any) -> tuple[int | None, str | None, str | None]:
    """(statusCode, secUid, uniqueId) of a ``/@handle`` page's universal data."""
    detail = dig(scope, "webapp.user-detail")
    if not isinstance(detail, dict):
        return None, None, None
    code = detail.get("statusCode")
    user = dig(detail, "userInfo", "user", default={})
    return (
        code if isinstance(code, int) else None,
        as_str(dig(user, "secUid")),
        as_str(dig(user, "uniqueId")),
    )


def video_url(base_url: str, handle: str | None, video_id: str) -> str:
    """Canonical video URL; ``@_`` when the handle is unknown (as yt-dlp does)."""
    return join_base(base_url, f"/@{handle or '_'}/video/{video_id}")


def ai_label(item: dict[str, Any]) -> str | None:
    """The platform's AI-generated-content label of an item, or None when unlabelled."""
    parts: list[str] = []
    if item.get("IsAigc") is True:
        parts.append("IsAigc")
    label_type = item.get("aigcLabelType")
    if isinstance(label_type, (int, str)) and str(label_type) not in ("", "0"):
        parts.append(f"aigcLabelType={label_type}")
    aigc_info = item.get("aigc_info")
    if isinstance(aigc_info, dict):
        if aigc_info.get("created_by_ai"):
            parts.append("created_by_ai")
        lt = aigc_info.get("aigc_label_type")
        if lt not in (None, 0, "0", ""):
            parts.append(f"aigc_label_type={lt}")
    desc = as_str(item.get("AIGCDescription"))
    if desc and parts:
        parts.append(desc)
    return "; ".join(parts) if parts else None


def parse_tiktok_item(
    item: Any,
    listing: str | None = None,
    *,
    base_url: str = DEFAULT_BASE_URL,
    users: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """One web ``itemStruct`` (or mobile aweme) as a normalized item; None without an id.

    ``users`` (the legacy ``UserModule.users``) resolves items whose ``author`` is a string.
    """
    if not isinstance(item, dict):
        return None
    video_id = as_str(first(item.get("id"), item.get("aweme_id")))
    if not video_id:
        return None
    author_obj = item.get("author")
    handle = None
    if isinstance(author_obj, dict):
        handle = as_str(first(author_obj.get("uniqueId"), author_obj.get("unique_id")))
    elif isinstance(author_obj, str):
        handle = as_str(author_obj)
        if users and isinstance(users.get(author_obj), dict):
            handle = as_str(users[author_obj].get("uniqueId")) or handle
    if handle is None:
        handle = as_str(dig(item, "authorInfo", "uniqueId"))
    caption = as_str(first(item.get("desc"), item.get("description")))
    structured = [dig(c, "title") for c in item.get("challenges") or [] if isinstance(c, dict)]
    structured += [
        dig(t, "hashtagName") for t in item.get("textExtra") or [] if isinstance(t, dict)
    ]
    structured += [
        dig(t, "hashtag_name") for t in item.get("text_extra") or [] if isinstance(t, dict)
    ]
    stats = item.get("stats") if isinstance(item.get("stats"), dict) else {}
    stats_v2 = item.get("statsV2") if isinstance(item.get("statsV2"), dict) else {}
    mobile = item.get("statistics") if isinstance(item.get("statistics"), dict) else {}
    views = parse_count(first(stats_v2.get("playCount"), stats.get("playCount")))
    if views is None:
        views = parse_count(mobile.get("play_count"))
    likes = parse_count(first(stats_v2.get("diggCount"), stats.get("diggCount")))
    if likes is None:
        likes = parse_count(mobile.get("digg_count"))
    video = item.get("video") if isinstance(item.get("video"), dict) else {}
    duration = parse_duration(video.get("duration"))
    if duration is not None and "aweme_id" in item and duration > 1000:
        duration /= 1000.0  # the mobile API gives milliseconds
    if duration == 0:
        duration = None  # photo posts
    thumb = first(
        as_str(video.get("cover")),
        as_str(video.get("originCover")),
        as_str(video.get("dynamicCover")),
        as_str(dig(video, "cover", "url_list", 0)),
    )
    return make_item(
        platform=PLATFORM,
        platform_id=video_id,
        url=video_url(base_url, handle, video_id),
        author=handle,
        caption=caption,
        hashtags=merge_hashtags(structured, hashtags_from_text(caption)),
        posted_at=epoch_to_dt(first(item.get("createTime"), item.get("create_time"))),
        view_count=views,
        like_count=likes,
        duration_s=duration,
        thumbnail_url=thumb,
        ai_label=ai_label(item),
        listing=listing,
        raw=item,
    )


def _items(
    raw_items: Any, listing: str | None, base_url: str, users: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for raw in raw_items if isinstance(raw_items, list) else []:
        item = parse_tiktok_item(raw, listing, base_url=base_url, users=users)
        if item and item["platform_id"] not in seen:
            seen.add(item["platform_id"])
            out.append(item)
    return out


LIST_KEYS = ("itemList", "item_list", "aweme_list")


def _looks_like_items(value: Any) -> bool:
    """A non-empty list whose entries look like video items (an id plus caption/time/video)."""
    if not isinstance(value, list) or not value:
        return False
    head = [x for x in value[:5] if isinstance(x, dict)]
    return bool(head) and all(
        ("id" in x or "aweme_id" in x)
        and any(k in x for k in ("desc", "createTime", "create_time", "video"))
        for x in head
    )


def item_like_keys(data: Any) -> list[str]:
    """Keys (``a`` or ``a.b``) outside the known list keys that hold lists of video items.

    Items under such a key mean the response changed its layout (e.g. ``itemList`` renamed),
    not that the listing is empty.
    """
    found: list[str] = []
    if not isinstance(data, dict):
        return found
    for key, value in data.items():
        if key in LIST_KEYS:
            continue
        if _looks_like_items(value):
            found.append(str(key))
        elif isinstance(value, dict):
            found += [f"{key}.{k}" for k, v in value.items() if _looks_like_items(v)]
    return found


def scope_video_count(scope: Any) -> int | None:
    """The video count a tag or user page states (``stats``/``statsV2.videoCount``), if any."""
    for path in (
        ("webapp.challenge-detail", "challengeInfo", "statsV2", "videoCount"),
        ("webapp.challenge-detail", "challengeInfo", "stats", "videoCount"),
        ("webapp.challenge-detail", "challengeInfo", "challenge", "stats", "videoCount"),
        ("webapp.user-detail", "userInfo", "statsV2", "videoCount"),
        ("webapp.user-detail", "userInfo", "stats", "videoCount"),
    ):
        count = parse_count(dig(scope, *path))
        if count is not None:
            return count
    return None


def parse_tiktok_item_list(
    data: Any, listing: str | None = None, *, base_url: str = DEFAULT_BASE_URL
) -> Page:
    """A web item-list API response (challenge, creator, post, recommend, search).

    Paging: ``hasMore`` + ``cursor`` (offset; challenge/search), or ``hasMorePrevious`` with
    the next cursor = ``itemList[-1].createTime * 1000`` (creator). ``extra`` holds
    ``statusCode``, ``has_more``, ``list_key`` (the item-list key present, or None) and
    ``item_like_keys`` (see :func:`item_like_keys`).
    """
    if not isinstance(data, dict):
        return Page()
    raw_items = first(data.get("itemList"), data.get("item_list"), data.get("aweme_list"))
    present = next((k for k in LIST_KEYS if k in data), None)
    list_key = present is not None
    code = first(data.get("statusCode"), data.get("status_code"))
    paging_keys = ("hasMore", "has_more", "hasMorePrevious", "cursor")
    strays = item_like_keys(data)
    recognized = list_key or (code == 0 and any(k in data for k in paging_keys) and not strays)
    items = _items(raw_items, listing, base_url)
    next_token: str | None = None
    has_more: bool | None = None
    if "hasMorePrevious" in data:
        has_more = bool(data.get("hasMorePrevious"))
        if has_more and isinstance(raw_items, list) and raw_items:
            last = raw_items[-1] if isinstance(raw_items[-1], dict) else {}
            ts = parse_count(first(last.get("createTime"), last.get("create_time")))
            if ts:
                next_token = str(ts * 1000)
    else:
        flag = first(data.get("hasMore"), data.get("has_more"))
        has_more = bool(flag) if flag is not None else None
        cursor = as_str(data.get("cursor"))
        if has_more and cursor is not None:
            next_token = cursor
    return Page(
        items=items,
        next_token=next_token,
        recognized=recognized,
        extra={
            "statusCode": code,
            "has_more": has_more,
            "list_key": present,
            "item_like_keys": strays,
        },
    )


def parse_tiktok_scope_items(
    scope: Any, listing: str | None = None, *, base_url: str = DEFAULT_BASE_URL
) -> Page:
    """Items embedded in a universal-data page (``itemList`` of user/challenge detail)."""
    raw: list[Any] = []
    recognized = False
    for key, path in (
        ("webapp.user-detail", ("userInfo", "itemList")),
        ("webapp.challenge-detail", ("itemList",)),
    ):
        detail = dig(scope, key)
        if isinstance(detail, dict):
            recognized = True
            got = dig(detail, *path)
            if isinstance(got, list):
                raw.extend(got)
    struct = dig(scope, "webapp.video-detail", "itemInfo", "itemStruct")
    if isinstance(struct, dict):
        recognized = True
        raw.append(struct)
    return Page(items=_items(raw, listing, base_url), recognized=recognized)


def parse_tiktok_sigi_items(
    state: Any, listing: str | None = None, *, base_url: str = DEFAULT_BASE_URL
) -> Page:
    """Items of a legacy ``SIGI_STATE`` (``ItemModule``, ordered by ``ItemList.*.list``)."""
    if not isinstance(state, dict):
        return Page()
    module = state.get("ItemModule")
    if not isinstance(module, dict):
        return Page()
    users = dig(state, "UserModule", "users", default={})
    order: list[str] = []
    cursor = None
    has_more = None
    for entry in (dig(state, "ItemList", default={}) or {}).values():
        if isinstance(entry, dict) and isinstance(entry.get("list"), list):
            order.extend(str(x) for x in entry["list"] if str(x) not in order)
            has_more = entry.get("hasMore", has_more)
            cursor = entry.get("cursor", cursor)
    order.extend(k for k in module if k not in order)
    raw = [module[k] for k in order if isinstance(module.get(k), dict)]
    next_token = as_str(cursor) if has_more else None
    return Page(
        items=_items(raw, listing, base_url, users=users if isinstance(users, dict) else None),
        next_token=next_token,
        recognized=True,
        extra={"has_more": has_more},
    )
