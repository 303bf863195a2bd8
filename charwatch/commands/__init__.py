"""The ``charwatch`` commands, one module each.

Every command module provides:

- ``NAME``: the command word (``run-nightly``);
- ``HELP``: one line for the command list of ``charwatch --help``;
- ``DESCRIPTION``: the paragraph at the top of ``charwatch NAME --help``;
- ``add_arguments(parser)``: its options and sub-actions on its own parser;
- ``run(cfg, args) -> int``: do the work, print a summary for people, return the exit status
  (see :mod:`charwatch.errors`); a :class:`~charwatch.errors.UsageError` exits 2.

Commands import their heavy dependencies inside ``run`` so ``--help`` stays fast. To add a
command, write its module and list it in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
from typing import Protocol

from charwatch.commands import (
    allow,
    archive,
    calibrate,
    characters,
    crawl,
    demo,
    detections,
    doctor,
    evidence,
    fixture_server,
    init,
    process,
    recheck,
    reembed,
    report,
    rescan,
    resume,
    review,
    run_nightly,
    runs,
    scheduler,
    serve,
    status,
    users,
    videos,
    worker,
)
from charwatch.config import Config


class Command(Protocol):
    """What a command module provides (modules satisfy it structurally)."""

    NAME: str
    HELP: str
    DESCRIPTION: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, cfg: Config, args: argparse.Namespace) -> int: ...


#: Every command, in the order ``charwatch --help`` lists them.
COMMANDS: tuple[Command, ...] = (
    init,
    characters,
    crawl,
    videos,
    runs,
    status,
    resume,
    process,
    report,
    evidence,
    detections,
    review,
    allow,
    users,
    serve,
    calibrate,
    reembed,
    archive,
    rescan,
    run_nightly,
    recheck,
    scheduler,
    worker,
    doctor,
    fixture_server,
    demo,
)


def by_name(name: str) -> Command:
    """The command called ``name`` (a ``KeyError`` if none is)."""
    for command in COMMANDS:
        if name == command.NAME:
            return command
    raise KeyError(name)
