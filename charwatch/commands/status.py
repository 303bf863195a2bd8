"""``charwatch status``: per platform paused or not, its queue and last crawl; then videos per
state, live workers and, in cluster mode, the task engine's jobs. Exit status 4 while a
platform is paused."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from charwatch.config import PLATFORMS, Config
from charwatch.errors import EXIT_PLATFORM_PAUSED
from charwatch.printing import emit, json_default, print_table

NAME = "status"
HELP = "per platform: paused or not, queued/done/failed videos, the last crawl"
DESCRIPTION = (
    "Show each platform's state: whether it is paused after a platform-wide block (a 429, "
    "a bot check, a login wall, a missing JS runtime) and until when, its videos by state, "
    "and its last crawl; then videos per state and the live workers, and in cluster mode "
    "the jobs queued, running and failed per queue. --format json prints all of it as one "
    "JSON document. Exit status 4 when a platform is paused."
)
TABLE_COLUMNS = ["platform", "status", "paused_until", "queued", "done", "failed", "last_crawl"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["table", "jsonl", "json"], default="table")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from sqlalchemy import func, select

    from charwatch.jobs import open_store
    from storage import CrawlRun, PlatformState, Video, utcnow

    store = open_store(cfg)
    now = utcnow()
    with store.session() as s:
        counts = s.execute(
            select(Video.platform, Video.state, func.count()).group_by(Video.platform, Video.state)
        ).all()
        states = {r.platform: r for r in s.scalars(select(PlatformState))}
        last = {}
        for crawl_run in s.scalars(select(CrawlRun).order_by(CrawlRun.id.desc()).limit(500)):
            last.setdefault(crawl_run.platform, crawl_run)
    queue: dict[str, dict[str, int]] = {}
    for platform, state, n in counts:
        queue.setdefault(platform, {})[state] = n
    rows = []
    for name in PLATFORMS:
        st = states.get(name)
        paused = st is not None and st.paused_until is not None and st.paused_until > now
        q = queue.get(name, {})
        crawl_run = last.get(name)
        rows.append(
            {
                "platform": name,
                "status": "PAUSED" if paused else "ok",
                "paused_until": st.paused_until if paused and st else None,
                "reason": st.pause_reason if paused and st else "",
                "queued": sum(q.get(k, 0) for k in ("discovered", "downloaded", "frames")),
                "done": sum(q.get(k, 0) for k in ("embedded", "matched")),
                "failed": q.get("failed", 0),
                "errors_in_a_row": st.consecutive_errors if st else 0,
                "last_crawl": (
                    f"{crawl_run.status} {crawl_run.kind} {crawl_run.target}" if crawl_run else ""
                ),
                "last_crawl_at": crawl_run.started_at if crawl_run else None,
            }
        )
    videos: dict[str, int] = {}
    for _platform, state, n in counts:
        videos[state] = videos.get(state, 0) + n
    paused_rows = [
        {"platform": r["platform"], "until": r["paused_until"], "reason": r["reason"]}
        for r in rows
        if r["status"] == "PAUSED"
    ]
    code = EXIT_PLATFORM_PAUSED if paused_rows else 0
    extra = _status_extra(cfg, store)
    if args.format == "json":
        doc = {"platforms": rows, "videos": videos, "paused": paused_rows, **extra}
        print(json.dumps(doc, ensure_ascii=False, indent=2, default=json_default))
        return code
    emit(rows, args.format, TABLE_COLUMNS)
    if args.format == "table":
        for r in rows:
            if r["status"] == "PAUSED":
                print(f"{r['platform']}: {r['reason']}")
        _print_status_extra(videos, extra)
    return code


def _status_extra(cfg: Config, store: Any) -> dict[str, Any]:
    """Live workers, and in cluster mode the task engine's jobs per queue and its workers."""
    from charwatch import cluster

    out: dict[str, Any] = {"cluster": cluster.is_cluster(cfg)}
    try:
        workers = cluster.video_workers(store)
    except Exception as exc:  # status must still show the rest
        logging.getLogger(__name__).warning("cannot list workers: %s", exc)
        workers = None
    if out["cluster"]:
        jobs = cluster.cluster_status(store)
        out["jobs"] = jobs["jobs"]
        out["job_workers"] = jobs["workers"]
        if "note" in jobs:
            out["note"] = jobs["note"]
    out["workers"] = workers if workers is not None else out.get("job_workers", [])
    return out


def _print_status_extra(videos: dict[str, int], extra: dict[str, Any]) -> None:
    from storage import VideoState

    states = [*VideoState.ALL, *sorted(set(videos) - set(VideoState.ALL))]
    print("videos: " + ", ".join(f"{s} {videos.get(s, 0)}" for s in states))
    workers = extra.get("workers") or []
    print(f"workers: {len(workers)} live")
    for w in workers:
        who = w.get("owner") or f"job worker {w.get('id')}"
        role = f" {w['role']}" if w.get("role") else ""
        age = w.get("age_s", w.get("heartbeat_age_s"))
        print(f"  {who}{role} (heartbeat {age} s ago)")
    if not extra.get("cluster"):
        return
    if extra.get("note"):
        print(f"jobs: {extra['note']}")
        return
    jobs = extra.get("jobs") or {}
    print("jobs:")
    print_table(
        [{"queue": q, **counts} for q, counts in jobs.items()],
        ["queue", "queued", "scheduled", "running", "failed", "done"],
    )
    job_workers = extra.get("job_workers") or []
    print(f"job workers: {len(job_workers)} live")
    for w in job_workers:
        running = ", ".join(w["running"]) or "idle"
        print(f"  #{w['id']}: {running} (heartbeat {w['heartbeat_age_s']} s ago)")
