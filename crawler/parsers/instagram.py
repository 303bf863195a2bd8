"""Instagram parsers: v1 REST (clips/user, tags sections) and legacy/relay GraphQL listings,
plus the user id lookups (profile page meta, ``/web/search/topsearch/``, ``web_profile_info``).

Pure functions from a response body to normalized items. Only videos are kept (reels:
``media_type`` 2 / ``is_video``); photos and carousels are skipped.
"""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from crawler.parsers.common import (
    Page,
    as_str,
    dig,
    epoch_to_dt,
    first,
    hashtags_from_text,
    join_base,
    make_item,
    parse_count,
    parse_duration,
)

PLATFORM = "instagram"
DEFAULT_BASE_URL = "https://www.instagram.com"
WEB_APP_ID = "936619743392459"

MEDIA_TYPE_VIDEO = 2


def reel_url(base_url: str, code: str) -> str:
    return join_base(base_url, f"/reel/{code}/")


def ai_label(media: dict[str, Any]) -> str | None:
    """The platform's AI label of a media item (``gen_ai_detection_method``), or None."""
    parts: list[str] = []
    method = dig(media, "gen_ai_detection_method", "detection_method")
    if isinstance(method, str) and method.strip() and method.upper() != "NONE":
        parts.append(method.strip())
    if media.get("has_high_risk_gen_ai_inform_treatment") is True:
        parts.append("high_risk_gen_ai_inform_treatment")
    return "; ".join(parts) if parts else None


def _best(candidates: Any) -> str | None:
    if not isinstance(candidates, list):
        return None
    best, area = None, -1
    for c in candidates:
        url = dig(c, "url")
        if isinstance(url, str):
            a = (dig(c, "width", default=0) or 0) * (dig(c, "height", default=0) or 0)
            if a > area:
                best, area = url, a
    return best


def parse_instagram_media(
    media: Any, listing: str | None = None, *, base_url: str = DEFAULT_BASE_URL
) -> dict[str, Any] | None:
    """One v1 media item as a normalized item; None for non-videos or without a shortcode."""
    if not isinstance(media, dict):
        return None
    code = as_str(media.get("code"))
    is_video = media.get("media_type") == MEDIA_TYPE_VIDEO or bool(media.get("video_versions"))
    if not code or not is_video:
        return None
    caption = as_str(dig(media, "caption", "text"))
    views = parse_count(first(media.get("play_count"), media.get("ig_play_count")))
    if views is None:
        views = parse_count(media.get("view_count"))
    return make_item(
        platform=PLATFORM,
        platform_id=code,
        url=reel_url(base_url, code),
        author=as_str(dig(media, "user", "username")) or as_str(dig(media, "owner", "username")),
        caption=caption,
        hashtags=hashtags_from_text(caption),
        posted_at=epoch_to_dt(media.get("taken_at")),
        view_count=views,
        like_count=parse_count(media.get("like_count")),
        duration_s=parse_duration(media.get("video_duration")),
        thumbnail_url=_best(dig(media, "image_versions2", "candidates")),
        ai_label=ai_label(media),
        listing=listing,
        raw=media,
    )


def parse_instagram_node(
    node: Any, listing: str | None = None, *, base_url: str = DEFAULT_BASE_URL
) -> dict[str, Any] | None:
    """One legacy GraphQL node (``shortcode``, ``is_video``...); None for non-videos."""
    if not isinstance(node, dict):
        return None
    if "code" in node and "shortcode" not in node:
        return parse_instagram_media(node, listing, base_url=base_url)
    code = as_str(node.get("shortcode"))
    is_video = node.get("is_video") is True or node.get("__typename") == "GraphVideo"
    if not code or not is_video:
        return None
    caption = as_str(dig(node, "edge_media_to_caption", "edges", 0, "node", "text"))
    likes = parse_count(
        first(dig(node, "edge_media_preview_like", "count"), dig(node, "edge_liked_by", "count"))
    )
    return make_item(
        platform=PLATFORM,
        platform_id=code,
        url=reel_url(base_url, code),
        author=as_str(dig(node, "owner", "username")),
        caption=caption,
        hashtags=hashtags_from_text(caption),
        posted_at=epoch_to_dt(node.get("taken_at_timestamp")),
        view_count=parse_count(first(node.get("video_view_count"), node.get("video_play_count"))),
        like_count=likes,
        duration_s=parse_duration(node.get("video_duration")),
        thumbnail_url=as_str(first(node.get("thumbnail_src"), node.get("display_url"))),
        ai_label=ai_label(node),
        listing=listing,
        raw=node,
    )


def _collect(medias: list[Any], listing: str | None, base_url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for m in medias:
        item = parse_instagram_node(m, listing, base_url=base_url)
        if item and item["platform_id"] not in seen:
            seen.add(item["platform_id"])
            out.append(item)
    return out


def parse_instagram_clips(
    data: Any, listing: str | None = None, *, base_url: str = DEFAULT_BASE_URL
) -> Page:
    """POST ``/api/v1/clips/user/``: ``items[].media`` and ``paging_info``."""
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        return Page()
    medias = [first(dig(x, "media"), x) for x in data["items"]]
    more = dig(data, "paging_info", "more_available") is True
    token = as_str(dig(data, "paging_info", "max_id")) if more else None
    return Page(
        items=_collect(medias, listing, base_url),
        next_token=token,
        recognized=True,
        extra={"has_more": more},
    )


def _section_medias(section: Any) -> list[Any]:
    content = dig(section, "layout_content", default={})
    medias: list[Any] = []
    for m in dig(content, "medias", default=[]) or []:
        medias.append(first(dig(m, "media"), m))
    for m in dig(content, "fill_items", default=[]) or []:
        medias.append(first(dig(m, "media"), m))
    for m in dig(content, "one_by_two_item", "clips", "items", default=[]) or []:
        medias.append(first(dig(m, "media"), m))
    return medias


def parse_instagram_sections(
    data: Any, listing: str | None = None, *, base_url: str = DEFAULT_BASE_URL
) -> Page:
    """POST ``/api/v1/tags/TAG/sections/`` (also ``tags/web_info`` ``data.recent``).

    ``next_token`` is ``next_max_id``; ``extra["next_page"]`` the page number to send with it.
    """
    if not isinstance(data, dict):
        return Page()
    root = data
    if "sections" not in root:
        root = first(dig(data, "data", "recent"), dig(data, "data", "top"), dig(data, "recent"))
    if not isinstance(root, dict) or not isinstance(root.get("sections"), list):
        return Page()
    medias: list[Any] = []
    for section in root["sections"]:
        medias.extend(_section_medias(section))
    more = root.get("more_available") is True
    token = as_str(root.get("next_max_id")) if more else None
    return Page(
        items=_collect(medias, listing, base_url),
        next_token=token,
        recognized=True,
        extra={"has_more": more, "next_page": root.get("next_page")},
    )


_GRAPHQL_CONNECTIONS = (
    ("hashtag", "edge_hashtag_to_media"),
    ("user", "edge_owner_to_timeline_media"),
    ("xdt_api__v1__clips__user__connection_v2",),
    ("xdt_api__v1__feed__user_timeline_graphql_connection",),
)


def parse_instagram_graphql(
    data: Any, listing: str | None = None, *, base_url: str = DEFAULT_BASE_URL
) -> Page:
    """GraphQL listings: legacy ``edge_hashtag_to_media`` / ``edge_owner_to_timeline_media``
    and relay ``xdt_api__v1__clips__user__connection_v2`` (``edges[].node.media``)."""
    root = dig(data, "data")
    if not isinstance(root, dict):
        return Page()
    for path in _GRAPHQL_CONNECTIONS:
        conn = dig(root, *path)
        if not isinstance(conn, dict) or not isinstance(conn.get("edges"), list):
            continue
        nodes = []
        for edge in conn["edges"]:
            node = dig(edge, "node")
            nodes.append(first(dig(node, "media"), node) if isinstance(node, dict) else None)
        info = conn.get("page_info") if isinstance(conn.get("page_info"), dict) else {}
        more = info.get("has_next_page") is True
        token = as_str(info.get("end_cursor")) if more else None
        return Page(
            items=_collect(nodes, listing, base_url),
            next_token=token,
            recognized=True,
            extra={"has_more": more, "count": conn.get("count")},
        )
    return Page()


def parse_profile_user_id(data: Any) -> str | None:
    """``data.user.id`` of ``/api/v1/users/web_profile_info/``."""
    return _numeric(first(dig(data, "data", "user", "id"), dig(data, "data", "user", "pk")))


# -- user id lookups -------------------------------------------------------------------------

USER_ID_PREFIX = "id:"
OWNER_META = "instapp:owner_user_id"
_NUMERIC_RE = re.compile(r"\d{1,25}")
_META_RE = re.compile(r"<meta\b[^>]*>", re.IGNORECASE)
_ATTR_RE = re.compile(r"""([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_PAGE_ID_RES = (
    re.compile(r'"profile_id"\s*:\s*"(\d{1,25})"'),
    re.compile(r'"owner_user_id"\s*:\s*"(\d{1,25})"'),
)


def _numeric(value: Any) -> str | None:
    text = as_str(value)
    return text if text and _NUMERIC_RE.fullmatch(text) else None


def is_id_target(target: str) -> bool:
    """Whether a user target is given as ``id:NNN`` rather than a username."""
    return target[: len(USER_ID_PREFIX)].lower() == USER_ID_PREFIX


def user_id_from_target(target: str) -> str | None:
    """The numeric user id of an ``id:NNN`` target; None for usernames and malformed ids."""
    if not is_id_target(target):
        return None
    return _numeric(target[len(USER_ID_PREFIX) :])


def parse_profile_page_user_id(html: str | bytes) -> str | None:
    """The user id of a profile page (``/USERNAME/``).

    The ``<meta property="instapp:owner_user_id" content="NNN">`` tag first, then the
    ``"profile_id":"NNN"`` / ``"owner_user_id":"NNN"`` values of the embedded page data.
    """
    text = html.decode("utf-8", "replace") if isinstance(html, bytes) else html
    for tag in _META_RE.findall(text):
        attrs = {
            m[1].lower(): unescape(first(m[2], m[3], m[4]) or "") for m in _ATTR_RE.finditer(tag)
        }
        if OWNER_META in (attrs.get("property"), attrs.get("name")):
            found = _numeric(attrs.get("content"))
            if found:
                return found
    for pattern in _PAGE_ID_RES:
        m = pattern.search(text)
        if m:
            return m[1]
    return None


def parse_topsearch_user_id(data: Any, username: str) -> str | None:
    """The ``pk`` of the ``users[].user`` whose username is ``username`` (case-insensitive)
    in a ``/web/search/topsearch/`` answer; None when no listed user matches exactly."""
    users = dig(data, "users")
    if not isinstance(users, list):
        return None
    wanted = username.strip().lstrip("@").lower()
    for entry in users:
        user = first(dig(entry, "user"), entry)
        name = as_str(dig(user, "username"))
        if name and name.lower() == wanted:
            found = _numeric(first(dig(user, "pk"), dig(user, "pk_id"), dig(user, "id")))
            if found:
                return found
    return None


def is_topsearch(data: Any) -> bool:
    """Whether a body has the shape of a topsearch answer (a ``users`` list)."""
    return isinstance(dig(data, "users"), list)
