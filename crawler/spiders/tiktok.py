"""TikTok: hashtag (challenge) feeds, user feeds and video search.

``/tag/NAME`` gives the challenge id (universal data), then ``/api/challenge/item_list/``
pages by offset cursor. ``/@handle`` gives the ``secUid``, then ``/api/creator/item_list/``
pages backwards by ``createTime`` (ms cursor). Search uses ``/api/search/item/full/``.
Every API call carries the web client's fingerprint query block.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

from scrapy import Request
from scrapy.http import Response

from crawler.parsers.common import loads_json
from crawler.parsers.tiktok import (
    challenge_detail,
    challenge_id_from_html,
    parse_sigi_state,
    parse_tiktok_item_list,
    parse_tiktok_scope_items,
    parse_universal_data,
    user_detail,
)
from crawler.spiders.base import ListingSpider
from crawler.status import layout_changed, tiktok_status

CHALLENGE_PAGE_SIZE = 30
CREATOR_PAGE_SIZE = 15
SEARCH_PAGE_SIZE = 12


class TiktokSpider(ListingSpider):
    name = "tiktok"
    platform = "tiktok"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.device_id = str(random.randint(7_000_000_000_000_000_000, 7_999_999_999_999_999_999))
        self.page_url = ""
        self.challenge_id: str | None = None
        self.sec_uid: str | None = None

    def web_params(self, **extra: Any) -> str:
        params = {
            "aid": "1988",
            "app_language": "en",
            "app_name": "tiktok_web",
            "browser_language": "en-US",
            "browser_name": "Mozilla",
            "browser_online": "true",
            "browser_platform": "Linux x86_64",
            "channel": "tiktok_web",
            "cookie_enabled": "true",
            "device_id": self.device_id,
            "device_platform": "web_pc",
            "focus_state": "true",
            "history_len": "2",
            "is_fullscreen": "false",
            "is_page_visible": "true",
            "language": "en",
            "os": "linux",
            "region": "US",
            "screen_height": "1080",
            "screen_width": "1920",
            "tz_name": "UTC",
        }
        params.update({k: str(v) for k, v in extra.items()})
        return urlencode(params)

    def api_request(self, path: str, **params: Any) -> Request:
        url = f"{self.base_url}{path}?{self.web_params(**params)}"
        headers = {"Accept": "application/json, text/plain, */*", "Referer": self.page_url}
        return self.request(url, self.parse_item_list, headers=headers, dont_filter=True)

    def first_requests(self) -> list[Request]:
        if self.kind == "hashtag":
            self.page_url = f"{self.base_url}/tag/{quote(self.target, safe='')}"
            return [self.request(self.page_url, self.parse_tag_page)]
        if self.kind == "user":
            self.page_url = f"{self.base_url}/@{quote(self.target, safe='')}"
            return [self.request(self.page_url, self.parse_user_page)]
        self.page_url = f"{self.base_url}/search/video?q={quote(self.target)}"
        return [self.search_request(0)]

    # -- hashtag ----------------------------------------------------------------------

    def parse_tag_page(self, response: Response) -> Iterator[Any]:
        if not self.check(response):
            return
        scope = parse_universal_data(response.text)
        code, cid, _title = challenge_detail(scope)
        verdict = tiktok_status(code, what=f"#{self.target}")
        if verdict:
            self.fail(verdict, response)
            return
        cid = cid or challenge_id_from_html(response.text)
        if not cid:
            what = "no challenge id" if scope is not None else "no universal data"
            self.fail(layout_changed(f"tag page has {what}"), response)
            return
        self.challenge_id = cid
        embedded = parse_tiktok_scope_items(scope, self.listing_key, base_url=self.base_url)
        first_page = self.challenge_request(0)
        if embedded.items:
            yield from self.emit(embedded, first_page)
        else:
            yield first_page

    def challenge_request(self, cursor: int | str) -> Request:
        return self.api_request(
            "/api/challenge/item_list/",
            challengeID=self.challenge_id,
            count=CHALLENGE_PAGE_SIZE,
            cursor=cursor,
            from_page="hashtag",
        )

    # -- user -------------------------------------------------------------------------

    def parse_user_page(self, response: Response) -> Iterator[Any]:
        if not self.check(response):
            return
        scope = parse_universal_data(response.text)
        if scope is None:
            state = parse_sigi_state(response.text)
            users = state.get("UserModule", {}).get("users", {}) if state else {}
            user = users.get(self.target) if isinstance(users, dict) else None
            if isinstance(user, dict) and user.get("secUid"):
                self.sec_uid = str(user["secUid"])
                yield self.creator_request(int(time.time() * 1000))
                return
            self.fail(layout_changed("user page has no universal data"), response)
            return
        code, sec_uid, _handle = user_detail(scope)
        verdict = tiktok_status(code, what=f"@{self.target}")
        if verdict:
            self.fail(verdict, response)
            return
        if not sec_uid:
            self.fail(layout_changed("user page has no secUid"), response)
            return
        self.sec_uid = sec_uid
        yield self.creator_request(int(time.time() * 1000))

    def creator_request(self, cursor_ms: int | str) -> Request:
        return self.api_request(
            "/api/creator/item_list/",
            secUid=self.sec_uid,
            count=CREATOR_PAGE_SIZE,
            cursor=cursor_ms,
            type=1,
            from_page="user",
        )

    # -- search -----------------------------------------------------------------------

    def search_request(self, offset: int | str) -> Request:
        return self.api_request(
            "/api/search/item/full/",
            keyword=self.target,
            offset=offset,
            count=SEARCH_PAGE_SIZE,
            from_page="search",
        )

    # -- item lists -------------------------------------------------------------------

    def parse_item_list(self, response: Response) -> Iterator[Any]:
        if not self.check(response):
            return
        data = loads_json(response.body)
        if not isinstance(data, dict):
            self.fail(layout_changed("item list response is not a JSON object"), response)
            return
        code = data.get("statusCode", data.get("status_code"))
        verdict = tiktok_status(code, what=self.listing_key)
        if verdict:
            self.fail(verdict, response)
            return
        page = parse_tiktok_item_list(data, self.listing_key, base_url=self.base_url)
        if not page.recognized:
            self.fail(layout_changed("item list response without an item list"), response)
            return
        if not page.items and page.next_token and self.pages == 0:
            self.fail(layout_changed("first item list page is empty but claims more"), response)
            return
        if not page.items and self.pages == 0:
            self.stop_reason = "the listing is empty"
        yield from self.emit(page, self.next_request(page.next_token))

    def next_request(self, token: str | None) -> Request | None:
        if not self.new_token(token):
            return None
        assert token is not None
        if self.kind == "hashtag":
            return self.challenge_request(token)
        if self.kind == "user":
            return self.creator_request(token)
        return self.search_request(token)
