"""``charwatch run-nightly``: the nightly job once (queued for the workers in cluster mode)."""

from __future__ import annotations

import argparse
import sys

from charwatch.commands.common import STRICT_HELP, run_exit, stop_on_signals
from charwatch.config import Config
from charwatch.printing import print_run

NAME = "run-nightly"
HELP = "run the nightly job once (for cron/systemd timers)"
DESCRIPTION = (
    "Crawl the watchlist, process and report since the last report. In cluster mode "
    "(PostgreSQL storage) queue the nightly job of the current period for the workers "
    "instead (once per period, whoever asks)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strict", action="store_true", help=STRICT_HELP)
    parser.add_argument("-q", "--quiet", action="store_true")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch import cluster
    from charwatch.jobs import open_store, run_nightly

    store = open_store(cfg)
    if cluster.is_cluster(cfg):  # queue this period's nightly job for the workers, once
        job_id = cluster.defer_nightly(cfg)
        print(
            f"nightly: job {job_id} queued for the workers"
            if job_id
            else "nightly: already queued for this period (it runs once per period)"
        )
        return 0
    if not cfg.watch:
        print("no [[watch]] entries in the config: processing and reporting only", file=sys.stderr)
    result = run_nightly(cfg, store, progress=not args.quiet, stop=stop_on_signals())
    return run_exit(result, print_run(result), args.strict)
