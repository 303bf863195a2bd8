"""The schema: crawl runs, videos (the work queue), frames, characters, references, detections.

Portable SQLAlchemy 2.x types only, so the same models run on SQLite and PostgreSQL.
Times are timezone-aware UTC. Embeddings are float16 bytes tagged with the model id.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A DateTime that always comes back timezone-aware UTC (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    pass


# 64-bit ids for the tables that grow with the number of videos; SQLite keeps INTEGER (its
# rowid alias, so autoincrement works; SQLite integers are 64-bit anyway).
BigID = BigInteger().with_variant(Integer(), "sqlite")

# States a worker or the matcher may claim: the partial index on unleased rows covers them.
CLAIMABLE_SQL = "state IN ('discovered', 'downloaded', 'frames', 'embedded')"


class VideoState:
    """Processing states of a video (the work queue)."""

    DISCOVERED = "discovered"
    DOWNLOADED = "downloaded"
    FRAMES = "frames"
    EMBEDDED = "embedded"
    MATCHED = "matched"
    FAILED = "failed"

    PENDING = (DISCOVERED, DOWNLOADED, FRAMES, EMBEDDED)
    ALL = (DISCOVERED, DOWNLOADED, FRAMES, EMBEDDED, MATCHED, FAILED)


class ListingStatus:
    """Outcome of crawling one listing."""

    RUNNING = "running"
    OK = "ok"
    BLOCKED = "blocked"
    LOGIN_REQUIRED = "login_required"
    NOT_FOUND = "not_found"
    LAYOUT_CHANGED = "layout_changed"
    ERROR = "error"
    PAUSED = "paused"  # not crawled: the platform is cooling down after a block

    FAILURES = (BLOCKED, LOGIN_REQUIRED, NOT_FOUND, LAYOUT_CHANGED, ERROR, PAUSED)


class CrawlRun(Base):
    """One listing crawled once (a CLI crawl of several listings shares a batch id)."""

    __tablename__ = "crawl_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch: Mapped[str] = mapped_column(String(64), index=True, default="")
    platform: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))  # hashtag | user | search | rss
    target: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(32), default=ListingStatus.RUNNING)
    message: Mapped[str | None] = mapped_column(Text)
    items_seen: Mapped[int] = mapped_column(Integer, default=0)
    items_new: Mapped[int] = mapped_column(Integer, default=0)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    debug_path: Mapped[str | None] = mapped_column(String(1024))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Video(Base):
    """One platform video, unique per (platform, platform_id); also the work-queue row."""

    __tablename__ = "videos"
    __table_args__ = (
        UniqueConstraint("platform", "platform_id", name="uq_video_platform_id"),
        Index("ix_videos_state_next", "state", "next_attempt_at"),
        # claims scan unleased claimable rows in id order; leased rows are found by expiry/owner
        Index(
            "ix_videos_claimable",
            "id",
            postgresql_where=text(f"lease_owner IS NULL AND {CLAIMABLE_SQL}"),
            sqlite_where=text(f"lease_owner IS NULL AND {CLAIMABLE_SQL}"),
        ),
        Index(
            "ix_videos_lease_expires",
            "lease_expires",
            postgresql_where=text("lease_owner IS NOT NULL"),
            sqlite_where=text("lease_owner IS NOT NULL"),
        ),
        Index(
            "ix_videos_lease_owner",
            "lease_owner",
            postgresql_where=text("lease_owner IS NOT NULL"),
            sqlite_where=text("lease_owner IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    platform_id: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(String(2048))
    author: Mapped[str | None] = mapped_column(String(256))
    caption: Mapped[str | None] = mapped_column(Text)
    hashtags: Mapped[list[str]] = mapped_column(JSON, default=list)
    posted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    view_count: Mapped[int | None] = mapped_column(Integer)
    like_count: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    thumbnail_url: Mapped[str | None] = mapped_column(String(2048))
    ai_label: Mapped[str | None] = mapped_column(String(128))
    listing: Mapped[str | None] = mapped_column(String(512))
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    # work queue
    state: Mapped[str] = mapped_column(String(32), default=VideoState.DISCOVERED)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    # media evidence
    media_path: Mapped[str | None] = mapped_column(String(1024))
    media_sha256: Mapped[str | None] = mapped_column(String(64))
    media_bytes: Mapped[int | None] = mapped_column(Integer)
    c2pa_state: Mapped[str | None] = mapped_column(String(32))
    c2pa_info: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    # re-check of flagged videos: is it still up on the platform?
    availability: Mapped[str | None] = mapped_column(String(32))  # up | removed | unknown
    availability_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    availability_note: Mapped[str | None] = mapped_column(Text)

    frames: Mapped[list[Frame]] = relationship(
        back_populates="video", cascade="all, delete-orphan", order_by="Frame.t"
    )


class Frame(Base):
    """A sampled frame: its time, PDQ hash and quality, and an evidence thumbnail."""

    __tablename__ = "frames"
    __table_args__ = (UniqueConstraint("video_id", "t", name="uq_frame_video_t"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    video_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("videos.id", ondelete="CASCADE"), index=True
    )
    t: Mapped[float] = mapped_column(Float)
    pdq: Mapped[str | None] = mapped_column(String(64))
    pdq_quality: Mapped[int | None] = mapped_column(Integer)
    thumb_path: Mapped[str | None] = mapped_column(String(1024))
    image_path: Mapped[str | None] = mapped_column(String(1024))

    video: Mapped[Video] = relationship(back_populates="frames")
    embeddings: Mapped[list[Embedding]] = relationship(
        back_populates="frame", cascade="all, delete-orphan"
    )


class Embedding(Base):
    """One image embedding of a frame region (``full`` or a crop name), float16 bytes."""

    __tablename__ = "embeddings"
    __table_args__ = (
        UniqueConstraint("frame_id", "region", "model_id", name="uq_embedding_frame_region_model"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    frame_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("frames.id", ondelete="CASCADE"), index=True
    )
    region: Mapped[str] = mapped_column(String(32), default="full")
    model_id: Mapped[str] = mapped_column(String(256), index=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)

    frame: Mapped[Frame] = relationship(back_populates="embeddings")


class Character(Base):
    """A registered character that rights holders want found."""

    __tablename__ = "characters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    franchise: Mapped[str | None] = mapped_column(String(256))
    rights_holder: Mapped[str | None] = mapped_column(String(256))
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    prompts: Mapped[list[str]] = mapped_column(JSON, default=list)
    # match policy: how much of a video must match before it is flagged (None: config default)
    min_frames: Mapped[int | None] = mapped_column(Integer)
    min_seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    references: Mapped[list[Reference]] = relationship(
        back_populates="character", cascade="all, delete-orphan"
    )


class Reference(Base):
    """A reference image of a character, copied under ``data_dir/references``."""

    __tablename__ = "references"
    __table_args__ = (UniqueConstraint("character_id", "sha256", name="uq_reference_sha"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    character_id: Mapped[int] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), index=True
    )
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    negative: Mapped[bool] = mapped_column(default=False)
    label: Mapped[str | None] = mapped_column(String(256))  # e.g. the image's file name, "front"
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    character: Mapped[Character] = relationship(back_populates="references")


class Detection(Base):
    """A flag: one (video, character) pair over threshold, with its explanation."""

    __tablename__ = "detections"
    __table_args__ = (
        UniqueConstraint("video_id", "character_id", name="uq_detection_video_character"),
        # the review desk's queue: filtered by state, ordered by time or score, keyset-paged
        Index("ix_detections_state_detected", "review_state", "detected_at", "id"),
        Index("ix_detections_state_score", "review_state", "score", "id"),
        Index("ix_detections_detected", "detected_at", "id"),
        Index("ix_detections_score", "score", "id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    video_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("videos.id", ondelete="CASCADE"), index=True
    )
    character_id: Mapped[int] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), index=True
    )
    score: Mapped[float] = mapped_column(Float)
    match_type: Mapped[str] = mapped_column(String(32), default="semantic")  # copy | semantic
    signals: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    best_frame_t: Mapped[float | None] = mapped_column(Float)
    best_frame_thumb: Mapped[str | None] = mapped_column(String(1024))
    best_reference_id: Mapped[int | None] = mapped_column(
        ForeignKey("references.id", ondelete="SET NULL")
    )
    model_id: Mapped[str | None] = mapped_column(String(256))
    review_state: Mapped[str] = mapped_column(String(32), default="new")
    review_note: Mapped[str | None] = mapped_column(Text)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reviewed_by: Mapped[str | None] = mapped_column(String(128))  # who gave the last verdict
    detected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    video: Mapped[Video] = relationship()
    character: Mapped[Character] = relationship()


class ReviewEvent(Base):
    """One review step of a detection (``index.review``): who moved it from what to what, when."""

    __tablename__ = "review_events"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    detection_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("detections.id", ondelete="CASCADE"), index=True
    )
    old_state: Mapped[str] = mapped_column(String(32))
    new_state: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    reviewer: Mapped[str | None] = mapped_column(String(128))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    """A person who may use the review desk: ``analyst`` (reads and decides) or ``viewer``
    (reads only). Only an argon2 hash of the password is kept."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ReportRun(Base):
    """A written report, so an index page can link past reports."""

    __tablename__ = "report_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    html_path: Mapped[str] = mapped_column(String(1024))
    csv_path: Mapped[str] = mapped_column(String(1024))
    flags: Mapped[int] = mapped_column(Integer, default=0)


class JobRun(Base):
    """One run of a job (nightly, rescan, recheck): when, how it went, what it wrote."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # nightly | rescan | recheck
    target: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(32), default="running")  # running|ok|failed|stopped
    crawl_batch: Mapped[str | None] = mapped_column(String(64))
    listings: Mapped[int] = mapped_column(Integer, default=0)
    listings_failed: Mapped[int] = mapped_column(Integer, default=0)
    videos_new: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    flags: Mapped[int] = mapped_column(Integer, default=0)
    report_path: Mapped[str | None] = mapped_column(String(1024))
    message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CharacterThreshold(Base):
    """A calibrated decision threshold of one signal for one character and embedding model."""

    __tablename__ = "character_thresholds"
    __table_args__ = (
        UniqueConstraint("character_id", "model_id", "signal", name="uq_threshold_char_model_sig"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    character_id: Mapped[int] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), index=True
    )
    model_id: Mapped[str] = mapped_column(String(256))
    signal: Mapped[str] = mapped_column(String(64))
    threshold: Mapped[float] = mapped_column(Float)
    target_fpr: Mapped[float | None] = mapped_column(Float)
    positives: Mapped[int] = mapped_column(Integer, default=0)
    negatives: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AllowedAccount(Base):
    """A licensed account (the rights holder's own, a partner) whose videos are never flagged."""

    __tablename__ = "allowed_accounts"
    __table_args__ = (
        UniqueConstraint("platform", "author", "character_id", name="uq_allowed_account"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    author: Mapped[str] = mapped_column(String(256))  # handle, stored without a leading @
    character_id: Mapped[int | None] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE")
    )  # None: every character
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PlatformState(Base):
    """Per platform: a cool-down after a platform-wide block, and the shared rate budget.

    Crawling, downloading and re-checks of a platform, in any process, consult this row before
    talking to the platform: ``paused_until`` in the future means wait; ``next_request_at`` and
    the hourly window space requests out across processes.
    """

    __tablename__ = "platform_state"

    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    paused_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    pause_reason: Mapped[str | None] = mapped_column(Text)
    pause_source: Mapped[str | None] = mapped_column(String(32))  # crawl | download | recheck
    paused_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    pauses: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_errors: Mapped[int] = mapped_column(Integer, default=0)
    next_request_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    window_start: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    window_count: Mapped[int] = mapped_column(Integer, default=0)


class Worker(Base):
    """A running processing loop: who it is, where it runs, and when it last said it is alive.

    ``heartbeat_at`` is in the database's clock. A lease whose owner missed several heartbeats,
    or whose owner ran on this host (``pid_space``) in a process that is gone, is free.
    """

    __tablename__ = "workers"

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(256))
    pid: Mapped[int] = mapped_column(Integer)
    pid_space: Mapped[str] = mapped_column(String(128), default="")  # boot id + pid namespace
    role: Mapped[str] = mapped_column(String(32), default="process")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
