"""The archive index, the retroactive scan and the re-embed path, on real parts.

Real SQLite store, FAISS, pdqhash, the effnet-lite0 embedder (and open_clip with random
weights for the model change); videos are stored the way the pipeline stores them (frame
JPEGs, PDQ, region crops from :func:`pipeline.regions.regions`, float16 vectors). The
characters are the fixture platform's original demo characters.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import faiss
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps
from sqlalchemy import delete, func, select

from charwatch.cli import main
from charwatch.config import Config
from fixture_platform.characters import reference_image, render_character
from index import registry
from index.archive import (
    ArchiveError,
    ArchiveIndex,
    archive_dir,
    archive_status,
    lookup,
    sidecar_path,
)
from index.matcher import ReembedNeeded, detect_pending, load_evidence
from index.refindex import embedder_slug
from index.retro import has_archived_frames, retro_scan
from index.shards import ivf_lists, pq_subvectors
from pipeline.reembed import reembed
from pipeline.regions import regions
from pipeline.worker import process_pending
from storage.db import Store
from storage.models import Detection, Embedding, Frame, Video, VideoState
from storage.vectors import encode_vector
from tests.conftest import CLIP_TEST_SPEC, seed_bank
from tests.index_support import store_embedded_video

W, H = 360, 640


# ---------------------------------------------------------------------------------------------
# a small world stored as the pipeline stores it


def backdrop(rng: random.Random) -> Image.Image:
    """A busy portrait frame: gradient, translucent shapes, a caption bar."""
    top, bottom = (tuple(rng.randrange(256) for _ in range(3)) for _ in range(2))
    mask = Image.linear_gradient("L").resize((W, H))
    img = Image.composite(Image.new("RGB", (W, H), bottom), Image.new("RGB", (W, H), top), mask)
    d = ImageDraw.Draw(img, "RGBA")
    for _ in range(8):
        x, y, r = rng.randrange(W), rng.randrange(H), rng.randrange(20, 70)
        color = (*[rng.randrange(40, 255) for _ in range(3)], 150)
        (d.ellipse if rng.random() < 0.5 else d.rectangle)((x - r, y - r, x + r, y + r), fill=color)
    d.rounded_rectangle((12, int(H * 0.8), W - 60, int(H * 0.8) + 40), radius=8, fill=(0, 0, 0))
    return img


def scene(
    rng: random.Random, key: str | None, scale: float = 0.8, pose: int = 0, square: bool = False
) -> Image.Image:
    """A frame showing demo character ``key`` (or nobody) at ``scale`` x the frame width;
    ``square``: a 360x360 frame (fewer region crops to embed)."""
    img = backdrop(rng).convert("RGBA")
    if key is not None:
        px = int(W * scale)
        sprite = render_character(key, pose, px)
        img.alpha_composite(sprite, (rng.randrange(W - px + 1), rng.randrange(60, H - px - 60)))
    img = img.convert("RGB")
    if square:
        return ImageOps.fit(img, (W, W), centering=(0.5, 0.4))
    return img


class Lab:
    """A temporary data dir and store; :meth:`add_video` stores frames like the worker."""

    def __init__(self, root: Path, embedder, bank: Path | None = None) -> None:
        self.root = root
        self.cfg = Config()
        self.cfg.storage.data_dir = str(root / "data")
        self.store = Store(self.cfg.storage.database_url)
        self.embedder = embedder
        self.refs = root / "refs"
        self.refs.mkdir(parents=True, exist_ok=True)
        self.n = 0
        if bank is not None:  # the session's background bank (conftest.bank_file)
            seed_bank(self.cfg, bank)

    def reference(self, key: str, index: int) -> Path:
        path = self.refs / f"{key}_{index}.png"
        reference_image(key, index, size=256).save(path)
        return path

    def add_video(
        self,
        frames: list[Image.Image],
        *,
        author: str = "someone",
        state: str = VideoState.EMBEDDED,
        embedder=None,
    ) -> int:
        self.n += 1
        video = Video(
            platform="tiktok",
            platform_id=f"v{self.n}",
            url=f"http://127.0.0.1:9/@{author}/video/{self.n}",
            author=author,
            state=state,
        )
        return store_embedded_video(
            self.cfg,
            self.store,
            embedder or self.embedder,
            video,
            frames,
            f"v{self.n}",
            keep_frames=True,
        )

    def embedding_ids(self, video_id: int) -> list[int]:
        with self.store.session() as s:
            return list(
                s.scalars(
                    select(Embedding.id)
                    .join(Frame, Frame.id == Embedding.frame_id)
                    .where(Frame.video_id == video_id)
                )
            )

    def flags(self) -> set[tuple[int, str]]:
        from storage.models import Character

        with self.store.session() as s:
            return {
                (vid, name)
                for vid, name in s.execute(
                    select(Detection.video_id, Character.name).join(
                        Character, Character.id == Detection.character_id
                    )
                )
            }


def random_rows(store: Store, n_videos: int, dim: int, model_id: str, seed: int) -> list[int]:
    """Videos with 4 frames x 2 regions of random unit vectors (bulk for the size tests)."""
    rng = np.random.default_rng(seed)
    ids = []
    with store.session() as s:
        for i in range(n_videos):
            v = Video(
                platform="youtube",
                platform_id=f"r{seed}-{i}",
                url=f"u{seed}-{i}",
                state=VideoState.MATCHED,
            )
            s.add(v)
            s.flush()
            ids.append(v.id)
            for t in range(4):
                f = Frame(video_id=v.id, t=float(t))
                s.add(f)
                s.flush()
                for region in ("full", "mid"):
                    vec = rng.normal(size=dim).astype(np.float32)
                    vec /= np.linalg.norm(vec)
                    s.add(
                        Embedding(
                            frame_id=f.id,
                            region=region,
                            model_id=model_id,
                            vector=encode_vector(vec),
                        )
                    )
    return ids


def stored_matrix(store: Store, model_id: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    with store.session() as s:
        rows = s.execute(
            select(Embedding.id, Embedding.vector).where(Embedding.model_id == model_id)
        ).all()
    ids = np.array([r[0] for r in rows])
    vecs = np.stack([np.frombuffer(r[1], np.float16).astype(np.float32) for r in rows])
    return ids, vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# the archive index


def test_archive_builds_adds_follows_deletions_and_guards_the_model(tmp_path, embedder):
    lab = Lab(tmp_path, embedder)
    rng = random.Random(1)
    frames = [scene(rng, "pompom", square=True), scene(rng, "mossling", 0.7, square=True)]
    v1 = lab.add_video(frames[:1])
    v2 = lab.add_video(frames[1:])

    arc = ArchiveIndex.load_or_create(lab.cfg, embedder.id, embedder.dim)
    assert arc.kind == "flat" and arc.ntotal == 0
    added = arc.update(lab.store)
    ids1, ids2 = lab.embedding_ids(v1), lab.embedding_ids(v2)
    assert added == arc.ntotal == len(ids1) + len(ids2) == 2 * len(regions(frames[0]))
    assert arc.high_water == max(ids1 + ids2)
    side = arc.save()
    doc = json.loads(side.read_text())
    assert doc["embedder_id"] == embedder.id and doc["ntotal"] == arc.ntotal
    assert (archive_dir(lab.cfg) / doc["data_file"]).is_file()

    # a stored vector finds itself first, with the frame and video it belongs to
    ev = load_evidence(lab.store, v2, embedder.id, embedder.dim)
    scores, hits = arc.search(ev.vectors[:1], 3)
    assert hits[0][0] in ids2 and scores[0][0] > 0.99
    assert lookup(lab.store, [int(hits[0][0])])[int(hits[0][0])][0] == v2

    # incremental: a reload is not a rebuild; only the new rows are added
    again = ArchiveIndex.load_or_create(lab.cfg, embedder.id, embedder.dim)
    assert not again.rebuilt and again.ntotal == arc.ntotal
    v3 = lab.add_video([scene(rng, "kitsumaru", square=True)])
    assert again.update(lab.store) == len(lab.embedding_ids(v3))
    assert again.update(lab.store) == 0

    # rows deleted from the store (a video removed) leave the index on the next update
    with lab.store.session() as s:
        s.delete(s.get(Video, v1))
    again.update(lab.store)
    assert again.ntotal == len(ids2) + len(lab.embedding_ids(v3))
    assert not set(again.indexed_ids().tolist()) & set(ids1)
    _, hits = again.search(ev.vectors, again.ntotal)
    assert not set(hits.ravel().tolist()) & set(ids1)
    again.save()

    # vectors of another model are never added; status says what needs re-embedding
    other = ArchiveIndex.load_or_create(lab.cfg, "clip:other:fp32", 512)
    v4 = random_rows(lab.store, 1, 512, "clip:other:fp32", seed=4)[0]
    n_before = again.ntotal
    assert again.update(lab.store) == 0 and again.ntotal == n_before
    assert other.update(lab.store) == 8 and set(other.indexed_ids().tolist()) == set(
        lab.embedding_ids(v4)
    )
    status = archive_status(lab.cfg, lab.store, embedder.id)
    assert status["store_vectors"] == again.ntotal and status["pending_vectors"] == 0
    assert status["other_models"] == {"clip:other:fp32": 8}
    assert status["frames_to_reembed"] == 4 and status["videos_to_reembed"] == 1
    with pytest.raises(ArchiveError, match="dimension"):
        again.search(np.ones((1, 512), np.float32), 1)


def test_archive_save_is_atomic_and_a_damaged_file_is_rebuilt(tmp_path):
    cfg = Config()
    cfg.storage.data_dir = str(tmp_path / "data")
    store = Store(cfg.storage.database_url)
    model, dim = "test-model:fp32", 32
    random_rows(store, 10, dim, model, seed=1)
    arc = ArchiveIndex.load_or_create(cfg, model, dim)
    arc.update(store)
    side = arc.save()
    doc = json.loads(side.read_text())
    data = archive_dir(cfg) / doc["data_file"]

    # a crash while writing the next version leaves temporary files: the saved one still loads
    (archive_dir(cfg) / f".{data.name}.x1.tmp").write_bytes(data.read_bytes()[:50])
    (archive_dir(cfg) / f".{side.name}.x2.tmp").write_text('{"format": "charw')
    loaded = ArchiveIndex.load_or_create(cfg, model, dim)
    assert not loaded.rebuilt and loaded.ntotal == 80

    # a crash after the new data file but before its sidecar: the old pair is still used
    random_rows(store, 2, dim, model, seed=2)
    loaded.update(store)
    newer = faiss.serialize_index(loaded.index).tobytes()
    (archive_dir(cfg) / f"{embedder_slug(model)}-999999-deadbeef.faiss").write_bytes(newer)
    again = ArchiveIndex.load_or_create(cfg, model, dim)
    assert not again.rebuilt and again.ntotal == 80
    assert again.update(store) == 16  # catches up from its high-water mark
    again.save()
    assert not (archive_dir(cfg) / f"{embedder_slug(model)}-999999-deadbeef.faiss").exists()

    # a truncated data file does not match the sidecar's checksum: rebuilt from the store
    doc = json.loads(sidecar_path(cfg, model).read_text())
    data = archive_dir(cfg) / doc["data_file"]
    data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 2])
    broken = ArchiveIndex.load_or_create(cfg, model, dim)
    assert "checksum" in broken.rebuilt and broken.ntotal == 0
    assert broken.update(store) == 96
    broken.save()
    assert not ArchiveIndex.load_or_create(cfg, model, dim).rebuilt

    # a missing data file, or a sidecar of another dimension, also rebuild
    doc = json.loads(sidecar_path(cfg, model).read_text())
    (archive_dir(cfg) / doc["data_file"]).unlink()
    assert ArchiveIndex.load_or_create(cfg, model, dim).rebuilt
    assert "dimension" in ArchiveIndex.load_or_create(cfg, model, dim + 1).rebuilt


def test_ivf_above_the_size_threshold_and_hnsw_on_request(tmp_path):
    cfg = Config()
    cfg.storage.data_dir = str(tmp_path / "data")
    store = Store(cfg.storage.database_url)
    model, dim = "test-model:fp32", 48
    random_rows(store, 20, dim, model, seed=3)  # 160 vectors: below the lowered threshold
    arc = ArchiveIndex.load_or_create(cfg, model, dim, flat_max=300)
    arc.update(store)
    assert arc.kind == "flat"
    random_rows(store, 30, dim, model, seed=5)  # 400 in all: over it
    arc.update(store)
    assert arc.kind == "ivf" and arc.ntotal == 400 and arc.params["codes"] == "sq8"
    assert arc.params["nlist"] == ivf_lists(400) == 10 and arc.trained_on == 400
    arc.save()
    loaded = ArchiveIndex.load_or_create(cfg, model, dim, flat_max=300)
    assert loaded.kind == "ivf" and loaded.ntotal == 400 and not loaded.rebuilt

    # IVF (8 of 10 lists probed, 8-bit codes) keeps most exact neighbours
    ids, vecs = stored_matrix(store, model, dim)
    queries = vecs[:20] + 0.3 * np.random.default_rng(0).normal(size=(20, dim)).astype(np.float32)
    _, got = loaded.search(queries, 10)
    exact = ids[np.argsort(-(queries / np.linalg.norm(queries, axis=1)[:, None]) @ vecs.T)[:, :10]]
    recall = np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got, exact, strict=True)])
    assert recall >= 0.9, recall

    # incremental add and deletion on IVF; no retraining until it has grown 4x
    extra = random_rows(store, 5, dim, model, seed=6)
    assert loaded.update(store) == 40 and loaded.kind == "ivf" and loaded.trained_on == 400
    with store.session() as s:
        s.execute(delete(Video).where(Video.id.in_(extra[:2])))
    loaded.update(store)
    assert loaded.ntotal == 424 and not set(loaded.indexed_ids().tolist()) - set(
        stored_matrix(store, model, dim)[0].tolist()
    )
    loaded.save()

    # past the product-quantisation threshold it is rebuilt with PQ codes
    pq = ArchiveIndex.load_or_create(cfg, model, dim, flat_max=300, pq_min=420)
    pq.update(store)
    assert pq.kind == "ivfpq" and pq.ntotal == 424
    assert pq.params["m"] == pq_subvectors(dim) == 12 and pq.params["nbits"] == 8
    ids, vecs = stored_matrix(store, model, dim)
    _, got = pq.search(vecs[:20], 10)
    assert np.mean([i in g for i, g in zip(ids[:20], got, strict=True)]) >= 0.8
    # re-ranked by the exact stored vectors: each finds itself first, with its exact score
    scores, got = pq.search(vecs[:20], 10, store=store)
    assert got[:, 0].tolist() == ids[:20].tolist()
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-3)

    hnsw = ArchiveIndex.load_or_create(cfg, model, dim, kind="hnsw")
    assert hnsw.rebuilt == "kind changed to hnsw"
    hnsw.update(store)
    assert hnsw.kind == "hnsw" and hnsw.ntotal == 424
    _, got = hnsw.search(vecs[:5], 1)
    assert got[:, 0].tolist() == ids[:5].tolist()


# ---------------------------------------------------------------------------------------------
# the retroactive scan


@pytest.fixture(scope="module")
def past(tmp_path_factory, embedder, bank_file) -> Lab:
    """Pompom registered; processed and matched videos of Kitsumaru (not yet registered),
    Pompom, an unregistered look-alike, and nobody."""
    lab = Lab(tmp_path_factory.mktemp("past"), embedder, bank_file)
    registry.add_character(
        lab.cfg, lab.store, "Pompom", images=[lab.reference("pompom", i) for i in range(2)]
    )
    rng = random.Random(7)
    lab.kitsu = lab.add_video(
        [scene(rng, "kitsumaru", 0.85, pose=p) for p in (0, 5)], author="fan_1"
    )
    lab.pompom = lab.add_video([scene(rng, "pompom", 0.8, pose=3)])
    lab.moss = lab.add_video([scene(rng, "mossling", 0.8, pose=4)])
    lab.empty = lab.add_video([scene(rng, None)])
    lab.gear = lab.add_video([scene(rng, "gearbolt", 0.85, pose=p) for p in (0, 6, 3)])
    stats = detect_pending(lab.cfg, lab.store, embedder, progress=False)
    assert stats.matched == 5
    return lab


def test_registering_a_character_flags_its_past_videos_only(past, embedder):
    assert (past.kitsu, "Kitsumaru") not in past.flags()
    assert has_archived_frames(past.store)
    ch = registry.add_character(
        past.cfg,
        past.store,
        "Kitsumaru",
        images=[past.reference("kitsumaru", i) for i in range(3)],
    )
    res = retro_scan(past.cfg, past.store, embedder, [ch.id])
    assert res.queries == 6  # three references, each as given and mirrored
    assert res.archive_vectors == sum(
        len(past.embedding_ids(v))
        for v in (past.kitsu, past.pompom, past.moss, past.empty, past.gear)
    )
    assert past.kitsu in res.candidates
    assert [(d["video_id"], d["character"]) for d in res.created] == [(past.kitsu, "Kitsumaru")]
    flags = past.flags()
    assert (past.kitsu, "Kitsumaru") in flags
    others = (past.pompom, past.moss, past.empty, past.gear)
    assert not {(v, "Kitsumaru") for v in others} & flags
    with past.store.session() as s:
        det = s.scalar(select(Detection).where(Detection.video_id == past.kitsu))
        assert det.signals["embedding"]["matched"] and det.model_id == embedder.id
        states = set(s.scalars(select(Video.state)))
    assert states == {VideoState.MATCHED}  # every candidate went through the matcher again
    # the archive was saved and is reused (nothing new to add)
    again = retro_scan(past.cfg, past.store, embedder, [ch.id])
    assert again.archive_added == 0 and again.created == []


def test_cli_add_runs_the_retroactive_scan_unless_told_not_to(past, tmp_path, capsys):
    config = tmp_path / "charwatch.toml"
    config.write_text(f'[storage]\ndata_dir = "{past.cfg.data_dir.as_posix()}"\n')
    refs = [str(past.reference("gearbolt", i)) for i in range(3)]

    def cli(*args: str) -> str:
        code = main(["--config", str(config), *args])
        out = capsys.readouterr()
        assert code == 0, out.err
        return out.out

    out = cli("characters", "add", "Gearbolt", "--no-retro", "--image", refs[0])
    assert "retroactive" not in out and (past.gear, "Gearbolt") not in past.flags()

    out = cli("characters", "add-images", "Gearbolt", *refs[1:])
    assert "retroactive scan:" in out and "1 newly flagged" in out, out
    with past.store.session() as s:
        assert f" {s.get(Video, past.gear).url} " in out
    assert (past.gear, "Gearbolt") in past.flags()


# ---------------------------------------------------------------------------------------------
# the model change


def test_model_change_goes_through_reembed_and_never_mixes(
    tmp_path, embedder, clip_embedder, capsys
):
    lab = Lab(tmp_path, embedder)
    rng = random.Random(3)
    frame = scene(rng, "pompom", square=True)
    per_frame = len(regions(frame))
    kept = lab.add_video([frame], state=VideoState.MATCHED)
    gone = lab.add_video([scene(rng, None, square=True)], state=VideoState.MATCHED)
    with lab.store.session() as s:  # this one's frame files were cleaned up
        for f in s.scalars(select(Frame).where(Frame.video_id == gone)):
            (lab.cfg.data_dir / f.image_path).unlink()
    old = ArchiveIndex.load_or_create(lab.cfg, embedder.id, embedder.dim)
    old.update(lab.store)
    old.save()

    clip = clip_embedder
    with pytest.raises(ReembedNeeded, match="re-embed needed"):
        load_evidence(lab.store, kept, clip.id, clip.dim)
    assert archive_status(lab.cfg, lab.store, clip.id)["videos_to_reembed"] == 2

    dry = reembed(lab.cfg, lab.store, clip.id, dry_run=True)
    assert dry.videos == 2 and dry.rows_deleted == 2 * per_frame
    with lab.store.session() as s:  # nothing changed
        assert s.scalar(select(func.count()).select_from(Embedding)) == 2 * per_frame
    config = tmp_path / "charwatch.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{lab.cfg.data_dir.as_posix()}"\n\n'
        f'[embed]\nmodel = "{CLIP_TEST_SPEC}"\n'
    )
    assert main(["--config", str(config), "reembed"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"2 video(s) were queued for re-embedding with {clip.id} (1 from stored frames, "
        f"0 re-sampled from kept media, 1 downloaded again); {2 * per_frame} vector(s) of "
        "other models were deleted"
    ), out
    assert f"  {embedder.id}: {2 * per_frame} vector(s)" in out and "charwatch process" in out
    assert not sidecar_path(lab.cfg, embedder.id).exists()  # the old model's archive is gone
    with lab.store.session() as s:
        assert s.get(Video, kept).state == VideoState.FRAMES
        assert s.get(Video, gone).state == VideoState.DISCOVERED
        assert s.scalar(select(func.count()).select_from(Embedding)) == 0

    # the real worker embeds the stored frame JPEGs with the new model; nothing is downloaded
    done = process_pending(lab.cfg, lab.store, clip, limit=1, progress=False)
    assert done.processed == 1 and done.downloaded == 0
    with lab.store.session() as s:
        assert s.get(Video, kept).state == VideoState.EMBEDDED
        models = set(s.scalars(select(Embedding.model_id)))
    assert models == {clip.id}
    ev = load_evidence(lab.store, kept, clip.id, clip.dim)
    assert ev.vectors.shape == (per_frame, clip.dim)

    new = ArchiveIndex.load_or_create(lab.cfg, clip.id, clip.dim)
    assert new.update(lab.store) == per_frame and new.ntotal == per_frame
    # an old-model archive would follow its deleted rows: nothing of the old model is left
    old = ArchiveIndex.load_or_create(lab.cfg, embedder.id, embedder.dim)
    assert old.update(lab.store) == 0 and old.ntotal == 0
