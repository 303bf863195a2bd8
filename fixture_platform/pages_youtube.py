"""YouTube-shaped pages: ytInitialData/ytcfg HTML for hashtags, channel Shorts tabs and search,
the innertube continuation APIs, the channel Atom feed and Shorts video pages.

Continuations come as ``continuationItemRenderer`` on most listings and as the newer
``continuationItemViewModel`` (plain, or wrapped in a ``commandExecutorCommand``) on
``YOUTUBE_VIEWMODEL_TAG`` and on Shorts-filtered searches (``sp=EgIQCQ%3D%3D``), which list
plain ``videoRenderer`` results with a description snippet. The sentinel hashtags of
``catalog`` change the page's shape (renamed renderers, an unknown continuation, a bot check).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from fixture_platform import catalog as C
from fixture_platform.catalog import Author, Catalog, FixtureVideo, Listing
from fixture_platform.pages import (
    Request,
    Response,
    compact_count,
    decode_cursor,
    encode_cursor,
    esc,
    html_response,
    json_response,
    not_found,
    og_video_head,
    page,
    relative_time,
    script_json,
    token,
)

CLIENT_VERSION = "2.20261120.01.00"
BROWSE_PREFIX = "4qmFsgK"
SEARCH_PREFIX = "EqIDEgR"
SHORTS_FILTER = "EgIQCQ=="  # sp= / params of a Shorts-only search
BOT_CHECK_TEXT = "Sign in to confirm you\u2019re not a bot"


def _tp(*parts: object) -> str:
    """A trackingParams-looking value."""
    return "C" + token("tp", *parts, n=39)


def visitor_data(req: Request) -> str:
    return "Cgt" + token("visitor", req.headers.get("user-agent", ""), n=22) + "%3D%3D"


def ytcfg(req: Request, seed: int) -> dict[str, Any]:
    vd = visitor_data(req)
    return {
        "INNERTUBE_API_KEY": "AIzaSy" + token("api-key", seed, n=33),
        "INNERTUBE_API_VERSION": "v1",
        "INNERTUBE_CLIENT_NAME": "WEB",
        "INNERTUBE_CLIENT_VERSION": CLIENT_VERSION,
        "INNERTUBE_CONTEXT": {
            "client": {
                "hl": "en",
                "gl": "US",
                "visitorData": vd,
                "clientName": "WEB",
                "clientVersion": CLIENT_VERSION,
                "originalUrl": req.url,
                "platform": "DESKTOP",
            },
            "user": {"lockedSafetyMode": False},
            "request": {"useSsl": False},
        },
        "INNERTUBE_CONTEXT_CLIENT_NAME": 1,
        "INNERTUBE_CONTEXT_CLIENT_VERSION": CLIENT_VERSION,
        "VISITOR_DATA": vd,
        "XSRF_FIELD_NAME": "session_token",
    }


def yt_page(
    req: Request,
    seed: int,
    title: str,
    initial_data: dict[str, Any] | None,
    head: str = "",
    extra_script: str = "",
    status: int = 200,
) -> Response:
    """A YouTube HTML page with ``ytcfg.set(...)`` and ``var ytInitialData = ...;``."""
    nonce = token("nonce", req.path, n=22)
    scripts = [f'<script nonce="{nonce}">ytcfg.set({script_json(ytcfg(req, seed))});</script>']
    if extra_script:
        scripts.append(f'<script nonce="{nonce}">{extra_script}</script>')
    if initial_data is not None:
        scripts.append(
            f'<script nonce="{nonce}">var ytInitialData = {script_json(initial_data)};</script>'
        )
    return html_response(
        page(title, head, "\n".join(['<div id="content"></div>', *scripts])), status
    )


def _response_context(req: Request) -> dict[str, Any]:
    return {
        "visitorData": visitor_data(req),
        "serviceTrackingParams": [
            {"service": "GFEEDBACK", "params": [{"key": "route", "value": "channel."}]}
        ],
        "maxAgeSeconds": 300,
    }


def _thumbs(v: FixtureVideo, base: str) -> list[dict[str, Any]]:
    return [{"url": base + v.cover_path, "width": v.spec.width, "height": v.spec.height}]


def _long_views(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}".removesuffix(".0") + " million"
    if n >= 1000:
        return f"{n // 1000} thousand"
    return str(n)


def _reel_endpoint(v: FixtureVideo, base: str) -> dict[str, Any]:
    return {
        "clickTrackingParams": _tp("reel", v.video_id),
        "commandMetadata": {
            "webCommandMetadata": {
                "url": f"/shorts/{v.video_id}",
                "webPageType": "WEB_PAGE_TYPE_SHORTS",
                "rootVe": 37414,
            }
        },
        "reelWatchEndpoint": {
            "videoId": v.video_id,
            "playerParams": token("pp", v.video_id, n=48),
            "thumbnail": {"thumbnails": _thumbs(v, base), "isOriginalAspectRatio": True},
            "overlay": {
                "reelPlayerOverlayRenderer": {
                    "style": "REEL_PLAYER_OVERLAY_STYLE_SHORTS",
                    "trackingParams": _tp("ov", v.video_id),
                    "reelPlayerNavigationModel": "REEL_PLAYER_NAVIGATION_MODEL_UNSPECIFIED",
                }
            },
            "params": token("params", v.video_id, n=40),
            "sequenceProvider": "REEL_WATCH_SEQUENCE_PROVIDER_RPC",
        },
    }


def shorts_lockup(v: FixtureVideo, base: str, index: int) -> dict[str, Any]:
    """A ``shortsLockupViewModel``: id, title, views and thumbnail only (as on the real site)."""
    return {
        "entityId": f"shorts-shelf-item-{v.video_id}",
        "accessibilityText": f"{v.caption}, {_long_views(v.plays)} views \u2013 play Short",
        "thumbnailViewModel": {"thumbnailViewModel": {"image": {"sources": _thumbs(v, base)}}},
        "onTap": {"innertubeCommand": _reel_endpoint(v, base)},
        "overlayMetadata": {
            "primaryText": {"content": v.caption},
            "secondaryText": {"content": f"{compact_count(v.plays)} views"},
        },
        "indexInCollection": index,
        "menuOnTapA11yLabel": "More actions",
        "loggingDirectives": {
            "trackingParams": _tp("lk", v.video_id),
            "visibility": {"types": "12"},
        },
    }


def _byline(a: Author) -> dict[str, Any]:
    return {
        "runs": [
            {
                "text": a.name,
                "navigationEndpoint": {
                    "clickTrackingParams": _tp("by", a.user_id),
                    "commandMetadata": {
                        "webCommandMetadata": {
                            "url": f"/@{a.handle}",
                            "webPageType": "WEB_PAGE_TYPE_CHANNEL",
                            "rootVe": 3611,
                            "apiUrl": "/youtubei/v1/browse",
                        }
                    },
                    "browseEndpoint": {"browseId": a.user_id, "canonicalBaseUrl": f"/@{a.handle}"},
                },
            }
        ]
    }


def description_snippet(v: FixtureVideo) -> str:
    """The description snippet search shows under a result (not the title)."""
    return f"New Shorts from {v.author.name} every week, follow for more! #shorts"


def video_renderer(v: FixtureVideo, base: str) -> dict[str, Any]:
    """A ``videoRenderer`` for a Short (reelWatchEndpoint, /shorts/ URL, SHORTS overlay)."""
    secs = round(v.duration)
    length = f"{secs // 60}:{secs % 60:02d}"
    views = f"{v.plays:,} views"
    when = relative_time(v.create_time)
    out: dict[str, Any] = {
        "videoId": v.video_id,
        "thumbnail": {"thumbnails": _thumbs(v, base)},
        "title": {
            "runs": [{"text": v.caption}],
            "accessibility": {
                "accessibilityData": {
                    "label": f"{v.caption} by {v.author.name} {views} {when} "
                    f"{secs} seconds \u2013 play Short"
                }
            },
        },
        "longBylineText": _byline(v.author),
        "ownerText": _byline(v.author),
        "shortBylineText": _byline(v.author),
        "publishedTimeText": {"simpleText": relative_time(v.create_time)},
        "lengthText": {
            "accessibility": {"accessibilityData": {"label": f"{secs} seconds"}},
            "simpleText": length,
        },
        "viewCountText": {"simpleText": views},
        "shortViewCountText": {
            "accessibility": {"accessibilityData": {"label": f"{_long_views(v.plays)} views"}},
            "simpleText": f"{compact_count(v.plays)} views",
        },
        "navigationEndpoint": _reel_endpoint(v, base),
        "detailedMetadataSnippets": [
            {"snippetText": {"runs": [{"text": description_snippet(v)}]}, "maxOneLine": False}
        ],
        "thumbnailOverlays": [
            {
                "thumbnailOverlayTimeStatusRenderer": {
                    "text": {
                        "accessibility": {"accessibilityData": {"label": "Shorts"}},
                        "simpleText": "SHORTS",
                    },
                    "style": "SHORTS",
                    "icon": {"iconType": "YOUTUBE_SHORTS_FILL_NO_TRIANGLE_RED_16"},
                }
            }
        ],
        "trackingParams": _tp("vr", v.video_id),
        "showActionMenu": False,
        "searchVideoResultEntityKey": token("ek", v.video_id, n=24),
    }
    if v.author.verified:
        out["ownerBadges"] = [
            {
                "metadataBadgeRenderer": {
                    "icon": {"iconType": "CHECK_CIRCLE_THICK"},
                    "style": "BADGE_STYLE_TYPE_VERIFIED",
                    "tooltip": "Verified",
                    "accessibilityData": {"label": "Verified"},
                }
            }
        ]
    return out


def _continuation(tok: str, api: str, style: str = "renderer") -> dict[str, Any]:
    """A continuation entry. ``style``: ``renderer`` (continuationItemRenderer), ``viewmodel``
    (continuationItemViewModel), ``executor`` (the view model's command wrapped in a
    commandExecutorCommand) or ``unknown`` (a shape no parser knows)."""
    command = {
        "clickTrackingParams": _tp("cont", tok),
        "commandMetadata": {"webCommandMetadata": {"sendPost": True, "apiUrl": api}},
        "continuationCommand": {
            "token": tok,
            "request": "CONTINUATION_REQUEST_TYPE_BROWSE"
            if api.endswith("browse")
            else "CONTINUATION_REQUEST_TYPE_SEARCH",
        },
    }
    if style == "renderer":
        return {
            "continuationItemRenderer": {
                "trigger": "CONTINUATION_TRIGGER_ON_ITEM_SHOWN",
                "continuationEndpoint": command,
            }
        }
    if style == "executor":
        signal = {"signalServiceEndpoint": {"signal": "CLIENT_SIGNAL", "actions": []}}
        command = {"commandExecutorCommand": {"commands": [signal, command]}}
    if style == "unknown":
        return {"paginationItemViewModel": {"onShown": {"fetchCommand": command}}}
    return {
        "continuationItemViewModel": {
            "trigger": "CONTINUATION_TRIGGER_ON_ITEM_SHOWN",
            "continuationCommand": {"innertubeCommand": command},
            "loggingDirectives": {"trackingParams": _tp("contvm", tok)},
        }
    }


def _continuation_style(listing: Listing, offset: int) -> str:
    """How a browse listing serves its continuation on the page starting at ``offset``."""
    if listing.name == C.YOUTUBE_VIEWMODEL_TAG:
        return "viewmodel" if offset == 0 else "executor"
    if listing.name == C.YOUTUBE_ONEPAGE_TAG:
        return "unknown"
    return "renderer"


def _grid_items(
    cat: Catalog, listing: Listing, offset: int, base: str, mixed: bool, kind: str
) -> list[dict[str, Any]]:
    """One page of richItemRenderers (+ a continuation when more remain)."""
    ids = listing.video_ids[offset : offset + listing.page_size]
    items: list[dict[str, Any]] = []
    for k, vid in enumerate(ids):
        v = cat.videos[("youtube", vid)]
        idx = offset + k
        if mixed and idx % 4 == 3:
            content = {"videoRenderer": video_renderer(v, base)}
        else:
            content = {"shortsLockupViewModel": shorts_lockup(v, base, idx)}
        items.append({"richItemRenderer": {"content": content, "trackingParams": _tp("ri", vid)}})
    end = offset + len(ids)
    if end < len(listing.video_ids):
        tok = encode_cursor(BROWSE_PREFIX, {"k": kind, "n": listing.name, "o": end})
        items.append(
            _continuation(tok, "/youtubei/v1/browse", _continuation_style(listing, offset))
        )
    return items


def _rich_grid(contents: list[dict[str, Any]], target: str) -> dict[str, Any]:
    return {
        "richGridRenderer": {
            "contents": contents,
            "trackingParams": _tp("grid", target),
            "targetId": target,
            "style": "RICH_GRID_STYLE_SLIM",
        }
    }


def hashtag_page(req: Request, cat: Catalog, name: str, hits: int) -> Response:
    """``/hashtag/{name}``; ``hits`` counts requests to this path (for the rate-limit case)."""
    key = name.lower()
    if key == C.YOUTUBE_RATELIMIT_TAG and hits <= C.YOUTUBE_RATELIMIT_COUNT:
        body = page(
            "Error 429 (Too Many Requests)",
            body="<h1>429.</h1><p>We're sorry... but your computer or network may be "
            "sending automated queries.</p>",
        )
        return Response(429, body.encode(), "text/html; charset=utf-8", [("Retry-After", "1")])
    if key == C.YOUTUBE_BOTCHECK_TAG:
        return bot_check_page()
    listing = cat.listing("youtube", "tag", key)
    if key == C.YOUTUBE_EMPTY_TAG:
        listing = Listing("youtube", "tag", key, (), 48, key)
    if listing is None:
        return not_found("This page isn't available. Sorry about that.")
    title = f"#{listing.name} - YouTube"
    header = {
        "hashtagHeaderRenderer": {
            "hashtag": {"simpleText": f"#{listing.name}"},
            "hashtagInfoText": {
                "simpleText": f"{len(listing.video_ids)} videos \u00b7 "
                f"{len({cat.videos[('youtube', i)].author for i in listing.video_ids})} channels"
            },
            "trackingParams": _tp("hh", key),
        }
    }
    if key == C.YOUTUBE_LAYOUT_TAG:
        tiles = [
            {
                "mediaTileViewModel": {
                    "contentId": vid,
                    "headline": {"text": cat.videos[("youtube", vid)].caption},
                }
            }
            for vid in listing.video_ids
        ]
        content: dict[str, Any] = {"feedGridViewModelV2": {"tiles": tiles, "layout": "GRID_V2"}}
        header = {"pageHeaderViewModelV2": {"title": {"content": f"#{listing.name}"}}}
    else:
        items = _grid_items(cat, listing, 0, req.base, True, "tag")
        if key == C.YOUTUBE_RENAMED_TAG:
            items = [_renamed(i) for i in items]
        content = _rich_grid(items, "browse-feedFEhashtag")
    data = {
        "responseContext": _response_context(req),
        "contents": {
            "twoColumnBrowseResultsRenderer": {
                "tabs": [
                    {
                        "tabRenderer": {
                            "selected": True,
                            "content": content,
                            "trackingParams": _tp("tab", key),
                        }
                    }
                ]
            }
        },
        "header": header,
        "trackingParams": _tp("page", key),
        "microformat": {
            "microformatDataRenderer": {
                "urlCanonical": f"{req.base}/hashtag/{listing.name}",
                "title": title,
                "noindex": False,
            }
        },
    }
    return yt_page(req, cat.seed, title, data)


def _renamed(entry: dict[str, Any]) -> dict[str, Any]:
    """A grid entry whose item renderer got a new name (the container stays the same)."""
    content = entry.get("richItemRenderer", {}).get("content")
    if not isinstance(content, dict):
        return entry
    renamed = {
        k.replace("Renderer", "RendererV2").replace("ViewModel", "ViewModelV2"): v
        for k, v in content.items()
    }
    return {"richItemRenderer": {**entry["richItemRenderer"], "content": renamed}}


def bot_check_page() -> Response:
    """The answer to a client YouTube takes for a bot: a page without ytInitialData."""
    body = (
        f"<h1>{esc(BOT_CHECK_TEXT)}</h1><p>This helps protect our community.</p>"
        '<a href="/signin">Sign in</a>'
    )
    return html_response(page("YouTube", body=body))


def _channel_tabs(a: Author, content: dict[str, Any]) -> list[dict[str, Any]]:
    tabs = []
    for name, slug in (
        ("Home", "featured"),
        ("Videos", "videos"),
        ("Shorts", "shorts"),
        ("Playlists", "playlists"),
        ("Posts", "posts"),
    ):
        tab: dict[str, Any] = {
            "endpoint": {
                "clickTrackingParams": _tp("tabep", a.user_id, slug),
                "commandMetadata": {
                    "webCommandMetadata": {
                        "url": f"/@{a.handle}/{slug}",
                        "webPageType": "WEB_PAGE_TYPE_CHANNEL",
                        "rootVe": 3611,
                        "apiUrl": "/youtubei/v1/browse",
                    }
                },
                "browseEndpoint": {
                    "browseId": a.user_id,
                    "params": token("tabp", slug, n=24),
                    "canonicalBaseUrl": f"/@{a.handle}",
                },
            },
            "title": name,
            "trackingParams": _tp("tab", a.user_id, slug),
        }
        if slug == "shorts":
            tab["selected"] = True
            tab["content"] = content
        tabs.append({"tabRenderer": tab})
    tabs.append({"expandableTabRenderer": {"title": "Search", "selected": False}})
    return tabs


def channel_metadata(a: Author, base: str) -> dict[str, Any]:
    return {
        "channelMetadataRenderer": {
            "title": a.name,
            "description": a.bio,
            "rssUrl": f"{base}/feeds/videos.xml?channel_id={a.user_id}",
            "externalId": a.user_id,
            "keywords": "",
            "ownerUrls": [f"http://www.youtube.com/@{a.handle}"],
            "avatar": {
                "thumbnails": [
                    {"url": f"{base}/media/avatar/{a.handle}.jpg", "width": 176, "height": 176}
                ]
            },
            "channelUrl": f"{base}/channel/{a.user_id}",
            "isFamilySafe": True,
            "vanityChannelUrl": f"http://www.youtube.com/@{a.handle}",
        }
    }


def channel_shorts_page(req: Request, cat: Catalog, handle_or_id: str) -> Response:
    a = cat.author("youtube", handle_or_id) or cat.author_by_id("youtube", handle_or_id)
    if a is None:
        return not_found("This page isn't available. Sorry about that.")
    listing = cat.user_listing(a)
    grid = _rich_grid(
        _grid_items(cat, listing, 0, req.base, False, "user"), "browse-feed" + a.user_id
    )
    title = f"{a.name} - YouTube"
    data = {
        "responseContext": _response_context(req),
        "contents": {"twoColumnBrowseResultsRenderer": {"tabs": _channel_tabs(a, grid)}},
        "header": {
            "pageHeaderRenderer": {
                "pageTitle": a.name,
                "content": {
                    "pageHeaderViewModel": {
                        "title": {"dynamicTextViewModel": {"text": {"content": a.name}}}
                    }
                },
            }
        },
        "metadata": channel_metadata(a, req.base),
        "trackingParams": _tp("chan", a.user_id),
        "microformat": {
            "microformatDataRenderer": {
                "urlCanonical": f"{req.base}/channel/{a.user_id}",
                "title": a.name,
                "description": a.bio,
                "noindex": False,
            }
        },
    }
    return yt_page(req, cat.seed, title, data)


def _search_section(
    cat: Catalog, listing: Listing, offset: int, base: str, shorts: bool = False
) -> list[dict[str, Any]]:
    """One page of search results: videoRenderers with a Shorts ``gridShelfViewModel`` inside
    (``shorts``: the Shorts filter's plain list of videoRenderers)."""
    vids = [
        cat.videos[("youtube", i)] for i in listing.video_ids[offset : offset + listing.page_size]
    ]
    if not vids and offset == 0:
        return [_no_results()]
    if shorts:
        return [{"videoRenderer": video_renderer(v, base)} for v in vids]
    n_shelf = len(vids) // 3
    plain, shelf = vids[: len(vids) - n_shelf], vids[len(vids) - n_shelf :]
    items: list[dict[str, Any]] = [{"videoRenderer": video_renderer(v, base)} for v in plain]
    if shelf:
        grid = {
            "gridShelfViewModel": {
                "contents": [
                    {"shortsLockupViewModel": shorts_lockup(v, base, k)}
                    for k, v in enumerate(shelf)
                ],
                "header": {"sectionHeaderViewModel": {"headline": {"content": "Shorts"}}},
                "contentAspectRatio": "GRID_SHELF_CONTENT_ASPECT_RATIO_TWO_BY_THREE",
                "enableVerticalExpansion": True,
                "minCollapsedItemCount": 3,
            }
        }
        items.insert(min(1, len(items)), grid)
    return items


def _no_results() -> dict[str, Any]:
    return {
        "backgroundPromoRenderer": {
            "icon": {"iconType": "EMPTY_SEARCH"},
            "title": {"runs": [{"text": "No results found"}]},
            "bodyText": {"runs": [{"text": "Try different keywords or remove search filters"}]},
        }
    }


def _search_next(listing: Listing, offset: int, shorts: bool = False) -> str | None:
    end = offset + listing.page_size
    if end < len(listing.video_ids):
        data: dict[str, Any] = {"q": listing.name, "o": end}
        if shorts:
            data["s"] = 1
        return encode_cursor(SEARCH_PREFIX, data)
    return None


def _search_continuation(tok: str, offset: int, shorts: bool) -> dict[str, Any]:
    """Shorts-filtered results page with view-model continuations, the others with renderers."""
    style = ("viewmodel" if offset == 0 else "executor") if shorts else "renderer"
    return _continuation(tok, "/youtubei/v1/search", style)


def _search_data(req: Request, cat: Catalog, query: str, shorts: bool = False) -> dict[str, Any]:
    listing = cat.search("youtube", query)
    section = [
        {
            "itemSectionRenderer": {
                "contents": _search_section(cat, listing, 0, req.base, shorts),
                "trackingParams": _tp("is", query),
            }
        }
    ]
    nxt = _search_next(listing, 0, shorts)
    if nxt:
        section.append(_search_continuation(nxt, 0, shorts))
    return {
        "responseContext": _response_context(req),
        "estimatedResults": str(len(listing.video_ids)),
        "contents": {
            "twoColumnSearchResultsRenderer": {
                "primaryContents": {
                    "sectionListRenderer": {
                        "contents": section,
                        "trackingParams": _tp("sl", query),
                        "hideBottomSeparator": True,
                        "targetId": "search-feed",
                    }
                }
            }
        },
        "header": {
            "searchHeaderRenderer": {
                "chipBar": {
                    "chipCloudRenderer": {
                        "chips": [
                            {
                                "chipCloudChipRenderer": {
                                    "text": {"simpleText": "All"},
                                    "isSelected": not shorts,
                                }
                            },
                            {
                                "chipCloudChipRenderer": {
                                    "text": {"simpleText": "Shorts"},
                                    "isSelected": shorts,
                                }
                            },
                        ]
                    }
                }
            }
        },
        "trackingParams": _tp("search", query),
        "targetId": "search-page",
    }


def search_page(req: Request, cat: Catalog) -> Response:
    query = req.query.get("search_query", req.query.get("q", "")).strip()
    if not query:
        return Response(303, b"", headers=[("Location", f"{req.base}/")])
    shorts = req.query.get("sp", "") == SHORTS_FILTER
    return yt_page(req, cat.seed, f"{query} - YouTube", _search_data(req, cat, query, shorts))


def _api_error(message: str, status: int = 400) -> Response:
    return json_response(
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"message": message, "domain": "global", "reason": "badRequest"}],
                "status": "INVALID_ARGUMENT" if status == 400 else "NOT_FOUND",
            }
        },
        status,
    )


def browse_api(req: Request, cat: Catalog) -> Response:
    body = req.json()
    if not isinstance(body, dict):
        return _api_error("Invalid JSON payload received.")
    data = decode_cursor(BROWSE_PREFIX, str(body.get("continuation") or ""))
    if data is None:
        return _api_error("Request contains an invalid argument.")
    kind, name = data.get("k"), str(data.get("n", ""))
    listing = (
        cat.listing("youtube", "tag", name)
        if kind == "tag"
        else cat.listing("youtube", "user", name)
    )
    offset = data.get("o")
    if listing is None or not isinstance(offset, int) or offset < 0:
        return _api_error("Requested entity was not found.", 404)
    items = _grid_items(cat, listing, offset, req.base, kind == "tag", str(kind))
    return json_response(
        {
            "responseContext": _response_context(req),
            "trackingParams": _tp("browse", name, offset),
            "onResponseReceivedActions": [
                {
                    "clickTrackingParams": _tp("act", name, offset),
                    "appendContinuationItemsAction": {
                        "continuationItems": items,
                        "targetId": "browse-feedFEhashtag"
                        if kind == "tag"
                        else "browse-feed" + name,
                    },
                }
            ],
        }
    )


def search_api(req: Request, cat: Catalog) -> Response:
    body = req.json()
    if not isinstance(body, dict):
        return _api_error("Invalid JSON payload received.")
    if body.get("continuation"):
        data = decode_cursor(SEARCH_PREFIX, str(body["continuation"]))
        if data is None or not isinstance(data.get("o"), int) or data["o"] < 0:
            return _api_error("Request contains an invalid argument.")
        listing = cat.search("youtube", str(data.get("q", "")))
        offset = data["o"]
        shorts = bool(data.get("s"))
        items: list[dict[str, Any]] = [
            {
                "itemSectionRenderer": {
                    "contents": _search_section(cat, listing, offset, req.base, shorts),
                    "trackingParams": _tp("is", listing.name, offset),
                }
            }
        ]
        nxt = _search_next(listing, offset, shorts)
        if nxt:
            items.append(_search_continuation(nxt, offset, shorts))
        return json_response(
            {
                "responseContext": _response_context(req),
                "estimatedResults": str(len(listing.video_ids)),
                "trackingParams": _tp("search", listing.name, offset),
                "onResponseReceivedCommands": [
                    {
                        "clickTrackingParams": _tp("cmd", offset),
                        "appendContinuationItemsAction": {
                            "continuationItems": items,
                            "targetId": "search-feed",
                        },
                    }
                ],
            }
        )
    query = str(body.get("query") or "").strip()
    if not query:
        return _api_error("Request contains an invalid argument.")
    return json_response(_search_data(req, cat, query, body.get("params") == SHORTS_FILTER))


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def rss_feed(req: Request, cat: Catalog) -> Response:
    cid = req.query.get("channel_id", "")
    pl = req.query.get("playlist_id", "")
    if not cid and pl.startswith(("UUSH", "UULF", "UU")):
        cid = "UC" + pl[4:] if pl.startswith(("UUSH", "UULF")) else "UC" + pl[2:]
    a = cat.author_by_id("youtube", cid) if cid else None
    if a is None:
        return Response(404, b"", "text/html; charset=utf-8")
    vids = cat.videos_of(cat.user_listing(a))[:15]
    base = req.base
    entries = []
    for v in vids:
        entries.append(f"""  <entry>
    <id>yt:video:{v.video_id}</id>
    <yt:videoId>{v.video_id}</yt:videoId>
    <yt:channelId>{a.user_id}</yt:channelId>
    <title>{esc(v.caption)}</title>
    <link rel="alternate" href="{base}/shorts/{v.video_id}"/>
    <author>
      <name>{esc(a.name)}</name>
      <uri>{base}/channel/{a.user_id}</uri>
    </author>
    <published>{_iso(v.create_time)}</published>
    <updated>{_iso(v.create_time + 3600)}</updated>
    <media:group>
      <media:title>{esc(v.caption)}</media:title>
      <media:content url="{base}/v/{v.video_id}?version=3"
        type="application/x-shockwave-flash" width="640" height="390"/>
      <media:thumbnail url="{base}{v.cover_path}" width="{v.spec.width}" height="{v.spec.height}"/>
      <media:description>{esc(v.caption)}</media:description>
      <media:community>
        <media:starRating count="{v.likes}" average="5.00" min="1" max="5"/>
        <media:statistics views="{v.plays}"/>
      </media:community>
    </media:group>
  </entry>""")
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns:yt="http://www.youtube.com/xml/schemas/2015"
      xmlns:media="http://search.yahoo.com/mrss/" xmlns="http://www.w3.org/2005/Atom">
  <link rel="self" href="{base}/feeds/videos.xml?channel_id={a.user_id}"/>
  <id>yt:channel:{a.user_id[2:]}</id>
  <yt:channelId>{a.user_id[2:]}</yt:channelId>
  <title>{esc(a.name)}</title>
  <link rel="alternate" href="{base}/channel/{a.user_id}"/>
  <author>
    <name>{esc(a.name)}</name>
    <uri>{base}/channel/{a.user_id}</uri>
  </author>
  <published>{_iso(min((v.create_time for v in vids), default=C.BASE_TIME))}</published>
{chr(10).join(entries)}
</feed>
"""
    return Response(
        200,
        xml.encode("utf-8"),
        "text/xml; charset=UTF-8",
        [("Cache-Control", "public, max-age=900")],
    )


def video_page(req: Request, cat: Catalog, video_id: str) -> Response:
    v = cat.video("youtube", video_id)
    if v is None:
        return yt_page(req, cat.seed, "YouTube", None, status=404)
    title = f"{v.caption} - YouTube"
    player = {
        "playabilityStatus": {"status": "OK", "playableInEmbed": True},
        "videoDetails": {
            "videoId": v.video_id,
            "title": v.caption,
            "lengthSeconds": str(math.ceil(v.duration)),
            "keywords": v.hashtags,
            "channelId": v.author.user_id,
            "isOwnerViewing": False,
            "shortDescription": v.caption,
            "isCrawlable": True,
            "thumbnail": {"thumbnails": _thumbs(v, req.base)},
            "allowRatings": True,
            "viewCount": str(v.plays),
            "author": v.author.name,
            "isPrivate": False,
            "isUnpluggedCorpus": False,
            "isLiveContent": False,
        },
        "microformat": {
            "playerMicroformatRenderer": {
                "title": {"simpleText": v.caption},
                "description": {"simpleText": v.caption},
                "lengthSeconds": str(math.ceil(v.duration)),
                "ownerProfileUrl": f"http://www.youtube.com/@{v.author.handle}",
                "externalChannelId": v.author.user_id,
                "ownerChannelName": v.author.name,
                "isFamilySafe": True,
                "isUnlisted": False,
                "hasYpcMetadata": False,
                "category": "Entertainment",
                "publishDate": _iso(v.create_time),
                "uploadDate": _iso(v.create_time),
                "isShortsEligible": True,
                "viewCount": str(v.plays),
                "likeCount": str(v.likes),
            }
        },
    }
    head = og_video_head(v, req.base, v.caption, "YouTube")
    return yt_page(
        req,
        cat.seed,
        title,
        {"responseContext": _response_context(req)},
        head,
        f"var ytInitialPlayerResponse = {script_json(player)};",
    )
