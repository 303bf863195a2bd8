"""The durable work queue over ``videos``: claim with a lease, advance, fail with backoff.

Claiming is one conditional UPDATE per candidate (compare-and-set on the lease), which is
atomic on SQLite and PostgreSQL alike, so two workers never hold the same video.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid

from sqlalchemy import and_, or_, select, update

from storage.db import Store
from storage.models import Video, VideoState, utcnow


def worker_id() -> str:
    """A unique owner name for leases: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _claimable(now: dt.datetime, states: tuple[str, ...]):  # type: ignore[no-untyped-def]
    return and_(
        Video.state.in_(states),
        or_(Video.lease_expires.is_(None), Video.lease_expires < now),
        or_(Video.next_attempt_at.is_(None), Video.next_attempt_at <= now),
    )


def claim(
    store: Store,
    owner: str,
    limit: int,
    lease_s: int,
    states: tuple[str, ...] = VideoState.PENDING,
    ids: list[int] | None = None,
    skip_platforms: set[str] | None = None,
) -> list[int]:
    """Lease up to ``limit`` videos in ``states`` for ``owner``; returns their ids, oldest first.

    ``skip_platforms``: platforms whose videos stay queued (paused, or out of rate budget).
    """
    now = utcnow()
    claimed: list[int] = []
    with store.session() as s:
        q = (
            select(Video.id)
            .where(_claimable(now, states))
            .order_by(Video.id)
            .limit(max(limit * 4, limit))
        )
        if ids is not None:
            q = q.where(Video.id.in_(ids))
        if skip_platforms:
            q = q.where(Video.platform.not_in(sorted(skip_platforms)))
        candidates = list(s.scalars(q))
    for vid in candidates:
        if len(claimed) >= limit:
            break
        with store.session() as s:
            res = s.execute(
                update(Video)
                .where(Video.id == vid, _claimable(now, states))
                .values(lease_owner=owner, lease_expires=now + dt.timedelta(seconds=lease_s))
                .execution_options(synchronize_session=False)
            )
            if res.rowcount == 1:
                claimed.append(vid)
    return claimed


def renew(store: Store, owner: str, video_id: int, lease_s: int) -> bool:
    """Extend a held lease; False when the lease was lost."""
    with store.session() as s:
        res = s.execute(
            update(Video)
            .where(Video.id == video_id, Video.lease_owner == owner)
            .values(lease_expires=utcnow() + dt.timedelta(seconds=lease_s))
            .execution_options(synchronize_session=False)
        )
        return res.rowcount == 1


def advance(store: Store, owner: str, video_id: int, state: str, **values: object) -> bool:
    """Move a leased video to ``state`` (and set ``values``); False when the lease was lost."""
    extra: dict[str, object] = {"state": state, **values}
    if state == VideoState.MATCHED:
        extra.update(lease_owner=None, lease_expires=None, error=None, processed_at=utcnow())
    with store.session() as s:
        res = s.execute(
            update(Video)
            .where(Video.id == video_id, Video.lease_owner == owner)
            .values(**extra)
            .execution_options(synchronize_session=False)
        )
        return res.rowcount == 1


def fail(
    store: Store, owner: str, video_id: int, error: str, *, transient: bool, max_attempts: int
) -> str:
    """Record a failure: transient ones retry with exponential backoff until ``max_attempts``."""
    with store.session() as s:
        video = s.get(Video, video_id)
        if video is None or video.lease_owner != owner:
            return "lost"
        video.attempts += 1
        video.error = error[:2000]
        video.lease_owner = None
        video.lease_expires = None
        if transient and video.attempts < max_attempts:
            video.next_attempt_at = utcnow() + dt.timedelta(seconds=30 * 2 ** (video.attempts - 1))
            return "retry"
        video.state = VideoState.FAILED
        return VideoState.FAILED


def release(store: Store, owner: str, video_id: int) -> None:
    """Give a lease back without counting an attempt (graceful stop)."""
    with store.session() as s:
        s.execute(
            update(Video)
            .where(Video.id == video_id, Video.lease_owner == owner)
            .values(lease_owner=None, lease_expires=None)
            .execution_options(synchronize_session=False)
        )


def requeue_failed(store: Store, video_ids: list[int] | None = None) -> int:
    """Put failed videos back to ``discovered`` (a manual retry)."""
    with store.session() as s:
        q = update(Video).where(Video.state == VideoState.FAILED)
        if video_ids:
            q = q.where(Video.id.in_(video_ids))
        res = s.execute(
            q.values(
                state=VideoState.DISCOVERED, attempts=0, next_attempt_at=None, error=None
            ).execution_options(synchronize_session=False)
        )
        return res.rowcount or 0
