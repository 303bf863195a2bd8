"""``charwatch report``: write the CSV and HTML report of a period."""

from __future__ import annotations

import argparse
from pathlib import Path

from charwatch.config import PLATFORMS, Config
from charwatch.printing import parse_time, print_report

NAME = "report"
HELP = "write the CSV and HTML report"
DESCRIPTION = HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=parse_time, help="flags detected at or after (ISO)")
    parser.add_argument("--until", type=parse_time, help="flags detected before (ISO)")
    parser.add_argument("--character", help="only this character")
    parser.add_argument("--platform", choices=PLATFORMS)
    parser.add_argument("--out", help="output folder (default: <data_dir>/reports)")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store, report

    store = open_store(cfg)
    result = report(
        cfg,
        store,
        since=args.since,
        until=args.until,
        character=args.character,
        platform=args.platform,
        out_dir=Path(args.out) if args.out else None,
    )
    print_report(result)
    return 0
