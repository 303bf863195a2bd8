"""The re-embed path after an embedding-model change.

Vectors of two models are never compared: the matcher refuses a video whose frames carry only
another model's vectors ("re-embed needed"). :func:`reembed` is the clear way out:

* every processed video whose frames lack vectors of the current model is sent back in the
  work queue: to ``frames`` when all its frame JPEGs (``Frame.image_path``) are still on disk
  (the worker embeds exactly those pixels again, nothing is downloaded), else to
  ``downloaded`` when the media file is still there (frames are sampled again), else to
  ``discovered`` (downloaded again);
* every embedding row of another model is deleted, so nothing old is left to mix in;
* videos leased by a running worker are left alone (counted as ``busy``); run it again later.

The next ``charwatch process`` then embeds with the current model and matches as usual.
Attempts and errors of the reset videos are cleared; their detections stay (the re-match
updates them, and drops unreviewed ones that no longer hold).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select, update

from charwatch.config import Config
from storage.blobs import data_file
from storage.db import Store
from storage.models import Embedding, Frame, Video, VideoState, utcnow

REEMBED_FROM = (VideoState.EMBEDDED, VideoState.MATCHED, VideoState.FAILED)
_CHUNK = 500


@dataclass
class ReembedStats:
    """What :func:`reembed` did (or would do, with ``dry_run``)."""

    model_id: str
    dry_run: bool = False
    other_models: dict[str, int] = field(default_factory=dict)  # rows per other model
    rows_deleted: int = 0
    to_frames: int = 0
    to_downloaded: int = 0
    to_discovered: int = 0
    busy: int = 0
    video_ids: list[int] = field(default_factory=list)

    @property
    def videos(self) -> int:
        return self.to_frames + self.to_downloaded + self.to_discovered

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "dry_run": self.dry_run,
            "other_models": dict(self.other_models),
            "rows_deleted": self.rows_deleted,
            "videos": self.videos,
            "to_frames": self.to_frames,
            "to_downloaded": self.to_downloaded,
            "to_discovered": self.to_discovered,
            "busy": self.busy,
        }

    def summary(self) -> str:
        verb = "would be" if self.dry_run else "were"
        text = (
            f"{self.videos} video(s) {verb} queued for re-embedding with {self.model_id} "
            f"({self.to_frames} from stored frames, {self.to_downloaded} re-sampled from kept "
            f"media, {self.to_discovered} downloaded again); "
            f"{self.rows_deleted} vector(s) of other models {verb} deleted"
        )
        if self.busy:
            text += f"; {self.busy} video(s) are being processed now and were left alone"
        return text


def _frames_on_disk(cfg: Config, paths: list[str | None]) -> bool:
    return bool(paths) and all(p and data_file(cfg.data_dir, p).is_file() for p in paths)


def videos_needing_reembed(store: Store, model_id: str) -> list[int]:
    """Processed videos (embedded, matched, or failed for want of vectors) with frames that
    have no vector of ``model_id``."""
    with store.session() as s:
        covered = select(Embedding.frame_id).where(Embedding.model_id == model_id)
        q = (
            select(Video.id, Video.state, Video.error)
            .join(Frame, Frame.video_id == Video.id)
            .where(Frame.id.not_in(covered), Video.state.in_(REEMBED_FROM))
            .distinct()
            .order_by(Video.id)
        )
        rows = s.execute(q).all()
    return [
        vid
        for vid, state, error in rows
        if state != VideoState.FAILED or "re-embed" in (error or "")
    ]


def reembed(cfg: Config, store: Store, model_id: str, *, dry_run: bool = False) -> ReembedStats:
    """Queue the videos lacking ``model_id`` vectors and delete other models' vectors."""
    stats = ReembedStats(model_id=model_id, dry_run=dry_run)
    with store.session() as s:
        stats.other_models = {
            m: int(n)
            for m, n in s.execute(
                select(Embedding.model_id, func.count())
                .where(Embedding.model_id != model_id)
                .group_by(Embedding.model_id)
            )
        }
    ids = videos_needing_reembed(store, model_id)
    now = utcnow()
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        with store.session() as s:
            videos = {v.id: v for v in s.scalars(select(Video).where(Video.id.in_(chunk)))}
            frame_paths: dict[int, list[str | None]] = {}
            for vid, path in s.execute(
                select(Frame.video_id, Frame.image_path).where(Frame.video_id.in_(chunk))
            ):
                frame_paths.setdefault(vid, []).append(path)
            for vid in chunk:
                v = videos[vid]
                if v.lease_owner and v.lease_expires and v.lease_expires > now:
                    stats.busy += 1
                    continue
                if _frames_on_disk(cfg, frame_paths.get(vid, [])):
                    target = VideoState.FRAMES
                    stats.to_frames += 1
                elif v.media_path and data_file(cfg.data_dir, v.media_path).is_file():
                    target = VideoState.DOWNLOADED
                    stats.to_downloaded += 1
                else:
                    target = VideoState.DISCOVERED
                    stats.to_discovered += 1
                stats.video_ids.append(vid)
                if dry_run:
                    continue
                s.execute(
                    update(Video)
                    .where(Video.id == vid)
                    .values(
                        state=target,
                        attempts=0,
                        error=None,
                        next_attempt_at=None,
                        lease_owner=None,
                        lease_expires=None,
                    )
                    .execution_options(synchronize_session=False)
                )
    stats.rows_deleted = sum(stats.other_models.values())
    if not dry_run and stats.rows_deleted:
        with store.session() as s:
            res = s.execute(
                delete(Embedding)
                .where(Embedding.model_id != model_id)
                .execution_options(synchronize_session=False)
            )
            stats.rows_deleted = int(res.rowcount or 0)
    return stats
