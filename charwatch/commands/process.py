"""``charwatch process``: download, fingerprint and match pending videos."""

from __future__ import annotations

import argparse

from charwatch.commands.common import stop_on_signals
from charwatch.config import Config
from charwatch.errors import EXIT_PLATFORM_PAUSED
from charwatch.printing import print_process

NAME = "process"
HELP = "download, fingerprint and match pending videos"
DESCRIPTION = (
    "Download pending videos (yt-dlp), sample frames (ffmpeg), hash (PDQ) and embed them, "
    "and match each one against the registry as soon as it is embedded. Safe to stop and "
    "rerun: work resumes where it stopped."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, help="process at most N videos")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store, process

    store = open_store(cfg)
    stop = stop_on_signals()
    result = process(cfg, store, limit=args.limit, progress=not args.quiet, stop=stop)
    print_process(result)
    return EXIT_PLATFORM_PAUSED if getattr(result.process, "paused", None) else 0
