"""Instagram: profile reels and hashtag (tag) feeds over the web app's REST API.

User: ``/api/v1/users/web_profile_info/`` gives the user id, then POST ``/api/v1/clips/user/``
pages by ``max_id``. Hashtag: POST ``/api/v1/tags/TAG/sections/`` (``tab=recent``) pages by
``next_max_id``/``next_page``; it needs a logged-in ``sessionid`` cookie from the config.
Keyword search has no public reels endpoint, so search listings end with an error status.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

from scrapy import FormRequest, Request
from scrapy.http import Response

from crawler.parsers.common import dig, loads_json
from crawler.parsers.instagram import (
    WEB_APP_ID,
    parse_instagram_clips,
    parse_instagram_sections,
    parse_profile_user_id,
)
from crawler.spiders.base import ListingSpider
from crawler.status import instagram_status, layout_changed, not_found

CLIPS_PAGE_SIZE = 12


class InstagramSpider(ListingSpider):
    name = "instagram"
    platform = "instagram"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user_id: str | None = None
        self.referer = ""

    def unsupported_message(self) -> str:
        if self.kind == "search":
            return (
                "instagram search is not supported: Instagram has no public keyword search "
                "for reels; watch a hashtag or a user instead"
            )
        return super().unsupported_message()

    def api_headers(self) -> dict[str, str]:
        headers = {
            "Accept": "*/*",
            "X-IG-App-ID": WEB_APP_ID,
            "X-ASBD-ID": "129477",
            "X-IG-WWW-Claim": "0",
            "X-Requested-With": "XMLHttpRequest",
            "Referer": self.referer,
        }
        csrf = (self.platform_cfg.cookies or {}).get("csrftoken")
        if csrf:
            headers["X-CSRFToken"] = csrf
        return headers

    def first_requests(self) -> list[Request]:
        t = quote(self.target, safe="")
        if self.kind == "user":
            self.referer = f"{self.base_url}/{t}/reels/"
            query = urlencode({"username": self.target})
            url = f"{self.base_url}/api/v1/users/web_profile_info/?{query}"
            return [self.request(url, self.parse_profile, headers=self.api_headers())]
        self.referer = f"{self.base_url}/explore/tags/{t}/"
        return [self.sections_request(None, None)]

    # -- user -------------------------------------------------------------------------

    def parse_profile(self, response: Response) -> Iterator[Any]:
        if not self.check(response):
            return
        data = loads_json(response.body)
        if not isinstance(data, dict):
            self.fail(layout_changed("web_profile_info is not JSON"), response)
            return
        verdict = instagram_status(data)
        if verdict:
            self.fail(verdict, response)
            return
        if isinstance(data.get("data"), dict) and dig(data, "data", "user") is None:
            self.fail(not_found(f"user not found: {self.target}"), response)
            return
        self.user_id = parse_profile_user_id(data)
        if not self.user_id:
            self.fail(layout_changed("web_profile_info has no data.user.id"), response)
            return
        yield self.clips_request(None)

    def clips_request(self, max_id: str | None) -> Request:
        form = {
            "target_user_id": self.user_id or "",
            "page_size": str(CLIPS_PAGE_SIZE),
            "include_feed_video": "true",
        }
        if max_id:
            form["max_id"] = max_id
        return self.request(
            f"{self.base_url}/api/v1/clips/user/",
            self.parse_clips,
            request_cls=FormRequest,
            formdata=form,
            headers=self.api_headers(),
            dont_filter=True,
        )

    def parse_clips(self, response: Response) -> Iterator[Any]:
        if not self.check(response):
            return
        data = loads_json(response.body)
        page = parse_instagram_clips(data, self.listing_key, base_url=self.base_url)
        if not page.recognized:
            self.fail(layout_changed("clips/user response without items"), response)
            return
        if not page.items and self.pages == 0:
            self.stop_reason = "the listing is empty"
        nxt = self.clips_request(page.next_token) if self.new_token(page.next_token) else None
        yield from self.emit(page, nxt)

    # -- hashtag ----------------------------------------------------------------------

    def sections_request(self, max_id: str | None, page_no: Any) -> Request:
        form = {"tab": "recent", "surface": "grid", "include_persistent": "0"}
        if max_id:
            form["max_id"] = max_id
        if page_no is not None:
            form["page"] = str(page_no)
        return self.request(
            f"{self.base_url}/api/v1/tags/{quote(self.target, safe='')}/sections/",
            self.parse_sections,
            request_cls=FormRequest,
            formdata=form,
            headers=self.api_headers(),
            dont_filter=True,
        )

    def parse_sections(self, response: Response) -> Iterator[Any]:
        if not self.check(response):
            return
        data = loads_json(response.body)
        page = parse_instagram_sections(data, self.listing_key, base_url=self.base_url)
        if not page.recognized:
            self.fail(layout_changed("tag sections response without sections"), response)
            return
        if not page.items and self.pages == 0 and not page.next_token:
            self.stop_reason = "the listing is empty"
        nxt = None
        if self.new_token(page.next_token):
            nxt = self.sections_request(page.next_token, page.extra.get("next_page"))
        yield from self.emit(page, nxt)
