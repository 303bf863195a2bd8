"""The ``charwatch`` command line: parse arguments, run a command, turn errors into statuses.

Each command lives in its own module under :mod:`charwatch.commands`. Exit status 0 on
success; on failure a one-line reason on stderr and a non-zero status (1 for a failed job, 2 for
bad usage or config, 3 when a crawl listing ended blocked or broken, 4 when a platform is paused
after a platform-wide block and its videos wait for the cool-down).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from charwatch import __version__
from charwatch.commands import COMMANDS
from charwatch.config import load_config
from charwatch.errors import (
    EXIT_CRAWL_PROBLEM,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PLATFORM_PAUSED,
    EXIT_USAGE,
    UsageError,
)

__all__ = [
    "EXIT_CRAWL_PROBLEM",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PLATFORM_PAUSED",
    "EXIT_USAGE",
    "build_parser",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command of :data:`COMMANDS`."""
    p = argparse.ArgumentParser(
        prog="charwatch",
        description=(
            "Watch TikTok, YouTube Shorts and Instagram Reels for unlicensed uses of registered "
            "characters: crawl listings, download and fingerprint new videos, match them against "
            "the character registry and write CSV/HTML reports."
        ),
        epilog=(
            "Configuration: --config PATH or $CHARWATCH_CONFIG (TOML); every key can be overridden "
            "with CHARWATCH_<SECTION>__<KEY>, e.g. CHARWATCH_STORAGE__DATA_DIR=/srv/charwatch. "
            "Start with `charwatch demo` to see the whole chain on the built-in fixture platform."
        ),
    )
    p.add_argument("--config", help="TOML config file (default: $CHARWATCH_CONFIG, else defaults)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more and show tracebacks")
    p.add_argument("--version", action="version", version=f"charwatch {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sp = sub.add_parser(command.NAME, help=command.HELP, description=command.DESCRIPTION)
        command.add_arguments(sp)
        sp.set_defaults(func=command.run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``charwatch`` with ``argv`` (default: the process's arguments); returns the status."""
    parser = build_parser()
    args = parser.parse_args(argv)  # bad usage: argparse prints it and exits with 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        os.environ.setdefault("TQDM_MININTERVAL", "0.5")
    try:
        cfg = load_config(args.config)
        return int(args.func(cfg, args) or EXIT_OK)
    except UsageError as exc:
        print(f"charwatch: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("charwatch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # one line for users; the traceback with -v
        if args.verbose:
            raise
        print(f"charwatch: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
