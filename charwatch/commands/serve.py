"""``charwatch serve``: the review desk, a small web app over the store."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from charwatch.config import Config

NAME = "serve"
HELP = "run the review desk (web pages to review flags)"
DESCRIPTION = (
    "Serve the review desk: the queue of flags with filters and bulk verdicts, one page per "
    "detection with the best frame beside the matched reference, and the actions (confirm, "
    "reject, notice sent, removed, allow an account, add a frame as a reference). Log in with "
    "a user made by `charwatch users add`. Binds 127.0.0.1 unless told otherwise."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default: serve.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: serve.port, 8080; 0: any free)")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(cfg: Config, args: argparse.Namespace) -> int:
    import waitress

    from charwatch.jobs import open_store
    from reports.desk import create_app
    from storage.users import list_users

    host = args.host or cfg.serve.host
    port = cfg.serve.port if args.port is None else args.port
    store = open_store(cfg)
    app = create_app(cfg, store)
    server = waitress.create_server(
        app, host=host, port=port, threads=max(1, cfg.serve.threads), ident="charwatch"
    )
    url_host = f"[{host}]" if ":" in host else host
    print(f"review desk on http://{url_host}:{server.effective_port}/ (Ctrl-C stops)", flush=True)
    if not list_users(store):
        print("no users yet: add one with `charwatch users add NAME --role analyst`", flush=True)
    if not _loopback(host):
        print(
            f"warning: listening on {host}, not only this machine; put it behind HTTPS and set "
            "serve.secure_cookies = true",
            file=sys.stderr,
            flush=True,
        )
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        store.dispose()
    return 0
