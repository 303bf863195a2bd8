"""``charwatch init``: create the data folder and database, optionally write the config."""

from __future__ import annotations

import argparse
from pathlib import Path

from charwatch.config import Config, dump_toml
from charwatch.errors import UsageError

NAME = "init"
HELP = "create the data folder and database (and optionally a config file)"
DESCRIPTION = HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--write-config", metavar="PATH", help="write the effective config as TOML")
    parser.add_argument("--force", action="store_true", help="overwrite an existing config file")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store

    store = open_store(cfg)
    print(f"data folder: {cfg.data_dir.resolve()}")
    print(f"database:    {store.url} (schema up to date)")
    if args.write_config:
        path = Path(args.write_config)
        if path.exists() and not args.force:
            raise UsageError(f"{path} exists (use --force to overwrite)")
        path.write_text(dump_toml(cfg), encoding="utf-8")
        print(f"config:      {path}")
    return 0
