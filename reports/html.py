"""The self-contained HTML report and the index page (Jinja2 with autoescape, no network).

Everything scraped reaches the page only through autoescaped template variables; nothing
from the store is marked safe. Thumbnails are embedded as ``data:`` URIs, the trend chart
is inline SVG drawn by the template, and a Content-Security-Policy allows only the page's
own script (by hash), inline styles and ``data:`` images.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
import pandas as pd
from PIL import Image, UnidentifiedImageError

from charwatch.config import PLATFORMS
from charwatch.platforms import display_name
from reports.data import fmt_time, iso_time
from reports.explain import estimated_precision, explain
from storage.blobs import data_file

TEMPLATES = Path(__file__).with_name("templates")
MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
MAX_TEXT = 400  # characters of one signal value shown on a card


def make_env() -> jinja2.Environment:
    """The template environment: autoescape on for every template, undefined names fail."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["platform_name"] = platform_name
    return env


def platform_name(p: Any) -> str:
    return display_name(str(p))


def script_hash(env: jinja2.Environment, name: str) -> str:
    """The CSP source for an inline script template, as rendered into the page."""
    text = env.get_template(name).render()
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def safe_link(url: Any) -> str | None:
    """``url`` when it is a plain http(s) link, else ``None`` (shown as text, not linked)."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return url.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def fmt_value(v: Any) -> str:
    """A signal value for people."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "–" if math.isnan(v) else format(v, ".4g")
    if isinstance(v, (dict, list, tuple)):
        s = json.dumps(v, ensure_ascii=False, separators=(",", ":"), default=str)
    else:
        s = "" if v is None else str(v)
    return s if len(s) <= MAX_TEXT else s[: MAX_TEXT - 1] + "…"


def flatten_signals(signals: dict[str, Any], prefix: str = "", depth: int = 0) -> list[tuple]:
    """``[(name, shown value), ...]``; nested tables become ``outer.inner`` names."""
    out: list[tuple[str, str]] = []
    for key in sorted(signals, key=str):
        value = signals[key]
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth < 2:
            out.extend(flatten_signals(value, name + ".", depth + 1))
        else:
            out.append((name, fmt_value(value)))
    return out


@dataclass
class ThumbCache:
    """Thumbnails as ``data:`` URIs, downscaled to fit the card (``thumb_px`` wide)."""

    data_dir: Path
    thumb_px: int
    _cache: dict[str, str | None] = field(default_factory=dict)
    embedded_bytes: int = 0

    def uri(self, stored: str | None) -> str | None:
        if not stored:
            return None
        if stored not in self._cache:
            self._cache[stored] = self._load(data_file(self.data_dir, stored))
        return self._cache[stored]

    def _load(self, path: Path | None) -> str | None:
        if path is None or not path.is_file():
            return None
        box = (self.thumb_px, self.thumb_px * 2)
        try:
            data = path.read_bytes()
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                mime = MIME.get(im.format or "")
                if mime is None or im.width > box[0] or im.height > box[1]:
                    small = im.convert("RGB")
                    small.thumbnail(box)
                    buf = io.BytesIO()
                    small.save(buf, "JPEG", quality=82, optimize=True)
                    data, mime = buf.getvalue(), "image/jpeg"
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError):
            return None
        self.embedded_bytes += len(data)
        return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def thumb_candidates(row: Any, frame_thumbs: dict[int, list[tuple[float, str]]]) -> list[str]:
    """The detection's best-frame thumbnail, then the video's frame thumbnails nearest to it."""
    out: list[str] = []
    best = row.get("best_frame_thumb")
    if isinstance(best, str) and best:
        out.append(best)
    frames = frame_thumbs.get(int(row["video_id"]), [])
    t = row.get("best_frame_t")
    t = 0.0 if t is None or pd.isna(t) else float(t)
    out += [p for _, p in sorted(frames, key=lambda f: abs(f[0] - t)) if p not in out]
    return out


def _nice_max(n: int) -> int:
    if n <= 4:
        return max(n, 1)
    mag = 10 ** int(math.floor(math.log10(n)))
    for step in (1, 2, 2.5, 5, 10):
        top = int(math.ceil(n / (step * mag)) * step * mag)
        if top >= n and top / (step * mag) <= 10:
            return top
    return n


CHART_MIN_DAYS = 14  # a short period is drawn inside this many days of context


def chart_window(
    since: dt.datetime | None, until: dt.datetime | None, now: dt.datetime, first: Any
) -> tuple[dt.datetime, dt.datetime]:
    """The time span the trend chart covers: the period, widened to ``CHART_MIN_DAYS``."""
    end = until or now
    start = since
    if start is None:
        start = first.to_pydatetime() if first is not None and not pd.isna(first) else end
    span = dt.timedelta(days=CHART_MIN_DAYS)
    return (min(start, end - span), end)


def trend_chart(
    detected: pd.Series,
    window: tuple[dt.datetime, dt.datetime],
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> dict[str, Any]:
    """Bars of flags per UTC day (per week beyond 120 days) over ``window``, for the template.

    Bars that overlap the report period are marked ``in_period``; the others give context.
    """
    times = pd.to_datetime(detected, utc=True).dropna()
    start, end = window
    first = start.date()
    last = max((end - dt.timedelta(microseconds=1)).date(), first)
    weekly = (last - first).days > 120
    keys = times.dt.tz_localize(None).dt.normalize()
    step = dt.timedelta(days=7 if weekly else 1)
    if weekly:
        first -= dt.timedelta(days=first.weekday())
        last -= dt.timedelta(days=last.weekday())
        keys = keys - pd.to_timedelta(keys.dt.day_of_week, unit="D")
    days = pd.date_range(first, last, freq="7D" if weekly else "D")
    counts = keys.value_counts().reindex(days, fill_value=0).astype(int)
    width, height = 1000, 220
    left, right, top, bottom = 40, 10, 18, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    ymax = _nice_max(int(counts.max()) if len(counts) else 0)
    n = max(len(counts), 1)
    slot = plot_w / n
    bar_w = max(slot * 0.78, 1.0)
    label_every = max(1, math.ceil(n / 10))
    bars = []
    in_total = 0
    for i, (day, count) in enumerate(counts.items()):
        d0 = day.to_pydatetime().replace(tzinfo=dt.UTC)
        inside = (since is None or d0 + step > since) and (until is None or d0 < until)
        in_total += int(count) if inside else 0
        h = plot_h * count / ymax
        label = day.strftime("%Y-%m-%d")
        bars.append(
            {
                "x": round(left + i * slot + (slot - bar_w) / 2, 2),
                "y": round(top + plot_h - h, 2),
                "w": round(bar_w, 2),
                "h": round(h, 2),
                "count": int(count),
                "day": label,
                "in_period": inside,
                "tick": label[5:] if (n - 1 - i) % label_every == 0 else "",
                "cx": round(left + i * slot + slot / 2, 2),
            }
        )
    ticks = sorted({0, ymax // 2, ymax}) if ymax >= 2 else [0, ymax]
    return {
        "width": width,
        "height": height,
        "left": left,
        "plot_w": plot_w,
        "bottom_y": top + plot_h,
        "bars": bars,
        "yticks": [{"v": v, "y": round(top + plot_h - plot_h * v / ymax, 2)} for v in ticks],
        "unit": "week" if weekly else "day",
        "total": in_total,
        "context": any(not b["in_period"] for b in bars),
        "any": any(b["count"] for b in bars),
        "peak": max((b["count"] for b in bars if b["in_period"]), default=0),
    }


def _int(v: Any) -> int:
    return 0 if v is None or pd.isna(v) else int(v)


def platform_rows(
    flags: pd.DataFrame, videos: pd.DataFrame, crawls: pd.DataFrame, only: str | None
) -> list[dict[str, Any]]:
    """The run summary, one row per platform (every configured platform unless filtered)."""
    names = [only] if only else list(PLATFORMS)
    for frame in (videos, crawls, flags):
        names += [p for p in frame["platform"].dropna().unique() if p not in names]
    v = videos.set_index("platform")
    fl = flags.groupby("platform").agg(
        flags=("detection_id", "size"), flagged=("video_id", "nunique")
    )
    cr = crawls.groupby("platform").agg(
        listings=("id", "size"),
        listing_failures=("failed", "sum"),
        items_seen=("items_seen", "sum"),
        items_new=("items_new", "sum"),
    )
    rows = []
    for p in names:
        row: dict[str, Any] = {"platform": p}
        for col in ("seen", "new", "processed", "failed", "pending"):
            row[col] = _int(v[col].get(p)) if p in v.index else 0
        for col in ("flags", "flagged"):
            row[col] = _int(fl[col].get(p)) if p in fl.index else 0
        for col in ("listings", "listing_failures", "items_seen", "items_new"):
            row[col] = _int(cr[col].get(p)) if p in cr.index else 0
        rows.append(row)
    return rows


def breakdown(flags: pd.DataFrame, platforms: list[str]) -> dict[str, Any]:
    """Flags per character and platform (a cross table with totals)."""
    if flags.empty:
        return {"platforms": [], "rows": [], "totals": {}, "total": 0}
    table = pd.crosstab(flags["character"], flags["platform"])
    cols = [p for p in platforms if p in table.columns]
    cols += [p for p in table.columns if p not in cols]
    table = table.reindex(columns=cols, fill_value=0)
    table["__total"] = table.sum(axis=1)
    videos = flags.groupby("character")["video_id"].nunique()
    best = flags.groupby("character")["score"].max()
    franchise = flags.groupby("character")["franchise"].first()
    table = table.sort_values(["__total"], ascending=False, kind="stable")
    top = int(table["__total"].max())
    rows = []
    for name, r in table.iterrows():
        rows.append(
            {
                "character": name,
                "franchise": franchise.get(name) if isinstance(franchise.get(name), str) else "",
                "counts": [int(r[c]) for c in cols],
                "total": int(r["__total"]),
                "videos": int(videos.get(name, 0)),
                "best": float(best.get(name)),
                "pct": round(100 * int(r["__total"]) / top, 1) if top else 0,
            }
        )
    return {
        "platforms": cols,
        "rows": rows,
        "totals": [int(table[c].sum()) for c in cols],
        "total": int(table["__total"].sum()),
    }


def _opt(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and pd.isna(v)) else v


def _est_text(signals: Any) -> str:
    """``93% (140 verdicts)``, or empty when the flag carries no estimate."""
    value, n = estimated_precision(signals if isinstance(signals, dict) else {})
    return "" if value is None else f"{value:.0%} ({n} verdicts)"


def flag_view(row: Any) -> dict[str, Any]:
    """One detection for the table and the cards (all strings escaped by the template)."""
    t = _opt(row["best_frame_t"])
    ref_id = _opt(row.get("best_reference_id"))
    words = explain(
        row["signals"] or {},
        character=str(row["character"]),
        reference_label=_opt(row.get("reference_label")),
        reference_id=None if ref_id is None else int(ref_id),
        match_type=row["match_type"],
        best_frame_t=t,
    )
    return {
        "id": int(row["detection_id"]),
        "video_id": int(row["video_id"]),
        "character": row["character"],
        "franchise": _opt(row["franchise"]) or "",
        "rights_holder": _opt(row["rights_holder"]) or "",
        "score": float(row["score"]),
        "score_text": format(float(row["score"]), ".3f"),
        "est_text": _est_text(row["signals"]),
        "match_type": row["match_type"] or "",
        "signals": flatten_signals(row["signals"] or {}),
        "explanation": words.points,
        "best_t": t,
        "best_t_text": "" if t is None else f"{float(t):.1f} s",
        "review_state": row["review_state"] or "",
        "review_note": _opt(row["review_note"]) or "",
        "model_id": _opt(row["model_id"]) or "",
        "detected_at": fmt_time(row["detected_at"]),
        "detected_iso": iso_time(row["detected_at"]),
        "detected_short": fmt_time(row["detected_at"]).removesuffix(" UTC"),
        "platform": row["platform"],
        "platform_id": row["platform_id"],
        "url": row["url"],
        "link": safe_link(row["url"]),
        "author": _opt(row["author"]) or "",
        "caption": _opt(row["caption"]) or "",
        "posted_at": fmt_time(row["posted_at"]),
        "posted_iso": iso_time(row["posted_at"]),
        "posted_short": fmt_time(row["posted_at"]).removesuffix(" UTC"),
    }


def c2pa_details(info: Any) -> list[tuple[str, str]]:
    """A few readable fields of the stored C2PA summary."""
    if not isinstance(info, dict):
        return []
    out = []
    for key, value in info.items():
        if isinstance(value, (str, int, float, bool)) and value != "":
            out.append((str(key).replace("_", " "), fmt_value(value)))
    return out[:8]


def cards(
    flags: pd.DataFrame,
    frame_thumbs: dict[int, list[tuple[float, str]]],
    thumbs: ThumbCache,
    data_dir: Path,
) -> list[dict[str, Any]]:
    """One card per flagged video (its detections inside, best first), highest score first."""
    out: dict[int, dict[str, Any]] = {}
    for _, row in flags.iterrows():
        vid = int(row["video_id"])
        card = out.get(vid)
        if card is None:
            media_stored = _opt(row["media_path"])
            media = data_file(data_dir, media_stored) if media_stored else None
            hashtags = row["hashtags"] if isinstance(row["hashtags"], list) else []
            card = out[vid] = {
                "video_id": vid,
                "platform": row["platform"],
                "platform_id": row["platform_id"],
                "url": row["url"],
                "link": safe_link(row["url"]),
                "author": _opt(row["author"]) or "",
                "caption": _opt(row["caption"]) or "",
                "hashtags": [str(h) for h in hashtags][:30],
                "posted_at": fmt_time(row["posted_at"]),
                "first_seen": fmt_time(row["first_seen"]),
                "views": None if _opt(row["view_count"]) is None else int(row["view_count"]),
                "duration": _opt(row["duration_s"]),
                "ai_label": _opt(row["ai_label"]) or "",
                "c2pa_state": _opt(row["c2pa_state"]) or "",
                "c2pa": c2pa_details(row["c2pa_info"]),
                "sha256": _opt(row["media_sha256"]) or "",
                "media_kept": bool(media and media.is_file()),
                "thumb": next(
                    (u for u in map(thumbs.uri, thumb_candidates(row, frame_thumbs)) if u), None
                ),
                "score": float(row["score"]),
                "score_text": format(float(row["score"]), ".3f"),
                "detections": [],
            }
        card["detections"].append(flag_view(row))
    return sorted(out.values(), key=lambda c: -c["score"])


def render_report(context: dict[str, Any]) -> str:
    env = make_env()
    context = dict(context, script_csp=script_hash(env, "report.js.j2"))
    return env.get_template("report.html.j2").render(**context)


def render_index(context: dict[str, Any]) -> str:
    return make_env().get_template("index.html.j2").render(**context)
