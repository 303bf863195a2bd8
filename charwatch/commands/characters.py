"""``charwatch characters``: the character registry (add, add-images, import, list, show,
remove), with the retroactive scan after new reference images."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from charwatch.config import Config
from charwatch.errors import UsageError
from charwatch.printing import print_table

NAME = "characters"
HELP = "manage the character registry"
DESCRIPTION = "Register characters with reference images, aliases and text prompts."

_NAME_HELP = "a registered character's name (case and width insensitive)"
_NO_RETRO_HELP = "skip the retroactive scan of already processed videos"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = sub.add_parser("add", help="register a character", description="Register a character.")
    a.add_argument("name", help="the character's display name")
    a.add_argument("--franchise", help="franchise or series name")
    a.add_argument("--rights-holder", help="who owns the rights")
    a.add_argument("--alias", action="append", help="another name (repeatable; any language)")
    a.add_argument("--image", action="append", help="reference image file (repeatable)")
    a.add_argument("--prompt", action="append", help="text prompt for CLIP models (repeatable)")
    a.add_argument("--no-retro", action="store_true", help=_NO_RETRO_HELP)
    a = sub.add_parser("add-images", help="add reference images to a character")
    a.add_argument("name", help=_NAME_HELP)
    a.add_argument("images", nargs="+", help="image files (png, jpg, webp)")
    a.add_argument("--negative", action="store_true", help="look-alikes that must NOT match")
    a.add_argument("--no-retro", action="store_true", help=_NO_RETRO_HELP)
    a = sub.add_parser(
        "import",
        help="import refs/<franchise>/<character>/*.png (+ optional character.toml)",
        description="Register every <franchise>/<character>/ folder below ROOT with its images; "
        "look-alikes that must not match go in <character>/negative/. An optional "
        "character.toml beside the images may set name, franchise, aliases, prompts and "
        "rights_holder. Importing the same tree again adds nothing.",
    )
    a.add_argument("root", help="the folder holding <franchise>/<character>/ folders")
    a = sub.add_parser("list", help="list registered characters")
    a.add_argument("--format", choices=["table", "json"], default="table")
    a = sub.add_parser("show", help="show one character")
    a.add_argument("name", help=_NAME_HELP)
    a = sub.add_parser("remove", help="remove a character and its references")
    a.add_argument("name", help=_NAME_HELP)


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store
    from index import registry

    store = open_store(cfg)
    if args.action == "add":
        before = _reference_ids(registry.get_character(store, args.name))
        ch = registry.add_character(
            cfg,
            store,
            args.name,
            franchise=args.franchise,
            aliases=args.alias or (),
            images=[Path(p) for p in args.image or ()],
            prompts=args.prompt or (),
            rights_holder=args.rights_holder,
        )
        print(f"registered {ch.name!r} ({len(ch.references)} reference image(s))")
        if not args.no_retro:
            _retro_after_registering(cfg, store, ch, before, prompts=args.prompt or ())
    elif args.action == "add-images":
        before = _reference_ids(registry.get_character(store, args.name))
        ch = registry.add_images(
            cfg, store, args.name, [Path(p) for p in args.images], negative=args.negative
        )
        print(f"{ch.name!r} now has {len(ch.references)} reference image(s)")
        if not args.no_retro:
            _retro_after_registering(cfg, store, ch, before)
    elif args.action == "import":
        added = registry.import_tree(cfg, store, Path(args.root))
        print(f"imported {len(added)} character(s) from {args.root}")
    elif args.action == "remove":
        if not registry.remove_character(cfg, store, args.name):
            raise UsageError(f"no character named {args.name!r}")
        print(f"removed {args.name!r}")
    elif args.action == "show":
        ch = registry.get_character(store, args.name)
        if ch is None:
            raise UsageError(f"no character named {args.name!r}")
        print(json.dumps(_character_dict(ch, full=True), ensure_ascii=False, indent=2))
    else:  # list
        rows = registry.list_characters(store)
        if args.format == "json":
            print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        else:
            print_table(rows, ["name", "franchise", "aliases", "references"])
    return 0


def _reference_ids(ch: Any) -> set[int]:
    return {r.id for r in ch.references} if ch is not None else set()


def _retro_after_registering(
    cfg: Config, store: Any, ch: Any, before: set[int], prompts: Sequence[str] = ()
) -> None:
    """The retroactive scan for a character's new references (and prompts), when any past
    video has stored frame vectors to search."""
    from charwatch.jobs import retro_scan
    from index.retro import has_archived_frames

    new_refs = sorted(_reference_ids(ch) - before)
    if not new_refs and not prompts:
        return
    if not has_archived_frames(store):
        print("retroactive scan: no processed videos yet, nothing to search")
        return
    result = retro_scan(cfg, store, [ch.id], reference_ids=new_refs, prompts=tuple(prompts))
    print(f"retroactive scan: {result.summary()}")
    for d in result.created:
        print(
            f"  flagged: detection {d['detection_id']} {d['url']} "
            f"({d['match_type']}, score {d['score']:.2f})"
        )
    for d in result.removed:
        print(f"  no longer flagged: {d['url']} ({d['character']})")


def _character_dict(ch: Any, full: bool = False) -> dict[str, Any]:
    out = {
        "name": ch.name,
        "franchise": ch.franchise,
        "rights_holder": ch.rights_holder,
        "aliases": ch.aliases,
        "prompts": ch.prompts,
        "references": len(ch.references),
    }
    if full:
        out["reference_images"] = [
            {"path": r.path, "sha256": r.sha256, "negative": r.negative} for r in ch.references
        ]
    return out
