"""``charwatch demo``: the whole chain on the fixture platform, checked against its truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from charwatch.config import Config
from charwatch.errors import EXIT_FAILED

NAME = "demo"
HELP = "run the whole chain on the fixture platform and print the report path"
DESCRIPTION = (
    "Start the fixture platform, register the demo characters, crawl, process, match and "
    "report, then compare the flags with what the fixture videos really show."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", help="where the demo keeps its data (default: <data_dir>/demo)"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 if a flag is wrong or missing"
    )
    parser.add_argument("-q", "--quiet", action="store_true")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.demo import run_demo

    outcome = run_demo(
        cfg, data_dir=Path(args.data_dir) if args.data_dir else None, progress=not args.quiet
    )
    return 0 if outcome.ok or not args.strict else EXIT_FAILED
