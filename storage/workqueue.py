"""The durable work queue over ``videos``: claim with a lease, write under it, advance, fail.

Claiming is one transaction per batch: ``UPDATE videos SET lease_owner=... WHERE id IN (SELECT
id ... ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED) RETURNING id``, first over leases that are
free again (expired, or held by a dead worker, see :mod:`storage.workers`), then over the
unleased rows of the partial index ``ix_videos_claimable``. On PostgreSQL the lease times are
in the server's clock and concurrent claimers skip each other's rows instead of racing for
them; on SQLite (one writer) the same statements run without ``SKIP LOCKED``.

Every write a stage makes for a video goes through :func:`leased`: one transaction that first
locks the video's row, checks that the lease is still this owner's and renews it, so a worker
whose lease was taken over cannot touch the rows of the video's new holder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Interval,
    and_,
    bindparam,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from storage import workers
from storage.db import Store
from storage.models import UTCDateTime, Video, VideoState, Worker, utcnow


class LeaseLost(Exception):
    """The video's lease is no longer this owner's: its writes were rolled back."""

    def __init__(self, video_id: int, owner: str) -> None:
        super().__init__(f"video {video_id}: lease of {owner} lost")
        self.video_id = video_id
        self.owner = owner


def worker_id() -> str:
    """A unique owner name for leases: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def attempt_token(owner: str, n: int = 0) -> str:
    """A short file-name-safe token of one attempt (owner and claim number): objects an attempt
    writes carry it, so two attempts at one video never write the same path."""
    return hashlib.sha1(f"{owner}/{n}".encode()).hexdigest()[:10]


def _is_pg(bind: Store | Session) -> bool:
    engine = bind.engine if isinstance(bind, Store) else bind.get_bind()
    return engine.dialect.name == "postgresql"


def _lease_until(s: Session, lease_s: float) -> Any:
    return workers.db_now(s) + dt.timedelta(seconds=lease_s)


def _states_in(states: Iterable[str]) -> ColumnElement[bool]:
    """``state IN (...)`` with the states inlined, so PostgreSQL can prove the partial index's
    predicate (with bound parameters a generic plan could not use the index)."""
    states = tuple(states)
    unknown = set(states) - set(VideoState.ALL)
    if unknown:
        raise ValueError(f"unknown video states: {sorted(unknown)}")
    return Video.state.in_([literal(st, literal_execute=True) for st in states])


def _ready(now: Any) -> ColumnElement[bool]:
    return or_(Video.next_attempt_at.is_(None), Video.next_attempt_at <= now)


def _free_lease(now: Any, dead: list[str]) -> ColumnElement[bool]:
    """A lease that is held but free again: expired, or its owner is dead."""
    free = Video.lease_expires < now
    if dead:
        free = or_(free, Video.lease_owner.in_(dead))
    return and_(Video.lease_owner.is_not(None), or_(Video.lease_expires.is_(None), free))


@cache
def _claim_stmt(
    pg: bool, states: tuple[str, ...], kind: str, with_ids: bool, with_skip: bool
) -> Any:
    """One claim pass, built once per shape (binds: owner, n, lease or now/until, ids, skip,
    dead). Each pass walks its own index: a dead owner's leases (``ix_videos_lease_owner``),
    expired leases (``ix_videos_lease_expires``: stops at once when none), unleased rows in
    id order (``ix_videos_claimable``)."""
    if pg:
        now: Any = func.now()
        until: Any = now + bindparam("lease", type_=Interval())
    else:
        now = bindparam("now", type_=UTCDateTime())
        until = bindparam("until", type_=UTCDateTime())
    if kind == "dead":
        cond, order = Video.lease_owner.in_(bindparam("dead", expanding=True)), Video.id
    elif kind == "expired":
        cond = and_(Video.lease_owner.is_not(None), Video.lease_expires < now)
        order = Video.lease_expires
    else:
        cond, order = Video.lease_owner.is_(None), Video.id
    pick = select(Video.id).where(_states_in(states), cond, _ready(now))
    if with_ids:
        pick = pick.where(Video.id.in_(bindparam("ids", expanding=True)))
    if with_skip:
        pick = pick.where(Video.platform.not_in(bindparam("skip", expanding=True)))
    pick = pick.order_by(order).limit(bindparam("n", type_=Integer()))
    if pg:
        pick = pick.with_for_update(skip_locked=True)
    table = Video.__table__
    return (
        update(table)
        .where(table.c.id.in_(pick.scalar_subquery()))
        .values(lease_owner=bindparam("owner"), lease_expires=until)
        .returning(table.c.id)
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

    ``ids`` restricts the claim to those videos; ``skip_platforms``: platforms whose videos stay
    queued (paused, or out of rate budget). Leases that expired or whose owner is dead are
    taken over first.
    """
    if limit <= 0:
        return []
    pg = _is_pg(store)
    params: dict[str, Any] = {"owner": owner}
    if pg:
        params["lease"] = dt.timedelta(seconds=lease_s)
    else:
        params["now"] = utcnow()
        params["until"] = params["now"] + dt.timedelta(seconds=lease_s)
    if ids is not None:
        params["ids"] = list(ids)
    if skip_platforms:
        params["skip"] = sorted(skip_platforms)
    claimed: list[int] = []
    with store.session() as s:
        conn = s.connection()
        dead = workers.dead_owners(s)
        if dead:
            params["dead"] = dead
        for kind in ("dead", "expired", "free") if dead else ("expired", "free"):
            params["n"] = limit - len(claimed)
            if params["n"] <= 0:
                break
            stmt = _claim_stmt(pg, tuple(states), kind, ids is not None, bool(skip_platforms))
            claimed.extend(conn.execute(stmt, params).scalars())
    return sorted(claimed)


def _claimable(
    s: Session,
    states: tuple[str, ...],
    ids: list[int] | None = None,
    skip_platforms: Iterable[str] = (),
) -> Any:
    """The ids :func:`claim` could lease in ``states`` now (unleased or free again, not
    backing off), as a query."""
    now = workers.db_now(s)
    dead = workers.dead_owners(s)
    q = select(Video.id).where(
        _states_in(states),
        or_(Video.lease_owner.is_(None), _free_lease(now, dead)),
        _ready(now),
    )
    if ids is not None:
        q = q.where(Video.id.in_(list(ids)))
    skip = list(skip_platforms)
    if skip:
        q = q.where(Video.platform.not_in(skip))
    return q


def claimable(store: Store, states: tuple[str, ...], ids: list[int] | None = None) -> bool:
    """Whether :func:`claim` would lease anything in ``states`` now (unleased or free again,
    not backing off). A read only: on SQLite an empty :func:`claim` still takes the write lock,
    so a loop that waits for work asks this first."""
    with store.session() as s:
        return s.scalar(_claimable(s, states, ids).limit(1)) is not None


def count_claimable(
    store: Store, states: tuple[str, ...], *, skip_platforms: Iterable[str] = ()
) -> int:
    """How many videos :func:`claim` could lease in ``states`` now, those of
    ``skip_platforms`` (paused ones) left out."""
    with store.session() as s:
        q = _claimable(s, states, skip_platforms=skip_platforms).subquery()
        return int(s.scalar(select(func.count()).select_from(q)) or 0)


def renew(store: Store, owner: str, video_id: int, lease_s: int) -> bool:
    """Extend a held lease; False when the lease was lost."""
    return video_id in renew_many(store, owner, [video_id], lease_s)


def renew_many(store: Store, owner: str, video_ids: Iterable[int], lease_s: int) -> set[int]:
    """Extend the leases of ``video_ids`` in one statement; returns the ids still held."""
    ids = list(video_ids)
    if not ids:
        return set()
    with store.session() as s:
        rows = s.execute(
            update(Video)
            .where(Video.id.in_(ids), Video.lease_owner == owner)
            .values(lease_expires=_lease_until(s, lease_s))
            .returning(Video.id)
            .execution_options(synchronize_session=False)
        )
        return set(rows.scalars())


def _lock_lease(s: Session, owner: str, video_id: int, lease_s: float | None) -> None:
    """Lock the video's row (the UPDATE takes the row lock on PostgreSQL and the write lock on
    SQLite before anything is read), check that ``owner`` holds it and renew the lease."""
    values: dict[str, Any] = {"lease_owner": owner}
    if lease_s is not None:
        values["lease_expires"] = _lease_until(s, lease_s)
    held = s.execute(
        update(Video)
        .where(Video.id == video_id, Video.lease_owner == owner)
        .values(**values)
        .returning(Video.id)
        .execution_options(synchronize_session=False)
    ).first()
    if held is None:
        raise LeaseLost(video_id, owner)


@contextmanager
def leased(
    store: Store, owner: str, video_id: int, lease_s: float | None = None
) -> Iterator[Session]:
    """A transaction in which ``owner`` holds ``video_id``'s lease, locked for its duration.

    Raises :class:`LeaseLost` (and writes nothing) when another owner holds the video, or a
    sweep or claim took the lease back. ``lease_s`` also renews the lease. What is written in
    the block commits together with the check, or not at all.
    """
    with store.session() as s:
        _lock_lease(s, owner, video_id, lease_s)
        yield s


def advance(store: Store, owner: str, video_id: int, state: str, **values: object) -> bool:
    """Move a leased video to ``state`` (and set ``values``); False when the lease was lost."""
    try:
        with leased(store, owner, video_id) as s:
            set_state(s, video_id, state, **values)
    except LeaseLost:
        return False
    return True


def set_state(s: Session, video_id: int, state: str, **values: object) -> None:
    """Inside :func:`leased`: move the video to ``state``; ``matched`` also ends the lease."""
    extra: dict[str, object] = {"state": state, **values}
    if state == VideoState.MATCHED:
        extra.update(
            lease_owner=None, lease_expires=None, error=None, processed_at=workers.db_now(s)
        )
    s.execute(
        update(Video)
        .where(Video.id == video_id)
        .values(**extra)
        .execution_options(synchronize_session=False)
    )


def fail(
    store: Store, owner: str, video_id: int, error: str, *, transient: bool, max_attempts: int
) -> str:
    """Record a failure: transient ones retry with exponential backoff until ``max_attempts``.

    Returns ``"retry"``, ``"failed"`` or ``"lost"`` (the lease was no longer ``owner``'s).
    """
    try:
        with leased(store, owner, video_id) as s:
            video = s.get(Video, video_id, populate_existing=True)
            assert video is not None
            video.attempts += 1
            video.error = error[:2000]
            video.lease_owner = None
            video.lease_expires = None
            if transient and video.attempts < max_attempts:
                backoff = dt.timedelta(seconds=30 * 2 ** (video.attempts - 1))
                video.next_attempt_at = workers.db_now(s) + backoff  # type: ignore[assignment]
                return "retry"
            video.state = VideoState.FAILED
            return VideoState.FAILED
    except LeaseLost:
        return "lost"


def release(store: Store, owner: str, video_id: int) -> None:
    """Give a lease back without counting an attempt (graceful stop)."""
    with store.session() as s:
        s.execute(
            update(Video)
            .where(Video.id == video_id, Video.lease_owner == owner)
            .values(lease_owner=None, lease_expires=None)
            .execution_options(synchronize_session=False)
        )


def sweep(store: Store) -> int:
    """Release expired leases and those of dead workers, and forget the dead workers.

    Returns how many leases were released. Safe to run from any process at any time: a lease
    being written under :func:`leased` is locked and renewed, so the sweep leaves it alone.
    """
    released = 0
    with store.session() as s:
        now = workers.db_now(s)
        dead = workers.dead_owners(s)
        # one UPDATE per index (an OR of both would scan the table)
        conds = [
            and_(
                Video.lease_owner.is_not(None),
                or_(Video.lease_expires < now, Video.lease_expires.is_(None)),
            )
        ]
        if dead:
            conds.append(Video.lease_owner.in_(dead))
        for cond in conds:
            res = s.execute(
                update(Video)
                .where(cond)
                .values(lease_owner=None, lease_expires=None)
                .execution_options(synchronize_session=False)
            )
            released += int(res.rowcount or 0)  # type: ignore[attr-defined]
        if dead:
            s.execute(
                Worker.__table__.delete().where(Worker.owner.in_(dead))  # type: ignore[attr-defined]
            )
    return released


def held_by_others(
    store: Store,
    owner: str,
    states: tuple[str, ...] = VideoState.PENDING,
    skip_platforms: set[str] | None = None,
) -> int:
    """Videos in ``states`` leased by other owners whose leases are live (not claimable now)."""
    with store.session() as s:
        now = workers.db_now(s)
        dead = workers.dead_owners(s)
        q = (
            select(func.count())
            .select_from(Video)
            .where(
                _states_in(states),
                Video.lease_owner.is_not(None),
                Video.lease_owner != owner,
                ~_free_lease(now, dead),
            )
        )
        if skip_platforms:
            q = q.where(Video.platform.not_in(sorted(skip_platforms)))
        return int(s.scalar(q) or 0)


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
