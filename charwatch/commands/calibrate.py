"""``charwatch calibrate``: per-character thresholds for a target false-positive rate."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from charwatch.config import Config
from charwatch.printing import print_table

if TYPE_CHECKING:
    from storage.db import Store

NAME = "calibrate"
HELP = "set per-character thresholds to a target false-positive rate"
DESCRIPTION = (
    "Score augmented reference images (positives) and background, look-alike, rejected and "
    "unflagged frames (negatives) with the real signals, and store per character and "
    "signal the threshold that keeps false positives at the target rate, for the "
    "configured embedder."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--character", help="only this character (default: all)")
    parser.add_argument(
        "--target-fpr",
        type=float,
        default=0.001,
        help="target false-positive rate per frame (default: 0.001)",
    )
    parser.add_argument(
        "--augment",
        type=int,
        metavar="N",
        help="augmented frames per reference image (default: 4; more is slower and gives a "
        "finer recall estimate)",
    )
    parser.add_argument(
        "--show",
        action="store_true",
        help="list the stored thresholds and what the review verdicts say scores mean, and exit",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import calibrate, open_store

    store = open_store(cfg)
    if args.show:
        from index.calibrate import stored_thresholds

        rows = stored_thresholds(store)
        print_table(
            rows,
            ["character", "model_id", "signal", "threshold", "target_fpr", "recall", "fpr"],
        )
        print_precision(store)
        return 0
    results = calibrate(
        cfg,
        store,
        character=args.character,
        target_fpr=args.target_fpr,
        augment=args.augment,
        progress=not args.quiet,
    )
    print(f"calibrated {len(results)} threshold(s), target false-positive rate {args.target_fpr}:")
    print_table(
        [r.row() for r in results],
        ["character", "signal", "threshold", "default", "recall", "fpr", "positives", "negatives"],
    )
    for r in results:
        if r.note:
            print(f"  {r.character} {r.signal}: {r.note}")
    print_precision(store)
    return 0


def print_precision(store: Store) -> None:
    """What the review verdicts say each flag's score means (``index.precision``)."""
    from index.precision import models_on_record

    models = models_on_record(store)
    if not models:
        print("estimated precision: no review verdicts yet, so flags carry no estimate")
        return
    for model in models:
        print(f"estimated precision of {model.model_id} flags, from the review verdicts:")
        for line in model.summary().splitlines():
            print(f"  {line}")
