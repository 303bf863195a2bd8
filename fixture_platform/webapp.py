"""The TikTok web app of the fixture: a script that loads item lists with a JS-computed signature.

The tag page (``/tag/NAME``) and the search page (``/search/video?q=...``) load ``/webapp/app.js``.
On load, and whenever the window is scrolled near its end, the script fetches the next page of
the listing's item list with the web client's query block plus ``X-Bogus``: a signature of the
sorted query that only this script computes (FNV-1a over ``SIGN_SALT?k1=v1&k2=v2...``). The
item-list endpoints answer a signed-only listing (``TIKTOK_SIGNED_TAG``,
``TIKTOK_SIGNED_SEARCH``) with an empty 200 body unless the request carries a valid signature,
as the live site does; every other listing works with or without one.
"""

from __future__ import annotations

from typing import Any

from fixture_platform import catalog as C
from fixture_platform.catalog import Catalog
from fixture_platform.pages import Request, Response, esc, page, script_json

SIGN_PARAM = "X-Bogus"
SIGN_SALT = "fixture-webapp-v1"
SCRIPT_PATH = "/webapp/app.js"
CONFIG_ID = "webapp-config"
SIGNED_ONLY = {("tag", C.TIKTOK_SIGNED_TAG), ("search", C.TIKTOK_SIGNED_SEARCH)}

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv1a32(data: bytes) -> int:
    """32-bit FNV-1a of ``data``."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def canonical_query(query: dict[str, str]) -> str:
    """The signed text: ``k=v`` pairs sorted by key, ``&``-joined, without the signature."""
    return "&".join(f"{k}={query[k]}" for k in sorted(query) if k != SIGN_PARAM)


def signature(query: dict[str, str]) -> str:
    """The ``X-Bogus`` value of a query (8 lower-case hex digits)."""
    return f"{fnv1a32(f'{SIGN_SALT}?{canonical_query(query)}'.encode()):08x}"


def is_signed(req: Request) -> bool:
    """True when the request carries the web app's valid signature."""
    given = req.query.get(SIGN_PARAM, "")
    return bool(given) and given == signature(req.query)


def refuse_unsigned(req: Request, kind: str, name: str) -> Response | None:
    """The live site's answer to an unsigned item-list request for a signed-only listing (an
    empty 200 body), or None when the request may be answered normally."""
    key = " ".join(name.strip().lower().split())
    if (kind, key) in SIGNED_ONLY and not is_signed(req):
        return Response(200, b"", "application/json; charset=utf-8")
    return None


def app_html(kind: str, params: dict[str, Any]) -> str:
    """The markup that starts the web app on a page: its config, a feed container and the
    script. ``kind`` is ``tag`` or ``search``; ``params`` are the listing's own query fields."""
    endpoint, cursor = {
        "tag": ("/api/challenge/item_list/", "cursor"),
        "search": ("/api/search/item/full/", "offset"),
    }[kind]
    config = {
        "endpoint": endpoint,
        "cursor": cursor,
        "count": 30 if kind == "tag" else 12,
        "params": {k: str(v) for k, v in params.items()},
        "salt": SIGN_SALT,
        "signParam": SIGN_PARAM,
    }
    return (
        f'<div id="feed"></div>\n<p id="feed-end" hidden>No more videos</p>\n'
        f'<script id="{CONFIG_ID}" type="application/json">{script_json(config)}</script>\n'
        f'<script src="{SCRIPT_PATH}" defer></script>'
    )


def search_page(req: Request, cat: Catalog) -> Response:
    """``/search/video?q=...``: the search results page, filled by the web app."""
    query = " ".join(req.query.get("q", "").split())
    title = f"Find '{query}' on TikTok | TikTok Search"
    app = app_html("search", {"keyword": query, "from_page": "search"})
    body = f"<h1>{esc(query)}</h1>\n{app}"
    return Response(200, page(title, body=body).encode("utf-8"), "text/html; charset=utf-8")


def app_script(req: Request, cat: Catalog) -> Response:
    """``/webapp/app.js``."""
    return Response(200, APP_JS.encode("utf-8"), "application/javascript; charset=utf-8")


APP_JS = r"""(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("webapp-config").textContent);
  var feed = document.getElementById("feed");
  var cursor = "0", more = true, busy = false;
  var deviceId = "7" + String(Math.floor(Math.random() * 1e17)).padStart(18, "0");

  function fnv1a(text) {
    var bytes = new TextEncoder().encode(text), h = 0x811c9dc5;
    for (var i = 0; i < bytes.length; i++) {
      h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
    }
    return ("0000000" + h.toString(16)).slice(-8);
  }

  function sign(params) {
    var text = Object.keys(params).sort().map(function (k) {
      return k + "=" + params[k];
    }).join("&");
    return fnv1a(cfg.salt + "?" + text);
  }

  function render(items) {
    items.forEach(function (item) {
      var card = document.createElement("div");
      card.className = "video-card";
      card.style.height = "360px";
      card.dataset.id = String(item.id || "");
      card.textContent = String(item.desc || "");
      feed.appendChild(card);
    });
  }

  function load() {
    if (busy || !more) return;
    busy = true;
    var params = {
      aid: "1988", app_name: "tiktok_web", device_platform: "web_pc",
      device_id: deviceId, count: String(cfg.count)
    };
    Object.keys(cfg.params).forEach(function (k) { params[k] = cfg.params[k]; });
    params[cfg.cursor] = cursor;
    params[cfg.signParam] = sign(params);
    fetch(cfg.endpoint + "?" + new URLSearchParams(params).toString(), {
      credentials: "include", headers: { Accept: "application/json, text/plain, */*" }
    }).then(function (r) { return r.text(); }).then(function (text) {
      var data = text ? JSON.parse(text) : {};
      render(data.itemList || data.item_list || []);
      more = Boolean(data.hasMore || data.has_more) && data.cursor !== undefined;
      cursor = String(data.cursor);
    }).catch(function () {
      more = false;
    }).then(function () {
      busy = false;
      if (!more) document.getElementById("feed-end").hidden = false;
    });
  }

  window.addEventListener("scroll", function () {
    if (window.innerHeight + window.scrollY >= document.body.scrollHeight - 400) load();
  }, { passive: true });
  load();
})();
"""
