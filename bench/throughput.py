"""Throughput: shorts per minute through the whole chain, frames per second per stage, memory.

Set-up (parent process): a few distinct 30-second 720x1280 30 fps shorts are drawn with the
fixture platform's video maker (some show a registered character, some none). For each
embedder, the demo characters are registered in a fresh data folder and the reference index is
built once (a nightly run finds it ready).

Measured run (one fresh child process per case, so peak RSS and CPU time are its own):

1. the fixture platform serves on 127.0.0.1, its media folder pre-filled so that every video of
   the ``#bulk500`` listings (TikTok and YouTube: 1,000 videos) is one of the drawn shorts;
2. ``charwatch.jobs.crawl`` crawls both listings (1,000 videos queued),
   ``charwatch.jobs.process(limit=N)`` downloads (yt-dlp over HTTP), samples, hashes, embeds
   and matches N of them, ``charwatch.jobs.report`` writes the report;
3. shorts/min = N / (crawl time x N/1000 + process time + report time) x 60;
4. then, untimed in the totals, a per-stage probe on a few of the same files: decode (frame
   sampling without hashing), PDQ hashing, region embedding, index search (load the stored
   vectors, run the signals and fusion).

The naive baseline (child process too) takes the same N files from disk (no crawl, no
download): every frame at 1 fps at full resolution, one image at a time through open_clip
ViT-B-32 (fp32, its own preprocessing), each searched against the reference embeddings.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.metrics import proc_status_mb

REPO = Path(__file__).resolve().parents[1]
CASES = ("effnet-lite0", "clip:ViT-B-32:none")
NAIVE = "naive"
TARGETS_SHORTS_PER_MIN = {"effnet-lite0": 100.0, "clip:ViT-B-32:none": 40.0}
TARGET_RATIO = 3.0
TARGET_RSS_MB = 2048.0
MEDIA_VERSION = 1
FPS = 30
DOWNLOAD_PROBE = 6  # videos downloaded again to measure the download's CPU
VIDEOS_PER_CASE = 24  # full mode: enough that start-up (imports, model) is a nightly's share


def _shorts(quick: bool) -> dict[str, Any]:
    if quick:
        return {"width": 360, "height": 640, "duration_s": 6.0, "fps": FPS, "count": 2}
    return {"width": 720, "height": 1280, "duration_s": 8.0, "fps": FPS, "count": 3}


def _draw(spec: Any, path: Path) -> str:
    from fixture_platform.videos import make_video

    if not path.is_file():
        make_video(spec, path)
    return str(path)


def prepare_media(work: Path, quick: bool, seed: int = 3) -> list[Path]:
    """Draw the distinct shorts (cached under ``work``), two at a time."""
    from fixture_platform.videos import VideoSpec

    s = _shorts(quick)
    folder = work / f"shorts-v{MEDIA_VERSION}-{s['width']}x{s['height']}-{s['duration_s']:g}s"
    looks = [
        ("pompom", "center", 0.7, "shapes"),
        (None, "center", 0.7, "room"),
        ("kitsumaru", "pan", 0.6, "noise"),
    ]
    specs = []
    for i in range(s["count"]):
        char, layout, scale, bg = looks[i % len(looks)]
        specs.append(
            VideoSpec(
                seed=seed + i,
                character=char,
                layout=layout,
                scale=scale,
                background=bg,
                palette=i,
                poses=(0, 2, 5),
                emojis=2,
                caption="fixture short for the throughput benchmark",
                duration_s=s["duration_s"],
                fps=s["fps"],
                width=s["width"],
                height=s["height"],
            )
        )
    paths = [folder / f"short-{i}.mp4" for i in range(len(specs))]
    todo = [(sp, p) for sp, p in zip(specs, paths, strict=True) if not p.is_file()]
    if todo:
        with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
            for f in [pool.submit(_draw, sp, p) for sp, p in todo]:
                f.result()
    return paths


def prewarm(data_dir: Path, spec: str) -> None:
    """Register the demo characters and build the reference index for ``spec`` there."""
    from charwatch import jobs
    from charwatch.config import Config
    from charwatch.demo import register_demo_characters
    from index.refindex import load_or_build
    from pipeline.embedders import load_embedder

    shutil.rmtree(data_dir, ignore_errors=True)
    cfg = Config()
    cfg.storage.data_dir = str(data_dir)
    cfg.embed.model = spec
    store = jobs.open_store(cfg)
    register_demo_characters(cfg, store)
    emb = load_embedder(spec, precision=cfg.embed.precision, threads=cfg.process.torch_threads)
    load_or_build(cfg, store, emb)
    store.dispose()


# ---------------------------------------------------------------------------------------------
# child: one measured case


def _usage() -> dict[str, float | None]:
    """Peak RSS of this process (VmHWM), CPU seconds of it and of its finished children
    (ffmpeg, the crawler process)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = proc_status_mb("VmHWM")
    return {
        "peak_rss_mb": None if peak is None else round(peak, 1),
        "cpu_s": round(me.ru_utime + me.ru_stime, 2),
        "children_cpu_s": round(kids.ru_utime + kids.ru_stime, 2),
    }


def _prefill(media_dir: Path, ids: list[tuple[str, str]], shorts: list[Path]) -> None:
    for i, (platform, vid) in enumerate(ids):
        dst = media_dir / platform / f"{vid}.mp4"
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists():
            continue
        src = shorts[i % len(shorts)]
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)


def run_case(spec: str, shorts: list[Path], n: int, queued: int, work: Path) -> dict[str, Any]:
    """The measured end-to-end run for one embedder (call in a fresh process)."""
    from charwatch import jobs
    from charwatch.config import Config
    from charwatch.demo import demo_config
    from fixture_platform.catalog import BULK_TAG
    from fixture_platform.server import FixtureServer

    platforms = ["tiktok"] if queued <= 500 else ["tiktok", "youtube"]
    per_listing = min(500, -(-queued // len(platforms)))
    out: dict[str, Any] = {"case": spec, "videos": n}
    with FixtureServer(media_dir=work / "fixture-media") as server:
        ids = []
        for p in platforms:
            listing = server.catalog.listings[(p, "tag", BULK_TAG)]
            ids += [(p, v) for v in listing.video_ids[:per_listing]]
        _prefill(server.media_dir, ids, shorts)
        cfg = demo_config(Config(), work / "data", server.base_url)
        cfg.embed.model = spec
        store = jobs.open_store(cfg)
        before = _usage()
        t0 = time.perf_counter()
        runs = jobs.crawl(
            cfg, store, [jobs.make_listing(p, hashtag=BULK_TAG) for p in platforms],
            max_items=per_listing,
        )  # fmt: skip
        t1 = time.perf_counter()
        after_crawl = _usage()
        result = jobs.process(cfg, store, limit=n, progress=False)
        t2 = time.perf_counter()
        report = jobs.report(cfg, store)
        t3 = time.perf_counter()
        usage = _usage()
        queued_now = sum(r.items_new for r in runs)
        share = n / max(1, queued_now)
        crawl_share = (t1 - t0) * share
        total = crawl_share + (t2 - t1) + (t3 - t2)
        cpu = {k: (usage[k] or 0.0) - (before[k] or 0.0) for k in ("cpu_s", "children_cpu_s")}
        crawl_cpu = sum((after_crawl[k] or 0.0) - (before[k] or 0.0) for k in cpu)
        cpu_total = sum(cpu.values()) - crawl_cpu * (1 - share)
        ps, ds = result.process, result.detect
        out.update(
            {
                "queued": queued_now,
                "crawl_status": sorted({r.status for r in runs}),
                "processed": ps.processed,
                "failed": ps.failed,
                "matched": ds.matched,
                "flags": ds.flags,
                "frames": ps.frames,
                "embeddings": ps.embeddings,
                "frames_per_short": round(ps.frames / max(1, ps.processed), 1),
                "regions_per_frame": round(ps.embeddings / max(1, ps.frames), 2),
                "embedder_id": ds.model_id,
                "seconds": {
                    "crawl_all": round(t1 - t0, 2),
                    "crawl_share": round(crawl_share, 2),
                    "process_job": round(t2 - t1, 2),
                    "report": round(t3 - t2, 2),
                    "end_to_end": round(total, 2),
                    "loop": ps.as_dict()["seconds"],
                    "match": ds.seconds,
                },
                "shorts_per_min": round(n / total * 60, 1) if total > 0 else None,
                "process_shorts_per_min": round(ps.processed / (t2 - t1) * 60, 1),
                "report_flags": getattr(report, "flags", None),
                "peak_rss_mb": usage["peak_rss_mb"],
                "cpu_s": round(cpu["cpu_s"], 2),
                "children_cpu_s": round(cpu["children_cpu_s"], 2),
                "crawl_cpu_s": round(crawl_cpu, 2),
                # CPU seconds per short: this process and its children (ffmpeg, yt-dlp's
                # ffmpeg), the crawl's CPU pro-rated like its time
                "cpu_s_per_short": round(cpu_total / max(1, ps.processed), 2),
            }
        )
        if ps.errors:
            out["errors"] = ps.errors[:3]
        out["stages"] = _stage_probe(cfg, store, spec, shorts)
        store.dispose()
    return out


def _cpu_now() -> float:
    """CPU seconds so far of this process (all its threads) and of its finished children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


STAGES = ("download", "decode", "hash", "embed", "load", "signals", "fusion")


def _stage_probe(cfg: Any, store: Any, spec: str, shorts: list[Path]) -> dict[str, Any]:
    """Frames/s per stage on the drawn shorts and on the matched videos in the store, and
    the CPU seconds per short of each stage, run one stage at a time (``cpu_s_per_short``;
    per signal in ``signal_cpu_s_per_short``): where the whole run's CPU goes."""
    import tempfile

    from sqlalchemy import select

    from index.matcher import fuse, load_evidence
    from index.refindex import load_or_build
    from index.signals import make_signals
    from pipeline.download import batch_options, download
    from pipeline.embedders import load_embedder
    from pipeline.frames import sample_frames
    from pipeline.hashing import pdq
    from pipeline.media import probe
    from pipeline.ytdlp import YtdlpSessions
    from storage.models import Video, VideoState

    emb = load_embedder(spec, precision=cfg.embed.precision, threads=cfg.process.torch_threads)
    cpu = dict.fromkeys(STAGES, 0.0)
    sample_s = hash_s = embed_s = 0.0
    frames = images = source_frames = 0
    for path in shorts:
        info = probe(path)
        t0, c0 = time.perf_counter(), _cpu_now()
        picked = sample_frames(path, cfg.process)
        t1, c1 = time.perf_counter(), _cpu_now()
        for f in picked:
            pdq(f.image)
        t2, c2 = time.perf_counter(), _cpu_now()
        bs = max(1, cfg.process.batch_size)
        regions_n = 0
        for i in range(0, len(picked), bs):
            got = emb.embed_frames([f.image for f in picked[i : i + bs]])
            regions_n += sum(len(fv.names) for fv in got)
        t3, c3 = time.perf_counter(), _cpu_now()
        sample_s, hash_s, embed_s = sample_s + t1 - t0, hash_s + t2 - t1, embed_s + t3 - t2
        # sample_frames hashes too (duplicate frames are dropped by PDQ): decode is the rest
        cpu["decode"] += (c1 - c0) - (c2 - c1)
        cpu["hash"] += c2 - c1
        cpu["embed"] += c3 - c2
        frames += len(picked)
        images += regions_n
        source_frames += round((info.duration or 0) * FPS)
    per_file = {k: cpu[k] / max(1, len(shorts)) for k in ("decode", "hash", "embed")}
    decode_s = max(1e-9, sample_s - hash_s)
    signals = make_signals(cfg.detect, emb)
    ri = load_or_build(cfg, store, emb, signals)
    with store.session() as s:
        rows = list(s.execute(select(Video.id, Video.url, Video.platform).where(
            Video.state == VideoState.MATCHED)))  # fmt: skip
    search_s, search_frames = 0.0, 0
    per_signal = {sig.name: 0.0 for sig in signals}
    for vid, _, _ in rows:
        t0, c0 = time.perf_counter(), _cpu_now()
        ev = load_evidence(store, vid, emb.id, emb.dim)
        if ev.data_dir is None:
            ev.data_dir = str(cfg.data_dir)
        c1 = _cpu_now()
        results = {}
        for sig in signals:
            cs = _cpu_now()
            results[sig.name] = sig.compare(ev, ri.refs, ri.part(sig.name))
            per_signal[sig.name] += _cpu_now() - cs
        c2 = _cpu_now()
        fuse(cfg, ev, ri, results, signals)
        c3 = _cpu_now()
        search_s += time.perf_counter() - t0
        search_frames += len(ev.frames)
        cpu["load"] += c1 - c0
        cpu["signals"] += c2 - c1
        cpu["fusion"] += c3 - c2
    n_vids = max(1, len(rows))
    # downloads again (a fresh folder), a few of the same videos through the same yt-dlp use
    sessions = YtdlpSessions(batch_options(cfg.process), None)
    fetched = rows[:DOWNLOAD_PROBE]
    try:
        with tempfile.TemporaryDirectory(prefix="dl-probe-") as tmp:
            for i, (_, url, platform) in enumerate(fetched):
                c0 = _cpu_now()
                download(url, Path(tmp), f"v{i}", cfg.process, cfg.platforms.get(platform),
                         sessions=sessions, platform_name=platform)  # fmt: skip
                cpu["download"] += _cpu_now() - c0
    finally:
        sessions.close()
    per_short = {
        "download": cpu["download"] / max(1, len(fetched)),
        **per_file,
        **{k: cpu[k] / n_vids for k in ("load", "signals", "fusion")},
    }
    return {
        "files": len(shorts),
        "sampled_frames": frames,
        "decode_sampled_frames_per_s": round(frames / decode_s, 1),
        "decode_source_frames_per_s": round(source_frames / decode_s, 1),
        "hash_frames_per_s": round(frames / max(hash_s, 1e-9), 1),
        "embed_frames_per_s": round(frames / max(embed_s, 1e-9), 1),
        "embed_images_per_s": round(images / max(embed_s, 1e-9), 1),
        "search_frames_per_s": round(search_frames / max(search_s, 1e-9), 1),
        "search_ms_per_video": round(1000 * search_s / n_vids, 1),
        "cpu_s_per_short": {k: round(v, 3) for k, v in per_short.items()},
        "signal_cpu_s_per_short": {k: round(v / n_vids, 3) for k, v in per_signal.items()},
    }


def run_naive(shorts: list[Path], n: int, work: Path) -> dict[str, Any]:
    """Every frame at 1 fps, one image at a time through open_clip ViT-B-32 (fp32).

    Timed like the pipeline's cases: from before its imports (torch, open_clip), through
    model creation and the reference embeddings, to the last frame searched; the start-up
    share is reported on its own."""
    t_start = time.perf_counter()
    import faiss
    import numpy as np
    import open_clip
    import torch
    from PIL import Image

    from fixture_platform.characters import write_reference_images
    from pipeline.media import ffmpeg_exe, probe

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    model.eval()

    def embed(img: Image.Image) -> np.ndarray:
        with torch.no_grad():
            v = model.encode_image(preprocess(img).unsqueeze(0)).float().numpy()
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    refs = write_reference_images(work / "refs")
    index = faiss.IndexFlatIP(512)
    for paths in refs.values():
        for p in paths:
            with Image.open(p) as im:
                index.add(embed(im.convert("RGB")))
    t0 = time.perf_counter()
    startup_s = t0 - t_start
    frames = 0
    decode_s = decode_cpu = embed_cpu = 0.0
    for i in range(n):
        path = shorts[i % len(shorts)]
        td, cd = time.perf_counter(), _cpu_now()
        info = probe(path)
        w, h = int(info.width or 0), int(info.height or 0)
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path)]
        cmd += ["-vf", "fps=1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        raw = subprocess.run(cmd, capture_output=True, check=True, timeout=600).stdout
        size = w * h * 3
        images = [
            Image.frombytes("RGB", (w, h), raw[k : k + size])
            for k in range(0, len(raw) - size + 1, size)
        ]
        decode_s += time.perf_counter() - td
        ce = _cpu_now()
        decode_cpu += ce - cd
        for img in images:
            index.search(embed(img), 5)
        embed_cpu += _cpu_now() - ce
        frames += len(images)
    steady = time.perf_counter() - t0
    total = steady + startup_s
    usage = _usage()
    stage_cpu = {"decode": round(decode_cpu / n, 3), "embed": round(embed_cpu / n, 3)}
    return {
        "case": NAIVE,
        "videos": n,
        "frames": frames,
        "frames_per_short": round(frames / max(1, n), 1),
        "seconds": {
            "total": round(total, 2),
            "startup": round(startup_s, 2),
            "decode": round(decode_s, 2),
        },
        "shorts_per_min": round(n / total * 60, 1),
        "shorts_per_min_after_startup": round(n / steady * 60, 1),
        "embed_images_per_s": round(frames / max(1e-9, steady - decode_s), 1),
        "torch_threads": torch.get_num_threads(),
        **usage,
        "cpu_s_per_short": round(((usage["cpu_s"] or 0) + (usage["children_cpu_s"] or 0)) / n, 2),
        "stages": {"cpu_s_per_short": stage_cpu},
    }


# ---------------------------------------------------------------------------------------------
# parent


def _child(args: list[str], out: Path, timeout_s: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.throughput", *args, "--json", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, timeout=timeout_s, check=False
    )
    if proc.returncode != 0 or not out.is_file():
        tail = proc.stderr.decode("utf-8", "replace").strip()[-1500:]
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(out.read_text())


def run_throughput(work: Path, *, quick: bool = False) -> dict[str, Any]:
    """All cases; returns the results with their targets."""
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    shorts = prepare_media(work, quick)
    s = _shorts(quick)
    n = 2 if quick else VIDEOS_PER_CASE
    queued = 20 if quick else 1000
    out: dict[str, Any] = {
        "shorts": {
            **{k: s[k] for k in ("width", "height", "duration_s", "fps")},
            "distinct_files": len(shorts),
            "bytes_each": [p.stat().st_size for p in shorts],
        },
        "videos_per_case": n,
        "queued": queued,
        "prepare_s": round(time.perf_counter() - t0, 1),
        "cases": {},
    }
    files = [str(p) for p in shorts]
    cases = CASES[:1] if quick else CASES  # quick: the smoke run skips the ViT-B-32 case
    out["skipped"] = [c for c in CASES if c not in cases]
    for spec in cases:
        print(f"throughput: {spec}", flush=True)
        case_dir = work / ("case-" + spec.replace(":", "_"))
        prewarm(case_dir / "data", spec)
        shutil.rmtree(case_dir / "fixture-media", ignore_errors=True)
        res = _child(
            ["--case", spec, "--videos", str(n), "--queued", str(queued), "--work", str(case_dir)]
            + [a for f in files for a in ("--short", f)],
            case_dir / "result.json",
            timeout_s=2400,
        )
        res["target_shorts_per_min"] = TARGETS_SHORTS_PER_MIN[spec]
        out["cases"][spec] = res
    print("throughput: naive baseline", flush=True)
    naive_dir = work / "case-naive"
    naive_dir.mkdir(parents=True, exist_ok=True)
    out["cases"][NAIVE] = _child(
        ["--case", NAIVE, "--videos", str(n), "--work", str(naive_dir)]
        + [a for f in files for a in ("--short", f)],
        naive_dir / "result.json",
        timeout_s=2400,
    )
    naive = out["cases"][NAIVE]
    ratios = {}
    for spec in CASES:
        c = out["cases"].get(spec, {})
        if c.get("shorts_per_min") and naive.get("shorts_per_min"):
            ratios[spec] = {
                "end_to_end": round(c["shorts_per_min"] / naive["shorts_per_min"], 2),
                "process_only": round(c["process_shorts_per_min"] / naive["shorts_per_min"], 2),
            }
    out["ratios_vs_naive"] = ratios
    if CASES[0] in ratios:  # the default embedder: what a user runs instead of the naive loop
        out["ratio_vs_naive"] = ratios[CASES[0]]["end_to_end"]
    out["target_ratio"] = TARGET_RATIO
    out["target_peak_rss_mb"] = TARGET_RSS_MB
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="one measured throughput case (see module doc)")
    ap.add_argument("--case", required=True, help=f"an embedder spec or {NAIVE!r}")
    ap.add_argument("--short", action="append", type=Path, required=True)
    ap.add_argument("--videos", type=int, required=True)
    ap.add_argument("--queued", type=int, default=0)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.case == NAIVE:
        res = run_naive(args.short, args.videos, args.work)
    else:
        res = run_case(args.case, args.short, args.videos, max(args.queued, args.videos), args.work)
    args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
