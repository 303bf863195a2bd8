"""Instagram-shaped responses: the v1 REST APIs for profiles, reels and tag sections, the
profile pages and ``/web/search/topsearch/`` (user id lookups), the login redirects, and reel
pages.

Like the live web app, POSTs from the web client (``X-IG-App-ID`` set, or an ``X-CSRFToken``
sent) need ``X-CSRFToken`` equal to the ``csrftoken`` cookie, answers carry
``x-ig-set-www-claim``, and a request's ``X-IG-WWW-Claim`` must be ``0`` or the claim issued to
its session. Every Instagram request is noted in :data:`REQUEST_LOG` for tests.

User id lookups by account (the rest behave normally):

* :data:`TOPSEARCH_USER`: the profile page has no ``instapp:owner_user_id`` meta (as pages
  served to some clients), topsearch finds the account.
* :data:`PROFILE_INFO_USER`: no meta, not listed by topsearch; ``web_profile_info`` answers.
* :data:`PROFILE_INFO_429_USER`: no meta, not listed by topsearch, ``web_profile_info`` 429.
* ``pleasewait``: ``web_profile_info`` and ``clips/user`` answer 401 "Please wait".
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any
from urllib.parse import quote

from fixture_platform import catalog as C
from fixture_platform.catalog import Author, Catalog, FixtureVideo, Listing
from fixture_platform.pages import (
    Request,
    Response,
    decode_cursor,
    encode_cursor,
    esc,
    html_response,
    int_param,
    json_response,
    not_found,
    og_video_head,
    page,
    redirect,
    token,
)

SESSION_COOKIE = "sessionid"
CSRF_COOKIE = "csrftoken"
CURSOR_PREFIX = "QVFD"
ROW = 3  # medias per media_grid section
PLEASE_WAIT = {
    "message": "Please wait a few minutes before you try again.",
    "require_login": True,
    "status": "fail",
}
CSRF_FAIL = {"message": "CSRF token missing or incorrect", "status": "fail"}
CLAIM_FAIL = {"message": "Invalid X-IG-WWW-Claim", "status": "fail"}
RATE_LIMITED = {"message": "Please wait a few minutes before you try again.", "status": "fail"}

TOPSEARCH_USER = "sakura.edits"
PROFILE_INFO_USER = "mochi.fanclub"
PROFILE_INFO_429_USER = "rina.pixel"
_NO_OWNER_META = (TOPSEARCH_USER, PROFILE_INFO_USER, PROFILE_INFO_429_USER)
_NOT_IN_TOPSEARCH = (PROFILE_INFO_USER, PROFILE_INFO_429_USER)

REQUEST_LOG: deque[dict[str, Any]] = deque(maxlen=5000)
_LOG_LOCK = threading.Lock()


def _log(req: Request, status: int) -> None:
    with _LOG_LOCK:
        REQUEST_LOG.append(
            {
                "method": req.method,
                "path": req.path,
                "query": dict(req.query),
                "form": req.form() if req.method == "POST" else {},
                "status": status,
                "app_id": req.headers.get("x-ig-app-id"),
                "csrf_header": req.headers.get("x-csrftoken"),
                "csrf_cookie": req.cookies.get(CSRF_COOKIE),
                "claim": req.headers.get("x-ig-www-claim"),
                "session": req.cookies.get(SESSION_COOKIE),
            }
        )


def logged(handler: Any) -> Any:
    """Note each request a page handler answers in :data:`REQUEST_LOG`."""

    def wrapper(req: Request, *args: Any) -> Response:
        resp = handler(req, *args)
        _log(req, resp.status)
        return resp

    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


def issued_claim(req: Request) -> str:
    """The ``x-ig-set-www-claim`` value this fixture hands to the request's session."""
    return "hmac." + token("claim", req.cookies.get(SESSION_COOKIE, ""), n=40)


def _api_headers(req: Request) -> list[tuple[str, str]]:
    return [
        ("x-ig-set-www-claim", issued_claim(req)),
        ("x-ig-origin-region", "fixture"),
    ]


def request_failure(req: Request) -> Response | None:
    """403 for a POST whose ``X-CSRFToken`` is not its ``csrftoken`` cookie (as the live site
    does), and for an ``X-IG-WWW-Claim`` that is neither ``0`` nor the claim issued to the
    session."""
    claim = req.headers.get("x-ig-www-claim")
    if claim is not None and claim not in ("0", issued_claim(req)):
        return json_response(CLAIM_FAIL, 403, _api_headers(req))
    if req.method == "POST":
        cookie = req.cookies.get(CSRF_COOKIE, "")
        if not cookie or req.headers.get("x-csrftoken", "") != cookie:
            return json_response(CSRF_FAIL, 403, _api_headers(req))
    return None


def user_struct(a: Author, base: str) -> dict[str, Any]:
    pic = f"{base}/media/avatar/{a.handle}.jpg"
    return {
        "pk": a.user_id,
        "pk_id": a.user_id,
        "id": a.user_id,
        "username": a.handle,
        "full_name": a.name,
        "is_private": False,
        "is_verified": a.verified,
        "profile_pic_id": f"{a.user_id}_{a.user_id}",
        "profile_pic_url": pic,
        "has_anonymous_profile_picture": False,
        "account_badges": [],
        "fbid_v2": token("fbid", a.user_id, n=17),
        "is_unpublished": False,
    }


def media_struct(v: FixtureVideo, base: str) -> dict[str, Any]:
    """The v1 media item of a reel."""
    mp4, cover = base + v.media_path, base + v.cover_path
    w, h = v.spec.width, v.spec.height
    user = user_struct(v.author, base)
    method = "SELF_DISCLOSURE_FLOW" if v.ai_label else "NONE"
    return {
        "taken_at": v.create_time,
        "pk": v.pk,
        "id": f"{v.pk}_{v.author.user_id}",
        "code": v.video_id,
        "media_type": 2,
        "product_type": "clips",
        "device_timestamp": v.create_time * 1_000_000,
        "client_cache_key": token("cck", v.pk),
        "filter_type": 0,
        "caption_is_edited": False,
        "like_and_view_counts_disabled": False,
        "is_paid_partnership": False,
        "is_commercial": False,
        "commerciality_status": "not_commercial",
        "caption": {
            "pk": token("cpk", v.pk, n=17),
            "user_id": v.author.user_id,
            "text": v.caption,
            "type": 1,
            "created_at": v.create_time,
            "created_at_utc": v.create_time,
            "content_type": "comment",
            "status": "Active",
            "bit_flags": 0,
            "did_report_as_spam": False,
            "share_enabled": False,
            "user": user,
            "is_covered": False,
            "media_id": v.pk,
            "private_reply_status": 0,
        },
        "user": user,
        "owner": user,
        "play_count": v.plays,
        "ig_play_count": v.plays,
        "fb_play_count": None,
        "view_count": None,
        "like_count": v.likes,
        "comment_count": v.comments,
        "has_liked": False,
        "video_duration": float(v.duration),
        "has_audio": False,
        "video_versions": [
            {"type": t, "width": w, "height": h, "url": mp4, "id": token("vv", v.pk, t, n=15)}
            for t in (101, 102, 103)
        ],
        "image_versions2": {"candidates": [{"width": w, "height": h, "url": cover}]},
        "original_width": w,
        "original_height": h,
        "is_dash_eligible": 0,
        "number_of_qualities": 1,
        "video_codec": "avc1.64001e",
        "clips_metadata": {
            "audio_type": "original_sounds",
            "music_info": None,
            "original_sound_info": {
                "audio_asset_id": token("aud", v.pk, n=16),
                "original_audio_title": "Original audio",
                "ig_artist": user,
            },
            "is_shared_to_fb": False,
            "mashup_info": {"mashups_allowed": True},
        },
        "coauthor_producers": [],
        "can_viewer_save": True,
        "can_viewer_reshare": True,
        "organic_tracking_token": token("ott", v.pk, n=60),
        "gen_ai_detection_method": {"detection_method": method},
        "has_high_risk_gen_ai_inform_treatment": False,
        "integrity_review_decision": "approved",
        "deleted_reason": 0,
    }


@logged
def web_profile_info(req: Request, cat: Catalog) -> Response:
    failed = request_failure(req)
    if failed is not None:
        return failed
    username = req.query.get("username", "").strip().lstrip("@")
    if username.lower() == C.INSTAGRAM_PLEASEWAIT_USER:
        return json_response(PLEASE_WAIT, 401, _api_headers(req))
    if username.lower() == PROFILE_INFO_429_USER:
        return json_response(RATE_LIMITED, 429, _api_headers(req))
    a = cat.author("instagram", username)
    if a is None:
        return json_response({"data": {"user": None}, "status": "ok"}, 404, _api_headers(req))
    n = len(cat.user_listing(a).video_ids)
    user = {
        "biography": a.bio,
        "external_url": None,
        "edge_followed_by": {"count": a.followers},
        "edge_follow": {"count": 120},
        "full_name": a.name,
        "id": a.user_id,
        "fbid": token("fb", a.user_id, n=17),
        "is_private": False,
        "is_verified": a.verified,
        "is_business_account": False,
        "is_professional_account": False,
        "category_name": None,
        "pronouns": [],
        "profile_pic_url": f"{req.base}/media/avatar/{a.handle}.jpg",
        "profile_pic_url_hd": f"{req.base}/media/avatar/{a.handle}.jpg",
        "username": a.handle,
        "highlight_reel_count": 0,
        "has_clips": n > 0,
        "edge_owner_to_timeline_media": {
            "count": n,
            "page_info": {"has_next_page": n > 0, "end_cursor": None},
            "edges": [],
        },
        "edge_felix_video_timeline": {
            "count": 0,
            "page_info": {"has_next_page": False, "end_cursor": None},
            "edges": [],
        },
    }
    return json_response({"data": {"user": user}, "status": "ok"}, 200, _api_headers(req))


def _offset_from(max_id: str, listing: Listing) -> int | None:
    if not max_id:
        return 0
    data = decode_cursor(CURSOR_PREFIX, max_id)
    if data is None or data.get("n") != listing.name or not isinstance(data.get("o"), int):
        return None
    return max(0, data["o"])


@logged
def clips_user(req: Request, cat: Catalog) -> Response:
    failed = request_failure(req)
    if failed is not None:
        return failed
    form = req.form()
    a = cat.author_by_id("instagram", form.get("target_user_id", ""))
    if a is None:
        return json_response(
            {"message": "Target user not found", "status": "fail"}, 404, _api_headers(req)
        )
    if a.handle == C.INSTAGRAM_PLEASEWAIT_USER:
        return json_response(PLEASE_WAIT, 401, _api_headers(req))
    listing = cat.user_listing(a)
    offset = _offset_from(form.get("max_id", ""), listing)
    if offset is None:
        return json_response(
            {"message": "Invalid max_id", "status": "fail"}, 400, _api_headers(req)
        )
    size = min(int_param(form.get("page_size"), 12, 1, 50), listing.page_size)
    vids = cat.videos_of(listing)[offset : offset + size]
    end = offset + len(vids)
    more = end < len(listing.video_ids)
    return json_response(
        {
            "items": [{"media": media_struct(v, req.base)} for v in vids],
            "paging_info": {
                "max_id": encode_cursor(CURSOR_PREFIX, {"n": listing.name, "o": end})
                if more
                else None,
                "more_available": more,
            },
            "status": "ok",
        },
        200,
        _api_headers(req),
    )


def login_redirect(req: Request, tag: str) -> Response:
    nxt = quote(f"/explore/tags/{tag}/", safe="/")
    return redirect(f"{req.base}/accounts/login/?next={nxt}")


@logged
def tag_sections(req: Request, cat: Catalog, tag: str) -> Response:
    failed = request_failure(req)
    if failed is not None:
        return failed
    if not req.cookies.get(SESSION_COOKIE):
        return login_redirect(req, tag)
    form = req.form()
    listing = cat.listing("instagram", "tag", tag)
    if listing is None:
        return json_response(
            {
                "sections": [],
                "more_available": False,
                "next_max_id": None,
                "next_page": 0,
                "next_media_ids": [],
                "status": "ok",
            },
            200,
            _api_headers(req),
        )
    offset = _offset_from(form.get("max_id", ""), listing)
    if offset is None:
        return json_response(
            {"message": "Invalid max_id", "status": "fail"}, 400, _api_headers(req)
        )
    vids = cat.videos_of(listing)[offset : offset + listing.page_size]
    end = offset + len(vids)
    more = end < len(listing.video_ids)
    sections = []
    for k in range(0, len(vids), ROW):
        row = vids[k : k + ROW]
        sections.append(
            {
                "layout_type": "media_grid",
                "feed_type": "media",
                "layout_content": {"medias": [{"media": media_struct(v, req.base)} for v in row]},
                "explore_item_info": {
                    "num_columns": ROW,
                    "total_num_columns": ROW,
                    "aspect_ratio": 0.75,
                    "autoplay": False,
                },
            }
        )
    page_no = int_param(form.get("page"), 0, 0, 10**6)
    return json_response(
        {
            "sections": sections,
            "more_available": more,
            "next_max_id": encode_cursor(CURSOR_PREFIX, {"n": listing.name, "o": end})
            if more
            else None,
            "next_page": page_no + 1,
            "next_media_ids": [],
            "auto_load_more_enabled": True,
            "status": "ok",
        },
        200,
        _api_headers(req),
    )


def explore_tag_page(req: Request, cat: Catalog, tag: str) -> Response:
    if not req.cookies.get(SESSION_COOKIE):
        return login_redirect(req, tag)
    return html_response(page(f"#{tag} hashtag on Instagram", body=f"<h1>#{esc(tag)}</h1>"))


def login_page(req: Request) -> Response:
    return html_response(page("Login \u2022 Instagram", body="<h1>Instagram</h1><p>Log in</p>"))


def reel_page(req: Request, cat: Catalog, code: str) -> Response:
    v = cat.video("instagram", code)
    if v is None:
        return not_found("Sorry, this page isn't available.")
    title = f"{v.author.name} on Instagram: \u201c{v.caption}\u201d"
    head = og_video_head(v, req.base, title, "Instagram")
    body = f"<h1>{esc(v.author.handle)}</h1>\n<p>{esc(v.caption)}</p>"
    return html_response(page(title, head, body))


def _search_user(a: Author, base: str) -> dict[str, Any]:
    user = user_struct(a, base)
    user.update(
        {
            "friendship_status": {"following": False, "is_private": False},
            "latest_reel_media": 0,
            "search_social_context": f"{a.followers} followers",
            "live_broadcast_visibility": None,
            "live_broadcast_id": None,
        }
    )
    return user


@logged
def topsearch(req: Request, cat: Catalog) -> Response:
    """GET ``/web/search/topsearch/?query=Q``: accounts whose username contains ``Q`` or shares
    a word with it, most followed first (so the exact match is not always first)."""
    failed = request_failure(req)
    if failed is not None:
        return failed
    query = req.query.get("query", "").strip().lstrip("@").lower()
    words = {w for w in query.replace("_", ".").split(".") if len(w) >= 3}
    found = []
    for (platform, handle), a in cat.authors.items():
        if platform != "instagram" or handle in _NOT_IN_TOPSEARCH or not query:
            continue
        name = handle.lower()
        if query in name or words & set(name.replace("_", ".").split(".")):
            found.append(a)
    found.sort(key=lambda a: (-a.followers, a.handle))
    body = {
        "users": [{"position": k, "user": _search_user(a, req.base)} for k, a in enumerate(found)],
        "places": [],
        "hashtags": [],
        "has_more": False,
        "rank_token": token("rank", query, n=36),
        "clear_client_cache": None,
        "status": "ok",
    }
    return json_response(body, 200, _api_headers(req))


@logged
def profile_page(req: Request, cat: Catalog, username: str) -> Response:
    """GET ``/USERNAME/`` (and ``/USERNAME/reels/``): the profile page shell with the
    ``instapp:owner_user_id`` meta; sets a ``csrftoken`` cookie when the request has none."""
    failed = request_failure(req)
    if failed is not None:
        return failed
    headers = list(_api_headers(req))
    if not req.cookies.get(CSRF_COOKIE):
        seed = token("csrf", req.headers.get("user-agent", ""), username, n=43)
        csrf = "".join(c for c in seed if c.isalnum())[:32]
        headers.append(("Set-Cookie", f"{CSRF_COOKIE}={csrf}; Path=/; SameSite=Lax"))
    a = cat.author("instagram", username)
    if a is None:
        resp = not_found("Sorry, this page isn't available.")
        resp.headers.extend(headers)
        return resp
    title = f"{a.name} (@{a.handle}) \u2022 Instagram photos and videos"
    url = f"{req.base}/{quote(a.handle)}/"
    metas = [
        f'<meta property="og:title" content="{esc(title)}">',
        f'<meta property="og:url" content="{esc(url)}">',
        '<meta property="og:type" content="profile">',
        f'<meta property="al:ios:url" content="instagram://user?username={esc(a.handle)}">',
    ]
    if a.handle not in _NO_OWNER_META:
        metas.append(f'<meta property="instapp:owner_user_id" content="{esc(a.user_id)}">')
    body = f"<h1>{esc(a.handle)}</h1>\n<p>{esc(a.bio)}</p>"
    return html_response(page(title, "\n".join(metas), body), 200, headers)
