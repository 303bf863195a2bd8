"""The fixture platform's content: authors, videos and listings, deterministic from a seed.

Ids follow each platform's real style: TikTok 19-digit ids whose top bits are the creation time,
YouTube 11-character ids and ``UC`` channel ids, Instagram numeric ``pk`` values built like the
real ones (time since the Instagram epoch, shifted) and the shortcodes derived from them.
The catalog also knows what every video shows (:meth:`Catalog.expected_character`).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, replace

from fixture_platform.characters import DISTRACTOR_KEYS, REGISTERED_KEYS, character_by_key
from fixture_platform.videos import VideoSpec

PLATFORMS = ("tiktok", "youtube", "instagram")
DEMO_TAG = "charwatchdemo"
BULK_TAG = "bulk500"
BULK_SIZE = 500
DEMO_SEARCH = "charwatch demo"
BASE_TIME = 1795132800  # 2026-11-20T00:00:00Z: the newest fixture video is a little older

# negative-case names (see the fixture contract)
TIKTOK_BLOCKED_TAG = "blockedtag"  # item_list answers 200 with an empty body
TIKTOK_VERIFY_TAG = "verifytag"  # item_list answers {"type": "verify"}
TIKTOK_CHALLENGE_TAG = "challengetag"  # /tag page is the JS proof-of-work interstitial
TIKTOK_WAFLOOP_TAG = "wafloop"  # /tag page answers a new interstitial even when solved
TIKTOK_FLAKY_TAG = "flakytag"  # item_list answers empty 200 twice per page, then the page
TIKTOK_RENAMED_TAG = "renamedlisttag"  # item_list carries its items under a renamed key
TIKTOK_GAP_USER = "gapuser"  # 20 days without posts: creator pages there come back empty
TIKTOK_MISSING_TAG = "nosuchtag"  # statusCode 10205 (as is any unknown tag)
TIKTOK_LOGINWALL_TAG = "loginwalltag"  # 302 to /login
TIKTOK_SIGNED_TAG = "signedtag"  # item lists answer only requests signed by the web app
TIKTOK_SIGNED_SEARCH = "signed only"  # the same for a search (see fixture_platform.webapp)
TIKTOK_SIGNED_SIZE = 10  # videos in the signed-only listings, served 4 to a page
TIKTOK_PRIVATE_USER = "privateuser"  # statusCode 10222
TIKTOK_MISSING_USER = "nosuchuser"  # statusCode 10221 (as is any unknown user)
YOUTUBE_LAYOUT_TAG = "layoutchangedtag"  # ytInitialData without a known renderer
YOUTUBE_RATELIMIT_TAG = "ratelimitedtag"  # 429 for the first 2 requests, then normal
YOUTUBE_RATELIMIT_COUNT = 2
YOUTUBE_VIEWMODEL_TAG = "viewmodeltag"  # continuations as continuationItemViewModel
YOUTUBE_ONEPAGE_TAG = "onepagetag"  # one full page of 48, the continuation in an unknown shape
YOUTUBE_RENAMED_TAG = "renamedtag"  # known grid and header, item renderers renamed
YOUTUBE_EMPTY_TAG = "emptytag"  # the hashtag page says 0 videos
YOUTUBE_BOTCHECK_TAG = "botchecktag"  # "Sign in to confirm you're not a bot" instead of the page
YOUTUBE_SENTINEL_SIZES = {  # tag: (videos, page size)
    YOUTUBE_VIEWMODEL_TAG: (12, 5),
    YOUTUBE_ONEPAGE_TAG: (60, 48),
    YOUTUBE_RENAMED_TAG: (3, 48),
}
INSTAGRAM_PLEASEWAIT_USER = "pleasewait"  # 401 "Please wait a few minutes ..."

DEMO_USER = {"tiktok": "demo_creator", "youtube": "democreator", "instagram": "demo_creator"}

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_IG_EPOCH_MS = 1314220021721

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_ATTR = '"><img src=x onerror=alert(1)>'


@dataclass(frozen=True)
class Author:
    """An account. ``handle``: TikTok uniqueId, YouTube handle (no ``@``) or Instagram username.
    ``user_id``: TikTok numeric id, YouTube ``UC`` channel id or Instagram pk."""

    platform: str
    handle: str
    name: str
    user_id: str
    sec_uid: str = ""
    followers: int = 0
    verified: bool = False
    bio: str = ""


@dataclass(frozen=True)
class FixtureVideo:
    """One fixture video. ``video_id``: TikTok id, YouTube id or Instagram shortcode;
    ``pk``: the Instagram numeric id ("" elsewhere). ``character``: the demo character key the
    video shows (registered or not), or None."""

    platform: str
    video_id: str
    pk: str
    author: Author
    caption: str
    create_time: int
    spec: VideoSpec
    character: str | None
    plays: int
    likes: int
    comments: int
    shares: int
    saves: int
    ai_label: bool = False
    listing_tags: tuple[str, ...] = ()

    @property
    def hashtags(self) -> list[str]:
        """Hashtags in the caption, in order, without ``#``."""
        return re.findall(r"#(\w+)", self.caption)

    @property
    def duration(self) -> float:
        return self.spec.duration_s

    @property
    def expected_name(self) -> str | None:
        """The registered character's name this video shows, or None."""
        if self.character and self.character in REGISTERED_KEYS:
            return character_by_key(self.character).name
        return None

    @property
    def path(self) -> str:
        """The canonical page path on the fixture host."""
        if self.platform == "tiktok":
            return f"/@{self.author.handle}/video/{self.video_id}"
        if self.platform == "youtube":
            return f"/shorts/{self.video_id}"
        return f"/reel/{self.video_id}/"

    @property
    def media_path(self) -> str:
        return f"/media/{self.platform}/{self.video_id}.mp4"

    @property
    def cover_path(self) -> str:
        return f"/media/{self.platform}/{self.video_id}.jpg"


@dataclass(frozen=True)
class Listing:
    """An ordered list of videos (newest first) served in pages of ``page_size``."""

    platform: str
    kind: str  # tag | user | search
    name: str
    video_ids: tuple[str, ...]
    page_size: int
    title: str = ""
    listing_id: str = ""  # TikTok challenge id


def _digits(text: str, n: int, first: str = "") -> str:
    """``n`` deterministic digits derived from ``text`` (optionally fixing the first ones)."""
    h = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    body = str(h)[: n - len(first)]
    return first + body


def shortcode_from_pk(pk: int) -> str:
    """Instagram's shortcode for a numeric media id (base 64 over ``A-Za-z0-9-_``)."""
    if pk <= 0:
        raise ValueError("pk must be positive")
    out = ""
    while pk:
        pk, r = divmod(pk, 64)
        out = _B64[r] + out
    return out


def pk_from_shortcode(code: str) -> int:
    """Inverse of :func:`shortcode_from_pk` (``ValueError`` on other characters)."""
    n = 0
    for ch in code:
        i = _B64.find(ch)
        if i < 0:
            raise ValueError(f"not a shortcode: {code!r}")
        n = n * 64 + i
    return n


def challenge_id(tag: str) -> str:
    """The TikTok challenge id of a hashtag (stable, 19 digits)."""
    return _digits(f"challenge:{tag.lower()}", 19, "7")


# ---------------------------------------------------------------------------------------------
# what the demo videos show

_REG_CAPTIONS = {
    "pompom": [
        "Pompom dance time! ポムポムかわいい #charwatchdemo #pompom #anime",
        "ポムポムの新しいダンス覚えた？ #charwatchdemo #ポムポム #fyp",
        "drew Pompom again, which pose is best? #charwatchdemo #fanart",
    ],
    "kitsumaru": [
        "Kitsumaru cosplay test キツマル最高 #charwatchdemo #kitsumaru",
        "キツマルの尻尾アニメーション作ってみた #charwatchdemo #アニメ",
        "kitsu walking cycle wip #charwatchdemo #animation #kitsumaru",
    ],
    "gearbolt": [
        "Gearbolt speedrun with facecam #charwatchdemo #gaming",
        "ギアボルト組み立ててみた！ #charwatchdemo #ロボット #gearbolt",
        "GB-01 fan edit, beep boop #charwatchdemo #edit #robot",
    ],
}
_OTHER_CAPTIONS = [
    "my original character Mossling 🌱 #charwatchdemo #oc",
    "jelly vibes only ✨ #charwatchdemo #jellyfish #art",
    "panda cat doodle インクポー #charwatchdemo #doodle",
    "just shapes and colours today #charwatchdemo #abstract",
    "今日の背景素材 #charwatchdemo #素材 #loop",
    f"{XSS_SCRIPT} #charwatchdemo #test",
    f"{XSS_ATTR} lol #charwatchdemo",
    "Robert'); DROP TABLE videos;-- {{7*7}} #charwatchdemo",
]
_OVERLAYS = [
    "wait for it",
    "day 3 of learning to draw",
    "POV: you found the demo",
    "so cute!!",
    "ranked grind",
    "",
    "part 2",
    "new loop",
]

_TIKTOK_AUTHORS = [
    ("demo_creator", "Demo Creator ✨"),
    ("mochi.fanclub", "もちファンクラブ"),
    ("sakura_edits", "Sakura Edits"),
    ("pixel_rina", "Rina 🎮"),
    ("kawaii.daily", "kawaii daily"),
    ("tokyo_doodles", "東京らくがき"),
    ("randomclips_99", "random clips"),
    (TIKTOK_PRIVATE_USER, "Private Person"),
]
_YOUTUBE_AUTHORS = [
    ("democreator", "Charwatch Demo Creator"),
    ("MochiFanClub", "もちファンクラブ"),
    ("SakuraEditsTV", "Sakura Edits TV"),
    ("PixelRinaPlays", "Pixel Rina Plays"),
    ("DoodleStationJP", "Doodle Station JP"),
]
_INSTAGRAM_AUTHORS = [
    ("demo_creator", "Demo Creator"),
    ("mochi.fanclub", "もちファンクラブ"),
    ("sakura.edits", "Sakura Edits"),
    ("rina.pixel", "Rina"),
    (INSTAGRAM_PLEASEWAIT_USER, "Please Wait"),
]

# (character or None, layout, scale, background, companion, caption index) per demo-tag slot;
# the caption index picks from _REG_CAPTIONS[character] or, for the others, _OTHER_CAPTIONS
_DEMO_TIKTOK = [
    ("pompom", "center", 0.82, "gradient", None, 0),
    ("kitsumaru", "pan", 0.62, "room", None, 0),
    ("mossling", "center", 0.75, "shapes", None, 0),
    ("gearbolt", "pip", 0.42, "shapes", None, 0),
    (None, "center", 0.8, "stripes", None, 5),
    ("pompom", "edge", 0.9, "gradient", None, 1),
    ("jellybloom", "pan", 0.6, "gradient", None, 6),
    ("inkpaw", "center", 0.7, "room", None, 2),
]
_DEMO_YOUTUBE = [
    ("kitsumaru", "center", 0.8, "gradient", None, 1),
    ("inkpaw", "pan", 0.6, "room", None, 5),
    ("gearbolt", "zoom", 0.45, "gradient", None, 2),
    (None, "center", 0.8, "shapes", None, 3),
    ("pompom", "pip", 0.42, "shapes", None, 2),
    ("mossling", "edge", 0.85, "noise", None, 6),
    ("gearbolt", "center", 0.62, "room", "jellybloom", 0),
    (None, "center", 0.8, "noise", None, 4),
]
_DEMO_INSTAGRAM = [
    ("pompom", "zoom", 0.45, "gradient", None, 1),
    ("jellybloom", "center", 0.75, "gradient", None, 7),
    ("kitsumaru", "edge", 0.9, "room", None, 2),
    (None, "center", 0.8, "noise", None, 5),
    ("gearbolt", "center", 0.75, "shapes", None, 1),
    ("inkpaw", "pip", 0.42, "shapes", None, 6),
]
_DEMO_SLOTS = {"tiktok": _DEMO_TIKTOK, "youtube": _DEMO_YOUTUBE, "instagram": _DEMO_INSTAGRAM}
_AUTHOR_TABLES = {
    "tiktok": _TIKTOK_AUTHORS,
    "youtube": _YOUTUBE_AUTHORS,
    "instagram": _INSTAGRAM_AUTHORS,
}
_USER_FEED_SIZE = {"tiktok": 18, "youtube": 30, "instagram": 15}

# page sizes: the real ones for big listings; small demo listings use small pages so that they
# still span two or more pages
PAGE_SIZE = {
    ("tiktok", "tag"): 30,
    ("tiktok", "user"): 15,
    ("tiktok", "search"): 12,
    ("youtube", "tag"): 48,
    ("youtube", "user"): 24,
    ("youtube", "search"): 20,
    ("instagram", "tag"): 12,
    ("instagram", "user"): 12,
}
DEMO_PAGE_SIZE = {"tiktok": 5, "youtube": 5, "instagram": 3}


class Catalog:
    """All fixture content for one seed: ``authors``, ``videos`` and ``listings``."""

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        self.authors: dict[tuple[str, str], Author] = {}
        self.videos: dict[tuple[str, str], FixtureVideo] = {}
        self.listings: dict[tuple[str, str, str], Listing] = {}
        self._by_user_id: dict[tuple[str, str], Author] = {}
        self._by_pk: dict[str, str] = {}
        self._used_ids: set[str] = set()
        for platform in PLATFORMS:
            self._build_authors(platform)
        for platform in PLATFORMS:
            self._build_demo(platform)
        for platform in ("tiktok", "youtube"):
            self._build_bulk(platform)
        self._build_negative_listings()
        self._build_youtube_sentinels()
        self._build_signed_listings()
        self._build_gap_user()

    # -- public lookups -----------------------------------------------------------------------

    def video(self, platform: str, platform_id: str) -> FixtureVideo | None:
        """A video by id (Instagram: shortcode or numeric pk)."""
        v = self.videos.get((platform, platform_id))
        if v is None and platform == "instagram" and platform_id in self._by_pk:
            v = self.videos.get((platform, self._by_pk[platform_id]))
        return v

    def expected_character(self, platform: str, platform_id: str) -> str | None:
        """Ground truth: the registered demo character's name the video shows, or None
        (also None for unknown videos)."""
        v = self.video(platform, platform_id)
        return v.expected_name if v else None

    def shown_character(self, platform: str, platform_id: str) -> str | None:
        """The key of any demo character the video shows (registered or not), or None."""
        v = self.video(platform, platform_id)
        return v.character if v else None

    def demo_video_ids(self, platform: str) -> list[str]:
        """Video ids of the demo hashtag listing on ``platform``, newest first."""
        return list(self.listings[(platform, "tag", DEMO_TAG)].video_ids)

    def author(self, platform: str, handle: str) -> Author | None:
        a = self.authors.get((platform, handle))
        if a is None and platform == "youtube":  # YouTube handles are case-insensitive
            low = handle.lower()
            a = next(
                (x for (p, h), x in self.authors.items() if p == platform and h.lower() == low),
                None,
            )
        return a

    def author_by_id(self, platform: str, user_id: str) -> Author | None:
        """By TikTok numeric id or secUid, YouTube channel id or Instagram pk."""
        return self._by_user_id.get((platform, user_id))

    def listing(self, platform: str, kind: str, name: str) -> Listing | None:
        """A tag, user or search listing (names are case-insensitive for tags and searches)."""
        if kind == "user":
            a = self.author(platform, name)
            if a is None:
                return None
            return self.user_listing(a)
        key = name.strip().lower()
        if kind == "search":
            key = " ".join(key.split())
        return self.listings.get((platform, kind, key))

    def user_listing(self, author: Author) -> Listing:
        """All of an author's videos, newest first."""
        vids = sorted(
            (v for (p, _), v in self.videos.items() if p == author.platform and v.author == author),
            key=lambda v: (-v.create_time, v.video_id),
        )
        return Listing(
            author.platform,
            "user",
            author.handle,
            tuple(v.video_id for v in vids),
            PAGE_SIZE[(author.platform, "user")],
            title=author.name,
        )

    def search(self, platform: str, query: str, limit: int = 100) -> Listing:
        """A search listing: the prepared one for a known query, else caption matches."""
        found = self.listing(platform, "search", query)
        if found is not None:
            return found
        words = [w for w in re.split(r"\s+", query.lower().strip()) if w]
        matches = []
        if words:
            for (p, _), v in self.videos.items():
                if p == platform and all(w in v.caption.lower() for w in words):
                    matches.append(v)
        matches.sort(key=lambda v: (-v.create_time, v.video_id))
        return Listing(
            platform,
            "search",
            query,
            tuple(v.video_id for v in matches[:limit]),
            PAGE_SIZE[(platform, "search")],
            title=query,
        )

    def videos_of(self, listing: Listing) -> list[FixtureVideo]:
        return [self.videos[(listing.platform, vid)] for vid in listing.video_ids]

    # -- building -----------------------------------------------------------------------------

    def _rng(self, *parts: object) -> random.Random:
        return random.Random(":".join(str(p) for p in (self.seed, *parts)))

    def _add_author(self, a: Author) -> None:
        self.authors[(a.platform, a.handle)] = a
        self._by_user_id[(a.platform, a.user_id)] = a
        if a.sec_uid:
            self._by_user_id[(a.platform, a.sec_uid)] = a

    def _build_authors(self, platform: str) -> None:
        rng = self._rng("authors", platform)
        for handle, name in _AUTHOR_TABLES[platform]:
            self._add_author(self._make_author(rng, platform, handle, name))

    def _make_author(self, rng: random.Random, platform: str, handle: str, name: str) -> Author:
        followers = int(10 ** rng.uniform(2, 6.5))
        verified = rng.random() < 0.2
        if platform == "tiktok":
            uid = str(rng.randrange(6_700_000_000_000_000_000, 7_300_000_000_000_000_000))
            sec = "MS4wLjABAAAA" + "".join(rng.choice(_B64) for _ in range(64))
            return Author(platform, handle, name, uid, sec, followers, verified, "fixture account")
        if platform == "youtube":
            cid = "UC" + "".join(rng.choice(_B64) for _ in range(21)) + rng.choice("AQgw")
            return Author(platform, handle, name, cid, "", followers, verified, "fixture channel")
        pk = str(rng.randrange(1_000_000_000, 79_999_999_999))
        return Author(platform, handle, name, pk, "", followers, verified, "fixture account")

    def _new_id(self, rng: random.Random, platform: str, create_time: int) -> tuple[str, str]:
        """(video_id, pk) in the platform's style, unique within the catalog."""
        while True:
            if platform == "tiktok":
                vid, pk = str((create_time << 32) | rng.getrandbits(32)), ""
            elif platform == "youtube":
                vid = "".join(rng.choice(_B64) for _ in range(10)) + rng.choice("AEIMQUYcgkosw048")
                pk = ""
            else:
                n = (
                    (create_time * 1000 + rng.randrange(1000) - _IG_EPOCH_MS) << 23
                ) | rng.getrandbits(23)
                vid, pk = shortcode_from_pk(n), str(n)
            if vid not in self._used_ids:
                self._used_ids.add(vid)
                return vid, pk

    def _spec(
        self,
        rng: random.Random,
        character: str | None,
        layout: str,
        scale: float,
        background: str,
        companion: str | None,
        overlay: str,
    ) -> VideoSpec:
        poses = tuple(rng.sample(range(8), 3))
        if character and character in REGISTERED_KEYS:
            poses = (0, *poses[:2])  # the first pose is the neutral one, as in the references
        return VideoSpec(
            seed=rng.getrandbits(31),
            character=character,
            layout=layout,
            scale=scale,
            scale_end=min(1.0, scale + 0.5),
            edge=rng.choice(("left", "right")) if layout == "edge" else "right",
            background=background,
            palette=rng.randrange(8),
            caption=overlay,
            emojis=rng.choice((0, 0, 2, 4)),
            poses=poses,
            companion=companion,
        )

    def _make_video(
        self,
        rng: random.Random,
        platform: str,
        author: Author,
        create_time: int,
        caption: str,
        spec: VideoSpec,
        ai: bool,
        tags: tuple[str, ...],
    ) -> FixtureVideo:
        vid, pk = self._new_id(rng, platform, create_time)
        plays = int(10 ** rng.uniform(2.5, 6.8))
        v = FixtureVideo(
            platform=platform,
            video_id=vid,
            pk=pk,
            author=author,
            caption=caption,
            create_time=create_time,
            spec=spec,
            character=spec.character,
            plays=plays,
            likes=int(plays * rng.uniform(0.02, 0.15)),
            comments=int(plays * rng.uniform(0.001, 0.01)),
            shares=int(plays * rng.uniform(0.0005, 0.01)),
            saves=int(plays * rng.uniform(0.001, 0.02)),
            ai_label=ai,
            listing_tags=tags,
        )
        self.videos[(platform, vid)] = v
        if pk:
            self._by_pk[pk] = vid
        return v

    def _caption_for(self, character: str | None, k: int) -> str:
        if character in _REG_CAPTIONS:
            return _REG_CAPTIONS[character][k % 3]
        return _OTHER_CAPTIONS[k % len(_OTHER_CAPTIONS)]

    def _build_demo(self, platform: str) -> None:
        rng = self._rng("demo", platform)
        table = _AUTHOR_TABLES[platform]
        others = [self.authors[(platform, h)] for h, _ in table[1:] if not _is_negative_user(h)]
        me = self.authors[(platform, DEMO_USER[platform])]
        t = BASE_TIME - 3600
        demo_ids: list[str] = []
        for k, (char, layout, scale, bg, comp, cap) in enumerate(_DEMO_SLOTS[platform]):
            author = me if k % 3 == 0 else others[k % len(others)]
            caption = self._caption_for(char, cap)
            spec = self._spec(rng, char, layout, scale, bg, comp, _OVERLAYS[k % len(_OVERLAYS)])
            if XSS_SCRIPT in caption or XSS_ATTR in caption:
                spec = _replace_caption(spec, caption.replace("#charwatchdemo", "").strip())
            ai = k in (2, 5) if platform != "youtube" else False
            v = self._make_video(rng, platform, author, t, caption, spec, ai, (DEMO_TAG,))
            demo_ids.append(v.video_id)
            t -= rng.randrange(2 * 3600, 20 * 3600)
        self.listings[(platform, "tag", DEMO_TAG)] = Listing(
            platform,
            "tag",
            DEMO_TAG,
            tuple(demo_ids),
            DEMO_PAGE_SIZE[platform],
            DEMO_TAG,
            challenge_id(DEMO_TAG),
        )
        # the demo creator's own feed: the demo videos above plus more of their own
        roles = [*REGISTERED_KEYS, None, *DISTRACTOR_KEYS, None]
        layouts = [
            ("center", 0.8, "gradient"),
            ("pan", 0.6, "room"),
            ("pip", 0.42, "shapes"),
            ("zoom", 0.45, "gradient"),
            ("center", 0.7, "noise"),
            ("edge", 0.9, "gradient"),
        ]
        have = sum(1 for v in self.videos.values() if v.platform == platform and v.author == me)
        feed_extra = _USER_FEED_SIZE[platform] - have
        t = BASE_TIME - 1800
        search_ids: list[str] = []
        for k in range(feed_extra):
            char = roles[k % len(roles)]
            layout, scale, bg = layouts[k % len(layouts)]
            if char is None and layout == "pip":
                layout = "center"
            caption = self._caption_for(char, k).replace("#charwatchdemo", "charwatch demo")
            caption = f"{caption} #demo_creator"
            spec = self._spec(
                rng, char, layout, scale, bg, None, _OVERLAYS[(k + 3) % len(_OVERLAYS)]
            )
            ai = platform == "tiktok" and k % 7 == 3 or platform == "instagram" and k % 5 == 2
            t -= rng.randrange(3 * 3600, 30 * 3600)
            v = self._make_video(rng, platform, me, t, caption, spec, ai, ())
            if len(search_ids) < 8:
                search_ids.append(v.video_id)
        if platform in ("tiktok", "youtube"):
            ids = sorted(
                [*demo_ids, *search_ids],
                key=lambda i: -self.videos[(platform, i)].create_time,
            )
            size = 12 if platform == "tiktok" else 8
            self.listings[(platform, "search", DEMO_SEARCH)] = Listing(
                platform, "search", DEMO_SEARCH, tuple(ids), size, DEMO_SEARCH
            )

    def _build_bulk(self, platform: str) -> None:
        rng = self._rng("bulk", platform)
        authors = []
        for i in range(20):
            handle = f"bulk_user_{i:02d}" if platform == "tiktok" else f"BulkChannel{i:02d}"
            a = self._make_author(rng, platform, handle, f"Bulk {i:02d}")
            self._add_author(a)
            authors.append(a)
        kinds: list[str | None] = [*DISTRACTOR_KEYS, None, None]
        ids = []
        t = BASE_TIME - 7200
        for i in range(BULK_SIZE):
            char = kinds[i % len(kinds)]
            layout = ("center", "pan", "zoom", "edge")[i % 4]
            bg = ("gradient", "shapes", "stripes", "noise", "room")[i % 5]
            spec = self._spec(rng, char, layout, 0.6, bg, None, f"bulk clip {i + 1}")
            caption = f"bulk clip {i + 1} of {BULK_SIZE} #{BULK_TAG} #fixture"
            v = self._make_video(
                rng, platform, authors[i % 20], t, caption, spec, False, (BULK_TAG,)
            )
            ids.append(v.video_id)
            t -= rng.randrange(60, 900)
        self.listings[(platform, "tag", BULK_TAG)] = Listing(
            platform,
            "tag",
            BULK_TAG,
            tuple(ids),
            PAGE_SIZE[(platform, "tag")],
            BULK_TAG,
            challenge_id(BULK_TAG),
        )

    def _build_youtube_sentinels(self) -> None:
        """YouTube hashtags whose pages change shape (see ``YOUTUBE_SENTINEL_SIZES``)."""
        author = self.authors[("youtube", _AUTHOR_TABLES["youtube"][3][0])]
        for tag, (count, size) in YOUTUBE_SENTINEL_SIZES.items():
            rng = self._rng("sentinel", "youtube", tag)
            ids = []
            t = BASE_TIME - 11 * 3600
            for k in range(count):
                char = DISTRACTOR_KEYS[k % len(DISTRACTOR_KEYS)]
                spec = self._spec(rng, char, "center", 0.7, "gradient", None, tag)
                caption = f"{tag} clip {k + 1} #{tag}"
                v = self._make_video(rng, "youtube", author, t, caption, spec, False, (tag,))
                ids.append(v.video_id)
                t -= 600
            self.listings[("youtube", "tag", tag)] = Listing(
                "youtube", "tag", tag, tuple(ids), size, tag
            )

    def _build_negative_listings(self) -> None:
        """Tags whose pages exist but whose item lists fail, plus the rate-limited hashtag."""
        for platform, tag in (
            ("tiktok", TIKTOK_BLOCKED_TAG),
            ("tiktok", TIKTOK_VERIFY_TAG),
            ("tiktok", TIKTOK_CHALLENGE_TAG),
            ("tiktok", TIKTOK_FLAKY_TAG),
            ("tiktok", TIKTOK_RENAMED_TAG),
            ("youtube", YOUTUBE_RATELIMIT_TAG),
            ("youtube", YOUTUBE_LAYOUT_TAG),
        ):
            rng = self._rng("neg", platform, tag)
            author = self.authors[(platform, _AUTHOR_TABLES[platform][2][0])]
            ids = []
            t = BASE_TIME - 5 * 3600
            for k in range(3):
                char = DISTRACTOR_KEYS[k % len(DISTRACTOR_KEYS)]
                spec = self._spec(rng, char, "center", 0.7, "gradient", None, tag)
                v = self._make_video(
                    rng, platform, author, t, f"{tag} clip {k + 1} #{tag}", spec, False, (tag,)
                )
                ids.append(v.video_id)
                t -= 3600
            self.listings[(platform, "tag", tag)] = Listing(
                platform,
                "tag",
                tag,
                tuple(ids),
                PAGE_SIZE[(platform, "tag")],
                tag,
                challenge_id(tag),
            )

    def _build_signed_listings(self) -> None:
        """A TikTok tag and search whose item lists need the web app's signature."""
        rng = self._rng("signed", "tiktok")
        author = self.authors[("tiktok", _AUTHOR_TABLES["tiktok"][3][0])]
        ids = []
        t = BASE_TIME - 9 * 3600
        for k in range(TIKTOK_SIGNED_SIZE):
            char = DISTRACTOR_KEYS[k % len(DISTRACTOR_KEYS)]
            spec = self._spec(rng, char, "center", 0.7, "gradient", None, TIKTOK_SIGNED_TAG)
            caption = f"signed clip {k + 1} #{TIKTOK_SIGNED_TAG}"
            v = self._make_video(
                rng, "tiktok", author, t, caption, spec, False, (TIKTOK_SIGNED_TAG,)
            )
            ids.append(v.video_id)
            t -= 1800
        tag, search = TIKTOK_SIGNED_TAG, TIKTOK_SIGNED_SEARCH
        self.listings[("tiktok", "tag", tag)] = Listing(
            "tiktok", "tag", tag, tuple(ids), 4, tag, challenge_id(tag)
        )
        self.listings[("tiktok", "search", search)] = Listing(
            "tiktok", "search", search, tuple(ids), 4, search
        )

    def _build_gap_user(self) -> None:
        """A TikTok creator with 4 recent videos, 20 days without posts, then 4 older ones."""
        rng = self._rng("gap", "tiktok")
        author = self._make_author(rng, "tiktok", TIKTOK_GAP_USER, "Gap Creator")
        self._add_author(author)
        for k in range(8):
            t = BASE_TIME - 2 * 3600 - k * 3600 - (20 * 86400 if k >= 4 else 0)
            spec = self._spec(rng, None, "center", 0.7, "gradient", None, TIKTOK_GAP_USER)
            self._make_video(rng, "tiktok", author, t, f"gap clip {k + 1}", spec, False, ())


def _is_negative_user(handle: str) -> bool:
    return handle in (TIKTOK_PRIVATE_USER, INSTAGRAM_PLEASEWAIT_USER)


def _replace_caption(spec: VideoSpec, text: str) -> VideoSpec:
    return replace(spec, caption=text)


_CATALOGS: dict[int, Catalog] = {}


def get_catalog(seed: int = 7) -> Catalog:
    """A shared catalog per seed (building one takes a few milliseconds, but ids are stable)."""
    cat = _CATALOGS.get(seed)
    if cat is None:
        cat = _CATALOGS[seed] = Catalog(seed)
    return cat
