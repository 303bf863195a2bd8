"""``charwatch worker``: one cluster worker (PostgreSQL storage) until SIGTERM."""

from __future__ import annotations

import argparse
import logging

from charwatch.config import Config

NAME = "worker"
HELP = "run one cluster worker (PostgreSQL storage) until SIGTERM"
DESCRIPTION = (
    "Run one worker of the task engine on the configured PostgreSQL database: crawl, "
    "process, match, report and archive jobs, and every minute the housekeeping tick "
    "(requeue dead workers' jobs, queue waiting work, the nightly and re-check jobs when "
    "due). Start one or more per machine. SIGTERM/SIGINT stop it gracefully within a "
    "minute: a running process job releases its videos, other jobs finish or are queued "
    "again."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from charwatch.cluster import DEFAULT_BATCH, QUEUES

    parser.add_argument(
        "--concurrency", type=int, default=1, help="jobs run at once (threads; default 1)"
    )
    parser.add_argument(
        "--queues",
        metavar="Q[,Q...]",
        help=f"only these queues (of {','.join(QUEUES)}; default: all)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        help=f"videos per process job (default {DEFAULT_BATCH})",
    )
    parser.add_argument("--name", help="worker name in logs (default: host:pid)")
    parser.add_argument(
        "--burst", action="store_true", help="exit when no job is left instead of waiting"
    )


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.cluster import run_worker

    queues = [q.strip() for q in (args.queues or "").split(",") if q.strip()] or None
    for name in ("procrastinate", "charwatch"):
        logging.getLogger(name).setLevel(logging.INFO)
    return run_worker(
        cfg,
        queues=queues,
        concurrency=args.concurrency,
        batch=args.batch,
        wait=not args.burst,
        name=args.name,
    )
