"""Archive shards: the frame vectors of one embedder, out of the main database, in immutable
files that any machine reaching ``data_dir`` can read.

Each ``charwatch archive update`` writes one shard (or several of at most ``SHARD_MAX``
vectors) holding the rows stored since the last one. A shard is two files: ``.ids`` (sorted
``Embedding.id`` values, int64) and ``.f16`` (the stored float16 vectors, byte for byte what
the database held). Once the archive is large (:data:`index.archive.PQ_MIN` vectors) an IVF-PQ
index is trained once on a sample of the shards (up to ``TRAIN_MAX`` vectors; the trained,
empty index is saved), each shard is encoded with it into a ``.ivfpq`` file (its inverted lists:
64-byte codes and ids), and the encoded shards are merged into FAISS ``OnDiskInvertedLists``
(``merged-*.index`` + ``merged-*.ivfdata``, :func:`faiss.contrib.ondisk.merge_ondisk`), which
searches memory-mapped, so the resident memory stays bounded by the pages touched. A merge
writes a new generation next to the old one before the manifest switches (twice the disk).

The retroactive scan runs shard by shard (:meth:`ShardStore.search_shard`: the shard's codes
re-ranked by its own exact vectors, or an exact scan of a shard not encoded yet) and merges the
top-k of every shard (:func:`merge_topk`); each shard scan reads only that shard's files, so it
can be one job of a task engine.

Files live under ``<data_dir>/indexes/archive/<embedder slug>/``. ``manifest.json`` is the only
truth: every data file is written under a temporary name, fsynced and renamed, and the manifest
(with each file's size and SHA-256) is written the same way, last. A file the manifest does not
name (a half-written shard, a merge cut short) is ignored and removed by the next writer, and the
rows it held are written again from the database because the manifest's high-water mark did not
move. A listed file whose size is wrong is dropped on the next update and its rows re-read from
the database (unless their database copy was pruned: :func:`prune_db_vectors`).

Deleted rows stay in the shard files; their ids are kept in a tombstone list (``deleted-*.i64``)
and filtered out of every search, and ids added again (SQLite can hand out the id of a deleted
last row again) leave the list. Writers hold an advisory lock on ``.lock``; readers take none.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from sqlalchemy import func, select, update

from charwatch.config import Config
from index.refindex import embedder_slug, index_dir
from storage.db import Store
from storage.files import atomic_path, atomic_write_bytes, fsync_dir, fsync_file
from storage.models import Embedding
from storage.vectors import fits, stack_f16

log = logging.getLogger(__name__)

FORMAT = "charwatch-archive-shards"
VERSION = 1
MANIFEST = "manifest.json"
SHARD_MAX = 4_000_000  # vectors per shard: about 10 GB of float16 at 1280 dimensions
TRAIN_MAX = 2_000_000  # IVF-PQ training sample (float32 in RAM: 10 GB at 1280-d)
PQ_MAX_SUBVECTORS = 64
PQ_BITS = 8
REFINE_FACTOR = 4
IVF_LISTS_PER_SQRT = 4
IVF_MIN_POINTS_PER_LIST = 39
READ_BATCH = 4096
CHUNK = 65_536  # rows per block when streaming a shard
COPY_BLOCK = 1 << 20


class _NothingWritten(Exception):
    """A new shard got no rows (its temporary files are dropped)."""


class ShardError(RuntimeError):
    """The shard store cannot be used as asked."""


def shard_dir(cfg: Config, embedder_id: str) -> Path:
    return index_dir(cfg) / "archive" / embedder_slug(embedder_id)


def shard_dir_at(data_dir: Path | str, embedder_id: str) -> Path:
    """:func:`shard_dir` from a data directory alone (``<data_dir>/indexes/archive/<slug>``)."""
    return Path(data_dir) / "indexes" / "archive" / embedder_slug(embedder_id)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(COPY_BLOCK):
            h.update(block)
    return h.hexdigest()


def normalise(vecs: np.ndarray) -> np.ndarray:
    out = np.asarray(vecs, dtype=np.float32)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def ivf_lists(n: int) -> int:
    """``nlist`` for ``n`` vectors: 4 x sqrt(n), at most n / 39, at least 1."""
    return max(1, min(round(IVF_LISTS_PER_SQRT * np.sqrt(max(n, 1))), n // IVF_MIN_POINTS_PER_LIST))


def ivf_probes(nlist: int) -> int:
    return max(1, min(nlist, max(8, min(256, nlist // 16))))


def pq_subvectors(dim: int) -> int:
    """PQ sub-vectors: the largest divisor of ``dim`` up to 64 leaving 4+ dimensions each."""
    best = 1
    for m in range(1, min(PQ_MAX_SUBVECTORS, dim // 4) + 1):
        if dim % m == 0:
            best = m
    return best


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (POSIX), so two writers do not interleave."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


@dataclass
class Shard:
    """One immutable shard as the manifest lists it."""

    name: str
    n: int
    id_min: int
    id_max: int
    ids_sha256: str
    vec_sha256: str
    created_at: str = ""
    codes: str | None = None  # the ``.ivfpq`` file encoded with the trained index
    codes_size: int = 0
    codes_trained: str | None = None  # which trained index encoded it

    @property
    def ids_file(self) -> str:
        return f"{self.name}.ids"

    @property
    def vec_file(self) -> str:
        return f"{self.name}.f16"


@dataclass
class SyncStats:
    """What :meth:`ShardStore.sync` did."""

    added: int = 0  # vectors written to new shards
    shards: list[str] = field(default_factory=list)
    deleted: int = 0  # ids newly tombstoned
    dropped: list[str] = field(default_factory=list)  # damaged shards left out


class ShardStore:
    """The shards of one embedder under ``folder``; :meth:`open` reads the manifest."""

    def __init__(self, folder: Path, embedder_id: str, dim: int) -> None:
        self.folder = Path(folder)
        self.embedder_id = embedder_id
        self.dim = int(dim)
        self.generation = 0
        self.high_water = 0  # largest Embedding.id read from the store
        self.covered = 0  # rows of this model with id <= high_water at the last sync
        self.shards: list[Shard] = []
        self.trained: dict[str, Any] | None = None
        self.merged: dict[str, Any] | None = None
        self.deleted_file: str | None = None
        self.deleted = np.zeros(0, np.int64)  # tombstoned ids, sorted
        self.damaged: list[str] = []  # listed shards whose files are wrong
        self._ids: dict[str, np.ndarray] = {}
        self._vecs: dict[str, np.ndarray] = {}

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, cfg: Config, embedder_id: str, dim: int) -> ShardStore:
        return cls.at(shard_dir(cfg, embedder_id), embedder_id, dim)

    @classmethod
    def at(cls, folder: Path, embedder_id: str, dim: int) -> ShardStore:
        """The store in ``folder`` (empty when there is no manifest yet)."""
        st = cls(folder, embedder_id, dim)
        st.reload()
        return st

    @property
    def lock_path(self) -> Path:
        return self.folder / ".lock"

    def reload(self) -> None:
        """Read the manifest again; listed shards with wrong file sizes go to ``damaged``."""
        self._ids.clear()
        self._vecs.clear()
        path = self.folder / MANIFEST
        if not path.is_file():
            return
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise ShardError(f"{path} is not a version-{VERSION} shard manifest")
        if doc.get("embedder_id") != self.embedder_id or int(doc.get("dim", -1)) != self.dim:
            raise ShardError(
                f"{path} belongs to {doc.get('embedder_id')!r} ({doc.get('dim')}-d), "
                f"not {self.embedder_id!r} ({self.dim}-d)"
            )
        self.generation = int(doc["generation"])
        self.high_water = int(doc["high_water"])
        self.covered = int(doc["covered"])
        self.trained = doc.get("trained")
        self.merged = doc.get("merged")
        self.deleted_file = doc.get("deleted_file")
        self.shards, self.damaged = [], []
        for raw in doc.get("shards", []):
            sh = Shard(**raw)
            if self._intact(sh):
                self.shards.append(sh)
            else:
                self.damaged.append(sh.name)
                log.warning("archive shard %s is damaged; left out", sh.name)
        self.deleted = np.zeros(0, np.int64)
        if self.deleted_file:
            p = self.folder / self.deleted_file
            self.deleted = np.fromfile(p, dtype=np.int64) if p.is_file() else self.deleted

    def _intact(self, sh: Shard) -> bool:
        """Cheap check (sizes); :meth:`verify` compares checksums."""
        try:
            ok = (self.folder / sh.ids_file).stat().st_size == 8 * sh.n and (
                self.folder / sh.vec_file
            ).stat().st_size == 2 * self.dim * sh.n
            if ok and sh.codes:
                ok = (self.folder / sh.codes).stat().st_size == sh.codes_size
        except OSError:
            return False
        return ok

    def verify(self) -> list[str]:
        """Names of listed shards whose files do not match their checksums."""
        bad = []
        for sh in self.shards:
            if (
                _sha256_file(self.folder / sh.ids_file) != sh.ids_sha256
                or _sha256_file(self.folder / sh.vec_file) != sh.vec_sha256
            ):
                bad.append(sh.name)
        return bad

    # -- reading ----------------------------------------------------------------------------

    @property
    def total(self) -> int:
        """Vectors in the shards, deleted ones included."""
        return sum(sh.n for sh in self.shards)

    @property
    def live(self) -> int:
        """Vectors in the shards less the tombstoned ones."""
        return self.total - len(self.deleted)

    def shard(self, name: str) -> Shard:
        for sh in self.shards:
            if sh.name == name:
                return sh
        raise ShardError(f"no shard {name!r} in {self.folder}")

    def ids(self, sh: Shard) -> np.ndarray:
        if sh.name not in self._ids:
            self._ids[sh.name] = (
                np.memmap(self.folder / sh.ids_file, dtype=np.int64, mode="r", shape=(sh.n,))
                if sh.n
                else np.zeros(0, np.int64)
            )
        return self._ids[sh.name]

    def vectors(self, sh: Shard) -> np.ndarray:
        """The shard's float16 vectors, memory-mapped, ``(n, dim)``."""
        if sh.name not in self._vecs:
            self._vecs[sh.name] = (
                np.memmap(
                    self.folder / sh.vec_file, dtype=np.float16, mode="r", shape=(sh.n, self.dim)
                )
                if sh.n
                else np.zeros((0, self.dim), np.float16)
            )
        return self._vecs[sh.name]

    def all_ids(self) -> np.ndarray:
        """Every id in the shards that is not tombstoned (unique, sorted)."""
        parts = [np.asarray(self.ids(sh)) for sh in self.shards]
        have = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
        return np.setdiff1d(have, self.deleted, assume_unique=True) if len(self.deleted) else have

    def raw_by_id(self, ids: Sequence[int] | np.ndarray) -> dict[int, np.ndarray]:
        """``{id: float16 row}`` for the ids held (the newest shard wins)."""
        want = np.unique(np.asarray(ids, dtype=np.int64))
        out: dict[int, np.ndarray] = {}
        for sh in reversed(self.shards):
            if not len(want):
                break
            sel = want[(want >= sh.id_min) & (want <= sh.id_max)]
            if not len(sel):
                continue
            sids = self.ids(sh)
            pos = np.searchsorted(sids, sel)
            pos = np.minimum(pos, sh.n - 1)
            hit = sids[pos] == sel
            if hit.any():
                vecs = self.vectors(sh)
                for i, p in zip(sel[hit].tolist(), pos[hit].tolist(), strict=True):
                    out[i] = np.asarray(vecs[p])
                want = np.setdiff1d(want, sel[hit], assume_unique=True)
        return out

    def vectors_by_id(self, ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(found ids, normalised float32 vectors)`` for the ids held, in ``ids`` order."""
        rows = self.raw_by_id(ids)
        found = np.array([i for i in dict.fromkeys(int(x) for x in ids) if i in rows], np.int64)
        if not len(found):
            return found, np.zeros((0, self.dim), np.float32)
        return found, normalise(np.stack([rows[int(i)] for i in found]))

    # -- writing ----------------------------------------------------------------------------

    def write_shard(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> Shard | None:
        """Stream ``(ids, float16 vectors)`` batches (ids ascending) into a new shard's files
        (temporary names, fsync, rename); returns it, or None when there was nothing. The shard
        counts only once :meth:`commit` lists it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"shard-{self.generation + 1:06d}-{uuid.uuid4().hex[:8]}"
        h_ids, h_vec = hashlib.sha256(), hashlib.sha256()
        n, first, last = 0, None, None
        try:
            with (
                atomic_path(self.folder / f"{name}.f16") as tmp_vec,
                atomic_path(self.folder / f"{name}.ids") as tmp_ids,
            ):
                with open(tmp_ids, "wb") as fi, open(tmp_vec, "wb") as fv:
                    for ids, vecs in batches:
                        ids = np.ascontiguousarray(ids, dtype=np.int64)
                        vecs = np.ascontiguousarray(vecs, dtype=np.float16)
                        if not len(ids):
                            continue
                        if vecs.shape != (len(ids), self.dim):
                            raise ShardError(f"batch of shape {vecs.shape}, expected {self.dim}-d")
                        if (last is not None and ids[0] <= last) or np.any(np.diff(ids) <= 0):
                            raise ShardError("shard ids must be strictly ascending")
                        first = int(ids[0]) if first is None else first
                        last = int(ids[-1])
                        b_ids, b_vec = ids.tobytes(), vecs.tobytes()
                        fi.write(b_ids)
                        fv.write(b_vec)
                        h_ids.update(b_ids)
                        h_vec.update(b_vec)
                        n += len(ids)
                if n == 0:
                    raise _NothingWritten
        except _NothingWritten:
            return None
        return Shard(
            name=name,
            n=n,
            id_min=int(first),
            id_max=int(last),
            ids_sha256=h_ids.hexdigest(),
            vec_sha256=h_vec.hexdigest(),
            created_at=_now(),
        )

    def _write_deleted(self, deleted: np.ndarray) -> str | None:
        if not len(deleted):
            return None
        name = f"deleted-{self.generation + 1:06d}-{uuid.uuid4().hex[:8]}.i64"
        atomic_write_bytes(self.folder / name, np.asarray(deleted, np.int64).tobytes())
        return name

    def commit(self) -> Path:
        """Write the manifest (atomically, last) and remove files it no longer names."""
        self.generation += 1
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "embedder_id": self.embedder_id,
            "dim": self.dim,
            "generation": self.generation,
            "high_water": self.high_water,
            "covered": self.covered,
            "shards": [asdict(sh) for sh in self.shards],
            "trained": self.trained,
            "merged": self.merged,
            "deleted_file": self.deleted_file,
            "deleted": len(self.deleted),
            "updated_at": _now(),
        }
        path = self.folder / MANIFEST
        atomic_write_bytes(path, json.dumps(doc, ensure_ascii=False, indent=1).encode())
        self.damaged = []
        self._cleanup()
        return path

    def _referenced(self) -> set[str]:
        keep = {MANIFEST, ".lock"}
        for sh in self.shards:
            keep.update({sh.ids_file, sh.vec_file})
            if sh.codes:
                keep.add(sh.codes)
        if self.trained:
            keep.add(self.trained["file"])
        if self.merged:
            keep.update({self.merged["index_file"], self.merged["data_file"]})
        if self.deleted_file:
            keep.add(self.deleted_file)
        return keep

    def _cleanup(self) -> None:
        """Remove what the manifest does not name (half-written shards, superseded merges,
        temporary files); only called by the lock holder."""
        keep = self._referenced()
        for p in self.folder.iterdir():
            if p.name not in keep:
                with contextlib.suppress(OSError):
                    p.unlink()

    # -- following the store ----------------------------------------------------------------

    def _count(self, store: Store, upto: int | None = None) -> int:
        with store.session() as s:
            q = select(func.count()).select_from(Embedding)
            q = q.where(Embedding.model_id == self.embedder_id)
            if upto is not None:
                q = q.where(Embedding.id <= upto)
            return int(s.scalar(q) or 0)

    def _store_ids(self, store: Store, upto: int) -> np.ndarray:
        with store.session() as s:
            q = select(Embedding.id).where(
                Embedding.model_id == self.embedder_id, Embedding.id <= upto
            )
            return np.array(sorted(s.scalars(q)), dtype=np.int64)

    def _rows(
        self, store: Store, *, ids: np.ndarray | None = None, above: int = 0
    ) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """``(ids, float16 vectors, last id read)`` batches: the given ``ids`` or every row of
        this model above ``above``, ascending; rows of another dimension or pruned are left
        out."""
        last = above
        pos = 0
        while True:
            with store.session() as s:
                q = select(Embedding.id, Embedding.vector).where(
                    Embedding.model_id == self.embedder_id
                )
                if ids is not None:
                    chunk = [int(x) for x in ids[pos : pos + 500]]
                    if not chunk:
                        return
                    pos += len(chunk)
                    q = q.where(Embedding.id.in_(chunk))
                else:
                    q = q.where(Embedding.id > last).limit(READ_BATCH)
                rows = s.execute(q.order_by(Embedding.id)).all()
            if not rows:
                if ids is None:
                    return
                continue
            last = max(last, int(rows[-1][0]))
            good = [(int(i), b) for i, b in rows if fits(b, self.dim)]
            if len(good) < len(rows):
                log.warning(
                    "archive %s: %d stored vector(s) pruned or of another dimension; skipped",
                    self.embedder_id,
                    len(rows) - len(good),
                )
            out_ids = np.array([i for i, _ in good], dtype=np.int64)
            vecs = stack_f16([b for _, b in good], self.dim)
            yield out_ids, vecs, last

    def sync(self, store: Store, *, shard_max: int = SHARD_MAX) -> SyncStats:
        """Write the store's rows of this model that no shard holds into new shards (at most
        ``shard_max`` vectors each), tombstone the ids whose rows are gone, drop damaged shards
        (their rows are read again), then commit the manifest."""
        stats = SyncStats()
        with locked(self.lock_path):
            self.reload()
            stats.dropped = list(self.damaged)
            missing = np.zeros(0, np.int64)
            count = self._count(store, self.high_water) if self.high_water else 0
            if self.high_water and (self.damaged or count != self.covered):
                present = self._store_ids(store, self.high_water)
                have = self.all_ids()
                gone = np.setdiff1d(have, present, assume_unique=True)
                missing = np.setdiff1d(present, have, assume_unique=True)
                stats.deleted = len(gone)
                self.deleted = np.union1d(np.setdiff1d(self.deleted, missing), gone)
                self.covered = len(present)
            before = self.high_water
            pending: list[Iterator[tuple[np.ndarray, np.ndarray, int]]] = []
            if len(missing):
                pending.append(self._rows(store, ids=missing))
            pending.append(self._rows(store, above=before))

            def rows() -> Iterator[tuple[np.ndarray, np.ndarray]]:
                for it in pending:
                    for ids, vecs, last in it:
                        if it is pending[-1]:
                            self.high_water = max(self.high_water, last)
                        yield ids, vecs

            stream = _Split(rows(), shard_max)
            while not stream.done:
                sh = self.write_shard(stream.next_shard())
                if sh is not None:
                    self.shards.append(sh)
                    stats.shards.append(sh.name)
                    stats.added += sh.n
            if len(missing):
                self.deleted = np.setdiff1d(self.deleted, missing)
            if self.high_water != before or len(missing) or stats.added:
                self.covered = self._count(store, self.high_water)
            changed = bool(stats.shards or stats.dropped or stats.deleted or len(missing))
            if changed or self.high_water != before:
                self.deleted_file = self._write_deleted(self.deleted)
                self.commit()
        return stats

    # -- IVF-PQ: trained once, each shard encoded, encoded shards merged on disk --------------

    def sample(self, size: int, seed: int = 0) -> np.ndarray:
        """Up to ``size`` live vectors drawn evenly at random from the shards, normalised."""
        total = self.total
        if total == 0:
            return np.zeros((0, self.dim), np.float32)
        rng = np.random.default_rng(seed)
        take = np.sort(rng.choice(total, size=min(size, total), replace=False))
        out, start = [], 0
        for sh in self.shards:
            sel = take[(take >= start) & (take < start + sh.n)] - start
            if len(sel):
                ids = np.asarray(self.ids(sh))[sel]
                keep = ~np.isin(ids, self.deleted) if len(self.deleted) else slice(None)
                out.append(normalise(np.asarray(self.vectors(sh)[sel])[keep]))
            start += sh.n
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def train(
        self, *, nlist: int | None = None, sample_max: int = TRAIN_MAX, seed: int = 0
    ) -> dict[str, Any]:
        """Train an IVF-PQ index on a sample of the shards and save it empty (one file); codes of
        an earlier training become stale. Call :meth:`commit` afterwards (under the lock)."""
        m = pq_subvectors(self.dim)
        want_nlist = nlist or ivf_lists(self.live)
        need = max(2**PQ_BITS * IVF_MIN_POINTS_PER_LIST, want_nlist * IVF_MIN_POINTS_PER_LIST)
        train = self.sample(min(sample_max, max(need, 64 * want_nlist)), seed=seed)
        if len(train) < 2**PQ_BITS:
            raise ShardError(f"{len(train)} vectors are too few to train IVF-PQ")
        nlist = max(1, min(want_nlist, len(train) // IVF_MIN_POINTS_PER_LIST))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFPQ(quantizer, self.dim, nlist, m, PQ_BITS, faiss.METRIC_INNER_PRODUCT)
        t0 = time.perf_counter()
        index.train(np.ascontiguousarray(train))
        seconds = time.perf_counter() - t0
        name = f"trained-{uuid.uuid4().hex[:8]}.faiss"
        atomic_write_bytes(self.folder / name, faiss.serialize_index(index).tobytes())
        self.trained = {
            "file": name,
            "kind": "ivfpq",
            "nlist": nlist,
            "nprobe": ivf_probes(nlist),
            "m": m,
            "nbits": PQ_BITS,
            "trained_on": len(train),
            "live_at_training": self.live,
            "seconds": round(seconds, 2),
        }
        log.info(
            "archive %s: trained IVF-PQ (%d lists, %d x %d bits) on %d vectors in %.1f s",
            self.embedder_id,
            nlist,
            m,
            PQ_BITS,
            len(train),
            seconds,
        )
        return self.trained

    def trained_index(self) -> Any:
        if not self.trained:
            raise ShardError("no trained IVF-PQ index yet")
        return faiss.read_index(str(self.folder / self.trained["file"]))

    def encode_shard(self, sh: Shard, trained: Any | None = None) -> Shard:
        """Encode one shard with the trained index into its ``.ivfpq`` file (atomically); the
        manifest still has to be committed."""
        index = faiss.clone_index(trained) if trained is not None else self.trained_index()
        ids, vecs = self.ids(sh), self.vectors(sh)
        for i in range(0, sh.n, CHUNK):
            index.add_with_ids(
                np.ascontiguousarray(normalise(vecs[i : i + CHUNK])),
                np.ascontiguousarray(ids[i : i + CHUNK]),
            )
        name = f"{sh.name}-{uuid.uuid4().hex[:8]}.ivfpq"
        with atomic_path(self.folder / name) as tmp:
            faiss.write_index(index, str(tmp))
        sh.codes = name
        sh.codes_size = (self.folder / name).stat().st_size
        sh.codes_trained = self.trained["file"] if self.trained else None
        return sh

    def encode(self, *, force: bool = False) -> int:
        """Encode the shards that have no codes of the current training; returns how many."""
        if not self.trained:
            return 0
        trained = self.trained_index()
        done = 0
        for sh in self.shards:
            if force or not sh.codes or sh.codes_trained != self.trained["file"]:
                self.encode_shard(sh, trained)
                done += 1
        return done

    def merge_current(self) -> bool:
        """True when the merged on-disk index holds exactly the encoded shards."""
        if not self.merged or not self.trained:
            return False
        return self.merged.get("trained") == self.trained["file"] and self.merged.get("codes") == [
            sh.codes for sh in self.shards
        ]

    def merge(self) -> dict[str, Any]:
        """Merge every shard's codes into a new generation of the on-disk index (``.index`` +
        ``.ivfdata``); the old generation stays until the manifest is committed."""
        from faiss.contrib.ondisk import merge_ondisk

        if not self.trained or any(not sh.codes for sh in self.shards):
            raise ShardError("every shard must be encoded before merging")
        tag = f"merged-{self.generation + 1:06d}-{uuid.uuid4().hex[:8]}"
        data = self.folder / f"{tag}.ivfdata"
        idx = self.folder / f"{tag}.index"
        t0 = time.perf_counter()
        index = self.trained_index()
        if self.shards:
            merge_ondisk(index, [str(self.folder / sh.codes) for sh in self.shards], str(data))
        else:
            inner = faiss.extract_index_ivf(index)
            ondisk = faiss.OnDiskInvertedLists(inner.nlist, inner.code_size, str(data))
            inner.replace_invlists(ondisk, True)
            ondisk.this.disown()
        ntotal = int(index.ntotal)
        faiss.write_index(index, str(idx))
        del index  # unmaps the inverted lists
        for p in (data, idx):
            if p.is_file():
                fsync_file(p)
        fsync_dir(self.folder)
        self.merged = {
            "index_file": idx.name,
            "data_file": data.name,
            "ntotal": ntotal,
            "trained": self.trained["file"],
            "codes": [sh.codes for sh in self.shards],
            "bytes": idx.stat().st_size + (data.stat().st_size if data.is_file() else 0),
            "seconds": round(time.perf_counter() - t0, 2),
        }
        return self.merged

    def open_merged(self) -> Any:
        """The merged index, its inverted lists memory-mapped from disk (None if none)."""
        for attempt in range(2):
            if not self.merged:
                return None
            path = self.folder / self.merged["index_file"]
            try:
                index = faiss.read_index(
                    str(path), faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY
                )
            except RuntimeError:
                if attempt:
                    raise
                self.reload()  # a writer replaced it meanwhile
                continue
            faiss.extract_index_ivf(index).nprobe = int(self.trained["nprobe"])
            return index
        return None

    # -- searching --------------------------------------------------------------------------

    def _params(self, nprobe: int) -> Any:
        params = faiss.SearchParametersIVF()
        params.nprobe = int(nprobe)
        if len(self.deleted):
            sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(self.deleted))
            params.sel = sel
            params._keep = sel  # keep the selector alive as long as the parameters
        return params

    def rerank(
        self, q: np.ndarray, cand: np.ndarray, k: int, lookup: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact re-ranking of candidate ids by their stored vectors (``lookup(ids)`` ->
        ``(found, vectors)``)."""
        found, vecs = lookup(np.unique(cand[cand >= 0]))
        row = {int(i): r for r, i in enumerate(found)}
        scores = np.full((len(q), k), -np.inf, np.float32)
        ids = np.full((len(q), k), -1, np.int64)
        for qi in range(len(q)):
            have = [int(i) for i in dict.fromkeys(cand[qi].tolist()) if int(i) in row]
            if not have:
                continue
            exact = vecs[[row[i] for i in have]] @ q[qi]
            order = np.argsort(-exact, kind="stable")[:k]
            scores[qi, : len(order)] = exact[order]
            ids[qi, : len(order)] = np.asarray(have, dtype=np.int64)[order]
        return scores, ids

    def search_merged(
        self, queries: np.ndarray, k: int, *, index: Any = None, refine: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search the merged on-disk index; ``refine``: fetch ``REFINE_FACTOR`` x ``k``
        candidates and re-rank them by their exact shard vectors."""
        q = normalise(np.atleast_2d(queries))
        index = index if index is not None else self.open_merged()
        if index is None or index.ntotal == 0:
            return _empty(len(q), k)
        want = k * REFINE_FACTOR if refine else k
        scores, cand = index.search(q, want, params=self._params(self.trained["nprobe"]))
        if not refine:
            return scores, cand
        return self.rerank(q, cand, k, self.vectors_by_id)

    def search_shard(
        self, name: str, queries: np.ndarray, k: int, *, exact: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest live vectors of one shard per query: its IVF-PQ codes re-ranked
        by its own exact vectors when it is encoded (and ``exact`` is not True), else an exact
        scan. Reads only this shard's files."""
        sh = self.shard(name)
        q = normalise(np.atleast_2d(queries))
        if sh.n == 0:
            return _empty(len(q), k)
        if exact is None:
            exact = not (sh.codes and self.trained and sh.codes_trained == self.trained["file"])
        sids = self.ids(sh)
        if not exact:
            index = faiss.read_index(str(self.folder / sh.codes), faiss.IO_FLAG_MMAP)
            _, cand = index.search(
                q, min(sh.n, k * REFINE_FACTOR), params=self._params(self.trained["nprobe"])
            )
            vecs = self.vectors(sh)

            def lookup(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                pos = np.searchsorted(sids, ids)
                return ids, normalise(np.asarray(vecs[pos]))

            return self.rerank(q, cand, k, lookup)
        best_s = np.full((len(q), 0), -np.inf, np.float32)
        best_i = np.full((len(q), 0), -1, np.int64)
        vecs = self.vectors(sh)
        for i in range(0, sh.n, CHUNK):
            block = normalise(vecs[i : i + CHUNK])
            ids = np.asarray(sids[i : i + CHUNK])
            s = q @ block.T
            if len(self.deleted):
                s[:, np.isin(ids, self.deleted)] = -np.inf
            best_s = np.concatenate([best_s, s], axis=1)
            best_i = np.concatenate([best_i, np.broadcast_to(ids, s.shape)], axis=1)
            if best_s.shape[1] > k:
                top = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
                best_s = np.take_along_axis(best_s, top, 1)
                best_i = np.take_along_axis(best_i, top, 1)
        order = np.argsort(-best_s, axis=1, kind="stable")
        best_s = np.take_along_axis(best_s, order, 1)
        best_i = np.take_along_axis(best_i, order, 1)
        best_i[~np.isfinite(best_s)] = -1
        return _pad(best_s, best_i, k)


class _Split:
    """Cut one stream of ``(ids, vectors)`` batches into shards of at most ``size`` rows."""

    def __init__(self, it: Iterator[tuple[np.ndarray, np.ndarray]], size: int) -> None:
        self.it = it
        self.size = max(1, int(size))
        self.carry: tuple[np.ndarray, np.ndarray] | None = None
        self.done = False

    def next_shard(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        room = self.size
        while room > 0:
            if self.carry is None:
                try:
                    self.carry = next(self.it)
                except StopIteration:
                    self.done = True
                    return
            ids, vecs = self.carry
            if len(ids) <= room:
                self.carry = None
                room -= len(ids)
                yield ids, vecs
            else:
                self.carry = (ids[room:], vecs[room:])
                yield ids[:room], vecs[:room]
                room = 0
        if self.carry is None:
            try:
                self.carry = next(self.it)
            except StopIteration:
                self.done = True


def _empty(nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = max(1, int(k))
    return np.full((nq, k), -np.inf, np.float32), np.full((nq, k), -1, np.int64)


def _pad(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s, i = _empty(len(scores), k)
    n = min(k, scores.shape[1])
    s[:, :n], i[:, :n] = scores[:, :n], ids[:, :n]
    return s, i


def merge_topk(
    parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of several ``(scores, ids)`` results per query (an id found in two
    shards counts once, with its best score)."""
    if not parts:
        raise ValueError("nothing to merge")
    scores = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    out_s, out_i = _empty(len(scores), k)
    for qi in range(len(scores)):
        order = np.argsort(-scores[qi], kind="stable")
        seen: set[int] = set()
        j = 0
        for o in order:
            i = int(ids[qi, o])
            if i < 0 or i in seen or not np.isfinite(scores[qi, o]):
                continue
            seen.add(i)
            out_s[qi, j], out_i[qi, j] = scores[qi, o], i
            j += 1
            if j == k:
                break
    return out_s, out_i


def prune_db_vectors(store: Store, shards: ShardStore, *, batch: int = 500) -> int:
    """Empty the database copy of every vector of this model that a committed, intact shard
    holds byte for byte; returns how many were emptied. The rows stay (frames keep their
    vector rows, so re-embedding and coverage counts are unchanged); readers get the vectors
    from the shards (:func:`fill_vectors`)."""
    shards.reload()
    if shards.damaged:
        raise ShardError(f"damaged shards {shards.damaged}: run `charwatch archive update` first")
    pruned = 0
    last = 0
    while True:
        with store.session() as s:
            rows = s.execute(
                select(Embedding.id, Embedding.vector)
                .where(
                    Embedding.model_id == shards.embedder_id,
                    Embedding.id > last,
                    Embedding.id <= shards.high_water,
                    func.length(Embedding.vector) > 0,
                )
                .order_by(Embedding.id)
                .limit(batch)
            ).all()
            if not rows:
                return pruned
            last = int(rows[-1][0])
            held = shards.raw_by_id([r[0] for r in rows])
            dead = set(shards.deleted.tolist())
            safe = [
                int(i)
                for i, blob in rows
                if int(i) in held and int(i) not in dead and held[int(i)].tobytes() == blob
            ]
            if safe:
                s.execute(update(Embedding).where(Embedding.id.in_(safe)).values(vector=b""))
                pruned += len(safe)


def fill_vectors(
    data_dir: Path | str, model_id: str, dim: int, ids: Sequence[int]
) -> dict[int, bytes]:
    """``{id: float16 bytes}`` from the shards of ``model_id`` under ``data_dir``, for rows whose
    database copy was pruned."""
    folder = shard_dir_at(data_dir, model_id)
    try:
        stamp = (folder / MANIFEST).stat().st_mtime_ns
    except OSError:
        return {}
    key = (str(folder), model_id, int(dim))
    cached = _READERS.get(key)
    if cached is None or cached[0] != stamp:
        _READERS[key] = cached = (stamp, ShardStore.at(folder, model_id, dim))
    return {i: v.tobytes() for i, v in cached[1].raw_by_id(list(ids)).items()}


_READERS: dict[tuple[str, str, int], tuple[int, ShardStore]] = {}


def drop_shards(cfg: Config, embedder_id: str) -> bool:
    """Delete one embedder's shards (manifest first); True when there were any."""
    folder = shard_dir(cfg, embedder_id)
    if not folder.is_dir():
        return False
    (folder / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    return True


def disk_usage(folder: Path) -> dict[str, int]:
    """Bytes per file kind under ``folder``."""
    out: dict[str, int] = {}
    if not folder.is_dir():
        return out
    for p in folder.iterdir():
        if p.is_file():
            kind = p.suffix.lstrip(".") or p.name
            out[kind] = out.get(kind, 0) + p.stat().st_size
    return out
