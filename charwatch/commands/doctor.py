"""``charwatch doctor``: check the set-up locally (no platform is contacted)."""

from __future__ import annotations

import argparse

from charwatch.config import PLATFORMS, Config
from charwatch.errors import EXIT_FAILED

NAME = "doctor"
HELP = "check the set-up: JS runtime, impersonation, cookies, proxies, browser, ffmpeg, database"
DESCRIPTION = (
    "Check locally (no platform is contacted) what downloads and crawls need. Exit status 1 "
    "when a check fails; warnings still exit 0."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--platform", action="append", choices=PLATFORMS, help="only this platform")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.doctor import run_doctor

    return 0 if run_doctor(cfg, platforms=args.platform, as_json=args.json) else EXIT_FAILED
