"""Platform-wide state shared by every process: cool-downs after blocks and the rate budget.

A block that concerns the whole platform (HTTP 429, a bot check, a login wall, a WAF page, a
missing JS runtime, a run of errors) pauses the platform: :func:`pause` stores the reason and
the end of the cool-down; crawling, downloading and re-checks ask :func:`active_pause` first
and leave the platform's work queued until then. :func:`take_slot` hands out request slots
(a minimum interval and an hourly cap) with a compare-and-set on the platform's row, so
several processes share one budget.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from storage.db import Store
from storage.models import PlatformState, utcnow

HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Pause:
    """A platform cooling down: why, since when, until when, and which stage saw the block."""

    platform: str
    reason: str
    source: str
    since: dt.datetime
    until: dt.datetime

    def remaining_s(self, now: dt.datetime | None = None) -> float:
        return max(0.0, (self.until - (now or utcnow())).total_seconds())

    def describe(self) -> str:
        left = self.remaining_s()
        mins = max(1, round(left / 60))
        return (
            f"{self.platform} paused until {self.until:%Y-%m-%d %H:%M} UTC "
            f"(~{mins} min left; seen by {self.source}): {self.reason}"
        )


def _row(s, platform: str) -> PlatformState:  # type: ignore[no-untyped-def]
    row = s.get(PlatformState, platform)
    if row is None:
        row = PlatformState(platform=platform, pauses=0, consecutive_errors=0, window_count=0)
        s.add(row)
        try:
            s.flush()
        except IntegrityError:  # another process created it first
            s.rollback()
            row = s.get(PlatformState, platform)
            assert row is not None
    return row


def pause(store: Store, platform: str, reason: str, source: str, seconds: float) -> Pause:
    """Pause ``platform`` for ``seconds`` (an existing longer pause is kept)."""
    now = utcnow()
    until = now + dt.timedelta(seconds=max(1.0, seconds))
    with store.session() as s:
        row = _row(s, platform)
        current = row.paused_until
        if current is not None and current > until:
            until = current
        else:
            row.pauses = (row.pauses or 0) + 1
        row.paused_until = until
        row.pause_reason = reason[:2000]
        row.pause_source = source
        row.paused_at = now
        row.consecutive_errors = 0
    return Pause(platform, reason, source, now, until)


def active_pause(store: Store, platform: str, now: dt.datetime | None = None) -> Pause | None:
    """The platform's pause when it is still cooling down, else None."""
    now = now or utcnow()
    with store.session() as s:
        row = s.get(PlatformState, platform)
        if row is None or row.paused_until is None or row.paused_until <= now:
            return None
        return Pause(
            platform,
            row.pause_reason or "",
            row.pause_source or "",
            row.paused_at or now,
            row.paused_until,
        )


def active_pauses(store: Store) -> list[Pause]:
    """Every platform now cooling down."""
    now = utcnow()
    with store.session() as s:
        names = list(s.scalars(select(PlatformState.platform)))
    return [p for name in names if (p := active_pause(store, name, now)) is not None]


def last_pauses(store: Store) -> list[PlatformState]:
    """Every platform row (including ended pauses), for status displays."""
    with store.session() as s:
        return list(s.scalars(select(PlatformState).order_by(PlatformState.platform)))


def resume(store: Store, platform: str) -> bool:
    """End a pause now (an operator fixed the cause); True when one was active."""
    with store.session() as s:
        res = s.execute(
            update(PlatformState)
            .where(PlatformState.platform == platform, PlatformState.paused_until > utcnow())
            .values(paused_until=utcnow(), consecutive_errors=0)
            .execution_options(synchronize_session=False)
        )
        return bool(res.rowcount)


def note_error(store: Store, platform: str) -> int:
    """Count one more error in a row for the platform; returns the count."""
    with store.session() as s:
        row = _row(s, platform)
        row.consecutive_errors = (row.consecutive_errors or 0) + 1
        return row.consecutive_errors


def note_success(store: Store, platform: str) -> None:
    """A request went through: the run of errors is over."""
    with store.session() as s:
        s.execute(
            update(PlatformState)
            .where(PlatformState.platform == platform, PlatformState.consecutive_errors != 0)
            .values(consecutive_errors=0)
            .execution_options(synchronize_session=False)
        )


def take_slot(store: Store, platform: str, interval_s: float, per_hour: int = 0) -> float:
    """Try to take one request slot; returns 0.0 when taken, else seconds to wait first.

    Slots are at least ``interval_s`` apart and at most ``per_hour`` (0: no cap) in a rolling
    hour window, across every process using the same database.
    """
    for _ in range(20):
        now = utcnow()
        with store.session() as s:
            row = _row(s, platform)
            nxt, start, count = row.next_request_at, row.window_start, row.window_count or 0
        if nxt is not None and nxt > now:
            return (nxt - now).total_seconds()
        if start is None or now - start >= HOUR:
            new_start, new_count = now, 1
        else:
            if per_hour and count >= per_hour:
                return (start + HOUR - now).total_seconds()
            new_start, new_count = start, count + 1
        cond = [PlatformState.platform == platform]
        cond.append(
            PlatformState.next_request_at.is_(None)
            if nxt is None
            else PlatformState.next_request_at == nxt
        )
        cond.append(
            PlatformState.window_start.is_(None)
            if start is None
            else PlatformState.window_start == start
        )
        cond.append(PlatformState.window_count == count)
        with store.session() as s:
            res = s.execute(
                update(PlatformState)
                .where(*cond)
                .values(
                    next_request_at=now + dt.timedelta(seconds=max(0.0, interval_s)),
                    window_start=new_start,
                    window_count=new_count,
                )
                .execution_options(synchronize_session=False)
            )
            if res.rowcount == 1:
                return 0.0
    return max(0.05, interval_s)
