"""Short vertical fixture videos: frames drawn with numpy/PIL, encoded to H.264 MP4 by ffmpeg.

A :class:`VideoSpec` says what a video shows: which demo character (or none), how it is laid
out (large and centred, moving across, zooming, small picture-in-picture, partly cropped at a
frame edge), the background and the overlays (caption bar, emoji-like stickers, UI icons).
Everything is deterministic for a spec.
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFont

from fixture_platform.characters import render_character

LAYOUTS = ("center", "pan", "zoom", "pip", "edge")
BACKGROUNDS = ("gradient", "shapes", "noise", "stripes", "room")

_PALETTES: tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...] = (
    ((255, 214, 165), (253, 255, 182)),
    ((160, 196, 255), (189, 178, 255)),
    ((155, 246, 255), (202, 255, 191)),
    ((255, 173, 173), (255, 198, 255)),
    ((40, 44, 70), (90, 60, 120)),
    ((30, 60, 50), (120, 160, 110)),
    ((250, 250, 250), (210, 215, 225)),
    ((70, 30, 30), (200, 110, 60)),
)


@dataclass(frozen=True)
class VideoSpec:
    """What a fixture video shows.

    ``character``: a demo character key, a family member's ``fam:`` sprite key, or None.
    ``layout``: center | pan | zoom | pip | edge.
    ``scale``: character height as a fraction of the frame width (``scale_end`` for zoom).
    ``edge``: left | right | bottom, the frame edge that crops the character for ``edge``.
    ``background``: gradient | shapes | noise | stripes | room. ``caption``: text in the caption
    bar (ASCII; other characters are dropped). ``emojis``: number of floating stickers.
    ``companion``: a second character shown small in a corner.
    """

    seed: int
    character: str | None = None
    layout: str = "center"
    scale: float = 0.8
    scale_end: float = 1.1
    edge: str = "right"
    background: str = "gradient"
    palette: int = 0
    caption: str = ""
    emojis: int = 0
    poses: tuple[int, ...] = (0, 1, 2)
    companion: str | None = None
    ui: bool = True
    duration_s: float = 6.0
    fps: int = 12
    width: int = 360
    height: int = 640

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {BACKGROUNDS}, got {self.background!r}")
        if self.width % 2 or self.height % 2 or self.width < 32 or self.height < 32:
            raise ValueError(f"frame size must be even and >= 32, got {self.width}x{self.height}")
        if not (0 < self.duration_s <= 120) or not (1 <= self.fps <= 60):
            raise ValueError("duration_s must be in (0, 120] and fps in [1, 60]")
        if not self.poses:
            raise ValueError("poses must not be empty")

    @property
    def frame_count(self) -> int:
        return max(1, round(self.duration_s * self.fps))


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError):  # Pillow built without FreeType
        return ImageFont.load_default()


@lru_cache(maxsize=8)
def _font_cached(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return _font(size)


def _gradient(
    w: int, h: int, top: tuple[int, int, int], bottom: tuple[int, int, int]
) -> Image.Image:
    mask = Image.linear_gradient("L").resize((w, h))
    return Image.composite(Image.new("RGB", (w, h), bottom), Image.new("RGB", (w, h), top), mask)


_STRIPE_PERIOD = 56


class _Scene:
    """Precomputed layers of one video; ``frame(i)`` draws frame ``i``."""

    def __init__(self, spec: VideoSpec) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(spec.seed)
        w, h = spec.width, spec.height
        top, bottom = _PALETTES[spec.palette % len(_PALETTES)]
        self.grad_a = _gradient(w, h, top, bottom)
        self.grad_b = _gradient(w, h, bottom, top)
        self.texture: Image.Image | None = None
        if spec.background == "noise":
            grain = self.rng.normal(128.0, 14.0, (h + 64, w)).clip(0, 255).astype(np.uint8)
            self.texture = Image.fromarray(grain, "L").convert("RGB")
        elif spec.background == "stripes":
            yy, xx = np.mgrid[0:h, 0 : w + _STRIPE_PERIOD]
            band = ((xx + yy) // (_STRIPE_PERIOD // 2)) % 2 == 0
            alpha = np.where(band, 56, 0).astype(np.uint8)
            layer = np.zeros((h, w + _STRIPE_PERIOD, 4), np.uint8)
            layer[..., 3] = alpha
            self.texture = Image.fromarray(layer, "RGBA")
        self.shapes = [
            (
                self.rng.uniform(0, w),
                self.rng.uniform(0, h),
                self.rng.uniform(20, 90),
                tuple(int(c) for c in self.rng.integers(40, 255, 3)),
                self.rng.uniform(-40, 40),
                self.rng.uniform(-60, 60),
                int(self.rng.integers(0, 3)),
            )
            for _ in range(9)
        ]
        self.room = self._room_layer() if spec.background == "room" else None
        self.overlay = self._overlay_layer()
        self.sprites: dict[tuple[str, int], Image.Image] = {}
        self.max_px = self._max_sprite_px()

    # -- layers -------------------------------------------------------------------------------

    def _room_layer(self) -> Image.Image:
        w, h = self.spec.width, self.spec.height
        img = Image.new("RGB", (w, h), (222, 205, 180))
        d = ImageDraw.Draw(img)
        floor_y = int(h * 0.68)
        d.rectangle((0, floor_y, w, h), fill=(150, 104, 70))
        for x in range(-h, w, 46):
            d.line((x, h, x + (h - floor_y), floor_y), fill=(128, 88, 58), width=3)
        d.rectangle(
            (int(w * 0.55), int(h * 0.12), int(w * 0.92), int(h * 0.4)), fill=(170, 215, 245)
        )
        d.rectangle(
            (int(w * 0.55), int(h * 0.12), int(w * 0.92), int(h * 0.4)),
            outline=(250, 250, 250),
            width=8,
        )
        d.line(
            (int(w * 0.735), int(h * 0.12), int(w * 0.735), int(h * 0.4)),
            fill=(250, 250, 250),
            width=6,
        )
        d.rectangle(
            (int(w * 0.06), int(h * 0.2), int(w * 0.34), int(h * 0.52)), fill=(120, 140, 110)
        )
        for i in range(4):
            y = int(h * (0.24 + i * 0.07))
            d.rectangle((int(w * 0.08), y, int(w * 0.32), y + 6), fill=(95, 70, 50))
        d.ellipse((int(w * 0.1), int(h * 0.86), int(w * 0.9), int(h * 0.98)), fill=(170, 60, 70))
        return img

    def _overlay_layer(self) -> Image.Image:
        """Static overlays: caption bar and the right-hand action icons."""
        spec = self.spec
        w, h = spec.width, spec.height
        ov = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        d = ImageDraw.Draw(ov)
        if spec.ui:
            x = w - 34
            for i, color in enumerate(((255, 70, 90), (255, 255, 255), (255, 255, 255))):
                y = int(h * 0.48) + i * 58
                d.ellipse((x - 19, y - 19, x + 19, y + 19), fill=(0, 0, 0, 90))
                if i == 0:
                    d.ellipse((x - 11, y - 8, x + 1, y + 4), fill=color)
                    d.ellipse((x - 1, y - 8, x + 11, y + 4), fill=color)
                    d.polygon([(x - 11, y - 1), (x + 11, y - 1), (x, y + 11)], fill=color)
                elif i == 1:
                    d.ellipse((x - 11, y - 9, x + 11, y + 7), fill=color)
                    d.polygon([(x - 6, y + 4), (x - 10, y + 12), (x + 1, y + 6)], fill=color)
                else:
                    d.polygon(
                        [
                            (x - 10, y + 8),
                            (x - 4, y - 4),
                            (x + 2, y - 4),
                            (x + 2, y - 10),
                            (x + 12, y),
                            (x + 2, y + 10),
                            (x + 2, y + 4),
                            (x - 4, y + 4),
                        ],
                        fill=color,
                    )
                d.text(
                    (x, y + 24),
                    ("12.3K", "208", "Share")[i],
                    font=_font_cached(11),
                    fill=(255, 255, 255, 230),
                    anchor="mm",
                )
        text = spec.caption.encode("ascii", "ignore").decode().strip()
        if text:
            font = _font_cached(17)
            lines = _wrap(text, font, w - 80)[:3]
            line_h = 22
            bar_h = 16 + line_h * len(lines)
            y0 = int(h * 0.8) - bar_h // 2
            d.rounded_rectangle((10, y0, w - 60, y0 + bar_h), radius=12, fill=(0, 0, 0, 150))
            for i, line in enumerate(lines):
                d.text((22, y0 + 8 + i * line_h), line, font=font, fill=(255, 255, 255, 255))
        return ov

    def _max_sprite_px(self) -> int:
        spec = self.spec
        scale = max(spec.scale, spec.scale_end) if spec.layout == "zoom" else spec.scale
        if spec.layout == "pip":
            scale = min(scale, 0.45)
        return max(32, min(900, round(scale * spec.width)))

    def sprite(self, key: str, pose: int, px: int) -> Image.Image:
        base = self.sprites.get((key, pose))
        if base is None:
            base = sprite_image(key, pose, self.max_px)
            self.sprites[(key, pose)] = base
        if px == base.width:
            return base
        return base.resize((px, px), Image.Resampling.BILINEAR)

    # -- frames -------------------------------------------------------------------------------

    def background(self, i: int, t: float) -> Image.Image:
        spec = self.spec
        w, h = spec.width, spec.height
        if spec.background == "room":
            assert self.room is not None
            return self.room.convert("RGBA")
        mix = 0.5 - 0.5 * math.cos(2 * math.pi * t / max(spec.duration_s, 1e-6))
        img = Image.blend(self.grad_a, self.grad_b, mix)
        if spec.background == "noise":
            assert self.texture is not None
            off = (i * 7) % 64
            img = ImageChops.overlay(img, self.texture.crop((0, off, w, off + h)))
        elif spec.background == "stripes":
            assert self.texture is not None
            off = (i * 6) % _STRIPE_PERIOD
            img = img.convert("RGBA")
            img.alpha_composite(self.texture.crop((off, 0, off + w, h)))
        img = img.convert("RGBA") if img.mode != "RGBA" else img
        if spec.background == "shapes":
            d = ImageDraw.Draw(img, "RGBA")
            for x, y, r, col, vx, vy, kind in self.shapes:
                cx = (x + vx * t) % (w + 2 * r) - r
                cy = (y + vy * t) % (h + 2 * r) - r
                box = (cx - r, cy - r, cx + r, cy + r)
                fill = (*col, 150)
                if kind == 0:
                    d.ellipse(box, fill=fill)
                elif kind == 1:
                    d.rounded_rectangle(box, radius=r * 0.25, fill=fill)
                else:
                    d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
        return img

    def pose_at(self, t: float) -> int:
        spec = self.spec
        k = min(len(spec.poses) - 1, int(t / spec.duration_s * len(spec.poses)))
        return spec.poses[k]

    def place(self, t: float) -> tuple[int, float, float, float]:
        """Sprite size px, centre x, centre y, extra rotation (degrees) at time t."""
        spec = self.spec
        w, h = spec.width, spec.height
        u = t / spec.duration_s
        bob = math.sin(2 * math.pi * t * 0.9)
        size = spec.scale * w
        if spec.layout == "center":
            return round(size), w / 2, h * 0.5 + 10 * bob, 4 * bob
        if spec.layout == "pan":
            return round(size), w * (0.3 + 0.4 * u), h * (0.52 + 0.05 * bob), 6 * bob
        if spec.layout == "zoom":
            s = spec.scale + (spec.scale_end - spec.scale) * (u * u * (3 - 2 * u))
            return round(s * w), w / 2, h * 0.5, 0.0
        if spec.layout == "pip":
            s = min(spec.scale, 0.45) * w
            return round(s), w * 0.27, h * 0.72 + 4 * bob, 0.0
        # edge: the character peeks in from one side, 22-35% of its tile outside the frame
        peek = 0.22 + 0.13 * (0.5 + 0.5 * math.sin(2 * math.pi * u))
        if spec.edge == "left":
            return round(size), size * (0.5 - peek), h * 0.5, 8 + 3 * bob
        if spec.edge == "bottom":
            return round(size), w / 2, h + size * (peek - 0.5), 2 * bob
        return round(size), w - size * (0.5 - peek), h * 0.5, -8 - 3 * bob

    def frame(self, i: int) -> Image.Image:
        spec = self.spec
        w, h = spec.width, spec.height
        t = i / spec.fps
        img = self.background(i, t)
        if spec.layout == "pip":
            self._pip_main(img, i, t)
        if spec.character:
            px, cx, cy, rot = self.place(t)
            px = max(8, px)
            sprite = self.sprite(spec.character, self.pose_at(t), px)
            if abs(rot) > 0.5:
                sprite = sprite.rotate(rot, resample=Image.Resampling.BILINEAR)
            if spec.layout == "pip":
                pad = 10
                x0, y0 = int(cx - px / 2) - pad, int(cy - px / 2) - pad
                d = ImageDraw.Draw(img)
                d.rounded_rectangle(
                    (x0, y0, x0 + px + 2 * pad, y0 + px + 2 * pad),
                    radius=16,
                    fill=(250, 246, 236, 255),
                    outline=(255, 255, 255, 255),
                    width=4,
                )
            _paste(img, sprite, round(cx - px / 2), round(cy - px / 2))
        if spec.companion:
            cpx = round(w * 0.32)
            sprite = self.sprite(spec.companion, (i // (spec.fps * 2)) % 8, cpx)
            _paste(img, sprite, w - cpx - 44, round(h * 0.12))
        img.alpha_composite(self.overlay)
        if spec.emojis:
            self._emojis(img, t)
        return img.convert("RGB")

    def _pip_main(self, img: Image.Image, i: int, t: float) -> None:
        """The 'main content' panel of a picture-in-picture video: a busy game-like scene."""
        w, h = self.spec.width, self.spec.height
        d = ImageDraw.Draw(img)
        y1 = int(h * 0.58)
        d.rectangle((0, 0, w, y1), fill=(24, 28, 44, 255))
        for k in range(6):
            y = int((k * 97 + i * 9) % y1)
            d.rectangle((0, y, w, y + 3), fill=(60, 70, 110, 255))
        for k, (x, y, r, col, vx, vy, _) in enumerate(self.shapes[:6]):
            cx = (x + vx * t * 2) % w
            cy = (y * 0.5 + vy * t) % (y1 - 20) + 10
            d.rectangle((cx - r / 3, cy - r / 3, cx + r / 3, cy + r / 3), fill=(*col, 255))
            if k == 0:
                d.ellipse((cx - 14, cy + 30, cx + 14, cy + 58), fill=(255, 230, 80, 255))
        d.text(
            (12, 12), f"SCORE {1200 + i * 35:06d}", font=_font_cached(16), fill=(255, 255, 255, 255)
        )

    def _emojis(self, img: Image.Image, t: float) -> None:
        spec = self.spec
        w, h = spec.width, spec.height
        d = ImageDraw.Draw(img)
        for k in range(spec.emojis):
            r = 16 + (k * 7) % 12
            # stickers float up along the sides, mostly clear of the middle of the frame
            band = (0.05, 0.2) if k % 2 == 0 else (0.62, 0.76)
            x = w * (band[0] + (band[1] - band[0]) * ((k * 0.37 + 0.1) % 1.0))
            x += 10 * math.sin(t * 2 + k)
            y = h - ((t * (55 + 9 * k) + k * 131) % (h + 2 * r)) + r
            kind = k % 4
            if kind == 3:
                d.polygon(
                    [(x - r, y - r * 0.3), (x + r, y - r * 0.3), (x, y + r)],
                    fill=(255, 60, 100, 255),
                )
                d.ellipse((x - r, y - r, x, y), fill=(255, 60, 100, 255))
                d.ellipse((x, y - r, x + r, y), fill=(255, 60, 100, 255))
                continue
            d.ellipse(
                (x - r, y - r, x + r, y + r), fill=(255, 205, 50, 255), outline=(200, 130, 0, 255)
            )
            if kind == 0:  # smiling face
                d.ellipse((x - r * 0.45, y - r * 0.4, x - r * 0.15, y), fill=(60, 40, 20, 255))
                d.ellipse((x + r * 0.15, y - r * 0.4, x + r * 0.45, y), fill=(60, 40, 20, 255))
                d.arc(
                    (x - r * 0.6, y - r * 0.5, x + r * 0.6, y + r * 0.6),
                    20,
                    160,
                    fill=(60, 40, 20, 255),
                    width=max(1, r // 6),
                )
            elif kind == 1:  # heart eyes
                for sx in (-1, 1):
                    ex = x + sx * r * 0.35
                    d.polygon(
                        [
                            (ex - r * 0.25, y - r * 0.25),
                            (ex + r * 0.25, y - r * 0.25),
                            (ex, y + r * 0.1),
                        ],
                        fill=(230, 30, 60, 255),
                    )
                d.ellipse(
                    (x - r * 0.3, y + r * 0.2, x + r * 0.3, y + r * 0.6), fill=(90, 30, 20, 255)
                )
            else:  # laughing with tears
                d.arc(
                    (x - r * 0.5, y - r * 0.45, x - r * 0.1, y - r * 0.05),
                    200,
                    340,
                    fill=(60, 40, 20, 255),
                    width=max(1, r // 6),
                )
                d.arc(
                    (x + r * 0.1, y - r * 0.45, x + r * 0.5, y - r * 0.05),
                    200,
                    340,
                    fill=(60, 40, 20, 255),
                    width=max(1, r // 6),
                )
                d.chord(
                    (x - r * 0.6, y - r * 0.2, x + r * 0.6, y + r * 0.7),
                    0,
                    180,
                    fill=(90, 30, 20, 255),
                )
                d.ellipse(
                    (x - r * 1.05, y - r * 0.2, x - r * 0.7, y + r * 0.25), fill=(90, 180, 255, 255)
                )


def _paste(dst: Image.Image, src: Image.Image, x: int, y: int) -> None:
    """Alpha-composite ``src`` at (x, y); the parts outside the frame are cropped away."""
    left, top = max(0, -x), max(0, -y)
    right, bottom = min(src.width, dst.width - x), min(src.height, dst.height - y)
    if right <= left or bottom <= top:
        return
    dst.alpha_composite(src.crop((left, top, right, bottom)), (x + left, y + top))


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, max_w: int) -> list[str]:
    lines: list[str] = []
    cur = ""
    for word in text.split():
        trial = f"{cur} {word}".strip()
        if cur and font.getlength(trial) > max_w:
            lines.append(cur)
            cur = word
        else:
            cur = trial
    if cur:
        lines.append(cur)
    return lines


def sprite_image(key: str, pose: int, size: int) -> Image.Image:
    """A character drawn for a video: a demo character key, or a ``fam:`` key of a
    :mod:`fixture_platform.family` member."""
    if key.startswith("fam:"):
        from fixture_platform.family import render_sprite_key

        return render_sprite_key(key, pose, size)
    return render_character(key, pose, size)


def render_frame(spec: VideoSpec, index: int) -> Image.Image:
    """Frame ``index`` of the video as an RGB image (for posters and checks)."""
    if not 0 <= index < spec.frame_count:
        raise ValueError(f"frame index {index} out of range 0..{spec.frame_count - 1}")
    return _Scene(spec).frame(index)


def poster(spec: VideoSpec) -> Image.Image:
    """The cover image of a video: the frame at one third of its length."""
    return render_frame(spec, spec.frame_count // 3)


def ffmpeg_exe() -> str:
    """The ffmpeg binary shipped with imageio-ffmpeg."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def make_video(spec: VideoSpec, path: Path) -> Path:
    """Render ``spec`` to an H.264 MP4 (yuv420p, +faststart) at ``path``, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scene = _Scene(spec)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{spec.width}x{spec.height}",
        "-r",
        str(spec.fps),
        "-i",
        "-",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "26",
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(spec.fps * 2),
        "-threads",
        "1",
        "-movflags",
        "+faststart",
        "-metadata",
        "title=charwatch fixture",
        "-f",
        "mp4",
        str(tmp),
    ]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        assert proc.stdin is not None
        try:
            try:
                for i in range(spec.frame_count):
                    proc.stdin.write(scene.frame(i).tobytes())
                proc.stdin.close()
            except BrokenPipeError:  # ffmpeg exited early: its message is in err
                pass
            rc = proc.wait(timeout=120)
        except BaseException:
            proc.kill()
            proc.wait()
            tmp.unlink(missing_ok=True)
            raise
        if rc != 0:
            err.seek(0)
            tail = err.read()[-2000:].decode("utf-8", "replace")
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"ffmpeg failed ({rc}) writing {path.name}: {tail.strip()}")
    os.replace(tmp, path)
    return path
