"""``charwatch rescan``: crawl a hashtag now, process and report (queued for the workers in
cluster mode)."""

from __future__ import annotations

import argparse

from charwatch.commands.common import STRICT_HELP, run_exit, stop_on_signals
from charwatch.config import PLATFORMS, Config
from charwatch.printing import print_run

NAME = "rescan"
HELP = "crawl a hashtag now, process and report (on-demand)"
DESCRIPTION = (
    "Crawl a hashtag on one or all platforms, process the new videos and write a report. "
    "In cluster mode (PostgreSQL storage) the crawls and the report are queued for the "
    "workers instead."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hashtag", required=True)
    parser.add_argument("--platform", choices=PLATFORMS, help="default: all platforms")
    parser.add_argument("--max-items", type=int)
    parser.add_argument("--strict", action="store_true", help=STRICT_HELP)
    parser.add_argument("-q", "--quiet", action="store_true")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch import cluster
    from charwatch.jobs import open_store, rescan

    store = open_store(cfg)
    platforms = [args.platform] if args.platform else None
    if cluster.is_cluster(cfg):  # the workers crawl, process and report
        queued = cluster.defer_rescan(
            cfg, args.hashtag, platforms=platforms, max_items=args.max_items
        )
        for key, job_id in queued["crawl_jobs"].items():
            print(f"crawl {key}: " + (f"job {job_id} queued" if job_id else "already queued"))
        print(f"report: job {queued['report_job']} queued (written once the workers are done)")
        return 0
    result = rescan(
        cfg,
        store,
        args.hashtag,
        platforms=platforms,
        max_items=args.max_items,
        progress=not args.quiet,
        stop=stop_on_signals(),
    )
    return run_exit(result, print_run(result), args.strict)
