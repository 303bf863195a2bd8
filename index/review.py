"""Review states of a detection, and the analyst's verdicts.

Allowed moves (:data:`TRANSITIONS`)::

    new          -> needs_review | confirmed | rejected
    needs_review -> confirmed | rejected
    confirmed    -> notice_sent | rejected | needs_review
    rejected     -> confirmed | needs_review
    notice_sent  -> removed
    removed      -> notice_sent   (a re-check found it up again)

* ``new``: written by the matcher; the only state a re-match may delete (when the flag no
  longer holds). Every other state is kept across re-matches.
* ``needs_review``: routed to a person (e.g. a weak or policy-borderline match).
* ``confirmed`` / ``rejected``: the verdict. Calibration (:mod:`index.calibrate`) uses the
  frames of confirmed detections as positives and of rejected ones as negatives. A verdict
  may be changed (confirmed <-> rejected) or sent back to ``needs_review``.
* ``notice_sent``: a takedown notice went out (only for a confirmed detection).
* ``removed``: the platform took the video down; a later re-check that finds it up again may
  move it back to ``notice_sent``.

Any other move is refused with a :class:`ReviewError` naming the allowed ones. Every applied
step is kept as a :class:`storage.models.ReviewEvent` (who, when, from, to, note); the
detection keeps the last one's reviewer and time (``reviewed_by``, ``reviewed_at``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from charwatch.errors import UsageError
from storage.db import Store
from storage.models import Character, Detection, ReviewEvent, Video, utcnow

NEW = "new"
NEEDS_REVIEW = "needs_review"
CONFIRMED = "confirmed"
REJECTED = "rejected"
NOTICE_SENT = "notice_sent"
REMOVED = "removed"
STATES = (NEW, NEEDS_REVIEW, CONFIRMED, REJECTED, NOTICE_SENT, REMOVED)

TRANSITIONS: dict[str, tuple[str, ...]] = {
    NEW: (NEEDS_REVIEW, CONFIRMED, REJECTED),
    NEEDS_REVIEW: (CONFIRMED, REJECTED),
    CONFIRMED: (NOTICE_SENT, REJECTED, NEEDS_REVIEW),
    REJECTED: (CONFIRMED, NEEDS_REVIEW),
    NOTICE_SENT: (REMOVED,),
    REMOVED: (NOTICE_SENT,),
}


class ReviewError(UsageError):
    """A review request that cannot be done: unknown detection or state, or a move the
    review states do not allow."""


@dataclass
class ReviewChange:
    """One applied review step."""

    detection_id: int
    old_state: str
    new_state: str
    note: str | None
    reviewed_at: dt.datetime
    reviewer: str | None = None


def check_transition(old: str, new: str) -> None:
    """Raise :class:`ReviewError` unless ``old`` -> ``new`` is allowed."""
    if new not in STATES:
        raise ReviewError(f"unknown review state {new!r} (known: {', '.join(STATES)})")
    old = old or NEW
    if old not in TRANSITIONS:
        raise ReviewError(f"detection is in an unknown review state {old!r}")
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(TRANSITIONS[old]) or "none"
        raise ReviewError(f"cannot go from {old} to {new} (from {old}: {allowed})")


def set_review_state(
    store: Store,
    detection_id: int,
    state: str,
    note: str | None = None,
    *,
    reviewer: str | None = None,
) -> ReviewChange:
    """Move one detection to ``state`` (checked against :data:`TRANSITIONS`), set
    ``reviewed_at``, ``reviewed_by`` (``reviewer``) and, when given, the note, and record the
    step as a :class:`ReviewEvent`. Staying in the same state only updates the note (and is an
    error without one)."""
    with store.session() as s:
        det = s.get(Detection, detection_id, with_for_update=True)
        if det is None:
            raise ReviewError(f"no detection with id {detection_id}")
        old = det.review_state or NEW
        if state == old:
            if note is None:
                raise ReviewError(f"detection {detection_id} is already {old}")
        else:
            try:
                check_transition(old, state)
            except ReviewError as exc:
                raise ReviewError(f"detection {detection_id}: {exc}") from None
        now = utcnow()
        det.review_state = state
        det.reviewed_at = now
        det.reviewed_by = reviewer
        if note is not None:
            det.review_note = note.strip() or None
        s.add(
            ReviewEvent(
                detection_id=detection_id,
                old_state=old,
                new_state=state,
                note=(note.strip() or None) if note is not None else None,
                reviewer=reviewer,
                at=now,
            )
        )
        return ReviewChange(detection_id, old, state, det.review_note, now, reviewer)


def set_review_states(
    store: Store,
    detection_ids: list[int],
    state: str,
    note: str | None = None,
    *,
    reviewer: str | None = None,
) -> tuple[list[ReviewChange], list[ReviewError]]:
    """:func:`set_review_state` for each id (each in its own transaction): the applied
    changes and the refused ones' errors, in the order given."""
    done: list[ReviewChange] = []
    refused: list[ReviewError] = []
    for detection_id in dict.fromkeys(detection_ids):
        try:
            done.append(set_review_state(store, detection_id, state, note, reviewer=reviewer))
        except ReviewError as exc:
            refused.append(exc)
    return done, refused


def review_history(store: Store, detection_id: int) -> list[dict[str, Any]]:
    """The review steps of one detection, oldest first."""
    with store.session() as s:
        rows = s.scalars(
            select(ReviewEvent)
            .where(ReviewEvent.detection_id == detection_id)
            .order_by(ReviewEvent.at, ReviewEvent.id)
        ).all()
    return [
        {
            "old_state": e.old_state,
            "new_state": e.new_state,
            "note": e.note,
            "reviewer": e.reviewer,
            "at": e.at,
        }
        for e in rows
    ]


def list_detections(
    store: Store,
    *,
    state: str | None = None,
    character: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Detections newest first, as plain dicts (with the video's platform, URL and author)."""
    if state is not None and state not in STATES:
        raise ReviewError(f"unknown review state {state!r} (known: {', '.join(STATES)})")
    with store.session() as s:
        q = (
            select(Detection, Character.name, Video.platform, Video.url, Video.author)
            .join(Character, Character.id == Detection.character_id)
            .join(Video, Video.id == Detection.video_id)
            .order_by(Detection.detected_at.desc(), Detection.id.desc())
        )
        if state is not None:
            q = q.where(Detection.review_state == state)
        if character is not None:
            q = q.where(Character.name == character)
        if limit is not None:
            q = q.limit(limit)
        rows = s.execute(q).all()
    return [
        {
            "id": d.id,
            "character": name,
            "platform": platform,
            "url": url,
            "author": author,
            "match_type": d.match_type,
            "score": d.score,
            "best_frame_t": d.best_frame_t,
            "model_id": d.model_id,
            "review_state": d.review_state or NEW,
            "review_note": d.review_note,
            "reviewed_at": d.reviewed_at,
            "reviewed_by": d.reviewed_by,
            "detected_at": d.detected_at,
            "video_id": d.video_id,
        }
        for d, name, platform, url, author in rows
    ]
