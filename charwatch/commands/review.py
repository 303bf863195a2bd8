"""``charwatch review``: record a review verdict on a detection."""

from __future__ import annotations

import argparse

from charwatch.config import Config

NAME = "review"
HELP = "record a review verdict on a detection"
DESCRIPTION = (
    "Move a detection through the review states: new -> needs_review -> confirmed or "
    "rejected -> notice_sent -> removed. Moves the states do not allow are refused. "
    "Calibration uses the confirmed and rejected verdicts."
)
VERDICTS = (
    ("--needs-review", "needs_review", "route it to a person"),
    ("--confirm", "confirmed", "it is an unlicensed use"),
    ("--reject", "rejected", "it is a false alarm"),
    ("--notice-sent", "notice_sent", "a takedown notice was sent"),
    ("--removed", "removed", "the platform took the video down"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "detection_id", type=int, help="the detection id (see `charwatch detections`)"
    )
    g = parser.add_mutually_exclusive_group(required=True)
    for flag, state, text in VERDICTS:
        g.add_argument(flag, dest="state", action="store_const", const=state, help=text)
    parser.add_argument("--note", help="a note kept with the verdict")
    parser.add_argument("--by", help="who gives the verdict (default: the login name)")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store
    from index.review import set_review_state

    change = set_review_state(
        open_store(cfg), args.detection_id, args.state, note=args.note, reviewer=_reviewer(args)
    )
    line = f"detection {change.detection_id}: {change.old_state} -> {change.new_state}"
    if change.note:
        line += f" (note: {change.note})"
    print(line)
    return 0


def _reviewer(args: argparse.Namespace) -> str | None:
    """``--by``, else the login name of this process (None when there is none)."""
    if args.by and args.by.strip():
        return args.by.strip()
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (some containers)
        return None
