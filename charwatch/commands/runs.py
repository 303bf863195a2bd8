"""``charwatch runs``: crawl runs (one per listing crawled) or job runs, then paused platforms."""

from __future__ import annotations

import argparse
from typing import Any

from charwatch.config import Config
from charwatch.printing import emit

NAME = "runs"
HELP = "list crawl runs (one row per listing crawled) or job runs"
DESCRIPTION = (
    "List crawl runs, one record per listing crawled with its status (ok, blocked, "
    "login_required, not_found, layout_changed, error, paused), or with --jobs the nightly, "
    "rescan and re-check runs with their counts and report paths. Paused platforms are "
    "listed after the table."
)

CRAWL_COLUMNS = [
    "id",
    "batch",
    "platform",
    "kind",
    "target",
    "status",
    "items_seen",
    "items_new",
    "pages",
    "message",
    "debug_path",
    "started_at",
    "finished_at",
]
CRAWL_TABLE = [
    "id",
    "platform",
    "kind",
    "target",
    "status",
    "items_seen",
    "items_new",
    "started_at",
]
JOB_COLUMNS = [
    "id",
    "kind",
    "target",
    "status",
    "crawl_batch",
    "listings",
    "listings_failed",
    "videos_new",
    "processed",
    "failed",
    "flags",
    "report_path",
    "message",
    "started_at",
    "finished_at",
]
JOB_TABLE = ["id", "kind", "status", "listings", "videos_new", "processed", "flags", "started_at"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", action="store_true", help="list job runs instead of crawl runs")
    parser.add_argument("--format", choices=["table", "jsonl"], default="table")
    parser.add_argument("--limit", type=int, default=50)


def run(cfg: Config, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from charwatch.jobs import open_store
    from storage import CrawlRun

    store = open_store(cfg)
    if args.jobs:
        return _print_job_runs(store, args)
    with store.session() as s:
        runs = list(s.scalars(select(CrawlRun).order_by(CrawlRun.id.desc()).limit(args.limit)))
    rows = [{c: getattr(r, c) for c in CRAWL_COLUMNS} for r in runs]
    emit(rows, args.format, CRAWL_TABLE)
    if args.format == "table":
        _print_pauses(store)
    return 0


def _print_job_runs(store: Any, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from storage import JobRun

    with store.session() as s:
        jobs = list(s.scalars(select(JobRun).order_by(JobRun.id.desc()).limit(args.limit)))
    rows = [{c: getattr(j, c) for c in JOB_COLUMNS} for j in jobs]
    emit(rows, args.format, JOB_TABLE)
    return 0


def _print_pauses(store: Any) -> int:
    """Print the platforms cooling down after a block; returns how many."""
    from storage import platform_state

    pauses = platform_state.active_pauses(store)
    for pause in pauses:
        print(f"PAUSED: {pause.describe()}")
    return len(pauses)
