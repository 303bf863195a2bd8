"""Read the store into pandas frames for a report period. Reads only; never recomputes a score."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from charwatch.errors import UsageError
from reports.explain import estimated_precision
from storage import (
    Character,
    CrawlRun,
    Detection,
    Frame,
    ListingStatus,
    Reference,
    Video,
    VideoState,
)


class ReportError(UsageError):
    """A report or evidence export cannot be written as asked (bad filter, unknown id)."""


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def fmt_time(value: Any, *, seconds: bool = False) -> str:
    """A UTC time for people: ``2026-11-24 02:00 UTC`` (empty for a missing value)."""
    if value is None or pd.isna(value):
        return ""
    value = as_utc(pd.Timestamp(value).to_pydatetime())
    assert value is not None
    return value.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def iso_time(value: Any) -> str:
    """ISO 8601 UTC with a ``Z`` (empty for a missing value)."""
    if value is None or pd.isna(value):
        return ""
    value = as_utc(pd.Timestamp(value).to_pydatetime())
    assert value is not None
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Period:
    """A half-open time window ``[since, until)``; ``None`` ends are open."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None

    @classmethod
    def of(cls, since: dt.datetime | None, until: dt.datetime | None) -> Period:
        s, u = as_utc(since), as_utc(until)
        if s is not None and u is not None and s >= u:
            raise ReportError(f"empty period: since {s.isoformat()} is not before {u.isoformat()}")
        return cls(s, u)

    def clause(self, column: Any) -> Any:
        """A SQL condition that ``column`` lies in the period."""
        parts = [column.is_not(None)]
        if self.since is not None:
            parts.append(column >= self.since)
        if self.until is not None:
            parts.append(column < self.until)
        return and_(*parts)

    def label(self) -> str:
        if self.since is None and self.until is None:
            return "all time"
        if self.since is None:
            return f"until {fmt_time(self.until)}"
        if self.until is None:
            return f"since {fmt_time(self.since)}"
        return f"{fmt_time(self.since)} – {fmt_time(self.until)}"


FLAG_FIELDS: dict[str, Any] = {
    "detection_id": Detection.id,
    "video_id": Detection.video_id,
    "character_id": Detection.character_id,
    "character": Character.name,
    "franchise": Character.franchise,
    "rights_holder": Character.rights_holder,
    "score": Detection.score,
    "match_type": Detection.match_type,
    "signals": Detection.signals,
    "best_frame_t": Detection.best_frame_t,
    "best_frame_thumb": Detection.best_frame_thumb,
    "best_reference_id": Detection.best_reference_id,
    "reference_label": Reference.label,
    "model_id": Detection.model_id,
    "review_state": Detection.review_state,
    "review_note": Detection.review_note,
    "detected_at": Detection.detected_at,
    "platform": Video.platform,
    "platform_id": Video.platform_id,
    "url": Video.url,
    "author": Video.author,
    "caption": Video.caption,
    "hashtags": Video.hashtags,
    "posted_at": Video.posted_at,
    "view_count": Video.view_count,
    "like_count": Video.like_count,
    "duration_s": Video.duration_s,
    "ai_label": Video.ai_label,
    "c2pa_state": Video.c2pa_state,
    "c2pa_info": Video.c2pa_info,
    "media_sha256": Video.media_sha256,
    "media_path": Video.media_path,
    "first_seen": Video.first_seen,
    "last_seen": Video.last_seen,
}
TIME_FIELDS = ("detected_at", "posted_at", "first_seen", "last_seen")


def resolve_character(session: Session, name: str) -> Character:
    """The character called ``name`` (exact, then case-insensitive, then an alias)."""
    chars = list(session.scalars(select(Character).order_by(Character.name)))
    for test in (
        lambda c: c.name == name,
        lambda c: c.name.casefold() == name.casefold(),
        lambda c: any(str(a).casefold() == name.casefold() for a in c.aliases or ()),
    ):
        hits = [c for c in chars if test(c)]
        if len(hits) == 1:
            return hits[0]
    known = ", ".join(c.name for c in chars[:20]) or "none registered"
    raise ReportError(f"unknown character {name!r} (known: {known})")


def _time_col(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True)


def load_flags(
    session: Session,
    period: Period,
    *,
    character_id: int | None = None,
    platform: str | None = None,
) -> pd.DataFrame:
    """One row per detection in the period (by ``detected_at``), highest score first."""
    q = (
        select(*[col.label(name) for name, col in FLAG_FIELDS.items()])
        .join(Video, Video.id == Detection.video_id)
        .join(Character, Character.id == Detection.character_id)
        .outerjoin(Reference, Reference.id == Detection.best_reference_id)
        .where(period.clause(Detection.detected_at))
        .order_by(Detection.score.desc(), Detection.id)
    )
    if character_id is not None:
        q = q.where(Detection.character_id == character_id)
    if platform:
        q = q.where(Video.platform == platform)
    rows = session.execute(q).mappings().all()
    df = pd.DataFrame([dict(r) for r in rows], columns=list(FLAG_FIELDS))
    for name in TIME_FIELDS:
        df[name] = _time_col(df[name])
    df["score"] = pd.to_numeric(df["score"], errors="coerce").astype("float64")
    df["signals"] = [s if isinstance(s, dict) else {} for s in df["signals"]]
    df["estimated_precision"] = pd.Series(
        [estimated_precision(s)[0] for s in df["signals"]], index=df.index, dtype="float64"
    )
    return df


def load_detection_times(
    session: Session,
    window: Period,
    *,
    character_id: int | None = None,
    platform: str | None = None,
) -> pd.Series:
    """``detected_at`` of every detection in ``window`` (for the trend chart's context)."""
    q = select(Detection.detected_at).where(window.clause(Detection.detected_at))
    if character_id is not None:
        q = q.where(Detection.character_id == character_id)
    if platform:
        q = q.join(Video, Video.id == Detection.video_id).where(Video.platform == platform)
    return _time_col(pd.Series(list(session.scalars(q)), dtype=object))


def load_frame_thumbs(session: Session, video_ids: list[int]) -> dict[int, list[tuple[float, str]]]:
    """``video_id -> [(t, thumb_path), ...]`` for frames that kept a thumbnail."""
    out: dict[int, list[tuple[float, str]]] = {}
    ids = sorted(set(video_ids))
    for i in range(0, len(ids), 500):
        q = (
            select(Frame.video_id, Frame.t, Frame.thumb_path)
            .where(Frame.video_id.in_(ids[i : i + 500]), Frame.thumb_path.is_not(None))
            .order_by(Frame.video_id, Frame.t)
        )
        for vid, t, path in session.execute(q):
            out.setdefault(vid, []).append((float(t), path))
    return out


def load_video_summary(session: Session, period: Period, platform: str | None) -> pd.DataFrame:
    """Per platform: videos seen, new, processed, failed and still pending in the period.

    *seen*: ``last_seen`` in the period; *new*: ``first_seen`` in the period;
    *processed*: matched with ``processed_at`` in the period; *failed*: in state ``failed``
    with ``processed_at`` (else ``last_seen``) in the period; *pending*: seen and not yet
    processed when the report was written.
    """
    seen = period.clause(Video.last_seen)
    failed_time = func.coalesce(Video.processed_at, Video.last_seen)

    def count(cond: Any) -> Any:
        return func.sum(case((cond, 1), else_=0))

    q = (
        select(
            Video.platform.label("platform"),
            count(seen).label("seen"),
            count(period.clause(Video.first_seen)).label("new"),
            count(and_(Video.state == VideoState.MATCHED, period.clause(Video.processed_at))).label(
                "processed"
            ),
            count(and_(Video.state == VideoState.FAILED, period.clause(failed_time))).label(
                "failed"
            ),
            count(and_(seen, Video.state.in_(VideoState.PENDING))).label("pending"),
        )
        .where(
            or_(
                seen,
                period.clause(Video.first_seen),
                period.clause(Video.processed_at),
            )
        )
        .group_by(Video.platform)
        .order_by(Video.platform)
    )
    if platform:
        q = q.where(Video.platform == platform)
    cols = ["platform", "seen", "new", "processed", "failed", "pending"]
    rows = session.execute(q).mappings().all()
    df = pd.DataFrame([dict(r) for r in rows], columns=cols)
    for c in cols[1:]:
        df[c] = pd.to_numeric(df[c]).fillna(0).astype("int64")
    return df


CRAWL_FIELDS: dict[str, Any] = {
    "id": CrawlRun.id,
    "batch": CrawlRun.batch,
    "platform": CrawlRun.platform,
    "kind": CrawlRun.kind,
    "target": CrawlRun.target,
    "status": CrawlRun.status,
    "message": CrawlRun.message,
    "items_seen": CrawlRun.items_seen,
    "items_new": CrawlRun.items_new,
    "pages": CrawlRun.pages,
    "debug_path": CrawlRun.debug_path,
    "started_at": CrawlRun.started_at,
    "finished_at": CrawlRun.finished_at,
}


def load_crawl_runs(session: Session, period: Period, platform: str | None) -> pd.DataFrame:
    """Listings crawled in the period (by ``started_at``), newest first."""
    q = (
        select(*[col.label(name) for name, col in CRAWL_FIELDS.items()])
        .where(period.clause(CrawlRun.started_at))
        .order_by(CrawlRun.started_at.desc(), CrawlRun.id.desc())
    )
    if platform:
        q = q.where(CrawlRun.platform == platform)
    rows = session.execute(q).mappings().all()
    df = pd.DataFrame([dict(r) for r in rows], columns=list(CRAWL_FIELDS))
    df["started_at"] = _time_col(df["started_at"])
    df["finished_at"] = _time_col(df["finished_at"])
    df["failed"] = df["status"].isin(ListingStatus.FAILURES)
    return df
