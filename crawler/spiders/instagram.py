"""Instagram: profile reels and hashtag (tag) feeds over the web app's REST API.

User: the numeric user id comes from the ``id:NNN`` target, the id cache
(``<data_dir>/cache/instagram_user_ids.json``), or a lookup: the profile page's
``instapp:owner_user_id`` meta, then ``/web/search/topsearch/``, and only then
``/api/v1/users/web_profile_info/`` (which answers 429 to most clients). POST
``/api/v1/clips/user/`` then pages by ``max_id``. Hashtag: POST ``/api/v1/tags/TAG/sections/``
(``tab=recent``) pages by ``next_max_id``/``next_page``; it needs a logged-in ``sessionid``
cookie from the config, as the reels tab often does.

Every request carries a ``csrftoken`` cookie (the configured one, else 32 random
alphanumerics, as the web app makes) mirrored in ``X-CSRFToken``, and ``X-IG-WWW-Claim``
("0" until a response sets one with ``x-ig-set-www-claim``). Requests are spaced by a random
6-12 s with the default ``download_delay`` of 6 (``download_delay`` to twice that).
Keyword search has no public reels endpoint, so search listings end with an error status.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from scrapy import FormRequest, Request
from scrapy.http import Response

from crawler.parsers.common import dig, loads_json
from crawler.parsers.instagram import (
    WEB_APP_ID,
    is_id_target,
    is_topsearch,
    parse_instagram_clips,
    parse_instagram_sections,
    parse_profile_page_user_id,
    parse_profile_user_id,
    parse_topsearch_user_id,
    user_id_from_target,
)
from crawler.spiders.base import ListingSpider
from crawler.status import (
    Verdict,
    classify_response,
    instagram_status,
    layout_changed,
    not_found,
)
from storage import ListingStatus
from storage.files import atomic_write_text

logger = logging.getLogger(__name__)

CLIPS_PAGE_SIZE = 12
CSRF_COOKIE = "csrftoken"
CSRF_ALPHABET = string.ascii_letters + string.digits
CLAIM_HEADER = b"x-ig-set-www-claim"
DELAY_SPREAD = 2.0  # request gaps range from download_delay to this many times it
LOOKUP_STEPS = ("profile page", "topsearch", "web_profile_info")
_SET_CSRF_RE = re.compile(rb"\s*csrftoken=([^;]*)")


def new_csrf_token() -> str:
    """A fresh ``csrftoken`` value: 32 random letters and digits."""
    return "".join(secrets.choice(CSRF_ALPHABET) for _ in range(32))


def paced_delay(min_delay: float, spread: float = DELAY_SPREAD) -> tuple[float, float]:
    """Scrapy's ``(DOWNLOAD_DELAY, DOWNLOAD_DELAY_JITTER)`` for gaps drawn uniformly from
    ``min_delay`` to ``spread * min_delay`` (Scrapy draws ``delay * (1 +- jitter)``)."""
    if min_delay <= 0:
        return 0.0, 0.0
    high = min_delay * spread
    return (min_delay + high) / 2, (high - min_delay) / (high + min_delay)


class UserIdCache:
    """Resolved user ids by site host and lower-cased username, kept in one JSON file that
    is rewritten atomically (a temp file renamed over it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_data_dir(cls, data_dir: Path | str) -> UserIdCache:
        return cls(Path(data_dir) / "cache" / "instagram_user_ids.json")

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, base_url: str, username: str) -> str | None:
        entry = dig(self._load(), _host(base_url), username.lower())
        found = entry.get("id") if isinstance(entry, dict) else None
        return found if isinstance(found, str) and found.isdigit() else None

    def put(self, base_url: str, username: str, user_id: str, via: str) -> None:
        data = self._load()
        hosts = data.setdefault(_host(base_url), {})
        if not isinstance(hosts, dict):
            hosts = data[_host(base_url)] = {}
        hosts[username.lower()] = {
            "id": user_id,
            "via": via,
            "resolved_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        self._write(data)

    def forget(self, base_url: str, username: str) -> None:
        data = self._load()
        hosts = data.get(_host(base_url))
        if isinstance(hosts, dict) and hosts.pop(username.lower(), None) is not None:
            self._write(data)

    def _write(self, data: dict[str, Any]) -> None:
        atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True))


def _host(base_url: str) -> str:
    parts = urlsplit(base_url)
    return (parts.netloc or base_url).lower()


@dataclass
class _LookupFailure:
    step: str
    verdict: Verdict
    response: Response
    decisive: bool  # the answer says the account does not exist


class InstagramSpider(ListingSpider):
    name = "instagram"
    platform = "instagram"

    @classmethod
    def update_settings(cls, settings: Any) -> None:
        super().update_settings(settings)
        delay, jitter = paced_delay(settings.getfloat("DOWNLOAD_DELAY"))
        if delay > 0:
            settings.set("DOWNLOAD_DELAY", delay, priority="spider")
            settings.set("DOWNLOAD_DELAY_JITTER", jitter, priority="spider")
            start = max(settings.getfloat("AUTOTHROTTLE_START_DELAY"), delay)
            settings.set("AUTOTHROTTLE_START_DELAY", start, priority="spider")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user_id: str | None = None
        self.id_source: str | None = None  # "target", "cache" or a LOOKUP_STEPS name
        self.referer = ""
        self.csrf_token = ""
        self.www_claim = "0"
        self.lookup_failures: list[_LookupFailure] = []

    @property
    def id_cache(self) -> UserIdCache:
        return UserIdCache.in_data_dir(self.cfg.data_dir)

    def unsupported_message(self) -> str:
        if self.kind == "search":
            return (
                "instagram search is not supported: Instagram has no public keyword search "
                "for reels; watch a hashtag or a user instead"
            )
        return super().unsupported_message()

    # -- session state (CSRF token, www claim) ---------------------------------------

    def _note(self, response: Response) -> None:
        """Keep the claim and any new ``csrftoken`` a response hands out."""
        claim = response.headers.get(CLAIM_HEADER)
        if claim:
            self.www_claim = claim.decode("latin-1").strip()
        for raw in response.headers.getlist(b"Set-Cookie"):
            m = _SET_CSRF_RE.match(raw)
            value = m[1].decode("latin-1").strip('"') if m else ""
            if value:
                self.csrf_token = value

    def api_headers(self) -> dict[str, str]:
        return {
            "Accept": "*/*",
            "X-IG-App-ID": WEB_APP_ID,
            "X-ASBD-ID": "129477",
            "X-IG-WWW-Claim": self.www_claim,
            "X-CSRFToken": self.csrf_token,
            "X-Requested-With": "XMLHttpRequest",
            "Referer": self.referer,
        }

    def ig_request(
        self, url: str, callback: Any, *, form: dict[str, str] | None = None, page: bool = False
    ) -> Request:
        """A request with the session's ``csrftoken`` cookie and the web app's headers
        (``page``: a document request, with no API headers); ``form`` makes it a POST."""
        headers = {"Referer": self.referer} if page else self.api_headers()
        kwargs: dict[str, Any] = {
            "headers": headers,
            "cookies": {CSRF_COOKIE: self.csrf_token},
            "dont_filter": True,
        }
        if form is not None:
            return self.request(url, callback, request_cls=FormRequest, formdata=form, **kwargs)
        return self.request(url, callback, **kwargs)

    def verdict_of(self, response: Response) -> Verdict | None:
        """What :meth:`check` would record for a response, without recording it."""
        return classify_response(
            status=response.status,
            url=response.url,
            body=response.body,
            redirect_urls=response.meta.get("redirect_urls"),
            content_type=response.headers.get(b"Content-Type", b"").decode("latin-1"),
        )

    # -- first requests ---------------------------------------------------------------

    def first_requests(self) -> list[Request]:
        self.csrf_token = (self.platform_cfg.cookies or {}).get(CSRF_COOKIE) or new_csrf_token()
        t = quote(self.target, safe="")
        if self.kind != "user":
            self.referer = f"{self.base_url}/explore/tags/{t}/"
            return [self.sections_request(None, None)]
        if is_id_target(self.target):
            self.user_id = user_id_from_target(self.target)
            if not self.user_id:
                raise ValueError(f"{self.target!r} is not id: followed by a numeric user id")
            self.id_source = "target"
            self.referer = f"{self.base_url}/"
            return [self.clips_request(None)]
        self.referer = f"{self.base_url}/{t}/reels/"
        cached = self.id_cache.get(self.base_url, self.target)
        if cached:
            self.user_id, self.id_source = cached, "cache"
            return [self.clips_request(None)]
        return [self.lookup_request(0)]

    # -- user id lookup ---------------------------------------------------------------

    def lookup_request(self, step: int) -> Request:
        t = quote(self.target, safe="")
        if step == 0:
            return self.ig_request(f"{self.base_url}/{t}/", self.parse_profile_page, page=True)
        if step == 1:
            query = urlencode({"query": self.target})
            url = f"{self.base_url}/web/search/topsearch/?{query}"
            return self.ig_request(url, self.parse_topsearch)
        query = urlencode({"username": self.target})
        url = f"{self.base_url}/api/v1/users/web_profile_info/?{query}"
        return self.ig_request(url, self.parse_profile)

    def parse_profile_page(self, response: Response) -> Iterator[Any]:
        self._note(response)
        verdict = self.verdict_of(response)
        uid = None
        if verdict is None:
            uid = parse_profile_page_user_id(response.body)
            if not uid:
                verdict = layout_changed("no instapp:owner_user_id meta")
        decisive = verdict is not None and verdict.status == ListingStatus.NOT_FOUND
        yield from self.lookup_done(response, 0, uid, verdict, decisive=decisive)

    def parse_topsearch(self, response: Response) -> Iterator[Any]:
        self._note(response)
        verdict = self.verdict_of(response)
        uid = None
        if verdict is None:
            data = loads_json(response.body)
            uid = parse_topsearch_user_id(data, self.target)
            if not is_topsearch(data):
                verdict = layout_changed("answer without a users list")
            elif not uid:
                verdict = not_found(f"no user named {self.target} listed")
        yield from self.lookup_done(response, 1, uid, verdict)

    def parse_profile(self, response: Response) -> Iterator[Any]:
        self._note(response)
        verdict = self.verdict_of(response)
        uid, decisive = None, False
        data = loads_json(response.body)
        if verdict is None and not isinstance(data, dict):
            verdict = layout_changed("answer is not JSON")
        elif verdict is None:
            verdict = instagram_status(data)
        if isinstance(dig(data, "data"), dict) and dig(data, "data", "user") is None:
            verdict, decisive = not_found(f"user not found: {self.target}"), True
        if verdict is None:
            uid = parse_profile_user_id(data)
            if not uid:
                verdict = layout_changed("no data.user.id")
        yield from self.lookup_done(response, 2, uid, verdict, decisive=decisive)

    def lookup_done(
        self,
        response: Response,
        step: int,
        uid: str | None,
        verdict: Verdict | None,
        *,
        decisive: bool = False,
    ) -> Iterator[Request]:
        """Crawl the reels once a step found the id; else try the next step, and after the
        last one fail with the reasons of all (a "no such account" answer wins)."""
        if self.verdict is not None:
            return
        name = LOOKUP_STEPS[step]
        if uid:
            self.user_id, self.id_source = uid, name
            try:
                self.id_cache.put(self.base_url, self.target, uid, name)
            except OSError as exc:
                logger.warning("could not cache the instagram user id: %s", exc)
            logger.info("%s: user id %s from the %s", self.listing_key, uid, name)
            yield self.clips_request(None)
            return
        failure = verdict or layout_changed("no user id")
        self.lookup_failures.append(_LookupFailure(name, failure, response, decisive))
        logger.info("%s: no user id from the %s (%s)", self.listing_key, name, failure.reason)
        if step + 1 < len(LOOKUP_STEPS):
            yield self.lookup_request(step + 1)
            return
        chosen = next((f for f in self.lookup_failures if f.decisive), self.lookup_failures[-1])
        reasons = "; ".join(f"{f.step}: {f.verdict.reason}" for f in self.lookup_failures)
        self.fail(
            Verdict(chosen.verdict.status, f"no user id for {self.target} ({reasons})"),
            chosen.response,
        )

    # -- user reels -------------------------------------------------------------------

    def clips_request(self, max_id: str | None) -> Request:
        form = {
            "target_user_id": self.user_id or "",
            "page_size": str(CLIPS_PAGE_SIZE),
            "include_feed_video": "true",
        }
        if max_id:
            form["max_id"] = max_id
        return self.ig_request(f"{self.base_url}/api/v1/clips/user/", self.parse_clips, form=form)

    def parse_clips(self, response: Response) -> Iterator[Any]:
        self._note(response)
        if self.id_source == "cache" and self.pages == 0 and response.status == 404:
            # a stale cached id: look the user up again
            logger.info("%s: cached user id %s unknown, looking up", self.listing_key, self.user_id)
            self.id_cache.forget(self.base_url, self.target)
            self.user_id = self.id_source = None
            yield self.lookup_request(0)
            return
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
        url = f"{self.base_url}/api/v1/tags/{quote(self.target, safe='')}/sections/"
        return self.ig_request(url, self.parse_sections, form=form)

    def parse_sections(self, response: Response) -> Iterator[Any]:
        self._note(response)
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
