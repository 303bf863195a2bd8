"""Same-style detection quality: many characters drawn in one house style.

The registered characters are eight members of one :mod:`fixture_platform.family` (fixed family
seed), four reference pictures each. Positives are re-uploads of a reference picture (copies)
and new drawings in poses the references do not use (center, pan, zoom and small
picture-in-picture figures); negatives, more numerous, are unregistered members of the same
family, look-alikes of registered members, and scenes with no character. Every base clip goes
through one or two transformations of :mod:`bench.transforms`, and the videos are scored by the
same code as :mod:`bench.quality` (frame sampling, regions, embedder, real matcher).

Two set seeds share the registered characters: ``TUNE_SEED`` for choosing thresholds and
``REPORT_SEED`` for the reported numbers; ``UNSEEN_FAMILY_SEED`` draws another family, whose
report seed is scored too, so a choice that suits family 7 alone shows.

    python -m bench.samestyle --seed 2 --quick --work /tmp/ss --out results.json
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench import metrics
from bench import quality as q
from bench import transforms as tr
from storage.files import atomic_path

SAMESTYLE_VERSION = 1  # bump when the set's drawing changes (cached clips are redrawn)
FAMILY_SEED = 7
# a second family, reported beside the first and never used for a choice: eight characters the
# matcher's design was never looked at with (`make bench` runs it at the production decision)
UNSEEN_FAMILY_SEED = 13
TUNE_SEED = 1
REPORT_SEED = 2
REFS_PER_CHARACTER = 4
COPY = q.ART  # a re-upload of a reference picture
NEW = q.RENDER  # a new drawing in another pose
UNREGISTERED = "unregistered"  # an unregistered member of the same family
LOOKALIKE = "lookalike"  # copies a registered member's colour and two attributes
SCENE = q.SCENE  # no character
KINDS = (COPY, NEW, UNREGISTERED, LOOKALIKE, SCENE)
KIND_LABELS = {
    COPY: "copy",
    NEW: "new drawing",
    UNREGISTERED: "unregistered",
    LOOKALIKE: "look-alike",
    SCENE: "scene",
}
# per registered character: copies, new drawings; negatives: clips per unregistered member,
# per look-alike, scenes; transformations per base clip
QUICK = {"copies": 1, "new": 1, "unreg": 1, "look": 1, "scenes": 6, "per_base": 1, "dur": 2.0}
FULL = {"copies": 1, "new": 3, "unreg": 3, "look": 4, "scenes": 20, "per_base": 2, "dur": 4.0}
_CAPTIONS = (
    "best moments of the week",
    "sunset timelapse no filter",
    "POV: monday morning",
    "new recipe drop tonight",
    "wait for the end",
    "ranking every level",
)


def registered_family(family_seed: int = FAMILY_SEED) -> Any:
    """The family (the design was chosen on ``FAMILY_SEED``; any other seed draws new
    characters): 8 registered, 8 unregistered members, 4 look-alikes."""
    from fixture_platform.family import family

    return family(family_seed, 8, 8, 4)


def _new_poses(rng: random.Random, n: int = 3) -> tuple[int, ...]:
    """Poses no reference picture uses (references use poses 0-3 of ``reference_pose``)."""
    from fixture_platform.characters import POSE_COUNT
    from fixture_platform.family import reference_pose

    ref = {reference_pose(i) % POSE_COUNT for i in range(REFS_PER_CHARACTER)}
    pool = [p for p in range(3 * POSE_COUNT) if p % POSE_COUNT not in ref]
    return tuple(rng.sample(pool, n))


def build_samestyle_set(seed: int, quick: bool, family_seed: int = FAMILY_SEED) -> q.QualitySet:
    """The base clips and items for a set seed (deterministic; nothing is drawn yet). Items
    carry ``q.Item`` fields; base clip kinds are copy (``art``), new drawing (``render``),
    unregistered, lookalike or scene."""
    from fixture_platform.videos import BACKGROUNDS, VideoSpec

    plan = QUICK if quick else FULL
    fam = registered_family(family_seed)
    rng = random.Random(q._sub_seed(seed, "samestyle", SAMESTYLE_VERSION))
    dur = float(plan["dur"])
    transforms = tr.QUICK_TRANSFORMS if quick else tuple(tr.BY_NAME)

    def specs(char: str | None, layout: str, small: bool, caption: str = "") -> tuple[Any, Any]:
        if small or layout == "pip":
            scale = rng.uniform(0.24, 0.3)
        else:
            scale = {"center": rng.uniform(0.6, 0.85), "pan": rng.uniform(0.5, 0.7)}.get(
                layout, rng.uniform(0.4, 0.55)
            )
        common = {
            "seed": rng.getrandbits(31),
            "character": char,
            "background": rng.choice(BACKGROUNDS),
            "palette": rng.randrange(8),
            "poses": _new_poses(rng),
            "ui": rng.random() < 0.5,
            "caption": caption,
            "emojis": rng.choice((0, 0, 2, 4)) if caption else 0,
            "duration_s": dur,
            "fps": 12,
        }
        portrait = VideoSpec(layout=layout, scale=scale, scale_end=min(1.1, scale + 0.4), **common)
        landscape = VideoSpec(
            layout="pan" if layout == "pan" else "center",
            scale=rng.uniform(0.25, 0.3) if small else rng.uniform(0.45, 0.52),
            width=640,
            height=360,
            **common,
        )
        return portrait, landscape

    layouts = ("center", "pan", "zoom", "pip")
    bases: list[q.BaseClip] = []
    k = 0
    for ch in fam.registered:
        for i in range(int(plan["copies"])):
            bases.append(q.BaseClip(f"copy-{ch.key}-{i}", ch.key, COPY, None, None))
        for i in range(int(plan["new"])):
            layout = layouts[(k + rng.randrange(4)) % 4]
            p, land = specs(ch.sprite_key, layout, small=layout == "center" and rng.random() < 0.3)
            bases.append(q.BaseClip(f"new-{ch.key}-{i}", ch.key, NEW, p, land))
            k += 1
    for kind, members, n in (
        (UNREGISTERED, fam.unregistered, int(plan["unreg"])),
        (LOOKALIKE, fam.lookalikes, int(plan["look"])),
    ):
        for ch in members:
            for i in range(n):
                layout = rng.choice(layouts)
                p, land = specs(ch.sprite_key, layout, small=rng.random() < 0.2)
                bases.append(q.BaseClip(f"{kind}-{ch.key}-{i}", ch.key, kind, p, land))
    for i in range(int(plan["scenes"])):
        p, land = specs(None, "center", False, caption=rng.choice(_CAPTIONS))
        bases.append(q.BaseClip(f"scene-{i}", None, SCENE, p, land))
    fillers = [
        VideoSpec(seed=rng.getrandbits(31), background=bg, palette=rng.randrange(8), ui=False,
                  duration_s=dur, fps=12)
        for bg in ("room", "shapes", "noise")
    ]  # fmt: skip
    items: list[q.Item] = []
    per_base = int(plan["per_base"])
    order = {kind: rng.randrange(len(transforms)) for kind in KINDS}  # rotate within each kind
    for b in bases:
        for _ in range(per_base):
            t = transforms[order[b.kind] % len(transforms)]
            order[b.kind] += 1
            name = f"{b.key}__{t}"
            items.append(
                q.Item(
                    name=name,
                    base=b.key,
                    transform=t,
                    character=b.character if b.registered else None,
                    kind=b.kind,
                    seed=q._sub_seed(seed, "samestyle", name),
                )
            )
    size = q.SetSize(
        renders=int(plan["new"]),
        art=True,
        negatives=sum(not b.registered for b in bases),
        duration_s=dur,
        transforms=tuple(dict.fromkeys(it.transform for it in items)),
        spread=True,
    )
    return q.QualitySet(bases, fillers, items, size, seed)


def _paths(work: Path, qs: q.QualitySet, family_seed: int) -> dict[str, Path]:
    media = work / "media" / f"ss{SAMESTYLE_VERSION}-fam{family_seed}-seed{qs.seed}"
    media = media.with_name(f"{media.name}-{qs.size.duration_s:g}s")
    paths = {f"filler-{i}": media / "base" / f"filler-{i}.mp4" for i in range(len(qs.fillers))}
    for b in qs.bases:
        paths[f"{b.key}:portrait"] = media / "base" / f"{b.key}.mp4"
        paths[f"{b.key}:landscape"] = media / "base" / f"{b.key}-land.mp4"
    for it in qs.items:
        paths[it.name] = media / "items" / f"{it.name}.mp4"
    return paths


def write_family_references(out_dir: Path, family_seed: int = FAMILY_SEED) -> dict[str, list[Path]]:
    """PNG reference pictures 0-3 of each registered member; ``{key: [paths]}``."""
    from fixture_platform.family import family_reference

    out_dir.mkdir(parents=True, exist_ok=True)
    refs: dict[str, list[Path]] = {}
    for ch in registered_family(family_seed).registered:
        refs[ch.key] = []
        for i in range(REFS_PER_CHARACTER):
            path = out_dir / f"{ch.key}_{i:02d}.png"
            if not path.is_file():
                with atomic_path(path) as tmp:
                    family_reference(ch, i).save(tmp, format="PNG")
            refs[ch.key].append(path)
    return refs


def register_family(
    cfg: Any, store: Any, refs: dict[str, list[Path]], family_seed: int = FAMILY_SEED
) -> dict[str, int]:
    """Register the family's registered members with their references; ``{key: id}``."""
    from index import registry

    ids: dict[str, int] = {}
    for ch in registered_family(family_seed).registered:
        c = registry.add_character(
            cfg, store, ch.name, franchise="Charwatch Family", images=refs[ch.key]
        )
        ids[ch.key] = c.id
    return ids


def _process_set(
    work: Path, qs: q.QualitySet, refs: dict[str, list[Path]], embedder_spec: str, workers: int,
    precision: str, family_seed: int, reuse: bool = False,
) -> dict[str, q.Processed]:  # fmt: skip
    """Draw the base clips, then transform, sample and embed every item (worker processes);
    a copy re-uploads one of its character's reference pictures, picked by the seed.
    ``reuse``: keep the processed videos in ``work`` and read them back on the next run
    (for trying matching changes; the processing itself is then not re-measured)."""
    from index.refindex import embedder_slug

    def art(b: q.BaseClip) -> Path:
        return refs[str(b.character)][q._sub_seed(qs.seed, b.key) % REFS_PER_CHARACTER]

    timings: dict[str, float] = {}
    keep = work / f"processed-{embedder_slug(embedder_spec)}-{precision}.pickle"
    return q.processed_cache(
        keep,
        reuse,
        lambda: q.draw_and_process(
            work, qs, _paths(work, qs, family_seed), art, embedder_spec, workers, precision, timings
        ),
    )


# ---------------------------------------------------------------------------------------------
# scoring


def _video_flags(rows: Sequence[q.PairRow], thr: float | None) -> dict[str, dict[str, Any]]:
    """Per video: kind, true character, characters flagged (production, or score >= thr)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        v = out.setdefault(
            r.video, {"kind": r.kind, "transform": r.transform, "truth": None, "flagged": set()}
        )
        if r.label:
            v["truth"] = r.character
        hit = r.decisions.get("fused", False) if thr is None else r.scores["fused"] >= thr
        if hit:
            v["flagged"].add(r.character)
    return out


def _breakdown(rows: Sequence[q.PairRow], thr: float | None) -> dict[str, Any]:
    """Per kind and per transformation: videos, recall (right character flagged), wrong
    character flags, false flags per 1,000 negative videos, pair precision and micro-AP."""
    videos = _video_flags(rows, thr)

    def table(sel: Any) -> dict[str, Any]:
        vs = [v for v in videos.values() if sel(v)]
        pos = [v for v in vs if v["truth"]]
        neg = [v for v in vs if not v["truth"]]
        sub = [r for r in rows if sel(videos[r.video])]
        hit = [r.scores["fused"] >= thr if thr is not None else r.decisions.get("fused", False)
               for r in sub]  # fmt: skip
        c = metrics.decision_counts(hit, [r.label for r in sub])
        ap_rows = sub + [r for r in rows if r.negative_video and not sel(videos[r.video])]
        labels = [r.label for r in ap_rows]
        return {
            "videos": len(vs),
            "recall": round(sum(v["truth"] in v["flagged"] for v in pos) / len(pos), 4)
            if pos
            else None,
            "wrong_character": sum(bool(v["flagged"] - {v["truth"]}) for v in pos),
            "false_flag_videos": sum(bool(v["flagged"]) for v in neg),
            "fp_per_1000_negative_videos": round(
                metrics.per_thousand(sum(bool(v["flagged"]) for v in neg), len(neg)), 1
            )
            if neg
            else None,
            "pair_precision": round(c.precision, 4) if c.tp + c.fp else None,
            "micro_ap": round(metrics.micro_ap([r.scores["fused"] for r in ap_rows], labels), 4)
            if any(labels)
            else None,
        }

    out: dict[str, Any] = {"all": table(lambda v: True), "kinds": {}, "transforms": {}}
    for kind in KINDS:
        out["kinds"][KIND_LABELS[kind]] = table(lambda v, k=kind: v["kind"] == k)
    for t in dict.fromkeys(v["transform"] for v in videos.values()):
        out["transforms"][t] = table(lambda v, t=t: v["transform"] == t)
    return out


CEILING_SIGNALS = ("fused", "embedding")
# the goals: per positive kind (recall, pair precision); strangers (unregistered members
# and look-alikes) flagged per 1,000 at most
GOALS = {COPY: (0.95, 0.98), NEW: (0.80, 0.95)}
STRANGER_KINDS = (UNREGISTERED, LOOKALIKE)
MAX_STRANGERS_PER_1000 = 10.0


def ceiling(rows: Sequence[q.PairRow], signal: str = "fused") -> dict[str, Any]:
    """What any one threshold on ``signal``'s score could reach on these very rows, per
    positive kind: an upper bound on a threshold's choice (chosen on the videos it is scored
    on), so that the floor left by the score's ranking shows apart from the threshold.

    Per kind, over that kind's videos and every negative video: ``best``, the highest recall
    (videos whose character is flagged) at pair precision >= the kind's goal, and
    ``best_all_goals`` with no wrong character and at most :data:`MAX_STRANGERS_PER_1000`
    strangers flagged as well; each with its threshold and the negative videos flagged."""
    by_video: dict[str, list[q.PairRow]] = {}
    for r in rows:
        if signal in r.scores:
            by_video.setdefault(r.video, []).append(r)
    out: dict[str, Any] = {}
    for kind, (_, goal) in GOALS.items():
        vids = [v for v, rs in by_video.items() if rs[0].kind == kind]
        negs = [v for v, rs in by_video.items() if rs[0].negative_video]
        if not vids:
            continue
        strangers = sum(by_video[v][0].kind in STRANGER_KINDS for v in negs)
        cands = sorted({r.scores[signal] for v in vids + negs for r in by_video[v]}, reverse=True)
        best: dict[str, Any] = {"recall": 0.0, "threshold": None, "negatives_flagged": 0}
        best_all = dict(best)
        for t in cands:
            tp = fp = found = wrong = 0
            for v in vids:
                hits = [r for r in by_video[v] if r.scores[signal] >= t]
                found += any(r.label for r in hits)
                wrong += any(not r.label for r in hits)
                tp += sum(r.label for r in hits)
                fp += sum(not r.label for r in hits)
            flagged = [v for v in negs if any(r.scores[signal] >= t for r in by_video[v])]
            fp += sum(1 for v in negs for r in by_video[v] if r.scores[signal] >= t)
            if not tp or tp / (tp + fp) < goal:
                continue
            here = {
                "recall": round(found / len(vids), 4),
                "threshold": round(float(t), 4),
                "negatives_flagged": len(flagged),
            }
            if here["recall"] > best["recall"]:
                best = here
            n_str = sum(by_video[v][0].kind in STRANGER_KINDS for v in flagged)
            per = 1000.0 * n_str / strangers if strangers else 0.0
            if not wrong and per <= MAX_STRANGERS_PER_1000 and here["recall"] > best_all["recall"]:
                best_all = here
        out[KIND_LABELS[kind]] = {
            "videos": len(vids),
            "precision_goal": goal,
            "best": best,
            "best_all_goals": best_all,
        }
    return out


def _score_set(
    work: Path, seed: int, quick: bool, embedder_spec: str, workers: int, family_seed: int,
    reuse: bool = False,
) -> tuple[list[q.PairRow], dict[str, Any], q.QualitySet]:  # fmt: skip
    from charwatch.config import Config

    qs = build_samestyle_set(seed, quick, family_seed)
    cfg = Config()
    cfg.storage.data_dir = str(work / "data")
    n_pos = sum(1 for it in qs.items if it.character)
    print(f"samestyle seed {seed}: {len(qs.items)} videos ({n_pos} positive)", flush=True)
    refs = write_family_references(work / "refs", family_seed)
    processed = _process_set(
        work, qs, refs, embedder_spec, workers, cfg.embed.precision, family_seed, reuse
    )

    def register(cfg: Any, store: Any, refs: dict[str, list[Path]]) -> dict[str, int]:
        return register_family(cfg, store, refs, family_seed)

    rows, info = q._match(cfg, qs, processed, refs, embedder_spec, register=register)
    info["failed_videos"] = sorted(p.name for p in processed.values() if p.error)
    return rows, info, qs


def run_samestyle(
    work: Path,
    *,
    seed: int = REPORT_SEED,
    quick: bool = False,
    tune_seed: int | None = None,
    embedder_spec: str = "effnet-lite0",
    workers: int = 2,
    family_seed: int = FAMILY_SEED,
    reuse: bool = False,
) -> dict[str, Any]:
    """Score the same-style set for ``seed`` under ``work``. Breakdowns are given at the
    production decision and, with ``tune_seed``, at the fused-score threshold that reaches
    90% pair precision on the tune set. ``family_seed``: another family draws characters
    the matcher's design was never looked at with."""
    t0 = time.perf_counter()
    work = Path(work)
    tuned: float | None = None
    if tune_seed is not None:
        trows, _, _ = _score_set(work / f"tune-{tune_seed}", tune_seed, quick, embedder_spec,
                                 workers, family_seed, reuse)  # fmt: skip
        _, tuned = metrics.recall_at_precision(
            [r.scores["fused"] for r in trows], [r.label for r in trows], q.PRECISION_TARGET
        )
    tune_production = _breakdown(trows, None) if tune_seed is not None else None
    rows, info, qs = _score_set(
        work / f"seed-{seed}", seed, quick, embedder_spec, workers, family_seed, reuse
    )
    fused = q._signal_metrics(rows, "fused")
    results: dict[str, Any] = {
        "set": {
            "seed": seed,
            "family_seed": family_seed,
            "version": SAMESTYLE_VERSION,
            "quick": quick,
            "videos": len(qs.items),
            "positive_videos": sum(1 for it in qs.items if it.character),
            "negative_videos": sum(1 for it in qs.items if not it.character),
            "videos_by_kind": {KIND_LABELS[k]: sum(it.kind == k for it in qs.items) for k in KINDS},
            "clip": f"{tr.W}x{tr.H}, {qs.size.duration_s:g} s, 12 fps",
            **info,
        },
        "fused": fused,
        "production": _breakdown(rows, None),
        "ceiling": {sig: ceiling(rows, sig) for sig in CEILING_SIGNALS},
        "signals": {s: q._signal_metrics(rows, s) for s in q.SIGNALS if s in rows[0].scores}
        if rows
        else {},
    }
    if tune_seed is not None:
        results["estimated_precision"] = precision_check(trows, rows)
        results["tuned"] = {"tune_seed": tune_seed, "threshold": tuned}
        results["tune_set_production"] = tune_production
        results["tune_pairs"] = [q._row_json(r) for r in trows]
        if tuned is not None:
            results["tuned"].update(_breakdown(rows, tuned))
    results["pairs"] = [q._row_json(r) for r in rows]
    results["seconds"] = round(time.perf_counter() - t0, 1)
    return results


PRECISION_BINS = ((0.0, 0.5), (0.5, 0.8), (0.8, 0.9), (0.9, 0.95), (0.95, 1.0))


def _production_flags(rows: Sequence[q.PairRow]) -> list[tuple[float, str, bool]]:
    """``(stored score, match type, right)`` of each pair the matcher flagged (the fused
    score of a flag is ``1 + score``)."""
    return [
        (r.scores["fused"] - 1.0, r.match_type or "semantic", r.label)
        for r in rows
        if r.decisions.get("fused", False)
    ]


def precision_check(tune: Sequence[q.PairRow], report: Sequence[q.PairRow]) -> dict[str, Any]:
    """Estimated precision as the matcher computes it (:mod:`index.precision`), fitted on the
    tune seed's flags with the truth as the analysts' verdicts, then read on the report seed's
    flags: per bin of the estimate, how many flags, the mean estimate and the share right;
    ``calibration_error``: the flag-weighted mean gap between the two."""
    from index.precision import PrecisionModel

    model = PrecisionModel.fit(_production_flags(tune))
    flags = _production_flags(report)
    read = [(model.estimate(s, t), ok) for s, t, ok in flags]
    known = [(e.value, ok) for e, ok in read if e is not None]
    bins = []
    for lo, hi in PRECISION_BINS:
        inside = [(v, ok) for v, ok in known if lo <= v < hi or (hi == 1.0 and v == 1.0)]
        if inside:
            bins.append(
                {
                    "bin": f"{lo:g}-{hi:g}",
                    "flags": len(inside),
                    "mean_estimate": round(sum(v for v, _ in inside) / len(inside), 4),
                    "right": round(sum(ok for _, ok in inside) / len(inside), 4),
                }
            )
    gap = sum(b["flags"] * abs(b["mean_estimate"] - b["right"]) for b in bins)
    return {
        "tune_flags": dict(sorted(model.verdicts.items())),
        "curves": {t: c.as_json() for t, c in model.curves.items()},
        "report_flags": len(flags),
        "report_flags_estimated": len(known),
        "mean_estimate": round(sum(v for v, _ in known) / len(known), 4) if known else None,
        "right": round(sum(ok for _, ok in known) / len(known), 4) if known else None,
        "calibration_error": round(gap / len(known), 4) if known else None,
        "bins": bins,
    }


def summary(results: dict[str, Any]) -> str:
    """A readable table of the production breakdown (and the tuned one when present)."""
    s = results["set"]
    f = results["fused"]
    lines = [
        f"same-style set: seed {s['seed']} (family {s['family_seed']}), {s['videos']} videos "
        f"({s['positive_videos']} positive, {s['negative_videos']} negative), {s['clip']}, "
        f"embedder {s.get('embedder')}",
        f"fused: micro-AP {f['micro_ap']}, recall@P90 {f['recall_at_p90']}, production "
        f"recall {f.get('recall_at_production')} precision {f.get('precision_at_production')}, "
        f"false flags/1k negative videos {f.get('fp_per_1000_negative_videos')}, "
        f"wrong-character videos {f.get('positive_videos_with_wrong_character')}",
    ]
    blocks = [("production decision", results["production"])]
    if results.get("tuned", {}).get("threshold") is not None:
        blocks.append((f"tuned threshold {results['tuned']['threshold']:.4f}", results["tuned"]))
    head = f"{'':<16}{'videos':>7}{'recall':>8}{'wrong':>7}{'FP/1k':>8}{'prec':>7}{'AP':>7}"

    def fmt(name: str, t: dict[str, Any]) -> str:
        def v(x: Any) -> str:
            return "-" if x is None else f"{x:g}" if isinstance(x, float) else str(x)

        return (
            f"{name:<16}{t['videos']:>7}{v(t['recall']):>8}{t['wrong_character']:>7}"
            f"{v(t['fp_per_1000_negative_videos']):>8}{v(t['pair_precision']):>7}"
            f"{v(t['micro_ap']):>7}"
        )

    for title, b in blocks:
        lines += ["", f"-- {title}", head, fmt("all", b["all"])]
        lines += [fmt(k, t) for k, t in b["kinds"].items()]
        lines.append("   by transformation")
        lines += [fmt(k, t) for k, t in b["transforms"].items()]
    ep = results.get("estimated_precision")
    if ep:
        lines += [
            "",
            f"-- estimated precision (fitted on the tune seed's flags {ep['tune_flags']}): "
            f"{ep['report_flags_estimated']} of {ep['report_flags']} report flags estimated, "
            f"mean estimate {ep['mean_estimate']}, right {ep['right']}, calibration error "
            f"{ep['calibration_error']}",
        ]
        lines += [
            f"   {b['bin']:<10}{b['flags']:>5} flags  estimate {b['mean_estimate']:.3f}  "
            f"right {b['right']:.3f}"
            for b in ep["bins"]
        ]
    if s.get("failed_videos"):
        lines.append(f"failed videos: {len(s['failed_videos'])}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run the set, print the summary, optionally write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=REPORT_SEED)
    ap.add_argument("--tune-seed", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--work", type=Path, default=Path("/tmp/charwatch-samestyle"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--embedder", default="effnet-lite0")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--family-seed", type=int, default=FAMILY_SEED)
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="keep the processed videos under --work and reuse them on the next run "
        "(to try matching changes quickly; processing is then not re-measured)",
    )
    a = ap.parse_args(argv)
    res = run_samestyle(
        a.work, seed=a.seed, quick=a.quick, tune_seed=a.tune_seed, embedder_spec=a.embedder,
        workers=a.workers, family_seed=a.family_seed, reuse=a.reuse,
    )  # fmt: skip
    print(summary(res))
    print(f"({res['seconds']} s)")
    if a.out:
        a.out.write_text(json.dumps(res, indent=1, default=_json_default))
    return 0


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, set):
        return sorted(o)
    return str(o)


if __name__ == "__main__":
    raise SystemExit(main())
