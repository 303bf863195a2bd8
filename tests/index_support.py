"""A tiny drawn world for the index and matcher tests: original characters drawn with PIL,
cluttered portrait frames, and a store with registered characters and processed videos."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageOps
from sqlalchemy import select

from charwatch.config import Config
from index import registry
from pipeline.hashing import pdq
from pipeline.media import to_data_path
from storage.db import Store
from storage.models import Character, Detection, Embedding, Frame, Video, VideoState
from storage.vectors import encode_vector
from tests.conftest import seed_bank

W, H = 360, 640  # portrait frames, as on short-form platforms


# ---------------------------------------------------------------------------------------------
# drawing


def draw_hoshi(size: int = 320, tilt: float = 0.0, arms_up: bool = False) -> Image.Image:
    """ "Hoshimaru": a teal capsule body, a yellow five-point star on the head, red scarf."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    s = size / 320
    teal, dark, yellow, red = (20, 170, 160), (10, 70, 70), (255, 205, 40), (220, 40, 60)
    arm_y = 150 if arms_up else 210
    for side in (-1, 1):
        x = 160 + side * 70
        d.line([(x * s, 190 * s), ((x + side * 50) * s, arm_y * s)], fill=dark, width=int(16 * s))
        d.ellipse(
            (
                (x + side * 50 - 14) * s,
                (arm_y - 14) * s,
                (x + side * 50 + 14) * s,
                (arm_y + 14) * s,
            ),
            fill=yellow,
        )
        d.rounded_rectangle(
            ((160 + side * 35 - 22) * s, 270 * s, (160 + side * 35 + 22) * s, 305 * s),
            radius=int(8 * s),
            fill=(240, 120, 30),
        )
    d.rounded_rectangle(
        (85 * s, 95 * s, 235 * s, 285 * s),
        radius=int(60 * s),
        fill=teal,
        outline=dark,
        width=int(5 * s),
    )
    star = []
    for i in range(10):
        r = (62 if i % 2 == 0 else 26) * s
        a = math.radians(-90 + i * 36 + tilt)
        star.append((160 * s + r * math.cos(a), 70 * s + r * math.sin(a)))
    d.polygon(star, fill=yellow, outline=(150, 100, 0))
    for side in (-1, 1):
        cx = 160 + side * 30
        d.ellipse(((cx - 17) * s, 140 * s, (cx + 17) * s, 178 * s), fill="white", outline=dark)
        d.ellipse(((cx - 8) * s, 150 * s, (cx + 8) * s, 172 * s), fill=(20, 20, 30))
    d.arc((135 * s, 170 * s, 185 * s, 205 * s), 20, 160, fill=dark, width=int(4 * s))
    d.rectangle((88 * s, 212 * s, 232 * s, 236 * s), fill=red)
    d.polygon(
        [(200 * s, 230 * s), (228 * s, 230 * s), (236 * s, 275 * s), (208 * s, 270 * s)], fill=red
    )
    return img.rotate(tilt / 3, resample=Image.Resampling.BICUBIC)


def draw_kumo(size: int = 320) -> Image.Image:
    """ "Kumo": a grey-white cloud with blue raindrops and sleepy eyes (second character)."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    s = size / 320
    for cx, cy, r in ((110, 150, 60), (170, 120, 75), (230, 155, 55), (160, 175, 70)):
        d.ellipse(
            ((cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s),
            fill=(235, 238, 245),
            outline=(120, 130, 150),
            width=int(4 * s),
        )
    for x in (110, 160, 210):
        d.polygon(
            [(x * s, 245 * s), ((x - 12) * s, 275 * s), ((x + 12) * s, 275 * s)],
            fill=(40, 110, 230),
        )
        d.ellipse(((x - 12) * s, 265 * s, (x + 12) * s, 290 * s), fill=(40, 110, 230))
    for side in (-1, 1):
        d.arc(
            ((160 + side * 35 - 15) * s, 140 * s, (160 + side * 35 + 15) * s, 165 * s),
            200,
            340,
            fill=(40, 40, 60),
            width=int(5 * s),
        )
    d.ellipse((150 * s, 180 * s, 170 * s, 195 * s), fill=(240, 120, 150))
    return img


def draw_frog(size: int = 320) -> Image.Image:
    """An unregistered green frog-like figure (the distractor)."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    s = size / 320
    d.ellipse(
        (60 * s, 110 * s, 260 * s, 290 * s),
        fill=(90, 190, 70),
        outline=(30, 80, 20),
        width=int(5 * s),
    )
    for side in (-1, 1):
        cx = 160 + side * 55
        d.ellipse(
            ((cx - 35) * s, 70 * s, (cx + 35) * s, 140 * s),
            fill=(90, 190, 70),
            outline=(30, 80, 20),
            width=int(4 * s),
        )
        d.ellipse(((cx - 20) * s, 85 * s, (cx + 20) * s, 125 * s), fill="white")
        d.ellipse(((cx - 8) * s, 95 * s, (cx + 8) * s, 118 * s), fill="black")
    d.arc((100 * s, 170 * s, 220 * s, 240 * s), 10, 170, fill=(30, 80, 20), width=int(6 * s))
    d.ellipse((120 * s, 230 * s, 200 * s, 280 * s), fill=(200, 230, 150))
    return img


def busy_background(rng: random.Random, w: int = W, h: int = H) -> Image.Image:
    """A cluttered video frame: gradient, translucent shapes, a caption bar."""
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    mask = Image.linear_gradient("L").resize((w, h))
    img = Image.composite(Image.new("RGB", (w, h), bottom), Image.new("RGB", (w, h), top), mask)
    img = img.convert("RGBA")
    d = ImageDraw.Draw(img, "RGBA")
    for _ in range(10):
        x, y, r = rng.randrange(w), rng.randrange(h), rng.randrange(20, 80)
        color = (*[rng.randrange(40, 255) for _ in range(3)], 150)
        if rng.random() < 0.5:
            d.ellipse((x - r, y - r, x + r, y + r), fill=color)
        else:
            d.rectangle((x - r, y - r, x + r, y + r), fill=color)
    y = int(h * 0.8)
    d.rounded_rectangle((12, y, w - 60, y + 44), radius=10, fill=(0, 0, 0, 150))
    d.text((24, y + 14), "wait for it... #fyp", fill=(255, 255, 255, 255))
    return img.convert("RGB")


def scene(
    rng: random.Random,
    sprite: Image.Image | None,
    scale: float,
    flip: bool = False,
) -> Image.Image:
    """A frame: the sprite (scaled to ``scale`` x frame width, shifted at random) on clutter."""
    img = busy_background(rng).convert("RGBA")
    if sprite is not None:
        sp = ImageOps.mirror(sprite) if flip else sprite
        px = int(W * scale)
        sp = sp.resize((px, px), Image.Resampling.BICUBIC)
        x = rng.randrange(0, W - px + 1)
        y = rng.randrange(int(H * 0.1), int(H * 0.75) - px // 2)
        img.alpha_composite(sp, (x, y))
    return img.convert("RGB")


def on_plain(sprite: Image.Image, color: tuple[int, int, int]) -> Image.Image:
    bg = Image.new("RGBA", sprite.size, (*color, 255))
    bg.alpha_composite(sprite)
    return bg.convert("RGB")


def letterbox_portrait(img: Image.Image) -> Image.Image:
    """A square picture centred in a 9:16 frame with black bars (a re-upload)."""
    frame = Image.new("RGB", (W, H), (0, 0, 0))
    pic = img.resize((W, W), Image.Resampling.BILINEAR)
    frame.paste(pic, (0, (H - W) // 2))
    return frame


# ---------------------------------------------------------------------------------------------
# the world


def make_config(root: Path) -> Config:
    cfg = Config()
    cfg.storage.data_dir = str(root / "data")
    return cfg


def store_embedded_video(
    cfg: Config,
    store: Store,
    embedder: Any,
    video: Video,
    frames: list[Image.Image],
    folder: str,
    *,
    model_id: str | None = None,
    keep_frames: bool = False,
) -> int:
    """Add ``video`` with its frames as the worker leaves them: each frame's PDQ hash and
    thumbnail under ``frames/<folder>/`` and its region vectors (``model_id``: recorded as
    another embedder's). ``keep_frames``: also store each frame as a JPEG and embed the stored
    picture, as the worker does; else the picture as given is embedded."""
    fdir = cfg.data_dir / "frames" / folder
    fdir.mkdir(parents=True)
    with store.session() as s:
        s.add(video)
        s.flush()
        for i, img in enumerate(frames):
            h, q = pdq(img)
            thumb = fdir / f"{i:02d}_t.jpg"
            img.resize((90, 160)).save(thumb)
            path = fdir / f"{i:02d}.jpg"
            if keep_frames:
                img.save(path, "JPEG", quality=90)
            frame = Frame(
                video_id=video.id,
                t=float(i),
                pdq=h,
                pdq_quality=q,
                image_path=to_data_path(cfg.data_dir, path) if keep_frames else None,
                thumb_path=to_data_path(cfg.data_dir, thumb),
            )
            s.add(frame)
            s.flush()
            if keep_frames:
                with Image.open(path) as stored:
                    img = stored.convert("RGB")
            (fv,) = embedder.embed_frames([img])
            s.add_all(
                Embedding(
                    frame_id=frame.id,
                    region=region,
                    model_id=model_id or embedder.id,
                    vector=encode_vector(vec),
                )
                for region, vec in zip(fv.names, fv.vectors, strict=True)
            )
        return video.id


class World:
    """A temporary store with registered characters; methods add processed videos."""

    def __init__(self, root: Path, embedder) -> None:
        self.root = root
        self.cfg = make_config(root)
        self.store = Store(self.cfg.storage.database_url)
        self.embedder = embedder
        self.refs = root / "refs"
        self.refs.mkdir()
        self.n = 0

    def image(self, name: str, img: Image.Image) -> Path:
        path = self.refs / name
        img.save(path)
        return path

    def add_video(
        self,
        frames: list[Image.Image],
        *,
        caption: str = "",
        hashtags: tuple[str, ...] = (),
        model_id: str | None = None,
        ai_label: str | None = None,
        author: str | None = None,
    ) -> int:
        """Store a video as the pipeline leaves it: frames (PDQ, thumbnail) + region vectors."""
        self.n += 1
        video = Video(
            platform="tiktok",
            platform_id=f"v{self.n}",
            url=f"http://127.0.0.1/@x/video/{self.n}",
            caption=caption,
            hashtags=list(hashtags),
            ai_label=ai_label,
            author=author,
            state=VideoState.EMBEDDED,
        )
        return store_embedded_video(
            self.cfg, self.store, self.embedder, video, frames, f"v{self.n}", model_id=model_id
        )

    def detections(self) -> dict[tuple[int, str], Detection]:
        with self.store.session() as s:
            rows = s.execute(select(Detection, Character.name).join(Character)).all()
            return {(d.video_id, name): d for d, name in rows}

    def state(self, video_id: int) -> Video:
        with self.store.session() as s:
            v = s.get(Video, video_id)
            assert v is not None
            return v


def drawn_world(root: Path, embedder: Any, bank_file: Path, size: int = 320) -> World:
    """Hoshimaru (4 references, Japanese aliases, one negative) and Kumo (2 references) drawn
    ``size`` pixels wide, registered in a new store under ``root`` whose index folder has the
    session's bank."""
    w = World(root, embedder)
    seed_bank(w.cfg, bank_file)
    refs = [
        w.image("hoshi_a.png", on_plain(draw_hoshi(size), (255, 255, 255))),
        w.image("hoshi_b.png", on_plain(draw_hoshi(size, tilt=12, arms_up=True), (235, 242, 255))),
        w.image("hoshi_c.png", on_plain(draw_hoshi(size, tilt=-10), (255, 246, 225))),
        w.image("hoshi_d.png", on_plain(draw_hoshi(size, arms_up=True), (240, 240, 240))),
    ]
    registry.add_character(
        w.cfg,
        w.store,
        "Hoshimaru",
        franchise="Test Sky",
        aliases=["ホシマル", "Hoshi-maru"],
        images=refs,
        prompts=["a teal cartoon mascot with a yellow star on its head"],
        negative_images=[w.image("frog_neg.png", on_plain(draw_frog(size), (255, 255, 255)))],
    )
    registry.add_character(
        w.cfg,
        w.store,
        "Kumo",
        aliases=["くも"],
        images=[
            w.image("kumo_a.png", on_plain(draw_kumo(size), (255, 255, 255))),
            w.image("kumo_b.png", on_plain(draw_kumo(size), (220, 235, 250))),
        ],
    )
    return w
