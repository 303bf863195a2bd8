"""The cluster section of ``make bench``: queue claims, archive shards, worker processes.

* claims: the per-row claim against the batched ``FOR UPDATE SKIP LOCKED`` one on a real
  PostgreSQL at 1/8/32 clients, on 1M queued videos half leased (quick: 20k);
* archive shards: shard build, training, encoding, merge into on-disk lists, search latency
  and recall@10 against exact search (full: 500k x 512; quick: 20k x 64);
* workers: videos/min end to end for 1, 2 and 4 ``charwatch worker`` processes on the same
  PostgreSQL and fixture platform (not in quick mode), and recovery after a
  ``kill -9`` of a worker mid-batch (how much work was redone, seconds until everything
  finished, duplicates).

Each part is skipped with a reason when what it needs (PostgreSQL) is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_cluster(work: Path, *, quick: bool) -> dict[str, Any]:
    """Every cluster measurement; a part that cannot run says why under ``skipped``."""
    from storage import pgserver

    out: dict[str, Any] = {"skipped": {}}
    if pgserver.available():
        from bench import claims

        rows = 10_000 if quick else 1_000_000
        out["claims"] = {
            "rows": rows,
            "results": claims.run(rows, (1, 8, 32), 1.0 if quick else 4.0),
        }
    else:
        out["skipped"]["claims"] = "PostgreSQL not installed"
    from bench import archive_shards

    n, dim = (20_000, 64) if quick else (500_000, 512)
    with archive_shards._stdout_to_stderr():  # FAISS prints merge progress
        out["shards"] = archive_shards.run(n, dim, shards=4, queries=100, gt_queries=50)
    if quick:  # worker processes take minutes; tests/test_cluster_workers.py covers them
        out["skipped"]["workers"] = "quick mode (run the full mode)"
    elif pgserver.available():
        try:
            from bench.workers import run_workers

            out["workers"] = run_workers(work / "workers", quick=quick)
        except ImportError as exc:
            out["skipped"]["workers"] = f"not available: {exc}"
    else:
        out["skipped"]["workers"] = "PostgreSQL not installed"
    return out


def _mb(v: Any) -> str:
    return f"{v:,.0f} MB" if isinstance(v, int | float) else "n/a"


def cluster_md(c: dict[str, Any]) -> list[str]:
    """The markdown of the cluster section."""
    lines = ["### Cluster mode", ""]
    if "claims" in c:
        from bench.claims import table

        lines += [
            f"Queue claims on PostgreSQL, {c['claims']['rows']:,} queued videos with the oldest "
            "half leased; batches of 8; the old claim is one conditional UPDATE per row:",
            "",
            table(c["claims"]["results"]),
            "",
        ]
    if "shards" in c:
        s = c["shards"]
        se = s.get("search", {})
        lines += [
            f"Archive shards: {s['vectors']:,} vectors x {s['dim']} in 4 shards; IVF-PQ "
            f"trained once on {s.get('trained_on', '?'):,} vectors:",
            "",
            "| shard write | train | encode | merge | search p50/p99 (re-ranked) | "
            "recall@10 PQ / re-ranked / per-shard | peak RSS build |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            f"| {s.get('write_s')} s | {s.get('train_s')} s | {s.get('encode_s')} s | "
            f"{s.get('merge_s')} s | {se.get('merged_refined_ms_p50')} / "
            f"{se.get('merged_refined_ms_p99')} ms | {se.get('recall_at_10_merged_pq')} / "
            f"{se.get('recall_at_10_merged_refined')} / {se.get('recall_at_10_per_shard_scan')} | "
            f"{_mb(s.get('peak_rss_build_mb'))} |",
            "",
        ]
    if "workers" in c:
        w = c["workers"]
        lines += [
            f"Worker processes (`charwatch worker`) on one PostgreSQL, {w.get('videos')} fixture "
            "videos each run:",
            "",
            "| workers | videos/min end to end | wall s |",
            "|---:|---:|---:|",
        ]
        for r in w.get("scaling", []):
            lines.append(f"| {r['workers']} | {r['videos_per_min']} | {r['wall_s']} |")
        rec = w.get("recovery")
        if rec:
            lines += [
                "",
                f"Recovery: `kill -9` of one of {rec['workers']} workers after "
                f"{rec['killed_after_s']} s; all {rec['videos']} videos done "
                f"{rec['seconds_to_finish_after_kill']} s later; the killed worker's "
                f"{rec['videos_redone']} leased video(s) started again; duplicate embeddings "
                f"{rec['duplicate_embeddings']}, duplicate detections "
                f"{rec['duplicate_detections']}.",
            ]
        lines.append("")
    for part, why in c.get("skipped", {}).items():
        lines.append(f"- {part}: skipped ({why})")
    return lines
