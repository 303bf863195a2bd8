"""The object store behind media and frames: a local folder and a real S3-compatible server."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.blobs import Blobs


def _exercise(blobs: Blobs, tmp_path: Path) -> None:
    src = tmp_path / "src.jpg"
    src.write_bytes(b"\xff\xd8frame-one")
    blobs.put_file(src, "frames/12/a3f0/0001.jpg")
    blobs.put_bytes(b"thumb", "frames/12/a3f0/0001.thumb.jpg")
    assert blobs.exists("frames/12/a3f0/0001.jpg")
    assert not blobs.exists("frames/12/a3f0/0002.jpg")
    assert blobs.get_bytes("frames/12/a3f0/0001.thumb.jpg") == b"thumb"
    assert blobs.local_path("frames/12/a3f0/0001.jpg").read_bytes() == b"\xff\xd8frame-one"
    assert blobs.list("frames/12") == [
        "frames/12/a3f0/0001.jpg",
        "frames/12/a3f0/0001.thumb.jpg",
    ]
    blobs.delete_prefix("frames/12/a3f0")
    assert blobs.list("frames/12") == [] and not blobs.exists("frames/12/a3f0/0001.jpg")
    with pytest.raises(FileNotFoundError):
        blobs.local_path("frames/12/a3f0/0001.jpg")
    with pytest.raises(ValueError):
        blobs.put_bytes(b"x", "../outside")


def test_local_root_keeps_keys_as_relative_paths(tmp_path: Path) -> None:
    blobs = Blobs(tmp_path / "data")
    _exercise(blobs, tmp_path)
    blobs.put_bytes(b"v", "media/tiktok/1.mp4")
    assert (tmp_path / "data" / "media" / "tiktok" / "1.mp4").read_bytes() == b"v"
    assert not list((tmp_path / "data").rglob("*.part"))


def test_s3_root_on_a_real_server(tmp_path: Path, s3_bucket) -> None:
    root, options = s3_bucket
    blobs = Blobs(root, cache_dir=tmp_path / "cache", options=options)
    _exercise(blobs, tmp_path)
    # a second machine (another cache) sees what the first one wrote
    blobs.put_bytes(b"shared", "media/youtube/x.mp4")
    other = Blobs(root, cache_dir=tmp_path / "cache2", options=options)
    assert other.local_path("media/youtube/x.mp4").read_bytes() == b"shared"
    assert other.local_path("media/youtube/x.mp4").is_relative_to(tmp_path / "cache2")
