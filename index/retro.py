"""The retroactive scan: when a character is registered or gets new reference images, find the
past videos that may show it and match them again.

The archive index (:mod:`index.archive`) is only a candidate generator: it is brought up to
date, searched with the new references' embeddings (each as given and mirrored, plus the
character's text prompts when the embedder has a text tower), and every already matched video
with a frame region among the ``k`` nearest of any query becomes a candidate. ``k`` is
generous on purpose (recall matters here, precision comes next): the candidates are put back
to ``embedded`` (:func:`index.matcher.rematch`) and matched again by the real matcher
(:func:`index.matcher.detect_pending` restricted to them), so the same signals, fusion,
thresholds, policies and allow-lists decide as for a new video. Nothing is flagged here.

The search runs shard by shard (:mod:`index.shards`): :func:`retro_scan_shard` finds the ``k``
nearest vectors of one shard (exactly, or through its IVF-PQ codes re-ranked by its exact
vectors once the archive is large) and reads nothing but that shard's files, so a task engine
can run one job per shard; :func:`index.shards.merge_topk` keeps the best ``k`` over all shards.
Small archives are scanned exactly, so the candidates are those of an exact search.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from sqlalchemy import select

from charwatch.config import Config
from index.archive import ArchiveIndex
from index.matcher import detect_pending, rematch
from index.refindex import load_reference_image
from index.shards import ShardStore, merge_topk
from index.signals import ReferenceImage
from storage.db import Store
from storage.models import Character, Detection, Embedding, Frame, Reference, Video, VideoState

log = logging.getLogger(__name__)

RETRO_K = 512  # nearest stored region vectors per query
RETRO_MAX_K = 4096


@dataclass
class RetroResult:
    """What one retroactive scan did."""

    character_ids: list[int] = field(default_factory=list)
    queries: int = 0
    archive_vectors: int = 0
    archive_added: int = 0
    k: int = 0
    shards: int = 0  # shards scanned
    candidates: list[int] = field(default_factory=list)  # video ids matched again
    created: list[dict[str, Any]] = field(default_factory=list)  # new detections
    removed: list[dict[str, Any]] = field(default_factory=list)  # unreviewed flags dropped
    detect: Any = None  # the DetectStats of the re-match
    seconds: float = 0.0
    note: str = ""

    def summary(self) -> str:
        if self.note and not self.candidates:
            return self.note
        text = f"{len(self.candidates)} past video(s) re-checked, {len(self.created)} newly flagged"
        if self.removed:
            text += f", {len(self.removed)} earlier flag(s) no longer hold"
        return text + f" ({self.archive_vectors} archived frame vectors searched)"


def _load_references(
    cfg: Config, store: Store, character_ids: Sequence[int], reference_ids: Sequence[int] | None
) -> list[tuple[ReferenceImage, Image.Image]]:
    with store.session() as s:
        q = select(Reference).where(Reference.character_id.in_(list(character_ids)))
        if reference_ids is not None:
            q = q.where(Reference.id.in_(list(reference_ids)))
        rows = list(s.scalars(q.order_by(Reference.id)))
        refs = [ReferenceImage.from_row(r) for r in rows]
    out = []
    for ref in refs:
        img = load_reference_image(cfg, ref)
        if img is not None:
            out.append((ref, img))
    return out


def _detections(store: Store, video_ids: Sequence[int]) -> dict[tuple[int, int], dict[str, Any]]:
    out: dict[tuple[int, int], dict[str, Any]] = {}
    ids = list(video_ids)
    for i in range(0, len(ids), 500):
        with store.session() as s:
            rows = s.execute(
                select(Detection, Character.name, Video.url)
                .join(Character, Character.id == Detection.character_id)
                .join(Video, Video.id == Detection.video_id)
                .where(Detection.video_id.in_(ids[i : i + 500]))
            ).all()
        for d, name, url in rows:
            out[(d.video_id, d.character_id)] = {
                "detection_id": d.id,
                "video_id": d.video_id,
                "url": url,
                "character_id": d.character_id,
                "character": name,
                "score": d.score,
                "match_type": d.match_type,
                "review_state": d.review_state,
            }
    return out


def candidate_videos(store: Store, embedding_ids: np.ndarray) -> list[int]:
    """The already matched videos that own any of these embedding rows."""
    wanted = sorted({int(i) for i in np.asarray(embedding_ids).ravel() if int(i) >= 0})
    found: set[int] = set()
    for i in range(0, len(wanted), 500):
        with store.session() as s:
            found.update(
                s.scalars(
                    select(Frame.video_id)
                    .join(Embedding, Embedding.frame_id == Frame.id)
                    .join(Video, Video.id == Frame.video_id)
                    .where(
                        Embedding.id.in_(wanted[i : i + 500]),
                        Video.state == VideoState.MATCHED,
                    )
                    .distinct()
                )
            )
    return sorted(found)


def retro_queries(
    cfg: Config,
    store: Store,
    embedder: Any,
    character_ids: Sequence[int],
    *,
    reference_ids: Sequence[int] | None = None,
    prompts: Sequence[str] = (),
) -> np.ndarray:
    """The query vectors: each usable reference image as given and mirrored, then the
    prompts when the embedder has a text tower (``(0, dim)`` when there is none)."""
    refs = _load_references(cfg, store, character_ids, reference_ids)
    images: list[Image.Image] = []
    for _, img in refs:
        images.extend((img, ImageOps.mirror(img)))
    parts = []
    if images:
        parts.append(np.asarray(embedder.embed_images(images), dtype=np.float32))
    texts = [p for p in prompts if p.strip()]
    if texts and getattr(embedder, "has_text", False):
        parts.append(np.asarray(embedder.embed_texts(texts), dtype=np.float32))
    if not parts:
        return np.zeros((0, embedder.dim), np.float32)
    return np.concatenate(parts)


def retro_scan_shard(
    cfg: Config,
    embedder_id: str,
    dim: int,
    shard: str,
    queries: np.ndarray,
    k: int,
    *,
    shards: ShardStore | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, embedding ids)``: the ``k`` nearest vectors of one shard per query (one job
    of a sharded scan; it reads only that shard's files)."""
    st = shards if shards is not None else ShardStore.open(cfg, embedder_id, dim)
    return st.search_shard(shard, queries, k)


def scan_shards(
    cfg: Config,
    embedder_id: str,
    dim: int,
    queries: np.ndarray,
    k: int,
    *,
    shards: ShardStore | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Every shard scanned (:func:`retro_scan_shard`) and the best ``k`` kept per query."""
    st = shards if shards is not None else ShardStore.open(cfg, embedder_id, dim)
    parts = [
        retro_scan_shard(cfg, embedder_id, dim, sh.name, queries, k, shards=st) for sh in st.shards
    ]
    if not parts:
        return (
            np.full((len(queries), k), -np.inf, np.float32),
            np.full((len(queries), k), -1, np.int64),
        )
    return merge_topk(parts, k)


def retro_scan(
    cfg: Config,
    store: Store,
    embedder: Any,
    character_ids: Sequence[int],
    *,
    reference_ids: Sequence[int] | None = None,
    prompts: Sequence[str] = (),
    k: int = RETRO_K,
    progress: bool = False,
) -> RetroResult:
    """Search the archive with the given characters' references (``reference_ids``: only
    those; None: all of them) and ``prompts``, and re-match the candidate videos.

    Returns the detections the re-match created (for any of ``character_ids``) and the
    unreviewed ones it removed (a new negative reference can retire a false flag).
    """
    t0 = time.monotonic()
    res = RetroResult(character_ids=list(character_ids))
    arc = ArchiveIndex.load_or_create(cfg, embedder.id, embedder.dim)
    res.archive_added = arc.update(store)
    if arc.dirty and arc.ready and arc.ntotal:
        arc.save()
    res.archive_vectors = arc.ntotal
    if arc.ntotal == 0:
        res.note = "no archived frames of this embedder yet: nothing to scan"
        res.seconds = round(time.monotonic() - t0, 3)
        return res
    queries = retro_queries(
        cfg, store, embedder, character_ids, reference_ids=reference_ids, prompts=prompts
    )
    if not len(queries):
        res.note = "no usable reference image or prompt to search with"
        res.seconds = round(time.monotonic() - t0, 3)
        return res
    res.queries = len(queries)
    res.k = max(1, min(int(k), RETRO_MAX_K, arc.ntotal))
    res.shards = len(arc.shards.shards)
    _, ids = scan_shards(cfg, embedder.id, embedder.dim, queries, res.k, shards=arc.shards)
    res.candidates = candidate_videos(store, ids)
    if not res.candidates:
        res.note = "no past video is near the new references"
        res.seconds = round(time.monotonic() - t0, 3)
        return res
    before = _detections(store, res.candidates)
    rematch(store, res.candidates)
    res.detect = detect_pending(cfg, store, embedder, video_ids=res.candidates, progress=progress)
    after = _detections(store, res.candidates)
    wanted = set(character_ids)
    res.created = [d for key, d in after.items() if key not in before and key[1] in wanted]
    res.removed = [d for key, d in before.items() if key not in after]
    res.seconds = round(time.monotonic() - t0, 3)
    log.info("retroactive scan: %s", res.summary())
    return res


def has_archived_frames(store: Store) -> bool:
    """True when any matched video has stored frame vectors (a scan could find something)."""
    with store.session() as s:
        found = s.scalar(
            select(Embedding.id)
            .join(Frame, Frame.id == Embedding.frame_id)
            .join(Video, Video.id == Frame.video_id)
            .where(Video.state == VideoState.MATCHED)
            .limit(1)
        )
    return found is not None
