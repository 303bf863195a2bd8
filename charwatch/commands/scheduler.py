"""``charwatch scheduler``: the scheduler daemon (nightly crawls, re-checks)."""

from __future__ import annotations

import argparse

from charwatch.config import Config

NAME = "scheduler"
HELP = "run the scheduler daemon (nightly crawls, re-checks)"
DESCRIPTION = HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="run due jobs once and exit")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from scheduler import run_scheduler

    return run_scheduler(cfg, once=args.once)
