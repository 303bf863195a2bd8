"""Detection quality: a generated, seeded video set scored by the real pipeline and matcher.

The set (see ``bench/README.md``):

* **targets**: the fixture platform's three registered characters, each in ``renders`` new
  base clips (layout, size, poses and expressions, background, palette, UI icons on or off),
  drawn in portrait 9:16 and, for the padding transforms, in landscape 16:9, plus (``art``) a
  re-upload of one of its reference pictures, the copy case;
* **negatives**: at least five times as many clips: the three unregistered look-alike
  characters and scenes with no character at all;
* every base clip goes through every transformation of :mod:`bench.transforms`, so each
  transformation has the same positives-to-negatives ratio.

Each video runs through the real media code (``pipeline.frames.sample_frames`` with its PDQ
hashes, the JPEG round trip the worker does, ``pipeline.regions.regions``, the configured
embedder), its rows are written to a temporary store as ``pipeline.worker`` writes them, the
demo references are registered with ``index.registry``, and the real matcher
(``index.matcher.load_evidence``, ``run_signals``, ``fuse``) scores every
(video, registered character) pair. Videos are transformed and embedded in two worker
processes (one torch thread each); matching runs in the main process.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import multiprocessing as mp
import pickle
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import metrics
from bench import transforms as tr
from storage.files import atomic_path

SET_VERSION = 2  # bump when the set's drawing or transforms change (cached clips are redrawn)
PRECISION_TARGET = 0.9
SIGNALS = ("fused", "pdq", "geometric", "embedding", "text_prompt", "naive_full_frame")
SIGNAL_UNITS = {
    "fused": "flagged: 1 + matcher score; unflagged: best calibrated signal score",
    "pdq": "minus the best PDQ distance (bits)",
    "geometric": "RANSAC inliers of the best verified fit (0 when none verifies)",
    "embedding": "whitened similarity, mean of the top-k frames",
    "text_prompt": "image-text cosine",
    "naive_full_frame": "raw cosine, whole frame, best frame and reference",
}


@dataclass(frozen=True)
class SetSize:
    """How big the set is: new renders per registered character, whether a re-upload of its
    official art is added, negative base clips, clip length, the transformations, and
    ``spread``: each transformation applied to one base clip per character (rotating through
    its renders and art) and to one negative base clip in ``len(bases per character)``,
    instead of every base clip under every transformation."""

    renders: int
    art: bool
    negatives: int
    duration_s: float
    transforms: tuple[str, ...]
    spread: bool = False

    @property
    def bases_per_character(self) -> int:
        return self.renders + int(self.art)

    @property
    def positives(self) -> int:
        per = 1 if self.spread else self.bases_per_character
        return 3 * per * len(self.transforms)


# Each video costs about 22-24 region embeddings per sampled frame (pipeline.regions), so the
# full set is spread: 19 transformations x (3 positives + 15 negatives) = 342 videos.
FULL = SetSize(
    renders=2,
    art=True,
    negatives=45,
    duration_s=4.0,
    transforms=tuple(tr.BY_NAME),
    spread=True,
)
QUICK = SetSize(renders=1, art=False, negatives=15, duration_s=2.0, transforms=tr.QUICK_TRANSFORMS)


RENDER = "render"  # a new drawing of a registered character (semantic match)
ART = "art"  # a re-upload of one of its reference pictures (copy match)
DISTRACTOR = "distractor"  # an unregistered look-alike character
SCENE = "scene"  # no character at all


@dataclass(frozen=True)
class BaseClip:
    """A base clip: ``character`` is a demo character key or None; ``kind`` is one of
    render/art/distractor/scene. ``portrait``/``landscape`` are the two VideoSpecs drawn
    (for ``art`` clips None: they are made from the reference picture)."""

    key: str
    character: str | None
    kind: str
    portrait: Any
    landscape: Any

    @property
    def registered(self) -> bool:
        return self.kind in (RENDER, ART)


@dataclass(frozen=True)
class Item:
    """One benchmark video: base clip ``base`` edited by ``transform``."""

    name: str
    base: str
    transform: str
    character: str | None  # the registered character shown, or None
    kind: str  # the base clip's kind
    seed: int


@dataclass
class QualitySet:
    bases: list[BaseClip]
    fillers: list[Any]
    items: list[Item]
    size: SetSize
    seed: int


def _sub_seed(seed: int, *parts: object) -> int:
    text = ":".join(str(p) for p in (seed, SET_VERSION, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") >> 1


def build_set(seed: int, size: SetSize) -> QualitySet:
    """The base clips, fillers and items for a seed (deterministic; nothing is drawn yet)."""
    from fixture_platform.characters import DISTRACTOR_KEYS, REGISTERED_KEYS
    from fixture_platform.videos import BACKGROUNDS, VideoSpec

    rng = random.Random(_sub_seed(seed, "set"))
    fps = 12

    def specs(character: str | None, k: int) -> tuple[Any, Any]:
        layout = ("center", "pan", "zoom")[k % 3]
        scale = {"center": rng.uniform(0.65, 0.85), "pan": rng.uniform(0.55, 0.7)}.get(
            layout, rng.uniform(0.45, 0.6)
        )
        common = {
            "seed": rng.getrandbits(31),
            "character": character,
            "background": BACKGROUNDS[(k + rng.randrange(len(BACKGROUNDS))) % len(BACKGROUNDS)],
            "palette": rng.randrange(8),
            "poses": tuple(rng.sample(range(16), 3)),
            "ui": rng.random() < 0.5,
            "duration_s": size.duration_s,
            "fps": fps,
        }
        portrait = VideoSpec(layout=layout, scale=scale, scale_end=min(1.1, scale + 0.4), **common)
        landscape = VideoSpec(
            layout=("center", "pan")[k % 2],
            scale=rng.uniform(0.45, 0.52),
            width=640,
            height=360,
            **common,
        )
        return portrait, landscape

    bases: list[BaseClip] = []
    for key in REGISTERED_KEYS:
        for r in range(size.renders):
            p, land = specs(key, r)
            bases.append(BaseClip(f"pos-{key}-{r}", key, RENDER, p, land))
        if size.art:
            bases.append(BaseClip(f"pos-{key}-art", key, ART, None, None))
    for i in range(size.negatives):
        char = DISTRACTOR_KEYS[(i // 2) % len(DISTRACTOR_KEYS)] if i % 2 == 0 else None
        p, land = specs(char, i)
        kind = DISTRACTOR if char else SCENE
        bases.append(BaseClip(f"neg-{char or 'none'}-{i}", char, kind, p, land))
    fillers = [
        VideoSpec(
            seed=rng.getrandbits(31),
            character=None,
            background=bg,
            palette=rng.randrange(8),
            ui=False,
            duration_s=size.duration_s,
            fps=fps,
        )
        for bg in ("room", "shapes", "noise")
    ]
    items = []
    per = size.bases_per_character
    positives = [b for b in bases if b.registered]
    negatives = [b for b in bases if not b.registered]
    for b in bases:
        for ti, t in enumerate(size.transforms):
            if size.spread:
                if b.registered:
                    k = positives.index(b)
                    char, slot = divmod(k, per)
                    if (ti + char) % per != slot:
                        continue
                elif (ti + negatives.index(b)) % per != 0:
                    continue
            name = f"{b.key}__{t}"
            items.append(
                Item(
                    name=name,
                    base=b.key,
                    transform=t,
                    character=b.character if b.registered else None,
                    kind=b.kind,
                    seed=_sub_seed(seed, name),
                )
            )
    return QualitySet(bases, fillers, items, size, seed)


# ---------------------------------------------------------------------------------------------
# worker processes: drawing, transforming, sampling, embedding

_WORKER: dict[str, Any] = {}


def _init_worker(embedder_spec: str | None, precision: str) -> None:
    import torch

    torch.set_num_threads(1)
    if embedder_spec:
        from pipeline.embedders import load_embedder

        _WORKER["embedder"] = load_embedder(embedder_spec, precision=precision, threads=1)


def _render(spec: Any, path: Path) -> str:
    from fixture_platform.videos import make_video

    if not path.is_file():
        make_video(spec, path)
    return str(path)


def _render_art(picture: Path, path: Path, width: int, height: int, duration_s: float) -> str:
    """A re-upload of a still picture: fitted into the frame on black bars, 12 fps."""
    if path.is_file():
        return str(path)
    with atomic_path(path, suffix=".part.mp4") as tmp:
        cmd = [
            tr.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-loop", "1", "-framerate", "12", "-i", str(picture), "-t", f"{duration_s:.2f}",
            "-vf",
            f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:black,format=yuv420p",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-threads", "1",
            "-movflags", "+faststart", str(tmp),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise tr.TransformError(f"art clip: {proc.stderr.decode('utf-8', 'replace')[-500:]}")
    return str(path)


@dataclass
class Processed:
    """What the pipeline stored for one video (frames, region vectors) and its timings."""

    name: str
    path: str
    frames: list[tuple[float, str | None, int | None]] = field(default_factory=list)
    vectors: np.ndarray | None = None  # float16 (n, dim)
    regions: list[str] = field(default_factory=list)
    vector_frame: list[int] = field(default_factory=list)
    frame_files: list[str] = field(default_factory=list)  # the stored JPEG of each frame
    seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def _process(item: Item, src: tr.Sources, dst: Path) -> Processed:
    """Transform, then do what ``pipeline.worker`` does for one video (frames, JPEG round
    trip, region vectors of each frame)."""

    from charwatch.config import ProcessConfig
    from pipeline.frames import FramesError, sample_frames
    from pipeline.media import jpeg_round_trip
    from pipeline.worker import FRAME_JPEG_QUALITY

    out = Processed(item.name, str(dst))
    t0 = time.perf_counter()
    try:
        if not dst.is_file():
            src.scratch = tr.scratch_dir(dst.parent / ".scratch")
            try:
                tr.apply(item.transform, src, dst, random.Random(item.seed))
            finally:
                shutil.rmtree(src.scratch, ignore_errors=True)
        t1 = time.perf_counter()
        frames = sample_frames(dst, ProcessConfig())
        t2 = time.perf_counter()
        pixels: list[Any] = []
        folder = dst.parent / "frames" / dst.stem
        folder.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(frames):
            data, decoded = jpeg_round_trip(f.image, FRAME_JPEG_QUALITY)
            (folder / f"{i:02d}.jpg").write_bytes(data)
            out.frame_files.append(str((folder / f"{i:02d}.jpg").resolve()))
            pixels.append(decoded)
            out.frames.append((f.t, f.pdq, f.pdq_quality))
        per_frame = _WORKER["embedder"].embed_frames(pixels)
        for i, fv in enumerate(per_frame):
            out.regions.extend(fv.names)
            out.vector_frame.extend([i] * len(fv.names))
        vecs = [fv.vectors for fv in per_frame]
        out.vectors = np.asarray(
            np.concatenate(vecs) if vecs else np.zeros((0, _WORKER["embedder"].dim)),
            dtype=np.float16,
        )
        t3 = time.perf_counter()
        out.seconds = {"transform": t1 - t0, "frames": t2 - t1, "embed": t3 - t2}
    except (tr.TransformError, FramesError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    return out


def _pool(workers: int, embedder_spec: str | None, precision: str) -> cf.ProcessPoolExecutor:
    return cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=mp.get_context("spawn"),
        initializer=_init_worker,
        initargs=(embedder_spec, precision),
    )


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class PairRow:
    """One (video, registered character) pair with each signal's score and decision."""

    video: str
    transform: str
    group: str
    kind: str
    character: str
    label: bool
    negative_video: bool
    scores: dict[str, float]
    decisions: dict[str, bool]
    match_type: str | None = None  # the flag's match type (production decision), else None


def _clip_paths(work: Path, qs: QualitySet) -> dict[str, Path]:
    media = work / "media" / f"v{SET_VERSION}-seed{qs.seed}-{qs.size.duration_s:g}s"
    paths = {}
    for b in qs.bases:
        paths[f"{b.key}:portrait"] = media / "base" / f"{b.key}.mp4"
        paths[f"{b.key}:landscape"] = media / "base" / f"{b.key}-land.mp4"
    for i in range(len(qs.fillers)):
        paths[f"filler-{i}"] = media / "base" / f"filler-{i}.mp4"
    for it in qs.items:
        paths[it.name] = media / "items" / f"{it.name}.mp4"
    return paths


def _progress(label: str, done: int, total: int, t0: float, every: int) -> None:
    if done % every == 0 or done == total:
        print(f"  {label}: {done}/{total} ({time.perf_counter() - t0:.0f} s)", flush=True)


def draw_and_process(
    work: Path,
    qs: QualitySet,
    paths: dict[str, Path],
    art_picture: Callable[[BaseClip], Path],
    embedder_spec: str,
    workers: int,
    precision: str,
    timings: dict[str, float],
) -> dict[str, Processed]:
    """Draw the base clips (the art clips from ``art_picture(base)``, a reference picture),
    then transform, sample and embed every item in worker processes; records the two phases'
    seconds in ``timings``."""
    t0 = time.perf_counter()
    drawn = [b for b in qs.bases if b.kind != ART]
    jobs = [(b.portrait, paths[f"{b.key}:portrait"]) for b in drawn]
    jobs += [(b.landscape, paths[f"{b.key}:landscape"]) for b in drawn]
    jobs += [(f, paths[f"filler-{i}"]) for i, f in enumerate(qs.fillers)]
    with _pool(workers, None, precision) as pool:
        futs = [pool.submit(_render, spec, path) for spec, path in jobs]
        for b in qs.bases:
            if b.kind == ART:
                pic = art_picture(b)
                for form, (w, h) in (("portrait", (tr.W, tr.H)), ("landscape", (640, 360))):
                    out = paths[f"{b.key}:{form}"]
                    futs.append(pool.submit(_render_art, pic, out, w, h, qs.size.duration_s))
        for n, fut in enumerate(cf.as_completed(futs), 1):
            fut.result()
            _progress("base clips", n, len(futs), t0, 25)
    timings["draw_base_clips_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    processed: dict[str, Processed] = {}
    with _pool(workers, embedder_spec, precision) as pool:
        futs = []
        for k, it in enumerate(qs.items):
            src = tr.Sources(
                portrait=paths[f"{it.base}:portrait"],
                landscape=paths[f"{it.base}:landscape"],
                filler=paths[f"filler-{k % len(qs.fillers)}"],
                scratch=work,
                duration_s=qs.size.duration_s,
            )
            futs.append(pool.submit(_process, it, src, paths[it.name]))
        for n, fut in enumerate(cf.as_completed(futs), 1):
            res = fut.result()
            processed[res.name] = res
            _progress("videos transformed and embedded", n, len(futs), t0, 50)
    timings["transform_and_embed_s"] = time.perf_counter() - t0
    return processed


def processed_cache(
    keep: Path, reuse: bool, make: Callable[[], dict[str, Processed]]
) -> dict[str, Processed]:
    """``make()``'s processed videos; with ``reuse``, read from ``keep`` when it exists and
    written there otherwise (for trying matching changes; processing is then not re-measured)."""
    if reuse and keep.is_file():
        with keep.open("rb") as fh:
            print(f"  processed videos reused from {keep.name}", flush=True)
            return pickle.load(fh)  # noqa: S301 - the benchmark's own file
    processed = make()
    if reuse:
        with atomic_path(keep) as tmp, tmp.open("wb") as fh:
            pickle.dump(processed, fh)
    return processed


def run_quality(
    work: Path,
    *,
    seed: int = 20251124,
    quick: bool = False,
    embedder_spec: str = "effnet-lite0",
    workers: int = 2,
    reuse: bool = False,
) -> dict[str, Any]:
    """Build (or reuse) the set under ``work``, score it, return the results as a dict.
    ``reuse``: keep the processed videos in ``work`` and read them back on the next run."""
    from charwatch.config import Config
    from index.refindex import embedder_slug

    size = QUICK if quick else FULL
    qs = build_set(seed, size)
    paths = _clip_paths(work, qs)
    cfg = Config()
    cfg.storage.data_dir = str(work / "data")
    timings: dict[str, float] = {}
    print(
        f"quality: {len(qs.items)} videos ({size.positives} with a registered character), "
        f"{len(size.transforms)} transformations",
        flush=True,
    )

    from fixture_platform.characters import write_reference_images

    refs = write_reference_images(work / "refs")
    keep = work / f"processed-{seed}-{embedder_slug(embedder_spec)}-{cfg.embed.precision}.pickle"
    processed = processed_cache(
        keep,
        reuse,
        lambda: draw_and_process(
            work,
            qs,
            paths,
            lambda b: refs[str(b.character)][0],
            embedder_spec,
            workers,
            cfg.embed.precision,
            timings,
        ),
    )
    stage_s = {
        k: float(sum(p.seconds.get(k, 0.0) for p in processed.values()))
        for k in ("transform", "frames", "embed")
    }

    t0 = time.perf_counter()
    rows, info = _match(cfg, qs, processed, refs, embedder_spec)
    timings["match_s"] = time.perf_counter() - t0
    results = score(rows, qs)
    results["set"] = {
        "seed": seed,
        "version": SET_VERSION,
        "quick": quick,
        "videos": len(qs.items),
        "positive_videos": sum(1 for it in qs.items if it.character),
        "negative_videos": sum(1 for it in qs.items if not it.character),
        "base_clips": {
            "registered": sum(b.registered for b in qs.bases),
            "distractor_character": sum(1 for b in qs.bases if b.character and not b.registered),
            "no_character": sum(1 for b in qs.bases if b.character is None),
        },
        "clip": f"{tr.W}x{tr.H} (16:9 sources 640x360), {size.duration_s:g} s, 12 fps",
        "transforms": {
            t: {"group": tr.BY_NAME[t].group, "description": tr.BY_NAME[t].description}
            for t in size.transforms
        },
        "failed_videos": sorted(p.name for p in processed.values() if p.error),
        "errors": sorted({p.error for p in processed.values() if p.error})[:5],
        **info,
    }
    results["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    results["worker_stage_cpu_s"] = {k: round(v, 1) for k, v in stage_s.items()}
    return results


def _match(
    cfg: Any,
    qs: QualitySet,
    processed: dict[str, Processed],
    refs: dict[str, list[Path]],
    embedder_spec: str,
    register: Callable[[Any, Any, dict[str, list[Path]]], dict[str, int]] | None = None,
) -> tuple[list[PairRow], dict[str, Any]]:
    """Register the demo characters (or whatever ``register(cfg, store, refs)`` registers,
    returning ``{key: character id}``) in a fresh store, write every video's rows, and run the
    real signals and fusion on each."""
    from charwatch.demo import register_demo_characters
    from index.matcher import fuse, load_evidence, run_signals
    from index.refindex import load_or_build, load_reference_image
    from index.signals import embed_threshold, make_signals
    from pipeline.embedders import load_embedder
    from storage.db import Store
    from storage.models import Embedding, Frame, Video, VideoState

    data = Path(cfg.storage.data_dir)
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    store = Store(cfg.storage.database_url)
    embedder = load_embedder(embedder_spec, precision=cfg.embed.precision)
    char_ids = (register or register_demo_characters)(cfg, store, refs)
    key_by_id = {v: k for k, v in char_ids.items()}

    video_ids: dict[str, int] = {}
    for it in qs.items:
        p = processed[it.name]
        if p.error or p.vectors is None:
            continue
        with store.session() as s:
            v = Video(
                platform="bench",
                platform_id=it.name,
                url=Path(p.path).resolve().as_uri(),
                caption="",
                hashtags=[],
                state=VideoState.EMBEDDED,
                duration_s=qs.size.duration_s,
            )
            s.add(v)
            s.flush()
            files = p.frame_files or [None] * len(p.frames)
            frows = [
                Frame(video_id=v.id, t=t, pdq=h, pdq_quality=q, image_path=path)
                for (t, h, q), path in zip(p.frames, files, strict=True)
            ]
            s.add_all(frows)
            s.flush()
            s.add_all(
                Embedding(
                    frame_id=frows[fi].id,
                    region=reg,
                    model_id=embedder.id,
                    vector=vec.tobytes(),
                )
                for fi, reg, vec in zip(p.vector_frame, p.regions, p.vectors, strict=True)
            )
            video_ids[it.name] = v.id

    signals = make_signals(cfg.detect, embedder)
    ri = load_or_build(cfg, store, embedder, signals)
    # naive scoring: raw cosine of the whole frame against the reference pictures as given
    ref_vecs: dict[int, np.ndarray] = {}
    for cid in char_ids.values():
        imgs = [load_reference_image(cfg, r) for r in ri.refs.positives(cid)]
        ref_vecs[cid] = embedder.embed_images([im for im in imgs if im is not None])

    rows: list[PairRow] = []
    frames_used: list[int] = []
    vectors_used: list[int] = []
    for it in qs.items:
        vid = video_ids.get(it.name)
        if vid is None:
            continue
        ev = load_evidence(store, vid, embedder.id, embedder.dim, data_dir=data)
        frames_used.append(len(ev.frames))
        vectors_used.append(len(ev.vectors))
        results = run_signals(ev, ri, signals)
        decisions = {d.character_id: d for d in fuse(cfg, ev, ri, results)}
        full = ev.vectors[[r == "full" for r in ev.vector_region]] if len(ev.vectors) else None
        for cid in char_ids.values():
            scores: dict[str, float] = {}
            dec: dict[str, bool] = {}
            best_cal = 0.0
            for sig in ("pdq", "geometric", "embedding", "text_prompt"):
                if sig not in results:
                    continue
                r = next((x for x in results[sig] if x.character_id == cid), None)
                if r is None or r.raw is None:
                    scores[sig], dec[sig] = float("-inf"), False
                    continue
                scores[sig] = -float(r.raw) if sig == "pdq" else float(r.raw)
                if sig == "geometric" and not r.matched:
                    scores[sig] = min(scores[sig], 0.0)  # unverified fits rank below any copy
                dec[sig] = bool(r.matched)
                best_cal = max(best_cal, float(r.score))
            d = decisions.get(cid)
            scores["fused"] = 1.0 + d.score if d is not None else best_cal
            dec["fused"] = d is not None
            if full is not None and len(full) and len(ref_vecs[cid]):
                scores["naive_full_frame"] = float((full @ ref_vecs[cid].T).max())
            else:
                scores["naive_full_frame"] = float("-inf")
            key = key_by_id[cid]
            rows.append(
                PairRow(
                    video=it.name,
                    transform=it.transform,
                    group=tr.BY_NAME[it.transform].group,
                    kind=it.kind,
                    character=key,
                    label=it.character == key,
                    negative_video=it.character is None,
                    scores=scores,
                    decisions=dec,
                    match_type=d.match_type if d is not None else None,
                )
            )
    store.dispose()
    info = {
        "embedder": embedder.id,
        "frames_per_video": round(float(np.mean(frames_used)), 2) if frames_used else 0.0,
        "regions_per_frame": round(sum(vectors_used) / max(1, sum(frames_used)), 2),
        "references_per_character": len(next(iter(refs.values()))),
        "embed_threshold": float(embed_threshold(cfg.detect, embedder.id)),
        "pdq_max_distance": cfg.detect.pdq_max_distance,
        "top_k": cfg.detect.top_k,
        "min_frames": cfg.detect.min_frames,
    }
    return rows, info


# ---------------------------------------------------------------------------------------------
# scoring


def _signal_metrics(rows: list[PairRow], sig: str) -> dict[str, Any]:
    scores = [r.scores.get(sig, float("-inf")) for r in rows]
    labels = [r.label for r in rows]
    rec, thr = metrics.recall_at_precision(scores, labels, PRECISION_TARGET)
    out: dict[str, Any] = {
        "pairs": len(rows),
        "positive_pairs": int(sum(labels)),
        "micro_ap": round(metrics.micro_ap(scores, labels), 4),
        "recall_at_p90": round(rec, 4),
        "threshold_at_p90": None if thr is None else round(thr, 4),
    }
    if any(sig in r.decisions for r in rows):
        dec = [r.decisions.get(sig, False) for r in rows]
        c = metrics.decision_counts(dec, labels)
        neg_videos = {r.video for r in rows if r.negative_video}
        flagged = [r for r, d in zip(rows, dec, strict=True) if d]
        flagged_neg = {r.video for r in flagged if r.negative_video}
        wrong = {r.video for r in flagged if not r.label and not r.negative_video}
        out.update(
            {
                "recall_at_production": round(c.recall, 4),
                "precision_at_production": round(c.precision, 4),
                "false_pairs": c.fp,
                "negative_videos": len(neg_videos),
                "fp_per_1000_negative_videos": round(
                    metrics.per_thousand(len(flagged_neg), len(neg_videos)), 1
                ),
                "positive_videos_with_wrong_character": len(wrong),
            }
        )
    return out


def score(rows: list[PairRow], qs: QualitySet) -> dict[str, Any]:
    """Per signal over all pairs, per transformation, and per easy/hard group."""
    present = [s for s in SIGNALS if any(s in r.scores for r in rows)]
    out: dict[str, Any] = {"signals": {}, "transforms": {}, "groups": {}, "kinds": {}}
    for sig in present:
        out["signals"][sig] = {**_signal_metrics(rows, sig), "score_unit": SIGNAL_UNITS[sig]}
    for t in qs.size.transforms:
        sub = [r for r in rows if r.transform == t]
        out["transforms"][t] = {
            "group": tr.BY_NAME[t].group,
            "positive_videos": len({r.video for r in sub if r.label}),
            "negative_videos": len({r.video for r in sub if r.negative_video}),
            **{sig: _signal_metrics(sub, sig) for sig in present},
        }
    # subsets of the positives (easy/hard transformations; new renders vs re-uploaded art):
    # recall at the threshold that gives P90 over all pairs, and at the production decision
    labels = [r.label for r in rows]
    for sig in present:
        _, thr = metrics.recall_at_precision(
            [r.scores.get(sig, float("-inf")) for r in rows], labels, PRECISION_TARGET
        )
        for table, attr, values in (
            ("groups", "group", (tr.EASY, tr.HARD)),
            ("kinds", "kind", (RENDER, ART)),
        ):
            for value in values:
                pos = [r for r in rows if r.label and getattr(r, attr) == value]
                if not pos:
                    continue
                g = out[table].setdefault(value, {"positive_pairs": len(pos)})
                hit = 0 if thr is None else sum(r.scores.get(sig, -np.inf) >= thr for r in pos)
                g[sig] = {"recall_at_global_p90_threshold": round(hit / len(pos), 4)}
                if any(sig in r.decisions for r in pos):
                    g[sig]["recall_at_production"] = round(
                        sum(r.decisions.get(sig, False) for r in pos) / len(pos), 4
                    )
    out["pairs"] = [_row_json(r) for r in rows]
    return out


def _row_json(r: PairRow) -> dict[str, Any]:
    d = asdict(r)
    d["scores"] = {k: (round(v, 4) if np.isfinite(v) else None) for k, v in r.scores.items()}
    return d
