"""TikTok-shaped pages: universal-data HTML for tags, users and videos; the web item-list APIs."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from typing import Any
from urllib.parse import quote

from fixture_platform import catalog as C
from fixture_platform import webapp as W
from fixture_platform.catalog import Author, Catalog, FixtureVideo, Listing
from fixture_platform.pages import (
    Request,
    Response,
    esc,
    html_response,
    int_param,
    json_response,
    og_video_head,
    page,
    redirect,
    script_json,
    token,
)

UNIVERSAL_ID = "__UNIVERSAL_DATA_FOR_REHYDRATION__"
WAF_COOKIE = "_wafchallengeid"
MAX_COUNT = {"tag": 30, "user": 35, "search": 30}


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def text_extra(desc: str) -> list[dict[str, Any]]:
    """Hashtag spans in ``desc`` with UTF-16 offsets, as TikTok reports them."""
    out = []
    i = 0
    while True:
        i = desc.find("#", i)
        if i < 0:
            break
        j = i + 1
        while j < len(desc) and (desc[j].isalnum() or desc[j] == "_"):
            j += 1
        name = desc[i + 1 : j]
        if name:
            out.append(
                {
                    "awemeId": "",
                    "start": _utf16_len(desc[:i]),
                    "end": _utf16_len(desc[:j]),
                    "hashtagId": C.challenge_id(name),
                    "hashtagName": name,
                    "isCommerce": False,
                    "secUid": "",
                    "subType": 0,
                    "type": 1,
                    "userId": "",
                    "userUniqueId": "",
                }
            )
        i = j
    return out


def author_struct(a: Author, base: str) -> dict[str, Any]:
    avatar = f"{base}/media/avatar/{a.handle}.jpg"
    return {
        "id": a.user_id,
        "uniqueId": a.handle,
        "nickname": a.name,
        "secUid": a.sec_uid,
        "avatarThumb": avatar,
        "avatarMedium": avatar,
        "avatarLarger": avatar,
        "signature": a.bio,
        "verified": a.verified,
        "secret": False,
        "ftc": False,
        "relation": 0,
        "openFavorite": False,
        "commentSetting": 0,
        "duetSetting": 0,
        "stitchSetting": 0,
        "downloadSetting": 0,
        "isADVirtual": False,
        "ttSeller": False,
        "privateAccount": a.handle == C.TIKTOK_PRIVATE_USER,
    }


def item_struct(v: FixtureVideo, base: str) -> dict[str, Any]:
    """The web ``itemStruct`` of a video."""
    mp4, cover = base + v.media_path, base + v.cover_path
    dur = round(v.duration)
    w, h = v.spec.width, v.spec.height
    label = 0
    if v.ai_label:
        label = 1 if int(v.video_id[-1]) % 2 else 2
    stats = {
        "playCount": v.plays,
        "diggCount": v.likes,
        "commentCount": v.comments,
        "shareCount": v.shares,
        "collectCount": v.saves,
    }
    tags = text_extra(v.caption)
    return {
        "id": v.video_id,
        "desc": v.caption,
        "createTime": v.create_time,
        "scheduleTime": 0,
        "video": {
            "id": v.video_id,
            "height": h,
            "width": w,
            "duration": dur,
            "ratio": "360p",
            "cover": cover,
            "originCover": cover,
            "dynamicCover": cover,
            "reflowCover": cover,
            "shareCover": [""],
            "playAddr": mp4,
            "downloadAddr": mp4,
            "format": "mp4",
            "codecType": "h264",
            "definition": "360p",
            "encodedType": "normal",
            "videoQuality": "normal",
            "encodeUserTag": "",
            "bitrate": 180000,
            "bitrateInfo": [
                {
                    "Bitrate": 180000,
                    "CodecType": "h264",
                    "GearName": "normal_360_0",
                    "QualityType": 20,
                    "PlayAddr": {
                        "DataSize": 0,
                        "Uri": f"v0f044{v.video_id[-10:]}",
                        "UrlKey": f"v0f044{v.video_id[-10:]}_h264_360p_180000",
                        "UrlList": [mp4],
                        "Width": w,
                        "Height": h,
                    },
                }
            ],
            "zoomCover": {"240": cover, "480": cover, "720": cover, "960": cover},
            "volumeInfo": {"Loudness": -12.0, "Peak": 0.8},
        },
        "author": author_struct(v.author, base),
        "authorStats": {
            "followerCount": v.author.followers,
            "followingCount": 12,
            "heart": 0,
            "heartCount": 0,
            "videoCount": 0,
            "diggCount": 0,
            "friendCount": 0,
        },
        "music": {
            "id": C.challenge_id("music:" + v.video_id),
            "title": f"original sound - {v.author.name}",
            "authorName": v.author.name,
            "original": True,
            "duration": dur,
            "album": "",
            "playUrl": "",
            "coverThumb": cover,
            "coverMedium": cover,
            "coverLarge": cover,
        },
        "challenges": [
            {
                "id": t["hashtagId"],
                "title": t["hashtagName"],
                "desc": "",
                "profileLarger": "",
                "profileMedium": "",
                "profileThumb": "",
                "coverLarger": "",
                "coverMedium": "",
                "coverThumb": "",
                "isCommerce": False,
            }
            for t in tags
        ],
        "textExtra": tags,
        "contents": [{"desc": v.caption, "textExtra": tags}],
        "stats": stats,
        "statsV2": {**{k: str(n) for k, n in stats.items()}, "repostCount": "0"},
        "IsAigc": v.ai_label,
        "AIGCDescription": "Creator labeled as AI-generated" if v.ai_label else "",
        "aigcLabelType": label,
        "creatorAIComment": {"hasAITopic": False, "notEligibleReason": 101},
        "isAd": False,
        "privateItem": False,
        "secret": False,
        "forFriend": False,
        "digged": False,
        "collected": False,
        "itemMute": False,
        "itemCommentStatus": 0,
        "duetEnabled": True,
        "stitchEnabled": True,
        "shareEnabled": True,
        "duetDisplay": 0,
        "stitchDisplay": 0,
        "officalItem": False,
        "originalItem": False,
        "isActivityItem": False,
        "isContentClassified": False,
        "locationCreated": "JP",
        "diversificationId": 10000 + int(v.video_id[-3:]),
        "suggestedWords": [],
        "textLanguage": "ja" if any(ord(c) > 0x3000 for c in v.caption) else "en",
    }


def _app_context(req: Request) -> dict[str, Any]:
    return {
        "language": "en",
        "region": "JP",
        "appId": 1233,
        "appType": "m",
        "user": {},
        "wid": token("wid", req.base, n=19),
        "webIdCreatedTime": "1795000000",
        "odinId": token("odin", n=19),
        "nonce": token("nonce", req.path, n=12),
        "botType": "others",
        "requestId": token("rid", req.path, time.time()),
        "clusterRegion": "JP",
        "abTestVersion": {"versionName": "fixture"},
        "csrfToken": token("csrf"),
        "userAgent": req.headers.get("user-agent", ""),
        "encryptedWebid": "",
        "host": req.base.split("://", 1)[-1],
    }


def universal_html(title: str, scope: dict[str, Any], head: str = "", body: str = "") -> str:
    data = {"__DEFAULT_SCOPE__": scope}
    script = f'<script id="{UNIVERSAL_ID}" type="application/json">{script_json(data)}</script>'
    return page(title, head, f'<div id="app">{body}</div>\n{script}')


def _listing_tag(cat: Catalog, name: str) -> Listing | None:
    return cat.listing("tiktok", "tag", name)


# -- the PoW interstitial ----------------------------------------------------------------------


def _pow(seed: int) -> tuple[bytes, bytes]:
    """(prefix, expected digest) of the fixture's proof-of-work challenge."""
    prefix = hashlib.sha256(f"fixture-pow:{seed}".encode()).hexdigest()[:24].encode()
    answer = 1000 + seed % 4000
    return prefix, hashlib.sha256(prefix + str(answer).encode()).digest()


def _pow_solved(req: Request, seed: int) -> bool:
    raw = req.cookies.get(WAF_COOKIE)
    if not raw:
        return False
    prefix, digest = _pow(seed)
    try:
        data = json.loads(base64.b64decode(raw + "=" * (-len(raw) % 4)))
        number = base64.b64decode(data["d"])
        a, c = base64.b64decode(data["v"]["a"]), base64.b64decode(data["v"]["c"])
    except (ValueError, KeyError, TypeError):
        return False
    return a == prefix and c == digest and hashlib.sha256(a + number).digest() == digest


def challenge_page(seed: int) -> Response:
    """The 'Please wait...' JS proof-of-work page (no universal data)."""
    prefix, digest = _pow(seed)
    blob = {
        "v": {"a": base64.b64encode(prefix).decode(), "c": base64.b64encode(digest).decode()},
        "s": token("pow-sig", seed, n=43),
        "e": 1,
    }
    cs = base64.b64encode(json.dumps(blob, separators=(",", ":")).encode()).decode().rstrip("=")
    body = (
        "<p>Please wait...</p>\n"
        f'<p id="cs" class="{cs}"></p>\n<p id="wci" class="{WAF_COOKIE}"></p>\n'
        '<p id="rci" class="waforiginalreid"></p>\n'
        f'<p id="rs" class="{token("reid", seed, n=32)}"></p>\n'
        "<script>/* solve sha256(a + i) == c, set the cookie and reload */</script>"
    )
    return html_response(page("Please wait...", body=body))


# -- handlers ----------------------------------------------------------------------------------


def tag_page(req: Request, cat: Catalog, name: str) -> Response:
    key = name.lower()
    if key == C.TIKTOK_LOGINWALL_TAG:
        return redirect(f"{req.base}/login?redirect_url={quote(req.url, safe='')}")
    if key == C.TIKTOK_CHALLENGE_TAG and not _pow_solved(req, cat.seed):
        return challenge_page(cat.seed)
    if key == C.TIKTOK_WAFLOOP_TAG:  # a WAF that never accepts an answer
        return challenge_page(cat.seed + 1 + len(req.cookies.get(WAF_COOKIE, "")))
    listing = _listing_tag(cat, key)
    scope: dict[str, Any] = {"webapp.app-context": _app_context(req), "seo.abtest": {}}
    if listing is None:
        scope["webapp.challenge-detail"] = {
            "statusCode": 10205,
            "statusMsg": "",
            "challengeInfo": {},
            "itemList": [],
        }
        return html_response(
            universal_html(
                "Couldn't find this hashtag | TikTok",
                scope,
                body="<h2>Couldn't find this hashtag</h2>",
            )
        )
    n = len(listing.video_ids)
    views = sum(cat.videos[("tiktok", i)].plays for i in listing.video_ids)
    cid = listing.listing_id
    stats = {"videoCount": n, "viewCount": views}
    scope["webapp.challenge-detail"] = {
        "statusCode": 0,
        "statusMsg": "",
        "challengeInfo": {
            "challenge": {
                "id": cid,
                "title": listing.name,
                "desc": f"Videos tagged #{listing.name}",
                "profileLarger": "",
                "profileMedium": "",
                "profileThumb": "",
                "coverLarger": "",
                "coverMedium": "",
                "coverThumb": "",
                "isCommerce": False,
                "stats": stats,
                "statsV2": {k: str(val) for k, val in stats.items()},
            },
            "stats": stats,
            "statsV2": {k: str(val) for k, val in stats.items()},
        },
        "itemList": [],
    }
    head = (
        f'<meta property="al:android:url" content="snssdk1233://challenge/detail/{cid}">\n'
        f'<meta property="al:ios:url" content="snssdk1233://challenge/detail/{cid}">\n'
        f'<meta property="og:title" content="#{esc(listing.name)} | TikTok">'
    )
    app = W.app_html("tag", {"challengeID": cid, "from_page": "hashtag"})
    return html_response(universal_html(f"#{listing.name} | TikTok", scope, head, app))


def _page_of(listing: Listing, offset: int, count: int) -> tuple[list[str], bool, int]:
    size = min(count, listing.page_size)
    ids = list(listing.video_ids[offset : offset + size])
    end = offset + len(ids)
    return ids, end < len(listing.video_ids), end


def _extra() -> dict[str, Any]:
    return {
        "fatal_item_ids": [],
        "logid": token("log", time.time(), n=30),
        "now": int(time.time() * 1000),
    }


_FLAKY_HITS: dict[str, int] = {}
_FLAKY_LOCK = threading.Lock()


def _flaky_hit(key: str) -> int:
    """Counts requests per flaky page (1, 2, 3, ...) for the life of the process."""
    with _FLAKY_LOCK:
        _FLAKY_HITS[key] = _FLAKY_HITS.get(key, 0) + 1
        return _FLAKY_HITS[key]


def challenge_item_list(req: Request, cat: Catalog) -> Response:
    cid = req.query.get("challengeID", "")
    listing = next(
        (
            lst
            for (p, k, _), lst in cat.listings.items()
            if p == "tiktok" and k == "tag" and lst.listing_id == cid
        ),
        None,
    )
    refused = W.refuse_unsigned(req, "tag", listing.name) if listing is not None else None
    if refused is not None:
        return refused
    if listing is not None and listing.name == C.TIKTOK_BLOCKED_TAG:
        return Response(200, b"", "application/json; charset=utf-8")
    if listing is not None and listing.name == C.TIKTOK_VERIFY_TAG:
        return json_response(
            {
                "type": "verify",
                "code": 10000,
                "subtype": "slide",
                "fp": "verify_" + token("fp", n=24),
                "region": "jp",
            }
        )
    offset = int_param(req.query.get("cursor"), 0, 0, 10**9)
    count = int_param(req.query.get("count"), 30, 1, MAX_COUNT["tag"])
    flaky = listing is not None and listing.name == C.TIKTOK_FLAKY_TAG
    if flaky and _flaky_hit(f"{cid}:{offset}") % 3:  # tries 1 and 2 of each page: empty 200
        return Response(200, b"", "application/json; charset=utf-8")
    if listing is None:
        return json_response(
            {
                "statusCode": 0,
                "status_code": 0,
                "itemList": [],
                "hasMore": False,
                "cursor": str(offset),
                "extra": _extra(),
            }
        )
    ids, more, end = _page_of(listing, offset, count)
    list_key = "items" if listing.name == C.TIKTOK_RENAMED_TAG else "itemList"
    return json_response(
        {
            "statusCode": 0,
            "status_code": 0,
            "statusMsg": "",
            list_key: [item_struct(cat.videos[("tiktok", i)], req.base) for i in ids],
            "hasMore": more,
            "cursor": str(end),
            "extra": _extra(),
            "log_pb": {"impr_id": token("impr", req.query, n=30)},
        }
    )


def user_page(req: Request, cat: Catalog, handle: str) -> Response:
    a = cat.author("tiktok", handle)
    scope: dict[str, Any] = {"webapp.app-context": _app_context(req), "seo.abtest": {}}
    if a is None:
        scope["webapp.user-detail"] = {
            "statusCode": 10221,
            "statusMsg": "user not exist",
            "userInfo": {},
        }
        return html_response(
            universal_html(
                "Couldn't find this account | TikTok",
                scope,
                body="<h2>Couldn't find this account</h2>",
            )
        )
    listing = cat.user_listing(a)
    n = len(listing.video_ids)
    hearts = sum(cat.videos[("tiktok", i)].likes for i in listing.video_ids)
    stats = {
        "followerCount": a.followers,
        "followingCount": 12,
        "heart": hearts,
        "heartCount": hearts,
        "videoCount": n,
        "diggCount": 0,
        "friendCount": 0,
    }
    status = 10222 if a.handle == C.TIKTOK_PRIVATE_USER else 0
    scope["webapp.user-detail"] = {
        "statusCode": status,
        "statusMsg": "",
        "userInfo": {
            "user": author_struct(a, req.base),
            "stats": stats,
            "statsV2": {k: str(val) for k, val in stats.items()},
            "itemList": [],
        },
    }
    title = f"{a.name} (@{a.handle}) | TikTok"
    head = f'<meta property="og:title" content="{esc(title)}">'
    return html_response(universal_html(title, scope, head))


DAY_MS = 86_400_000
WEB_DEVICE_IDS = (7_250_000_000_000_000_000, 7_325_000_000_000_000_000)


def _web_device_id(value: str | None) -> bool:
    """False for a ``device_id`` outside the range web clients get (absent is let through)."""
    if value is None:
        return True
    return value.isdigit() and WEB_DEVICE_IDS[0] <= int(value) <= WEB_DEVICE_IDS[1]


def creator_item_list(req: Request, cat: Catalog) -> Response:
    a = cat.author_by_id("tiktok", req.query.get("secUid", ""))
    now_ms = int(time.time() * 1000)
    cursor = int_param(req.query.get("cursor"), now_ms, 0, 10**15) or now_ms
    count = int_param(req.query.get("count"), 15, 1, MAX_COUNT["user"])
    if a is None or a.handle == C.TIKTOK_PRIVATE_USER:
        return json_response(
            {
                "statusCode": 0,
                "status_code": 0,
                "itemList": [],
                "hasMorePrevious": False,
                "hasMore": False,
                "cursor": str(cursor),
                "extra": _extra(),
            }
        )
    if not _web_device_id(req.query.get("device_id")):
        return Response(200, b"", "application/json; charset=utf-8")
    listing = cat.user_listing(a)
    older = [cat.videos[("tiktok", i)] for i in listing.video_ids]
    older = [v for v in older if v.create_time * 1000 < cursor]
    page_items = older[: min(count, listing.page_size)]
    if a.handle == C.TIKTOK_GAP_USER and older:
        # as the live API: a page covers at most a week before the cursor, so a long break
        # in posting gives empty pages that still claim more
        newest_ms = cat.videos[("tiktok", listing.video_ids[0])].create_time * 1000
        floor = min(cursor, newest_ms + 1) - 7 * DAY_MS
        page_items = [v for v in page_items if v.create_time * 1000 >= floor]
    more = len(older) > len(page_items)
    next_cursor = page_items[-1].create_time * 1000 if page_items else cursor
    return json_response(
        {
            "statusCode": 0,
            "status_code": 0,
            "statusMsg": "",
            "itemList": [item_struct(v, req.base) for v in page_items],
            "hasMorePrevious": more,
            "hasMore": False,
            "cursor": str(next_cursor),
            "extra": _extra(),
            "log_pb": {"impr_id": token("impr", req.query, n=30)},
        }
    )


def search_item_full(req: Request, cat: Catalog) -> Response:
    keyword = req.query.get("keyword", "").strip()
    offset = int_param(req.query.get("offset"), 0, 0, 10**9)
    count = int_param(req.query.get("count"), 12, 1, MAX_COUNT["search"])
    refused = W.refuse_unsigned(req, "search", keyword)
    if refused is not None:
        return refused
    listing = cat.search("tiktok", keyword) if keyword else None
    if listing is None:
        return json_response(
            {"status_code": 0, "item_list": [], "has_more": 0, "cursor": offset, "extra": _extra()}
        )
    ids, more, end = _page_of(listing, offset, count)
    return json_response(
        {
            "status_code": 0,
            "status_msg": "",
            "item_list": [item_struct(cat.videos[("tiktok", i)], req.base) for i in ids],
            "has_more": 1 if more else 0,
            "cursor": end,
            "global_doodle_config": {"keyword": keyword, "search_channel": "tiktok_general_video"},
            "extra": _extra(),
            "log_pb": {"impr_id": token("impr", req.query, n=30)},
            "search_id": token("sid", keyword, n=30),
        }
    )


def video_page(req: Request, cat: Catalog, handle: str, video_id: str) -> Response:
    v = cat.video("tiktok", video_id)
    scope: dict[str, Any] = {"webapp.app-context": _app_context(req), "seo.abtest": {}}
    if v is None:
        scope["webapp.video-detail"] = {"statusCode": 10204, "statusMsg": "item doesn't exist"}
        return html_response(
            universal_html(
                "Video currently unavailable | TikTok",
                scope,
                body="<h2>Video currently unavailable</h2>",
            ),
            404,
        )
    title = f"{v.caption} | TikTok"
    scope["webapp.video-detail"] = {
        "itemInfo": {"itemStruct": item_struct(v, req.base)},
        "statusCode": 0,
        "statusMsg": "",
        "shareMeta": {"title": f"{v.author.name} on TikTok", "desc": v.caption},
    }
    head = og_video_head(v, req.base, title, "TikTok")
    body = f"<h1>{esc(v.caption)}</h1>\n<p>@{esc(v.author.handle)}</p>"
    return html_response(universal_html(title, scope, head, body))


def login_page(req: Request) -> Response:
    body = (
        "<h1>Log in to TikTok</h1>"
        "<p>Manage your account, check notifications, comment on videos, and more.</p>"
    )
    return html_response(page("Log in | TikTok", body=body))
