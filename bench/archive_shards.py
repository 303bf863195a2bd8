"""Archive shards at scale: shard build, IVF-PQ training, encoding, on-disk merge, search latency,
recall@10 against exact search, disk and peak memory (:mod:`index.shards`).

The vectors are synthetic and L2-normalised, with the structure frame embeddings have: topics
(one per IVF list) around which videos lie, and 16 frames per video near their video's vector.
Queries are new frames of archived videos. They go straight into the shard files (the database
is not involved: at this size it would dominate the time). Ground truth is exact inner-product
search over every vector, streamed shard by shard, for ``--gt-queries`` of the queries.

Reported: seconds to write the shards (float16 ids + vectors, fsynced), to train IVF-PQ once,
to encode the shards and to merge them into on-disk inverted lists; per-query milliseconds
(one query at a time) of the merged on-disk index with and without exact re-ranking, and of
the per-shard scan (every shard searched, top-k merged: the retroactive scan's path);
recall@10 of each; bytes on disk per file kind; peak RSS of the whole run and of the search
phase alone (the merged index is memory-mapped).

``python -m bench.archive_shards --vectors 1000000 --dim 1280 --json out.json``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench.metrics import proc_status_mb, recall_at_k
from index.shards import (
    CHUNK,
    TRAIN_MAX,
    ShardStore,
    disk_usage,
    ivf_lists,
    merge_topk,
    normalise,
)

FRAMES_PER_VIDEO = 16
K = 10


def _reset_peak() -> bool:
    """Reset this process's peak RSS (``VmHWM``) where Linux allows it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class World:
    """Topic centres, video vectors, and frames drawn around them, reproducibly."""

    def __init__(self, n: int, dim: int, topics: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.videos = -(-n // FRAMES_PER_VIDEO)
        centres = normalise(rng.normal(size=(topics, dim)).astype(np.float32))
        topic = rng.integers(0, topics, size=self.videos)
        spread = 0.9 / np.sqrt(dim)  # per dimension: a video is ~0.9 away from its topic
        self.video = normalise(
            centres[topic] + spread * rng.normal(size=(self.videos, dim)).astype(np.float32)
        )
        self.frame_spread = 0.5 / np.sqrt(dim)
        self.seed = seed

    def frames(self, start: int, stop: int) -> np.ndarray:
        """Frame vectors ``start:stop`` (frame i belongs to video i // 16)."""
        rng = np.random.default_rng((self.seed, start))
        owner = np.arange(start, stop) // FRAMES_PER_VIDEO
        noise = rng.normal(size=(stop - start, self.dim)).astype(np.float32)
        return normalise(self.video[owner] + self.frame_spread * noise)

    def queries(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        owner = rng.integers(0, self.videos, size=n)
        noise = rng.normal(size=(n, self.dim)).astype(np.float32)
        return normalise(self.video[owner] + self.frame_spread * noise)


def exact_topk(st: ShardStore, q: np.ndarray, k: int) -> np.ndarray:
    """Exact ``k`` nearest ids of every query over every shard (streamed)."""
    parts = [st.search_shard(sh.name, q, k, exact=True) for sh in st.shards]
    return merge_topk(parts, k)[1]


def _per_query_ms(fn: Any, q: np.ndarray) -> tuple[float, float, np.ndarray]:
    times, out = [], []
    for row in q:
        t0 = time.perf_counter()
        out.append(fn(row[None, :])[1][0])
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times)), float(np.percentile(times, 99)), np.stack(out)


def run(
    n: int,
    dim: int,
    *,
    shards: int = 4,
    queries: int = 200,
    gt_queries: int = 100,
    nlist: int | None = None,
    train: int | None = None,
    seed: int = 0,
    folder: Path | None = None,
) -> dict[str, Any]:
    nlist = nlist or ivf_lists(n)
    own = folder is None
    root = Path(tempfile.mkdtemp(prefix="archive-shards-")) if folder is None else folder
    root.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {
        "vectors": n,
        "dim": dim,
        "shards": shards,
        "nlist": nlist,
        "threads": faiss.omp_get_max_threads(),
    }
    try:
        world = World(n, dim, topics=nlist, seed=seed)
        st = ShardStore.at(root, "bench:synthetic", dim)

        t0 = time.perf_counter()
        per = -(-n // shards)
        for s in range(shards):
            lo, hi = s * per, min(n, (s + 1) * per)

            def batches(
                lo: int = lo, hi: int = hi, world: World = world
            ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
                for i in range(lo, hi, CHUNK):
                    j = min(hi, i + CHUNK)
                    yield np.arange(i + 1, j + 1, dtype=np.int64), world.frames(i, j)

            sh = st.write_shard(batches())
            if sh is not None:
                st.shards.append(sh)
        st.high_water = n
        st.commit()
        res["write_s"] = round(time.perf_counter() - t0, 2)

        t0 = time.perf_counter()
        sample = train or min(n, TRAIN_MAX, max(64 * nlist, 39 * 256))
        trained = st.train(nlist=nlist, sample_max=sample, seed=seed)
        res["train_s"] = round(time.perf_counter() - t0, 2)
        res["trained_on"] = trained["trained_on"]
        res["pq"] = {"m": trained["m"], "nbits": trained["nbits"], "nprobe": trained["nprobe"]}

        t0 = time.perf_counter()
        st.encode()
        st.commit()
        res["encode_s"] = round(time.perf_counter() - t0, 2)

        t0 = time.perf_counter()
        st.merge()
        st.commit()
        res["merge_s"] = round(time.perf_counter() - t0, 2)
        res["peak_rss_build_mb"] = proc_status_mb("VmHWM")

        q = world.queries(queries, seed + 1)
        gt_n = min(gt_queries, queries)
        t0 = time.perf_counter()
        truth = exact_topk(st, q[:gt_n], K)
        res["exact_ms_per_query"] = round((time.perf_counter() - t0) * 1000 / gt_n, 2)

        del world
        reset = _reset_peak()
        rss0 = proc_status_mb("VmRSS")
        st = ShardStore.at(root, "bench:synthetic", dim)
        index = st.open_merged()
        p50, p99, pq_only = _per_query_ms(
            lambda x: st.search_merged(x, K, index=index, refine=False), q
        )
        r50, r99, refined = _per_query_ms(lambda x: st.search_merged(x, K, index=index), q)
        t0 = time.perf_counter()
        per_shard = merge_topk([st.search_shard(sh.name, q, K) for sh in st.shards], K)[1]
        shard_ms = (time.perf_counter() - t0) * 1000 / len(q)
        res["search"] = {
            "merged_pq_ms_p50": round(p50, 3),
            "merged_pq_ms_p99": round(p99, 3),
            "merged_refined_ms_p50": round(r50, 3),
            "merged_refined_ms_p99": round(r99, 3),
            "per_shard_scan_ms_per_query": round(shard_ms, 3),
            "recall_at_10_merged_pq": round(recall_at_k(pq_only[:gt_n], truth, K), 4),
            "recall_at_10_merged_refined": round(recall_at_k(refined[:gt_n], truth, K), 4),
            "recall_at_10_per_shard_scan": round(recall_at_k(per_shard[:gt_n], truth, K), 4),
            "gt_queries": gt_n,
            "queries": len(q),
        }
        res["rss_before_search_mb"] = rss0
        res["peak_rss_search_mb"] = proc_status_mb("VmHWM") if reset else None
        res["peak_rss_mb"] = proc_status_mb("VmHWM") if not reset else None
        usage = disk_usage(root)
        res["disk_bytes"] = usage
        res["disk_bytes_per_vector"] = {k: round(v / n, 2) for k, v in usage.items()}
        res["merge_doubles_disk_bytes"] = st.merged["bytes"] if st.merged else 0
    finally:
        if own:
            shutil.rmtree(root, ignore_errors=True)
    return res


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vectors", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--gt-queries", type=int, default=100, help="queries with exact ground truth")
    ap.add_argument("--nlist", type=int, help="IVF lists (default 4 x sqrt(n))")
    ap.add_argument("--train", type=int, help="training sample (default 64 x nlist, capped)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, help="keep the shards here (default: a temporary dir)")
    ap.add_argument("--json", type=Path, help="write the result here (else stdout)")
    args = ap.parse_args(argv)
    with _stdout_to_stderr():  # FAISS prints merge progress on file descriptor 1
        res = run(
            args.vectors,
            args.dim,
            shards=args.shards,
            queries=args.queries,
            gt_queries=args.gt_queries,
            nlist=args.nlist,
            train=args.train,
            seed=args.seed,
            folder=args.dir,
        )
    text = json.dumps(res, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
