"""Write a report for a period: the flag CSV, the self-contained HTML, a ReportRun row, the index.

Reads the store only. File names carry the UTC time of writing
(``charwatch-report-20261124T0200Z.html`` / ``.csv``); an existing report is never
overwritten (a ``-2``, ``-3`` … suffix is added instead).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from charwatch import __version__
from charwatch.config import PLATFORMS, Config
from reports.csv_export import CSV_COLUMNS, write_csv
from reports.data import (
    Period,
    ReportError,
    fmt_time,
    load_crawl_runs,
    load_detection_times,
    load_flags,
    load_frame_thumbs,
    load_video_summary,
    resolve_character,
)
from reports.html import (
    ThumbCache,
    breakdown,
    cards,
    chart_window,
    flag_view,
    platform_rows,
    render_index,
    render_report,
    trend_chart,
)
from storage import ReportRun, Store, platform_state, utcnow
from storage.files import atomic_write_text

PREFIX = "charwatch-report-"
INDEX_NAME = "index.html"
STAMP_RE = re.compile(r"^charwatch-report-(\d{8}T\d{4})Z(?:-(\d+))?\.html$")
MAX_WARNINGS = 200


@dataclass(frozen=True)
class ReportResult:
    """What ``write_report`` wrote."""

    html_path: Path
    csv_path: Path
    flags: int
    index_path: Path


def _reserve(out_dir: Path, now: dt.datetime) -> tuple[Path, Path]:
    """Claim fresh ``.html`` / ``.csv`` names for ``now`` (never an existing report's)."""
    stem = PREFIX + now.strftime("%Y%m%dT%H%MZ")
    for n in range(1, 10_000):
        name = stem if n == 1 else f"{stem}-{n}"
        html, csv = out_dir / f"{name}.html", out_dir / f"{name}.csv"
        if csv.exists():
            continue
        try:
            with html.open("x", encoding="utf-8"):
                pass
        except FileExistsError:
            continue
        return html, csv
    raise ReportError(f"no free report name for {stem} in {out_dir}")


def _warnings(crawls: Any) -> list[dict[str, Any]]:
    rows = []
    for _, r in crawls[crawls["failed"]].head(MAX_WARNINGS).iterrows():
        rows.append(
            {
                "platform": r["platform"],
                "kind": r["kind"],
                "target": r["target"],
                "status": r["status"],
                "message": r["message"] if isinstance(r["message"], str) else "",
                "debug_path": r["debug_path"] if isinstance(r["debug_path"], str) else "",
                "started_at": fmt_time(r["started_at"]),
            }
        )
    return rows


def build_context(
    cfg: Config,
    *,
    period: Period,
    flags: Any,
    frame_thumbs: dict[int, list[tuple[float, str]]],
    videos: Any,
    crawls: Any,
    trend_times: Any,
    trend_window: tuple[dt.datetime, dt.datetime],
    character: str | None,
    platform: str | None,
    now: dt.datetime,
    csv_name: str,
    pauses: list[Any] | None = None,
) -> dict[str, Any]:
    """Everything the report template shows, from the frames read out of the store.

    ``pauses``: platforms cooling down after a platform-wide block (``storage.platform_state``).
    """
    thumbs = ThumbCache(cfg.data_dir, max(32, int(cfg.report.thumb_px)))
    prow = platform_rows(flags, videos, crawls, platform)
    paused = {
        p.platform: {
            "platform": p.platform,
            "reason": p.reason,
            "source": p.source,
            "until": fmt_time(p.until),
        }
        for p in pauses or []
        if platform is None or p.platform == platform
    }
    for row in prow:
        row["paused_until"] = paused[row["platform"]]["until"] if row["platform"] in paused else ""
    plats = [r["platform"] for r in prow]
    card_list = cards(flags, frame_thumbs, thumbs, cfg.data_dir)
    review = flags["review_state"].value_counts() if len(flags) else None
    match = flags["match_type"].value_counts() if len(flags) else None
    warnings = _warnings(crawls)
    totals = {k: sum(r[k] for r in prow) for k in ("seen", "new", "processed", "failed", "pending")}
    return {
        "version": __version__,
        "title": "charwatch report",
        "period_label": period.label(),
        "since": fmt_time(period.since),
        "until": fmt_time(period.until),
        "generated_at": fmt_time(now, seconds=True),
        "generated_iso": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "character_filter": character or "",
        "platform_filter": platform or "",
        "csv_name": csv_name,
        "csv_columns": CSV_COLUMNS,
        "kpi": {
            "flags": len(flags),
            "videos": len(card_list),
            "characters": int(flags["character"].nunique()) if len(flags) else 0,
            "copies": int(match.get("copy", 0)) if match is not None else 0,
            "new_review": int(review.get("new", 0)) if review is not None else 0,
            "listings": len(crawls),
            "listing_failures": int(crawls["failed"].sum()) if len(crawls) else 0,
            **totals,
        },
        "warnings": warnings,
        "pauses": list(paused.values()),
        "warnings_more": max(0, int(crawls["failed"].sum()) - len(warnings)) if len(crawls) else 0,
        "platform_rows": prow,
        "breakdown": breakdown(flags, plats),
        "review_counts": [(str(k), int(v)) for k, v in review.items()]
        if review is not None
        else [],
        "match_counts": [(str(k), int(v)) for k, v in match.items()] if match is not None else [],
        "chart": trend_chart(trend_times, trend_window, period.since, period.until),
        "flags": [flag_view(r) for _, r in flags.iterrows()],
        "cards": card_list,
        "table_platforms": sorted({str(p) for p in flags["platform"]}, key=_platform_order),
        "table_characters": sorted({str(c) for c in flags["character"]}, key=str.casefold),
    }


def _platform_order(p: str) -> tuple[int, str]:
    return (PLATFORMS.index(p) if p in PLATFORMS else len(PLATFORMS), p)


def write_report(
    cfg: Config,
    store: Store,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    character: str | None = None,
    platform: str | None = None,
    out_dir: Path | None = None,
) -> ReportResult:
    """Write the CSV and HTML report of the flags detected in ``[since, until)``.

    ``character`` (a name or alias) and ``platform`` narrow the report. The run summary
    counts videos by ``last_seen`` / ``processed_at`` and crawl runs by ``started_at`` in
    the period. Records a ``ReportRun`` and rewrites ``index.html`` in the output folder.
    """
    period = Period.of(since, until)
    if platform is not None and platform not in PLATFORMS:
        raise ReportError(f"unknown platform {platform!r} (known: {', '.join(PLATFORMS)})")
    now = utcnow()
    out = Path(out_dir) if out_dir is not None else cfg.reports_dir
    out.mkdir(parents=True, exist_ok=True)

    with store.session() as s:
        ch = resolve_character(s, character) if character else None
        char_name, char_id = (ch.name, ch.id) if ch else (None, None)
        flags = load_flags(s, period, character_id=char_id, platform=platform)
        frame_thumbs = load_frame_thumbs(s, [int(v) for v in flags["video_id"]])
        videos = load_video_summary(s, period, platform)
        crawls = load_crawl_runs(s, period, platform)
        first = flags["detected_at"].min() if len(flags) else None
        window = chart_window(period.since, period.until, now, first)
        times = load_detection_times(s, Period(*window), character_id=char_id, platform=platform)

    html_path, csv_path = _reserve(out, now)
    try:
        write_csv(flags, csv_path)
        context = build_context(
            cfg,
            period=period,
            flags=flags,
            frame_thumbs=frame_thumbs,
            videos=videos,
            crawls=crawls,
            trend_times=times,
            trend_window=window,
            character=char_name,
            platform=platform,
            now=now,
            csv_name=csv_path.name,
            pauses=platform_state.active_pauses(store),
        )
        atomic_write_text(html_path, render_report(context))
    except BaseException:
        if html_path.exists() and html_path.stat().st_size == 0:
            html_path.unlink()
        raise

    with store.session() as s:
        s.add(
            ReportRun(
                created_at=now,
                since=period.since,
                until=period.until,
                html_path=str(html_path.resolve()),
                csv_path=str(csv_path.resolve()),
                flags=len(flags),
            )
        )
    index_path = write_index(store, out)
    return ReportResult(html_path, csv_path, len(flags), index_path)


def write_index(store: Store, out_dir: Path) -> Path:
    """Rewrite ``index.html`` in ``out_dir``: every report there, newest first."""
    folder = out_dir.resolve()
    entries: dict[str, dict[str, Any]] = {}
    with store.session() as s:
        runs = list(s.scalars(select(ReportRun).order_by(ReportRun.created_at.desc())))
    for run in runs:
        html = Path(run.html_path)
        if html.parent.resolve() != folder or not html.is_file() or html.name in entries:
            continue
        csv = Path(run.csv_path)
        entries[html.name] = {
            "created": run.created_at,
            "created_text": fmt_time(run.created_at),
            "period": Period(run.since, run.until).label(),
            "flags": run.flags,
            "html": html.name,
            "csv": csv.name if csv.is_file() and csv.parent.resolve() == folder else "",
        }
    for html in folder.glob(PREFIX + "*.html"):
        m = STAMP_RE.match(html.name)
        if html.name in entries or not m or html.stat().st_size == 0:
            continue
        created = dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M").replace(tzinfo=dt.UTC)
        csv = html.with_suffix(".csv")
        entries[html.name] = {
            "created": created + dt.timedelta(microseconds=int(m.group(2) or 1)),
            "created_text": fmt_time(created),
            "period": "",
            "flags": None,
            "html": html.name,
            "csv": csv.name if csv.is_file() else "",
        }
    rows = sorted(entries.values(), key=lambda e: (e["created"], e["html"]), reverse=True)
    path = folder / INDEX_NAME
    atomic_write_text(path, render_index({"reports": rows, "version": __version__}))
    return path
