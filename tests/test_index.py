"""The registry, the signals and the matcher, on a tiny drawn world (:mod:`tests.index_support`;
the reference index's files are tested in ``test_refindex.py``).

Everything is real: SQLite store, FAISS, pdqhash, the effnet-lite0 embedder with its ImageNet
weights, the pipeline's hashing and region functions. The characters are original shapes
drawn with PIL.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from sqlalchemy import delete, func, select

from charwatch.config import Config
from index import registry
from index.matcher import ReembedNeeded, detect_pending, load_evidence, rematch
from index.refindex import load_or_build, load_reference_set
from index.signals import (
    CaptionSignal,
    CharacterRef,
    EmbeddingSignal,
    MatchPolicy,
    PdqSignal,
    ProvenanceSignal,
    ReferenceSet,
    VideoEvidence,
    Whitener,
    calibrate_distance,
    calibrate_similarity,
    composite_on,
    embed_threshold,
    fold_text,
    foreground_mask,
    frame_seconds,
)
from storage import workqueue
from storage.blobs import data_file
from storage.db import Store
from storage.models import (
    AllowedAccount,
    Character,
    CharacterThreshold,
    Detection,
    Reference,
    Video,
    VideoState,
)
from tests.index_support import (
    World,
    busy_background,
    draw_frog,
    draw_hoshi,
    draw_kumo,
    drawn_world,
    letterbox_portrait,
    make_config,
    on_plain,
    scene,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory, embedder, bank_file) -> World:
    """Hoshimaru (4 references, Japanese aliases, one negative) and Kumo (2 references)."""
    return drawn_world(tmp_path_factory.mktemp("world"), embedder, bank_file)


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


def test_matching_follows_a_processing_run_until_it_ends(world):
    """With ``until``, an empty claim waits instead of returning: a video embedded while
    the matcher waits is matched, and setting the event drains what is left."""
    import threading

    rng = random.Random(22)
    first = world.add_video(_hoshi_frames(rng))
    processed = threading.Event()
    got: list = []
    matcher = threading.Thread(
        target=lambda: got.append(
            detect_pending(world.cfg, world.store, world.embedder, progress=False, until=processed)
        )
    )
    matcher.start()

    def matched_soon(vid: int) -> bool:
        deadline = time.monotonic() + 60
        while world.state(vid).state != VideoState.MATCHED and time.monotonic() < deadline:
            time.sleep(0.05)
        return world.state(vid).state == VideoState.MATCHED

    assert matched_soon(first) and matcher.is_alive()
    later = world.add_video(_hoshi_frames(rng))  # embedded while the matcher waits
    assert matched_soon(later) and matcher.is_alive()  # claimed while following, not drained
    processed.set()
    matcher.join(timeout=60)
    assert not matcher.is_alive()
    assert got[0].claimed == got[0].matched >= 2  # with what earlier tests left embedded
    assert world.state(later).state == VideoState.MATCHED
    assert _flagged(world, first) == _flagged(world, later) == {"Hoshimaru"}


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
