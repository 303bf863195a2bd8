"""Same-style characters told apart, with the real parts: effnet-lite0 with its ImageNet weights,
regional pooling, colour histograms, the background bank, the few-shot classifier.

Eight members of one generated family are registered (four reference pictures each, as
``bench/samestyle.py`` registers them); frames show them in poses their references do not
use, and show unregistered members of the same family and look-alikes of the registered
ones (same body colour and two more attributes). Frames are JPEG-compressed as the pipeline
stores them and scored region by region as the matcher does.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from charwatch.config import Config
from fixture_platform.family import family, family_reference, reference_pose
from fixture_platform.videos import VideoSpec, render_frame
from index import fewshot
from index.refindex import backdrops, bank_images
from index.signals import (
    CharacterRef,
    EmbeddingSignal,
    IndexInputs,
    ReferenceImage,
    ReferenceSet,
    foreground_mask,
)

pytestmark = pytest.mark.slow  # a quality check over many rendered frames

REGISTERED = 8
FAMILY_SEED = 7


def _jpeg(img: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return im.convert("RGB")


@pytest.fixture(scope="module")
def world(embedder, bank_vectors):
    fam = family(FAMILY_SEED)
    regs = fam.registered[:REGISTERED]
    pictures: dict[int, Image.Image] = {}
    images = []
    for ci, c in enumerate(regs, start=1):
        for k in range(4):
            rid = 10 * ci + k
            pictures[rid] = family_reference(c, k, 512)
            images.append(ReferenceImage(rid, ci, f"{c.key}-{k}.png", f"sha-{rid}"))
    refs = ReferenceSet({i: CharacterRef(i, c.name) for i, c in enumerate(regs, 1)}, images)
    emb = embedder
    bank_pics = bank_images()
    bank = bank_vectors  # the region vectors of bank_pics, embedded once per session
    sig = EmbeddingSignal(Config().detect, emb)
    index = sig.index_references(
        refs,
        IndexInputs(
            embedder=emb,
            load_image=lambda r: pictures[r.reference_id],
            bank=bank,
            backdrops=backdrops(bank_pics),
        ),
    )
    used = {reference_pose(k) for k in range(4)}
    new_poses = tuple(p for p in range(16) if p not in used)[:3]

    def frame(sprite_key: str, seed: int, scale: float) -> Image.Image:
        spec = VideoSpec(
            seed=seed,
            character=sprite_key,
            layout="center",
            scale=scale,
            background=("room", "shapes", "gradient")[seed % 3],
            palette=seed % 8,
            poses=new_poses,
            duration_s=2.0,
            fps=6,
        )
        return _jpeg(render_frame(spec, seed % spec.frame_count))

    return fam, regs, sig, index, frame


def _best(sig, index, img: Image.Image) -> tuple[int, float]:
    """The character id with the highest region probability in the frame, and that value."""
    (fv,) = sig.embedder.embed_frames([img])
    scores = sig.class_scores(fv.vectors.astype(np.float16).astype(np.float32), index)
    cid = max(scores, key=lambda c: float(scores[c].max()))
    return cid, float(scores[cid].max())


def test_registered_members_in_new_poses_are_named(world) -> None:
    fam, regs, sig, index, frame = world
    found = 0
    for ci, c in enumerate(regs, start=1):
        for seed, scale in ((1, 0.8), (2, 0.65)):
            cid, p = _best(sig, index, frame(c.sprite_key, seed + 10 * ci, scale))
            assert cid == ci, (c.name, cid, p)  # never another registered member
            found += p >= sig.threshold
    # of 16 frames: 10 at the threshold 0.68 with blur as the classifier's only damage (11 with
    # grain and JPEG as well, 12 at the earlier 0.55: both flagged more strangers and
    # look-alikes in the benchmarks; the video-level trade-off is measured in bench/)
    assert found >= 10, found


def _flagged(world, members) -> dict[str, tuple[int, list[float]]]:
    """The members that reach the threshold in two of three frames (what a flag needs by
    default), with their frame scores."""
    fam, regs, sig, index, frame = world
    over = {}
    for i, c in enumerate(members):
        probs = [
            _best(sig, index, frame(c.sprite_key, seed + i, scale))[1]
            for seed, scale in ((40, 0.75), (60, 0.6), (80, 0.85))
        ]
        over[c.name] = (sum(p >= sig.threshold for p in probs), [round(p, 2) for p in probs])
    return {name: v for name, v in over.items() if v[0] >= 2}


def test_unregistered_members_of_the_same_style_are_not_flagged(world) -> None:
    fam = world[0]
    assert len(fam.unregistered) == 8
    flagged = _flagged(world, fam.unregistered)
    assert not flagged, flagged


def test_look_alikes_never_match_throughout(world) -> None:
    """Look-alikes share a registered member's body colour and two of its attributes. None
    reaches the threshold in every frame; whether the closest reaches the two frames a flag
    needs sits near the threshold: a known limit, measured in the same-style benchmark."""
    fam, regs, sig, index, frame = world
    keys = {c.key for c in regs}
    looks = [c for c in fam.lookalikes if c.lookalike_of in keys]
    assert len(looks) == 4
    for i, c in enumerate(looks, start=8):
        probs = [
            _best(sig, index, frame(c.sprite_key, seed + i, scale))[1]
            for seed, scale in ((40, 0.75), (60, 0.6), (80, 0.85))
        ]
        assert min(probs) < sig.threshold, (c.name, probs)


def test_strangers_are_recoloured_references_and_chimeras(world) -> None:
    fam, regs, *_ = world
    subjects = []
    for ci, c in enumerate(regs[:2], start=1):
        img = family_reference(c, 0, 512)
        subjects.append((ci, img, foreground_mask(img)))
    made = fewshot.stranger_pictures(subjects, backdrops(bank_images(8)), fewshot.seeded("test"))
    assert len(made) == 2 * (fewshot.RECOLOURS_PER_REFERENCE + fewshot.CHIMERAS_PER_REFERENCE)
    turned = fewshot.hue_turned(subjects[0][1], 180)
    a = np.asarray(subjects[0][1].resize((128, 128)), np.int16)
    b = np.asarray(turned.resize((128, 128)), np.int16)
    moved = np.abs(a - b).sum(axis=2)[subjects[0][2]]  # on the subject
    assert moved.mean() > 60  # the colours moved
    assert all(p.size == (fewshot.PICTURE, fewshot.PICTURE) for p in made)
