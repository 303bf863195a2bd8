"""``charwatch allow``: the allow-list of licensed accounts (add, list, remove)."""

from __future__ import annotations

import argparse

from charwatch.config import PLATFORMS, Config
from charwatch.printing import emit

NAME = "allow"
HELP = "manage the allow-list of licensed accounts"
DESCRIPTION = (
    "Licensed accounts (the rights holder's own channels, partners) are never flagged, "
    "for every character or for one."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = sub.add_parser("add", help="allow an account", description="Allow an account.")
    a.add_argument("--platform", required=True, choices=PLATFORMS, help="the platform")
    a.add_argument("--author", required=True, help="account handle (leading @ optional)")
    a.add_argument("--character", help="only for this character (default: every character)")
    a.add_argument("--note", help="why (licence, partner name)")
    a = sub.add_parser("list", help="list allowed accounts")
    a.add_argument("--format", choices=["table", "jsonl"], default="table")
    a = sub.add_parser("remove", help="remove an entry by id (see `allow list`)")
    a.add_argument("entry_id", type=int)


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store
    from index import allowlist

    store = open_store(cfg)
    if args.action == "add":
        row = allowlist.add_allowed(
            store, args.platform, args.author, character=args.character, note=args.note
        )
        print(f"allowed {row['platform']} @{row['author']} for {row['scope']} (entry {row['id']})")
    elif args.action == "remove":
        row = allowlist.remove_allowed(store, args.entry_id)
        print(f"removed entry {row['id']}: {row['platform']} @{row['author']} ({row['scope']})")
    else:
        rows = allowlist.list_allowed(store)
        emit(rows, args.format, ["id", "platform", "author", "scope", "note", "created_at"])
    return 0
