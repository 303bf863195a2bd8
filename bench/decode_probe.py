"""CPU cost of frame sampling on 720x1280 30 fps H.264 shorts, one ffmpeg variant at a time.

``python -m bench.decode_probe --work /tmp/decode-probe`` draws a few 8 s shorts with scene
cuts (ffmpeg's lavfi sources, libx264 at ~2 Mbit/s, default and 2 s GOPs; reused when present),
then reports the median CPU seconds (user + sys, ffmpeg child and Python apart) of:

* ffmpeg command lines: the former graph (scale every frame, then select), the same with
  ``fast_bilinear``, select before scale, decoder threads, ``-skip_frame`` ``noref``,
  ``bidir`` and ``nokey``, and plain decoding as the floor;
* :func:`pipeline.frames.sample_frames` end to end, and PDQ hashing of one sampled frame;
* how the frames picked with ``-skip_frame noref`` compare with a full decode (timestamps,
  kinds, and the pixel difference of frames both passes decoded at the same time).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import pipeline.frames as frames_mod
from charwatch.config import ProcessConfig
from pipeline.hashing import pdq
from pipeline.media import ffmpeg_exe

_SIZE = "720x1280"
_SHORTS: dict[str, tuple[list[str], list[str]]] = {
    # name: (three lavfi sources, concatenated; extra x264 options)
    "cuts_gop250": (
        [
            f"testsrc2=size={_SIZE}:rate=30:duration=3",
            f"mandelbrot=size={_SIZE}:rate=30,trim=duration=3",
            f"life=size={_SIZE}:rate=30:mold=10:ratio=0.5:death_color=#C83232"
            ":life_color=#00ff00,trim=duration=2",
        ],
        [],
    ),
    "cuts_gop60": (
        [
            f"mandelbrot=size={_SIZE}:rate=30:start_scale=1.5,trim=duration=4",
            f"testsrc2=size={_SIZE}:rate=30:duration=2,hue=h=t*40",
            f"cellauto=size={_SIZE}:rate=30:rule=110,trim=duration=2",
        ],
        ["-g", "60"],
    ),
    "fades_gop250": (
        [
            f"testsrc2=size={_SIZE}:rate=30:duration=3,fade=out:st=2.3:d=0.7",
            f"mandelbrot=size={_SIZE}:rate=30:start_scale=2,trim=duration=3,fade=in:d=0.5",
            f"smptebars=size={_SIZE}:rate=30:duration=2",
        ],
        [],
    ),
}

_OLD_SELECT = (
    "isnan(prev_selected_t)+gte(t-prev_selected_t,{step:.4f})"
    "+gte(t-prev_selected_t,{half:.4f})*(gt(scene,0.3)+key)"
)


def make_shorts(work: Path) -> list[Path]:
    """Draw the test shorts into ``work`` (kept between runs)."""
    work.mkdir(parents=True, exist_ok=True)
    out = []
    for name, (sources, extra) in _SHORTS.items():
        path = work / f"{name}.mp4"
        out.append(path)
        if path.exists():
            continue
        args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
        for src in sources:
            args += ["-f", "lavfi", "-i", src]
        args += ["-f", "lavfi", "-i", "sine=duration=8"]
        graph = "[0][1][2]concat=n=3:v=1:a=0,noise=alls=4:allf=t,format=yuv420p[v]"
        args += ["-filter_complex", graph, "-map", "[v]", "-map", "3"]
        args += ["-c:v", "libx264", "-b:v", "2M", "-maxrate", "3M", "-bufsize", "6M", *extra]
        args += ["-c:a", "aac", "-shortest", "-movflags", "+faststart", str(path)]
        subprocess.run(args, check=True, timeout=600)
    return out


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _measure(fn: Callable[[], Any], reps: int) -> dict[str, float]:
    """Median Python CPU, child CPU and wall seconds of ``fn`` over ``reps`` runs."""
    py, kid, wall = [], [], []
    for _ in range(reps):
        a, t0 = _cpu(), time.perf_counter()
        fn()
        b = _cpu()
        wall.append(time.perf_counter() - t0)
        py.append(b[0] - a[0])
        kid.append(b[1] - a[1])
    return {
        "py_cpu_s": statistics.median(py),
        "ffmpeg_cpu_s": statistics.median(kid),
        "wall_s": statistics.median(wall),
    }


def _variants(short_side: int, step: float) -> dict[str, list[str]]:
    """ffmpeg argument lists (after the binary) per variant; ``{src}`` is the input path."""
    sc = frames_mod._scale_args(short_side)
    scale = f"scale=w='{sc['w']}':h='{sc['h']}'"
    fast = f"{scale}:flags=fast_bilinear"
    old_sel = f"select='{_OLD_SELECT.format(step=step, half=step / 2)}'"
    new_sel = f"select='{frames_mod._select_expr(step)}'"
    tail = "metadata=mode=print:key=lavfi.scene_score,showinfo"
    out = ["-f", "image2pipe", "-c:v", "ppm", "-fps_mode", "passthrough", "pipe:"]
    head = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "info"]

    def cmd(vf: str, *inopts: str, output: list[str] = out) -> list[str]:
        return [*head, *inopts, "-i", "{src}", "-map", "0:v", "-vf", vf, *output]

    null = ["-f", "null", "-"]
    return {
        "before: scale>select, threads auto": cmd(f"{scale},{old_sel},{tail}"),
        "scale(fast_bilinear)>select, auto": cmd(f"{fast},{old_sel},{tail}"),
        "select>scale, threads auto": cmd(f"{new_sel},{scale},{tail}"),
        "select>scale, threads 1": cmd(f"{new_sel},{scale},{tail}", "-threads", "1"),
        "select>scale, t1, skip bidir": cmd(
            f"{new_sel},{scale},{tail}", "-threads", "1", "-skip_frame", "bidir"
        ),
        "select>scale, t1, skip noref": cmd(
            f"{new_sel},{scale},{tail}", "-threads", "1", "-skip_frame", "noref"
        ),
        "select>scale, t1, skip nokey": cmd(
            f"{new_sel},{scale},{tail}", "-threads", "1", "-skip_frame", "nokey"
        ),
        "floor: decode only, t1": cmd("null", "-threads", "1", output=null),
        "floor: decode only, t1, noref": cmd(
            "null", "-threads", "1", "-skip_frame", "noref", output=null
        ),
    }


def _run_ffmpeg(args: list[str], src: Path) -> int:
    argv = [ffmpeg_exe(), *(a.replace("{src}", str(src)) for a in args)]
    proc = subprocess.run(argv, capture_output=True, check=True, timeout=120)
    return proc.stderr.count(b"Parsed_showinfo") // 2  # showinfo logs two lines per frame


def _compare(path: Path, pcfg: ProcessConfig) -> dict[str, Any]:
    """Frames picked with and without ``-skip_frame noref``; pixel difference at equal times."""
    fast = frames_mod.sample_frames(path, pcfg)
    saved = frames_mod.SKIP_NONREF_CODECS
    frames_mod.SKIP_NONREF_CODECS = frozenset()
    try:
        full = frames_mod.sample_frames(path, pcfg)
    finally:
        frames_mod.SKIP_NONREF_CODECS = saved
    by_t = {f.t: f for f in full}
    diffs = [
        int(np.abs(np.asarray(f.image, np.int16) - np.asarray(by_t[f.t].image, np.int16)).max())
        for f in fast
        if f.t in by_t
    ]
    return {
        "noref": [(f.t, f.kind) for f in fast],
        "full": [(f.t, f.kind) for f in full],
        "max_pixel_diff_at_equal_t": max(diffs) if diffs else None,
    }


def main() -> None:
    """Draw the shorts, measure every variant, print a table (and JSON with ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/decode-probe"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    shorts = make_shorts(args.work)
    pcfg = ProcessConfig()
    step = pcfg.frame_interval_s
    results: dict[str, Any] = {"variants": {}, "shorts": [p.name for p in shorts]}
    for label, argv in _variants(pcfg.frame_short_side, step).items():
        per = [_measure(lambda p=p, a=argv: _run_ffmpeg(a, p), args.reps) for p in shorts]
        n = [_run_ffmpeg(argv, p) for p in shorts]
        cpu = statistics.mean(r["ffmpeg_cpu_s"] for r in per)
        results["variants"][label] = {"ffmpeg_cpu_s": cpu, "frames_out": n}
        print(f"{label:<38} ffmpeg {cpu:5.2f} CPU s/short  frames out {n}", flush=True)
    e2e = [_measure(lambda p=p: frames_mod.sample_frames(p, pcfg), args.reps) for p in shorts]
    summary = {k: statistics.mean(r[k] for r in e2e) for k in e2e[0]}
    results["sample_frames"] = summary
    print(
        f"{'sample_frames end to end':<38} ffmpeg {summary['ffmpeg_cpu_s']:5.2f} + python "
        f"{summary['py_cpu_s']:.2f} CPU s/short, wall {summary['wall_s']:.2f} s"
    )
    img = frames_mod.sample_frames(shorts[0], pcfg)[0].image
    t0 = time.process_time()
    for _ in range(50):
        pdq(img)
    results["pdq_ms"] = (time.process_time() - t0) / 50 * 1000
    print(f"PDQ of one {img.size} frame: {results['pdq_ms']:.2f} ms CPU")
    results["compare"] = {p.name: _compare(p, pcfg) for p in shorts}
    for name, cmp in results["compare"].items():
        print(f"{name}: noref {cmp['noref']}")
        print(f"{'':>{len(name)}}  full  {cmp['full']}")
        print(f"{'':>{len(name)}}  max pixel diff at equal t: {cmp['max_pixel_diff_at_equal_t']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
