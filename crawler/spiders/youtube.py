"""YouTube: hashtag pages, channel Shorts tabs, search results and channel RSS feeds.

Initial pages carry ``ytInitialData`` and ``ytcfg``; further pages come from POSTs to
``youtubei/v1/browse`` (or ``/search``) with the page's innertube context and the
continuation token. The consent cookie ``SOCS=CAI`` is sent with every request. Hashtags are
read from their Shorts view (``/hashtag/NAME/shorts``) and searches are filtered to Shorts
(``sp=EgIQCQ%3D%3D``, also sent as the innertube ``params``).

A page that lists nothing is only taken as empty (or, for a hashtag, not found) when the page
itself says so; entries of unknown kinds or a header that counts videos make it
``layout_changed``. A listing that ends after one full first page without any continuation
token is kept, with a warning in its summary.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

from scrapy import Request
from scrapy.http import JsonRequest, Response

from crawler.parsers.common import Page, dig, loads_json
from crawler.parsers.youtube import (
    SHORTS_SEARCH_PARAMS,
    bot_check_text,
    channel_author,
    header_video_count,
    innertube_context,
    page_title,
    parse_youtube_initial_data,
    parse_youtube_page,
    parse_youtube_rss,
    parse_ytcfg,
    youtube_alerts,
)
from crawler.spiders.base import ListingSpider
from crawler.status import Verdict, blocked, layout_changed, not_found, youtube_alert_status

# items on a full first page of the live site: 48 on hashtag and channel Shorts grids, 20
# results on a search page; fewer than that and no continuation is an ordinary short listing
FULL_PAGE = {"hashtag": 48, "user": 48, "search": 20}
ONE_PAGE_WARNING = (
    "warning: only one full page and no continuation token; the layout may have changed"
)
_SAYS_EMPTY_RE = re.compile(
    r"no results|no videos|does not exist|doesn't exist|isn't available|no longer available",
    re.IGNORECASE,
)


class YoutubeSpider(ListingSpider):
    name = "youtube"
    platform = "youtube"
    default_cookies = {"SOCS": "CAI", "PREF": "hl=en&tz=UTC"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ytcfg: dict[str, Any] = {}
        self.author: str | None = None
        self.page_url = ""

    def first_requests(self) -> list[Request]:
        t = self.target
        if self.kind == "hashtag":
            url = f"{self.base_url}/hashtag/{quote(t, safe='')}/shorts"
        elif self.kind == "user":
            is_channel_id = t.startswith("UC") and len(t) == 24
            path = f"/channel/{t}" if is_channel_id else f"/@{quote(t, safe='')}"
            url = f"{self.base_url}{path}/shorts"
        elif self.kind == "search":
            sp = quote(SHORTS_SEARCH_PARAMS, safe="")
            url = f"{self.base_url}/results?search_query={quote_plus(t)}&sp={sp}"
        else:  # rss
            param = "channel_id" if t.startswith("UC") else "playlist_id"
            url = f"{self.base_url}/feeds/videos.xml?{param}={quote(t, safe='')}"
            return [self.request(url, self.parse_rss)]
        self.page_url = url
        return [self.request(url, self.parse_first)]

    def parse_first(self, response: Response) -> Iterator[Any]:
        if not self.check(response):
            return
        data = parse_youtube_initial_data(response.text)
        if data is None:
            bot = bot_check_text(response.text)
            if bot:
                self.fail(blocked(f"bot check: {bot}"), response)
            else:
                self.fail(layout_changed("no ytInitialData on the page"), response)
            return
        alerts = youtube_alerts(data)
        bot = next((a for a in alerts if bot_check_text(a)), None)
        verdict = blocked(f"bot check: {bot}") if bot else youtube_alert_status(alerts)
        if verdict:
            self.fail(verdict, response)
            return
        self.ytcfg = parse_ytcfg(response.text)
        if self.kind == "user":
            self.author = channel_author(data) or self.target
        page = parse_youtube_page(
            data, self.listing_key, base_url=self.base_url, author=self.author
        )
        if not page.recognized:
            self.fail(layout_changed("no known item container in ytInitialData"), response)
            return
        if not page.items and not page.next_token:
            verdict, reason = self.empty_page(data, page)
            if verdict:
                self.fail(verdict, response)
                return
            self.stop_reason = reason
        elif not page.next_token and len(page.items) >= FULL_PAGE[self.kind]:
            unknown = page.extra.get("unknown_kinds")
            seen = f" (unknown entries: {', '.join(sorted(unknown))})" if unknown else ""
            self.stop_reason = f"end of listing ({ONE_PAGE_WARNING}{seen})"
            self.logger.warning("%s: %s", self.listing_key, self.stop_reason)
        yield from self.emit(page, self.continuation(page.next_token))

    def empty_page(self, data: dict[str, Any], page: Page) -> tuple[Verdict | None, str]:
        """Why a first page lists nothing: a failing verdict, or the reason an empty listing
        is fine. Only a page that says so itself is empty; anything else is a layout change."""
        unknown = page.extra.get("unknown_kinds") or {}
        # a channel header counts all its videos, not its Shorts: only a hashtag's count is used
        claimed = header_video_count(data) if self.kind == "hashtag" else None
        messages = page.extra.get("messages") or []
        what = f"#{self.target}" if self.kind == "hashtag" else repr(self.target)
        if unknown:
            kinds = ", ".join(f"{k} x{n}" for k, n in sorted(unknown.items()))
            says = f"; the page says {claimed} videos" if claimed else ""
            return layout_changed(f"no items parsed from {what}: unknown entries {kinds}{says}"), ""
        if claimed:
            return layout_changed(f"the page says {claimed} videos but none were parsed"), ""
        said = next((m for m in messages if _SAYS_EMPTY_RE.search(m)), None)
        if said is None and claimed == 0:
            said = "the page says 0 videos"
        if self.kind == "hashtag":
            if said:
                return not_found(f"no videos for {what} ({said})"), ""
            title = page_title(data) or "no title"
            return layout_changed(
                f"an empty grid for {what} ({title}) that does not say it has no videos"
            ), ""
        if self.kind == "search" and not said:
            return layout_changed(f"no results for {what} and no 'no results' message"), ""
        return None, f"the listing is empty ({said})" if said else "the listing is empty"

    def continuation(self, token: str | None) -> Request | None:
        if not self.new_token(token):
            return None
        api = "search" if self.kind == "search" else "browse"
        ctx = innertube_context(self.ytcfg)
        client = ctx.get("client", {})
        headers = {
            "X-YouTube-Client-Name": str(self.ytcfg.get("INNERTUBE_CONTEXT_CLIENT_NAME", 1)),
            "X-YouTube-Client-Version": str(client.get("clientVersion", "")),
            "Origin": self.base_url,
            "Referer": self.page_url,
        }
        visitor = client.get("visitorData") or self.ytcfg.get("VISITOR_DATA")
        if visitor:
            headers["X-Goog-Visitor-Id"] = str(visitor)
        body: dict[str, Any] = {"context": ctx, "continuation": token}
        if self.kind == "search":
            body.update(query=self.target, params=SHORTS_SEARCH_PARAMS)
        return self.request(
            f"{self.base_url}/youtubei/v1/{api}?prettyPrint=false",
            self.parse_continuation,
            request_cls=JsonRequest,
            data=body,
            headers=headers,
            dont_filter=True,
        )

    def parse_continuation(self, response: Response) -> Iterator[Any]:
        if not self.check(response):
            return
        data = loads_json(response.body)
        if not isinstance(data, dict):
            self.fail(layout_changed("continuation response is not JSON"), response)
            return
        visitor = dig(data, "responseContext", "visitorData")
        if visitor:
            ctx = self.ytcfg.setdefault("INNERTUBE_CONTEXT", innertube_context(self.ytcfg))
            ctx.setdefault("client", {})["visitorData"] = visitor
        page = parse_youtube_page(
            data, self.listing_key, base_url=self.base_url, author=self.author
        )
        if not page.recognized:
            self.fail(layout_changed("continuation response without continuation items"), response)
            return
        unknown = page.extra.get("unknown_kinds")
        if unknown and not page.items and not page.next_token:
            kinds = ", ".join(sorted(unknown))
            verdict = layout_changed(f"continuation page with only unknown entries ({kinds})")
            self.fail(verdict, response)
            return
        yield from self.emit(page, self.continuation(page.next_token))

    def parse_rss(self, response: Response) -> Iterator[Any]:
        if not self.check(response):
            return
        page = parse_youtube_rss(response.body, self.listing_key, base_url=self.base_url)
        if not page.recognized:
            self.fail(layout_changed("the feed is not an Atom feed"), response)
            return
        yield from self.emit(page, None)
