"""Run the benchmarks and write ``bench/results/latest.json`` and ``latest.md``.

    python -m bench.run             # full: about 20-30 minutes on 2 cores
    python -m bench.run --quick     # smoke run: small set, small shorts, 100k-vector index
    python -m bench.run --only quality,index --work /tmp/bench-work   # keep/reuse media

Sections: ``quality`` (:mod:`bench.quality`), ``throughput`` (:mod:`bench.throughput`),
``registry`` (:mod:`bench.geometric_scale`, copy verification against registry size),
``index`` (:mod:`bench.index_scale`, one child process per size), ``cluster``
(:mod:`bench.cluster`), ``desk`` (:mod:`bench.desk`, the review desk's page latency). The
markdown table is printed at the end; it is the README's results section.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image

from bench.samestyle import GOALS, KIND_LABELS, MAX_STRANGERS_PER_1000, STRANGER_KINDS

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("samestyle", "quality", "throughput", "registry", "index", "cluster", "desk")
INDEX_RUNS_FULL = (
    (1_000_000, "compressed"),
    (1_000_000, "archive"),
    (10_000_000, "compressed"),
    (10_000_000, "archive"),
)
INDEX_RUNS_QUICK = ((100_000, "compressed"), (100_000, "archive"))
INDEX_DIM = 512


class LoadSampler:
    """Samples the 1-minute load average every few seconds while the benchmark runs."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="load-sampler")

    @staticmethod
    def read() -> float | None:
        try:
            return float(Path("/proc/loadavg").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            v = self.read()
            if v is not None:
                self.samples.append(v)
            self._stop.wait(self.every_s)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def summary(self) -> dict[str, float | None]:
        s = self.samples
        return {
            "mean": round(sum(s) / len(s), 2) if s else None,
            "max": round(max(s), 2) if s else None,
        }


def machine_info() -> dict[str, Any]:
    """CPU, memory and software versions, for reading the numbers."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        from pipeline import regions
        from pipeline.embedders.base import cpu_has_bf16

        info["cpu_bf16"] = cpu_has_bf16()
        info["regions_version"] = getattr(regions, "VERSION", None)
        info["regions_on_360x640"] = len(regions.regions(Image.new("RGB", (360, 640))))
    except ImportError:
        pass
    for mod in ("torch", "faiss", "open_clip", "numpy"):
        try:
            info[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):
            info[mod] = None
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        if rev.returncode == 0:
            info["commit"] = rev.stdout.strip()
        st = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        if st.returncode == 0:
            info["modified_files"] = [ln[3:] for ln in st.stdout.splitlines() if ln.strip()]
    except OSError:
        pass
    return info


def run_index(
    work: Path,
    runs: tuple[tuple[int, str], ...],
    queries: int,
) -> dict[str, Any]:
    """One child process per (size, scheme), so each one's memory is its own."""
    out: dict[str, Any] = {"sizes": []}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    for n, scheme in runs:
        print(f"index: {n:,} vectors, {scheme} scheme", flush=True)
        path = work / f"index-{n}-{scheme}.json"
        cmd = [sys.executable, "-m", "bench.index_scale", "--n", str(n), "--scheme", scheme]
        cmd += ["--dim", str(INDEX_DIM), "--queries", str(queries), "--json", str(path)]
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, timeout=1800)
        if proc.returncode != 0 or not path.is_file():
            err = proc.stderr.decode("utf-8", "replace").strip()[-1500:]
            out["sizes"].append(
                {"vectors": n, "scheme": scheme, "error": f"exit {proc.returncode}: {err}"}
            )
        else:
            out["sizes"].append(json.loads(path.read_text()))
    return out


# ---------------------------------------------------------------------------------------------
# the markdown table


def _f(v: Any, digits: int = 2, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}{unit}"
    if isinstance(v, int):
        return f"{v:,}{unit}"
    return f"{v}{unit}"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def cpu_bound(case: dict[str, Any], results: dict[str, Any]) -> float | None:
    """Shorts per minute the case's CPU time allows on all cores of an idle machine (an upper
    bound when other jobs slowed the measured run; the measured number is the one judged)."""
    per = case.get("cpu_s_per_short")
    cpus = (results.get("machine") or {}).get("cpus") or 1
    return round(60.0 * cpus / per, 1) if per else None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 8 (and the detection goals of detection.md section 12) next to the
    measured value."""
    out: list[dict[str, Any]] = []
    tp = results.get("throughput") or {}
    cases = tp.get("cases", {})
    q = results.get("quality") or {}
    sig = q.get("signals", {})
    full = results.get("mode") == "full"
    shorts = tp.get("shorts", {})
    what = f"{_f(shorts.get('duration_s'), 0)} s {shorts.get('width')}x{shorts.get('height')}"
    for spec, target in (("effnet-lite0", 100.0), ("clip:ViT-B-32:none", 40.0)):
        c = cases.get(spec)
        if c is None:
            continue
        v = c.get("shorts_per_min")
        bound = cpu_bound(c, results)
        out.append(
            {
                "target": f">= {target:g} shorts/min with {spec.split(':')[0]}"
                + ("-ViT-B-32" if spec.startswith("clip") else "")
                + f" ({what} shorts, end to end)",
                "measured": f"{_f(v, 1)} shorts/min"
                + ("" if bound is None else f" ({_f(bound, 1)} from its CPU time on idle cores)"),
                "met": None if v is None or not full else v >= target,
            }
        )
    ratio = tp.get("ratio_vs_naive")
    if ratio is not None:
        fused = sig.get("fused", {}).get("recall_at_p90")
        naive = sig.get("naive_full_frame", {}).get("recall_at_p90")
        recall_ok = None if fused is None or naive is None else fused >= naive
        rec = "" if recall_ok is None else f"; R@P90 {_f(fused)} vs naive {_f(naive)}"
        out.append(
            {
                "target": ">= 3x the naive baseline at equal or better recall",
                "measured": f"{_f(ratio)}x (effnet-lite0, the default){rec}",
                "met": (ratio >= 3.0 and recall_ok is not False) if full else None,
            }
        )
    rss = [c.get("peak_rss_mb") for c in cases.values() if c.get("queued")]
    rss = [r for r in rss if r is not None]
    if rss:
        queued = max(c.get("queued", 0) for c in cases.values())
        out.append(
            {
                "target": f"peak RSS < 2 GB with {queued:,} queued videos",
                "measured": f"{_f(max(rss) / 1024, 2)} GB (worker process, worst case)",
                "met": max(rss) < 2048 if full else None,
            }
        )
    for size in (results.get("index") or {}).get("sizes", []):
        if "chosen" not in size:
            continue
        ms = size["chosen"]["ms_per_query_median"]
        if (size["vectors"] >= 10_000_000 or not full) and size.get("scheme") == "archive":
            out.append(
                {
                    "target": f"archive search < 20 ms/query at {size['vectors']:,} vectors",
                    "measured": f"{_f(ms, 2)} ms with {size['index']} (recall@10 "
                    f"{_f(size['chosen']['recall_at_10'])}, "
                    f"{_f(size['index_mb'] / 1024, 2)} GB)",
                    "met": ms < 20.0 if full else None,
                }
            )
    out += samestyle_targets(results.get("samestyle") or {})
    for size in (results.get("desk") or {}).get("sizes", []):
        out.append(
            {
                "target": f"review desk: every page < 1 s with {size['flags']:,} flags",
                "measured": f"worst p95 {_f(size['worst_p95_ms'], 0)} ms",
                "met": size["met"] if size["flags"] >= 10_000 or full else None,
            }
        )
    if "fused" in sig:
        f = sig["fused"]
        out.append(
            {
                "target": "no false flag on unrelated videos (detection.md s12)",
                "measured": f"{_f(f.get('fp_per_1000_negative_videos'), 1)} per 1,000 "
                f"({f.get('negative_videos')} negative videos)",
                "met": f.get("fp_per_1000_negative_videos") == 0,
            }
        )
        for group, goal in (("easy", 0.95), ("hard", 0.8)):
            g = q.get("groups", {}).get(group, {}).get("fused")
            if g is None:
                continue
            v = g["recall_at_global_p90_threshold"]
            out.append(
                {
                    "target": f"recall >= {goal} at P90 on {group} transformations "
                    "(detection.md s12)",
                    "measured": f"{_f(v)}",
                    "met": v >= goal,
                }
            )
    return out


def render_markdown(results: dict[str, Any]) -> str:
    """The results section: targets, detection quality, throughput, archive index."""
    m = results.get("machine", {})
    load = results.get("load_average", {})
    lines = ["## Benchmark results", ""]
    lines.append(
        f"`python -m bench.run{' --quick' if results.get('mode') == 'quick' else ''}` "
        f"({results.get('mode')} mode), {results.get('started_at', '')[:16].replace('T', ' ')} "
        f"UTC, commit {m.get('commit', 'n/a')}"
        + (" with local changes" if m.get("modified_files") else "")
        + f": {m.get('cpus')} cores "
        f"({m.get('cpu', 'unknown CPU')}), {m.get('memory_gib')} GiB; torch {m.get('torch')}, "
        f"faiss {m.get('faiss')}. Took {_f(results.get('total_s', 0) / 60, 1)} min."
    )
    if load.get("mean") is not None:
        # the benchmark keeps every core busy itself (model threads plus ffmpeg children)
        busy = load["mean"] > (m.get("cpus") or 1) * 1.5
        lines.append(
            f"Load average during the run: mean {load['mean']}, max {load['max']}"
            + (
                " (more than the benchmark's own load: other jobs shared the CPU, so timings "
                "are pessimistic)."
                if busy
                else " (the benchmark's own load)."
            )
        )
    lines.append("")
    t = targets(results)
    if t:
        lines += ["### Targets", ""]
        if results.get("mode") == "quick":
            lines += [
                "Quick mode: smaller shorts, queue and index than the targets assume, so "
                "throughput, memory and index targets are not judged; run the full mode.",
                "",
            ]
        lines += _table(
            ["Target", "Measured", "Met"], [[x["target"], x["measured"], _met(x["met"])] for x in t]
        )
        lines.append("")
    if "samestyle" in results:
        lines += _samestyle_md(results["samestyle"])
    if "quality" in results:
        lines += _quality_md(results["quality"])
    if "throughput" in results:
        lines += _throughput_md(results["throughput"], results)
    if "registry" in results:
        lines += _registry_md(results["registry"])
    if "index" in results:
        lines += _index_md(results["index"])
    if "cluster" in results:
        from bench.cluster import cluster_md

        lines += cluster_md(results["cluster"])
    if "desk" in results:
        from bench.desk import desk_md

        lines += desk_md(results["desk"])
    return "\n".join(lines).rstrip() + "\n"


SAMESTYLE_PLURALS = {"copy": "copies", "new drawing": "new drawings"}


def _strangers(prod: dict[str, Any]) -> tuple[int, int]:
    """``(flagged, videos)`` of a breakdown's unregistered and look-alike videos."""
    kinds = prod.get("kinds", {})
    strangers = [kinds[KIND_LABELS[k]] for k in STRANGER_KINDS if KIND_LABELS[k] in kinds]
    return sum(k["false_flag_videos"] for k in strangers), sum(k["videos"] for k in strangers)


def samestyle_targets(ss: dict[str, Any]) -> list[dict[str, Any]]:
    """The same-style goals next to the production decision on the report seed; the
    precision goals count the unseen family's report seed too, where it was run."""
    prod = ss.get("production") or {}
    kinds = prod.get("kinds", {})
    unseen = (ss.get("unseen_family") or {}).get("production") or {}
    unseen_seed = (ss.get("unseen_family") or {}).get("set", {}).get("family_seed")
    out: list[dict[str, Any]] = []
    for key, (rec, prec) in GOALS.items():
        kind = KIND_LABELS[key]
        plural = SAMESTYLE_PLURALS[kind]
        k = kinds.get(kind)
        if not k:
            continue
        r, pp = k.get("recall"), k.get("pair_precision")
        out.append(
            {
                "target": f"same style, {plural}: recall >= {rec:g} at precision >= {prec:g}",
                "measured": f"recall {_f(r)} at precision {_f(pp)}",
                "met": None if r is None else r >= rec and (pp or 0) >= prec,
            }
        )
    flagged, videos = _strangers(prod)
    if videos:
        per = 1000.0 * flagged / videos
        measured = f"{_f(per, 1)} per 1,000 ({flagged} of {videos})"
        uf, uv = _strangers(unseen)
        if uv:
            per = 1000.0 * (flagged + uf) / (videos + uv)
            measured += f"; family {unseen_seed}: {uf} of {uv}; both: {_f(per, 1)} per 1,000"
        out.append(
            {
                "target": "same style: <= 10 of 1,000 unregistered or look-alike videos flagged",
                "measured": measured,
                "met": per <= MAX_STRANGERS_PER_1000,
            }
        )
    wrong = (prod.get("all") or {}).get("wrong_character")
    if wrong is not None:
        measured = f"{wrong} videos"
        uw = (unseen.get("all") or {}).get("wrong_character")
        if uw is not None:
            measured += f" (family {unseen_seed}: {uw})"
            wrong += uw
        out.append(
            {
                "target": "same style: no positive video flagged as another character",
                "measured": measured,
                "met": wrong == 0,
            }
        )
    return out


def _samestyle_md(ss: dict[str, Any]) -> list[str]:
    s = ss.get("set", {})
    f = ss.get("fused", {})
    lines = [
        "### Same-style characters",
        "",
        f"{s.get('videos')} videos ({s.get('clip')}; seed {s.get('seed')}, thresholds chosen "
        f"on seed {(ss.get('tuned') or {}).get('tune_seed', 'n/a')}): eight registered "
        f"characters of one generated family (family seed {s.get('family_seed')}), one house "
        f"style, {s.get('references_per_character')} reference pictures each; copies of "
        "reference art and new drawings in other poses as positives; unregistered members of "
        "the same family, look-alikes and scenes as negatives "
        f"({', '.join(f'{k} {v}' for k, v in (s.get('videos_by_kind') or {}).items())}). "
        f"Embedder {s.get('embedder')}, {s.get('frames_per_video')} frames per video, "
        f"{s.get('regions_per_frame')} regions per frame. Fused micro-AP {_f(f.get('micro_ap'))}.",
        "",
    ]
    blocks = [("production decision", ss.get("production"))]
    tuned = ss.get("tuned") or {}
    if tuned.get("threshold") is not None and "all" in tuned:
        blocks.append(
            (f"threshold at P90 on seed {tuned['tune_seed']} ({_f(tuned['threshold'], 3)})", tuned)
        )
    for title, b in blocks:
        if not b:
            continue
        lines += [f"{title}:", ""]
        named = [("all", b["all"]), *b["kinds"].items(), *b["transforms"].items()]
        lines += _breakdown_table(named)
        lines.append("")
    lines += _unseen_family_md(ss.get("unseen_family") or {})
    lines += _ceiling_md(ss)
    ep = ss.get("estimated_precision")
    if ep:
        fitted = ", ".join(f"{n} {t}" for t, n in ep["tune_flags"].items()) or "none"
        lines += [
            f"Estimated precision (each flag's, as the matcher writes it), fitted on the tune "
            f"seed's flags ({fitted}; the truth standing in for analysts' verdicts; a match "
            "type needs 20) and read on this seed's: "
            f"{ep['report_flags_estimated']} of {ep['report_flags']} flags estimated, mean "
            f"estimate {_f(ep['mean_estimate'])} against {_f(ep['right'])} right, calibration "
            f"error {_f(ep['calibration_error'])}.",
            "",
        ]
        if ep["bins"]:
            lines += _table(
                ["estimate", "flags", "mean estimate", "right"],
                [
                    [b["bin"], str(b["flags"]), _f(b["mean_estimate"]), _f(b["right"])]
                    for b in ep["bins"]
                ],
            )
            lines.append("")
    return lines


def _breakdown_table(named: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """A same-style breakdown's ``(name, figures)`` rows as a table."""
    rows = [
        [
            name,
            str(t["videos"]),
            _f(t["recall"]),
            _f(t["pair_precision"]),
            str(t["wrong_character"]),
            _f(t["fp_per_1000_negative_videos"], 1),
            _f(t["micro_ap"], 3),
        ]
        for name, t in named
    ]
    return _table(
        ["Videos", "n", "recall", "precision", "wrong character", "FP/1k neg.", "µAP"], rows
    )


def _ceiling_md(ss: dict[str, Any]) -> list[str]:
    """Per positive kind, the best one threshold could do on the report seed itself: the floor
    that the score's ranking leaves, apart from the choice of threshold."""
    sets = [(f"seed {(ss.get('set') or {}).get('seed')}", ss)]
    u = ss.get("unseen_family") or {}
    if u.get("ceiling"):
        sets.append((f"family {(u.get('set') or {}).get('family_seed')}", u))
    rows = []
    for name, res in sets:
        kinds = (res.get("production") or {}).get("kinds", {})
        for signal, per_kind in (res.get("ceiling") or {}).items():
            for kind, c in per_kind.items():

                def cell(b: dict[str, Any]) -> str:
                    if b.get("threshold") is None:
                        return "none"
                    return (
                        f"{_f(b['recall'])} (at {_f(b['threshold'], 3)}; "
                        f"{b['negatives_flagged']} negatives flagged)"
                    )

                rows.append(
                    [
                        name,
                        kind,
                        signal,
                        _f((kinds.get(kind) or {}).get("recall")) if signal == "fused" else "-",
                        f">= {c['precision_goal']:g}: {cell(c['best'])}",
                        cell(c["best_all_goals"]),
                    ]
                )
    if not rows:
        return []
    return [
        "The best one threshold could do (chosen on the very videos it is scored on, so an "
        "upper bound no tuning can pass): per kind, over that kind's videos and every negative "
        "video, the highest recall at the kind's precision goal, and with every same-style goal "
        "at once (no wrong character, at most 10 of 1,000 strangers and look-alikes flagged). "
        "`fused` is the matcher's ranking (flags above non-flags), `embedding` the embedding "
        "signal's score alone:",
        "",
        *_table(
            [
                "Set",
                "kind",
                "score",
                "recall (production)",
                "best recall at precision goal",
                "best recall, every goal",
            ],
            rows,
        ),
        "",
    ]


def _unseen_family_md(u: dict[str, Any]) -> list[str]:
    """The unseen family's report seed at the production decision, per kind."""
    b = u.get("production")
    if not b:
        return []
    s = u.get("set", {})
    return [
        f"Another family (family seed {s.get('family_seed')}: eight other characters of the same "
        f"house style, same seed {s.get('seed')}, same production decision), never used for a "
        f"choice; fused micro-AP {_f((u.get('fused') or {}).get('micro_ap'))}:",
        "",
        *_breakdown_table([("all", b["all"]), *b["kinds"].items()]),
        "",
    ]


def _quality_md(q: dict[str, Any]) -> list[str]:
    s = q.get("set", {})
    lines = [
        "### Detection quality",
        "",
        f"{s.get('videos')} videos ({s.get('clip')}): {s.get('positive_videos')} show a "
        f"registered character ({s.get('base_clips', {}).get('registered')} base clips: "
        + (
            "new renders and re-uploads of reference art"
            if "art" in q.get("kinds", {})
            else "new renders"
        )
        + f"), {s.get('negative_videos')} do not "
        f"(look-alike characters and empty scenes), each base clip under "
        f"{len(s.get('transforms', {}))} transformations; embedder {s.get('embedder')}, "
        f"{s.get('frames_per_video')} frames per video and "
        f"{s.get('regions_per_frame')} region embeddings per frame, "
        f"{s.get('references_per_character')} reference pictures per character. Scores per "
        "(video, registered character) pair; micro-AP over all pairs; R@P90 = recall at "
        "precision 0.9 (threshold in the signal's unit); production = the matcher's decision "
        f"(embedding threshold {s.get('embed_threshold')}, PDQ distance <= "
        f"{s.get('pdq_max_distance')}, {s.get('min_frames')} frames); FP/1k = negative videos "
        "flagged per 1,000.",
        "",
    ]
    if s.get("failed_videos"):
        lines += [f"{len(s['failed_videos'])} videos failed to process: {s.get('errors')}", ""]
    rows = []
    for name, v in q.get("signals", {}).items():
        rows.append(
            [
                name,
                _f(v.get("micro_ap"), 3),
                _f(v.get("recall_at_p90")),
                _f(v.get("threshold_at_p90"), 3),
                _f(v.get("recall_at_production")),
                _f(v.get("precision_at_production")),
                _f(v.get("fp_per_1000_negative_videos"), 1),
            ]
        )
    lines += _table(
        ["Signal", "µAP", "R@P90", "threshold", "recall (production)", "precision (production)",
         "FP/1k negative videos"],
        rows,
    )  # fmt: skip
    lines.append("")
    kinds = q.get("kinds", {})
    if kinds:
        rows = []
        for kind, v in kinds.items():
            rows.append(
                [
                    {"render": "new renders", "art": "re-uploaded reference art"}.get(kind, kind),
                    str(v.get("positive_pairs")),
                    *[
                        _f(v.get(sig, {}).get("recall_at_production"))
                        for sig in ("fused", "pdq", "embedding")
                    ],
                ]
            )
        lines += _table(
            ["Positives", "pairs", "fused recall", "PDQ recall", "embedding recall"], rows
        )
        lines.append("")
    rows = []
    for name, v in q.get("transforms", {}).items():
        fu, pd, em = v.get("fused", {}), v.get("pdq", {}), v.get("embedding", {})
        na = v.get("naive_full_frame", {})
        rows.append(
            [
                name,
                v.get("group", ""),
                f"{v.get('positive_videos')}/{v.get('negative_videos')}",
                f"{_f(fu.get('micro_ap'), 3)} / {_f(fu.get('recall_at_p90'))}",
                _f(fu.get("recall_at_production")),
                _f(fu.get("fp_per_1000_negative_videos"), 1),
                f"{_f(pd.get('micro_ap'), 3)} / {_f(pd.get('recall_at_production'))}",
                f"{_f(em.get('micro_ap'), 3)} / {_f(em.get('recall_at_production'))}",
                f"{_f(na.get('micro_ap'), 3)} / {_f(na.get('recall_at_p90'))}",
            ]
        )
    lines += _table(
        ["Transformation", "group", "pos/neg videos", "fused µAP / R@P90",
         "fused recall (prod.)", "fused FP/1k", "PDQ µAP / recall", "embedding µAP / recall",
         "naive µAP / R@P90"],
        rows,
    )  # fmt: skip
    lines.append("")
    return lines


def _throughput_md(tp: dict[str, Any], results: dict[str, Any]) -> list[str]:
    sh = tp.get("shorts", {})
    lines = [
        "### Throughput",
        "",
        f"{tp.get('videos_per_case')} shorts per case ({_f(sh.get('duration_s'), 0)} s, "
        f"{sh.get('width')}x{sh.get('height')}, {sh.get('fps')} fps, "
        f"{sh.get('distinct_files')} distinct files) through fixture server -> crawl "
        f"({tp.get('queued'):,} queued) -> download -> frames -> embed -> match -> report, "
        "in a fresh process per case; crawl time pro-rated to the shorts processed. The naive "
        "baseline reads the same files from disk (every frame at 1 fps, one image at a time "
        "through open_clip ViT-B-32 fp32). Shorts/min from CPU time = 60 x cores / CPU "
        "seconds per short (the process and its ffmpeg children, crawl pro-rated, model "
        "loading included): what the same work allows on otherwise idle cores. The time "
        "split is the seconds each stage was busy; stages overlap (downloads and frame "
        "sampling on threads of their own, matching on its own thread beside the whole "
        "loop), so it does not add up to the total.",
        "",
    ]
    rows = []
    for name, c in tp.get("cases", {}).items():
        if "error" in c:
            rows.append([name, "error", "", "", "", "", "", ""])
            continue
        sec = c.get("seconds", {})
        loop = sec.get("loop", {}) if isinstance(sec, dict) else {}
        split = (
            f"dl {_f(loop.get('download'), 0)} / frames {_f(loop.get('frames'), 0)} / "
            f"embed {_f(loop.get('embed'), 0)} / match {_f(sec.get('match'), 0)} s"
            if loop
            else f"decode {_f(sec.get('decode'), 0)} s of {_f(sec.get('total'), 0)} s"
        )
        rows.append(
            [
                name,
                _f(c.get("shorts_per_min"), 1),
                _f(c.get("process_shorts_per_min"), 1),
                _f(c.get("frames_per_short"), 1),
                split,
                _f(c.get("peak_rss_mb"), 0),
                _f(c.get("cpu_s_per_short"), 2),
                _f(cpu_bound(c, results), 1),
            ]
        )
    lines += _table(
        ["Case", "shorts/min (end to end)", "shorts/min (process job)", "frames/short",
         "time split", "peak RSS MB", "CPU s/short", "shorts/min from CPU time"],
        rows,
    )  # fmt: skip
    for spec, r in (tp.get("ratios_vs_naive") or {}).items():
        lines += [
            "",
            f"{spec} pipeline vs naive baseline: {_f(r.get('end_to_end'))}x end to end, "
            f"{_f(r.get('process_only'))}x for the process job alone (both include start-up: "
            "imports, model loading, references).",
        ]
    rows = []
    for name, c in tp.get("cases", {}).items():
        st = c.get("stages")
        if not st or "embed_frames_per_s" not in st:  # the naive loop has its CPU split only
            continue
        rows.append(
            [
                name,
                _f(st.get("decode_source_frames_per_s"), 0),
                _f(st.get("decode_sampled_frames_per_s"), 1),
                _f(st.get("hash_frames_per_s"), 0),
                f"{_f(st.get('embed_frames_per_s'), 1)} ({_f(st.get('embed_images_per_s'), 1)} "
                "regions/s)",
                _f(st.get("search_frames_per_s"), 0),
            ]
        )
    if rows:
        lines += [""]
        lines += _table(
            ["Stage frames/s", "decode (source frames)", "decode (sampled)", "PDQ hash",
             "embed", "index search + fusion"],
            rows,
        )  # fmt: skip
    lines += _cpu_floor_md(tp)
    lines.append("")
    return lines


_CPU_STAGES = (
    ("download", "download"),
    ("decode", "decode + sample"),
    ("hash", "PDQ hash"),
    ("embed", "embed"),
    ("load", "load evidence"),
    ("signals", "signals"),
    ("fusion", "fusion"),
)


def _cpu_floor_md(tp: dict[str, Any]) -> list[str]:
    """CPU seconds per short of each stage, measured one stage at a time, and what they
    leave for the ratio to the naive loop."""
    cases = tp.get("cases", {})
    rows = []
    for name, c in cases.items():
        cpu = (c.get("stages") or {}).get("cpu_s_per_short")
        if not cpu:
            continue
        sig = (c.get("stages") or {}).get("signal_cpu_s_per_short") or {}
        parts = ", ".join(f"{k} {_f(v, 2)}" for k, v in sig.items() if v >= 0.005)
        cells = [_f(cpu.get(k), 2) if k in cpu else "-" for k, _ in _CPU_STAGES]
        if parts and "signals" in cpu:
            cells[5] += f" ({parts})"
        rows.append([name, *cells, _f(sum(cpu.values()), 2), _f(c.get("cpu_s_per_short"), 2)])
    if not rows:
        return []
    lines = [
        "",
        "CPU seconds per short, stage by stage (each stage run alone on the same files after "
        "the measured run; the whole run's figure also holds start-up, the crawl's share, "
        "the database and waiting threads):",
        "",
    ]
    lines += _table(
        ["Case", *(t for _, t in _CPU_STAGES), "sum of stages", "whole run"], rows
    )  # fmt: skip
    naive = cases.get("naive", {})
    base = (cases.get("effnet-lite0", {}).get("stages") or {}).get("cpu_s_per_short") or {}
    steady = sum(((naive.get("stages") or {}).get("cpu_s_per_short") or {}).values())
    if naive.get("cpu_s_per_short") and steady and base.get("embed"):
        must = base.get("embed", 0.0) + base.get("decode", 0.0) + base.get("download", 0.0)
        lines += [
            "",
            f"Floor: download, decoding and embedding alone cost the default pipeline "
            f"{_f(must, 2)} CPU s per short (embedding {_f(base['embed'], 2)}). The naive loop "
            f"costs {_f(steady, 2)} per short in its own stages, {_f(naive['cpu_s_per_short'], 2)}"
            " with its start-up. With every other stage free, the pipeline could be at most "
            f"{_f(steady / must, 2)}x the naive loop in steady state "
            f"({_f(naive['cpu_s_per_short'] / must, 2)}x counting the naive loop's start-up).",
        ]
    return lines


def _damaged_cell(r: dict[str, Any]) -> str:
    """``"n of m (blur a, ...)"`` for a registry row; "n/a" for results without them."""
    if "damaged" not in r:
        return "n/a"
    kinds = ", ".join(f"{k} {v}" for k, v in r.get("damaged_by_kind", {}).items())
    return f"{r['damaged_verified']} of {r['damaged']}" + (f" ({kinds})" if kinds else "")


def _registry_md(rg: dict[str, Any]) -> list[str]:
    frames = ", ".join(f"{n} {k}" for k, n in rg.get("frames", {}).items())
    lines = [
        "### Copy verification against registry size",
        "",
        f"The geometric signal on fixed frames ({frames}) against registries of same-style "
        "characters, 4 reference pictures each (`bench/geometric_scale.py`). Exact search "
        f"up to {_f(rg.get('exact_limit'))} reference descriptors, the inverted file above "
        "(production: the row marked *). Time per frame: keypoints, search, RANSAC fits and "
        "pixel checks, one thread. Damaged copies: the same pictures pasted again, then the "
        "frame blurred, halved at a low JPEG quality, colour-graded, captioned across the copy "
        "or grained (counts per damage in brackets). What copy verification does about "
        "damage was chosen on another seed's frames. "
        "Build s: training the search; in brackets, reading the one stored with the index.",
        "",
    ]
    rows = [
        [
            _f(r["characters"]),
            _f(r["descriptors"]),
            r["search"] + (" *" if r.get("production") else ""),
            _f(r["build_s"], 1)
            + (f" (stored: {_f(r['load_s'], 2)})" if r.get("load_s") is not None else ""),
            _f(r["ms_per_frame"], 1),
            f"{r['copies_verified']} of {r['copies']}",
            _damaged_cell(r),
            _f(r["wrong_character"]),
            _f(r["non_copies_verified"]),
        ]
        for r in rg.get("rows", [])
    ]
    lines += _table(
        ["Characters", "descriptors", "search", "build s", "ms/frame", "copies verified",
         "damaged copies verified", "wrong character", "non-copies verified"],
        rows,
    )  # fmt: skip
    lines.append("")
    return lines


def _index_md(ix: dict[str, Any]) -> list[str]:
    lines = [
        "### Archive index",
        "",
        "Synthetic L2-normalised 512-d frame vectors (16 frames per video, clustered); queries "
        "are new frames of archived videos; exact = brute-force inner product over all vectors. "
        "One query at a time, all cores. Scheme `archive`: what `index/archive.py` builds "
        "(IVF-SQ8 up to 2M vectors, IVF-PQ above, with its own nlist and nprobe; its PQ search "
        "also re-ranks 4 x k candidates by the stored vectors, not measured here); "
        "`compressed`: the same codes with power-of-two nlist and the fastest nprobe that "
        "keeps recall@10 >= 0.8 and the nearest neighbour in the top 10 for 95 % of queries.",
        "",
    ]
    rows = []
    for s in ix.get("sizes", []):
        if "error" in s:
            rows.append([_f(s.get("vectors")), s.get("scheme", ""), "error"] + [""] * 7)
            continue
        c = s["chosen"]
        rows.append(
            [
                _f(s["vectors"]),
                s.get("scheme", ""),
                s["index"],
                _f(s["bytes_per_vector"]),
                f"{_f(s['index_mb'], 0)} (flat: {_f(s['exact_flat_mb'], 0)})",
                _f(c.get("nprobe")),
                _f(c["recall_at_10"], 3),
                _f(c["nn_in_top10"], 3),
                f"{_f(c['ms_per_query_median'], 2)} / {_f(c['ms_per_query_p95'], 2)}",
                _f(s.get("exact_ms_per_query_batched"), 1),
            ]
        )
    lines += _table(
        ["Vectors", "scheme", "index", "bytes/vector", "index MB", "nprobe", "recall@10",
         "NN in top 10", "ms/query median / p95", "exact ms/query (batched)"],
        rows,
    )  # fmt: skip
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.run", description="charwatch benchmarks (see bench/README.md)"
    )
    ap.add_argument("--quick", action="store_true", help="small smoke run (about 2 minutes)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma list of sections")
    ap.add_argument("--work", type=Path, help="keep generated media here (reused when rerun)")
    ap.add_argument("--seed", type=int, default=20251124, help="seed of the quality set")
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section {unknown[0]!r} (known: {', '.join(SECTIONS)})")

    work = args.work or Path(tempfile.mkdtemp(prefix="charwatch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "sections_s": {},
    }
    pairs: list[dict[str, Any]] = []
    try:
        with LoadSampler() as load:
            for section in SECTIONS:
                if section not in only:
                    continue
                ts = time.perf_counter()
                if section == "samestyle":
                    from bench.samestyle import (
                        REPORT_SEED,
                        TUNE_SEED,
                        UNSEEN_FAMILY_SEED,
                        run_samestyle,
                    )

                    ss = run_samestyle(  # quick: no tune set (a smoke run)
                        work / "samestyle",
                        seed=REPORT_SEED,
                        tune_seed=None if args.quick else TUNE_SEED,
                        quick=args.quick,
                    )
                    ss.pop("pairs", None)
                    ss.pop("tune_pairs", None)
                    if not args.quick:  # the same report seed drawn by another family
                        other = run_samestyle(
                            work / "samestyle-unseen",
                            seed=REPORT_SEED,
                            family_seed=UNSEEN_FAMILY_SEED,
                        )
                        ss["unseen_family"] = {
                            k: other[k]
                            for k in ("set", "fused", "production", "ceiling", "seconds")
                        }
                    results["samestyle"] = ss
                elif section == "quality":
                    from bench.quality import run_quality

                    q = run_quality(work / "quality", seed=args.seed, quick=args.quick)
                    pairs = q.pop("pairs", [])
                    results["quality"] = q
                elif section == "throughput":
                    from bench.throughput import run_throughput

                    results["throughput"] = run_throughput(work / "throughput", quick=args.quick)
                elif section == "registry":
                    from bench.geometric_scale import run_geometric_scale

                    results["registry"] = run_geometric_scale(quick=args.quick)
                elif section == "cluster":
                    from bench.cluster import run_cluster

                    results["cluster"] = run_cluster(work / "cluster", quick=args.quick)
                elif section == "desk":
                    from bench.desk import run_desk

                    results["desk"] = run_desk(work / "desk", quick=args.quick)
                else:
                    if args.quick:
                        results["index"] = run_index(work, INDEX_RUNS_QUICK, 50)
                    else:
                        results["index"] = run_index(work, INDEX_RUNS_FULL, 100)
                results["sections_s"][section] = round(time.perf_counter() - ts, 1)
        results["load_average"] = load.summary()
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    results["total_s"] = round(time.perf_counter() - t0, 1)
    md = render_markdown(results)
    from storage.files import atomic_write_text

    atomic_write_text(
        args.out / "latest.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n"
    )
    if pairs:
        atomic_write_text(
            args.out / "latest-pairs.json", json.dumps(pairs, ensure_ascii=False) + "\n"
        )
    atomic_write_text(args.out / "latest.md", md)
    print()
    print(md)
    print(f"written: {args.out / 'latest.json'}, {args.out / 'latest.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
