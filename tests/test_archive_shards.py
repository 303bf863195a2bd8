"""Archive shards on real parts: shard files and their manifest, IVF-PQ trained once, encoded
shards merged into FAISS on-disk inverted lists, crash safety, the retroactive scan shard by
shard, and database vectors pruned to the shards (real SQLite store, real FAISS; the matching
test uses the effnet-lite0 embedder)."""

from __future__ import annotations

import json
import random

import faiss
import numpy as np
import pytest
from sqlalchemy import delete, func, select

from charwatch.config import Config
from index import registry
from index.archive import ArchiveIndex, archive_status, drop_archive, sidecar_path
from index.matcher import detect_pending, load_evidence, rematch
from index.retro import retro_scan, retro_scan_shard, scan_shards
from index.shards import (
    MANIFEST,
    ShardError,
    ShardStore,
    merge_topk,
    prune_db_vectors,
    shard_dir,
)
from pipeline.reembed import reembed
from storage.db import Store
from storage.models import Detection, Embedding, Frame, Video, VideoState
from tests.test_archive import Lab, random_rows, scene, stored_matrix

MODEL, DIM = "test-model:fp32", 48


def world(tmp_path) -> tuple[Config, Store]:
    cfg = Config()
    cfg.storage.data_dir = str(tmp_path / "data")
    return cfg, Store(cfg.storage.database_url)


def planted(store: Store, n: int, seed: int) -> tuple[list[int], np.ndarray]:
    """``n`` videos of 8 random vectors; returns the video ids and one vector per video kept
    aside to search for (a noisy copy of its first stored vector)."""
    vids = random_rows(store, n, DIM, MODEL, seed=seed)
    ids, vecs = stored_matrix(store, MODEL, DIM)
    with store.session() as s:
        firsts = [
            s.scalar(
                select(func.min(Embedding.id))
                .join(Frame, Frame.id == Embedding.frame_id)
                .where(Frame.video_id == v)
            )
            for v in vids
        ]
    rows = np.searchsorted(ids, firsts)
    rng = np.random.default_rng(seed)
    queries = vecs[rows] + 0.05 * rng.normal(size=(n, DIM)).astype(np.float32)
    return firsts, queries


def test_each_update_writes_a_shard_and_the_merged_on_disk_index_finds_planted_vectors(tmp_path):
    cfg, store = world(tmp_path)
    arc = ArchiveIndex.load_or_create(cfg, MODEL, DIM, flat_max=100, pq_min=300)
    firsts, queries = planted(store, 30, seed=1)  # 240 vectors: in-memory IVF-SQ8
    arc.update(store)
    arc.save()
    assert arc.kind == "ivf" and len(arc.shards.shards) == 1 and arc.shards.total == 240

    more, more_q = planted(store, 40, seed=2)  # 560 vectors in all: sharded IVF-PQ, on disk
    firsts += more[len(firsts) :]
    queries = np.concatenate([queries, more_q[30:]])
    arc.update(store)
    arc.save()
    assert arc.kind == "ivfpq" and arc.ntotal == 560
    st = ShardStore.open(cfg, MODEL, DIM)
    assert [sh.n for sh in st.shards] == [240, 320] and st.high_water == max(firsts) + 7
    doc = json.loads((shard_dir(cfg, MODEL) / MANIFEST).read_text())
    assert doc["merged"]["ntotal"] == 560 and doc["trained"]["m"] == 12
    assert all(sh["codes"] for sh in doc["shards"])
    # ids and vectors are the database's bytes
    ids, _ = stored_matrix(store, MODEL, DIM)
    assert np.concatenate([st.ids(sh) for sh in st.shards]).tolist() == sorted(ids.tolist())
    with store.session() as s:
        blob = s.scalar(select(Embedding.vector).where(Embedding.id == int(ids[5])))
    assert st.raw_by_id([int(ids[5])])[int(ids[5])].tobytes() == blob

    # the merged index keeps its inverted lists on disk, memory-mapped
    index = st.open_merged()
    invlists = faiss.extract_index_ivf(index).invlists
    assert isinstance(faiss.downcast_InvertedLists(invlists), faiss.OnDiskInvertedLists)
    assert index.ntotal == 560

    # a reload is not a rebuild; planted vectors are found first (re-ranked exactly)
    again = ArchiveIndex.load_or_create(cfg, MODEL, DIM, flat_max=100, pq_min=300)
    assert not again.rebuilt and again.kind == "ivfpq" and again.ntotal == 560
    scores, got = again.search(queries, 10)
    assert (got[:, 0] == np.array(firsts)).mean() >= 0.95
    assert np.all(np.diff(scores, axis=1) <= 1e-6)

    # a third update adds a shard without training again; only it is encoded, all merged anew
    trained = st.trained["file"]
    old_codes = [sh.codes for sh in st.shards]
    random_rows(store, 5, DIM, MODEL, seed=3)
    assert again.update(store) == 40
    again.save()
    st.reload()
    assert len(st.shards) == 3 and st.trained["file"] == trained
    assert [sh.codes for sh in st.shards[:2]] == old_codes and st.merge_current()
    assert st.merged["ntotal"] == 600
    names = {p.name for p in shard_dir(cfg, MODEL).iterdir()}
    assert sum(n.endswith(".ivfdata") for n in names) == 1  # the old merge is gone

    # deleted rows are tombstoned and never returned; the archive counts what is left
    with store.session() as s:
        s.execute(delete(Video).where(Video.id == 1))
    again.update(store)
    again.save()
    assert again.ntotal == 592 and len(again.shards.deleted) == 8
    _, got = again.search(queries[:5], 50)
    assert firsts[0] not in got.ravel().tolist()
    _, got = scan_shards(cfg, MODEL, DIM, queries[:5], 50)
    assert firsts[0] not in got.ravel().tolist()


def test_a_half_written_shard_is_ignored_and_its_rows_written_again(tmp_path):
    cfg, store = world(tmp_path)
    random_rows(store, 10, DIM, MODEL, seed=1)
    st = ShardStore.open(cfg, MODEL, DIM)
    assert st.sync(store).added == 80
    folder = shard_dir(cfg, MODEL)

    # a crash after the next shard's files were renamed, before the manifest named them,
    # and one in the middle of writing (temporary files)
    random_rows(store, 3, DIM, MODEL, seed=2)
    ids, _ = stored_matrix(store, MODEL, DIM)
    rows = dict(st.raw_by_id(ids))
    new = ids[ids > st.high_water]
    with store.session() as s:
        blobs = dict(
            s.execute(
                select(Embedding.id, Embedding.vector).where(Embedding.id.in_(new.tolist()))
            ).all()
        )
    vecs = np.stack([np.frombuffer(blobs[int(i)], np.float16) for i in new])
    orphan = st.write_shard([(new, vecs)])
    assert orphan is not None and (folder / orphan.vec_file).is_file()
    (folder / ".shard-000009-deadbeef.f16.tmp").write_bytes(b"\0" * 100)
    (folder / "shard-000009-deadbeef.f16").write_bytes(b"\0" * 100)

    reader = ShardStore.open(cfg, MODEL, DIM)  # readers see only what the manifest names
    assert reader.total == 80 and len(reader.shards) == 1
    stats = ShardStore.open(cfg, MODEL, DIM).sync(store)
    assert stats.added == 24 and len(stats.shards) == 1 and stats.shards[0] != orphan.name
    left = {p.name for p in folder.iterdir()}
    assert orphan.vec_file not in left and "shard-000009-deadbeef.f16" not in left
    assert not any(n.endswith(".tmp") for n in left)
    st = ShardStore.open(cfg, MODEL, DIM)
    assert st.total == 104 and st.all_ids().tolist() == ids.tolist()
    assert all(st.raw_by_id([i])[i].tobytes() == rows[i].tobytes() for i in list(rows)[:10])

    # a listed shard whose file was damaged is left out and its rows read again from the store
    first = st.shards[0]
    path = folder / first.vec_file
    path.write_bytes(path.read_bytes()[:-10])
    st = ShardStore.open(cfg, MODEL, DIM)
    assert st.damaged == [first.name] and st.total == 24
    stats = st.sync(store)
    assert stats.dropped == [first.name] and stats.added == 80
    st = ShardStore.open(cfg, MODEL, DIM)
    assert not st.damaged and st.total == 104 and not st.verify()
    assert st.all_ids().tolist() == ids.tolist()

    # a manifest of another dimension is refused
    with pytest.raises(ShardError, match="48-d"):
        ShardStore.open(cfg, MODEL, DIM + 1)

    # an unreadable manifest is moved aside (it may hold the only copy of pruned vectors)
    (folder / MANIFEST).write_text('{"format": "charw')
    arc = ArchiveIndex.load_or_create(cfg, MODEL, DIM)
    assert arc.shards.total == 0
    assert [
        p.name.split(".")[-1].split("-")[0] for p in folder.parent.glob(f"{folder.name}.*")
    ] == ["unusable"]
    assert arc.update(store) == 104 and arc.shards.total == 104


def test_the_per_shard_scan_equals_a_whole_archive_scan(tmp_path):
    cfg, store = world(tmp_path)
    arc = ArchiveIndex.load_or_create(cfg, MODEL, DIM)
    for seed in range(4):  # four updates: four shards
        random_rows(store, 15, DIM, MODEL, seed=seed)
        arc.update(store)
    arc.save()
    assert arc.kind == "flat" and len(arc.shards.shards) == 4 and arc.ntotal == 480
    ids, vecs = stored_matrix(store, MODEL, DIM)
    rng = np.random.default_rng(9)
    queries = vecs[rng.choice(len(vecs), 12)] + 0.3 * rng.normal(size=(12, DIM)).astype(np.float32)
    k = 25

    whole_s, whole = arc.search(queries, k)  # the exact flat index over everything
    one_s, one = retro_scan_shard(cfg, MODEL, DIM, arc.shards.shards[2].name, queries, k)
    assert set(one.ravel().tolist()) <= set(arc.shards.ids(arc.shards.shards[2]).tolist())
    parts = [retro_scan_shard(cfg, MODEL, DIM, sh.name, queries, k) for sh in arc.shards.shards]
    merged_s, merged = merge_topk(parts, k)
    assert merged.tolist() == whole.tolist()
    np.testing.assert_allclose(merged_s, whole_s, atol=1e-5)
    assert scan_shards(cfg, MODEL, DIM, queries, k)[1].tolist() == whole.tolist()

    # encoded shards (IVF-PQ codes re-ranked by each shard's exact vectors) keep the recall
    st = ShardStore.open(cfg, MODEL, DIM)
    st.train(nlist=4)
    st.encode()
    st.commit()
    assert all(sh.codes for sh in st.shards)
    _, pq = scan_shards(cfg, MODEL, DIM, queries, k, shards=st)
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(pq, whole, strict=True)])
    assert recall >= 0.9, recall
    exact = ids[np.argsort(-(queries / np.linalg.norm(queries, axis=1)[:, None]) @ vecs.T)[:, :k]]
    assert whole.tolist() == exact.tolist()


def test_pruned_database_vectors_leave_matching_retro_and_reembed_working(
    tmp_path, embedder, bank_file
):
    lab = Lab(tmp_path, embedder, bank_file)
    registry.add_character(
        lab.cfg, lab.store, "Pompom", images=[lab.reference("pompom", i) for i in range(2)]
    )
    rng = random.Random(5)
    pom = lab.add_video([scene(rng, "pompom", 0.8, pose=2, square=True)])
    kitsu = lab.add_video([scene(rng, "kitsumaru", 0.85, pose=p, square=True) for p in (0, 5)])
    detect_pending(lab.cfg, lab.store, embedder, progress=False)
    flags = lab.flags()
    assert (pom, "Pompom") in flags
    with lab.store.session() as s:
        scores = dict(s.execute(select(Detection.video_id, Detection.score)).all())
    before = load_evidence(lab.store, kitsu, embedder.id, embedder.dim).vectors

    arc = ArchiveIndex.load_or_create(lab.cfg, embedder.id, embedder.dim)
    arc.update(lab.store)
    arc.save()
    # a row stored after the last shard is not pruned (no shard holds it yet)
    late = lab.add_video([scene(rng, None, square=True)])
    assert arc.prune_db_vectors(lab.store) == arc.ntotal
    with lab.store.session() as s:
        empty = s.scalar(
            select(func.count()).select_from(Embedding).where(func.length(Embedding.vector) == 0)
        )
        kept = s.scalar(
            select(func.count()).select_from(Embedding).where(func.length(Embedding.vector) > 0)
        )
    assert empty == arc.ntotal and kept == len(lab.embedding_ids(late))
    assert archive_status(lab.cfg, lab.store, embedder.id)["pruned_db_vectors"] == empty

    # the matcher reads pruned vectors from the shards: same vectors, same decisions
    after = load_evidence(lab.store, kitsu, embedder.id, embedder.dim, lab.cfg.data_dir)
    np.testing.assert_array_equal(after.vectors, before)
    rematch(lab.store)
    detect_pending(lab.cfg, lab.store, embedder, progress=False)
    assert lab.flags() == flags
    with lab.store.session() as s:
        again = dict(s.execute(select(Detection.video_id, Detection.score)).all())
    assert again == pytest.approx(scores)

    # the archive and the retroactive scan work from the shards
    rebuilt = ArchiveIndex.create(lab.cfg, embedder.id, embedder.dim)
    assert rebuilt.rebuild(lab.store) == arc.ntotal + len(lab.embedding_ids(late))
    ch = registry.add_character(
        lab.cfg, lab.store, "Kitsumaru", images=[lab.reference("kitsumaru", i) for i in range(3)]
    )
    res = retro_scan(lab.cfg, lab.store, embedder, [ch.id])
    assert res.shards == 2 and kitsu in res.candidates
    assert [(d["video_id"], d["character"]) for d in res.created] == [(kitsu, "Kitsumaru")]

    # pruning again changes nothing; re-embedding still sees every frame as covered
    assert prune_db_vectors(lab.store, ShardStore.open(lab.cfg, embedder.id, embedder.dim)) == len(
        lab.embedding_ids(late)
    )
    cfg = lab.cfg
    stats = reembed(cfg, lab.store, embedder.id, dry_run=True)
    assert stats.videos == 0 and stats.rows_deleted == 0

    # a model change deletes the pruned rows and the old model's shards with its archive
    res = reembed(cfg, lab.store, "other-model:fp32", dry_run=False)
    assert res.videos == 3
    with lab.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Embedding)) == 0
        assert set(s.scalars(select(Video.state))) <= {VideoState.FRAMES, VideoState.DISCOVERED}
    assert drop_archive(cfg, embedder.id)
    assert not shard_dir(cfg, embedder.id).exists() and not sidecar_path(cfg, embedder.id).exists()
