"""The desk's reads: the flag queue (filtered, sorted, keyset-paged) and one detection's page.

Paging is by keyset, never by OFFSET: a page asks for the rows after (or before) the sort key
and id of the last (first) row shown, so page 2,000 costs what page 1 costs. The sort orders
have indexes (migration 0005): ``(review_state, detected_at, id)``, ``(review_state, score,
id)``, ``(detected_at, id)`` and ``(score, id)``. A page is read in two steps: the ids in order
(one index range scan per review state, merged, so the "open" queue of new and needs-review
flags never sorts the whole table), then those rows with their character, video and reference.
Reads only; the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, union_all
from sqlalchemy.orm import Session

from charwatch.platforms import PLATFORMS
from index.allowlist import normalize_handle
from index.review import NEEDS_REVIEW, NEW, STATES, TRANSITIONS
from reports.explain import Explanation, explain
from storage.models import (
    AllowedAccount,
    Character,
    Detection,
    Frame,
    Reference,
    ReviewEvent,
    Video,
)

OPEN = "open"  # new + needs_review: what still waits for a person
STATE_CHOICES = (OPEN, "all", *STATES)
SORTS: dict[str, tuple[str, bool]] = {  # name -> (column, descending)
    "newest": ("detected_at", True),
    "oldest": ("detected_at", False),
    "score": ("score", True),
    "score_asc": ("score", False),
}
SORT_LABELS = {
    "newest": "newest first",
    "oldest": "oldest first",
    "score": "highest score first",
    "score_asc": "lowest score first",
}
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
MAX_TEXT_FILTER = 200


def _column(name: str) -> Any:
    return Detection.detected_at if name == "detected_at" else Detection.score


def _date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat((text or "").strip()) if text else None
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        v = float((text or "").strip())
    except ValueError:
        return None
    return v if v == v and abs(v) != float("inf") else None


def _int(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class QueueFilter:
    """What the queue shows and in which order (read from, and written to, the query string).

    ``since`` / ``until`` are UTC days of detection, both included; unreadable values are
    ignored (the filter is then not applied)."""

    state: str = OPEN
    character_id: int | None = None
    platform: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    min_score: float | None = None
    max_score: float | None = None
    q: str = ""
    sort: str = "newest"
    per_page: int = DEFAULT_PAGE_SIZE
    default_size: int = field(default=DEFAULT_PAGE_SIZE, compare=False)

    @classmethod
    def from_args(cls, args: Mapping[str, str], per_page: int = DEFAULT_PAGE_SIZE) -> QueueFilter:
        """Read the query string; ``per_page``: the page size when it names none."""
        state = args.get("state") or OPEN
        sort = args.get("sort") or "newest"
        platform = args.get("platform") or None
        size = _int(args.get("per_page")) or per_page
        return cls(
            state=state if state in STATE_CHOICES else OPEN,
            character_id=_int(args.get("character")),
            platform=platform if platform in PLATFORMS else None,
            since=_date(args.get("since")),
            until=_date(args.get("until")),
            min_score=_float(args.get("min_score")),
            max_score=_float(args.get("max_score")),
            q=" ".join((args.get("q") or "").split())[:MAX_TEXT_FILTER],
            sort=sort if sort in SORTS else "newest",
            per_page=size if size in PAGE_SIZES else per_page,
            default_size=per_page,
        )

    def to_args(self) -> dict[str, str]:
        """The query-string form; values equal to the defaults are left out."""
        out: dict[str, str] = {}
        default = QueueFilter()
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "default_size" or v is None or v == "":
                continue
            if f.name == "per_page":
                if v != self.default_size:
                    out["per_page"] = str(v)
                continue
            if v == getattr(default, f.name):
                continue
            key = "character" if f.name == "character_id" else f.name
            out[key] = v.isoformat() if isinstance(v, dt.date) else str(v)
        return out

    @property
    def states(self) -> tuple[str, ...]:
        """The review states shown (empty: every state)."""
        if self.state == OPEN:
            return (NEW, NEEDS_REVIEW)
        return (self.state,) if self.state in STATES else ()

    def conditions(self, *, states: bool = True) -> list[Any]:
        """SQL conditions over Detection and Video (``states``: with the review states)."""
        cond: list[Any] = []
        if states and self.states:
            cond.append(Detection.review_state.in_(self.states))
        if self.character_id is not None:
            cond.append(Detection.character_id == self.character_id)
        if self.platform:
            cond.append(Video.platform == self.platform)
        if self.since is not None:
            start = dt.datetime.combine(self.since, dt.time(), dt.UTC)
            cond.append(Detection.detected_at >= start)
        if self.until is not None:
            end = dt.datetime.combine(self.until + dt.timedelta(days=1), dt.time(), dt.UTC)
            cond.append(Detection.detected_at < end)
        if self.min_score is not None:
            cond.append(Detection.score >= self.min_score)
        if self.max_score is not None:
            cond.append(Detection.score <= self.max_score)
        if self.q:
            like = (
                "%"
                + self.q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                + "%"
            )
            cond.append(
                or_(
                    func.lower(Video.author).like(like, escape="\\"),
                    func.lower(Video.caption).like(like, escape="\\"),
                    func.lower(Video.url).like(like, escape="\\"),
                )
            )
        return cond

    @property
    def needs_video(self) -> bool:
        return bool(self.platform or self.q)


# ---------------------------------------------------------------------------------------------
# cursors


@dataclass(frozen=True)
class Cursor:
    """A position in a sort order: the sort key and id of one row."""

    value: dt.datetime | float
    id: int

    def encode(self) -> str:
        v = self.value.isoformat() if isinstance(self.value, dt.datetime) else repr(self.value)
        return f"{v}~{self.id}"

    @classmethod
    def decode(cls, text: str | None, sort: str) -> Cursor | None:
        if not text or "~" not in text:
            return None
        raw, _, ident = text.rpartition("~")
        row_id = _int(ident)
        if row_id is None:
            return None
        if SORTS[sort][0] == "detected_at":
            try:
                when = dt.datetime.fromisoformat(raw)
            except ValueError:
                return None
            return cls(when if when.tzinfo else when.replace(tzinfo=dt.UTC), row_id)
        value = _float(raw)
        return None if value is None else cls(value, row_id)


# ---------------------------------------------------------------------------------------------
# the queue


@dataclass
class QueueRow:
    """One flag as the queue lists it."""

    id: int
    video_id: int
    character: str
    score: float
    match_type: str
    review_state: str
    reviewed_by: str | None
    detected_at: dt.datetime
    platform: str
    author: str | None
    caption: str | None
    url: str
    posted_at: dt.datetime | None
    why: Explanation
    allowed: tuple[str, ...] = ()

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass
class Page:
    """One page of the queue; the cursors lead to the neighbouring pages (None: none)."""

    rows: list[QueueRow]
    total: int
    newer: str | None = None  # the page before, in the chosen order
    older: str | None = None  # the page after
    start: int = 1  # position of the first row (1-based)
    filters: QueueFilter = field(default_factory=QueueFilter)


ROW_COLUMNS = (
    Detection.id,
    Detection.video_id,
    Detection.score,
    Detection.match_type,
    Detection.signals,
    Detection.best_frame_t,
    Detection.best_reference_id,
    Detection.review_state,
    Detection.reviewed_by,
    Detection.detected_at,
    Character.name.label("character"),
    Video.platform,
    Video.author,
    Video.caption,
    Video.url,
    Video.posted_at,
    Reference.label.label("reference_label"),
)


def _keyset(sort: str, cursor: Cursor, forward: bool) -> Any:
    """Rows after ``cursor`` in the sort order (``forward``), or before it."""
    col_name, desc = SORTS[sort]
    col = _column(col_name)
    later = desc == forward  # descending and forward: smaller keys come next
    if later:
        return or_(col < cursor.value, and_(col == cursor.value, Detection.id < cursor.id))
    return or_(col > cursor.value, and_(col == cursor.value, Detection.id > cursor.id))


def _ordered(q: Select[Any], sort: str, forward: bool) -> Select[Any]:
    col_name, desc = SORTS[sort]
    col = _column(col_name)
    if desc == forward:
        return q.order_by(col.desc(), Detection.id.desc())
    return q.order_by(col.asc(), Detection.id.asc())


def _base(filters: QueueFilter, columns: tuple[Any, ...]) -> Select[Any]:
    return (
        select(*columns)
        .join(Character, Character.id == Detection.character_id)
        .join(Video, Video.id == Detection.video_id)
        .outerjoin(Reference, Reference.id == Detection.best_reference_id)
        .where(*filters.conditions())
    )


def _row(r: Any) -> QueueRow:
    return QueueRow(
        id=int(r.id),
        video_id=int(r.video_id),
        character=r.character,
        score=float(r.score),
        match_type=r.match_type or "",
        review_state=r.review_state or NEW,
        reviewed_by=r.reviewed_by,
        detected_at=r.detected_at,
        platform=r.platform,
        author=r.author,
        caption=r.caption,
        url=r.url,
        posted_at=r.posted_at,
        why=explain(
            r.signals or {},
            character=r.character,
            reference_label=r.reference_label,
            reference_id=r.best_reference_id,
            match_type=r.match_type,
            best_frame_t=r.best_frame_t,
        ),
    )


def _ordered_ids(
    filters: QueueFilter, cursor: Cursor | None, forward: bool, limit: int
) -> Select[Any]:
    """``(id, sort key)`` of the next ``limit`` rows in order: one ordered, limited index scan
    per review state, merged."""
    sort = filters.sort
    key = _column(SORTS[sort][0])

    def part(*state_cond: Any) -> Select[Any]:
        q = select(Detection.id.label("id"), key.label("k"))
        if filters.needs_video:
            q = q.join(Video, Video.id == Detection.video_id)
        q = q.where(*filters.conditions(states=False), *state_cond)
        if cursor is not None:
            q = q.where(_keyset(sort, cursor, forward))
        return _ordered(q, sort, forward).limit(limit)

    states = filters.states
    if len(states) <= 1:
        return part(*([Detection.review_state == states[0]] if states else []))
    parts = [part(Detection.review_state == st).subquery() for st in states]
    merged = union_all(*[select(p.c.id, p.c.k) for p in parts]).subquery()
    desc = SORTS[sort][1] == forward
    order = (merged.c.k.desc(), merged.c.id.desc()) if desc else (merged.c.k, merged.c.id)
    return select(merged.c.id, merged.c.k).order_by(*order).limit(limit)


def count(session: Session, filters: QueueFilter) -> int:
    """How many flags match the filters."""
    q = select(func.count(Detection.id))
    if filters.needs_video:
        q = q.join(Video, Video.id == Detection.video_id)
    return int(session.scalar(q.where(*filters.conditions())) or 0)


def queue_page(
    session: Session,
    filters: QueueFilter,
    *,
    after: str | None = None,
    before: str | None = None,
    start: int = 1,
) -> Page:
    """One page of flags: the first, the one after cursor ``after``, or the one before
    ``before`` (``start``: the shown position of its first row, carried by the links)."""
    sort = filters.sort
    size = filters.per_page
    cur_after = Cursor.decode(after, sort)
    cur_before = None if cur_after else Cursor.decode(before, sort)
    forward = cur_before is None
    ids = list(session.scalars(_ordered_ids(filters, cur_after or cur_before, forward, size + 1)))
    more = len(ids) > size
    ids = ids[:size]
    if not forward:
        ids.reverse()
    details = (
        {
            int(r.id): r
            for r in session.execute(
                _base(QueueFilter(state="all"), ROW_COLUMNS).where(Detection.id.in_(ids))
            )
        }
        if ids
        else {}
    )
    rows = [details[i] for i in ids if i in details]
    total = count(session, filters)
    if not rows:
        return Page([], total, start=max(1, start), filters=filters)
    items = [_row(r) for r in rows]
    _mark_allowed(session, items)
    key = SORTS[sort][0]
    first = Cursor(getattr(rows[0], key), int(rows[0].id))
    last = Cursor(getattr(rows[-1], key), int(rows[-1].id))
    has_newer = cur_after is not None or (cur_before is not None and more)
    has_older = more if forward else True
    return Page(
        rows=items,
        total=total,
        newer=first.encode() if has_newer else None,
        older=last.encode() if has_older else None,
        start=max(1, start),
        filters=filters,
    )


def _mark_allowed(session: Session, rows: list[QueueRow]) -> None:
    """Note on each row whether its account is on the allow-list (added since the flag)."""
    authors = {normalize_handle(r.author) for r in rows if r.author}
    if not authors:
        return
    allowed: dict[tuple[str, str], list[int | None]] = {}
    for platform, author, cid in session.execute(
        select(AllowedAccount.platform, AllowedAccount.author, AllowedAccount.character_id)
    ):
        key = (platform, normalize_handle(author))
        if key[1] in authors:
            allowed.setdefault(key, []).append(cid)
    if not allowed:
        return
    for r in rows:
        scopes = allowed.get((r.platform, normalize_handle(r.author)))
        if scopes:
            r.allowed = tuple("all characters" if c is None else "this character" for c in scopes)


def neighbours(session: Session, filters: QueueFilter, det: Detection) -> tuple[int | None, ...]:
    """``(previous, next)`` detection ids around ``det`` in the queue's order (None: none)."""
    sort = filters.sort
    cur = Cursor(getattr(det, SORTS[sort][0]), int(det.id))
    out: list[int | None] = []
    for forward in (False, True):
        out.append(session.scalar(_ordered_ids(filters, cur, forward, 1)))
    return tuple(out)


def filter_options(session: Session) -> dict[str, Any]:
    """Choices of the filter form: characters (id, name), platforms, states, sorts."""
    chars = session.execute(select(Character.id, Character.name).order_by(Character.name)).all()
    return {
        "characters": [(int(i), n) for i, n in chars],
        "platforms": list(PLATFORMS),
        "states": STATE_CHOICES,
        "sorts": SORT_LABELS,
        "page_sizes": PAGE_SIZES,
    }


# ---------------------------------------------------------------------------------------------
# one detection


@dataclass
class FrameView:
    """A sampled frame on the detection page."""

    id: int
    t: float
    score: float | None
    best: bool
    has_image: bool


@dataclass
class DetectionView:
    """Everything the detection page shows."""

    det: Detection
    video: Video
    character: Character
    reference: Reference | None
    why: Explanation
    frames: list[FrameView]
    best_frame_id: int | None
    history: list[dict[str, Any]]
    allowed: list[str]
    next_states: tuple[str, ...]


def detection_view(session: Session, detection_id: int) -> DetectionView | None:
    """The detection with its video, character, matched reference, frames (each with the
    score the matcher gave it), review history and the account's allow-list entries."""
    det = session.get(Detection, detection_id)
    if det is None:
        return None
    video, char = det.video, det.character
    ref_id = det.best_reference_id
    ref = session.get(Reference, ref_id) if ref_id is not None else None
    why = explain(
        det.signals or {},
        character=char.name,
        reference_label=ref.label if ref is not None else None,
        reference_id=ref_id,
        match_type=det.match_type,
        best_frame_t=det.best_frame_t,
    )
    if ref is None and why.reference_id is not None:
        ref = session.get(Reference, why.reference_id)
    frames = session.execute(
        select(Frame.id, Frame.t.label("at"), Frame.thumb_path, Frame.image_path)
        .where(Frame.video_id == video.id)
        .order_by(Frame.t)
    ).all()
    best_t = det.best_frame_t
    best_id = None
    if frames and best_t is not None:
        best_id = min(frames, key=lambda f: abs(f.at - best_t)).id  # (Row.t is a method)
    views = [
        FrameView(
            id=int(f.id),
            t=float(f.at),
            score=why.frame_scores.get(round(float(f.at), 3)),
            best=f.id == best_id,
            has_image=bool(f.thumb_path or f.image_path),
        )
        for f in frames
    ]
    events = session.scalars(
        select(ReviewEvent)
        .where(ReviewEvent.detection_id == det.id)
        .order_by(ReviewEvent.at, ReviewEvent.id)
    ).all()
    history = [
        {
            "old_state": e.old_state,
            "new_state": e.new_state,
            "note": e.note,
            "reviewer": e.reviewer,
            "at": e.at,
        }
        for e in events
    ]
    allowed = []
    handle = normalize_handle(video.author)
    if handle:
        for a, cname in session.execute(
            select(AllowedAccount, Character.name)
            .outerjoin(Character, Character.id == AllowedAccount.character_id)
            .where(AllowedAccount.platform == video.platform)
        ):
            if normalize_handle(a.author) == handle:
                allowed.append(cname or "every character")
    state = det.review_state or NEW
    return DetectionView(
        det=det,
        video=video,
        character=char,
        reference=ref,
        why=why,
        frames=views,
        best_frame_id=best_id,
        history=history,
        allowed=allowed,
        next_states=TRANSITIONS.get(state, ()),
    )


__all__ = [
    "OPEN",
    "PAGE_SIZES",
    "SORTS",
    "SORT_LABELS",
    "STATE_CHOICES",
    "Cursor",
    "DetectionView",
    "FrameView",
    "Page",
    "QueueFilter",
    "QueueRow",
    "count",
    "detection_view",
    "filter_options",
    "neighbours",
    "queue_page",
]
