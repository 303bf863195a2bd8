"""``charwatch evidence``: export the evidence bundle of one detection."""

from __future__ import annotations

import argparse
from pathlib import Path

from charwatch.config import Config

NAME = "evidence"
HELP = "export the evidence bundle of one detection"
DESCRIPTION = (
    "Write what a takedown notice needs: the video file and its sha256, the raw listing JSON, "
    "the frame thumbnails, capture times and URLs."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "detection_id", type=int, help="the detection id (see `charwatch detections`)"
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--zip", action="store_true", help="write a .zip instead of a folder")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store
    from reports.evidence import export_evidence

    store = open_store(cfg)
    path = export_evidence(cfg, store, args.detection_id, Path(args.out), zip=args.zip)
    print(f"evidence: {path}")
    return 0
