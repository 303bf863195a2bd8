"""Detection quality on fixture videos, with the real parts: effnet-lite0 with its ImageNet
weights, the pipeline's regions and hashing, the reference index, the signals and the matcher.

The demo characters are registered from their reference pictures, as ``charwatch demo`` does.
The videos are not the demo's: other seeds, poses, layouts, scales and backgrounds, and the
unregistered look-alike characters as distractors. Frames are drawn by the fixture renderer,
JPEG-compressed and stored exactly as the pipeline stores them (PDQ hash, region vectors as
float16). Every video showing a registered character must be flagged and no other, and the
scores must clear the threshold by a margin rather than sit on it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from charwatch.config import Config
from fixture_platform.characters import DEMO_CHARACTERS, write_reference_images
from fixture_platform.videos import VideoSpec, render_frame
from index import registry
from index.matcher import detect_pending, load_evidence
from index.refindex import load_or_build
from index.signals import EmbeddingSignal, embed_threshold
from pipeline.hashing import pdq
from storage.db import Store
from storage.models import Character, Detection, Embedding, Frame, Video, VideoState
from tests.conftest import seed_bank

pytestmark = pytest.mark.slow  # a quality check over many rendered frames

TIMES = (0.0, 1.2, 2.4, 3.6, 4.8)  # sampled frame times (s), as the frame sampler spaces them
MARGIN = 0.05  # probability units between the threshold and the nearest score

# (key, character, layout, scale, background, companion, poses): none of them is a demo video
VIDEOS = [
    ("pompom_pip", "pompom", "pip", 0.40, "room", None, (0, 3, 6)),
    ("pompom_edge", "pompom", "edge", 0.85, "noise", None, (1, 4, 2)),
    ("kitsumaru_pan", "kitsumaru", "pan", 0.55, "shapes", None, (0, 5, 7)),
    ("kitsumaru_zoom", "kitsumaru", "zoom", 0.40, "stripes", None, (2, 1, 0)),
    ("gearbolt_center", "gearbolt", "center", 0.60, "gradient", "mossling", (3, 0, 6)),
    ("gearbolt_pip", "gearbolt", "pip", 0.42, "shapes", None, (0, 2, 4)),
    ("mossling", "mossling", "center", 0.80, "gradient", None, (0, 1, 2)),
    ("mossling_edge", "mossling", "edge", 0.85, "shapes", None, (4, 5, 6)),
    ("jellybloom", "jellybloom", "pan", 0.65, "room", None, (0, 3, 7)),
    ("inkpaw", "inkpaw", "zoom", 0.50, "noise", None, (1, 2, 5)),
    ("nothing", None, "center", 0.8, "stripes", None, (0, 1, 2)),
]


def _jpeg(img: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    buf.seek(0)
    with Image.open(buf) as im:
        return im.convert("RGB")


def _frames(spec: VideoSpec) -> list[Image.Image]:
    return [_jpeg(render_frame(spec, round(t * spec.fps))) for t in TIMES]


class Bench:
    def __init__(self, root: Path, embedder, bank: Path) -> None:
        self.cfg = Config()
        self.cfg.storage.data_dir = str(root / "data")
        self.store = Store(self.cfg.storage.database_url)
        self.embedder = embedder
        seed_bank(self.cfg, bank)
        refs = write_reference_images(root / "refs")
        for ch in DEMO_CHARACTERS:
            if ch.registered:
                registry.add_character(
                    self.cfg,
                    self.store,
                    ch.name,
                    franchise=ch.franchise,
                    aliases=list(ch.aliases),
                    images=refs[ch.key],
                )
        self.ids: dict[str, int] = {}
        self.expected: dict[int, str | None] = {}

    def add(self, key: str, spec: VideoSpec, expected: str | None) -> None:
        frames = _frames(spec)
        per_frame = self.embedder.embed_frames(frames)
        with self.store.session() as s:
            video = Video(
                platform="tiktok",
                platform_id=key,
                url=f"http://127.0.0.1/@x/video/{key}",
                caption="",
                state=VideoState.EMBEDDED,
                duration_s=spec.duration_s,
            )
            s.add(video)
            s.flush()
            for t, img, fv in zip(TIMES, frames, per_frame, strict=True):
                h, q = pdq(img)
                frame = Frame(video_id=video.id, t=t, pdq=h, pdq_quality=q)
                s.add(frame)
                s.flush()
                for region, vec in zip(fv.names, fv.vectors, strict=True):
                    s.add(
                        Embedding(
                            frame_id=frame.id,
                            region=region,
                            model_id=self.embedder.id,
                            vector=vec.astype(np.float16).tobytes(),
                        )
                    )
            self.ids[key] = video.id
            self.expected[video.id] = expected


@pytest.fixture(scope="module")
def bench(tmp_path_factory, embedder, bank_file) -> Bench:
    b = Bench(tmp_path_factory.mktemp("quality"), embedder, bank_file)
    names = {c.key: c.name for c in DEMO_CHARACTERS if c.registered}
    for i, (key, char, layout, scale, bg, companion, poses) in enumerate(VIDEOS):
        spec = VideoSpec(
            seed=9000 + i,
            character=char,
            layout=layout,
            scale=scale,
            scale_end=min(1.0, scale + 0.5),
            edge="left" if i % 2 else "right",
            background=bg,
            palette=(3 * i) % 8,
            caption="so cute!!" if i % 3 == 0 else "",
            emojis=(0, 2, 4)[i % 3],
            poses=poses,
            companion=companion,
        )
        b.add(key, spec, names.get(char) if char else None)
    return b


def test_flags_exactly_the_registered_characters(bench: Bench) -> None:
    stats = detect_pending(bench.cfg, bench.store, bench.embedder, progress=False)
    assert stats.failed == 0 and stats.matched == len(VIDEOS)
    with bench.store.session() as s:
        flagged = {
            (vid, name)
            for vid, name in s.execute(
                select(Detection.video_id, Character.name).join(Character)
            ).all()
        }
    expected = {(vid, name) for key, vid in bench.ids.items() if (name := bench.expected[vid])}
    assert flagged == expected, (sorted(flagged - expected), sorted(expected - flagged))


def test_small_picture_in_picture_beside_a_look_alike_is_told_apart(bench: Bench) -> None:
    """Pompom in a picture-in-picture 40 % of the frame wide is found, while Mossling (its
    unregistered look-alike: round body, similar ears) full frame is not taken for Pompom."""
    detect_pending(bench.cfg, bench.store, bench.embedder, progress=False)
    with bench.store.session() as s:

        def flagged(key: str) -> set[str]:
            vid = bench.ids[key]
            q = select(Character.name).join(Detection).where(Detection.video_id == vid)
            return set(s.scalars(q))

        assert flagged("pompom_pip") == {"Pompom"}
        assert flagged("mossling") == set() and flagged("mossling_edge") == set()


def test_scores_clear_the_threshold_by_a_margin(bench: Bench) -> None:
    """The second-best frame decides a flag (two frames must match): for the shown registered
    character it sits above the threshold, for every other (video, character) below it, each
    at least ``MARGIN`` away."""
    ri = load_or_build(bench.cfg, bench.store, bench.embedder)
    sig = EmbeddingSignal(bench.cfg.detect, bench.embedder)
    thr = embed_threshold(bench.cfg.detect, bench.embedder.id)
    names = {c.id: c.name for c in ri.refs.characters.values()}
    pos, neg = [], []
    for key, vid in bench.ids.items():
        ev = load_evidence(bench.store, vid, bench.embedder.id, bench.embedder.dim)
        found = {r.character_id: r for r in sig.compare(ev, ri.refs, ri.part("embedding"))}
        for cid, name in names.items():
            r = found.get(cid)
            frames = sorted((f[1] for f in r.details["frames"]), reverse=True) if r else []
            second = frames[1] if len(frames) > 1 else -1.0
            if bench.expected[vid] != name:
                neg.append((second, key, name))
            else:
                pos.append((second, key, name))
    worst_pos, worst_neg = min(pos), max(neg)
    assert worst_pos[0] >= thr + MARGIN, (worst_pos, thr)
    assert worst_neg[0] <= thr - MARGIN, (worst_neg, thr)
