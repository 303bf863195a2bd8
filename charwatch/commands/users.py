"""``charwatch users``: the people who may use the review desk (add, list, reset, role,
remove)."""

from __future__ import annotations

import argparse

from charwatch.config import Config
from charwatch.printing import emit

NAME = "users"
HELP = "manage the review desk's users"
DESCRIPTION = (
    "Users of the review desk (`charwatch serve`): analysts read and decide, viewers only read. "
    "A new or reset password is generated and printed once; only its hash is stored."
)
ROLES = ("analyst", "viewer")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = sub.add_parser("add", help="add a user and print their password", description="Add a user.")
    a.add_argument("name", help="login name (A-Z a-z 0-9 . _ @ -)")
    a.add_argument("--role", choices=ROLES, required=True, help="analyst: decides; viewer: reads")
    a = sub.add_parser("list", help="list users")
    a.add_argument("--format", choices=["table", "jsonl"], default="table")
    a = sub.add_parser("reset-password", help="give a user a new password and print it")
    a.add_argument("name")
    a = sub.add_parser("role", help="change a user's role")
    a.add_argument("name")
    a.add_argument("role", choices=ROLES)
    a = sub.add_parser("remove", help="remove a user")
    a.add_argument("name")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store
    from storage import users

    store = open_store(cfg)
    if args.action == "add":
        password = users.add_user(store, args.name, args.role)
        print(f"added {args.role} {args.name!r}; password (shown once): {password}")
    elif args.action == "reset-password":
        password = users.reset_password(store, args.name)
        print(f"new password for {args.name!r} (shown once): {password}")
    elif args.action == "role":
        users.set_role(store, args.name, args.role)
        print(f"{args.name!r} is now {args.role}")
    elif args.action == "remove":
        users.remove_user(store, args.name)
        print(f"removed {args.name!r}")
    else:
        emit(users.list_users(store), args.format, ["name", "role", "created_at", "last_login_at"])
    return 0
