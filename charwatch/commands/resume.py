"""``charwatch resume``: lift a platform's pause now."""

from __future__ import annotations

import argparse

from charwatch.config import PLATFORMS, Config

NAME = "resume"
HELP = "lift a platform's pause now (after fixing cookies, proxy or set-up)"
DESCRIPTION = "End a platform's cool-down early; its queued videos are processed by the next run."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("platform", choices=PLATFORMS)


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store
    from storage import platform_state

    store = open_store(cfg)
    if platform_state.resume(store, args.platform):
        print(f"{args.platform}: pause lifted; its queued videos are processed by the next run")
    else:
        print(f"{args.platform} was not paused")
    return 0
