"""The registry, the signals, the reference index and the matcher, on a tiny drawn world.

Everything is real: SQLite store, FAISS, pdqhash, the effnet-lite0 embedder with its ImageNet
weights, the pipeline's hashing and region functions. The characters are original shapes
drawn here with PIL.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps
from sqlalchemy import delete, func, select

from charwatch.config import Config
from index import registry
from index.matcher import ReembedNeeded, detect_pending, load_evidence, rematch
from index.refindex import (
    embedder_slug,
    index_dir,
    load_or_build,
    load_reference_set,
)
from index.signals import (
    CaptionSignal,
    CharacterRef,
    EmbeddingSignal,
    FrameRow,
    MatchPolicy,
    PdqSignal,
    ProvenanceSignal,
    ReferenceSet,
    TextPromptSignal,
    VideoEvidence,
    Whitener,
    calibrate_distance,
    calibrate_similarity,
    composite_on,
    embed_threshold,
    fold_text,
    foreground_mask,
    frame_seconds,
    make_signals,
)
from pipeline.hashing import pdq
from storage import workqueue
from storage.blobs import data_file
from storage.db import Store
from storage.models import (
    AllowedAccount,
    Character,
    CharacterThreshold,
    Detection,
    Embedding,
    Frame,
    Reference,
    Video,
    VideoState,
)
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
        fdir = self.cfg.data_dir / "frames" / f"v{self.n}"
        fdir.mkdir(parents=True)
        with self.store.session() as s:
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
            s.add(video)
            s.flush()
            for i, img in enumerate(frames):
                h, q = pdq(img)
                thumb = fdir / f"{i}_t.jpg"
                img.resize((90, 160)).save(thumb)
                frame = Frame(
                    video_id=video.id,
                    t=float(i),
                    pdq=h,
                    pdq_quality=q,
                    thumb_path=thumb.relative_to(self.cfg.data_dir).as_posix(),
                )
                s.add(frame)
                s.flush()
                (fv,) = self.embedder.embed_frames([img])
                for region, vec in zip(fv.names, fv.vectors, strict=True):
                    s.add(
                        Embedding(
                            frame_id=frame.id,
                            region=region,
                            model_id=model_id or self.embedder.id,
                            vector=vec.astype(np.float16).tobytes(),
                        )
                    )
            return video.id

    def detections(self) -> dict[tuple[int, str], Detection]:
        with self.store.session() as s:
            rows = s.execute(select(Detection, Character.name).join(Character)).all()
            return {(d.video_id, name): d for d, name in rows}

    def state(self, video_id: int) -> Video:
        with self.store.session() as s:
            v = s.get(Video, video_id)
            assert v is not None
            return v


@pytest.fixture(scope="module")
def world(tmp_path_factory, embedder, bank_file) -> World:
    """Hoshimaru (4 references, Japanese aliases, one negative) and Kumo (2 references)."""
    w = World(tmp_path_factory.mktemp("world"), embedder)
    seed_bank(w.cfg, bank_file)
    refs = [
        w.image("hoshi_a.png", on_plain(draw_hoshi(), (255, 255, 255))),
        w.image("hoshi_b.png", on_plain(draw_hoshi(tilt=12, arms_up=True), (235, 242, 255))),
        w.image("hoshi_c.png", on_plain(draw_hoshi(tilt=-10), (255, 246, 225))),
        w.image("hoshi_d.png", on_plain(draw_hoshi(arms_up=True), (240, 240, 240))),
    ]
    registry.add_character(
        w.cfg,
        w.store,
        "Hoshimaru",
        franchise="Test Sky",
        aliases=["ホシマル", "Hoshi-maru"],
        images=refs,
        prompts=["a teal cartoon mascot with a yellow star on its head"],
        negative_images=[w.image("frog_neg.png", on_plain(draw_frog(), (255, 255, 255)))],
    )
    registry.add_character(
        w.cfg,
        w.store,
        "Kumo",
        aliases=["くも"],
        images=[
            w.image("kumo_a.png", on_plain(draw_kumo(), (255, 255, 255))),
            w.image("kumo_b.png", on_plain(draw_kumo(), (220, 235, 250))),
        ],
    )
    return w


# ---------------------------------------------------------------------------------------------
# registry


def test_registry_copies_dedupes_and_validates(tmp_path):
    cfg = make_config(tmp_path)
    store = Store(cfg.storage.database_url)
    a = tmp_path / "a.png"
    on_plain(draw_kumo(64), (255, 255, 255)).save(a)
    same = tmp_path / "same_bytes.png"
    same.write_bytes(a.read_bytes())
    char = registry.add_character(cfg, store, "Kumo", aliases=["くも", "くも"], images=[a, same])
    assert char.aliases == ["くも"]
    assert len(char.references) == 1  # deduplicated by content
    ref = char.references[0]
    stored = data_file(cfg.data_dir, ref.path)
    assert stored.is_file() and stored.name == f"{ref.sha256}.png"
    assert stored.parent.parent == cfg.data_dir / "references"

    with pytest.raises(registry.RegistryError, match="already exists"):
        registry.add_character(cfg, store, "kumo")  # casefolded duplicate

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(registry.RegistryError, match="broken.png"):
        registry.add_images(cfg, store, "Kumo", [bad])
    with pytest.raises(registry.RegistryError, match="not found"):
        registry.add_character(cfg, store, "Other", images=[tmp_path / "missing.png"])
    assert registry.get_character(store, "Other") is None  # nothing half-written

    b = tmp_path / "b.jpg"
    on_plain(draw_kumo(80), (200, 220, 255)).save(b, quality=90)
    char = registry.add_character(cfg, store, "Kumo", images=[b], prompts=["a small cloud"])
    assert len(char.references) == 2 and char.prompts == ["a small cloud"]
    with pytest.raises(registry.RegistryError, match="both positive and negative"):
        registry.add_images(cfg, store, "Kumo", [b], negative=True)

    rows = registry.list_characters(store)
    assert [(r["name"], r["references"], r["negative_references"]) for r in rows] == [
        ("Kumo", 2, 0)
    ]
    assert registry.remove_character(cfg, store, "KUMO")
    assert not stored.exists()
    assert registry.list_characters(store) == []
    assert registry.remove_character(cfg, store, "Kumo") is False


def test_import_tree_reads_character_toml_and_is_idempotent(tmp_path):
    cfg = make_config(tmp_path)
    store = Store(cfg.storage.database_url)
    folder = tmp_path / "refs" / "Test Sky" / "hoshimaru"
    (folder / "negative").mkdir(parents=True)
    on_plain(draw_hoshi(96), (255, 255, 255)).save(folder / "front.png")
    on_plain(draw_hoshi(96, tilt=10), (230, 230, 255)).save(folder / "tilt.png")
    on_plain(draw_frog(96), (255, 255, 255)).save(folder / "negative" / "frog.png")
    (folder / "character.toml").write_text(
        'name = "Hoshimaru"\naliases = ["ホシマル"]\nprompts = ["a star mascot"]\n'
        'rights_holder = "Sky Co."\n',
        encoding="utf-8",
    )
    first = registry.import_tree(cfg, store, tmp_path / "refs")
    assert [c.name for c in first] == ["Hoshimaru"]
    char = first[0]
    assert char.franchise == "Test Sky" and char.rights_holder == "Sky Co."
    assert char.aliases == ["ホシマル"] and char.prompts == ["a star mascot"]
    assert sorted(r.negative for r in char.references) == [False, False, True]
    again = registry.import_tree(cfg, store, tmp_path / "refs")
    assert len(again[0].references) == 3

    (folder / "character.toml").write_text("colour = 3\n", encoding="utf-8")
    with pytest.raises(registry.RegistryError, match="unknown key 'colour'"):
        registry.import_tree(cfg, store, tmp_path / "refs")


# ---------------------------------------------------------------------------------------------
# signals in isolation


def test_caption_signal_folds_unicode_and_respects_word_boundaries():
    refs = ReferenceSet(
        characters={
            1: CharacterRef(1, "Naruto", aliases=("ナルト", "うずまき")),
            2: CharacterRef(2, "Pom", aliases=("Pom-Pom",)),
        },
        images=[],
    )
    sig = CaptionSignal(Config().detect)

    def hits(caption: str, tags: tuple[str, ...] = ()) -> dict[int, list[str]]:
        video = VideoEvidence(video_id=1, caption=caption, hashtags=list(tags))
        return {r.character_id: r.details["terms"] for r in sig.compare(video, refs, None)}

    assert hits("かわいい #ナルト") == {1: ["ナルト"]}
    assert hits("ﾅﾙﾄ dance") == {1: ["ナルト"]}  # half-width katakana, NFKC
    assert hits("ＮＡＲＵＴＯ edit") == {1: ["Naruto"]}  # full-width Latin
    assert hits("ウズマキ cosplay") == {1: ["うずまき"]}  # katakana matches a hiragana alias
    assert hits("new pompadour haircut") == {}  # no match inside a longer word
    assert hits("", ("pompom_edit",)) == {2: ["Pom-Pom"]}  # hashtag starting with the alias
    assert hits("my POM-POM plush") == {2: ["Pom", "Pom-Pom"]}
    assert hits("", ("pomelo",)) == {}  # short names match whole tags only
    assert hits("", ("ナルト好き",)) == {1: ["ナルト"]}
    assert fold_text("  Ｈｅｌｌｏ\u3000World ") == "hello world"
    assert sig.kind == "context"


def test_provenance_signal_reads_labels_and_c2pa():
    sig = ProvenanceSignal(Config().detect)
    refs = ReferenceSet(characters={}, images=[])
    plain = sig.compare(VideoEvidence(video_id=1, c2pa_state="absent"), refs, None)[0]
    assert plain.character_id is None and not plain.matched and plain.kind == "context"
    labelled = sig.compare(VideoEvidence(video_id=1, ai_label="AI-generated"), refs, None)[0]
    assert labelled.matched and labelled.details["reasons"] == ["platform_label"]
    info = {
        "state": "valid",
        "claim_generator": "Gen 1.0",
        "digital_source_type": "http://cv.iptc.org/newscodes/digitalsourcetype/"
        "trainedAlgorithmicMedia",
    }
    c2pa = sig.compare(VideoEvidence(video_id=1, c2pa_state="valid", c2pa_info=info), refs, None)
    assert c2pa[0].matched and c2pa[0].details["c2pa_generator"] == "Gen 1.0"
    invalid = sig.compare(
        VideoEvidence(video_id=1, c2pa_state="invalid", c2pa_info={**info, "state": "invalid"}),
        refs,
        None,
    )
    assert not invalid[0].matched


def test_score_calibration_is_monotonic_with_half_at_threshold():
    assert calibrate_distance(0, 31) == 1.0
    assert calibrate_distance(31, 31) == 0.5
    assert calibrate_distance(128, 31) == 0.0
    assert calibrate_distance(10, 31) > calibrate_distance(20, 31) > calibrate_distance(40, 31)
    assert calibrate_similarity(0.4, 0.4, 0.15, 0.6) == 0.5
    assert calibrate_similarity(0.15, 0.4, 0.15, 0.6) == 0.0
    assert calibrate_similarity(0.9, 0.4, 0.15, 0.6) == 1.0
    assert 0.5 < calibrate_similarity(0.5, 0.4, 0.15, 0.6) < 1.0


def test_whitener_damps_the_bank_directions():
    rng = np.random.default_rng(0)
    common = rng.normal(size=64)
    bank = np.abs(common + 0.05 * rng.normal(size=(40, 64)))
    w = Whitener.fit(bank)
    a, b = np.abs(common + 0.05 * rng.normal(size=(2, 64)))
    raw = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    whitened = float((w(a[None]) @ w(b[None]).T)[0, 0])
    assert raw > 0.99  # alike in raw space: both are "the background"
    assert whitened < 0.5  # the shared background no longer counts
    restored = Whitener.from_arrays(w.arrays())
    np.testing.assert_allclose(restored(a[None]), w(a[None]), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# the whole matcher on the world


def test_detect_flags_the_character_and_not_the_rest(world):
    rng = random.Random(4)
    hoshi = [draw_hoshi(tilt=5), draw_hoshi(tilt=-8, arms_up=True), draw_hoshi(tilt=15)]
    positive = world.add_video(
        [
            scene(rng, hoshi[0], 0.85),
            scene(rng, hoshi[1], 0.7, flip=True),
            scene(rng, hoshi[2], 0.75),
            scene(rng, hoshi[0], 0.6, flip=True),
        ],
        caption="my new plush! #ホシマル",
    )
    empty = world.add_video([scene(rng, None, 0) for _ in range(4)], caption="#ホシマル fan edit")
    distractor = world.add_video([scene(rng, draw_frog(), s) for s in (0.85, 0.7, 0.75, 0.8)])
    kumo = world.add_video([scene(rng, draw_kumo(), s) for s in (0.85, 0.7, 0.75, 0.8)])

    stats = detect_pending(world.cfg, world.store, world.embedder, progress=False)
    assert stats.claimed == stats.matched == 4 and stats.failed == 0
    found = world.detections()
    assert (positive, "Hoshimaru") in found
    assert (kumo, "Kumo") in found
    assert not [k for k in found if k[0] in (empty, distractor)]  # caption alone never flags
    assert (positive, "Kumo") not in found and (kumo, "Hoshimaru") not in found

    det = found[(positive, "Hoshimaru")]
    assert det.match_type == "semantic" and 0.5 <= det.score <= 1.0
    assert det.model_id == world.embedder.id
    assert det.best_frame_t in (0.0, 1.0, 2.0, 3.0) and det.best_frame_thumb.endswith("_t.jpg")
    sig = det.signals
    assert sig["embedding"]["matched"] and sig["embedding"]["frames_over"] >= 2
    assert sig["caption"]["matched"] and sig["caption"]["terms"] == ["ホシマル"]
    assert sig["fusion"]["caption_bonus"] > 0 and sig["provenance"]["ai_generated"] is False
    with world.store.session() as s:
        ref = s.get(Reference, det.best_reference_id)
        assert ref is not None and not ref.negative
        assert s.get(Character, ref.character_id).name == "Hoshimaru"
    assert {world.state(v).state for v in (positive, empty, distractor, kumo)} == {"matched"}

    # the evidence numbers behind the default threshold: positives clear it, the rest don't
    thr = embed_threshold(world.cfg.detect, world.embedder.id)
    ri = load_or_build(world.cfg, world.store, world.embedder)
    emb = EmbeddingSignal(world.cfg.detect, world.embedder)
    hoshi_id = next(c.id for c in ri.refs.characters.values() if c.name == "Hoshimaru")
    for vid, expect in ((positive, True), (empty, False), (distractor, False)):
        ev = load_evidence(world.store, vid, world.embedder.id, world.embedder.dim)
        res = {r.character_id: r for r in emb.compare(ev, ri.refs, ri.part("embedding"))}
        top = res[hoshi_id].raw if hoshi_id in res else -1.0
        assert (top >= thr) is expect, (vid, top, thr)

    # re-running matches again without duplicating, keeping the review state
    with world.store.session() as s:
        s.get(Detection, det.id).review_state = "confirmed"
    assert rematch(world.store) == 4
    again = detect_pending(world.cfg, world.store, world.embedder, progress=False)
    assert again.matched == 4 and not again.index_built
    with world.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Detection)) == len(found)
        assert s.get(Detection, det.id).review_state == "confirmed"


def test_pdq_copy_catches_exact_and_mirrored_reuse(world):
    ref_img = on_plain(draw_hoshi(tilt=12, arms_up=True), (235, 242, 255))  # = hoshi_b.png
    rng = random.Random(9)
    exact = world.add_video([letterbox_portrait(ref_img), scene(rng, None, 0)])
    mirrored = world.add_video([scene(rng, None, 0), letterbox_portrait(ImageOps.mirror(ref_img))])
    unrelated = world.add_video([scene(rng, draw_kumo(), 0.8), scene(rng, None, 0)])

    pdq_sig = PdqSignal(world.cfg.detect)
    ri = load_or_build(world.cfg, world.store, world.embedder)
    found = {}
    for vid in (exact, mirrored, unrelated):
        ev = load_evidence(world.store, vid, world.embedder.id, world.embedder.dim)
        found[vid] = {r.character_id: r for r in pdq_sig.compare(ev, ri.refs, ri.part("pdq"))}
    hoshi_id = next(c.id for c in ri.refs.characters.values() if c.name == "Hoshimaru")
    assert found[exact][hoshi_id].matched and found[exact][hoshi_id].raw <= 8
    assert found[exact][hoshi_id].details["variant"] == "original"
    assert found[mirrored][hoshi_id].matched and found[mirrored][hoshi_id].raw <= 8
    assert found[mirrored][hoshi_id].details["variant"] != "original"
    assert not any(r.matched for r in found[unrelated].values())
    assert all(r.raw > 60 for r in found[unrelated].values())

    detect_pending(world.cfg, world.store, world.embedder, progress=False)
    dets = world.detections()
    for vid in (exact, mirrored):
        det = dets[(vid, "Hoshimaru")]
        assert det.match_type == "copy" and det.score > 0.8
        assert det.signals["pdq"]["distance"] <= 8
        with world.store.session() as s:
            assert Path(s.get(Reference, det.best_reference_id).path).stem != ""
    assert not [k for k in dets if k[0] == unrelated and k[1] == "Hoshimaru"]


def test_model_change_needs_reembedding(world):
    rng = random.Random(2)
    vid = world.add_video([scene(rng, draw_hoshi(), 0.8)] * 2, model_id="clip:other:model")
    stats = detect_pending(world.cfg, world.store, world.embedder, progress=False)
    assert stats.failed == 1 and stats.matched == 0
    video = world.state(vid)
    assert video.state == VideoState.FAILED
    assert "re-embed needed" in video.error and "clip:other:model" in video.error
    with pytest.raises(ReembedNeeded, match=world.embedder.id):
        load_evidence(world.store, vid, world.embedder.id, world.embedder.dim)


def test_index_is_reused_survives_a_crash_and_follows_the_registry(world):
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

    # a damaged data file (checksum mismatch) is rebuilt, not trusted
    data_file.write_bytes(data_file.read_bytes()[:-10])
    rebuilt = load_or_build(world.cfg, world.store, world.embedder)
    assert rebuilt.built and rebuilt.part("pdq").ntotal == len(pdq_meta)

    # a new reference changes the fingerprint: rebuilt and saved; the old data file goes
    extra = world.image("hoshi_e.png", on_plain(draw_hoshi(tilt=20), (250, 250, 250)))
    registry.add_images(world.cfg, world.store, "Hoshimaru", [extra])
    newer = load_or_build(world.cfg, world.store, world.embedder)
    assert newer.built and newer.fingerprint != ri.fingerprint
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


def test_no_characters_leaves_videos_waiting(tmp_path, embedder):
    cfg = make_config(tmp_path)
    store = Store(cfg.storage.database_url)
    with store.session() as s:
        s.add(Video(platform="tiktok", platform_id="1", url="u", state=VideoState.EMBEDDED))
    stats = detect_pending(cfg, store, embedder, progress=False)
    assert stats.claimed == 0 and "no characters" in stats.note
    assert load_reference_set(store).characters == {}
    with store.session() as s:
        assert s.scalar(select(Video.state)) == VideoState.EMBEDDED
    assert workqueue.claim(store, "x", 5, 60, states=(VideoState.EMBEDDED,)) == [1]


# ---------------------------------------------------------------------------------------------
# policies, allow-list, calibrated thresholds, negatives


def _hoshi_frames(rng: random.Random, n: int = 4) -> list[Image.Image]:
    poses = [draw_hoshi(tilt=5), draw_hoshi(tilt=-8, arms_up=True), draw_hoshi(tilt=15)]
    return [scene(rng, poses[i % 3], 0.8 - 0.05 * (i % 3), flip=i % 2 == 1) for i in range(n)]


def _flagged(world, vid: int) -> set[str]:
    return {name for (v, name) in world.detections() if v == vid}


def test_detect_pending_can_be_restricted_to_some_videos(world):
    rng = random.Random(21)
    a = world.add_video(_hoshi_frames(rng))
    b = world.add_video(_hoshi_frames(rng))
    stats = detect_pending(world.cfg, world.store, world.embedder, progress=False, video_ids=[a])
    assert stats.claimed == stats.matched == 1
    assert world.state(a).state == VideoState.MATCHED
    assert world.state(b).state == VideoState.EMBEDDED and not _flagged(world, b)
    none = detect_pending(world.cfg, world.store, world.embedder, progress=False, video_ids=[])
    assert none.claimed == 0 and world.state(b).state == VideoState.EMBEDDED
    detect_pending(world.cfg, world.store, world.embedder, progress=False, video_ids=[b])
    assert _flagged(world, a) == _flagged(world, b) == {"Hoshimaru"}


def test_allow_listed_accounts_are_never_flagged(world):
    rng = random.Random(22)
    with world.store.session() as s:
        hoshi = s.scalar(select(Character.id).where(Character.name == "Hoshimaru"))
        kumo = s.scalar(select(Character.id).where(Character.name == "Kumo"))
        s.add(AllowedAccount(platform="tiktok", author="Hoshi_Official", character_id=None))
        s.add(AllowedAccount(platform="tiktok", author="kumo_partner", character_id=kumo))
        s.add(AllowedAccount(platform="youtube", author="somebody", character_id=None))
    own = world.add_video(_hoshi_frames(rng), author="@hoshi_official")
    partner = world.add_video(_hoshi_frames(rng), author="kumo_partner")  # licensed for Kumo only
    stranger = world.add_video(_hoshi_frames(rng), author="somebody")  # allowed on youtube only
    stats = detect_pending(world.cfg, world.store, world.embedder, progress=False)
    assert not _flagged(world, own)
    assert _flagged(world, partner) == _flagged(world, stranger) == {"Hoshimaru"}
    assert stats.suppressed == 1 and "suppressed" in stats.summary()
    (entry,) = stats.suppressed_flags
    assert entry["video_id"] == own and entry["character_id"] == hoshi
    assert entry["author"] == "@hoshi_official" and entry["match_type"] == "semantic"
    assert world.state(own).state == VideoState.MATCHED
    with world.store.session() as s:
        s.execute(delete(AllowedAccount))


def test_character_policy_min_frames_and_seconds(world):
    rng = random.Random(23)
    three = [*_hoshi_frames(rng, 3), scene(rng, None, 0)]  # the character in 3 of 4 frames
    vid = world.add_video(three)

    def policy(min_frames: int | None, min_seconds: float | None) -> set[str]:
        with world.store.session() as s:
            ch = s.scalar(select(Character).where(Character.name == "Hoshimaru"))
            ch.min_frames, ch.min_seconds = min_frames, min_seconds
        rematch(world.store, [vid])
        detect_pending(world.cfg, world.store, world.embedder, progress=False, video_ids=[vid])
        return _flagged(world, vid)

    # the policy is under test, not the detector's strength: a threshold all three frames clear
    saved, world.cfg.detect.embed_threshold = world.cfg.detect.embed_threshold, 0.25
    try:
        assert policy(None, None) == {"Hoshimaru"}  # the config default: 2 frames
        assert policy(4, None) == set()  # 4 frames wanted, 3 match
        assert policy(3, None) == {"Hoshimaru"}
        # frames at 0, 1, 2, 3 s stand for 0.5 + 1 + 1 s: 2.5 s of matched video
        assert policy(None, 2.5) == {"Hoshimaru"}
        assert policy(None, 3.0) == set()
        det_signals = None
        policy(3, 2.0)
        for (v, name), det in world.detections().items():
            if v == vid and name == "Hoshimaru":
                det_signals = det.signals["embedding"]
        assert det_signals is not None
        assert det_signals["frames_needed"] == 3 and det_signals["seconds_matched"] == 2.5
    finally:
        world.cfg.detect.embed_threshold = saved
        policy(None, None)


def test_calibrated_threshold_replaces_the_default(world):
    rng = random.Random(24)
    vid = world.add_video(_hoshi_frames(rng))
    detect_pending(world.cfg, world.store, world.embedder, progress=False, video_ids=[vid])
    assert _flagged(world, vid) == {"Hoshimaru"}
    with world.store.session() as s:
        hoshi = s.scalar(select(Character.id).where(Character.name == "Hoshimaru"))
        for model_id, thr in ((world.embedder.id, 0.99), ("clip:other:model", -1.0)):
            s.add(
                CharacterThreshold(
                    character_id=hoshi, model_id=model_id, signal="embedding", threshold=thr
                )
            )
    refs = load_reference_set(world.store, world.embedder.id)
    assert refs.characters[hoshi].threshold("embedding") == 0.99
    assert refs.characters[hoshi].threshold("pdq") is None
    rematch(world.store, [vid])
    detect_pending(world.cfg, world.store, world.embedder, progress=False, video_ids=[vid])
    assert _flagged(world, vid) == set()  # nothing reaches 0.99
    ev = load_evidence(world.store, vid, world.embedder.id, world.embedder.dim)
    ri = load_or_build(world.cfg, world.store, world.embedder)
    emb = EmbeddingSignal(world.cfg.detect, world.embedder)
    res = {r.character_id: r for r in emb.compare(ev, ri.refs, ri.part("embedding"))}
    assert res[hoshi].details["threshold"] == 0.99 and res[hoshi].details["calibrated"]
    assert not res[hoshi].matched
    with world.store.session() as s:
        s.execute(delete(CharacterThreshold))
    rematch(world.store, [vid])
    detect_pending(world.cfg, world.store, world.embedder, progress=False, video_ids=[vid])
    assert _flagged(world, vid) == {"Hoshimaru"}


def test_negative_references_win_the_look_alike_regions(world):
    """The frog is registered as a negative of Hoshimaru: its regions go to the negative."""
    rng = random.Random(25)
    frog = world.add_video([scene(rng, draw_frog(), s) for s in (0.85, 0.7, 0.75)])
    detect_pending(world.cfg, world.store, world.embedder, progress=False, video_ids=[frog])
    assert not _flagged(world, frog)
    ri = load_or_build(world.cfg, world.store, world.embedder)
    emb = EmbeddingSignal(world.cfg.detect, world.embedder)
    ev = load_evidence(world.store, frog, world.embedder.id, world.embedder.dim)
    hoshi = next(c.id for c in ri.refs.characters.values() if c.name == "Hoshimaru")
    res = {r.character_id: r for r in emb.compare(ev, ri.refs, ri.part("embedding"))}
    assert hoshi not in res or not res[hoshi].matched
    # the classifier learnt the negative as background: no region of the frog is Hoshimaru's
    probs = emb.class_scores(ev.vectors, ri.part("embedding"))
    assert probs[hoshi].max() < emb.threshold, probs[hoshi].max()
    negatives = [m for m in ri.part("embedding").meta if m["negative"]]
    assert {m["aug"] for m in negatives} == {"composite", "composite_mirror"}


def test_match_policy_and_frame_seconds_rules():
    assert frame_seconds([0.0, 1.0, 2.0, 4.0, 5.0], 6.0).tolist() == [0.5, 1.0, 1.5, 1.5, 1.5]
    assert frame_seconds([3.0], None).tolist() == [1.0]
    assert frame_seconds([], 5.0).size == 0
    secs = np.array([1.0, 1.0, 1.0])
    default = MatchPolicy.for_character(None, 2)
    assert default.check(np.array([True, False, False]), secs, 1)[3]  # one-frame video
    assert not default.check(np.array([True, False, False]), secs, 3)[3]
    strict = MatchPolicy.for_character(CharacterRef(1, "x", min_frames=2), 5)
    assert strict.min_frames == 2 and strict.strict
    assert not strict.check(np.array([True]), np.array([1.0]), 1)[3]  # not lowered
    timed = MatchPolicy.for_character(CharacterRef(1, "x", min_seconds=1.5), 1)
    assert timed.check(np.array([True, True, False]), secs, 3) == (2, 1, 2.0, True)
    assert not timed.check(np.array([True, False, False]), secs, 3)[3]
    copy = MatchPolicy.for_character(None, 2, copy=True)
    assert copy.min_frames == 1


def test_reference_subject_is_cut_from_its_plain_background():
    pic = on_plain(draw_hoshi(), (235, 242, 255))
    mask = foreground_mask(pic)
    assert mask is not None and 0.2 < mask.mean() < 0.7
    assert not mask[0].any() and not mask[:, 0].any()  # the edges are background
    assert mask[64, 64]  # the body, enclosed, is subject even where it is light
    assert foreground_mask(busy_background(random.Random(1))) is None  # no plain background
    backdrop = busy_background(random.Random(2))
    comp = composite_on(pic, mask, backdrop)
    assert comp.size == (224, 224)
    square = np.asarray(backdrop.crop((0, 140, 360, 500)).resize((224, 224)), np.float32)
    corner = np.asarray(comp, dtype=np.float32)[:8, :8]
    assert np.abs(corner - square[:8, :8]).max() < 40  # the backdrop shows around the subject
