"""The edits re-uploaders make, as ffmpeg filter graphs over a base clip.

The list follows the copy-detection benchmarks (ISC21/DISC21, VSC22) and the short-form cases in
``../shared/research/detection.md`` section 7: crop, scale, picture-in-picture, overlaid text and
emoji, mirror flip, colour shift, blur, noise, low-bitrate re-encode, speed and frame-rate change,
letterbox and blurred-background padding of 16:9 footage into 9:16, a 9:16 clip pillarboxed into
16:9, a creator face-cam over the clip, split screen (duet/stitch), burned-in subtitles, a
partial clip of a few seconds, and a combination of several.

Every transform is deterministic for its ``random.Random``; overlays (text, emoji, subtitles) are
drawn with PIL into PNGs, so no font setup of the ffmpeg build matters. Output is H.264 MP4 in
yuv420p without audio, as platforms serve it (x264 ``ultrafast`` to keep the benchmark quick,
``veryfast`` for the low-bitrate edit whose artefacts are the point).
"""

from __future__ import annotations

import math
import random
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from storage.files import atomic_path

W, H = 360, 640  # the portrait size of the base clips
EASY = "easy"
HARD = "hard"


def ffmpeg_exe() -> str:
    """The ffmpeg binary shipped with imageio-ffmpeg."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass
class Sources:
    """What a transform may read: the base clip in portrait (9:16) and landscape (16:9)
    form, an unrelated filler clip (no registered character) and a folder for overlays."""

    portrait: Path
    landscape: Path
    filler: Path
    scratch: Path
    duration_s: float


@dataclass
class Plan:
    """One ffmpeg run: extra inputs, the filter graph (input ``[0:v]``, output ``[out]``) and
    the output options."""

    inputs: list[Path]
    graph: str
    crf: int = 23
    preset: str = "ultrafast"  # the encoder's speed; the low-bitrate edit uses a real one
    base: str = "portrait"  # portrait | landscape: which form of the base clip is input 0
    seek_s: float = 0.0  # start this far into the base clip
    duration_s: float | None = None  # None: the base clip's duration


@dataclass(frozen=True)
class Transform:
    """A named edit: ``group`` is ``easy`` or ``hard`` (detection.md section 12 goals)."""

    name: str
    group: str
    description: str
    build: Callable[[Sources, random.Random], Plan]


# ---------------------------------------------------------------------------------------------
# overlays drawn with PIL


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError):
        return ImageFont.load_default()


_WORDS = (
    "wait for it",
    "POV: you found it",
    "best edit ever",
    "no way",
    "part 2",
    "this is so cute",
    "follow for more",
    "tag a friend",
    "daily edit",
    "who else",
)
_SUBTITLES = (
    "so this happened today",
    "and then it just looked at me",
    "I could not stop laughing",
    "watch until the end",
    "my favourite scene ever",
    "I have been waiting for this",
)


def _sticker(d: ImageDraw.ImageDraw, x: float, y: float, r: float, kind: int) -> None:
    """An emoji-like sticker: smiley, heart eyes, heart, star, fire."""
    ink = (60, 40, 20, 255)
    if kind == 2:
        d.ellipse((x - r, y - r, x, y), fill=(240, 40, 80, 255))
        d.ellipse((x, y - r, x + r, y), fill=(240, 40, 80, 255))
        d.polygon([(x - r, y - r * 0.4), (x + r, y - r * 0.4), (x, y + r)], fill=(240, 40, 80, 255))
        return
    if kind == 3:
        pts = []
        for i in range(10):
            rr = r if i % 2 == 0 else r * 0.45
            a = -90 + i * 36
            pts.append((x + rr * math.cos(math.radians(a)), y + rr * math.sin(math.radians(a))))
        d.polygon(pts, fill=(255, 200, 40, 255), outline=(200, 120, 0, 255))
        return
    if kind == 4:
        d.polygon(
            [(x, y - r), (x + r * 0.8, y + r * 0.3), (x, y + r), (x - r * 0.8, y + r * 0.3)],
            fill=(255, 110, 20, 255),
        )
        d.polygon(
            [(x, y - r * 0.3), (x + r * 0.4, y + r * 0.4), (x, y + r), (x - r * 0.4, y + r * 0.4)],
            fill=(255, 220, 60, 255),
        )
        return
    d.ellipse((x - r, y - r, x + r, y + r), fill=(255, 205, 50, 255), outline=(200, 130, 0, 255))
    if kind == 0:
        for sx in (-1, 1):
            d.ellipse(
                (x + sx * r * 0.3 - r * 0.12, y - r * 0.4, x + sx * r * 0.3 + r * 0.12, y), fill=ink
            )
        d.arc((x - r * 0.6, y - r * 0.4, x + r * 0.6, y + r * 0.6), 20, 160, fill=ink, width=3)
    else:
        for sx in (-1, 1):
            ex = x + sx * r * 0.35
            d.polygon(
                [(ex - r * 0.25, y - r * 0.3), (ex + r * 0.25, y - r * 0.3), (ex, y + r * 0.05)],
                fill=(230, 30, 60, 255),
            )
        d.ellipse((x - r * 0.3, y + r * 0.2, x + r * 0.3, y + r * 0.6), fill=ink)


def _outlined_text(d: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size: int) -> None:
    d.text(
        xy,
        text,
        font=_font(size),
        fill=(255, 255, 255, 255),
        stroke_width=max(2, size // 10),
        stroke_fill=(0, 0, 0, 255),
        anchor="mm",
    )


def text_emoji_overlay(path: Path, rng: random.Random, w: int = W, h: int = H) -> Path:
    """A transparent PNG with two lines of meme text and four emoji stickers."""
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    top, bottom = rng.sample(_WORDS, 2)
    _outlined_text(d, (w / 2, h * rng.uniform(0.08, 0.14)), top.upper(), 30)
    _outlined_text(d, (w / 2, h * rng.uniform(0.86, 0.92)), bottom, 26)
    for _ in range(4):
        r = rng.uniform(0.06, 0.1) * w
        x = rng.uniform(r, w - r)
        y = rng.uniform(0.2, 0.8) * h
        _sticker(d, x, y, r, rng.randrange(5))
    img.save(path)
    return path


def subtitle_overlays(
    folder: Path, rng: random.Random, count: int, w: int = W, h: int = H
) -> list[Path]:
    """``count`` transparent PNGs, each one burned-in subtitle line (two lines when long)."""
    out = []
    lines = rng.sample(_SUBTITLES, min(count, len(_SUBTITLES)))
    y = h * rng.uniform(0.7, 0.8)
    for i, text in enumerate(lines):
        img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        d = ImageDraw.Draw(img)
        words = text.split()
        half = (len(words) + 1) // 2
        rows = [" ".join(words[:half]), " ".join(words[half:])] if len(text) > 24 else [text]
        for j, row in enumerate(rows):
            _outlined_text(d, (w / 2, y + j * 30), row, 24)
        p = folder / f"sub{i}.png"
        img.save(p)
        out.append(p)
    return out


# ---------------------------------------------------------------------------------------------
# the transforms


def _reencode(src: Sources, rng: random.Random) -> Plan:
    return Plan([], "[0:v]null[out]", crf=23)


def _crop(src: Sources, rng: random.Random) -> Plan:
    f = rng.uniform(0.7, 0.85)
    x, y = rng.uniform(0, 1), rng.uniform(0, 1)
    g = f"[0:v]crop=iw*{f:.3f}:ih*{f:.3f}:(iw-ow)*{x:.3f}:(ih-oh)*{y:.3f},scale={W}:{H}[out]"
    return Plan([], g)


def _scale(src: Sources, rng: random.Random) -> Plan:
    return Plan([], f"[0:v]scale={W // 2}:{H // 2}[out]")


def _pip(src: Sources, rng: random.Random) -> Plan:
    s = rng.uniform(0.4, 0.5)
    pw = int(W * s) // 2 * 2
    x = rng.choice((12, W - pw - 12))
    y = int(rng.uniform(0.08, 0.5) * H)
    g = (
        f"[1:v]scale={W}:{H},setsar=1[bg];[0:v]scale={pw}:-2[fg];"
        f"[bg][fg]overlay={x}:{y}:shortest=1[out]"
    )
    return Plan([src.filler], g)


def _text_emoji(src: Sources, rng: random.Random) -> Plan:
    png = text_emoji_overlay(src.scratch / "overlay.png", rng)
    return Plan([png], "[0:v][1:v]overlay=0:0[out]")


def _hflip(src: Sources, rng: random.Random) -> Plan:
    return Plan([], "[0:v]hflip[out]")


def _color(src: Sources, rng: random.Random) -> Plan:
    hue = rng.choice((-1, 1)) * rng.uniform(25, 60)
    sat = rng.uniform(1.2, 1.5)
    bright = rng.uniform(-0.06, 0.06)
    g = f"[0:v]hue=h={hue:.1f}:s={sat:.2f},eq=brightness={bright:.3f}:contrast=1.15[out]"
    return Plan([], g)


def _blur(src: Sources, rng: random.Random) -> Plan:
    return Plan([], f"[0:v]gblur=sigma={rng.uniform(3, 5):.2f}[out]")


def _noise(src: Sources, rng: random.Random) -> Plan:
    return Plan([], f"[0:v]noise=alls={rng.randrange(25, 40)}:allf=t+u[out]")


def _lowbitrate(src: Sources, rng: random.Random) -> Plan:
    return Plan([], "[0:v]scale=270:480[out]", crf=rng.randrange(38, 43), preset="veryfast")


def _speed(src: Sources, rng: random.Random) -> Plan:
    speed = rng.choice((0.8, 1.25, 1.5))
    fps = rng.choice((15, 24, 30))
    return Plan([], f"[0:v]setpts=PTS/{speed},fps={fps}[out]")


def _letterbox(src: Sources, rng: random.Random) -> Plan:
    g = f"[0:v]scale={W}:-2,pad={W}:{H}:(ow-iw)/2:(oh-ih)/2:black[out]"
    return Plan([], g, base="landscape")


def _blurpad(src: Sources, rng: random.Random) -> Plan:
    g = (
        f"[0:v]split[a][b];[a]scale=-2:{H},crop={W}:{H},gblur=sigma=18,eq=brightness=-0.08[bg];"
        f"[b]scale={W}:-2[fg];[bg][fg]overlay=0:(H-h)/2[out]"
    )
    return Plan([], g, base="landscape")


def _pillarbox(src: Sources, rng: random.Random) -> Plan:
    return Plan([], "[0:v]scale=-2:360,pad=640:360:(ow-iw)/2:0:black[out]")


def _facecam(src: Sources, rng: random.Random) -> Plan:
    cw = int(W * rng.uniform(0.34, 0.42)) // 2 * 2
    ch = int(cw * 1.25) // 2 * 2
    x = rng.choice((10, W - cw - 10))
    y = rng.choice((int(H * 0.06), int(H * 0.62)))
    g = (
        f"[1:v]scale={cw}:-2,crop={cw}:{ch},pad={cw + 8}:{ch + 8}:4:4:white[cam];"
        f"[0:v][cam]overlay={x}:{y}:shortest=1[out]"
    )
    return Plan([src.filler], g)


def _split(src: Sources, rng: random.Random) -> Plan:
    half = H // 2
    top_is_clip = rng.random() < 0.5
    clip = f"[0:v]scale={W}:{H},crop={W}:{half}:0:{H // 4}[c]"
    other = f"[1:v]scale={W}:{H},crop={W}:{half}:0:{H // 4}[o]"
    order = "[c][o]" if top_is_clip else "[o][c]"
    return Plan([src.filler], f"{clip};{other};{order}vstack=shortest=1[out]")


def _subtitles(src: Sources, rng: random.Random) -> Plan:
    n = 3
    pngs = subtitle_overlays(src.scratch, rng, n)
    seg = src.duration_s / n
    chain = "[0:v]"
    parts = []
    for i in range(n):
        label = "[out]" if i == n - 1 else f"[s{i}]"
        enable = f"between(t,{i * seg:.2f},{(i + 1) * seg - 0.05:.2f})"
        parts.append(f"{chain}[{i + 1}:v]overlay=0:0:enable='{enable}'{label}")
        chain = f"[s{i}]"
    return Plan(pngs, ";".join(parts))


def _partial(src: Sources, rng: random.Random) -> Plan:
    length = rng.uniform(1.0, min(3.0, src.duration_s * 0.6))
    start = rng.uniform(0, src.duration_s - length)
    return Plan([], "[0:v]null[out]", seek_s=start, duration_s=length)


def _combo(src: Sources, rng: random.Random) -> Plan:
    f = rng.uniform(0.8, 0.9)
    hue = rng.choice((-1, 1)) * rng.uniform(15, 35)
    png = text_emoji_overlay(src.scratch / "overlay.png", rng)
    g = (
        f"[0:v]hflip,crop=iw*{f:.3f}:ih*{f:.3f},scale={W}:{H},hue=h={hue:.1f}:s=1.2[e];"
        f"[e][1:v]overlay=0:0[out]"
    )
    return Plan([png], g, crf=30)


TRANSFORMS: tuple[Transform, ...] = (
    Transform("reencode", EASY, "re-upload, H.264 CRF 23", _reencode),
    Transform("scale", EASY, "downscaled to 180x320", _scale),
    Transform("color", EASY, "hue 25-60 deg, saturation x1.2-1.5, brightness, contrast", _color),
    Transform("blur", EASY, "Gaussian blur sigma 3-5", _blur),
    Transform("noise", EASY, "temporal noise, strength 25-40", _noise),
    Transform("lowbitrate", EASY, "270x480 at CRF 38-42", _lowbitrate),
    Transform("speed_fps", EASY, "speed x0.8/1.25/1.5, re-timed to 15/24/30 fps", _speed),
    Transform("crop", HARD, "crop to 70-85% per side, off-centre", _crop),
    Transform("hflip", HARD, "mirror flip", _hflip),
    Transform("pip", HARD, "clip at 40-50% width over an unrelated video", _pip),
    Transform("text_emoji", HARD, "two lines of meme text and four emoji stickers", _text_emoji),
    Transform("subtitles", HARD, "three burned-in subtitle lines", _subtitles),
    Transform("letterbox", HARD, "16:9 clip padded into 9:16 with black bars", _letterbox),
    Transform("blurpad", HARD, "16:9 clip over its own blurred zoom, 9:16", _blurpad),
    Transform("pillarbox", HARD, "9:16 clip pillarboxed into a 16:9 frame", _pillarbox),
    Transform("facecam", HARD, "creator face-cam window over a corner", _facecam),
    Transform("split", HARD, "split screen (duet): half clip, half other video", _split),
    Transform("partial", HARD, "a 1-3 s piece of the clip", _partial),
    Transform("combo", HARD, "flip + 80-90% crop + hue + text and emoji, CRF 30", _combo),
)
BY_NAME = {t.name: t for t in TRANSFORMS}
QUICK_TRANSFORMS = ("reencode", "pip")


class TransformError(RuntimeError):
    """ffmpeg failed to apply a transform."""


def apply(name: str, src: Sources, dst: Path, rng: random.Random) -> Path:
    """Write ``src`` edited by transform ``name`` to ``dst`` (atomically)."""
    tr = BY_NAME[name]
    plan = tr.build(src, rng)
    base = src.landscape if plan.base == "landscape" else src.portrait
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    cmd += ["-filter_threads", "1"]
    if plan.seek_s > 0:
        cmd += ["-ss", f"{plan.seek_s:.2f}"]
    cmd += ["-i", str(base)]
    for extra in plan.inputs:
        if extra.suffix == ".png":
            cmd += ["-loop", "1", "-i", str(extra)]
        else:
            cmd += ["-stream_loop", "-1", "-i", str(extra)]
    with atomic_path(dst, suffix=".part.mp4") as tmp:
        cmd += [
            "-filter_complex",
            plan.graph,
            "-map",
            "[out]",
            "-an",
            "-t",
            f"{plan.duration_s or src.duration_s:.2f}",
            "-c:v",
            "libx264",
            "-preset",
            plan.preset,
            "-crf",
            str(plan.crf),
            "-pix_fmt",
            "yuv420p",
            "-threads",
            "1",
            "-movflags",
            "+faststart",
            str(tmp),
        ]
        proc = subprocess.run(cmd, capture_output=True, timeout=300, check=False)
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip()[-800:]
            raise TransformError(f"{name}: ffmpeg failed ({proc.returncode}): {tail}")
    return dst


def scratch_dir(parent: Path) -> Path:
    """A fresh folder for one transform's overlay PNGs."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="ov-", dir=parent))
