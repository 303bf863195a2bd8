"""Per-character thresholds set to a target false-positive rate (``charwatch calibrate``).

For every character and every signal whose class says ``calibratable`` that the current
embedder runs (today ``pdq``, ``embedding``, and ``text_prompt`` with a text tower), and that
applies to the character (:meth:`index.signals.Signal.applies_to`: reference images, prompts),
single frames are scored with the real signal code (:meth:`index.signals.Signal.compare`
against the real reference index), one frame at a time, so a frame's ``raw`` value is exactly
what the matcher compares with the threshold for that frame (a classifier probability for
``embedding``, a PDQ bit distance for ``pdq``, an image-text cosine for ``text_prompt``). The
signal's ``direction`` says whether a match lies over (similarities) or under (distances) the
threshold.

Positives of a character:

* its reference images under augmentation: random crops, mirroring, colour shifts and blur,
  pasted at 45-95% of the width onto backdrops like the background bank's in a 9:16 frame
  ("semantic" positives; :func:`index.refindex.bank_images` with another seed than the draw
  the whitening was fitted on), and whole re-uses letterboxed into a 9:16 frame ("copy"
  positives, the only ones copy signals such as PDQ are calibrated on);
* frames of its detections reviewed ``confirmed`` (the ``top_k`` best frames of each, for the
  signals that matched).

Negatives of a character: background-bank pictures (of that other draw), the other
characters' augmented references, its own and the others' negative references (augmented),
every frame of its detections reviewed ``rejected``, and a sample of stored frames of matched
videos that were never flagged.

Frames are made as the pipeline makes them: 360x640, JPEG-compressed, split into regions
(:func:`pipeline.regions.regions`), embedded, stored as float16.

The threshold is the least strict value that keeps the share of negatives that pass at or
under ``target_fpr``: with ``n`` negatives, ``floor(target_fpr * n)`` may pass. With fewer than
``1 / target_fpr`` negatives that means none may pass, so the result sits just above the worst
negative (``details.fpr_resolution`` says how coarse the estimate is).

Synthetic negatives are easier than real frames (on the demo characters they all stay under
0.23 while real look-alike frames reach 0.46), so a threshold is only made *looser* than the
uncalibrated default when the negatives can resolve the target rate: at least
``1 / target_fpr`` of them, of which at least ``MIN_REAL_NEGATIVES`` are stored frames of real
videos (rejected detections, unflagged videos). Otherwise the default is kept, and the
data-driven value is still recorded (``details.fpr_threshold``). Making a threshold stricter
needs no such evidence. A signal's ``loosest_threshold`` bounds the result (PDQ: 52 bits, the
high-recall PDQ operating point), and its :meth:`~index.signals.Signal.calibration_floor`
the stored value (embedding: at least 0.05 above the embedder profile's floor, its typical
unrelated-frame score).

Results are stored in :class:`storage.models.CharacterThreshold` (one row per character,
embedder id and signal, replaced on every run) with the counts, the recall on the positives,
and a summary of both score distributions in ``details``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from sqlalchemy import select
from tqdm import tqdm

from charwatch.config import Config
from charwatch.errors import UsageError
from index.matcher import ReembedNeeded, load_evidence
from index.refindex import bank_images, load_or_build, load_reference_image, load_reference_set
from index.signals import (
    ROLE_COPY,
    FrameRow,
    Signal,
    VideoEvidence,
    make_signals,
)
from pipeline.hashing import pdq
from pipeline.media import jpeg_round_trip
from storage.db import Store
from storage.models import CharacterThreshold, Detection, Frame, Video, VideoState, utcnow
from storage.vectors import round_fp16

log = logging.getLogger(__name__)

DEFAULT_TARGET_FPR = 0.001
# synthetic frames (each is cut into the pipeline's ~22 region crops, all embedded)
SEMANTIC_PER_REF = 4
COPY_PER_REF = 2
NEGATIVE_PER_REF = 2
BANK_SAMPLES = 32
UNFLAGGED_FRAMES = 400
FRAME_W, FRAME_H = 360, 640
JPEG_QUALITY = 90
SIMILARITY_EPS = 1e-4
MIN_REAL_NEGATIVES = 100
REAL_NEGATIVE_SOURCES = ("rejected", "unflagged_video")
ALL = -1  # "every character" in a sample's negative set


class CalibrationError(UsageError):
    """Calibration cannot run as asked (bad target, unknown character, nothing to use)."""


@dataclass
class Sample:
    """One scored frame: for which characters it is a positive, for which a negative.

    ``negative_for`` holds character ids, or :data:`ALL` for every character except those in
    ``positive_for``. ``copy_positive``: also a positive for the copy signal (PDQ).
    """

    source: str
    evidence: VideoEvidence
    positive_for: frozenset[int] = frozenset()
    negative_for: frozenset[int] = frozenset()
    copy_positive: bool = False
    raw: dict[str, dict[int, float]] = field(default_factory=dict)  # signal -> char -> raw


@dataclass
class Calibration:
    """The calibrated threshold of one signal for one character."""

    character_id: int
    character: str
    signal: str
    model_id: str
    threshold: float | None
    default: float
    target_fpr: float
    positives: int
    negatives: int
    tpr: float | None
    fpr: float | None
    details: dict[str, Any]
    note: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "character": self.character,
            "signal": self.signal,
            "threshold": self.threshold,
            "default": self.default,
            "recall": self.tpr,
            "fpr": self.fpr,
            "positives": self.positives,
            "negatives": self.negatives,
            "note": self.note,
        }


# ---------------------------------------------------------------------------------------------
# making frames


def _jpeg(img: Image.Image) -> Image.Image:
    return jpeg_round_trip(img, JPEG_QUALITY)[1]


def _fit_portrait(bg: Image.Image) -> Image.Image:
    """A backdrop cropped and scaled to fill a 9:16 frame."""
    return ImageOps.fit(bg.convert("RGB"), (FRAME_W, FRAME_H), Image.Resampling.BILINEAR)


def _colour_shift(img: Image.Image, rng: random.Random) -> Image.Image:
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.6, 1.4))
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.75, 1.25))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.2))
    if rng.random() < 0.5:  # hue rotation
        h, s, v = img.convert("HSV").split()
        shift = rng.randrange(-12, 13)
        h = h.point(lambda x: (x + shift) % 256)
        img = Image.merge("HSV", (h, s, v)).convert("RGB")
    return img


def augment_semantic(ref: Image.Image, backdrop: Image.Image, rng: random.Random) -> Image.Image:
    """The reference cropped/mirrored/recoloured/blurred, pasted onto a 9:16 backdrop."""
    img = ref.convert("RGB")
    if rng.random() < 0.6:
        w, h = img.size
        kw, kh = rng.uniform(0.75, 0.95), rng.uniform(0.75, 0.95)
        cw, ch = max(8, int(w * kw)), max(8, int(h * kh))
        x, y = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)
        img = img.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    if rng.random() < 0.6:
        img = _colour_shift(img, rng)
    if rng.random() < 0.4:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.8, 2.0)))
    frame = _fit_portrait(backdrop)
    side = int(FRAME_W * rng.uniform(0.45, 0.95))
    scale = side / max(img.size)
    img = img.resize(
        (max(8, int(img.width * scale)), max(8, int(img.height * scale))),
        Image.Resampling.BICUBIC,
    )
    x = rng.randrange(max(1, FRAME_W - img.width + 1))
    y = rng.randrange(int(FRAME_H * 0.05), max(int(FRAME_H * 0.05) + 1, FRAME_H - img.height))
    frame.paste(img, (x, y))
    return frame


def augment_copy(ref: Image.Image, rng: random.Random) -> Image.Image:
    """A whole re-use of the reference: letterboxed into a 9:16 frame, maybe mirrored,
    recoloured, slightly blurred or trimmed by a few percent."""
    img = ref.convert("RGB")
    if rng.random() < 0.3:
        w, h = img.size
        d = rng.uniform(0.0, 0.04)
        img = img.crop((int(w * d), int(h * d), w - int(w * d), h - int(h * d)))
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    if rng.random() < 0.4:
        img = _colour_shift(img, rng)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.2)))
    frame = Image.new("RGB", (FRAME_W, FRAME_H), (0, 0, 0))
    scale = FRAME_W / img.width
    pic = img.resize((FRAME_W, max(8, int(img.height * scale))), Image.Resampling.BILINEAR)
    frame.paste(pic, (0, max(0, (FRAME_H - pic.height) // 2)))
    return frame


# ---------------------------------------------------------------------------------------------
# evidence


def frame_evidences(
    embedder: Any, frames: Sequence[Image.Image], batch: int = 32, progress: bool = False
) -> list[VideoEvidence]:
    """One single-frame :class:`VideoEvidence` per picture, made as the pipeline makes them
    (PDQ of the frame, regions of the JPEG, embedded, float16-rounded)."""
    hashes = [pdq(img) for img in frames]
    pixels = [_jpeg(img) for img in frames]
    per_frame = []
    bar = tqdm(total=len(pixels), desc="embed", unit="frame", disable=not progress)
    for i in range(0, len(pixels), max(1, batch)):
        per_frame.extend(embedder.embed_frames(pixels[i : i + batch]))
        bar.update(len(pixels[i : i + batch]))
    bar.close()
    out = []
    for (h, q), fv in zip(hashes, per_frame, strict=True):
        n = len(fv.names)
        out.append(
            VideoEvidence(
                video_id=0,
                frames=[FrameRow(frame_id=0, t=0.0, pdq=h, pdq_quality=q)],
                model_id=embedder.id,
                vectors=round_fp16(np.asarray(fv.vectors, dtype=np.float32)),
                vector_frame=np.zeros(n, dtype=np.int64),
                vector_region=list(fv.names),
            )
        )
    return out


def split_frames(ev: VideoEvidence) -> list[VideoEvidence]:
    """A stored video's evidence as one single-frame evidence per frame (context dropped)."""
    out = []
    for i, f in enumerate(ev.frames):
        rows = np.flatnonzero(ev.vector_frame == i) if len(ev.vectors) else np.zeros(0, int)
        out.append(
            VideoEvidence(
                video_id=ev.video_id,
                frames=[FrameRow(f.frame_id, f.t, f.pdq, f.pdq_quality, f.thumb_path)],
                model_id=ev.model_id,
                vectors=ev.vectors[rows] if len(rows) else ev.vectors[:0],
                vector_frame=np.zeros(len(rows), dtype=np.int64),
                vector_region=[ev.vector_region[r] for r in rows],
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# thresholds


SignalLike = Signal | type[Signal]


def threshold_for_fpr(negatives: np.ndarray, target_fpr: float, signal: SignalLike) -> float:
    """The least strict threshold passing at most ``floor(target_fpr * n)`` negatives, never
    looser than the signal's ``loosest_threshold``.

    Signals with ``direction`` higher (similarities) match at ``>= threshold``; lower
    (distances, integers) at ``<= threshold``. Negatives with no score are ``-inf``
    (similarity) or ``+inf`` (distance)."""
    neg = np.asarray(negatives, dtype=np.float64)
    n = len(neg)
    allowed = int(math.floor(target_fpr * n + 1e-9))
    loosest = float(signal.loosest_threshold)
    if signal.lower_is_match():
        if n == 0 or allowed >= n:
            return loosest
        worst = float(np.sort(neg)[allowed])  # the nearest negative that must not pass
        return float(min(loosest, max(0, math.ceil(worst) - 1)))
    if n == 0 or allowed >= n:
        return loosest
    worst = float(np.sort(neg)[::-1][allowed])
    return loosest if not math.isfinite(worst) else worst + SIMILARITY_EPS


def passes(values: np.ndarray, threshold: float, signal: SignalLike) -> np.ndarray:
    """Which values match at ``threshold`` in the signal's direction."""
    v = np.asarray(values, dtype=np.float64)
    return v <= threshold if signal.lower_is_match() else v >= threshold


def distribution(values: np.ndarray) -> dict[str, Any]:
    """Count, quantiles and extremes of the finite values; ``no_score`` counts the others."""
    v = np.asarray(values, dtype=np.float64)
    fin = v[np.isfinite(v)]
    out: dict[str, Any] = {"n": int(len(v)), "no_score": int(len(v) - len(fin))}
    if len(fin):
        q = np.quantile(fin, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
        out.update(
            {
                k: round(float(x), 4)
                for k, x in zip(
                    ("min", "p05", "p25", "median", "p75", "p95", "max"), q, strict=True
                )
            }
        )
        out["mean"] = round(float(fin.mean()), 4)
    return out


def default_threshold(cfg: Config, signal: SignalLike, embedder_id: str) -> float:
    """The uncalibrated threshold the matcher uses for ``signal``."""
    value = signal.threshold_default(cfg.detect, embedder_id)
    if value is None:
        raise CalibrationError(f"signal {signal.name!r} has no threshold to calibrate")
    return float(value)


# ---------------------------------------------------------------------------------------------
# collecting samples


def _references(cfg: Config, store: Store) -> tuple[dict[int, str], list[tuple[Any, Image.Image]]]:
    refs = load_reference_set(store)
    names = {cid: c.name for cid, c in refs.characters.items()}
    loaded = []
    for r in refs.images:
        img = load_reference_image(cfg, r)
        if img is not None:
            loaded.append((r, img))
    return names, loaded


def _synthetic_samples(
    cfg: Config,
    embedder: Any,
    loaded: list[tuple[Any, Image.Image]],
    *,
    semantic_per_ref: int,
    copy_per_ref: int,
    negative_per_ref: int,
    bank_samples: int,
    seed: int,
    progress: bool,
) -> list[Sample]:
    rng = random.Random(seed)
    bank = bank_images(max(2, bank_samples), seed=seed)  # not the whitening bank's draw
    backdrops = bank[0::2]
    frames: list[Image.Image] = []
    meta: list[tuple[str, frozenset[int], frozenset[int], bool]] = []
    for ref, img in loaded:
        cid = ref.character_id
        if ref.negative:
            for _ in range(negative_per_ref):
                frames.append(augment_semantic(img, rng.choice(backdrops), rng))
                meta.append(("negative_reference", frozenset(), frozenset({ALL}), False))
            continue
        for _ in range(semantic_per_ref):
            frames.append(augment_semantic(img, rng.choice(backdrops), rng))
            meta.append(("augmented_reference", frozenset({cid}), frozenset({ALL}), False))
        for _ in range(copy_per_ref):
            frames.append(augment_copy(img, rng))
            meta.append(("reference_copy", frozenset({cid}), frozenset({ALL}), True))
    for img in bank[:bank_samples]:
        frames.append(_fit_portrait(img) if rng.random() < 0.5 else img)
        meta.append(("background_bank", frozenset(), frozenset({ALL}), False))
    evs = frame_evidences(embedder, frames, cfg.process.batch_size, progress)
    return [
        Sample(source=src, evidence=ev, positive_for=pos, negative_for=neg, copy_positive=cp)
        for ev, (src, pos, neg, cp) in zip(evs, meta, strict=True)
    ]


def _stored_samples(
    cfg: Config,
    store: Store,
    embedder: Any,
    character_ids: set[int],
    unflagged_frames: int,
    seed: int,
) -> tuple[list[Sample], list[tuple[int, int, dict[str, Any], list[Sample]]]]:
    """Rejected and unflagged frames (samples), and confirmed detections' frames (to be
    picked after scoring): ``(samples, [(character_id, detection_id, signals, frames)])``."""
    samples: list[Sample] = []
    confirmed: list[tuple[int, int, dict[str, Any], list[Sample]]] = []

    def frames_of(video_id: int) -> list[VideoEvidence]:
        try:
            ev = load_evidence(store, video_id, embedder.id, embedder.dim, cfg.data_dir)
        except (ReembedNeeded, LookupError) as exc:
            log.info("calibration skips video %s: %s", video_id, exc)
            return []
        return split_frames(ev)

    with store.session() as s:
        verdicts = list(
            s.execute(
                select(
                    Detection.id,
                    Detection.video_id,
                    Detection.character_id,
                    Detection.review_state,
                    Detection.signals,
                ).where(Detection.review_state.in_(("confirmed", "rejected")))
            )
        )
        flagged = select(Detection.video_id)
        unflagged = list(
            s.execute(
                select(Frame.id, Frame.video_id)
                .join(Video, Video.id == Frame.video_id)
                .where(Video.state == VideoState.MATCHED, Video.id.not_in(flagged))
            )
        )
    for det_id, vid, cid, state, sigs in verdicts:
        if cid not in character_ids:
            continue
        evs = frames_of(vid)
        if state == "rejected":
            samples.extend(Sample("rejected", ev, negative_for=frozenset({cid})) for ev in evs)
        elif evs:
            confirmed.append(
                (
                    cid,
                    det_id,
                    dict(sigs or {}),
                    [Sample("confirmed", ev, positive_for=frozenset({cid})) for ev in evs],
                )
            )
    rng = random.Random(seed)
    if len(unflagged) > unflagged_frames:
        unflagged = rng.sample(unflagged, unflagged_frames)
    wanted: dict[int, set[int]] = {}
    for fid, vid in unflagged:
        wanted.setdefault(vid, set()).add(fid)
    for vid, fids in sorted(wanted.items()):
        for ev in frames_of(vid):
            if ev.frames[0].frame_id in fids:
                samples.append(Sample("unflagged_video", ev, negative_for=frozenset({ALL})))
    return samples, confirmed


# ---------------------------------------------------------------------------------------------
# the run


def _uncalibrated(ri: Any) -> Any:
    """The reference index with the characters' stored thresholds left out, so a frame's
    scores do not depend on an earlier calibration (recalibrating is repeatable)."""
    chars = {
        cid: dataclasses.replace(c, thresholds=()) if hasattr(c, "thresholds") else c
        for cid, c in ri.refs.characters.items()
    }
    return dataclasses.replace(ri, refs=dataclasses.replace(ri.refs, characters=chars))


def _score(samples: Sequence[Sample], signals: Sequence[Signal], ri: Any) -> None:
    for smp in samples:
        for sig in signals:
            results = sig.compare(smp.evidence, ri.refs, ri.part(sig.name))
            smp.raw[sig.name] = {
                r.character_id: float(r.raw)
                for r in results
                if r.character_id is not None and r.raw is not None
            }


def _value(smp: Sample, signal: SignalLike, cid: int) -> float:
    v = smp.raw.get(signal.name, {}).get(cid)
    if v is None or not math.isfinite(v):
        return math.inf if signal.lower_is_match() else -math.inf
    return v


def check_request(store: Store, character: str | None, target_fpr: float) -> set[int]:
    """The ids of the characters to calibrate; :class:`CalibrationError` for a bad request."""
    if not 0.0 < target_fpr < 0.5:
        raise CalibrationError(f"target false-positive rate must be in (0, 0.5), not {target_fpr}")
    from index.registry import get_character, list_characters

    if character is not None:
        ch = get_character(store, character)
        if ch is None:
            raise CalibrationError(f"no character named {character!r}")
        return {ch.id}
    ids = {c["id"] for c in list_characters(store)}
    if not ids:
        raise CalibrationError("no characters registered: nothing to calibrate")
    return ids


def calibrate(
    cfg: Config,
    store: Store,
    embedder: Any,
    *,
    character: str | None = None,
    target_fpr: float = DEFAULT_TARGET_FPR,
    semantic_per_ref: int = SEMANTIC_PER_REF,
    copy_per_ref: int = COPY_PER_REF,
    negative_per_ref: int = NEGATIVE_PER_REF,
    bank_samples: int = BANK_SAMPLES,
    unflagged_frames: int = UNFLAGGED_FRAMES,
    seed: int = 1,
    save: bool = True,
    progress: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> list[Calibration]:
    """Calibrate every character (or one) for the current embedder; store and return the
    thresholds (see the module docstring)."""
    step = on_step or (lambda _msg: None)
    targets = check_request(store, character, target_fpr)
    names, loaded = _references(cfg, store)
    signals = [s for s in make_signals(cfg.detect, embedder) if s.calibratable and s.indexed]
    step("reference index")
    ri = _uncalibrated(load_or_build(cfg, store, embedder))
    step("synthetic frames")
    samples = _synthetic_samples(
        cfg,
        embedder,
        loaded,
        semantic_per_ref=semantic_per_ref,
        copy_per_ref=copy_per_ref,
        negative_per_ref=negative_per_ref,
        bank_samples=bank_samples,
        seed=seed,
        progress=progress,
    )
    step("stored frames")
    stored, confirmed = _stored_samples(cfg, store, embedder, targets, unflagged_frames, seed)
    samples.extend(stored)
    step("scoring")
    _score(samples, signals, ri)
    for _, _, _, frames in confirmed:
        _score(frames, signals, ri)
    top_k = max(1, cfg.detect.top_k)

    out: list[Calibration] = []
    for cid in sorted(targets):
        has_images = any(r.character_id == cid and not r.negative for r, _ in loaded)
        char = ri.refs.characters.get(cid)
        for sig in signals:
            if not sig.applies_to(char, has_images):
                continue
            pos: list[tuple[str, float]] = []
            neg: list[tuple[str, float]] = []
            for smp in samples:
                v = _value(smp, sig, cid)
                if cid in smp.positive_for:
                    # copy signals learn from whole re-uses only
                    if sig.fusion_role != ROLE_COPY or smp.copy_positive:
                        pos.append((smp.source, v))
                elif ALL in smp.negative_for or cid in smp.negative_for:
                    neg.append(("other_character" if smp.positive_for else smp.source, v))
            for det_cid, _det_id, sigs, frames in confirmed:
                if det_cid != cid or not (sigs.get(sig.name) or {}).get("matched"):
                    continue
                vals = sorted(
                    (_value(f, sig, cid) for f in frames),
                    reverse=not sig.lower_is_match(),
                )
                pos.extend(("confirmed", v) for v in vals[:top_k])
            out.append(_decide(cfg, embedder.id, cid, names[cid], sig, pos, neg, target_fpr))
    if save:
        store_thresholds(store, out)
    return out


def _decide(
    cfg: Config,
    model_id: str,
    cid: int,
    name: str,
    signal: SignalLike,
    pos: list[tuple[str, float]],
    neg: list[tuple[str, float]],
    target_fpr: float,
) -> Calibration:
    pv = np.array([v for _, v in pos], dtype=np.float64)
    nv = np.array([v for _, v in neg], dtype=np.float64)
    default = default_threshold(cfg, signal, model_id)
    raw_thr = threshold_for_fpr(nv, target_fpr, signal)
    thr, note = raw_thr, ""
    real = sum(1 for src, _ in neg if src in REAL_NEGATIVE_SOURCES)
    lower_ok = len(nv) >= math.ceil(1.0 / target_fpr) and real >= MIN_REAL_NEGATIVES
    lower = signal.lower_is_match()
    looser = thr < default if not lower else thr > default
    if looser and not lower_ok:
        need = math.ceil(1.0 / target_fpr)
        thr, note = (
            default,
            (
                f"kept at the default; loosening needs {need}+ negatives with "
                f"{MIN_REAL_NEGATIVES}+ from real videos (have {len(nv)}, {real} real)"
            ),
        )
    elif (thr > default) != lower and thr != default:
        src = neg[int(np.argmax(nv) if not lower else np.argmin(nv))][0]
        note = f"stricter than the default: a negative ({src}) reached it"
    bound = signal.calibration_floor(cfg.detect, model_id)
    if bound is not None and (thr > bound[0] if lower else thr < bound[0]):
        thr, note = bound[0], f"raised to {bound[1]}"
    thr = round(float(thr), 4)
    tpr = float(passes(pv, thr, signal).mean()) if len(pv) else None
    fpr = float(passes(nv, thr, signal).mean()) if len(nv) else None
    order = np.argsort(nv) if lower else np.argsort(-nv)
    nearest = [
        {"source": neg[i][0], "value": round(float(nv[i]), 4)}
        for i in order[:5]
        if math.isfinite(nv[i])
    ]
    details = {
        "direction": signal.direction,
        "fpr_threshold": round(float(raw_thr), 4),
        "real_negatives": real,
        "may_loosen": lower_ok,
        "default_threshold": default,
        "recall": None if tpr is None else round(tpr, 4),
        "fpr": None if fpr is None else round(fpr, 5),
        "fpr_resolution": round(1.0 / len(nv), 6) if len(nv) else None,
        "positives": distribution(pv),
        "negatives": distribution(nv),
        "positive_sources": _counts(pos),
        "negative_sources": _counts(neg),
        "nearest_negatives": nearest,
        "note": note,
        "calibrated_at": utcnow().isoformat(),
    }
    return Calibration(
        character_id=cid,
        character=name,
        signal=signal.name,
        model_id=model_id,
        threshold=thr,
        default=default,
        target_fpr=target_fpr,
        positives=len(pv),
        negatives=len(nv),
        tpr=tpr,
        fpr=fpr,
        details=details,
        note=note,
    )


def _counts(items: list[tuple[str, float]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for src, _ in items:
        out[src] = out.get(src, 0) + 1
    return out


def store_thresholds(store: Store, results: Sequence[Calibration]) -> int:
    """Upsert one :class:`CharacterThreshold` row per result; returns how many."""
    n = 0
    with store.session() as s:
        for c in results:
            if c.threshold is None:
                continue
            row = s.scalar(
                select(CharacterThreshold).where(
                    CharacterThreshold.character_id == c.character_id,
                    CharacterThreshold.model_id == c.model_id,
                    CharacterThreshold.signal == c.signal,
                )
            )
            if row is None:
                row = CharacterThreshold(
                    character_id=c.character_id, model_id=c.model_id, signal=c.signal
                )
                s.add(row)
            row.threshold = float(c.threshold)
            row.target_fpr = c.target_fpr
            row.positives = c.positives
            row.negatives = c.negatives
            row.details = c.details
            row.created_at = utcnow()
            n += 1
    return n


def stored_thresholds(store: Store, model_id: str | None = None) -> list[dict[str, Any]]:
    """The calibrated thresholds in the store (of one embedder, or all), as dicts."""
    from storage.models import Character

    with store.session() as s:
        q = (
            select(CharacterThreshold, Character.name)
            .join(Character, Character.id == CharacterThreshold.character_id)
            .order_by(Character.name, CharacterThreshold.model_id, CharacterThreshold.signal)
        )
        if model_id is not None:
            q = q.where(CharacterThreshold.model_id == model_id)
        rows = s.execute(q).all()
    return [
        {
            "character": name,
            "model_id": t.model_id,
            "signal": t.signal,
            "threshold": t.threshold,
            "target_fpr": t.target_fpr,
            "positives": t.positives,
            "negatives": t.negatives,
            "recall": (t.details or {}).get("recall"),
            "fpr": (t.details or {}).get("fpr"),
            "created_at": t.created_at,
        }
        for t, name in rows
    ]
