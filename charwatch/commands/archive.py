"""``charwatch archive``: status, update or rebuild of the archive index of frame vectors."""

from __future__ import annotations

import argparse
import json
from typing import Any

from charwatch.config import Config

NAME = "archive"
HELP = "status, update or rebuild of the archive index of all frame vectors"
DESCRIPTION = (
    "The archive index holds every stored frame vector of the configured embedder; the "
    "retroactive scan searches it when a character is registered. Exact (flat) below "
    "50,000 vectors, IVF above; updated incrementally."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = sub.add_parser("status", help="what the archive holds, and what needs re-embedding")
    a.add_argument("--format", choices=["text", "json"], default="text")
    a = sub.add_parser("update", help="add the vectors stored since the last update")
    a.add_argument(
        "--prune-db-vectors",
        action="store_true",
        help="then empty the database copies of vectors the archive shards hold",
    )
    a = sub.add_parser("rebuild", help="build the archive again from the store")
    a.add_argument(
        "--kind",
        choices=["auto", "flat", "ivf", "hnsw"],
        help="index kind (default: keep the saved choice, else auto)",
    )


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import current_embedder, open_store, update_archive
    from index.archive import archive_status, saved_archives

    store = open_store(cfg)
    if args.action == "rebuild":
        arc = update_archive(cfg, store, rebuild=True, kind=args.kind)
        d = arc.describe()
        print(
            f"archive rebuilt for {d['embedder_id']}: {d['ntotal']} vector(s), "
            f"{d['kind']} {json.dumps(d['params']) if d['params'] else ''}".rstrip()
        )
        return 0
    if args.action == "update":
        arc = update_archive(cfg, store, prune_db_vectors=args.prune_db_vectors)
        print(f"archive of {arc.embedder_id}: {arc.ntotal} vector(s) ({arc.kind})")
        if args.prune_db_vectors:
            print(f"database copies emptied: {getattr(arc, 'pruned', 0)} (kept in the shards)")
        return 0
    embedder = current_embedder(cfg)
    status = archive_status(cfg, store, embedder.id)
    status["saved"] = [
        {k: a.get(k) for k in ("embedder_id", "kind", "ntotal", "updated_at", "error") if k in a}
        for a in saved_archives(cfg)
    ]
    if args.format == "json":
        print(json.dumps(status, ensure_ascii=False, indent=2, default=str))
        return 0
    _print_status(status)
    return 0


def _print_status(status: dict[str, Any]) -> None:
    arc = status["archive"]
    print(f"embedder:           {status['embedder_id']}")
    if arc:
        print(
            f"archive index:      {arc.get('kind')} with {arc.get('ntotal')} vector(s)"
            f" (updated {arc.get('updated_at')})"
        )
    else:
        print("archive index:      none yet (built on the next retroactive scan or update)")
    if "shards" in status:
        print(f"archive shards:     {status['shards']}")
    if status.get("pruned_db_vectors"):
        print(f"pruned from the db: {status['pruned_db_vectors']} vector(s), kept in the shards")
    print(
        f"stored vectors:     {status['store_vectors']} ({status['pending_vectors']} not indexed)"
    )
    print(
        f"to re-embed:        {status['frames_to_reembed']} frame(s) in "
        f"{status['videos_to_reembed']} video(s) have no vector of this embedder"
    )
    for model, n in sorted(status["other_models"].items()):
        print(f"other model:        {model}: {n} vector(s) (run `charwatch reembed`)")
