"""The review desk benchmark: page latency of the real ``charwatch serve`` over many flags.

    python -m bench.desk                 # 10,000 flags (and 100,000 with --full)
    python -m bench.desk --flags 2000    # a smaller store

A store is filled with demo-like flags (the fixture platform's characters, rendered frames and
reference pictures, detections written in the matcher's shape, most of them still ``new``),
then the real server is started on 127.0.0.1 and each page is fetched over HTTP, logged in,
several times: the queue's first page, a filtered page (state, character, platform, score), the
queue sorted by score, a page 20 pages deep (following "next page" links), a text search and a
detection page. Reported: median, p95 and worst milliseconds per page. The goal is under one
second per page at 10,000 flags.

:func:`build_store` is also what ``bench/desk_screenshot.py`` shows.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import insert, select

REPO = Path(__file__).resolve().parents[1]
GOAL_MS = 1000.0
CHARACTERS = ("pompom", "kitsumaru", "gearbolt")
REFERENCE_LABELS = ("front", "waving", "wink", "sitting")
PLATFORMS = ("tiktok", "youtube", "instagram")
STATES = (  # share of flags in each review state
    ("new", 0.70),
    ("needs_review", 0.10),
    ("confirmed", 0.10),
    ("rejected", 0.07),
    ("notice_sent", 0.03),
)
CAPTIONS = (
    "{alias} dance challenge #fyp #{tag}",
    "new {name} cosplay!! #{tag} #cosplay",
    "{alias}の踊ってみた #{tag} #アニメ",
    "my {name} plush collection tour",
    "drawing {name} in 60 seconds #art",
    "{alias} edit #{tag}edit",
    "unboxing the limited {name} figure",
    "can you spot {alias}? #shorts",
)
AUTHORS = (
    "dance.mika", "plushie_world", "sora_draws", "kit.cosplay", "animefan_99", "toybox.jp",
    "edits_by_ren", "mochi_art", "gachapon_hunter", "lumi.reels", "daily_anime", "figure_lab",
)  # fmt: skip


@dataclass
class DeskStore:
    """A filled store: config file, the store, and where things are."""

    root: Path
    config: Path
    cfg: Any
    store: Any
    flags: int
    character_ids: dict[str, int] = field(default_factory=dict)
    sample_ids: list[int] = field(default_factory=list)


def _frame_pool(data: Path, rng: random.Random, per_character: int) -> dict[str, list[Path]]:
    """Rendered 9:16 frames of each registered character (and of empty scenes), as JPEGs."""
    from fixture_platform.videos import BACKGROUNDS, LAYOUTS, VideoSpec, render_frame

    pool: dict[str, list[Path]] = {}
    for key in (*CHARACTERS, None):
        paths = []
        for i in range(per_character):
            spec = VideoSpec(
                seed=rng.randrange(1 << 30),
                character=key,
                layout=LAYOUTS[i % 3],
                background=BACKGROUNDS[(i + len(paths)) % len(BACKGROUNDS)],
                palette=i,
                poses=(i % 8, (i + 2) % 8, (i + 4) % 8),
                duration_s=4.0,
                fps=4,
                width=180,
                height=320,
            )
            for k in range(4):
                p = data / "frames" / "pool" / f"{key or 'scene'}-{i:02d}-{k}.jpg"
                p.parent.mkdir(parents=True, exist_ok=True)
                render_frame(spec, k * 4).save(p, "JPEG", quality=80)
                paths.append(p)
        pool[key or "scene"] = paths
    return pool


def _signals(
    rng: random.Random, score: float, copy: bool, ref_id: int, alias: str | None, n: int
) -> dict[str, Any]:
    t = float(rng.randrange(n))
    # the best frame scores highest; the others somewhat lower
    frames = [[float(i), round(max(0.05, score - 0.12 - rng.random() * 0.3), 4)] for i in range(n)]
    frames[int(t)][1] = round(score - 0.05, 4)
    out: dict[str, Any] = {
        "embedding": {
            "kind": "semantic", "score": round(score, 4), "raw": round(score - 0.1, 4),
            "matched": not copy or score > 0.6, "frame_t": t, "reference_id": ref_id,
            "threshold": 0.41, "calibrated": False, "best_similarity": round(score - 0.05, 4),
            "best_region": "full", "frames_over": max(2, n - 1), "frames_needed": 2,
            "seconds_matched": float(n - 1), "min_seconds": 0.0, "top_k": 3, "frames": frames,
        },
        "fusion": {
            "match_type": "copy" if copy else "semantic",
            "decided_by": "pdq" if copy else "embedding", "caption_bonus": 0.05 if alias else 0.0,
            "pdq_max_distance": 31, "embed_threshold": 0.41, "calibrated": [], "top_k": 3,
            "min_frames": 2, "min_seconds": 0.0, "frames": n,
        },
    }  # fmt: skip
    if copy:
        d = rng.randrange(4, 28)
        out["pdq"] = {
            "kind": "copy", "score": round(score, 4), "raw": float(d), "matched": True,
            "frame_t": t, "reference_id": ref_id, "distance": d, "max_distance": 31,
            "calibrated": False, "variant": rng.choice(("original", "flip_h")), "form": "whole",
            "frames_matched": 2, "frames_needed": 1, "seconds_matched": 2.0, "min_seconds": 0.0,
            "frames_used": n,
        }  # fmt: skip
    if alias:
        out["caption"] = {
            "kind": "context", "score": 1.0, "raw": 1.0, "matched": True, "frame_t": None,
            "reference_id": None, "terms": [alias], "where": ["caption"],
        }  # fmt: skip
    return out


def build_store(
    root: Path, flags: int, *, seed: int = 7, frames_per_character: int = 8
) -> DeskStore:
    """A store under ``root`` with ``flags`` demo-like detections (one video each)."""
    from charwatch.config import load_config
    from fixture_platform.characters import character_by_key, reference_image
    from index import registry
    from storage import Detection, Frame, Store, Video, VideoState

    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    config = root / "charwatch.toml"
    config.write_text(f'[storage]\ndata_dir = "{data.as_posix()}"\n', encoding="utf-8")
    cfg = load_config(config, environ={})
    store = Store(cfg.storage.database_url)
    out = DeskStore(root, config, cfg, store, flags)
    refs: dict[str, list[int]] = {}
    aliases: dict[str, list[str]] = {}
    for key in CHARACTERS:
        ch = character_by_key(key)
        folder = root / "references" / key
        folder.mkdir(parents=True, exist_ok=True)
        images = []
        for i, label in enumerate(REFERENCE_LABELS):
            p = folder / f"{label}.png"
            reference_image(key, i, size=320).save(p, "PNG")
            images.append(p)
        char = registry.add_character(
            cfg, store, ch.name, franchise=ch.franchise, aliases=list(ch.aliases), images=images
        )
        out.character_ids[key] = char.id
        refs[key] = [r.id for r in char.references]
        aliases[key] = [ch.name, *ch.aliases[:2]]
    pool = _frame_pool(data, rng, frames_per_character)
    now = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)
    batch = 2000
    with store.session() as s:
        first_video = (s.scalar(select(Video.id).order_by(Video.id.desc()).limit(1)) or 0) + 1
    for start in range(0, flags, batch):
        videos, frames, dets = [], [], []
        for i in range(start, min(flags, start + batch)):
            vid = first_video + i
            key = CHARACTERS[i % len(CHARACTERS)]
            platform = PLATFORMS[(i // 3) % len(PLATFORMS)]
            alias = rng.choice(aliases[key]) if rng.random() < 0.6 else None
            detected = (
                now
                - dt.timedelta(minutes=3 * (flags - i))
                - dt.timedelta(seconds=rng.randrange(60))
            )
            caption = rng.choice(CAPTIONS).format(
                alias=alias or "this", name=key.capitalize(), tag=key
            )
            videos.append(
                {
                    "id": vid,
                    "platform": platform,
                    "platform_id": f"{platform[:2]}{700000 + i}",
                    "url": f"https://www.{platform}.com/v/{700000 + i}",
                    "author": rng.choice(AUTHORS) + (str(i % 97) if i % 5 else ""),
                    "caption": caption,
                    "hashtags": [key, "fyp"],
                    "posted_at": detected - dt.timedelta(hours=rng.randrange(1, 48)),
                    "view_count": rng.randrange(200, 2_000_000),
                    "ai_label": "AI-generated" if rng.random() < 0.05 else None,
                    "first_seen": detected - dt.timedelta(minutes=20),
                    "last_seen": detected - dt.timedelta(minutes=20),
                    "state": VideoState.MATCHED,
                    "processed_at": detected,
                    "c2pa_state": "absent",
                    "media_sha256": f"{rng.getrandbits(256):064x}",
                    "attempts": 1,
                }
            )
            shots = pool[key]
            base = (i * 4) % len(shots)
            for k in range(4):
                frames.append(
                    {
                        "video_id": vid,
                        "t": float(k),
                        "pdq": "0" * 64,
                        "pdq_quality": 90,
                        "thumb_path": shots[(base + k) % len(shots)].relative_to(data).as_posix(),
                    }
                )
            copy = rng.random() < 0.25
            score = round(rng.uniform(0.52, 0.97), 3)
            r = rand_state(rng)
            ref_id = rng.choice(refs[key][:2])
            dets.append(
                {
                    "video_id": vid,
                    "character_id": out.character_ids[key],
                    "score": score,
                    "match_type": "copy" if copy else "semantic",
                    "signals": _signals(rng, score, copy, ref_id, alias, 4),
                    "best_frame_t": None,
                    "best_frame_thumb": None,
                    "best_reference_id": ref_id,
                    "model_id": "effnet-lite0",
                    "review_state": r,
                    "reviewed_by": None if r in ("new", "needs_review") else "aiko",
                    "reviewed_at": None if r in ("new", "needs_review") else detected,
                    "detected_at": detected,
                }
            )
        for d in dets:
            d["best_frame_t"] = d["signals"]["embedding"]["frame_t"]
        with store.session() as s:
            s.execute(insert(Video), videos)
            s.execute(insert(Frame), frames)
            s.execute(insert(Detection), dets)
    with store.session() as s:
        ids = list(s.scalars(select(Detection.id).order_by(Detection.id)))
    out.sample_ids = [ids[len(ids) * k // 10] for k in range(10)] if ids else []
    return out


def rand_state(rng: random.Random) -> str:
    x = rng.random()
    for state, share in STATES:
        if x < share:
            return state
        x -= share
    return STATES[0][0]


# ---------------------------------------------------------------------------------------------
# the server and an HTTP client


@contextlib.contextmanager
def serve(config: Path) -> Iterator[str]:
    """The real ``charwatch serve`` on a free port; yields its base URL."""
    cmd = [sys.executable, "-m", "charwatch.cli", "--config", str(config), "serve", "--port", "0"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            m = re.search(r"review desk on (http://\S+?)/ ", line)
            if m:
                yield m.group(1)
                return
        raise RuntimeError("the desk did not start:\n" + "".join(seen))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


class Session:
    """A kept-alive HTTP connection with the desk's session cookie."""

    def __init__(self, base: str) -> None:
        u = urlsplit(base)
        self.conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=60)
        self.cookie = ""

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        for raw in resp.headers.get_all("Set-Cookie") or []:
            self.cookie = raw.split(";", 1)[0]
        return resp.status, resp.headers, data.decode("utf-8", "replace")

    def login(self, name: str, password: str) -> None:
        _, _, html = self.request("GET", "/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert token, html[:300]
        status, _, _ = self.request(
            "POST", "/login", {"csrf_token": token.group(1), "username": name, "password": password}
        )
        if status != 303:
            raise RuntimeError(f"login failed: HTTP {status}")


def _timed(sess: Session, path: str, repeats: int) -> tuple[dict[str, Any], str]:
    times = []
    html = ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        status, _, html = sess.request("GET", path)
        times.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}")
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return {
        "path": path,
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(times[-1], 1),
        "bytes": len(html.encode()),
    }, html


def _next_link(html: str) -> str | None:
    m = re.search(r'<a href="([^"]+)" id="older"', html)
    return m.group(1).replace("&amp;", "&") if m else None


def measure(base: str, ds: DeskStore, password: str, repeats: int) -> dict[str, Any]:
    """Every page's latency, logged in as an analyst."""
    sess = Session(base)
    sess.login("bench", password)
    pom, kit = ds.character_ids["pompom"], ds.character_ids["kitsumaru"]
    pages: dict[str, dict[str, Any]] = {}
    q = urlencode
    pages["queue"], html = _timed(sess, "/queue", repeats)
    rows = len(re.findall(r'<tr class="row"', html))
    filtered = q(
        {
            "state": "new",
            "character": pom,
            "platform": "tiktok",
            "min_score": "0.6",
            "sort": "score",
        }
    )
    pages["filtered"], fhtml = _timed(sess, f"/queue?{filtered}", repeats)
    pages["sorted"], _ = _timed(sess, "/queue?" + q({"state": "all", "sort": "score"}), repeats)
    pages["sorted_asc"], _ = _timed(sess, "/queue?" + q({"sort": "score_asc"}), repeats)
    pages["character"], _ = _timed(sess, "/queue?" + q({"character": kit, "state": "all"}), repeats)
    pages["search"], _ = _timed(sess, "/queue?" + q({"q": "cosplay", "state": "all"}), repeats)
    path = "/queue?" + q({"state": "all"})
    depth = 0
    while depth < 20:
        _, _, page = sess.request("GET", path)
        nxt = _next_link(page)
        if not nxt:
            break
        path, depth = nxt, depth + 1
    pages["deep"], _ = _timed(sess, path, repeats)
    pages["deep"]["depth"] = depth
    det_times = []
    for det_id in ds.sample_ids[: max(1, repeats)]:
        r, _ = _timed(sess, f"/detections/{det_id}", 1)
        det_times.append(r["median_ms"])
    det_times.sort()
    pages["detection"] = {
        "path": "/detections/ID",
        "median_ms": round(statistics.median(det_times), 1),
        "p95_ms": round(det_times[min(len(det_times) - 1, int(0.95 * (len(det_times) - 1)))], 1),
        "max_ms": round(det_times[-1], 1),
    }
    worst = max(p["p95_ms"] for p in pages.values())
    total = re.search(r'data-total="(\d+)"', fhtml)
    return {
        "flags": ds.flags,
        "rows_per_page": rows,
        "filtered_matches": int(total.group(1)) if total else None,
        "repeats": repeats,
        "pages": pages,
        "worst_p95_ms": worst,
        "met": worst < GOAL_MS,
    }


def run_desk(work: Path, *, quick: bool = False, sizes: tuple[int, ...] | None = None) -> dict:
    """Fill a store per size, serve it, and time the pages (quick: 2,000 flags, 3 repeats)."""
    from storage.users import add_user

    sizes = sizes or ((2_000,) if quick else (10_000, 100_000))
    repeats = 3 if quick else 10
    results = []
    for n in sizes:
        t0 = time.perf_counter()
        ds = build_store(work / f"desk-{n}", n)
        built = time.perf_counter() - t0
        password = add_user(ds.store, "bench", "analyst")
        ds.store.dispose()
        with serve(ds.config) as base:
            r = measure(base, ds, password, repeats)
        r["build_s"] = round(built, 1)
        results.append(r)
    return {"sizes": results, "goal_ms": GOAL_MS}


def desk_md(d: dict[str, Any]) -> list[str]:
    """The markdown of the desk section."""
    lines = [
        "### Review desk",
        "",
        "`charwatch serve` (waitress, one process) over SQLite filled with demo-like flags; "
        "each page fetched logged in over HTTP on 127.0.0.1 (median / p95 / worst ms). "
        "filtered: state, character, platform and minimum score, sorted by score; deep: 20 "
        "pages in by the next-page links; detection: ten different detection pages.",
        "",
        "| flags | queue | filtered | sorted by score | text search | 20 pages deep | "
        "detection page | < 1 s |",
        "|---:|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for s in d.get("sizes", []):
        p = s["pages"]

        def cell(name: str, p: dict[str, Any] = p) -> str:
            x = p.get(name, {})
            return f"{x.get('median_ms')} / {x.get('p95_ms')} / {x.get('max_ms')}"

        lines.append(
            f"| {s['flags']:,} | {cell('queue')} | {cell('filtered')} | {cell('sorted')} | "
            f"{cell('search')} | {cell('deep')} | {cell('detection')} | "
            f"{'yes' if s['met'] else 'no'} |"
        )
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.desk", description=__doc__.split("\n")[0])
    ap.add_argument("--flags", type=int, action="append", help="store size (repeatable)")
    ap.add_argument("--full", action="store_true", help="10,000 and 100,000 flags")
    ap.add_argument("--work", type=Path, help="keep the stores here")
    args = ap.parse_args(argv)
    sizes = tuple(args.flags or ()) or ((10_000, 100_000) if args.full else (10_000,))
    with tempfile.TemporaryDirectory(prefix="charwatch-desk-bench-") as tmp:
        work = args.work or Path(tmp)
        res = run_desk(work, sizes=sizes)
    print(json.dumps(res, indent=2))
    print("\n".join(desk_md(res)))
    return 0 if all(s["met"] for s in res["sizes"]) else 1


if __name__ == "__main__":
    sys.exit(main())
