"""``charwatch videos``: list stored videos as a table, CSV or JSON lines."""

from __future__ import annotations

import argparse

from charwatch.config import PLATFORMS, Config
from charwatch.printing import emit, parse_time
from storage.video_fields import COLUMNS

NAME = "videos"
HELP = "list stored videos"
DESCRIPTION = HELP

TABLE_COLUMNS = ["platform", "platform_id", "author", "caption", "state", "error"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--platform", choices=PLATFORMS)
    parser.add_argument("--since", type=parse_time, help="last seen at or after (ISO)")
    parser.add_argument("--state", help="only videos in this processing state")
    parser.add_argument("--format", choices=["table", "csv", "jsonl"], default="table")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from charwatch.jobs import open_store
    from storage import Video

    store = open_store(cfg)
    with store.session() as s:
        q = select(Video).order_by(Video.id)
        if args.platform:
            q = q.where(Video.platform == args.platform)
        if args.since:
            q = q.where(Video.last_seen >= args.since)
        if args.state:
            q = q.where(Video.state == args.state)
        videos = list(s.scalars(q))
    rows = [{c: getattr(v, c) for c in COLUMNS} for v in videos]
    emit(rows, args.format, TABLE_COLUMNS)
    return 0
