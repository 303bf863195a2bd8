"""The reference index's files: reused while the registry is unchanged, safe against crashes
and damage, one per embedder, and built from the picture cache, which embeds only the pictures
a build has not seen. On the drawn world of :mod:`tests.index_support`, with the real embedders.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from PIL import Image

from index import fewshot, registry
from index.refindex import (
    PictureCache,
    ReferenceIndex,
    build_index,
    embedder_slug,
    index_dir,
    load_or_build,
    load_reference_set,
)
from index.signals import FrameRow, TextPromptSignal, VectorIndex, VideoEvidence, make_signals
from tests.conftest import seed_bank
from tests.index_support import (
    World,
    draw_frog,
    draw_hoshi,
    draw_kumo,
    drawn_world,
    on_plain,
    scene,
)

POSITIVES = fewshot.POSITIVES_PER_REFERENCE  # pictures made of each reference
STRANGERS = fewshot.RECOLOURS_PER_REFERENCE + fewshot.CHIMERAS_PER_REFERENCE  # per subject
WHITE = (255, 255, 255)


@pytest.fixture(scope="module")
def world(tmp_path_factory, embedder, bank_file) -> World:
    """Hoshimaru (4 references, Japanese aliases, one negative) and Kumo (2 references), drawn
    small: these tests are about the index's files, not how well it tells characters apart."""
    return drawn_world(tmp_path_factory.mktemp("world"), embedder, bank_file, size=160)


def count_embedded(monkeypatch: pytest.MonkeyPatch, embedder: Any) -> list[int]:
    """From now on, the number of pictures of each ``embed_images`` call of ``embedder`` (which
    still embeds them) goes to the returned list."""
    counts: list[int] = []
    real: Callable[[Sequence[Image.Image]], np.ndarray] = embedder.embed_images

    def counting(images: Sequence[Image.Image]) -> np.ndarray:
        counts.append(len(images))
        return real(images)

    monkeypatch.setattr(embedder, "embed_images", counting)
    return counts


def _arrays(vi: VectorIndex) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(vi.to_bytes()), allow_pickle=False) as z:
        return {name: z[name] for name in z.files}


def assert_same_parts(a: ReferenceIndex, b: ReferenceIndex) -> None:
    """Both indexes hold the same signals with equal vectors, arrays and metadata."""
    assert sorted(a.parts) == sorted(b.parts)
    for name, part in a.parts.items():
        other = b.parts[name]
        assert part.meta == other.meta, name
        x, y = _arrays(part), _arrays(other)
        assert sorted(x) == sorted(y), name
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=f"{name}: {key}")


def test_index_is_reused_survives_a_crash_and_follows_the_registry(world, monkeypatch):
    ri = load_or_build(world.cfg, world.store, world.embedder)
    folder = index_dir(world.cfg)
    slug = embedder_slug(world.embedder.id)
    sidecar = json.loads((folder / f"{slug}.json").read_text())
    assert sidecar["embedder_id"] == world.embedder.id
    assert sidecar["fingerprint"] == ri.fingerprint
    metas = sidecar["parts"]["embedding"]["meta"]
    # drawn on plain backgrounds: the subjects are cut out and pasted on bank backdrops
    assert {m["aug"] for m in metas} == {"composite", "composite_mirror"}
    assert sum(m["negative"] for m in metas) == 2  # the frog, as given and mirrored
    pdq_meta = sidecar["parts"]["pdq"]["meta"]
    assert {m["variant"] for m in pdq_meta} >= {"original", "flip_h", "rot90"}
    assert len({m["reference_id"] for m in pdq_meta}) == 6  # positives only
    assert len(pdq_meta) <= 6 * 16

    # a crash while saving leaves a truncated temporary file: the saved index still loads
    data_file = folder / sidecar["data_file"]
    (folder / f".{data_file.name}.abc123.tmp").write_bytes(data_file.read_bytes()[:100])
    (folder / f".{slug}.json.def456.tmp").write_text('{"format": "charwa')
    again = load_or_build(world.cfg, world.store, world.embedder)
    assert not again.built and again.fingerprint == ri.fingerprint
    assert again.part("embedding").ntotal == ri.part("embedding").ntotal

    # a damaged data file (checksum mismatch) is rebuilt, not trusted; every picture comes
    # from the picture cache, and the rebuilt index is the one first built
    data_file.write_bytes(data_file.read_bytes()[:-10])
    embedded = count_embedded(monkeypatch, world.embedder)
    rebuilt = load_or_build(world.cfg, world.store, world.embedder)
    assert rebuilt.built and rebuilt.part("pdq").ntotal == len(pdq_meta)
    assert sum(embedded) == 0
    assert_same_parts(rebuilt, ri)

    # a new reference changes the fingerprint: rebuilt and saved; the old data file goes
    extra = world.image("hoshi_e.png", on_plain(draw_hoshi(160, tilt=20), (250, 250, 250)))
    registry.add_images(world.cfg, world.store, "Hoshimaru", [extra])
    newer = load_or_build(world.cfg, world.store, world.embedder)
    assert newer.built and newer.fingerprint != ri.fingerprint
    assert sum(embedded) == POSITIVES + 7 * STRANGERS  # its pictures; strangers drawn anew
    assert newer.part("pdq").ntotal > len(pdq_meta)
    assert sorted(p.name for p in folder.glob(f"{slug}-*.npz")) == [
        json.loads((folder / f"{slug}.json").read_text())["data_file"]
    ]
    assert load_or_build(world.cfg, world.store, world.embedder).built is False


def test_text_prompts_with_a_text_tower_and_separate_indexes_per_embedder(world, clip_embedder):
    clip = clip_embedder
    assert clip.has_text and clip.id != world.embedder.id
    load_or_build(world.cfg, world.store, world.embedder)  # the effnet index, whatever ran before
    signals = make_signals(world.cfg.detect, clip)
    assert "text_prompt" in [s.name for s in signals]
    assert "text_prompt" not in [s.name for s in make_signals(world.cfg.detect, world.embedder)]

    ri = load_or_build(world.cfg, world.store, clip, signals, bank_size=16)
    text = ri.part("text_prompt")
    assert text is not None and text.ntotal == 1
    assert text.meta[0]["prompt"].startswith("a teal cartoon mascot")
    assert ri.part("embedding").index.d == clip.dim
    # each embedder has its own sidecar; the effnet one is untouched
    folder = index_dir(world.cfg)
    for emb in (clip, world.embedder):
        side = json.loads((folder / f"{embedder_slug(emb.id)}.json").read_text())
        assert side["embedder_id"] == emb.id

    rng = random.Random(5)
    frames = [scene(rng, draw_hoshi(), 0.8) for _ in range(2)]
    per_frame = clip.embed_frames(frames)
    ev = VideoEvidence(
        video_id=0,
        frames=[FrameRow(i, float(i), None, None) for i in range(2)],
        model_id=clip.id,
        vectors=np.concatenate([fv.vectors for fv in per_frame]),
        vector_frame=np.repeat(np.arange(2), [len(fv.names) for fv in per_frame]),
        vector_region=[name for fv in per_frame for name in fv.names],
    )
    sig = TextPromptSignal(world.cfg.detect, clip)
    results = sig.compare(ev, ri.refs, text)
    assert len(results) == 1 and results[0].kind == "semantic"
    assert -1.0 <= results[0].raw <= 1.0 and 0.0 <= results[0].score <= 1.0
    assert results[0].details["prompt"] == text.meta[0]["prompt"]


def test_a_rebuild_embeds_only_new_pictures_and_equals_an_uncached_build(
    tmp_path, embedder, bank_file, monkeypatch
):
    w = World(tmp_path, embedder)
    seed_bank(w.cfg, bank_file)
    registry.add_character(
        w.cfg, w.store, "Hoshimaru", images=[w.image("h.png", on_plain(draw_hoshi(160), WHITE))]
    )
    registry.add_character(
        w.cfg, w.store, "Kumo", images=[w.image("k.png", on_plain(draw_kumo(160), WHITE))]
    )
    cache_file = index_dir(w.cfg) / f"pictures-{embedder_slug(embedder.id)}.npz"
    embedded = count_embedded(monkeypatch, embedder)
    assert load_or_build(w.cfg, w.store, embedder).built
    assert sum(embedded) == 2 * POSITIVES + 2 * STRANGERS
    assert len(PictureCache.load(w.cfg, embedder).vectors) == sum(embedded)

    # a negative reference: only its own pictures are new
    embedded.clear()
    frog = w.image("f.png", on_plain(draw_frog(160), WHITE))
    registry.add_images(w.cfg, w.store, "Hoshimaru", [frog], negative=True)
    assert load_or_build(w.cfg, w.store, embedder).built
    assert sum(embedded) == POSITIVES

    # a positive reference: its pictures, and the strangers, which are drawn anew for every set
    # of subjects; the cache keeps only what this build used (the old strangers go)
    embedded.clear()
    kumo_b = w.image("k2.png", on_plain(draw_kumo(160), (220, 235, 250)))
    registry.add_images(w.cfg, w.store, "Kumo", [kumo_b])
    newer = load_or_build(w.cfg, w.store, embedder)
    assert newer.built and sum(embedded) == POSITIVES + 3 * STRANGERS
    everything = 4 * POSITIVES + 3 * STRANGERS
    assert len(PictureCache.load(w.cfg, embedder).vectors) == everything

    # the same index as a build that embeds every picture
    embedded.clear()
    refs = load_reference_set(w.store, embedder.id)
    signals = make_signals(w.cfg.detect, embedder)
    uncached = build_index(w.cfg, embedder, refs, signals, newer.fingerprint)
    assert sum(embedded) == everything
    assert_same_parts(newer, uncached)

    # a damaged cache file, or one of another embedder, is an empty cache
    good = cache_file.read_bytes()
    with np.load(io.BytesIO(good), allow_pickle=False) as z:
        foreign = {name: z[name] for name in z.files} | {"tag": np.array(["other:model|x"])}
    buf = io.BytesIO()
    np.savez(buf, **foreign)
    for bad in (good[: len(good) // 2], good[:-7], b"not a zip file", b"", buf.getvalue()):
        cache_file.write_bytes(bad)
        assert PictureCache.load(w.cfg, embedder).vectors == {}
