"""``charwatch crawl``: crawl one listing and store its new videos."""

from __future__ import annotations

import argparse
import sys

from charwatch.config import PLATFORMS, Config
from charwatch.errors import EXIT_CRAWL_PROBLEM, EXIT_FAILED
from charwatch.printing import print_runs

NAME = "crawl"
HELP = "crawl one listing (hashtag, user feed or search) and store its videos"
DESCRIPTION = (
    "Crawl one listing with the platform's spider and store new videos (deduplicated). "
    "Exit status 3 when the listing was blocked, needs login, was not found or changed layout."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--platform", required=True, choices=PLATFORMS)
    g = parser.add_mutually_exclusive_group(required=True)
    g.add_argument("--hashtag", default="", help="hashtag/tag name (with or without #)")
    g.add_argument("--user", default="", help="account handle (leading @ optional)")
    g.add_argument("--search", default="", help="search query")
    g.add_argument("--rss", default="", help="YouTube channel or playlist id (Atom feed)")
    parser.add_argument("--max-items", type=int, help="stop after this many items")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import crawl, make_listing, open_store

    store = open_store(cfg)
    listing = make_listing(
        args.platform, hashtag=args.hashtag, user=args.user, search=args.search, rss=args.rss
    )
    runs = crawl(cfg, store, [listing], max_items=args.max_items)
    print(f"crawled {len(runs)} listing(s):")
    problems = print_runs(runs)
    if not runs:
        print("the crawl recorded no listing (see the crawl log under data/logs)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_CRAWL_PROBLEM if problems else 0
