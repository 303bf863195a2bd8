"""``charwatch worker`` processes on one PostgreSQL: videos/min for 1, 2, 4 workers, and
recovery after a ``kill -9``.

    python -m bench.workers --videos 24 --workers 1,2,4

Each run starts from a fresh database holding the same queued fixture videos (the fixture's
bulk TikTok tag) and the registered demo characters; ``N`` worker processes take the process
and match queues; the clock runs from the first processing job until every video is matched.
Recovery: two workers, one killed with SIGKILL while it holds leased videos; reported are the
seconds until everything is matched after the kill, how many videos were started again (the
killed worker's leases) and any duplicate embedding or detection.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 1200.0


def _config(work: Path, base_url: str, url: str) -> Path:
    lines = [
        "[storage]",
        f'url = "{url}"',
        f'data_dir = "{(work / "data").as_posix()}"',
        "",
        "[crawl]",
        "autothrottle = false",
        "",
        "[process]",
        "lease_s = 60",
        "torch_threads = 1",
        "",
    ]
    for p in ("tiktok", "youtube", "instagram"):
        lines += [
            f"[platforms.{p}]",
            f'base_url = "{base_url}"',
            "download_delay = 0.0",
            "sleep_interval = 0.0",
            "max_downloads_per_hour = 0",
            "",
        ]
    path = work / "charwatch.toml"
    work.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _prepare(cfg_path: Path, srv: Any, n: int) -> Any:
    """Queue ``n`` fixture videos and register the demo characters (index built once here)."""
    from charwatch.config import load_config
    from charwatch.demo import register_demo_characters
    from charwatch.jobs import current_embedder, open_store
    from fixture_platform.catalog import BULK_TAG
    from index.refindex import load_or_build
    from storage import Video

    cfg = load_config(cfg_path)
    store = open_store(cfg)
    register_demo_characters(cfg, store)
    load_or_build(cfg, store, current_embedder(cfg))
    ids = srv.catalog.listings[("tiktok", "tag", BULK_TAG)].video_ids[:n]
    with store.session() as s:
        for vid in ids:
            v = srv.catalog.videos[("tiktok", vid)]
            s.add(Video(platform="tiktok", platform_id=vid, url=srv.url(v.path)))
    return cfg, store


def _start(cfg_path: Path, logs: Path, i: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARWATCH_")}
    env["PYTHONPATH"] = str(REPO)
    exe = Path(sys.executable).with_name("charwatch")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "charwatch.cli"]
    cmd += ["--config", str(cfg_path), "worker", "--batch", "4", "--name", f"bench-{i}"]
    log = open(logs / f"worker-{i}.log", "wb")  # noqa: SIM115 - closed right after the start
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    return proc


def _states(store: Any) -> dict[str, int]:
    from storage import Video

    with store.session() as s:
        return dict(s.execute(select(Video.state, func.count()).group_by(Video.state)).all())


def _done(store: Any, n: int) -> bool:
    st = _states(store)
    return sum(st.values()) >= n and st.get("matched", 0) + st.get("failed", 0) >= n


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=90)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _duplicates(store: Any) -> tuple[int, int]:
    from storage import Detection, Embedding

    with store.session() as s:
        emb = s.execute(
            select(func.count()).select_from(
                select(Embedding.frame_id, Embedding.region, Embedding.model_id)
                .group_by(Embedding.frame_id, Embedding.region, Embedding.model_id)
                .having(func.count() > 1)
                .subquery()
            )
        ).scalar_one()
        det = s.execute(
            select(func.count()).select_from(
                select(Detection.video_id, Detection.character_id)
                .group_by(Detection.video_id, Detection.character_id)
                .having(func.count() > 1)
                .subquery()
            )
        ).scalar_one()
    return int(emb), int(det)


def _one_run(pg: Any, srv: Any, work: Path, n_workers: int, videos: int) -> dict[str, Any]:
    from charwatch import cluster

    url = pg.create_database(f"bench_w{n_workers}_{int(time.time() * 1000) % 100000}")
    cfg_path = _config(work, srv.base_url, url)
    cfg, store = _prepare(cfg_path, srv, videos)
    cluster.ensure_schema(cfg)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    procs = [_start(cfg_path, logs, i) for i in range(n_workers)]
    try:
        t0 = time.monotonic()
        cluster.defer_processing(cfg)
        while not _done(store, videos):
            if time.monotonic() - t0 > TIMEOUT_S:
                raise RuntimeError(f"{n_workers} worker(s): not done after {TIMEOUT_S:.0f} s")
            time.sleep(0.5)
        wall = time.monotonic() - t0
    finally:
        _stop(procs)
    return {
        "workers": n_workers,
        "videos": videos,
        "wall_s": round(wall, 1),
        "videos_per_min": round(videos / wall * 60, 1),
        "states": _states(store),
    }


def _recovery(pg: Any, srv: Any, work: Path, videos: int) -> dict[str, Any]:
    from charwatch import cluster
    from storage import Video

    url = pg.create_database(f"bench_rec_{int(time.time() * 1000) % 100000}")
    cfg_path = _config(work, srv.base_url, url)
    cfg, store = _prepare(cfg_path, srv, videos)
    cluster.ensure_schema(cfg)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    procs = [_start(cfg_path, logs, i) for i in range(2)]
    try:
        t0 = time.monotonic()
        cluster.defer_processing(cfg)
        victim = None
        pids = {p.pid: p for p in procs}
        while victim is None and time.monotonic() - t0 < TIMEOUT_S:
            with store.session() as s:
                owners = list(
                    s.scalars(select(Video.lease_owner).where(Video.lease_owner.is_not(None)))
                )
            for owner in owners:  # host:pid:suffix (storage.workqueue.worker_id)
                parts = owner.split(":")
                if len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) in pids:
                    victim = pids[int(parts[1])]
            time.sleep(0.2)
        if victim is None:
            raise RuntimeError("no worker ever held a lease")
        with store.session() as s:
            held = s.scalar(select(func.count()).where(Video.lease_owner.like(f"%:{victim.pid}:%")))
        killed_at = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        while not _done(store, videos):
            if time.monotonic() - killed_at > TIMEOUT_S:
                raise RuntimeError("recovery: not done")
            time.sleep(0.5)
        finished = time.monotonic()
    finally:
        _stop(procs)
    emb, det = _duplicates(store)
    return {
        "workers": 2,
        "videos": videos,
        "killed_after_s": round(killed_at - t0, 1),
        "leases_held_by_killed": int(held or 0),
        "seconds_to_finish_after_kill": round(finished - killed_at, 1),
        "videos_redone": int(held or 0),  # the killed worker's leased videos, started again
        "duplicate_embeddings": emb,
        "duplicate_detections": det,
        "states": _states(store),
    }


def run_workers(
    work: Path,
    *,
    quick: bool = False,
    videos: int | None = None,
    counts: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """Scaling over worker counts, then recovery after a kill; needs PostgreSQL."""
    from fixture_platform.server import FixtureServer
    from storage.pgserver import TempPostgres

    videos = videos or (4 if quick else 24)
    counts = counts or ((1,) if quick else (1, 2, 4))
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"videos": videos, "scaling": []}
    with TempPostgres() as pg, FixtureServer(media_dir=work / "fixture-media") as srv:
        for n in counts:
            out["scaling"].append(_one_run(pg, srv, work / f"w{n}", n, videos))
        out["recovery"] = _recovery(pg, srv, work / "recovery", videos)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--work", type=Path, help="keep files here (default: a temporary folder)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="charwatch-workers-"))
    counts = tuple(int(x) for x in args.workers.split(","))
    print(json.dumps(run_workers(work, videos=args.videos, counts=counts), indent=2))


if __name__ == "__main__":
    main()
