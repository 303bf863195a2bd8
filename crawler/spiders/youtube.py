"""YouTube: hashtag pages, channel Shorts tabs, search results and channel RSS feeds.

Initial pages carry ``ytInitialData`` and ``ytcfg``; further pages come from POSTs to
``youtubei/v1/browse`` (or ``/search``) with the page's innertube context and the
continuation token. The consent cookie ``SOCS=CAI`` is sent with every request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

from scrapy import Request
from scrapy.http import JsonRequest, Response

from crawler.parsers.common import dig, loads_json
from crawler.parsers.youtube import (
    channel_author,
    innertube_context,
    parse_youtube_initial_data,
    parse_youtube_page,
    parse_youtube_rss,
    parse_ytcfg,
    youtube_alerts,
)
from crawler.spiders.base import ListingSpider
from crawler.status import layout_changed, not_found, youtube_alert_status


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
            url = f"{self.base_url}/hashtag/{quote(t, safe='')}"
        elif self.kind == "user":
            is_channel_id = t.startswith("UC") and len(t) == 24
            path = f"/channel/{t}" if is_channel_id else f"/@{quote(t, safe='')}"
            url = f"{self.base_url}{path}/shorts"
        elif self.kind == "search":
            url = f"{self.base_url}/results?search_query={quote_plus(t)}"
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
            self.fail(layout_changed("no ytInitialData on the page"), response)
            return
        verdict = youtube_alert_status(youtube_alerts(data))
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
            if self.kind == "hashtag":
                self.fail(not_found(f"no videos for #{self.target}"), response)
                return
            self.stop_reason = "the listing is empty"
        yield from self.emit(page, self.continuation(page.next_token))

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
        return self.request(
            f"{self.base_url}/youtubei/v1/{api}?prettyPrint=false",
            self.parse_continuation,
            request_cls=JsonRequest,
            data={"context": ctx, "continuation": token},
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
        yield from self.emit(page, self.continuation(page.next_token))

    def parse_rss(self, response: Response) -> Iterator[Any]:
        if not self.check(response):
            return
        page = parse_youtube_rss(response.body, self.listing_key, base_url=self.base_url)
        if not page.recognized:
            self.fail(layout_changed("the feed is not an Atom feed"), response)
            return
        yield from self.emit(page, None)
