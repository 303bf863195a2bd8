"""``charwatch reembed``: queue videos again after an embedding-model change."""

from __future__ import annotations

import argparse

from charwatch.config import Config

NAME = "reembed"
HELP = "queue every video for re-embedding after an embedding-model change"
DESCRIPTION = (
    "Send videos whose frames have no vector of the configured embedder back to the work "
    "queue (to re-embed their stored frames, or to re-sample or re-download them when the "
    "files are gone) and delete the vectors of other models, so models never mix. "
    "Then run `charwatch process`."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="only count what would change")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store, reembed

    stats = reembed(cfg, open_store(cfg), dry_run=args.dry_run)
    print(stats.summary())
    for model, n in sorted(stats.other_models.items()):
        print(f"  {model}: {n} vector(s)")
    if stats.videos and not args.dry_run:
        print("run `charwatch process` to embed and match them again")
    return 0
