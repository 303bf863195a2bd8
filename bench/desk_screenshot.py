"""Screenshots of the review desk for the README: the real server over a demo-like store,
driven by headless Chromium (Playwright).

    python -m bench.desk_screenshot            # writes docs/desk.png and docs/desk-queue.png

The store is :func:`bench.desk.build_store` (the fixture platform's characters, rendered
frames and reference pictures). Each PNG is palette-reduced to stay small. Japanese captions
need a CJK font for Chromium (Debian: ``fonts-ipafont-gothic``).
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

from bench.desk import REPO, build_store, serve

MAX_BYTES = 300_000


def chromium_path() -> str:
    return shutil.which("chromium") or "/usr/bin/chromium"


def save_small(png: bytes, path: Path) -> int:
    """Write ``png`` reduced to a 256-colour palette; returns the file size."""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    small = img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    path.parent.mkdir(parents=True, exist_ok=True)
    small.save(path, "PNG", optimize=True)
    return path.stat().st_size


def pick_detection(ds) -> int:  # noqa: ANN001 - a bench.desk.DeskStore
    """A new Pompom flag whose caption names a Japanese alias: a typical first look."""
    from sqlalchemy import select

    from storage import Detection

    with ds.store.session() as s:
        for det in s.scalars(
            select(Detection)
            .where(
                Detection.character_id == ds.character_ids["pompom"],
                Detection.review_state == "new",
                Detection.match_type == "semantic",
            )
            .order_by(Detection.score.desc())
        ):
            terms = ((det.signals or {}).get("caption") or {}).get("terms") or []
            if any(not str(t).isascii() for t in terms):
                return det.id
    raise RuntimeError("no suitable detection in the store")


def shoot(out_dir: Path, flags: int = 400) -> list[Path]:
    from playwright.sync_api import sync_playwright

    from storage.users import add_user

    with tempfile.TemporaryDirectory(prefix="charwatch-desk-shot-") as tmp:
        ds = build_store(Path(tmp) / "store", flags)
        password = add_user(ds.store, "aiko", "analyst")
        det_id = pick_detection(ds)
        ds.store.dispose()
        written = []
        with serve(ds.config) as base, sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium_path(),
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            )
            page = browser.new_page(viewport={"width": 1360, "height": 1340})
            page.goto(base + "/login")
            page.fill("input[name=username]", "aiko")
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_url("**/queue")
            page.goto(base + f"/detections/{det_id}")
            page.wait_for_load_state("networkidle")
            path = out_dir / "desk.png"
            save_small(page.screenshot(full_page=False), path)
            written.append(path)
            page.set_viewport_size({"width": 1360, "height": 900})
            page.goto(base + "/queue")
            page.wait_for_load_state("networkidle")
            page.keyboard.press("j")
            page.keyboard.press("j")
            page.keyboard.press("x")
            path = out_dir / "desk-queue.png"
            save_small(page.screenshot(full_page=False), path)
            written.append(path)
            browser.close()
    for path in written:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise RuntimeError(f"{path} is {size:,} bytes (keep it under {MAX_BYTES:,})")
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.desk_screenshot", description=__doc__)
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    args = ap.parse_args(argv)
    for path in shoot(args.out):
        print(f"{path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
