"""Media the decoder cannot use ends as a clear error, never a crash or a hang."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from charwatch.config import ProcessConfig
from pipeline.frames import FramesError, sample_frames
from pipeline.media import ffmpeg_exe


def _clip(path: Path, codec_args: list[str]) -> Path:
    subprocess.run(
        [
            ffmpeg_exe(),
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=180x320:rate=10:duration=2",
            *codec_args,
            str(path),
        ],
        check=True,
    )
    return path


def test_unsupported_codec_is_a_clear_failure(tmp_path: Path) -> None:
    good = _clip(tmp_path / "good.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p"])
    assert sample_frames(good, ProcessConfig())  # the same file decodes before the damage
    data = good.read_bytes()
    assert b"avc1" in data
    bad = tmp_path / "unknown_codec.mp4"
    bad.write_bytes(data.replace(b"avc1", b"zz99").replace(b"avcC", b"zzzC"))
    with pytest.raises(FramesError, match="unsupported video codec"):
        sample_frames(bad, ProcessConfig())
