"""Matching: claim ``embedded`` videos, run the signals, fuse them per (video, character),
write :class:`storage.models.Detection` rows and move the videos to ``matched``.

Fusion per (video, character) reads each signal class's ``fusion_role`` (see
:class:`index.signals.Signal`), never its name:

* **copy** (PDQ: a reference picture re-used, also mirrored or letterboxed; geometric: ORB
  keypoints verified by RANSAC, also cropped, picture-in-picture or under overlays): a match
  flags on its own, ``match_type = "copy"``; of several, the first in registry order decides;
* **semantic** (image embedding): flags when at least ``detect.min_frames`` frames reach the
  threshold (temporal consistency); its score is the mean of the ``detect.top_k`` best frames;
* **semantic_fallback** (text prompts): flags like semantic, only for a character with no
  reference images and no semantic match; otherwise it only explains;
* **support** (caption/hashtags naming the character) never flags; a match adds the signal's
  ``fusion_bonus`` to the score of a flag; **explain** (platform AI label, C2PA) only explains.

Policies: a character's ``min_frames`` / ``min_seconds`` (``Character`` columns; None: the
config default) decide how much of a video must match, for the semantic signals and, when set,
for copies too; a calibrated threshold (``CharacterThreshold`` for the current embedder id and
the signal) replaces the signal's default. Videos of an allow-listed account
(``AllowedAccount``: platform + handle, for one character or all) are never flagged: the flag
that would have been written is counted in :attr:`DetectStats.suppressed` instead.

Each flag carries its estimated precision (:mod:`index.precision`: the share of flags of its
match type at its score that analysts confirmed, from the verdicts on record for this embedder)
in ``signals["fusion"]``, or None until enough verdicts exist.

Re-running is idempotent: detections are upserted on (video, character), keeping their
review state and first detection time; an unreviewed detection that no longer holds is
removed, a reviewed one is kept.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from tqdm import tqdm

from charwatch.config import Config
from index.allowlist import AllowList
from index.precision import PrecisionModel
from index.refindex import ReferenceIndex, load_or_build
from index.signals import (
    COPY,
    ROLE_COPY,
    ROLE_SEMANTIC,
    ROLE_SEMANTIC_FALLBACK,
    ROLE_SUPPORT,
    SEMANTIC,
    SIGNAL_CLASSES,
    FrameRow,
    Signal,
    SignalResult,
    VideoEvidence,
    embed_threshold,
    make_signals,
)
from storage import vectors as stored_vectors
from storage import workers
from storage import workqueue as queue
from storage.db import Store
from storage.models import (
    Character,
    Detection,
    Embedding,
    Frame,
    Video,
    VideoState,
)

log = logging.getLogger(__name__)

CLAIM_CHUNK = 16
FOLLOW_POLL_S = 0.25  # following a processing run: wait this long after an empty claim
# videos decided side by side: the work (FAISS, OpenCV, numpy) releases the GIL; the store is
# read and written on the calling thread only
MATCH_THREADS = max(1, min(4, os.cpu_count() or 1))


class ReembedNeeded(RuntimeError):
    """The stored frame vectors were made by another model than the current embedder."""


@dataclass
class DetectStats:
    """What one call of :func:`detect_pending` did."""

    claimed: int = 0
    matched: int = 0  # videos moved to "matched"
    failed: int = 0  # ended as "failed" (e.g. re-embed needed)
    retrying: int = 0  # transient failure, retried later
    lost: int = 0  # lease lost to another worker
    flags: int = 0  # detections written (new or updated)
    copy: int = 0
    semantic: int = 0
    removed: int = 0  # unreviewed detections that no longer hold
    suppressed: int = 0  # flags not written: the video's account is allow-listed
    suppressed_flags: list[dict[str, Any]] = field(default_factory=list)
    index_built: bool = False
    model_id: str = ""
    threshold: float = 0.0
    seconds: float = 0.0
    note: str = ""
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def summary(self) -> str:
        text = (
            f"{self.matched} video(s) matched, {self.flags} flag(s) "
            f"({self.copy} copy, {self.semantic} semantic), {self.failed} failed"
        )
        if self.retrying:
            text += f", {self.retrying} to retry"
        if self.removed:
            text += f", {self.removed} stale flag(s) removed"
        if self.suppressed:
            text += f", {self.suppressed} flag(s) suppressed (allow-listed accounts)"
        if self.note:
            text += f"; {self.note}"
        return text


@dataclass
class Decision:
    """The fused verdict for one (video, character) that is flagged."""

    character_id: int
    match_type: str
    score: float
    best_frame_t: float | None
    best_frame_thumb: str | None
    best_reference_id: int | None
    signals: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# reading a video


def decode_vector(blob: bytes, dim: int) -> np.ndarray:
    """Stored bytes -> float32 vector; a vector of another size means re-embedding."""
    try:
        return stored_vectors.decode_vector(blob, dim)
    except stored_vectors.VectorSizeError as exc:
        raise ReembedNeeded(str(exc)) from exc


def load_evidence(
    store: Store, video_id: int, model_id: str, dim: int, data_dir: Path | str | None = None
) -> VideoEvidence:
    """One video's row, frames and region vectors of ``model_id``; ``data_dir``: where the
    stored frame paths lie (for signals that read frame pictures).

    Raises :class:`ReembedNeeded` when the video has frames but no vectors of ``model_id``.
    """
    with store.session() as s:
        video = s.get(Video, video_id)
        if video is None:
            raise LookupError(f"video {video_id} does not exist")
        frames = list(s.scalars(select(Frame).where(Frame.video_id == video_id).order_by(Frame.t)))
        rows = s.execute(
            select(
                Embedding.id,
                Embedding.frame_id,
                Embedding.region,
                Embedding.model_id,
                Embedding.vector,
            )
            .join(Frame, Frame.id == Embedding.frame_id)
            .where(Frame.video_id == video_id)
            .order_by(Embedding.frame_id, Embedding.id)
        ).all()
        ev = VideoEvidence(
            video_id=video.id,
            caption=video.caption or "",
            hashtags=list(video.hashtags or []),
            platform=video.platform or "",
            author=video.author,
            duration_s=video.duration_s,
            ai_label=video.ai_label,
            c2pa_state=video.c2pa_state,
            c2pa_info=dict(video.c2pa_info) if video.c2pa_info else None,
            frames=[
                FrameRow(
                    frame_id=f.id,
                    t=float(f.t),
                    pdq=f.pdq,
                    pdq_quality=f.pdq_quality,
                    thumb_path=f.thumb_path,
                    image_path=f.image_path,
                )
                for f in frames
            ],
            model_id=model_id,
            data_dir=str(data_dir) if data_dir is not None else None,
        )
    position = {f.frame_id: i for i, f in enumerate(ev.frames)}
    mine = [r for r in rows if r.model_id == model_id]
    if frames and not mine:
        others = sorted({r.model_id for r in rows})
        found = f"model {', '.join(others)}" if others else "no model at all"
        raise ReembedNeeded(
            f"re-embed needed: the frames of video {video_id} have vectors from {found}, "
            f"not from the current embedder {model_id}; process the video again with this "
            "embedder (or switch embed.model back)"
        )
    if mine:
        blobs = [r.vector for r in mine]
        if any(not b for b in blobs):  # moved to the archive shards (index.shards)
            blobs = _unpruned(mine, model_id, dim, data_dir)
        ev.vectors = np.stack([decode_vector(b, dim) for b in blobs])
        ev.vector_frame = np.array([position[r.frame_id] for r in mine], dtype=np.int64)
        ev.vector_region = [r.region for r in mine]
    else:
        ev.vectors = np.zeros((0, dim), dtype=np.float32)
    return ev


def _unpruned(rows: list[Any], model_id: str, dim: int, data_dir: Path | str | None) -> list[bytes]:
    """The rows' vectors, those pruned from the database read from the archive shards."""
    from index.shards import fill_vectors

    pruned = [int(r.id) for r in rows if not r.vector]
    held = fill_vectors(data_dir, model_id, dim, pruned) if data_dir is not None else {}
    lost = [i for i in pruned if i not in held]
    if lost:
        raise ReembedNeeded(
            f"re-embed needed: {len(lost)} vector(s) of {model_id} were pruned from the database "
            "and are in no archive shard"
            + ("" if data_dir is not None else " (no data directory given to read shards from)")
        )
    return [r.vector or held[int(r.id)] for r in rows]


# ---------------------------------------------------------------------------------------------
# allow-list


def apply_allow_list(
    video: VideoEvidence, decisions: list[Decision], allow: AllowList
) -> tuple[list[Decision], list[Decision]]:
    """``(kept, suppressed)``: decisions whose character the video's account may show are
    suppressed."""
    kept: list[Decision] = []
    dropped: list[Decision] = []
    for d in decisions:
        (dropped if allow.allows(video.platform, video.author, d.character_id) else kept).append(d)
    return kept, dropped


# ---------------------------------------------------------------------------------------------
# fusion


def run_signals(
    video: VideoEvidence, ri: ReferenceIndex, signals: list[Signal]
) -> dict[str, list[SignalResult]]:
    """Every signal's results for one video."""
    return {sig.name: sig.compare(video, ri.refs, ri.part(sig.name)) for sig in signals}


def _first_matched(
    sigs: dict[str, SignalResult], classes: Sequence[type[Signal]], roles: tuple[str, ...]
) -> SignalResult | None:
    """The matched result of the first signal (in ``classes`` order) with one of ``roles``."""
    for cls in classes:
        r = sigs.get(cls.name)
        if cls.fusion_role in roles and r is not None and r.matched:
            return r
    return None


def fuse(
    cfg: Config,
    video: VideoEvidence,
    ri: ReferenceIndex,
    results: dict[str, list[SignalResult]],
    signals: Sequence[Signal | type[Signal]] | None = None,
) -> list[Decision]:
    """The flagged characters of one video, with their explanation (see module docstring).

    ``signals``: the signals (or classes) that made ``results``, in priority order (default:
    :data:`index.signals.SIGNAL_CLASSES`); each result counts by its class's ``fusion_role``,
    a result of no listed signal only explains."""
    listed = SIGNAL_CLASSES if signals is None else signals
    classes = [s if isinstance(s, type) else type(s) for s in listed]
    by_char: dict[int, dict[str, SignalResult]] = {}
    video_wide: dict[str, SignalResult] = {}
    for name, items in results.items():
        for r in items:
            if r.character_id is None:
                video_wide[name] = r
            else:
                by_char.setdefault(r.character_id, {})[name] = r
    thumbs = {f.t: f.thumb_path for f in video.frames}
    out = []
    for cid, sigs in by_char.items():
        if cid not in ri.refs.characters:
            continue
        has_images = bool(ri.refs.positives(cid))
        copy_src = _first_matched(sigs, classes, (ROLE_COPY,))
        semantic_src = _first_matched(sigs, classes, (ROLE_SEMANTIC,))
        if semantic_src is None and not has_images:
            semantic_src = _first_matched(sigs, classes, (ROLE_SEMANTIC_FALLBACK,))
        if copy_src is None and semantic_src is None:
            continue
        if copy_src is not None:
            primary, match_type = copy_src, COPY
            score = max(copy_src.score, semantic_src.score if semantic_src else 0.0)
        else:
            assert semantic_src is not None
            primary, match_type = semantic_src, SEMANTIC
            score = semantic_src.score
        bonus = sum(
            (
                cls.fusion_bonus
                for cls in classes
                if cls.fusion_role == ROLE_SUPPORT and cls.name in sigs and sigs[cls.name].matched
            ),
            0.0,
        )
        score = min(1.0, score + bonus)
        explanation = {name: r.as_json() for name, r in sigs.items()}
        explanation.update({name: r.as_json() for name, r in video_wide.items()})
        char = ri.refs.characters[cid]
        fusion: dict[str, Any] = {
            "match_type": match_type,
            "decided_by": primary.signal,
            "caption_bonus": bonus,
        }
        for cls in classes:  # the threshold each signal applied (or would apply)
            if cls.fusion_threshold_key is None:
                continue
            r = sigs.get(cls.name)
            detail = cls.threshold_detail
            applied = r.details.get(detail) if r is not None and detail is not None else None
            fusion[cls.fusion_threshold_key] = applied or cls.threshold_default(
                cfg.detect, ri.embedder_id
            )
        fusion.update(
            {
                "calibrated": sorted(name for name, _ in char.thresholds),
                "top_k": cfg.detect.top_k,
                "min_frames": char.min_frames
                if char.min_frames is not None
                else cfg.detect.min_frames,
                "min_seconds": char.min_seconds or 0.0,
                "frames": len(video.frames),
            }
        )
        explanation["fusion"] = fusion
        ref_id = primary.reference_id
        if ref_id is None:  # e.g. a prompt match: name the nearest reference picture
            ref_id = next(
                (
                    sigs[cls.name].reference_id
                    for cls in classes
                    if cls.fusion_role == ROLE_SEMANTIC and cls.name in sigs
                ),
                None,
            )
        out.append(
            Decision(
                character_id=cid,
                match_type=match_type,
                score=round(float(score), 4),
                best_frame_t=primary.frame_t,
                best_frame_thumb=thumbs.get(primary.frame_t)
                if primary.frame_t is not None
                else None,
                best_reference_id=ref_id,
                signals=explanation,
            )
        )
    return out


def detect_video(
    cfg: Config, video: VideoEvidence, ri: ReferenceIndex, signals: list[Signal]
) -> list[Decision]:
    """Signals + fusion for one loaded video (no database writes)."""
    if video.data_dir is None:
        video.data_dir = str(cfg.data_dir)
    return fuse(cfg, video, ri, run_signals(video, ri, signals), signals)


# ---------------------------------------------------------------------------------------------
# writing


def write_decisions(
    store: Store,
    owner: str,
    video_id: int,
    decisions: list[Decision],
    model_id: str,
    lease_s: int,
) -> tuple[int, int] | None:
    """Upsert the video's detections and mark it ``matched``, in one transaction under its
    lease; ``(written, removed)``, or None when the lease was lost (nothing written)."""
    try:
        with queue.leased(store, owner, video_id, lease_s) as s:
            return _write_decisions(s, video_id, decisions, model_id)
    except queue.LeaseLost:
        return None


def _write_decisions(
    s: Any, video_id: int, decisions: list[Decision], model_id: str
) -> tuple[int, int]:
    """Inside the lease-checked transaction ``s``: upsert detections, drop unreviewed stale
    ones, and move the video to ``matched`` (which ends its lease)."""
    existing = {
        d.character_id: d
        for d in s.scalars(select(Detection).where(Detection.video_id == video_id))
    }
    for dec in decisions:
        det = existing.pop(dec.character_id, None)
        if det is None:
            det = Detection(video_id=video_id, character_id=dec.character_id)
            s.add(det)
        det.score = dec.score
        det.match_type = dec.match_type
        det.signals = dec.signals
        det.best_frame_t = dec.best_frame_t
        det.best_frame_thumb = dec.best_frame_thumb
        det.best_reference_id = dec.best_reference_id
        det.model_id = model_id
    removed = 0
    for stale in existing.values():
        if (stale.review_state or "new") == "new":
            s.delete(stale)
            removed += 1
    queue.set_state(s, video_id, VideoState.MATCHED)
    return len(decisions), removed


# ---------------------------------------------------------------------------------------------
# the loop


def detect_pending(
    cfg: Config,
    store: Store,
    embedder: Any,
    *,
    owner: str | None = None,
    limit: int | None = None,
    progress: bool = True,
    video_ids: list[int] | None = None,
    until: threading.Event | None = None,
) -> DetectStats:
    """Match every ``embedded`` video (at most ``limit``) against the registry.

    ``video_ids`` restricts claiming to those videos (others stay ``embedded``).
    The reference index is loaded (or rebuilt when the registry or embedder changed) once.
    With no character registered nothing is claimed: the videos wait in ``embedded``.

    ``until`` makes it follow a processing run in the same process: while the event is not
    set, an empty claim waits briefly and claims again (videos become ``embedded`` as the run
    goes); once it is set, what is left is matched and the call returns. Matching then fills
    the cores that downloads and decoding leave idle, instead of starting after the run.
    """
    t0 = time.monotonic()
    stats = DetectStats(model_id=embedder.id, threshold=embed_threshold(cfg.detect, embedder.id))
    owner = owner or queue.worker_id()
    with store.session() as s:
        registered = s.scalar(select(func.count()).select_from(Character)) or 0
    if not registered:
        stats.note = "no characters registered; videos stay 'embedded' until one is"
        stats.seconds = round(time.monotonic() - t0, 3)
        return stats
    signals = make_signals(cfg.detect, embedder)
    ri = load_or_build(cfg, store, embedder, signals)
    stats.index_built = ri.built
    allow = AllowList.load(store)
    precision = PrecisionModel.load(store, embedder.id)
    with store.session() as s:
        q = select(func.count()).select_from(Video).where(Video.state == VideoState.EMBEDDED)
        if video_ids is not None:
            q = q.where(Video.id.in_(video_ids))
        pending = s.scalar(q)
    total = min(pending or 0, limit) if limit is not None else (pending or 0)
    # following a run, the total is not known yet: the bar counts
    bar = tqdm(
        total=None if until is not None else total,
        desc="match",
        unit="video",
        disable=not progress,
    )
    heartbeat = workers.Heartbeat(store, owner, role="match").start()  # dead: leases free at once
    pool = ThreadPoolExecutor(MATCH_THREADS, thread_name_prefix="match")
    try:
        while limit is None or stats.claimed < limit:
            n = CLAIM_CHUNK if limit is None else min(CLAIM_CHUNK, limit - stats.claimed)
            ids = queue.claim(
                store,
                owner,
                n,
                cfg.process.lease_s,
                states=(VideoState.EMBEDDED,),
                ids=video_ids,
            )
            if not ids:
                if until is None or until.is_set():
                    break
                # wait with reads only: an empty claim would take SQLite's write lock
                while not until.wait(FOLLOW_POLL_S) and not queue.claimable(
                    store, (VideoState.EMBEDDED,), video_ids
                ):
                    pass
                continue
            stats.claimed += len(ids)
            decided: list[tuple[int, Future[Any] | BaseException]] = []
            for vid in ids:  # evidence read here, decided in the pool
                try:
                    video = load_evidence(store, vid, embedder.id, embedder.dim, cfg.data_dir)
                except Exception as exc:  # noqa: BLE001 - recorded against the video below
                    decided.append((vid, exc))
                    continue
                decided.append(
                    (vid, pool.submit(_decide, cfg, video, ri, signals, allow, precision))
                )
            for vid, job in decided:
                try:
                    if isinstance(job, BaseException):
                        raise job
                    _write_one(cfg, store, embedder, owner, vid, job.result(), stats)
                except Exception as exc:  # noqa: BLE001 - one bad video must not stop the batch
                    _match_failed(cfg, store, owner, vid, exc, stats)
                bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        heartbeat.stop()
        bar.close()
    stats.seconds = round(time.monotonic() - t0, 3)
    return stats


def _decide(
    cfg: Config,
    video: VideoEvidence,
    ri: ReferenceIndex,
    signals: list[Signal],
    allow: AllowList | None,
    precision: PrecisionModel | None = None,
) -> tuple[list[Decision], list[dict[str, Any]]]:
    """``(decisions, the flags the allow-list dropped)`` of one video's evidence (no store
    access), each decision with its estimated precision when ``precision`` is given."""
    decisions = detect_video(cfg, video, ri, signals)
    if precision is not None:
        precision.annotate(decisions)
    if allow is None or not allow.entries:
        return decisions, []
    decisions, dropped = apply_allow_list(video, decisions, allow)
    suppressed = [
        {
            "video_id": video.video_id,
            "character_id": d.character_id,
            "platform": video.platform,
            "author": video.author,
            "match_type": d.match_type,
            "score": d.score,
        }
        for d in dropped
    ]
    return decisions, suppressed


def _write_one(
    cfg: Config,
    store: Store,
    embedder: Any,
    owner: str,
    vid: int,
    decided: tuple[list[Decision], list[dict[str, Any]]],
    stats: DetectStats,
) -> None:
    """Store one video's decisions under its lease and count them."""
    decisions, suppressed = decided
    stats.suppressed += len(suppressed)
    stats.suppressed_flags.extend(suppressed)
    written = write_decisions(store, owner, vid, decisions, embedder.id, cfg.process.lease_s)
    if written is None:
        stats.lost += 1
        return
    stats.matched += 1
    stats.flags += written[0]
    stats.removed += written[1]
    stats.copy += sum(d.match_type == COPY for d in decisions)
    stats.semantic += sum(d.match_type == SEMANTIC for d in decisions)


def _match_failed(
    cfg: Config, store: Store, owner: str, vid: int, exc: Exception, stats: DetectStats
) -> None:
    """Record a video that could not be matched: re-embedding needed (final) or an error
    (retried up to ``max_attempts``)."""
    if isinstance(exc, ReembedNeeded):
        outcome = queue.fail(
            store, owner, vid, str(exc), transient=False, max_attempts=cfg.process.max_attempts
        )
        stats.failed += outcome == VideoState.FAILED
        stats.errors.append(f"video {vid}: {exc}")
        return
    log.error("matching video %s failed", vid, exc_info=exc)
    outcome = queue.fail(
        store,
        owner,
        vid,
        f"match: {type(exc).__name__}: {exc}",
        transient=True,
        max_attempts=cfg.process.max_attempts,
    )
    if outcome == VideoState.FAILED:
        stats.failed += 1
    elif outcome == "retry":
        stats.retrying += 1
    stats.errors.append(f"video {vid}: {type(exc).__name__}: {exc}")


def rematch(store: Store, video_ids: list[int] | None = None) -> int:
    """Put ``matched`` videos back to ``embedded`` (after the registry or thresholds changed),
    so the next :func:`detect_pending` matches them again; returns how many."""
    with store.session() as s:
        q = update(Video).where(Video.state == VideoState.MATCHED)
        if video_ids:
            q = q.where(Video.id.in_(video_ids))
        res = s.execute(
            q.values(state=VideoState.EMBEDDED, next_attempt_at=None).execution_options(
                synchronize_session=False
            )
        )
        return res.rowcount or 0
