"""Media and frames in a shared object store (a real S3-compatible server on 127.0.0.1).

Machine A processes videos with ``data_dir = s3://...``; machine B, with an empty local folder,
matches them, writes the report and applies retention, reading what it needs from the store.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from charwatch.config import Config, StorageConfig
from storage import Detection, Frame, Store, Video, VideoState
from storage.blobs import Blobs
from tests.conftest import seed_bank


def _machine(tmp: Path, name: str, db: str, root: str, options: dict[str, str]) -> Config:
    cfg = Config(
        storage=StorageConfig(
            url=db,
            data_dir=root,
            work_dir=str(tmp / name),
            s3_endpoint_url=options["endpoint_url"],
        )
    )
    for p in ("tiktok", "youtube", "instagram"):
        plat = cfg.platforms.get(p)
        plat.download_delay = plat.sleep_interval = 0.0
        plat.max_downloads_per_hour = 0
    cfg.process.download_retries = 0
    return cfg


@pytest.mark.slow  # process, match, report and retention on two machines
def test_two_machines_share_media_and_frames_through_s3(
    tmp_path: Path, s3_bucket, fixture_server, embedder, bank_file
) -> None:
    from charwatch.demo import register_demo_characters
    from index.matcher import detect_pending
    from pipeline.retention import apply_retention
    from pipeline.worker import process_pending
    from reports import write_report

    root, options = s3_bucket
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    a = _machine(tmp_path, "a", db, root, options)
    b = _machine(tmp_path, "b", db, root, options)
    store = Store(db)
    register_demo_characters(a, store)
    ids = fixture_server.catalog.demo_video_ids("tiktok")[:3]
    with store.session() as s:
        for vid in ids:
            v = fixture_server.catalog.videos[("tiktok", vid)]
            s.add(Video(platform="tiktok", platform_id=vid, url=fixture_server.url(v.path)))

    stats = process_pending(a, store, embedder, progress=False)
    assert stats.processed == 3 and stats.failed == 0
    objects = Blobs(root, cache_dir=tmp_path / "check", options=options)
    with store.session() as s:
        frames = list(s.scalars(select(Frame)))
        media = [v.media_path for v in s.scalars(select(Video))]
    assert frames and all(objects.exists(f.image_path) for f in frames)
    assert all(objects.exists(f.thumb_path) for f in frames)
    assert all(m and objects.exists(m) for m in media)

    # machine B has none of these files locally
    assert not (tmp_path / "b").exists()
    seed_bank(b, bank_file)  # its reference index reads the session's background bank
    detect = detect_pending(b, store, embedder, progress=False)
    assert detect.matched == 3
    with store.session() as s:
        flagged = set(s.scalars(select(Detection.video_id)))
        states = set(s.scalars(select(Video.state)))
    assert flagged and states == {VideoState.MATCHED}
    report = write_report(b, store)
    html = Path(report.html_path).read_text(encoding="utf-8")
    assert "data:image/jpeg;base64," in html  # thumbnails fetched from the object store
    assert any((tmp_path / "b" / "frames").rglob("*.jpg"))

    deleted = apply_retention(b, store)  # unflagged media go, here and in the store
    with store.session() as s:
        kept = {v.id: v.media_path for v in s.scalars(select(Video))}
    for vid, path in kept.items():
        assert (path is not None) == (vid in flagged)
    gone = [m for m in media if m not in kept.values()]
    assert all(not objects.exists(m) for m in gone)
    assert deleted <= len(gone)
