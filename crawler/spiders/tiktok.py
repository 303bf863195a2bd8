"""TikTok: hashtag (challenge) feeds, user feeds and video search.

``/tag/NAME`` gives the challenge id (universal data), then ``/api/challenge/item_list/``
pages by offset cursor. ``/@handle`` gives the ``secUid``, then ``/api/creator/item_list/``
pages backwards by ``createTime`` (ms cursor). Search uses ``/api/search/item/full/``.
Every API call carries the web client's fingerprint query block, with a ``device_id`` from the
range web clients get and a ``verifyFp``, both fixed for the spider's run.

Defences handled here: the WAF proof-of-work interstitial is solved natively
(:mod:`crawler.waf`) and the page fetched again with the answer cookie (at most
``MAX_WAF_SOLVES`` times per listing, then ``blocked``); empty-200 and ``{"type": "verify"}``
answers are retried by the downloader (``retry_soft_blocks``) before they count as a block;
an empty creator page that claims more steps the cursor back a week at a time
(``MAX_CURSOR_ROLLBACKS``); and an empty item list is compared with what the tag or user page
says (``videoCount``), so that a renamed item key is ``layout_changed``, not an empty listing.
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

from scrapy import Request
from scrapy.http import Response, TextResponse

from crawler import waf
from crawler.browser import BrowserListing
from crawler.parsers.common import loads_json
from crawler.parsers.tiktok import (
    challenge_detail,
    challenge_id_from_html,
    parse_sigi_state,
    parse_tiktok_item_list,
    parse_tiktok_scope_items,
    parse_universal_data,
    scope_video_count,
    user_detail,
)
from crawler.spiders.base import ListingSpider
from crawler.status import Verdict, blocked, is_tiktok_challenge, layout_changed, tiktok_status
from storage import ListingStatus

CHALLENGE_PAGE_SIZE = 30
CREATOR_PAGE_SIZE = 15
SEARCH_PAGE_SIZE = 12
# device ids of web clients (yt-dlp #14031/#14077): ids outside this range get empty pages
WEB_DEVICE_ID_RANGE = (7_250_000_000_000_000_000, 7_325_000_000_000_000_000)
MAX_WAF_SOLVES = 2  # proof-of-work interstitials solved per listing before ``blocked``
CURSOR_STEP_MS = 7 * 86_400_000  # how far an empty creator page moves the cursor back
MAX_CURSOR_ROLLBACKS = 4  # consecutive empty creator pages before the listing is over
OLDEST_CURSOR_MS = 1_472_706_000_000  # 2016-09-01: nothing on TikTok is older
# meta that describes one download (Scrapy's and the handler's), not carried into a retry
_PER_DOWNLOAD_META = frozenset(
    {
        "download_latency",
        "download_slot",
        "redirect_reasons",
        "redirect_times",
        "redirect_ttl",
        "redirect_urls",
        "retry_times",
        "soft_retry_times",
        "impersonate_request_bytes",
        "impersonate_response_bytes",
        "_auth_proxy",
        "_scheme_proxy",
    }
)


def web_device_id(rng: random.Random | None = None) -> str:
    """A ``device_id`` from the range real web clients use."""
    return str((rng or random).randint(*WEB_DEVICE_ID_RANGE))


def verify_fp(rng: random.Random | None = None, now: float | None = None) -> str:
    """A ``verifyFp`` in the web client's shape: ``verify_<base36 ms>_<8>_<4>_<4>_<4>_<12>``."""
    r = rng or random
    ms = int((time.time() if now is None else now) * 1000)
    digits = string.digits + string.ascii_lowercase
    stamp = ""
    while ms:
        ms, d = divmod(ms, 36)
        stamp = digits[d] + stamp
    alnum = string.ascii_letters + string.digits
    parts = ["".join(r.choice(alnum) for _ in range(n)) for n in (8, 4, 4, 4, 12)]
    return "_".join(["verify", stamp or "0", *parts])


class TiktokSpider(BrowserListing, ListingSpider):
    name = "tiktok"
    platform = "tiktok"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.device_id = web_device_id()
        self.verify_fp = verify_fp()
        self.page_url = ""
        self.challenge_id: str | None = None
        self.sec_uid: str | None = None
        self.expected_count: int | None = None  # videoCount stated by the tag/user page
        self.waf_solves = 0
        self.rollbacks = 0  # consecutive empty creator pages stepped over

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
            "verifyFp": self.verify_fp,
        }
        params.update({k: str(v) for k, v in extra.items()})
        return urlencode(params)

    def request(self, url: str, callback: Any, **kwargs: Any) -> Request:
        """A request whose soft blocks (empty 200, ``{"type": "verify"}``) are retried first
        (not browser-mode ones: the browser fetch has its own handling)."""
        meta = dict(kwargs.pop("meta", {}))
        meta.setdefault("retry_soft_blocks", "browser" not in meta)
        return super().request(url, callback, meta=meta, **kwargs)

    def api_request(self, path: str, meta: dict[str, Any] | None = None, **params: Any) -> Request:
        url = f"{self.base_url}{path}?{self.web_params(**params)}"
        headers = {"Accept": "application/json, text/plain, */*", "Referer": self.page_url}
        return self.request(
            url, self.parse_item_list, headers=headers, dont_filter=True, meta=meta or {}
        )

    # -- defences ---------------------------------------------------------------------

    def waf_retry(self, response: Response) -> Request | None:
        """The request again with the answer cookies when ``response`` is the WAF interstitial.

        None when it is not one, or when the listing was failed because the interstitial
        could not be solved or came back after ``MAX_WAF_SOLVES`` solved ones.
        """
        text = response.text if isinstance(response, TextResponse) else ""
        if self.verdict is not None or not is_tiktok_challenge(text):
            return None
        if self.waf_solves >= MAX_WAF_SOLVES:
            reason = f"JS proof-of-work challenge page still served after {self.waf_solves} solves"
            self.fail(blocked(reason), response)
            return None
        cookies = waf.solution_cookies(text)
        if cookies is None:
            self.fail(blocked("JS proof-of-work challenge page that could not be solved"), response)
            return None
        self.waf_solves += 1
        self.logger.info(
            "%s: solved the proof-of-work challenge (%d/%d), fetching %s again",
            self.listing_key,
            self.waf_solves,
            MAX_WAF_SOLVES,
            response.url,
        )
        request = response.request
        assert request is not None
        jar = dict(request.cookies) if isinstance(request.cookies, dict) else {}
        meta = {k: v for k, v in request.meta.items() if k not in _PER_DOWNLOAD_META}
        return request.replace(cookies={**jar, **cookies}, meta=meta, dont_filter=True)

    def check(self, response: Response) -> bool:
        """As the base check; a block after soft-block retries says how many tries it took."""
        before = self.verdict
        ok = super().check(response)
        tries = int(response.meta.get("soft_retry_times", 0)) + 1
        v = self.verdict
        retried_block = v is not None and v.status == ListingStatus.BLOCKED and tries > 1
        if not ok and before is None and v is not None and retried_block:
            self.verdict = Verdict(v.status, f"{v.reason}, {tries} tries")
        return ok

    def first_requests(self) -> list[Request]:
        requests = self.http_first_requests()  # sets page_url
        return [self.browser_request(self.page_url)] if self.browser_mode() else requests

    def http_first_requests(self) -> list[Request]:
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
        retry = self.waf_retry(response)
        if retry is not None:
            yield retry
            return
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
        self.expected_count = scope_video_count(scope)
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
        retry = self.waf_retry(response)
        if retry is not None:
            yield retry
            return
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
        self.expected_count = scope_video_count(scope)
        yield self.creator_request(int(time.time() * 1000))

    def creator_request(self, cursor_ms: int | str) -> Request:
        return self.api_request(
            "/api/creator/item_list/",
            meta={"cursor": int(cursor_ms)},
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
        retry = self.waf_retry(response)
        if retry is not None:
            yield retry
            return
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
        strays = page.extra.get("item_like_keys") or []
        if not page.items and strays:
            keys = ", ".join(strays)
            self.fail(layout_changed(f"item list response holds its items under {keys}"), response)
            return
        if not page.recognized:
            self.fail(layout_changed("item list response without an item list"), response)
            return
        if page.items:
            self.rollbacks = 0
        elif self.kind == "user" and page.extra.get("has_more"):
            step_back = self.rollback_request(response)
            if step_back is not None:
                yield step_back
                return
        if not page.items and page.next_token and self.pages == 0:
            self.fail(layout_changed("first item list page is empty but claims more"), response)
            return
        if not page.items and self.pages == 0:
            verdict = self.empty_verdict(page.extra.get("list_key"))
            if verdict is not None:
                self.fail(verdict, response)
                return
            self.stop_reason = self.stop_reason or "the listing is empty"
        yield from self.emit(page, self.next_request(page.next_token))

    def rollback_request(self, response: Response) -> Request | None:
        """The creator page a week before an empty one that claims more; None when done."""
        cursor = int(response.meta.get("cursor") or 0)
        target = cursor - CURSOR_STEP_MS
        if self.rollbacks >= MAX_CURSOR_ROLLBACKS or target < OLDEST_CURSOR_MS:
            self.stop_reason = (
                f"{self.rollbacks} empty page(s) stepping back from cursor {cursor}: "
                "end of listing assumed"
            )
            return None
        if not self.new_token(str(target)):
            return None
        self.rollbacks += 1
        self.logger.info(
            "%s: empty creator page at cursor %d claims more; stepping back to %d (%d/%d)",
            self.listing_key,
            cursor,
            target,
            self.rollbacks,
            MAX_CURSOR_ROLLBACKS,
        )
        return self.creator_request(target)

    def empty_verdict(self, list_key: str | None) -> Verdict | None:
        """A failure for a first item-list page without items when the page counted videos."""
        if not self.expected_count or self.kind not in ("hashtag", "user"):
            return None
        what = f"the {'tag' if self.kind == 'hashtag' else 'user'} page counts"
        if list_key is None:
            return layout_changed(
                f"item list response has no item list; {what} {self.expected_count} video(s)"
            )
        return blocked(f"the item list is empty but {what} {self.expected_count} video(s)")

    def next_request(self, token: str | None) -> Request | None:
        if not self.new_token(token):
            return None
        assert token is not None
        if self.browser_mode():  # the page fetches the next item list when scrolled
            return self.browser_request(self.page_url, more=True)
        if self.kind == "hashtag":
            return self.challenge_request(token)
        if self.kind == "user":
            return self.creator_request(token)
        return self.search_request(token)
