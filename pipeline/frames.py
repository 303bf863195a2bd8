"""Sample the frames of a video that matter, with their real timestamps.

One ffmpeg pass (built with ffmpeg-python) decodes the video and keeps candidate frames: the
first frame, scene cuts and keyframes (at least half a step after the previous candidate) and
regular coverage (the first frame of each new time bucket of one step, also at least half a
step after the previous candidate). Only the candidates are then downscaled to a short side of
``frame_short_side`` and converted to RGB: the scene score is taken on the decoded frames, so
the scaler runs on a handful of frames instead of all of them (measured: 1.4 -> 0.6 CPU s on an
8 s 720x1280 30 fps short). ``showinfo`` reports each candidate's real ``pts_time`` and key
flag on stderr, ``metadata`` its scene score; frames come back as PPM images over a pipe, never
touching the disk.

H.264 and HEVC are decoded with ``-skip_frame noref``: pictures that no other picture
references (most B-frames of an x264 stream, about half of all frames) are not decoded, so the
candidates come from the other frames, at most a frame or two (<= 0.07 s at 30 fps) after the
time a full decode would pick; every decoded picture is bit-identical to a full decode. This
cuts decoding by ~40% (0.6 -> 0.4 CPU s). (``bidir`` would skip all B-frames, but x264's
referenced B-frames then go missing and later pictures decode wrong, silently.) When that pass
reports damage or yields no frame, the video is decoded again in full, so damaged files are
judged exactly as before.

Then, per time bucket of one step (``frame_interval_s``, widened so that at most ``max_frames``
buckets cover the video), the best candidate is kept: a scene cut before a keyframe before a
plain frame. Near-identical frames (PDQ distance <= ``DEDUPE_BITS``) and flat frames (black
fades) are dropped. A truncated or corrupt file raises :class:`FramesError` with the reason.
"""

from __future__ import annotations

import io
import math
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np
from PIL import Image

from charwatch.config import ProcessConfig
from pipeline.hashing import hamming, pdq
from pipeline.media import ffmpeg_exe, probe

SCENE_THRESHOLD = 0.3
DEDUPE_BITS = 10  # PDQ distance at or below which two frames count as the same picture
FLAT_STD = 3.0  # pixel standard deviation below which a frame is flat (black/white fade)
MIN_COVERAGE = 0.9  # share of the duration a damaged file must still decode to be kept
DECODER_THREADS = 1  # one thread per ffmpeg: least CPU per video; run videos side by side
SKIP_NONREF_CODECS = frozenset({"h264", "hevc"})  # decoders that honour skip_frame noref

_SHOWINFO = re.compile(r"Parsed_showinfo.*?\bn:\s*(\d+).*?\bpts_time:\s*([-\d.eE+]+).*?iskey:(\d)")
_SCENE = re.compile(r"lavfi\.scene_score=([\d.]+)")
_METADATA_FRAME = re.compile(r"Parsed_metadata.*?\bframe:\s*\d+\s+pts:\s*\S+\s+pts_time:\s*(\S+)")
_DAMAGE = (
    "partial file",
    "Invalid NAL unit",
    "corrupt input packet",
    "Packet corrupt",
    "Error while decoding",
    "Decoding error",
    "error reading header",
    "Invalid data found",
)


class FramesError(Exception):
    """The file has no decodable video (corrupt, truncated, audio-only, timed out)."""


@dataclass
class SampledFrame:
    """A decoded frame at ``t`` seconds; ``kind`` is why it was picked (scene, key, grid)."""

    t: float
    image: Image.Image
    kind: str = "grid"
    scene: float = 0.0
    pdq: str | None = None
    pdq_quality: int | None = None


def _scale_args(short_side: int) -> dict[str, str]:
    s = int(short_side)
    return {
        "w": f"if(gte(iw,ih),-2,min({s},iw))",
        "h": f"if(gte(iw,ih),min({s},ih),-2)",
    }


def _select_expr(step: float) -> str:
    half = step / 2
    bucket = f"floor(t/{step:.4f}+1e-6)"
    prev_bucket = f"floor(prev_selected_t/{step:.4f}+1e-6)"
    return (
        "isnan(prev_selected_t)"
        f"+gte(t-prev_selected_t,{half:.4f})"
        f"*(gt({bucket},{prev_bucket})+gt(scene,{SCENE_THRESHOLD})+key)"
    )


def _read_ppm(stream: io.BufferedReader) -> Image.Image | None:
    """One binary PPM (P6) image from the pipe; None at end of stream."""
    tokens: list[bytes] = []
    while len(tokens) < 4:
        tok = b""
        while True:
            ch = stream.read(1)
            if not ch:
                if tokens or tok:
                    raise FramesError("ffmpeg output ended inside an image header")
                return None
            if ch == b"#":
                stream.readline()
                continue
            if ch.isspace():
                if tok:
                    break
                continue
            tok += ch
        tokens.append(tok)
    if tokens[0] != b"P6":
        raise FramesError(f"unexpected image format from ffmpeg: {tokens[0]!r}")
    w, h, maxval = int(tokens[1]), int(tokens[2]), int(tokens[3])
    if maxval != 255:
        raise FramesError(f"unexpected PPM depth {maxval}")
    size = w * h * 3
    data = stream.read(size)
    if len(data) != size:
        raise FramesError("ffmpeg output ended inside an image")
    return Image.frombuffer("RGB", (w, h), data, "raw", "RGB", 0, 1)


def _drain(pipe: io.BufferedReader, sink: list[str]) -> None:
    for raw in iter(pipe.readline, b""):
        sink.append(raw.decode("utf-8", "replace").rstrip())


def _decode_candidates(
    path: Path, pcfg: ProcessConfig, step: float, *, skip_nonref: bool, timeout_s: float
) -> tuple[list[SampledFrame], list[str]]:
    """Candidate frames (downscaled RGB) and ffmpeg's log lines, from one decoding pass."""
    # global options go before the input: ffmpeg ignores options after the last output
    in_opts: dict[str, str | int | None] = {"threads": DECODER_THREADS}
    if skip_nonref:
        in_opts["skip_frame"] = "noref"
    graph = (
        ffmpeg.input(
            str(path), nostdin=None, hide_banner=None, nostats=None, loglevel="info", **in_opts
        )
        .video.filter("select", _select_expr(step))
        .filter("scale", **_scale_args(pcfg.frame_short_side))
        .filter("metadata", mode="print", key="lavfi.scene_score")
        .filter("showinfo")
        .output("pipe:", format="image2pipe", vcodec="ppm", fps_mode="passthrough")
    )
    proc = graph.run_async(cmd=ffmpeg_exe(), pipe_stdout=True, pipe_stderr=True)
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout_s, kill)
    lines: list[str] = []
    reader = threading.Thread(target=_drain, args=(proc.stderr, lines), daemon=True)
    timer.start()
    reader.start()
    images: list[Image.Image] = []
    try:
        assert proc.stdout is not None
        while (img := _read_ppm(proc.stdout)) is not None:
            images.append(img)
    except FramesError:
        if not timed_out.is_set():
            raise
    finally:
        proc.stdout.close() if proc.stdout else None
        rc = proc.wait()
        timer.cancel()
        reader.join(timeout=5)
    if timed_out.is_set():
        raise FramesError(f"frame sampling timed out after {pcfg.frames_timeout_s:.0f} s")
    if rc != 0:
        raise FramesError(f"ffmpeg failed to decode the video: {_error_line(lines)}")
    infos = [(float(m.group(2)), m.group(3) == "1") for ln in lines if (m := _SHOWINFO.search(ln))]
    scenes = _scene_scores(lines)
    if len(infos) != len(images):
        raise FramesError(
            f"frame timestamps do not match frames ({len(infos)} vs {len(images)}); "
            "the file is probably corrupt"
        )
    frames = []
    for img, (t, key) in zip(images, infos, strict=True):
        score = scenes.get(round(t, 4), 0.0)
        kind = "scene" if score > SCENE_THRESHOLD else ("key" if key else "grid")
        frames.append(SampledFrame(t=round(max(t, 0.0), 3), image=img, kind=kind, scene=score))
    return frames, lines


def _scene_scores(lines: list[str]) -> dict[float, float]:
    """Scene score by frame time (rounded to 0.1 ms) from the ``metadata`` filter's log."""
    scores: dict[float, float] = {}
    current: float | None = None
    for ln in lines:
        if m := _METADATA_FRAME.search(ln):
            try:
                current = round(float(m.group(1)), 4)
            except ValueError:
                current = None
        elif (m := _SCENE.search(ln)) and current is not None:
            scores[current] = float(m.group(1))
    return scores


def _damaged(lines: list[str]) -> bool:
    return any(d in ln for ln in lines for d in _DAMAGE)


def _error_line(lines: list[str]) -> str:
    for ln in reversed(lines):
        if any(d in ln for d in _DAMAGE) or "Error" in ln or "error" in ln:
            return re.sub(r"^(\[[^\]]*\]\s*)+", "", ln)[:200]
    return (lines[-1] if lines else "no output")[:200]


_PRIORITY = {"scene": 3, "key": 2, "grid": 1}


def _is_flat(img: Image.Image) -> bool:
    small = np.asarray(img.convert("L").resize((32, 32)), dtype=np.float32)
    return float(small.std()) < FLAT_STD


def sample_frames(path: Path, pcfg: ProcessConfig) -> list[SampledFrame]:
    """The frames worth fingerprinting, in time order, with PDQ hashes filled in."""
    path = Path(path)
    if not path.is_file():
        raise FramesError(f"media file not found: {path}")
    if path.stat().st_size == 0:
        raise FramesError("media file is empty (zero bytes)")
    info = probe(path, timeout_s=min(30.0, pcfg.frames_timeout_s))
    if info.error:
        raise FramesError(f"not a readable video: {info.error}")
    if not info.has_video:
        raise FramesError("no video stream (audio-only file)")
    if info.video_codec in ("none", "unknown", ""):
        raise FramesError("unsupported video codec: ffmpeg has no decoder for this stream")
    duration = info.duration or 0.0
    step = max(pcfg.frame_interval_s, duration / max(pcfg.max_frames, 1), 0.04)
    deadline = time.monotonic() + pcfg.frames_timeout_s
    skip_nonref = (info.video_codec or "") in SKIP_NONREF_CODECS
    candidates, lines = _decode_candidates(
        path, pcfg, step, skip_nonref=skip_nonref, timeout_s=pcfg.frames_timeout_s
    )
    damaged = _damaged(lines)
    if skip_nonref and (damaged or not candidates):
        left = max(deadline - time.monotonic(), 0.05)
        candidates, lines = _decode_candidates(path, pcfg, step, skip_nonref=False, timeout_s=left)
        damaged = _damaged(lines)
    if not candidates:
        reason = _error_line(lines) if damaged else "no frame could be decoded"
        raise FramesError(f"no decodable video frames ({reason})")
    if damaged and duration > 0:
        reached = min(candidates[-1].t + step, duration)
        if reached < MIN_COVERAGE * duration:
            raise FramesError(
                f"truncated or corrupt video: frames decode only up to {candidates[-1].t:.1f} s "
                f"of {duration:.1f} s ({_error_line(lines)})"
            )
    return select_frames(candidates, step, pcfg.max_frames)


def select_frames(
    candidates: list[SampledFrame], step: float, max_frames: int
) -> list[SampledFrame]:
    """Best candidate per time bucket, then drop flat and near-identical frames, cap the count."""
    buckets: dict[int, SampledFrame] = {}
    for f in candidates:
        b = int(math.floor(f.t / step + 1e-6))
        cur = buckets.get(b)
        if cur is None or _PRIORITY[f.kind] > _PRIORITY[cur.kind]:
            buckets[b] = f
    chosen = [buckets[b] for b in sorted(buckets)]
    non_flat = [f for f in chosen if not _is_flat(f.image)]
    chosen = non_flat or chosen[:1]
    kept: list[SampledFrame] = []
    for f in chosen:
        f.pdq, f.pdq_quality = pdq(f.image)
        if any(hamming(f.pdq, k.pdq or "") <= DEDUPE_BITS for k in kept):
            continue
        kept.append(f)
    if len(kept) > max_frames > 0:
        idx = np.linspace(0, len(kept) - 1, max_frames).round().astype(int)
        kept = [kept[i] for i in sorted(set(idx.tolist()))]
    return kept
