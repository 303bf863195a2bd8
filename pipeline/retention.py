"""Media retention: delete downloaded videos after matching unless they are evidence."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import exists, select

from charwatch.config import Config
from pipeline.media import objects_for
from storage import Detection, Store, Video, VideoState
from storage.blobs import data_file


def apply_retention(cfg: Config, store: Store) -> int:
    """Delete media of matched videos per ``process.keep_media``; returns files deleted.

    ``flagged`` (default) keeps the files of videos with a detection as evidence,
    ``all`` keeps everything, ``none`` deletes every processed file.
    """
    policy = cfg.process.keep_media
    if policy == "all":
        return 0
    if policy not in ("flagged", "none"):
        raise ValueError(f"process.keep_media must be flagged, all or none, not {policy!r}")
    deleted = 0
    objects = objects_for(cfg)
    with store.session() as s:
        q = select(Video).where(Video.state == VideoState.MATCHED, Video.media_path.is_not(None))
        if policy == "flagged":
            q = q.where(~exists().where(Detection.video_id == Video.id))
        for video in s.scalars(q):
            stored = video.media_path or ""
            path = data_file(cfg.data_dir, stored, fetch=False)
            if path.is_file():
                path.unlink()
                deleted += 1
            if objects is not None and not Path(stored).is_absolute():
                objects.delete(stored)
            video.media_path = None
    return deleted
