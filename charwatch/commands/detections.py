"""``charwatch detections``: list detections (flags) with their review state."""

from __future__ import annotations

import argparse

from charwatch.config import Config
from charwatch.printing import emit

NAME = "detections"
HELP = "list detections (flags) with their review state"
DESCRIPTION = "List detections newest first: character, video, match type, score and review state."
TABLE_COLUMNS = [
    "id",
    "character",
    "platform",
    "author",
    "match_type",
    "score",
    "review_state",
    "detected_at",
    "url",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from index.review import STATES

    parser.add_argument("--state", choices=STATES, help="only detections in this review state")
    parser.add_argument("--character", help="only this character (exact name)")
    parser.add_argument("--limit", type=int, help="at most N rows")
    parser.add_argument("--format", choices=["table", "jsonl"], default="table")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store
    from index.review import list_detections

    rows = list_detections(
        open_store(cfg), state=args.state, character=args.character, limit=args.limit
    )
    emit(rows, args.format, TABLE_COLUMNS)
    return 0
