"""The archive index: every stored frame-region embedding of one embedder, searchable with FAISS.

It answers "which past frames look like this?" (the retroactive scan when a character is
registered). FAISS ids are ``Embedding.id``, so a hit leads straight to its frame and video.

Kinds, chosen by size (``kind="auto"``), after the autofaiss heuristic and our own numbers.
With 22 pictures per 9:16 frame (the whole frame and its region crops, :mod:`pipeline.regions`)
and up to 16 frames, a video brings up to 352 vectors, so sizes are counted in vectors:

* ``flat`` (exact inner product) below ``FLAT_MAX`` = 50,000 vectors (about 100 videos):
  exact, nothing to train, 4 ms per query at 50,000 x 1280-d on one core; 5 KB per vector.
* ``ivf`` from 50,000 to ``PQ_MIN`` = 2,000,000 vectors: IVF with 8-bit scalar-quantised
  vectors (1 byte per dimension, 1.3 KB per 1280-d vector), ``nlist`` = 4 x sqrt(n) lists (at
  most n / 39, FAISS's minimum of training points per list), trained on a random sample of
  up to 64 x nlist stored vectors (at most 262,144); ``nprobe`` = nlist / 16 (8 to 256).
* ``ivfpq`` from 2,000,000 vectors: sharded and on disk (:mod:`index.shards`). IVF with
  product-quantised codes (64 sub-vectors of 8 bits: 64 bytes per vector, so a billion take
  about 72 GB with their ids), trained once on a sample of up to 2,000,000 shard vectors; each
  shard is encoded with it and the encoded shards are merged into memory-mapped on-disk
  inverted lists. PQ scores are coarse, so a search fetches 4 x k candidates and re-ranks them
  by their exact vectors, read from the shards.
* ``hnsw`` (HNSW32 on full vectors) only when asked for: fast queries and no training, but
  the most memory per vector and no deletions (a deletion makes it rebuild).

An IVF index is retrained (rebuilt from the store) when it has grown to ``RETRAIN_GROWTH`` = 4
times the vectors it was trained on, so ``nlist`` follows sqrt(n), and when it crosses into
the next kind; the sharded IVF-PQ index only while its training sample was smaller than the
full ``TRAIN_MAX`` (after that it is trained once, until ``charwatch archive rebuild``).
The archive proposes candidates for the real matcher, so approximate search
(IVF recall, quantised scores) costs at most some recall, never a wrong flag.

Adding is incremental: the sidecar keeps a high-water mark (the largest ``Embedding.id``
indexed) and the number of rows at or below it; :meth:`ArchiveIndex.update` appends the rows
above the mark and, when rows at or below it were deleted (a video processed again, a
model's rows removed), removes their ids. (SQLite may hand a deleted row's id to a new row;
such a row keeps the old vector here until ``charwatch archive rebuild``. The archive only
proposes candidates, which the matcher scores from the stored vectors, so this can cost
recall, never cause a wrong flag.) Only rows whose ``model_id`` is the index's
embedder id are ever added: vectors of two models are never mixed; each embedder has its
own archive, and :func:`archive_status` says how many frames lack vectors of the current one.

Every update first writes the rows stored since the last one into a new shard (:mod:`index.shards`),
whatever the kind: the shards are where the vectors live outside the database, what the
retroactive scan searches shard by shard, and what :func:`index.shards.prune_db_vectors` lets
the database drop.

Files under ``<data_dir>/indexes/archive/``: ``<slug>-<generation>.faiss`` (the serialised
index; none for ``ivfpq``, whose files are the shards') and ``<slug>.json`` (the sidecar,
written last, with the data file's SHA-256); the shards under ``<slug>/``. Each is
written to a temporary file, fsynced and renamed into place; the previous generation's data
file is removed only after the new sidecar is in place. A crash at any point leaves a
sidecar that names an intact data file, or one whose checksum does not match, which makes
:meth:`ArchiveIndex.load_or_create` rebuild from the store: never a torn index in use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from sqlalchemy import distinct, func, select

from charwatch.config import Config
from index.refindex import cleanup_superseded, embedder_slug, index_dir
from index.shards import (
    TRAIN_MAX,
    ShardError,
    ShardStore,
    drop_shards,
    ivf_lists,
    ivf_probes,
    locked,
    prune_db_vectors,
    shard_dir,
)
from storage.db import Store
from storage.files import atomic_write_bytes
from storage.models import Embedding, Frame, Video
from storage.vectors import decode_vectors

log = logging.getLogger(__name__)

FORMAT = "charwatch-archive-index"
VERSION = 1
KINDS = ("auto", "flat", "ivf", "ivfpq", "hnsw")
IVF_KINDS = ("ivf", "ivfpq")
FLAT_MAX = 50_000
PQ_MIN = 2_000_000
PQ_MAX_SUBVECTORS = 64
PQ_BITS = 8
REFINE_FACTOR = 4  # PQ candidates fetched per wanted neighbour for exact re-ranking
IVF_LISTS_PER_SQRT = 4
IVF_MIN_POINTS_PER_LIST = 39  # FAISS warns below this many training points per list
IVF_TRAIN_PER_LIST = 64
IVF_TRAIN_MAX = 262_144
RETRAIN_GROWTH = 4.0
HNSW_M = 32
HNSW_EF_SEARCH = 128
HNSW_EF_CONSTRUCTION = 80
READ_BATCH = 4096


class ArchiveError(RuntimeError):
    """The archive index cannot be used as asked."""


def archive_dir(cfg: Config) -> Path:
    return index_dir(cfg) / "archive"


def sidecar_path(cfg: Config, embedder_id: str) -> Path:
    return archive_dir(cfg) / f"{embedder_slug(embedder_id)}.json"


def choose_kind(
    n: int, requested: str = "auto", flat_max: int = FLAT_MAX, pq_min: int = PQ_MIN
) -> str:
    """The index kind for ``n`` vectors (``auto``: flat below ``flat_max``, IVF-SQ8 below
    ``pq_min``, IVF-PQ above)."""
    if requested not in KINDS:
        raise ArchiveError(f"unknown archive index kind {requested!r} (known: {', '.join(KINDS)})")
    if requested != "auto":
        return requested
    if n < flat_max:
        return "flat"
    return "ivf" if n < pq_min else "ivfpq"


@dataclass
class ArchiveIndex:
    """One embedder's archive: a FAISS index whose ids are ``Embedding.id``."""

    cfg: Config
    embedder_id: str
    dim: int
    requested: str = "auto"
    flat_max: int = FLAT_MAX
    pq_min: int = PQ_MIN
    kind: str = "flat"
    trained: bool = True  # False: an IVF kind waiting for vectors to train on
    index: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    high_water: int = 0  # largest Embedding.id indexed
    covered: int = 0  # rows of this model with id <= high_water at the last update
    trained_on: int = 0
    generation: int = 0
    dirty: bool = False
    rebuilt: str = ""  # why the last load rebuilt, if it did
    pruned: int = 0  # database vector copies emptied by the last prune
    _shards: ShardStore | None = field(default=None, repr=False)

    # -- creating and loading -------------------------------------------------------------

    @classmethod
    def create(
        cls,
        cfg: Config,
        embedder_id: str,
        dim: int,
        *,
        kind: str = "auto",
        flat_max: int = FLAT_MAX,
        pq_min: int = PQ_MIN,
    ) -> ArchiveIndex:
        """An empty archive (flat unless ``kind`` says otherwise; nothing written yet)."""
        target = choose_kind(0, kind, flat_max, pq_min)  # validates ``kind``
        arc = cls(cfg, embedder_id, int(dim), requested=kind, flat_max=flat_max, pq_min=pq_min)
        arc._empty(target)
        arc.dirty = True
        return arc

    @classmethod
    def load_or_create(
        cls,
        cfg: Config,
        embedder_id: str,
        dim: int,
        *,
        kind: str | None = None,
        flat_max: int = FLAT_MAX,
        pq_min: int = PQ_MIN,
    ) -> ArchiveIndex:
        """The saved archive of this embedder, or a new empty one when there is none or it is
        unusable (damaged, another format, another embedder or dimension). ``kind`` None keeps
        the saved kind request (default ``auto``)."""
        side = sidecar_path(cfg, embedder_id)
        sizes = {"flat_max": flat_max, "pq_min": pq_min}
        if not side.is_file():
            return cls.create(cfg, embedder_id, dim, kind=kind or "auto", **sizes)
        try:
            arc = cls._load(cfg, embedder_id, dim, side, **sizes)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, ArchiveError) as exc:
            log.warning("archive index %s unusable (%s); rebuilding from the store", side, exc)
            arc = cls.create(cfg, embedder_id, dim, kind=kind or "auto", **sizes)
            arc.rebuilt = str(exc)
            return arc
        if kind is not None and kind != arc.requested:
            arc = cls.create(cfg, embedder_id, dim, kind=kind, **sizes)
            arc.rebuilt = f"kind changed to {kind}"
        return arc

    @classmethod
    def _load(
        cls,
        cfg: Config,
        embedder_id: str,
        dim: int,
        side_path: Path,
        flat_max: int,
        pq_min: int,
    ) -> ArchiveIndex:
        side = json.loads(side_path.read_text(encoding="utf-8"))
        if side.get("format") != FORMAT or side.get("version") != VERSION:
            raise ArchiveError(f"not a version-{VERSION} archive sidecar")
        if side.get("kind") not in KINDS[1:]:
            raise ArchiveError(f"unknown index kind {side.get('kind')!r}")
        if side.get("embedder_id") != embedder_id:
            raise ArchiveError(f"sidecar belongs to embedder {side.get('embedder_id')!r}")
        if int(side.get("dim", -1)) != int(dim):
            raise ArchiveError(f"sidecar has dimension {side.get('dim')}, embedder makes {dim}")
        shards = None
        if side["kind"] == "ivfpq":
            shards = ShardStore.open(cfg, embedder_id, dim)
            if not shards.merge_current() or shards.damaged:
                raise ArchiveError("the merged on-disk index does not hold every shard")
            index = shards.open_merged()
            if index is None or shards.live != side["ntotal"]:
                raise ArchiveError("the shards hold another number of vectors than the sidecar")
        else:
            data_path = archive_dir(cfg) / side["data_file"]
            data = data_path.read_bytes()
            if hashlib.sha256(data).hexdigest() != side["data_sha256"]:
                raise ArchiveError(f"data file {data_path.name} does not match its checksum")
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
            if index.ntotal != side["ntotal"] or index.d != dim:
                raise ArchiveError(
                    f"data file holds {index.ntotal} x {index.d}, sidecar says otherwise"
                )
        arc = cls(
            cfg,
            embedder_id,
            int(dim),
            requested=side.get("requested", "auto"),
            flat_max=flat_max,
            pq_min=pq_min,
            kind=side["kind"],
            index=index,
            params=dict(side.get("params") or {}),
            high_water=int(side["high_water"]),
            covered=int(side["covered"]),
            trained_on=int(side.get("trained_on", 0)),
            generation=int(side.get("generation", 0)),
        )
        arc._shards = shards
        arc._apply_params()
        return arc

    def _empty(self, kind: str) -> None:
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            self.index = faiss.IndexIDMap2(inner)
            self.params = {"M": HNSW_M, "efSearch": HNSW_EF_SEARCH}
        else:
            self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
            self.params = {}
        # an IVF kind starts as an empty flat index and is trained once there are vectors
        self.trained = kind not in IVF_KINDS
        self.kind = kind
        self.high_water = 0
        self.covered = 0
        self.trained_on = 0
        self._apply_params()

    def _apply_params(self) -> None:
        if self.kind == "ivfpq":
            return  # the on-disk index gets its nprobe when opened
        if self.kind in IVF_KINDS and self.trained:
            faiss.extract_index_ivf(self.index).nprobe = int(self.params.get("nprobe", 8))
        elif self.kind == "hnsw":
            faiss.downcast_index(self.index.index).hnsw.efSearch = int(
                self.params.get("efSearch", HNSW_EF_SEARCH)
            )

    # -- properties ----------------------------------------------------------------------

    @property
    def ntotal(self) -> int:
        if self.kind == "ivfpq" and self.trained:
            return self.shards.live if self.index is not None else 0
        return int(self.index.ntotal) if self.index is not None and self.trained else 0

    @property
    def shards(self) -> ShardStore:
        """This embedder's shards (opened on first use). An unreadable manifest (or one of
        another dimension) is moved aside, not deleted, and the shards start afresh: they may
        hold the only copy of pruned vectors."""
        if self._shards is None:
            try:
                self._shards = ShardStore.open(self.cfg, self.embedder_id, self.dim)
            except (OSError, ValueError, KeyError, TypeError, ShardError) as exc:
                folder = shard_dir(self.cfg, self.embedder_id)
                aside = folder.with_name(f"{folder.name}.unusable-{int(time.time())}")
                log.warning(
                    "archive shards of %s unusable (%s); moved to %s, starting afresh",
                    self.embedder_id,
                    exc,
                    aside,
                )
                folder.rename(aside)
                self._shards = ShardStore.open(self.cfg, self.embedder_id, self.dim)
        return self._shards

    @property
    def ready(self) -> bool:
        """True when the index can be searched and saved (an IVF kind is trained)."""
        return self.trained

    def describe(self) -> dict[str, Any]:
        return {
            "embedder_id": self.embedder_id,
            "dim": self.dim,
            "kind": self.kind,
            "requested": self.requested,
            "params": dict(self.params),
            "ntotal": self.ntotal,
            "high_water": self.high_water,
            "trained_on": self.trained_on,
            "generation": self.generation,
        }

    # -- reading the store ---------------------------------------------------------------

    def _model_rows(self, store: Store, above: int, upto: int | None = None) -> Iterator[Any]:
        """``(ids, vectors)`` batches of this model's rows with ``above < id (<= upto)``."""
        last = above
        while True:
            with store.session() as s:
                q = (
                    select(Embedding.id, Embedding.vector)
                    .where(Embedding.model_id == self.embedder_id, Embedding.id > last)
                    .order_by(Embedding.id)
                    .limit(READ_BATCH)
                )
                if upto is not None:
                    q = q.where(Embedding.id <= upto)
                rows = s.execute(q).all()
            if not rows:
                return
            last = int(rows[-1][0])
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vecs, ok = decode_vectors(self._filled(rows), self.dim)
            if not ok.all():
                log.warning(
                    "archive %s: %d stored vector(s) have another dimension; skipped",
                    self.embedder_id,
                    int((~ok).sum()),
                )
            yield ids[ok], vecs[ok], last

    def _filled(self, rows: Sequence[Any]) -> list[bytes]:
        """The rows' stored blobs, those pruned from the database read from the shards."""
        blobs = [r[1] or b"" for r in rows]
        pruned = [int(r[0]) for r, b in zip(rows, blobs, strict=True) if not b]
        if pruned:
            held = self.shards.raw_by_id(pruned)
            blobs = [
                b or (held[int(r[0])].tobytes() if int(r[0]) in held else b"")
                for r, b in zip(rows, blobs, strict=True)
            ]
        return blobs

    def _vectors_by_id(self, store: Store, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        out_ids, out_vecs = [], []
        for i in range(0, len(ids), 500):
            chunk = [int(x) for x in ids[i : i + 500]]
            with store.session() as s:
                rows = s.execute(
                    select(Embedding.id, Embedding.vector).where(
                        Embedding.id.in_(chunk), Embedding.model_id == self.embedder_id
                    )
                ).all()
            vecs, ok = decode_vectors(self._filled(rows), self.dim)
            out_ids.append(np.array([r[0] for r in rows], dtype=np.int64)[ok])
            out_vecs.append(vecs[ok])
        if not out_ids:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        return np.concatenate(out_ids), np.concatenate(out_vecs)

    def _count(self, store: Store, upto: int | None = None) -> int:
        with store.session() as s:
            q = select(func.count()).select_from(Embedding)
            q = q.where(Embedding.model_id == self.embedder_id)
            if upto is not None:
                q = q.where(Embedding.id <= upto)
            return int(s.scalar(q) or 0)

    def _all_ids(self, store: Store, upto: int | None = None) -> np.ndarray:
        with store.session() as s:
            q = select(Embedding.id).where(Embedding.model_id == self.embedder_id)
            if upto is not None:
                q = q.where(Embedding.id <= upto)
            return np.array(list(s.scalars(q)), dtype=np.int64)

    def indexed_ids(self) -> np.ndarray:
        """The ``Embedding.id`` values in the index."""
        if self.ntotal == 0:
            return np.zeros(0, np.int64)
        if self.kind == "ivfpq":
            return self.shards.all_ids()
        if isinstance(self.index, faiss.IndexIDMap2 | faiss.IndexIDMap):
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)
        ivf = faiss.extract_index_ivf(self.index)
        invlists = ivf.invlists
        parts = []
        for lst in range(ivf.nlist):
            n = invlists.list_size(lst)
            if n:
                ptr = invlists.get_ids(lst)
                parts.append(faiss.rev_swig_ptr(ptr, n).copy())
                invlists.release_ids(lst, ptr)
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    # -- building ------------------------------------------------------------------------

    def rebuild(self, store: Store, *, kind: str | None = None) -> int:
        """Build from scratch from every stored row of this model; returns the vectors added."""
        if kind is not None:
            choose_kind(0, kind, self.flat_max, self.pq_min)
            self.requested = kind
        self.shards.sync(store)
        n = self._count(store)
        target = choose_kind(n, self.requested, self.flat_max, self.pq_min)
        if target == "ivfpq" and self.shards.live >= 2**8:
            self._pq_build(retrain=True)
            return self.ntotal
        if target in IVF_KINDS and n > 0:
            self._train_ivf(store, n, "ivf")
        else:
            self._empty(target)
        self.dirty = True
        if not self.trained:
            return 0
        added = self._append(store, above=0)
        self.covered = self._count(store, self.high_water)
        return added

    def _train_ivf(self, store: Store, n: int, kind: str) -> None:
        """Train the in-memory IVF-SQ8 index on a sample of the stored vectors."""
        nlist = ivf_lists(n)
        ids = self._all_ids(store)
        rng = np.random.default_rng(n)
        want = max(nlist * IVF_TRAIN_PER_LIST, 2**PQ_BITS * IVF_MIN_POINTS_PER_LIST)
        sample = np.sort(rng.choice(ids, size=min(len(ids), want, IVF_TRAIN_MAX), replace=False))
        _, train = self._vectors_by_id(store, sample)
        quantizer = faiss.IndexFlatIP(self.dim)
        params: dict[str, Any] = {"nlist": nlist, "nprobe": ivf_probes(nlist), "codes": "sq8"}
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, self.dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        t0 = time.perf_counter()
        index.train(np.ascontiguousarray(train))
        log.info(
            "archive: trained %s (%d lists) on %d vectors in %.1f s",
            kind,
            nlist,
            len(train),
            time.perf_counter() - t0,
        )
        self.index = index
        self.kind = kind
        self.trained = True
        self.params = params
        self.trained_on = n
        self.high_water = 0
        self.covered = 0
        self._apply_params()

    def _pq_build(self, *, retrain: bool) -> None:
        """Train IVF-PQ on the shards (when ``retrain`` or never trained), encode the shards
        that lack codes, merge them on disk, and use the merged index."""
        sh = self.shards
        with locked(sh.lock_path):
            sh.reload()
            if retrain or not sh.trained:
                sh.train()
            sh.encode()
            if not sh.merge_current():
                sh.merge()
            sh.commit()
        self.index = sh.open_merged()
        self.kind = "ivfpq"
        self.trained = True
        t = sh.trained or {}
        self.params = {k: t[k] for k in ("nlist", "nprobe", "m", "nbits") if k in t}
        self.params["shards"] = len(sh.shards)
        self.trained_on = int(t.get("live_at_training", 0))
        self.high_water = sh.high_water
        self.covered = sh.covered
        self.dirty = True

    def _append(self, store: Store, above: int) -> int:
        added = 0
        for ids, vecs, last in self._model_rows(store, above):
            if len(ids):
                self.index.add_with_ids(np.ascontiguousarray(vecs), ids)
                added += len(ids)
            self.high_water = max(self.high_water, last)
        if added:
            self.dirty = True
        return added

    def _reconcile(self, store: Store) -> int:
        """Drop indexed ids whose rows are gone and add rows at or below the high-water mark
        that are missing; returns how many ids were removed."""
        present = self._all_ids(store, self.high_water)
        indexed = self.indexed_ids()
        gone = np.setdiff1d(indexed, present, assume_unique=False)
        missing = np.setdiff1d(present, indexed, assume_unique=False)
        if len(gone):
            if self.kind == "hnsw":
                self.rebuild(store)
                return len(gone)
            self.index.remove_ids(faiss.IDSelectorBatch(gone.astype(np.int64)))
            self.dirty = True
        if len(missing):
            ids, vecs = self._vectors_by_id(store, missing)
            if len(ids):
                self.index.add_with_ids(np.ascontiguousarray(vecs), ids)
                self.dirty = True
        self.covered = len(present)
        return len(gone)

    def update(self, store: Store) -> int:
        """Add the rows stored since the last update (and follow deletions); returns how many
        vectors were added. Moves to the next kind when the size calls for it, and retrains an
        IVF index that has grown ``RETRAIN_GROWTH`` times."""
        before = self.ntotal
        synced = self.shards.sync(store)
        if not self.trained:
            return self.rebuild(store) if self._count(store) else 0
        if self.kind == "ivfpq":
            return self._pq_update(store, synced.added, before)
        if self.high_water and self.covered != self._count(store, self.high_water):
            self._reconcile(store)
        before = self.ntotal
        with store.session() as s:
            new = int(
                s.scalar(
                    select(func.count())
                    .select_from(Embedding)
                    .where(Embedding.model_id == self.embedder_id, Embedding.id > self.high_water)
                )
                or 0
            )
        n = before + new
        want = choose_kind(n, self.requested, self.flat_max, self.pq_min)
        grown = (
            self.kind in IVF_KINDS
            and self.trained_on
            and n >= RETRAIN_GROWTH * self.trained_on
            and self.requested != "hnsw"
        )
        if want != self.kind or grown:
            log.info("archive %s: building as %s for %d vectors", self.embedder_id, want, n)
            self.rebuild(store)
            return self.ntotal - before
        added = self._append(store, above=self.high_water) if new else 0
        if added:
            self.covered = self._count(store, self.high_water)
        return added

    def _pq_update(self, store: Store, added: int, before: int) -> int:
        sh = self.shards
        n = sh.live
        want = choose_kind(n, self.requested, self.flat_max, self.pq_min)
        if want != "ivfpq":
            self.rebuild(store)
            return self.ntotal - before
        t = sh.trained or {}
        grown = (
            self.trained_on
            and n >= RETRAIN_GROWTH * self.trained_on
            and int(t.get("trained_on", 0)) < TRAIN_MAX
        )
        if grown or not sh.merge_current() or added or self.ntotal != before:
            self._pq_build(retrain=bool(grown))
        return self.ntotal - before

    # -- searching -----------------------------------------------------------------------

    def search(
        self, vectors: np.ndarray, k: int, *, store: Store | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, embedding_ids)`` of the ``k`` nearest stored vectors per query (inner
        product of L2-normalised vectors; id -1 where fewer exist).

        The product-quantised index fetches ``REFINE_FACTOR`` x ``k`` candidates and re-ranks
        them by their exact vectors from the shards (PQ scores are coarse); ``store`` is
        accepted for compatibility and not needed."""
        q = np.asarray(vectors, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.shape[1] != self.dim:
            raise ArchiveError(f"query has dimension {q.shape[1]}, the archive {self.dim}")
        q = np.ascontiguousarray(q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12))
        if self.ntotal == 0:
            return (
                np.full((len(q), max(1, k)), -np.inf, np.float32),
                np.full((len(q), max(1, k)), -1, np.int64),
            )
        k = max(1, min(int(k), self.ntotal))
        if self.kind != "ivfpq":
            return self.index.search(q, k)
        return self.shards.search_merged(q, k, index=self.index)

    # -- saving --------------------------------------------------------------------------

    def save(self) -> Path:
        """Write the data file then the sidecar (both atomically); remove superseded files."""
        folder = archive_dir(self.cfg)
        folder.mkdir(parents=True, exist_ok=True)
        slug = embedder_slug(self.embedder_id)
        if not self.trained:
            raise ArchiveError("an IVF archive with no vectors cannot be saved yet")
        data = None if self.kind == "ivfpq" else faiss.serialize_index(self.index).tobytes()
        with locked(folder / f".{slug}.lock"):
            return self._write(folder, slug, data)

    def _write(self, folder: Path, slug: str, data: bytes | None) -> Path:
        self.generation += 1
        data_name = None
        if data is not None:
            data_name = f"{slug}-{self.generation:06d}-{uuid.uuid4().hex[:8]}.faiss"
            atomic_write_bytes(folder / data_name, data)
        side = {
            "format": FORMAT,
            "version": VERSION,
            "embedder_id": self.embedder_id,
            "dim": self.dim,
            "kind": self.kind,
            "requested": self.requested,
            "params": self.params,
            "ntotal": self.ntotal,
            "high_water": self.high_water,
            "covered": self.covered,
            "trained_on": self.trained_on,
            "generation": self.generation,
            "data_file": data_name,
            "data_sha256": hashlib.sha256(data).hexdigest() if data is not None else None,
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        side_path = folder / f"{slug}.json"
        atomic_write_bytes(side_path, json.dumps(side, ensure_ascii=False, indent=1).encode())
        self.dirty = False
        cleanup_superseded(folder, slug, keep=data_name or "", suffix=".faiss")
        return side_path

    def prune_db_vectors(self, store: Store) -> int:
        """Empty the database copies of the vectors the shards hold (see
        :func:`index.shards.prune_db_vectors`); returns how many."""
        return prune_db_vectors(store, self.shards)


def drop_archive(cfg: Config, embedder_id: str) -> bool:
    """Delete one embedder's archive files (sidecar first) and its shards; True when there was
    one."""
    folder = archive_dir(cfg)
    side = sidecar_path(cfg, embedder_id)
    found = side.is_file()
    side.unlink(missing_ok=True)
    found = drop_shards(cfg, embedder_id) or found
    if folder.is_dir():
        slug = embedder_slug(embedder_id)
        for p in folder.glob(f"{slug}-*.faiss"):
            p.unlink(missing_ok=True)
            found = True
    return found


def saved_archives(cfg: Config) -> list[dict[str, Any]]:
    """The sidecars on disk (every embedder), as dicts; unreadable ones are reported as such."""
    folder = archive_dir(cfg)
    out: list[dict[str, Any]] = []
    if not folder.is_dir():
        return out
    for p in sorted(folder.glob("*.json")):
        try:
            side = json.loads(p.read_text(encoding="utf-8"))
            out.append({**side, "sidecar": p.name})
        except (OSError, ValueError) as exc:
            out.append({"sidecar": p.name, "error": str(exc)})
    return out


def lookup(store: Store, embedding_ids: Sequence[int]) -> dict[int, tuple[int, int, float, str]]:
    """``{embedding_id: (video_id, frame_id, frame_t, region)}`` for the ids that still exist."""
    wanted = sorted({int(i) for i in embedding_ids if int(i) >= 0})
    out: dict[int, tuple[int, int, float, str]] = {}
    for i in range(0, len(wanted), 500):
        with store.session() as s:
            rows = s.execute(
                select(Embedding.id, Frame.video_id, Frame.id, Frame.t, Embedding.region)
                .join(Frame, Frame.id == Embedding.frame_id)
                .where(Embedding.id.in_(wanted[i : i + 500]))
            ).all()
        for eid, vid, fid, t, region in rows:
            out[int(eid)] = (int(vid), int(fid), float(t), str(region))
    return out


def archive_status(cfg: Config, store: Store, embedder_id: str) -> dict[str, Any]:
    """What the archive of ``embedder_id`` holds against what the store holds.

    ``frames_to_reembed``: stored frames with no vector of this embedder (vectors of another
    model only, or none), and ``videos_to_reembed`` the videos they belong to.
    """
    side_path = sidecar_path(cfg, embedder_id)
    side: dict[str, Any] | None = None
    if side_path.is_file():
        try:
            side = json.loads(side_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            side = {"error": "unreadable sidecar"}
    with store.session() as s:
        rows = int(
            s.scalar(
                select(func.count()).select_from(Embedding).where(Embedding.model_id == embedder_id)
            )
            or 0
        )
        by_model = dict(
            s.execute(select(Embedding.model_id, func.count()).group_by(Embedding.model_id)).all()
        )
        covered = select(Embedding.frame_id).where(Embedding.model_id == embedder_id)
        lacking = select(Frame.id, Frame.video_id).where(Frame.id.not_in(covered)).subquery()
        frames_lacking = int(s.scalar(select(func.count()).select_from(lacking)) or 0)
        videos_lacking = int(s.scalar(select(func.count(distinct(lacking.c.video_id)))) or 0)
        videos = int(s.scalar(select(func.count()).select_from(Video)) or 0)
    hw = int(side.get("high_water", 0)) if side and "error" not in side else 0
    with store.session() as s:
        pending = int(
            s.scalar(
                select(func.count())
                .select_from(Embedding)
                .where(Embedding.model_id == embedder_id, Embedding.id > hw)
            )
            or 0
        )
    shards: dict[str, Any] | None = None
    manifest = shard_dir(cfg, embedder_id) / "manifest.json"
    if manifest.is_file():
        try:
            dim = int(json.loads(manifest.read_text(encoding="utf-8"))["dim"])
            st = ShardStore.open(cfg, embedder_id, dim)
        except (OSError, ValueError, KeyError, ShardError):
            st = None
        if st is not None:
            shards = {
                "shards": len(st.shards),
                "vectors": st.total,
                "deleted": len(st.deleted),
                "high_water": st.high_water,
                "trained": bool(st.trained),
                "merged": bool(st.merge_current()),
                "damaged": st.damaged,
            }
    with store.session() as s:
        pruned = int(
            s.scalar(
                select(func.count())
                .select_from(Embedding)
                .where(Embedding.model_id == embedder_id, func.length(Embedding.vector) == 0)
            )
            or 0
        )
    return {
        "embedder_id": embedder_id,
        "shards": shards,
        "pruned_db_vectors": pruned,
        "archive": None
        if side is None
        else {
            k: side.get(k)
            for k in (
                "kind",
                "requested",
                "params",
                "ntotal",
                "high_water",
                "trained_on",
                "generation",
                "updated_at",
                "error",
            )
            if k in side
        },
        "store_vectors": rows,
        "pending_vectors": pending,
        "other_models": {m: n for m, n in by_model.items() if m != embedder_id},
        "frames_to_reembed": frames_lacking,
        "videos_to_reembed": videos_lacking,
        "videos": videos,
    }
