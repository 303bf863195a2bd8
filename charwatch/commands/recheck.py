"""``charwatch recheck``: are confirmed detections' videos still up?"""

from __future__ import annotations

import argparse

from charwatch.config import Config

NAME = "recheck"
HELP = "re-check that confirmed detections' videos are still up"
DESCRIPTION = (
    "Visit the URLs of detections reviewed as confirmed (or notice sent) and record whether "
    "each video is still up, removed, or could not be checked."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store, recheck

    stats = recheck(cfg, open_store(cfg))
    print(f"re-check: {stats.summary()}")
    for change in stats.changes:
        print(f"  {change}")
    return 0
