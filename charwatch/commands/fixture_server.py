"""``charwatch fixture-server``: serve the built-in fixture platform on 127.0.0.1."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from charwatch.config import Config

NAME = "fixture-server"
HELP = "serve the built-in fixture platform on 127.0.0.1"
DESCRIPTION = (
    "Serve listing pages shaped like TikTok, YouTube and Instagram, video pages and MP4s "
    "with the demo characters, on 127.0.0.1 (for demos and tests; no internet needed)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--media-dir", help="cache folder for generated MP4s")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from fixture_platform.server import serve_forever

    media = Path(args.media_dir) if args.media_dir else cfg.data_dir / "fixture-media"
    print(f"fixture platform on http://127.0.0.1:{args.port} (Ctrl-C to stop)", flush=True)
    print("point platforms.*.base_url at it, e.g.", flush=True)
    print(f"  CHARWATCH_PLATFORMS__TIKTOK__BASE_URL=http://127.0.0.1:{args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        serve_forever("127.0.0.1", args.port, media)
    return 0
