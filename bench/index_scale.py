"""Archive-index scale: FAISS search latency, recall and memory at 1M and 10M frame vectors.

The archive holds one vector per sampled frame (16 per short), so 10M vectors are about 600k
shorts. The index type is chosen by size (:func:`choose_index`): exact ``Flat`` while small,
``IVF,SQ8`` (1 byte per dimension) up to 2M vectors, ``IVF,PQ`` (``dim/8`` bytes per vector)
above. Vectors are synthetic and L2-normalised, with the structure frame embeddings have:

* ``nlist`` content clusters (topics) drawn around ``nlist/8`` broader themes;
* videos of 16 frames: a video vector near its topic centre, frames near their video vector;
* queries are new frames of archived videos (a re-upload, or a reference close to one).

To stay inside a 2-core benchmark budget the coarse quantizer is not trained by k-means and
the 10M vectors are not assigned by searching it (that alone is ~8e13 FLOP): the topic centres
are the IVF centroids and every vector is stored in its topic's list (``add_core`` with the
list given). Queries are routed by the real coarse quantizer, so a vector whose nearest
centroid is not its own topic is missed as it would be in a badly balanced real index; the
share of such vectors is measured on a sample and reported. Ground truth is exact inner-product
search over all ``n`` vectors, streamed chunk by chunk.

Reported per ``nprobe``: ``recall_at_10`` (share of the exact 10 nearest found among the 10
returned), ``nn_in_top10`` (share of queries whose exact nearest neighbour is among the 10
returned, FAISS's R@10), and milliseconds per query, one query at a time on all cores.

Run one size: ``python -m bench.index_scale --n 1000000 --json out.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.metrics import proc_status_mb, recall_at_k

FRAMES_PER_VIDEO = 16
THEME_FANOUT = 8  # topics per theme
CHUNK = 65_536
K = 10
SQ8_MAX = 2_000_000
FLAT_MAX = 50_000
TARGET_MS = 20.0


SCHEMES = ("compressed", "archive")


@dataclass(frozen=True)
class IndexChoice:
    """An index configuration: ``kind`` Flat | IVF,SQ8 | IVF,PQ | IVF,Flat; ``nprobe`` the
    setting it would run with (None: pick from the sweep)."""

    kind: str
    nlist: int = 0
    m: int = 0  # PQ sub-quantizers (bytes per vector)
    nprobe: int | None = None

    @property
    def factory(self) -> str:
        if self.kind == "Flat":
            return "Flat"
        return f"IVF{self.nlist},{self.kind.split(',', 1)[1]}" + (
            str(self.m) if self.kind == "IVF,PQ" else ""
        )

    def code_bytes(self, dim: int) -> int:
        return {"Flat": 4 * dim, "IVF,Flat": 4 * dim, "IVF,SQ8": dim}.get(self.kind, self.m)


def choose_index(n: int, dim: int) -> IndexChoice:
    """The compressed scheme: exact up to 50k vectors; IVF with SQ8 codes up to 2M; IVF-PQ
    (dim/8 bytes) above. ``nlist`` is the power of two nearest to 4 * sqrt(n)."""
    if n <= FLAT_MAX:
        return IndexChoice("Flat")
    nlist = int(2 ** round(math.log2(4 * math.sqrt(n))))
    nlist = max(256, min(65_536, nlist))
    if n <= SQ8_MAX:
        return IndexChoice("IVF,SQ8", nlist)
    return IndexChoice("IVF,PQ", nlist, max(8, dim // 8))


def archive_choice(n: int, dim: int = 512) -> IndexChoice:
    """What ``index.archive`` builds for ``n`` vectors with ``kind="auto"``: exact below its
    flat limit, IVF-SQ8 up to its PQ limit, IVF-PQ above, with its ``nlist`` and ``nprobe``
    (its PQ search also re-ranks 4 x k candidates by the stored vectors; not done here)."""
    from index.archive import choose_kind
    from index.shards import ivf_lists, ivf_probes, pq_subvectors

    kind = choose_kind(n)
    if kind == "flat":
        return IndexChoice("Flat")
    nlist = ivf_lists(n)
    if kind == "ivf":
        return IndexChoice("IVF,SQ8", nlist, 0, ivf_probes(nlist))
    return IndexChoice("IVF,PQ", nlist, pq_subvectors(dim), ivf_probes(nlist))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def _orthonormal(rng: np.random.Generator, rank: int, dim: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((dim, rank)))
    return np.ascontiguousarray(q.T, dtype=np.float32)


class Synth:
    """Deterministic synthetic frame vectors (see the module docstring).

    Video and frame noise are drawn in random 64- and 32-dimensional subspaces (one small
    matrix product per chunk), which keeps 10M vectors cheap to make and gives the vectors the
    low intrinsic dimension real embeddings have. Chunks hold whole videos, and a video's
    noise depends only on its chunk's seed, so a query can rebuild any archived video.
    """

    RANK_VIDEO = 64
    RANK_FRAME = 32
    VIDEOS_PER_CHUNK = CHUNK // FRAMES_PER_VIDEO

    def __init__(self, n: int, dim: int, topics: int, seed: int, jitter: float = 0.06) -> None:
        self.n, self.dim, self.topics, self.seed = n, dim, topics, seed
        rng = np.random.default_rng(seed)
        themes = _unit(rng.standard_normal((-(-topics // THEME_FANOUT), dim), np.float32))
        offsets = _unit(rng.standard_normal((topics, dim), np.float32))
        self.centers = _unit(themes[np.arange(topics) // THEME_FANOUT] + jitter * offsets)
        self.basis_video = _orthonormal(rng, self.RANK_VIDEO, dim)
        self.basis_frame = _orthonormal(rng, self.RANK_FRAME, dim)
        self.video_topic = rng.integers(0, topics, -(-n // FRAMES_PER_VIDEO))
        self.sigma_video = np.float32(0.55 / math.sqrt(self.RANK_VIDEO))
        self.sigma_frame = np.float32(0.3 / math.sqrt(self.RANK_FRAME))

    def _video_block(self, block: int) -> np.ndarray:
        """Video vectors of chunk ``block`` (all its videos, archived or not)."""
        first = block * self.VIDEOS_PER_CHUNK
        ids = np.arange(first, min(first + self.VIDEOS_PER_CHUNK, len(self.video_topic)))
        rng = np.random.default_rng([self.seed, 1, block])
        z = rng.standard_normal((len(ids), self.RANK_VIDEO), dtype=np.float32)
        v = self.centers[self.video_topic[ids]]
        v += (self.sigma_video * z) @ self.basis_video
        return _unit(v)

    def chunk(
        self, start: int, stop: int, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Vectors ``start..stop`` (``start`` a multiple of CHUNK) and their topics, written
        into ``out`` when given (new memory is slow to fault in on some VMs: reuse it)."""
        block = start // CHUNK
        m = stop - start
        vids = self._video_block(block)
        frame_video = np.arange(start, stop) // FRAMES_PER_VIDEO
        rng = np.random.default_rng([self.seed, 2, block])
        z = rng.standard_normal((m, self.RANK_FRAME), dtype=np.float32)
        z *= self.sigma_frame
        x = np.empty((m, self.dim), np.float32) if out is None else out[:m]
        np.matmul(z, self.basis_frame, out=x)
        first = frame_video[0] - block * self.VIDEOS_PER_CHUNK
        if m % FRAMES_PER_VIDEO == 0:  # whole videos: broadcast, no temporary copy
            x.reshape(-1, FRAMES_PER_VIDEO, self.dim)[:] += vids[
                first : first + m // FRAMES_PER_VIDEO, None
            ]
        else:
            x += vids[frame_video - block * self.VIDEOS_PER_CHUNK]
        x /= np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
        return x, self.video_topic[frame_video].astype(np.int64)

    def queries(self, nq: int) -> np.ndarray:
        """New frames of ``nq`` archived videos: their video vector plus fresh frame noise in
        the full space (not only the frame subspace), as a re-encode would add."""
        rng = np.random.default_rng([self.seed, 3, nq])
        ids = np.sort(rng.choice(len(self.video_topic), size=nq, replace=False))
        out = np.empty((nq, self.dim), np.float32)
        for block in np.unique(ids // self.VIDEOS_PER_CHUNK):
            sel = ids // self.VIDEOS_PER_CHUNK == block
            out[sel] = self._video_block(int(block))[ids[sel] - block * self.VIDEOS_PER_CHUNK]
        z = rng.standard_normal((nq, self.RANK_FRAME), dtype=np.float32)
        out += (self.sigma_frame * z) @ self.basis_frame
        out += rng.standard_normal((nq, self.dim), dtype=np.float32) * np.float32(
            0.1 / math.sqrt(self.dim)
        )
        return _unit(out)


def rss_mb() -> float:
    """Current resident set size in MiB (from /proc; 0 where it does not exist), after
    handing freed heap memory back to the system (glibc ``malloc_trim``)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return proc_status_mb("VmRSS") or 0.0


def run_size(
    n: int, dim: int = 512, nq: int = 100, seed: int = 11, scheme: str = "compressed"
) -> dict[str, Any]:
    """Build the index ``scheme`` chooses for ``n`` vectors, measure it against exact search."""
    import faiss

    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, not {scheme!r}")
    t_start = time.perf_counter()
    choice = choose_index(n, dim) if scheme == "compressed" else archive_choice(n, dim)
    topics = choice.nlist or 256
    gen = Synth(n, dim, topics, seed)
    queries = gen.queries(nq)
    base_rss = rss_mb()

    if choice.kind == "Flat":
        index: Any = faiss.IndexFlatIP(dim)
        ivf = None
    else:
        quantizer = faiss.IndexFlatIP(dim)
        quantizer.add(gen.centers)
        if choice.kind == "IVF,Flat":
            ivf = faiss.IndexIVFFlat(quantizer, dim, choice.nlist, faiss.METRIC_INNER_PRODUCT)
        elif choice.kind == "IVF,SQ8":
            ivf = faiss.IndexIVFScalarQuantizer(
                quantizer,
                dim,
                choice.nlist,
                faiss.ScalarQuantizer.QT_8bit,
                faiss.METRIC_INNER_PRODUCT,
            )
        else:
            ivf = faiss.IndexIVFPQ(
                quantizer, dim, choice.nlist, choice.m, 8, faiss.METRIC_INNER_PRODUCT
            )
            ivf.pq.cp.niter = 12
        ivf.own_fields = False
        index = ivf
    heap = faiss.ResultHeap(nq, K, keep_max=True)
    buf = np.empty((CHUNK, dim), np.float32)
    t_gen = t_add = t_exact = t_train = 0.0
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        t0 = time.perf_counter()
        x, lists = gen.chunk(start, stop, buf)
        t1 = time.perf_counter()
        if ivf is not None and not ivf.is_trained:
            sample = min(len(x), 16_384 if choice.kind == "IVF,PQ" else len(x))
            resid = np.ascontiguousarray(x[:sample] - gen.centers[lists[:sample]])
            ivf.train_encoder(sample, faiss.swig_ptr(resid), faiss.swig_ptr(lists[:sample]))
            ivf.is_trained = True
            t_train = time.perf_counter() - t1
            t1 = time.perf_counter()
        if ivf is None:
            index.add(x)
        else:
            ids = np.arange(start, stop, dtype=np.int64)
            ivf.add_core(len(x), faiss.swig_ptr(x), faiss.swig_ptr(ids), faiss.swig_ptr(lists))
        t2 = time.perf_counter()
        d, i = faiss.knn(queries, x, K, metric=faiss.METRIC_INNER_PRODUCT)
        heap.add_result(d, i + start)
        t3 = time.perf_counter()
        t_gen, t_add, t_exact = t_gen + t1 - t0, t_add + t2 - t1, t_exact + t3 - t2
    heap.finalize()
    truth = heap.I
    built_rss = rss_mb()

    own_list = None
    if ivf is not None:
        x, lists = gen.chunk(0, min(n, 8192))
        _, nearest = ivf.quantizer.search(x, 1)
        own_list = float((nearest[:, 0] == lists).mean())

    sweeps = []
    probes = [1] if ivf is None else [p for p in (1, 4, 16, 64) if p <= choice.nlist]
    if choice.nprobe is not None and choice.nprobe not in probes:
        probes = sorted({*probes, choice.nprobe})
    for nprobe in probes:
        if ivf is not None:
            ivf.nprobe = nprobe
        index.search(queries, K)  # warm up: touch the lists these queries read
        times = []
        found = np.zeros((nq, K), dtype=np.int64)
        for qi in range(nq):
            t0 = time.perf_counter()
            _, ii = index.search(queries[qi : qi + 1], K)
            times.append((time.perf_counter() - t0) * 1000)
            found[qi] = ii[0]
        sweeps.append(
            {
                "nprobe": nprobe if ivf is not None else None,
                "recall_at_10": round(recall_at_k(found, truth, K), 4),
                "nn_in_top10": round(
                    float(np.mean([truth[q, 0] in found[q] for q in range(nq)])), 4
                ),
                "ms_per_query_median": round(float(np.median(times)), 3),
                "ms_per_query_p95": round(float(np.percentile(times, 95)), 3),
            }
        )
    good = [s for s in sweeps if s["nn_in_top10"] >= 0.95 and s["recall_at_10"] >= 0.8]
    if choice.nprobe is not None:  # the archive's own setting
        chosen = next(s for s in sweeps if s["nprobe"] == choice.nprobe)
    else:
        chosen = min(good, key=lambda s: s["ms_per_query_median"]) if good else sweeps[-1]
    code = choice.code_bytes(dim)
    index_bytes = n * (code + (8 if ivf is not None else 0)) + choice.nlist * dim * 4
    return {
        "vectors": n,
        "dim": dim,
        "scheme": scheme,
        "index": choice.factory,
        "queries": nq,
        "bytes_per_vector": code + (8 if ivf is not None else 0),
        "index_mb": round(index_bytes / 2**20, 1),
        "index_rss_mb": round(built_rss - base_rss, 1),
        "exact_flat_mb": round(n * dim * 4 / 2**20, 1),
        "peak_rss_mb": round(proc_status_mb("VmHWM") or 0.0, 1),
        "vectors_in_nearest_list": None if own_list is None else round(own_list, 4),
        "sweep": sweeps,
        "chosen": chosen,
        "exact_ms_per_query_batched": round(t_exact * 1000 / nq, 2),
        "seconds": {
            "generate": round(t_gen, 1),
            "train": round(t_train, 1),
            "add": round(t_add, 1),
            "exact_search": round(t_exact, 1),
            "total": round(time.perf_counter() - t_start, 1),
        },
        "target_ms": TARGET_MS,
        "threads": faiss.omp_get_max_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, required=True, help="number of archived vectors")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--scheme", choices=SCHEMES, default="compressed")
    ap.add_argument("--json", type=Path, help="write the result here (else stdout)")
    args = ap.parse_args(argv)
    res = run_size(args.n, args.dim, args.queries, args.seed, args.scheme)
    text = json.dumps(res, indent=2)
    if args.json:
        args.json.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
