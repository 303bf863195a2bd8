"""Reports: CSV round-trip, escaped self-contained HTML, index page, evidence export."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import time
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image, ImageDraw
from sqlalchemy import func, select

from charwatch.config import Config, load_config
from reports import (
    CSV_COLUMNS,
    ReportError,
    UnknownDetectionError,
    export_evidence,
    write_report,
)
from reports.html import trend_chart
from storage import (
    Character,
    CrawlRun,
    Detection,
    Frame,
    ListingStatus,
    ReportRun,
    Store,
    Video,
    VideoState,
)

T0 = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)
SINCE, UNTIL = T0, T0 + dt.timedelta(days=4)

SCRIPT_PAYLOAD = "<script>window.__pwned=1</script>"
IMG_PAYLOAD = '"><img src=x onerror="window.__pwned=2">'
DOM_SCRIPT_PAYLOAD = "<script>document.body.setAttribute('data-pwned','script')</script>"
DOM_IMG_PAYLOAD = "\"><img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"
JP_CAPTION = "新作ダンス踊ってみた！ミカ・ソラのコスプレ #アニメ #踊ってみた"
FORMULA_CAPTION = '=HYPERLINK("http://evil.example/x","click")'


def jpeg_image(color: tuple[int, int, int], size: tuple[int, int] = (90, 160)) -> Image.Image:
    """A coloured frame with a figure-like shape, like a sampled video frame."""
    im = Image.new("RGB", size, color)
    d = ImageDraw.Draw(im)
    d.ellipse((size[0] // 4, size[1] // 4, 3 * size[0] // 4, size[1] // 2), fill=(255, 240, 220))
    d.rectangle((size[0] // 3, size[1] // 2, 2 * size[0] // 3, 5 * size[1] // 6), fill=(40, 40, 90))
    return im


def jpeg(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (96, 170)) -> Path:
    """A real small JPEG thumbnail file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    jpeg_image(color, size).save(path, "JPEG", quality=85)
    return path


@dataclass
class Fixture:
    cfg: Config
    store: Store
    data_dir: Path
    flagged_in_period: int = 0
    videos_in_period: int = 0
    ids: dict[str, int] = field(default_factory=dict)
    urls: set[str] = field(default_factory=set)
    media_sha: str = ""


def make_config(tmp_path: Path) -> Config:
    data = tmp_path / "data"
    return load_config(
        None,
        environ={
            "CHARWATCH_STORAGE__DATA_DIR": data.as_posix(),
            "CHARWATCH_STORAGE__URL": f"sqlite:///{(tmp_path / 'cw.db').as_posix()}",
        },
    )


def populate(tmp_path: Path) -> Fixture:
    """A store with real rows: hostile and Japanese captions, thumbnails, a blocked crawl."""
    cfg = make_config(tmp_path)
    store = Store(cfg.storage.database_url)
    data = cfg.data_dir
    fx = Fixture(cfg, store, data)
    media = data / "media" / "tiktok" / "7301.mp4"
    media.parent.mkdir(parents=True, exist_ok=True)
    media.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    fx.media_sha = hashlib.sha256(media.read_bytes()).hexdigest()

    specs: list[dict[str, Any]] = [
        # key, platform, caption, author, characters [(name, score, match, review, day)]
        dict(
            key="jp",
            platform="tiktok",
            pid="7301",
            caption=JP_CAPTION,
            author="さくら🌸",
            flags=[("ミカ・ソラ", 0.934, "copy", "new", 0)],
            media=True,
            ai="AI-generated",
        ),
        dict(
            key="script",
            platform="tiktok",
            pid="7302",
            caption=SCRIPT_PAYLOAD,
            author="<b>bold</b>",
            flags=[("ミカ・ソラ", 0.611, "semantic", "needs_review", 1)],
        ),
        dict(
            key="img",
            platform="youtube",
            pid="yt_Abc-123",
            caption=IMG_PAYLOAD,
            author="chan\"nel'",
            flags=[("Kitsune Blade", 0.702, "semantic", "confirmed", 1)],
        ),
        dict(
            key="dom",
            platform="youtube",
            pid="yt_two",
            caption=DOM_IMG_PAYLOAD,
            author=DOM_SCRIPT_PAYLOAD,
            flags=[
                ("Kitsune Blade", 0.881, "copy", "new", 2),
                ("ミカ・ソラ", 0.55, "semantic", "new", 2),
            ],
        ),
        dict(
            key="formula",
            platform="instagram",
            pid="C0formula",
            caption=FORMULA_CAPTION,
            author="@evil",
            url="javascript:alert(1)",
            flags=[("Kitsune Blade", 0.777, "semantic", "rejected", 3)],
        ),
        dict(
            key="old",
            platform="tiktok",
            pid="7000",
            caption="old flag before the period",
            author="x",
            flags=[("ミカ・ソラ", 0.99, "copy", "new", -5)],
        ),
        dict(
            key="clean",
            platform="tiktok",
            pid="7400",
            caption="nothing here",
            author="y",
            flags=[],
            state=VideoState.MATCHED,
        ),
        dict(
            key="failed",
            platform="instagram",
            pid="C0fail",
            caption="broken",
            author="z",
            flags=[],
            state=VideoState.FAILED,
        ),
    ]
    colors = [(200, 40, 60), (30, 120, 200), (40, 160, 90), (220, 160, 30), (120, 60, 170)]
    with store.session() as s:
        chars = {
            "ミカ・ソラ": Character(
                name="ミカ・ソラ",
                franchise="星の冒険",
                aliases=["Mika Sora"],
                rights_holder="Hoshi Studio",
            ),
            "Kitsune Blade": Character(name="Kitsune Blade", franchise="Blade Saga"),
            "Unused": Character(name="Unused", franchise="None"),
        }
        s.add_all(chars.values())
        s.flush()
        for i, spec in enumerate(specs):
            day = spec["flags"][0][4] if spec["flags"] else 1
            seen = T0 + dt.timedelta(days=day, hours=1)
            url = spec.get("url") or f"https://www.{spec['platform']}.com/v/{spec['pid']}"
            v = Video(
                platform=spec["platform"],
                platform_id=spec["pid"],
                url=url,
                author=spec["author"],
                caption=spec["caption"],
                hashtags=["アニメ", "cosplay"] if spec["key"] == "jp" else [],
                posted_at=seen - dt.timedelta(hours=5),
                view_count=12345 if spec["key"] == "jp" else None,
                ai_label=spec.get("ai"),
                raw={"id": spec["pid"], "desc": spec["caption"], "author": spec["author"]},
                first_seen=seen,
                last_seen=seen,
                state=spec.get("state", VideoState.MATCHED),
                processed_at=seen + dt.timedelta(minutes=10),
                c2pa_state="absent" if i % 2 else "valid",
                c2pa_info={"claim_generator": "Example Cam 1.0"} if i % 2 == 0 else None,
                media_path=str(media) if spec.get("media") else None,
                media_sha256=fx.media_sha if spec.get("media") else "ab" * 32,
                media_bytes=media.stat().st_size if spec.get("media") else None,
            )
            s.add(v)
            s.flush()
            fx.ids[spec["key"]] = v.id
            thumbs = []
            # "img": large frame thumbnails only (the report downscales them);
            # "formula": a corrupt best-frame thumbnail and no frame thumbnails (placeholder)
            size = (360, 640) if spec["key"] == "img" else (96, 170)
            for k, t in enumerate((0.0, 1.0, 2.0)):
                p = jpeg(data / "frames" / str(v.id) / f"{t:06.2f}.jpg", colors[(i + k) % 5], size)
                keep = spec["key"] != "formula"
                s.add(
                    Frame(
                        video_id=v.id,
                        t=t,
                        pdq="0" * 64,
                        pdq_quality=90,
                        thumb_path=str(p) if keep else None,
                    )
                )
                thumbs.append(p)
            if spec["key"] == "formula":
                thumbs[1] = data / "frames" / "corrupt.jpg"
                thumbs[1].write_bytes(b"\xff\xd8 not really a jpeg")
            for j, (cname, score, match, review, fday) in enumerate(spec["flags"]):
                s.add(
                    Detection(
                        video_id=v.id,
                        character_id=chars[cname].id,
                        score=score,
                        match_type=match,
                        signals={
                            "embed_sim": round(score - 0.05, 4),
                            "pdq_distance": 12 + j,
                            "frames_over": 3,
                            "region": "center",
                        },
                        best_frame_t=1.0,
                        # one detection relies on the frame thumbnail fallback
                        best_frame_thumb=None if spec["key"] == "img" else str(thumbs[1]),
                        model_id="effnet-lite0",
                        review_state=review,
                        detected_at=T0 + dt.timedelta(days=fday, hours=3 + j),
                    )
                )
                if 0 <= fday < 4:
                    fx.flagged_in_period += 1
            if spec["key"] != "old":
                fx.videos_in_period += 1
            if spec["flags"] and spec["flags"][0][4] >= 0:
                fx.urls.add(url)
        s.add_all(
            [
                CrawlRun(
                    platform="tiktok",
                    kind="hashtag",
                    target="アニメ",
                    status=ListingStatus.OK,
                    items_seen=40,
                    items_new=12,
                    pages=2,
                    started_at=T0 + dt.timedelta(hours=1),
                    finished_at=T0 + dt.timedelta(hours=1, minutes=3),
                ),
                CrawlRun(
                    platform="instagram",
                    kind="hashtag",
                    target="cosplay",
                    status=ListingStatus.BLOCKED,
                    message="HTTP 429 <too many> requests",
                    started_at=T0 + dt.timedelta(hours=1),
                ),
                CrawlRun(
                    platform="youtube",
                    kind="search",
                    target="kitsune blade",
                    status=ListingStatus.LAYOUT_CHANGED,
                    message="ytInitialData not found",
                    debug_path="debug/yt-1.html",
                    started_at=T0 + dt.timedelta(days=1),
                ),
            ]
        )
    return fx


@pytest.fixture
def fx(tmp_path: Path) -> Fixture:
    f = populate(tmp_path)
    yield f
    f.store.dispose()


class Tags(HTMLParser):
    """Every start tag with its attributes, and the page text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)


def parse(html: str) -> Tags:
    p = Tags()
    p.feed(html)
    return p


# ---------------------------------------------------------------------- CSV


def test_csv_round_trips_through_pandas(fx: Fixture, tmp_path: Path) -> None:
    res = write_report(fx.cfg, fx.store, since=SINCE, until=UNTIL, out_dir=tmp_path / "out")
    raw = res.csv_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "UTF-8 BOM for Excel"
    df = pd.read_csv(res.csv_path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert tuple(df.columns) == CSV_COLUMNS
    assert len(df) == res.flags == fx.flagged_in_period == 6
    assert df["detection_id"].is_unique
    jp = df[df["platform_id"] == "7301"].iloc[0]
    assert jp["caption"] == JP_CAPTION
    assert jp["author"] == "さくら🌸"
    assert jp["character"] == "ミカ・ソラ" and jp["franchise"] == "星の冒険"
    assert jp["evidence_sha256"] == fx.media_sha
    assert jp["ai_label"] == "AI-generated"
    assert jp["detected_at"] == "2026-11-20T05:00:00Z"
    assert jp["posted_at"] == "2026-11-19T22:00:00Z"
    assert json.loads(jp["signals"]) == {
        "embed_sim": 0.884,
        "frames_over": 3,
        "pdq_distance": 12,
        "region": "center",
    }
    assert float(jp["score"]) == 0.934 and jp["match_type"] == "copy"
    assert float(jp["best_frame_time"]) == 1.0
    # hostile text survives as data; formula-like cells are defused
    assert df[df["platform_id"] == "7302"].iloc[0]["caption"] == SCRIPT_PAYLOAD
    formula = df[df["platform_id"] == "C0formula"].iloc[0]
    assert formula["caption"] == "'" + FORMULA_CAPTION
    assert formula["author"] == "'@evil"
    # highest score first; the flag before the period is left out
    assert list(df["score"].astype(float)) == sorted(df["score"].astype(float), reverse=True)
    assert "7000" not in set(df["platform_id"])
    # the video with two characters has two rows
    assert (df["platform_id"] == "yt_two").sum() == 2


def test_zero_flags_period(fx: Fixture, tmp_path: Path) -> None:
    empty = T0 + dt.timedelta(days=30)
    res = write_report(
        fx.cfg, fx.store, since=empty, until=empty + dt.timedelta(days=1), out_dir=tmp_path / "out"
    )
    assert res.flags == 0
    df = pd.read_csv(res.csv_path, encoding="utf-8-sig")
    assert tuple(df.columns) == CSV_COLUMNS and len(df) == 0
    html = res.html_path.read_text(encoding="utf-8")
    assert "No flags in this period" in html
    assert 'class="card"' not in html and 'id="flags-table"' not in html
    assert parse(html).tags[0][0] == "html"


# ---------------------------------------------------------------------- HTML


def test_html_escapes_scraped_text_and_is_self_contained(fx: Fixture, tmp_path: Path) -> None:
    res = write_report(fx.cfg, fx.store, since=SINCE, until=UNTIL, out_dir=tmp_path / "out")
    html = res.html_path.read_text(encoding="utf-8")
    page = parse(html)

    # hostile captions and authors are text, never markup
    assert "<script>window.__pwned" not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=&#34;window.__pwned=2&#34;&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert not [a for t, a in page.tags if t == "img" and a.get("src") == "x"]
    assert not [a for t, a in page.tags if any(k.startswith("on") for k in a)]
    text = "".join(page.text)
    for payload in (SCRIPT_PAYLOAD, IMG_PAYLOAD, DOM_IMG_PAYLOAD, DOM_SCRIPT_PAYLOAD, JP_CAPTION):
        assert payload in text
    assert len(page.scripts) == 1 and "__pwned" not in page.scripts[0]

    # one card per flagged video, thumbnails embedded, the fallback thumbnail too
    cards = [a for t, a in page.tags if t == "article" and "card" in (a.get("class") or "")]
    assert len(cards) == 5
    assert {int(a["data-video-id"]) for a in cards} == {
        fx.ids[k] for k in ("jp", "script", "img", "dom", "formula")
    }
    two = next(a for a in cards if int(a["data-video-id"]) == fx.ids["dom"])
    assert two["data-detections"] == "2"
    imgs = [a for t, a in page.tags if t == "img"]
    assert len(imgs) == 4 and html.count('class="nothumb"') == 1  # the corrupt one
    assert all(a["src"].startswith("data:image/jpeg;base64,") for a in imgs)
    sizes = {}
    for a in imgs:
        data = base64.b64decode(a["src"].split(",", 1)[1])
        with Image.open(io.BytesIO(data)) as im:
            sizes[a["alt"].rsplit(" ", 1)[1]] = im.size
    assert sizes["yt_Abc-123"] == (160, 284)  # downscaled from the 360x640 frame
    assert sizes["7301"] == (96, 170)  # small enough: embedded as stored
    # table rows: one per flag
    rows = [a for t, a in page.tags if t == "tr" and "data-detection-id" in a]
    assert len(rows) == res.flags == 6

    # nothing is fetched from the network; only the video links point outside
    for tag, attrs in page.tags:
        for name in ("src", "href", "action", "poster", "data"):
            value = (attrs.get(name) or "").strip().lower()
            if name == "href" and value.startswith(("http://", "https://")):
                assert attrs["href"] in fx.urls
                assert attrs.get("rel") == "noopener noreferrer"
            else:
                assert not value.startswith(("http:", "https:", "//", "javascript:")), (tag, attrs)
        assert tag not in ("link", "iframe", "object", "embed", "base")
    assert "@import" not in html and "url(" not in html
    linked = {a["href"] for t, a in page.tags if t == "a" and a.get("href", "").startswith("http")}
    assert linked == fx.urls - {"javascript:alert(1)"}
    csp = next(a for t, a in page.tags if t == "meta" and a.get("http-equiv"))
    assert "default-src 'none'" in csp["content"] and "script-src 'sha256-" in csp["content"]

    # run summary: crawl problems shown as warnings, per-platform counts
    assert "blocked" in html and "layout_changed" in html
    assert "HTTP 429 &lt;too many&gt; requests" in html
    assert "ytInitialData not found" in html
    warnings = [a for t, a in page.tags if t == "li" and "crawl-warning" in (a.get("class") or "")]
    assert {a["data-status"] for a in warnings} == {"blocked", "layout_changed"}
    assert 'data-flags="6"' in html and 'data-videos="5"' in html
    trs = {a["data-platform"] for t, a in page.tags if t == "tr" and "data-platform" in a}
    assert {"tiktok", "youtube", "instagram"} <= trs
    # trend: the period's days (Nov 20 .. 24 02:00) and pale context days before it
    bars = {a["data-day"]: a for t, a in page.tags if t == "rect" and "data-day" in a}
    inside = [(d, int(a["data-count"])) for d, a in bars.items() if a["data-in-period"] == "1"]
    assert inside == [
        ("2026-11-20", 1),
        ("2026-11-21", 2),
        ("2026-11-22", 2),
        ("2026-11-23", 1),
        ("2026-11-24", 0),
    ]
    assert bars["2026-11-15"]["data-count"] == "1" and bars["2026-11-15"]["data-in-period"] == "0"
    assert len(bars) == 15  # at least two weeks of context


def test_trend_chart_days_and_weeks() -> None:
    end = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    times = pd.Series([end - dt.timedelta(days=d, hours=1) for d in (0, 0, 3, 200, 201, 300)])
    daily = trend_chart(times, (end - dt.timedelta(days=14), end), end - dt.timedelta(days=7), end)
    assert daily["unit"] == "day" and len(daily["bars"]) == 14
    assert daily["total"] == 3 and daily["peak"] == 2 and daily["context"]
    assert daily["bars"][-1]["day"] == "2026-05-31" and daily["bars"][-1]["count"] == 2
    start = end - dt.timedelta(days=365)
    weekly = trend_chart(times, (start, end), None, None)
    assert weekly["unit"] == "week" and weekly["total"] == 6 and not weekly["context"]
    assert all(dt.date.fromisoformat(b["day"]).weekday() == 0 for b in weekly["bars"]), (
        "weeks start on Monday"
    )
    assert sum(b["count"] for b in weekly["bars"]) == 6 and 52 <= len(weekly["bars"]) <= 54


def test_report_filters_and_bad_input(fx: Fixture, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = write_report(
        fx.cfg, fx.store, since=SINCE, until=UNTIL, character="mika sora", out_dir=out
    )
    df = pd.read_csv(res.csv_path, encoding="utf-8-sig")
    assert set(df["character"]) == {"ミカ・ソラ"} and len(df) == 3
    assert "character: ミカ・ソラ" in res.html_path.read_text(encoding="utf-8")
    res = write_report(fx.cfg, fx.store, platform="youtube", out_dir=out)
    df = pd.read_csv(res.csv_path, encoding="utf-8-sig")
    assert set(df["platform"]) == {"youtube"} and len(df) == 3
    # naive datetimes are UTC; open ends work
    res = write_report(fx.cfg, fx.store, since=dt.datetime(2026, 11, 23, 0, 0), out_dir=out)
    assert res.flags == 1
    with pytest.raises(ReportError, match="unknown character"):
        write_report(fx.cfg, fx.store, character="Nobody", out_dir=out)
    with pytest.raises(ReportError, match="unknown platform"):
        write_report(fx.cfg, fx.store, platform="myspace", out_dir=out)
    with pytest.raises(ReportError, match="empty period"):
        write_report(fx.cfg, fx.store, since=UNTIL, until=SINCE, out_dir=out)


def test_default_folder_index_and_no_overwrite(fx: Fixture) -> None:
    first = write_report(fx.cfg, fx.store, since=SINCE, until=UNTIL)
    second = write_report(fx.cfg, fx.store)
    assert first.html_path.parent == fx.cfg.reports_dir == second.html_path.parent
    assert first.html_path != second.html_path and first.csv_path != second.csv_path
    assert first.html_path.name.startswith("charwatch-report-")
    assert first.html_path.read_text(encoding="utf-8")  # not overwritten by the second
    assert first.index_path == second.index_path == fx.cfg.reports_dir / "index.html"
    index = second.index_path.read_text(encoding="utf-8")
    links = [a["href"] for t, a in parse(index).tags if t == "a"]
    assert links == [
        second.html_path.name,
        second.csv_path.name,
        first.html_path.name,
        first.csv_path.name,
    ]
    assert "all time" in index and "2026-11-20 02:00 UTC – 2026-11-24 02:00 UTC" in index
    with fx.store.session() as s:
        runs = s.scalars(select(ReportRun).order_by(ReportRun.id)).all()
        assert [r.flags for r in runs] == [6, 7]
        assert runs[0].since == SINCE and runs[0].until == UNTIL
        assert Path(runs[1].html_path) == second.html_path.resolve()
    # no leftovers from the atomic writes
    assert not list(fx.cfg.reports_dir.glob("*.part"))


# ---------------------------------------------------------------------- evidence


def test_evidence_folder(fx: Fixture, tmp_path: Path) -> None:
    with fx.store.session() as s:
        det_id = s.scalar(select(Detection.id).where(Detection.video_id == fx.ids["jp"]))
    path = export_evidence(fx.cfg, fx.store, det_id, tmp_path / "ev")
    assert path.is_dir() and path.name.startswith(f"charwatch-evidence-{det_id}-tiktok-7301-")
    names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    assert names == [
        "SHA256SUMS",
        "frames/best_frame.jpg",
        "frames/frame_t00000.000.jpg",
        "frames/frame_t00002.000.jpg",
        "listing.json",
        "manifest.json",
        "summary.txt",
        "video.mp4",
        "video.mp4.sha256",
    ]
    assert hashlib.sha256((path / "video.mp4").read_bytes()).hexdigest() == fx.media_sha
    assert (path / "video.mp4.sha256").read_text() == f"{fx.media_sha}  video.mp4\n"
    m = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    assert m["media"]["sha256"] == fx.media_sha and m["media"]["sha256_matches_recorded"] is True
    assert m["video"]["caption"] == JP_CAPTION and m["video"]["url"].endswith("/7301")
    assert m["capture"]["detected_at"] == "2026-11-20T05:00:00Z"
    assert m["capture"]["first_seen"] == "2026-11-20T03:00:00Z"
    assert m["character"]["rights_holder"] == "Hoshi Studio"
    assert json.loads((path / "listing.json").read_text(encoding="utf-8"))["desc"] == JP_CAPTION
    for line in (path / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        assert hashlib.sha256((path / name).read_bytes()).hexdigest() == digest
    summary = (path / "summary.txt").read_text(encoding="utf-8")
    assert "https://www.tiktok.com/v/7301" in summary and fx.media_sha in summary
    assert "matches the hash recorded at download" in summary and "ミカ・ソラ" in summary


def test_evidence_zip_missing_media_and_tampering(fx: Fixture, tmp_path: Path) -> None:
    with fx.store.session() as s:
        other = s.scalar(select(Detection.id).where(Detection.video_id == fx.ids["script"]))
        jp = s.scalar(select(Detection.id).where(Detection.video_id == fx.ids["jp"]))
        last = s.scalar(select(func.max(Detection.id)))
    z = export_evidence(fx.cfg, fx.store, other, tmp_path / "ev", zip=True)
    assert z.suffix == ".zip" and z.is_file()
    with zipfile.ZipFile(z) as zf:
        names = zf.namelist()
        root = z.stem
        assert f"{root}/manifest.json" in names and not any("video.mp4" in n for n in names)
        m = json.loads(zf.read(f"{root}/manifest.json"))
        summary = zf.read(f"{root}/summary.txt").decode("utf-8")
    assert (
        m["media"]["present"] is False and "deleted after matching" in m["media"]["missing_reason"]
    )
    assert "not included" in summary and m["video"]["caption"] == SCRIPT_PAYLOAD
    assert not [p for p in (tmp_path / "ev").iterdir() if p.name.startswith(".evidence-")]

    # a file changed after download is exported but flagged
    media = fx.data_dir / "media" / "tiktok" / "7301.mp4"
    media.write_bytes(media.read_bytes() + b"tampered")
    a = export_evidence(fx.cfg, fx.store, jp, tmp_path / "ev")
    b = export_evidence(fx.cfg, fx.store, jp, tmp_path / "ev")
    assert a != b and a.is_dir() and b.is_dir()
    m = json.loads((a / "manifest.json").read_text(encoding="utf-8"))
    assert m["media"]["sha256_matches_recorded"] is False
    assert "DOES NOT match" in (a / "summary.txt").read_text(encoding="utf-8")

    with pytest.raises(UnknownDetectionError, match=f"no detection with id {last + 100}"):
        export_evidence(fx.cfg, fx.store, last + 100, tmp_path / "ev")


# ---------------------------------------------------------------------- size


def test_report_size_for_1000_flagged_videos(tmp_path: Path) -> None:
    """1,000 flagged videos with ~5 KB thumbnails: sizes and time stay in bounds."""
    cfg = make_config(tmp_path)
    store = Store(cfg.storage.database_url)
    rng = __import__("random").Random(7)
    thumbs = cfg.data_dir / "thumbs"
    thumbs.mkdir(parents=True)
    t_sizes = []
    samples = []
    for k in range(25):  # distinct ~5 KB frames, written to one file per video
        im = Image.frombytes("RGB", (90, 160), rng.randbytes(90 * 160 * 3)).resize((90, 160))
        im = Image.blend(jpeg_image((k * 37 % 256, 90, 160)), im, 0.3)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=75)
        samples.append(buf.getvalue())
    with store.session() as s:
        chars = [Character(name=f"キャラ{i}", franchise=f"Saga {i % 3}") for i in range(8)]
        s.add_all(chars)
        s.flush()
        for i in range(1000):
            p = thumbs / f"{i}.jpg"
            p.write_bytes(samples[i % 25])
            t_sizes.append(len(samples[i % 25]))
            plat = ("tiktok", "youtube", "instagram")[i % 3]
            day = T0 + dt.timedelta(days=i % 30, minutes=i)
            v = Video(
                platform=plat,
                platform_id=f"id{i}",
                url=f"https://www.{plat}.com/v/{i}",
                author=f"user{i}",
                caption=f"踊ってみた #{i} " + "かわいい " * 10,
                first_seen=day,
                last_seen=day,
                state=VideoState.MATCHED,
                processed_at=day,
                media_sha256=hashlib.sha256(str(i).encode()).hexdigest(),
            )
            s.add(v)
            s.flush()
            s.add(
                Detection(
                    video_id=v.id,
                    character_id=chars[i % 8].id,
                    score=rng.random(),
                    match_type=("copy", "semantic")[i % 2],
                    best_frame_t=1.0,
                    best_frame_thumb=str(p),
                    detected_at=day,
                    signals={"embed_sim": rng.random(), "pdq_distance": i % 64, "frames_over": 3},
                )
            )
    started = time.perf_counter()
    res = write_report(cfg, store, out_dir=tmp_path / "out")
    took = time.perf_counter() - started
    html_mb = res.html_path.stat().st_size / 1e6
    csv_kb = res.csv_path.stat().st_size / 1e3
    avg_thumb = sum(t_sizes) / len(t_sizes)
    print(
        f"\n1000 flags: HTML {html_mb:.2f} MB, CSV {csv_kb:.0f} kB, "
        f"thumbs avg {avg_thumb / 1e3:.1f} kB, {took:.1f} s"
    )
    assert res.flags == 1000
    html = res.html_path.read_text(encoding="utf-8")
    assert html.count('<article class="card"') == 1000
    assert html.count("data:image/jpeg;base64,") == 1000
    per_flag_markup = (res.html_path.stat().st_size - 1000 * avg_thumb * 4 / 3) / 1000
    assert per_flag_markup < 4500, per_flag_markup  # card + table row, thumbnails aside
    assert took < 60
    store.dispose()
