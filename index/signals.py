"""Signals: one class per kind of evidence, all behind one interface.

Following the python-threatexchange ``SignalType`` split, each signal says

* ``name`` and ``kind``: ``copy`` (the same picture re-used: flags on its own), ``semantic``
  (the character itself: flags on its own under temporal consistency) or ``context``
  (caption, provenance: explains a flag, never makes one);
* :meth:`Signal.features`: what it reads from one video's stored row, frames and vectors;
* :meth:`Signal.index_references`: how the references become a :class:`VectorIndex`
  (a FAISS index plus the metadata of each FAISS id, since FAISS stores only integers);
* :meth:`Signal.compare`: one :class:`SignalResult` per character, with a ``score`` in [0, 1]
  where 0.5 sits at the decision threshold, the ``raw`` value (distance or similarity), and
  ``matched``.

The fusion in :mod:`index.matcher` sees only these results.

Image embeddings are compared after a *background whitening*: signed square root, then
PCA-whitening estimated on a fixed bank of generic images (cluttered backgrounds and generic
cartoon figures, see :mod:`index.refindex`), then L2 normalisation. Pooled CNN features share a
large common component (every frame of a busy background looks alike to them); whitening
removes what generic clutter and generic figures have in common. On top of it, the few-shot
classifier of :mod:`index.fewshot` decides which registered character a region shows.
"""

from __future__ import annotations

import io
import math
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import faiss
import numpy as np
from PIL import Image

from charwatch.config import DetectConfig

COPY = "copy"
SEMANTIC = "semantic"
CONTEXT = "context"

PDQ_BITS = 256
DIHEDRAL_NAMES = (
    "original",
    "rot90",
    "rot180",
    "rot270",
    "flip_v",
    "flip_h",
    "transpose",
    "transverse",
)
_DIHEDRAL_OPS = (
    None,
    Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_180,
    Image.Transpose.ROTATE_270,
    Image.Transpose.FLIP_TOP_BOTTOM,
    Image.Transpose.FLIP_LEFT_RIGHT,
    Image.Transpose.TRANSPOSE,
    Image.Transpose.TRANSVERSE,
)
GENERIC_PROMPTS = (
    "a photo",
    "a video frame",
    "a cartoon character",
    "an anime character",
    "a person",
    "text on a screen",
)
_SEARCH_K = 256  # neighbours fetched per query vector (all of them for small reference sets)


# ---------------------------------------------------------------------------------------------
# per-embedder defaults


@dataclass(frozen=True)
class EmbedProfile:
    """Decision threshold and score scale of the whitened image similarity for one embedder.

    ``threshold`` maps to score 0.5, ``floor`` (typical unrelated frame) to 0 and ``ceiling``
    to 1. ``text_threshold`` is the raw image-text cosine for prompt matches.
    """

    threshold: float
    floor: float
    ceiling: float
    text_threshold: float = 0.27
    calibrated: bool = False


# The embedding signal's raw value is the few-shot classifier's probability (mean of the top-k
# frames), so one scale serves every embedder. effnet-lite0 (GeM regions + colour), measured
# with the detector's own code; each (video, registered character) pair scored by its
# second-best frame (two frames must match):
#   held-out demo mix (tests/test_detection_quality.py, 11 videos): positives min 0.68 (a
#   picture-in-picture 40 % wide), negatives max 0.40 (Inkpaw for Kitsumaru);
#   same-style family (bench/samestyle.py, 8 registered characters of one style; frames of
#   other clips than the benchmark's): at 0.5 new drawings are found in 0.35-0.48 of the
#   frames at a frame precision of 0.95-0.98; copies in all.
# 0.55 is the fused threshold at precision 0.9 on the same-style tune seed (seed 1, 184 videos);
# on the report seed (seed 2) it flags 2 of 80 same-style strangers and look-alikes (4 at 0.5).
# CLIP: the same scale is assumed until measured (not calibrated).
PROFILES: dict[str, EmbedProfile] = {
    "effnet-lite0": EmbedProfile(threshold=0.55, floor=0.05, ceiling=0.95, calibrated=True),
    "clip": EmbedProfile(threshold=0.5, floor=0.05, ceiling=0.95, text_threshold=0.27),
}
DEFAULT_PROFILE = EmbedProfile(threshold=0.5, floor=0.05, ceiling=0.95)


def embed_profile(embedder_id: str) -> EmbedProfile:
    """The profile for an embedder id (``effnet-lite0:imagenet:fp32`` -> ``effnet-lite0``)."""
    family = embedder_id.split(":", 1)[0]
    return PROFILES.get(family, DEFAULT_PROFILE)


def embed_threshold(cfg: DetectConfig, embedder_id: str) -> float:
    """``cfg.embed_threshold`` when set (> 0), else the embedder's default."""
    return cfg.embed_threshold if cfg.embed_threshold > 0 else embed_profile(embedder_id).threshold


def calibrate_similarity(raw: float, threshold: float, floor: float, ceiling: float) -> float:
    """Piecewise-linear map: ``floor`` -> 0, ``threshold`` -> 0.5, ``ceiling`` -> 1, clipped."""
    if raw >= threshold:
        span = max(ceiling - threshold, 1e-6)
        return float(min(1.0, 0.5 + 0.5 * (raw - threshold) / span))
    span = max(threshold - floor, 1e-6)
    return float(max(0.0, 0.5 * (raw - floor) / span))


def calibrate_distance(distance: int, max_distance: int) -> float:
    """PDQ bits: 0 -> 1, ``max_distance`` -> 0.5, 128 (unrelated) -> 0."""
    max_distance = max(1, max_distance)
    if distance <= max_distance:
        return 1.0 - 0.5 * distance / max_distance
    return float(max(0.0, 0.5 * (128 - distance) / max(1, 128 - max_distance)))


# ---------------------------------------------------------------------------------------------
# data the signals read


@dataclass
class SignalResult:
    """One signal's verdict for one (video, character); ``character_id`` None: video-wide."""

    signal: str
    kind: str
    character_id: int | None
    score: float
    raw: float | None
    matched: bool
    frame_t: float | None = None
    reference_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """A JSON-safe dict (floats rounded) for ``Detection.signals``."""

        def clean(v: Any) -> Any:
            if isinstance(v, float | np.floating):
                return round(float(v), 4)
            if isinstance(v, np.integer):
                return int(v)
            if isinstance(v, dict):
                return {str(k): clean(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [clean(x) for x in v]
            return v

        return clean(
            {
                "kind": self.kind,
                "score": self.score,
                "raw": self.raw,
                "matched": self.matched,
                "frame_t": self.frame_t,
                "reference_id": self.reference_id,
                **self.details,
            }
        )


@dataclass
class FrameRow:
    """A stored frame, as the signals see it."""

    frame_id: int
    t: float
    pdq: str | None
    pdq_quality: int | None
    thumb_path: str | None = None
    image_path: str | None = None


@dataclass
class VideoEvidence:
    """Everything stored for one video that a signal may read.

    ``vectors`` are the region embeddings (float32, rows L2-normalised) of ``model_id``;
    ``vector_frame[i]`` is the index in ``frames`` of row ``i``, ``vector_region[i]`` its region.
    """

    video_id: int
    caption: str = ""
    hashtags: list[str] = field(default_factory=list)
    platform: str = ""
    author: str | None = None
    duration_s: float | None = None
    ai_label: str | None = None
    c2pa_state: str | None = None
    c2pa_info: dict[str, Any] | None = None
    frames: list[FrameRow] = field(default_factory=list)
    model_id: str | None = None
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    vector_frame: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    vector_region: list[str] = field(default_factory=list)
    data_dir: str | None = None  # stored frame paths are relative to it


@dataclass(frozen=True)
class CharacterRef:
    """A registered character as the signals see it.

    ``min_frames`` / ``min_seconds``: its match policy (None: the config default, no
    minimum duration). ``thresholds``: ``(signal name, threshold)`` pairs calibrated for the
    current embedder (``charwatch calibrate``); a signal without one uses its default.
    """

    id: int
    name: str
    aliases: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    min_frames: int | None = None
    min_seconds: float | None = None
    thresholds: tuple[tuple[str, float], ...] = ()

    def threshold(self, signal: str) -> float | None:
        """The calibrated threshold of ``signal`` for this character, or None."""
        for name, value in self.thresholds:
            if name == signal:
                return float(value)
        return None


@dataclass(frozen=True)
class ReferenceImage:
    """A reference image row; ``path`` is as stored (relative to ``data_dir``)."""

    reference_id: int
    character_id: int
    path: str
    sha256: str
    negative: bool = False

    @classmethod
    def from_row(cls, row: Any) -> ReferenceImage:
        """From a ``storage.models.Reference`` row."""
        return cls(row.id, row.character_id, row.path, row.sha256, bool(row.negative))


@dataclass
class ReferenceSet:
    """The registry snapshot an index is built from."""

    characters: dict[int, CharacterRef]
    images: list[ReferenceImage]

    def positives(self, character_id: int) -> list[ReferenceImage]:
        return [r for r in self.images if r.character_id == character_id and not r.negative]


@dataclass
class IndexInputs:
    """What ``index_references`` may use: the embedder, the reference pictures and the bank."""

    embedder: Any
    load_image: Callable[[ReferenceImage], Image.Image | None]
    bank: np.ndarray | None = None  # background-bank embeddings (n, dim) of the same embedder
    backdrops: Sequence[Image.Image] = ()  # generic backdrops to paste reference subjects on

    def pictures(
        self, refs: ReferenceSet, *, negatives: bool = True
    ) -> Iterator[tuple[ReferenceImage, Image.Image]]:
        """``(reference, picture)`` for each reference that loads (positives only when
        ``negatives`` is False)."""
        for ref in refs.images:
            if ref.negative and not negatives:
                continue
            img = self.load_image(ref)
            if img is not None:
                yield ref, img


# ---------------------------------------------------------------------------------------------
# FAISS index with metadata


class VectorIndex:
    """A FAISS index (float inner product or binary Hamming) plus per-id metadata and arrays."""

    def __init__(
        self,
        index: Any,
        meta: list[dict[str, Any]],
        arrays: dict[str, np.ndarray] | None = None,
    ) -> None:
        if index.ntotal != len(meta):
            raise ValueError(f"index has {index.ntotal} vectors but {len(meta)} metadata rows")
        self.index = index
        self.meta = meta
        self.arrays = arrays or {}

    @property
    def binary(self) -> bool:
        return isinstance(self.index, faiss.IndexBinary)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def flat_ip(cls, vectors: np.ndarray, meta: list[dict[str, Any]], **arrays: np.ndarray):
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = faiss.IndexFlatIP(vectors.shape[1])
        if len(vectors):
            index.add(vectors)
        return cls(index, meta, dict(arrays))

    @classmethod
    def binary_flat(cls, hex_hashes: Sequence[str], meta: list[dict[str, Any]]):
        index = faiss.IndexBinaryFlat(PDQ_BITS)
        if hex_hashes:
            index.add(hashes_to_array(hex_hashes))
        return cls(index, meta)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` of the ``k`` nearest (ids -1 where fewer exist)."""
        k = max(1, min(k, self.ntotal))
        return self.index.search(np.ascontiguousarray(queries), k)

    def to_bytes(self) -> bytes:
        """One ``.npz`` blob: the serialised FAISS index and the extra arrays (not the meta)."""
        ser = (
            faiss.serialize_index_binary(self.index)
            if self.binary
            else faiss.serialize_index(self.index)
        )
        buf = io.BytesIO()
        np.savez(buf, __faiss__=ser, __binary__=np.array([self.binary]), **self.arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, meta: list[dict[str, Any]]) -> VectorIndex:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            binary = bool(z["__binary__"][0])
            ser = z["__faiss__"]
            index = faiss.deserialize_index_binary(ser) if binary else faiss.deserialize_index(ser)
            arrays = {k: z[k] for k in z.files if not k.startswith("__")}
        return cls(index, meta, arrays)


def hashes_to_array(hex_hashes: Sequence[str]) -> np.ndarray:
    """Hex PDQ hashes -> ``(n, 32)`` uint8, the layout FAISS binary indexes take."""
    return np.frombuffer(b"".join(bytes.fromhex(h) for h in hex_hashes), dtype=np.uint8).reshape(
        -1, PDQ_BITS // 8
    )


# ---------------------------------------------------------------------------------------------
# background whitening


def signed_sqrt(x: np.ndarray) -> np.ndarray:
    """Power normalisation (signed square root), rows re-normalised: tames bursty features."""
    y = np.sign(x) * np.sqrt(np.abs(x))
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


class Whitener:
    """PCA-whitening fitted on a background bank, regularised by ``eps`` x the top eigenvalue.

    Low-rank form: with bank eigenvectors V (k x d) and eigenvalues L,
    ``w(x) = x/sqrt(e) + ((x V^T) * (1/sqrt(L+e) - 1/sqrt(e))) V``, then L2-normalised, where
    x is the signed-square-rooted vector minus the bank mean. Directions the bank never
    varies in keep weight 1/sqrt(e); common background directions are damped.
    """

    EPS = 1e-3

    def __init__(self, mean: np.ndarray, basis: np.ndarray, gains: np.ndarray, base: float):
        self.mean = mean.astype(np.float32)
        self.basis = basis.astype(np.float32)
        self.gains = gains.astype(np.float32)
        self.base = float(base)

    @classmethod
    def fit(cls, bank: np.ndarray, eps: float = EPS) -> Whitener:
        x = signed_sqrt(np.asarray(bank, dtype=np.float64))
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        lam = s**2 / max(1, len(x))
        e = eps * float(lam.max()) if lam.size and lam.max() > 0 else 1.0
        keep = lam > 1e-12 * max(float(lam.max()), 1e-30)
        base = 1.0 / math.sqrt(e)
        gains = 1.0 / np.sqrt(lam[keep] + e) - base
        return cls(mean, vt[keep], gains, base)

    @classmethod
    def identity(cls, dim: int) -> Whitener:
        return cls(np.zeros(dim), np.zeros((0, dim)), np.zeros(0), 1.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = signed_sqrt(np.asarray(x, dtype=np.float32)) - self.mean
        y = x * self.base + ((x @ self.basis.T) * self.gains) @ self.basis
        return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "w_mean": self.mean,
            "w_basis": self.basis,
            "w_gains": self.gains,
            "w_base": np.array([self.base], dtype=np.float32),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Whitener:
        return cls(arrays["w_mean"], arrays["w_basis"], arrays["w_gains"], arrays["w_base"][0])


# ---------------------------------------------------------------------------------------------
# the interface


class Signal(ABC):
    """One kind of evidence. Subclasses set ``name`` and ``kind`` and implement ``compare``."""

    name: ClassVar[str]
    kind: ClassVar[str]
    indexed: ClassVar[bool] = False  # True when it keeps a reference index

    def __init__(self, cfg: DetectConfig, embedder: Any = None) -> None:
        self.cfg = cfg
        self.embedder = embedder

    def available(self) -> bool:
        """False when it cannot run here (e.g. text prompts without a text tower)."""
        return True

    def features(self, video: VideoEvidence) -> Any:
        """What this signal reads from the stored video."""
        return video

    def index_references(self, refs: ReferenceSet, inputs: IndexInputs) -> VectorIndex | None:
        """Index the references (signals with ``indexed`` True)."""
        return None

    @abstractmethod
    def compare(
        self, video: VideoEvidence, refs: ReferenceSet, index: VectorIndex | None
    ) -> list[SignalResult]:
        """Results for the characters with any evidence (context signals: possibly one
        video-wide result with ``character_id`` None)."""


# ---------------------------------------------------------------------------------------------
# copy: PDQ


class PdqSignal(Signal):
    """Re-use of a reference picture: frame PDQ vs the 8 dihedral hashes of each reference.

    The 8 variants are hashed from the rotated/mirrored pixels: pdqhash's own dihedral
    shortcut was measured 34 bits away from the hash of a mirrored flat-colour drawing,
    against 2 bits for hashing the mirrored pixels.

    Both sides are hashed after border removal at one canonical size
    (:func:`pipeline.hashing.canonical`), so letterboxed and mirrored re-uses match. Frames
    and references with PDQ quality below ``pdq_min_quality`` are not used (flat images hash
    unreliably). Only positive references are indexed.
    """

    name = "pdq"
    kind = COPY
    indexed = True

    def features(self, video: VideoEvidence) -> list[tuple[float, str, int]]:
        """(t, hash, quality) of the frames good enough to compare."""
        q = self.cfg.pdq_min_quality
        return [
            (f.t, f.pdq, int(f.pdq_quality or 0))
            for f in video.frames
            if f.pdq and len(f.pdq) == PDQ_BITS // 4 and (f.pdq_quality or 0) >= q
        ]

    def index_references(self, refs: ReferenceSet, inputs: IndexInputs) -> VectorIndex:
        from pipeline.hashing import CANONICAL_SIZE, canonical, pdq

        hashes: list[str] = []
        meta: list[dict[str, Any]] = []
        for ref, img in inputs.pictures(refs, negatives=False):
            # Border removal cuts one layer of flat bars. A reference with its own plain
            # margins re-uploaded inside letterbox bars loses only the bars, so the picture
            # is hashed both with its margins cut and whole.
            forms = (
                ("cropped", canonical(img)),
                ("whole", img.resize((CANONICAL_SIZE, CANONICAL_SIZE), Image.Resampling.BILINEAR)),
            )
            seen: set[str] = set()
            for form, base in forms:
                for name, op in zip(DIHEDRAL_NAMES, _DIHEDRAL_OPS, strict=True):
                    h, quality = pdq(base if op is None else base.transpose(op), normalize=False)
                    if h in seen:
                        continue
                    seen.add(h)
                    hashes.append(h)
                    meta.append(
                        {
                            "reference_id": ref.reference_id,
                            "character_id": ref.character_id,
                            "variant": name,
                            "form": form,
                            "quality": quality,
                        }
                    )
        return VectorIndex.binary_flat(hashes, meta)

    def compare(
        self, video: VideoEvidence, refs: ReferenceSet, index: VectorIndex | None
    ) -> list[SignalResult]:
        frames = self.features(video)
        if index is None or index.ntotal == 0 or not frames:
            return []
        dist, ids = index.search(hashes_to_array([h for _, h, _ in frames]), 64)
        min_q = self.cfg.pdq_min_quality
        # per character and frame: the nearest reference hash
        per: dict[int, np.ndarray] = {}
        near: dict[int, list[dict[str, Any] | None]] = {}
        for fi in range(len(frames)):
            for d, i in zip(dist[fi], ids[fi], strict=True):
                if i < 0:
                    continue
                m = index.meta[int(i)]
                if m["quality"] < min_q:
                    continue
                cid = m["character_id"]
                if cid not in per:
                    per[cid] = np.full(len(frames), np.inf)
                    near[cid] = [None] * len(frames)
                if int(d) < per[cid][fi]:
                    per[cid][fi] = int(d)
                    near[cid][fi] = m
        secs = frame_seconds([t for t, _, _ in frames], video.duration_s)
        out = []
        for cid, dists in per.items():
            char = refs.characters.get(cid)
            calibrated = char.threshold(self.name) if char is not None else None
            max_d = int(round(calibrated)) if calibrated is not None else self.cfg.pdq_max_distance
            policy = MatchPolicy.for_character(char, 1, copy=True)
            fi = int(np.argmin(dists))
            d, m = int(dists[fi]), near[cid][fi]
            assert m is not None
            over, need, seconds, matched = policy.check(
                dists <= max_d, secs, int(np.isfinite(dists).sum())
            )
            out.append(
                SignalResult(
                    signal=self.name,
                    kind=self.kind,
                    character_id=cid,
                    score=calibrate_distance(d, max_d),
                    raw=float(d),
                    matched=matched,
                    frame_t=frames[fi][0],
                    reference_id=m["reference_id"],
                    details={
                        "distance": d,
                        "max_distance": max_d,
                        "calibrated": calibrated is not None,
                        "variant": m["variant"],
                        "form": m.get("form"),
                        "frames_matched": over,
                        "frames_needed": need,
                        "seconds_matched": seconds,
                        "min_seconds": policy.min_seconds,
                        "frames_used": len(frames),
                    },
                )
            )
        return out


# ---------------------------------------------------------------------------------------------
# semantic: image embeddings


def _aggregate_frames(
    n_frames: int,
    vector_frame: np.ndarray,
    sims: np.ndarray,
    ids: np.ndarray,
    meta: list[dict[str, Any]],
    suppressed_value: float,
) -> dict[int, dict[str, Any]]:
    """Per character and frame: the best region similarity, with its reference and region row.

    Per region, a character's similarity counts only when it beats its competitors: the
    character's own negative references and every other character's references (the
    nearest character wins the region). A region that loses is recorded as
    ``suppressed_value`` (at most) and counted in ``suppressed``.
    """
    per: dict[int, dict[str, Any]] = {}
    for row in range(sims.shape[0]):
        fi = int(vector_frame[row])
        pos: dict[int, tuple[float, int]] = {}
        neg: dict[int, float] = {}
        for s, i in zip(sims[row], ids[row], strict=True):
            if i < 0:
                continue
            m = meta[int(i)]
            cid, s = m["character_id"], float(s)
            if m.get("negative"):
                neg[cid] = max(neg.get(cid, -np.inf), s)
            elif cid not in pos or s > pos[cid][0]:
                pos[cid] = (s, m["reference_id"])
        for cid, (s, ref_id) in pos.items():
            rival = max([neg.get(cid, -np.inf)] + [v for c, (v, _) in pos.items() if c != cid])
            won = s > rival
            value = s if won else min(s, suppressed_value)
            acc = per.get(cid)
            if acc is None:
                acc = {
                    "score": np.full(n_frames, -np.inf, dtype=np.float32),
                    "ref": [None] * n_frames,
                    "row": [-1] * n_frames,
                    "suppressed": 0,
                }
                per[cid] = acc
            acc["suppressed"] += not won
            if value > acc["score"][fi]:
                acc["score"][fi] = value
                acc["ref"][fi] = ref_id
                acc["row"][fi] = row
    return per


def frame_seconds(times: Sequence[float], duration_s: float | None = None) -> np.ndarray:
    """How many seconds of the video each sampled frame stands for: from halfway to the
    previous frame to halfway to the next (the first from 0, the last to the end, or half a
    median step past it when the duration is unknown)."""
    t = np.asarray(times, dtype=np.float64)
    if t.size == 0:
        return np.zeros(0)
    if t.size == 1:
        return np.array([float(duration_s) if duration_s and duration_s > 0 else 1.0])
    mids = (t[1:] + t[:-1]) / 2
    step = float(np.median(np.diff(t)))
    end = float(duration_s) if duration_s and duration_s > t[-1] else t[-1] + step / 2
    lo = np.concatenate([[0.0], mids])
    hi = np.concatenate([mids, [end]])
    return np.maximum(hi - lo, 0.0)


@dataclass(frozen=True)
class MatchPolicy:
    """How much of a video must match: ``min_frames`` sampled frames over the threshold and,
    when ``min_seconds`` > 0, that many seconds of video covered by them. ``strict``: the
    frame count is not lowered for videos with fewer frames (an explicit character policy)."""

    min_frames: int = 1
    min_seconds: float = 0.0
    strict: bool = False

    @classmethod
    def for_character(
        cls, char: CharacterRef | None, default_min_frames: int, *, copy: bool = False
    ) -> MatchPolicy:
        """The character's own policy, else the default (copies: one frame is enough)."""
        explicit = char is not None and char.min_frames is not None
        frames = char.min_frames if explicit and char is not None else None
        if frames is None:
            frames = 1 if copy else default_min_frames
        seconds = char.min_seconds if char is not None and char.min_seconds else 0.0
        return cls(max(1, int(frames)), max(0.0, float(seconds)), strict=explicit)

    def check(
        self, over: np.ndarray, seconds_per_frame: np.ndarray, n_valid: int
    ) -> tuple[int, int, float, bool]:
        """``(frames over, frames needed, seconds matched, matched)`` for a boolean mask of
        the frames over the threshold."""
        over = np.asarray(over, dtype=bool)
        count = int(over.sum())
        need = self.min_frames if self.strict else max(1, min(self.min_frames, n_valid))
        secs = float(seconds_per_frame[over].sum()) if len(seconds_per_frame) else 0.0
        ok = count > 0 and count >= need and secs + 1e-6 >= self.min_seconds
        return count, need, round(secs, 3), ok


def temporal_fusion(
    frame_scores: np.ndarray, threshold: float, top_k: int, min_frames: int
) -> tuple[float, int, int, bool]:
    """``(top-k mean, frames over threshold, frames needed, matched)`` for one character.

    Frames with no score (-inf) count as absent. Fewer frames than ``min_frames`` in the
    video lower the requirement to the frames it has.
    """
    valid = frame_scores[np.isfinite(frame_scores)]
    if valid.size == 0:
        return float("-inf"), 0, max(1, min_frames), False
    top = np.sort(valid)[::-1][: max(1, top_k)]
    over = int((valid >= threshold).sum())
    need = max(1, min(min_frames, int(valid.size)))
    return float(top.mean()), over, need, over >= need


def _fuse_character(
    scores: np.ndarray,
    threshold: float,
    top_k: int,
    policy: MatchPolicy,
    seconds_per_frame: np.ndarray,
) -> tuple[float, int, int, float, bool]:
    """``(top-k mean, frames over, frames needed, seconds matched, matched)``."""
    valid = np.isfinite(scores)
    if not valid.any():
        return float("-inf"), 0, policy.min_frames, 0.0, False
    top = np.sort(scores[valid])[::-1][: max(1, top_k)]
    over, need, secs, ok = policy.check(
        valid & (scores >= threshold), seconds_per_frame, int(valid.sum())
    )
    return float(top.mean()), over, need, secs, ok


# ---------------------------------------------------------------------------------------------
# reference pictures without their background


def foreground_mask(img: Image.Image, size: int = 128, tol: float = 40.0) -> np.ndarray | None:
    """Where the subject is in a reference picture drawn on a plain or gradient background:
    a ``size`` x ``size`` boolean mask, or None when no such background is found.

    The background colour of each row is taken from the left and right edges (so vertical
    gradients are followed); pixels near it that are connected to the picture's edge are
    background, everything else (including enclosed areas of background colour, such as a
    white belly inside an outline) is the subject.
    """
    small = np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    small = small.astype(np.float32)
    # a plain background: both side edges agree row by row, top and bottom rows are flat
    sides_agree = np.abs(small[:, :3].mean(1) - small[:, -3:].mean(1)).sum(1) < tol
    flat = [np.abs(r - np.median(r, axis=0)).sum(1) < tol for r in (small[0], small[-1])]
    if sides_agree.mean() < 0.9 or min(float(f.mean()) for f in flat) < 0.9:
        return None
    edge = np.concatenate([small[:, :3], small[:, -3:]], axis=1)
    rowbg = np.median(edge, axis=1)
    bgish = np.abs(small - rowbg[:, None, :]).sum(axis=2) < tol
    reach = np.zeros_like(bgish)
    reach[0], reach[-1], reach[:, 0], reach[:, -1] = bgish[0], bgish[-1], bgish[:, 0], bgish[:, -1]
    for _ in range(4 * size):
        grow = reach.copy()
        grow[1:] |= reach[:-1]
        grow[:-1] |= reach[1:]
        grow[:, 1:] |= reach[:, :-1]
        grow[:, :-1] |= reach[:, 1:]
        grow &= bgish
        if np.array_equal(grow, reach):
            break
        reach = grow
    fg = ~reach
    share = float(fg.mean())
    if share < 0.03 or share > 0.9:
        return None
    return fg


def composite_on(
    img: Image.Image, mask: np.ndarray, backdrop: Image.Image, size: int = 224, fill: float = 0.85
) -> Image.Image:
    """The masked subject of ``img``, scaled to ``fill`` of a ``size`` square cut from the
    middle of ``backdrop``, pasted in its centre."""
    w, h = img.size
    ys, xs = np.nonzero(mask)
    n = mask.shape[0]
    box = (
        int(xs.min() * w / n),
        int(ys.min() * h / n),
        int(math.ceil((xs.max() + 1) * w / n)),
        int(math.ceil((ys.max() + 1) * h / n)),
    )
    alpha = Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.Resampling.BILINEAR)
    subject, alpha = img.convert("RGB").crop(box), alpha.crop(box)
    bd = backdrop.convert("RGB")
    side = min(bd.size)
    left, top = (bd.width - side) // 2, (bd.height - side) // 2
    canvas = bd.crop((left, top, left + side, top + side)).resize((size, size))
    scale = fill * size / max(subject.size)
    sw, sh = max(1, round(subject.width * scale)), max(1, round(subject.height * scale))
    canvas.paste(
        subject.resize((sw, sh), Image.Resampling.BICUBIC),
        ((size - sw) // 2, (size - sh) // 2),
        alpha.resize((sw, sh), Image.Resampling.BILINEAR),
    )
    return canvas


# ---------------------------------------------------------------------------------------------
# semantic: image embeddings


QUERY_NORM_K = 5  # bank neighbours averaged for the query-side score normalisation
QUERY_BANK_MAX = 1024  # whitened bank vectors kept in the index for it
SUPPRESSED = -1.0  # the score of a region another character (or a negative) wins


def _classifier_chars(index: VectorIndex) -> list[int]:
    """The character ids of the index's classifier columns (none without a classifier)."""
    return [int(c) for c in index.arrays.get("clf_chars", ())]


def _best_per_frame(
    scores: np.ndarray, vector_frame: np.ndarray, n_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per frame and column of ``scores`` (regions, columns): the best region's score (-inf
    for a frame without regions) and its row (-1)."""
    frame = np.asarray(vector_frame, dtype=np.int64)
    best = np.full((n_frames, scores.shape[1]), -np.inf, dtype=np.float32)
    rows = np.full((n_frames, scores.shape[1]), -1, dtype=np.int64)
    for fi in np.unique(frame):
        idx = np.flatnonzero(frame == fi)
        arg = scores[idx].argmax(axis=0)
        best[fi] = scores[idx[arg], np.arange(scores.shape[1])]
        rows[fi] = idx[arg]
    return best, rows


class EmbeddingSignal(Signal):
    """The character itself: which registered character, if any, a frame region shows.

    Region descriptors (:meth:`pipeline.embedders.base.Embedder.embed_frames`: for
    effnet-lite0, GeM-pooled regions of one feature map plus a colour histogram) are whitened
    against the background bank, then scored by the few-shot classifier of
    :mod:`index.fewshot`, trained at index build on the references' subjects pasted on
    generic backdrops at several sizes and poses, against the bank, the negative references
    and synthetic same-style strangers (recoloured references, chimeras of two characters).
    A region's score for a character is the classifier's probability that it shows that
    character and none of the others; a frame's score is its best region. The video score
    is the mean of the ``top_k`` best frames; the character is flagged when its match policy
    holds (``min_frames`` frames at or over the threshold, and ``min_seconds``).

    For the explanation, the nearest reference of the character in the best region is
    named (whitened cosine to per-reference mean descriptors, query-normalised against the
    bank); an index without a classifier (no registered character) falls back to that
    similarity.
    """

    name = "embedding"
    kind = SEMANTIC
    indexed = True

    def available(self) -> bool:
        return self.embedder is not None

    @property
    def threshold(self) -> float:
        return embed_threshold(self.cfg, self.embedder.id)

    def threshold_for(self, char: CharacterRef | None) -> tuple[float, bool]:
        """``(threshold, calibrated)`` for a character."""
        t = char.threshold(self.name) if char is not None else None
        if t is not None and self.cfg.embed_threshold <= 0:
            return t, True
        return self.threshold, False

    def features(self, video: VideoEvidence) -> np.ndarray:
        return video.vectors

    def index_references(self, refs: ReferenceSet, inputs: IndexInputs) -> VectorIndex:
        """Whitener, per-reference vectors (nearest-reference explanations) and the few-shot
        classifier (:mod:`index.fewshot`) of the registered characters."""
        from index import fewshot

        emb = inputs.embedder
        chars = sorted(refs.characters)
        klass = {cid: k + 1 for k, cid in enumerate(chars)}
        pos_pics: list[Image.Image] = []
        pos_labels: list[int] = []
        neg_pics: list[Image.Image] = []
        firsts: list[int] = []  # where each reference variant's pictures start
        meta: list[dict[str, Any]] = []
        subjects: list[tuple[int, Image.Image, np.ndarray]] = []
        for ref, img in inputs.pictures(refs):
            img = img.convert("RGB")
            mask = foreground_mask(img) if inputs.backdrops else None
            rng = fewshot.seeded(ref.sha256, ref.reference_id)
            pics = fewshot.positive_pictures(img, mask, inputs.backdrops, rng)
            at = len(neg_pics) if ref.negative else len(pos_pics)
            (neg_pics if ref.negative else pos_pics).extend(pics)
            if not ref.negative:
                pos_labels.extend([klass.get(ref.character_id, 0)] * len(pics))
                if mask is not None:
                    subjects.append((ref.character_id, img, mask))
            for mirrored in (False, True):
                name = ("composite" if mask is not None else "original") + (
                    "_mirror" if mirrored else ""
                )
                firsts.append(at + int(mirrored))
                meta.append(
                    {
                        "reference_id": ref.reference_id,
                        "character_id": ref.character_id,
                        "negative": ref.negative,
                        "aug": name,
                        "pictures": len(pics),
                    }
                )
        strangers = fewshot.stranger_pictures(
            subjects, inputs.backdrops, fewshot.seeded("strangers", len(subjects))
        )
        bank = np.asarray(inputs.bank, np.float32) if inputs.bank is not None else None
        whiten = (
            Whitener.fit(bank) if bank is not None and len(bank) > 1 else Whitener.identity(emb.dim)
        )
        empty = np.zeros((0, emb.dim), np.float32)
        pos = emb.embed_images(pos_pics) if pos_pics else empty
        neg = emb.embed_images(neg_pics) if neg_pics else empty
        odd = emb.embed_images(strangers) if strangers else empty
        vecs = np.zeros((len(meta), emb.dim), np.float32)
        for i, (first, m) in enumerate(zip(firsts, meta, strict=True)):
            src = neg if m["negative"] else pos  # mirrored pictures alternate with the others
            vecs[i] = src[first : first + m["pictures"] : 2].mean(axis=0)
        arrays = whiten.arrays()
        background = [whiten(neg)] if len(neg) else []
        if bank is not None and len(bank):
            step = max(1, math.ceil(len(bank) / QUERY_BANK_MAX))
            arrays["qbank"] = whiten(bank[::step]).astype(np.float16)
            background.append(whiten(bank))
        if len(odd):
            background.append(whiten(odd))
        if chars and len(pos):
            weights, bias = fewshot.train(
                whiten(pos),
                np.asarray(pos_labels),
                np.concatenate(background) if background else empty,
                len(chars),
            )
            arrays["clf_w"], arrays["clf_b"] = weights, bias
            arrays["clf_chars"] = np.asarray(chars, dtype=np.int64)
        return VectorIndex.flat_ip(whiten(vecs), meta, **arrays)

    def region_scores(self, vectors: np.ndarray, index: VectorIndex) -> tuple[np.ndarray, ...]:
        """``(similarities, ids)`` of the regions' nearest references, normalised."""
        return self._nearest(Whitener.from_arrays(index.arrays)(vectors), index)

    def class_scores(self, vectors: np.ndarray, index: VectorIndex) -> dict[int, np.ndarray]:
        """Per character id, each region's probability of showing it (the few-shot
        classifier); empty for an index without one."""
        probs = self._probabilities(Whitener.from_arrays(index.arrays)(vectors), index)
        return {cid: probs[:, k] for k, cid in enumerate(_classifier_chars(index))}

    @staticmethod
    def _nearest(q: np.ndarray, index: VectorIndex) -> tuple[np.ndarray, ...]:
        """:meth:`region_scores` of whitened region vectors ``q``."""
        sims, ids = index.search(q, _SEARCH_K)
        qbank = index.arrays.get("qbank")
        if qbank is not None and len(qbank):
            near = q @ np.asarray(qbank, dtype=np.float32).T
            k = min(QUERY_NORM_K, near.shape[1])
            shift = np.sort(near, axis=1)[:, -k:].mean(axis=1)
            sims = sims - shift[:, None]
        return sims, ids

    @staticmethod
    def _probabilities(q: np.ndarray, index: VectorIndex) -> np.ndarray:
        """``(regions, characters)`` classifier probabilities of whitened vectors ``q``, in the
        order of :func:`_classifier_chars` (no column without a classifier)."""
        from index import fewshot

        if "clf_w" not in index.arrays or len(q) == 0:
            return np.zeros((len(q), 0), np.float32)
        return fewshot.probabilities(index.arrays["clf_w"], index.arrays["clf_b"], q)[:, 1:]

    def compare(
        self, video: VideoEvidence, refs: ReferenceSet, index: VectorIndex | None
    ) -> list[SignalResult]:
        vectors = self.features(video)
        if index is None or index.ntotal == 0 or len(vectors) == 0:
            return []
        q = Whitener.from_arrays(index.arrays)(vectors)
        sims, ids = self._nearest(q, index)
        near = _aggregate_frames(
            len(video.frames), video.vector_frame, sims, ids, index.meta, SUPPRESSED
        )
        probs = self._probabilities(q, index)
        per: dict[int, dict[str, Any]]
        if probs.shape[1]:
            score, row = _best_per_frame(probs, video.vector_frame, len(video.frames))
            per = {
                cid: {"score": score[:, k], "row": row[:, k]}
                for k, cid in enumerate(_classifier_chars(index))
            }
        else:  # an index without a classifier: nearest-reference similarity
            per = {c: {"score": a["score"], "row": np.asarray(a["row"])} for c, a in near.items()}
        secs = frame_seconds([f.t for f in video.frames], video.duration_s)
        prof = embed_profile(self.embedder.id)
        out = []
        for cid, acc in per.items():
            char = refs.characters.get(cid)
            thr, calibrated = self.threshold_for(char)
            policy = MatchPolicy.for_character(char, self.cfg.min_frames)
            eff = acc["score"]
            raw, over, need, seconds, matched = _fuse_character(
                eff, thr, self.cfg.top_k, policy, secs
            )
            if not np.isfinite(raw) or (raw < prof.floor and not matched):
                continue
            best = int(np.argmax(eff))
            row = int(acc["row"][best])
            nearest = near.get(cid)
            ref_id = nearest["ref"][best] if nearest is not None else None
            similarity = float(nearest["score"][best]) if nearest is not None else None
            frame_scores = [
                [round(video.frames[i].t, 3), round(float(eff[i]), 4)]
                for i in range(len(eff))
                if np.isfinite(eff[i])
            ]
            floor, ceiling = min(prof.floor, thr - 0.05), max(prof.ceiling, thr + 0.05)
            out.append(
                SignalResult(
                    signal=self.name,
                    kind=self.kind,
                    character_id=cid,
                    score=calibrate_similarity(raw, thr, floor, ceiling),
                    raw=raw,
                    matched=matched,
                    frame_t=video.frames[best].t,
                    reference_id=ref_id,
                    details={
                        "threshold": thr,
                        "calibrated": calibrated,
                        "best_probability": float(eff[best]),
                        "best_similarity": similarity,
                        "best_region": video.vector_region[row] if row >= 0 else None,
                        "frames_over": over,
                        "frames_needed": need,
                        "seconds_matched": seconds,
                        "min_seconds": policy.min_seconds,
                        "top_k": self.cfg.top_k,
                        "regions_lost_to_rivals": nearest["suppressed"] if nearest else 0,
                        "frames": frame_scores,
                    },
                )
            )
        return out


class TextPromptSignal(Signal):
    """The character described in words: frame regions vs the character's prompts.

    Needs an embedder with a text tower (CLIP). Each frame's best region-prompt cosine must
    reach the profile's ``text_threshold`` and beat every generic prompt ("a photo", "a
    cartoon character", ...) for that region, so a frame that merely looks like any cartoon
    does not count. Same temporal rule as :class:`EmbeddingSignal`.
    """

    name = "text_prompt"
    kind = SEMANTIC
    indexed = True

    def available(self) -> bool:
        return self.embedder is not None and bool(getattr(self.embedder, "has_text", False))

    def index_references(self, refs: ReferenceSet, inputs: IndexInputs) -> VectorIndex | None:
        emb = inputs.embedder
        if not getattr(emb, "has_text", False):
            return None
        texts: list[str] = []
        meta: list[dict[str, Any]] = []
        for char in refs.characters.values():
            for prompt in char.prompts:
                texts.append(prompt)
                meta.append({"character_id": char.id, "prompt": prompt})
        vecs = emb.embed_texts(texts) if texts else np.zeros((0, emb.dim), np.float32)
        generic = emb.embed_texts(list(GENERIC_PROMPTS))
        return VectorIndex.flat_ip(vecs, meta, generic=generic.astype(np.float32))

    def compare(
        self, video: VideoEvidence, refs: ReferenceSet, index: VectorIndex | None
    ) -> list[SignalResult]:
        vectors = video.vectors
        if index is None or index.ntotal == 0 or len(vectors) == 0:
            return []
        prof = embed_profile(self.embedder.id)
        generic_best = (vectors @ index.arrays["generic"].T).max(axis=1)
        sims, ids = index.search(vectors, _SEARCH_K)
        n = len(video.frames)
        per: dict[int, dict[str, Any]] = {}
        for row in range(sims.shape[0]):
            fi = int(video.vector_frame[row])
            for s, i in zip(sims[row], ids[row], strict=True):
                if i < 0:
                    continue
                m = index.meta[int(i)]
                acc = per.setdefault(
                    m["character_id"],
                    {"score": np.full(n, -np.inf, np.float32), "prompt": [None] * n},
                )
                # a region counts only where it beats every generic prompt
                value = float(s) if s > generic_best[row] else SUPPRESSED
                if value > acc["score"][fi]:
                    acc["score"][fi] = value
                    acc["prompt"][fi] = m["prompt"]
        secs = frame_seconds([f.t for f in video.frames], video.duration_s)
        out = []
        for cid, acc in per.items():
            char = refs.characters.get(cid)
            calibrated = char.threshold(self.name) if char is not None else None
            thr = calibrated if calibrated is not None else prof.text_threshold
            policy = MatchPolicy.for_character(char, self.cfg.min_frames)
            raw, over, need, seconds, matched = _fuse_character(
                acc["score"], thr, self.cfg.top_k, policy, secs
            )
            if not np.isfinite(raw):
                continue
            best = int(np.argmax(acc["score"]))
            out.append(
                SignalResult(
                    signal=self.name,
                    kind=self.kind,
                    character_id=cid,
                    score=calibrate_similarity(raw, thr, thr - 0.1, thr + 0.1),
                    raw=raw,
                    matched=matched,
                    frame_t=video.frames[best].t,
                    details={
                        "threshold": thr,
                        "calibrated": calibrated is not None,
                        "prompt": acc["prompt"][best],
                        "frames_over": over,
                        "frames_needed": need,
                        "seconds_matched": seconds,
                    },
                )
            )
        return out


# ---------------------------------------------------------------------------------------------
# context: caption and hashtags


def fold_text(text: str) -> str:
    """NFKC + casefold, hiragana folded to katakana, whitespace collapsed."""
    s = unicodedata.normalize("NFKC", text).casefold()
    s = "".join(chr(ord(c) + 0x60) if "\u3041" <= c <= "\u3096" else c for c in s)
    return " ".join(s.split())


def _compact(text: str) -> str:
    """Folded text without spaces, ``_``, ``-``, ``.`` or ``・`` (hashtag form of a name)."""
    return re.sub(r"[\s_\-.・·#]+", "", fold_text(text))


def _has_word_chars(term: str) -> bool:
    return any(c.isascii() and c.isalnum() for c in term)


class CaptionSignal(Signal):
    """The caption or hashtags name the character (name or alias), e.g. ``#ナルト``.

    Context only: text is cheap to fake and often wrong, so it never flags on its own.
    ASCII terms match on word boundaries (``pom`` does not match ``pompadour``); terms in
    scripts without spaces (Japanese, Chinese) match as substrings. Hashtags match when equal
    to a term in compact form (``#pompom_chan`` = ``Pompom chan``) or, for terms of 4+
    letters, when they start with it (``#pompomedit``); Japanese terms anywhere in a tag.
    """

    name = "caption"
    kind = CONTEXT

    def features(self, video: VideoEvidence) -> tuple[str, list[str]]:
        tags = [_compact(str(t)) for t in video.hashtags or [] if str(t).strip()]
        caption = fold_text(video.caption or "")
        tags.extend(_compact(m) for m in re.findall(r"[#＃]([^\s#＃]+)", caption))
        return caption, sorted(set(t for t in tags if t))

    @staticmethod
    def terms(char: CharacterRef) -> list[tuple[str, str]]:
        """``(as registered, folded)`` for the name and each alias (2+ characters)."""
        seen: dict[str, str] = {}
        for t in (char.name, *char.aliases):
            f = fold_text(t)
            if len(_compact(f)) >= 2:
                seen.setdefault(f, t)
        return [(shown, f) for f, shown in seen.items()]

    def compare(
        self, video: VideoEvidence, refs: ReferenceSet, index: VectorIndex | None
    ) -> list[SignalResult]:
        caption, tags = self.features(video)
        out = []
        for char in refs.characters.values():
            found: list[str] = []
            where: set[str] = set()
            for shown, term in self.terms(char):
                compact = _compact(term)
                if _has_word_chars(term):
                    pat = r"(?<![0-9a-z])" + re.escape(term) + r"(?![0-9a-z])"
                    in_caption = re.search(pat, caption) is not None
                    in_tags = any(
                        t == compact or (len(compact) >= 4 and t.startswith(compact)) for t in tags
                    )
                else:
                    in_caption = term in caption
                    in_tags = any(compact in t for t in tags)
                if in_caption or in_tags:
                    found.append(shown)
                    if in_caption:
                        where.add("caption")
                    if in_tags:
                        where.add("hashtags")
            if found:
                out.append(
                    SignalResult(
                        signal=self.name,
                        kind=self.kind,
                        character_id=char.id,
                        score=1.0,
                        raw=float(len(found)),
                        matched=True,
                        details={"terms": found, "where": sorted(where)},
                    )
                )
        return out


# ---------------------------------------------------------------------------------------------
# context: provenance


GENERATIVE_SOURCE_TYPES = (
    "trainedalgorithmicmedia",
    "compositewithtrainedalgorithmicmedia",
    "algorithmicmedia",
)


class ProvenanceSignal(Signal):
    """Platform AI label and C2PA Content Credentials: context about how a video was made.

    Not a match signal: it says nothing about which character is shown. A valid manifest with
    a generative ``digitalSourceType`` or a platform AI label sets ``matched`` (AI-made);
    an absent manifest is no evidence either way (platforms strip them).
    """

    name = "provenance"
    kind = CONTEXT

    def features(self, video: VideoEvidence) -> dict[str, Any]:
        info = video.c2pa_info or {}
        return {
            "ai_label": video.ai_label or None,
            "c2pa_state": video.c2pa_state or info.get("state") or None,
            "c2pa_generator": info.get("claim_generator"),
            "c2pa_digital_source_type": info.get("digital_source_type"),
            "c2pa_signer": info.get("signer"),
        }

    def compare(
        self, video: VideoEvidence, refs: ReferenceSet, index: VectorIndex | None
    ) -> list[SignalResult]:
        f = self.features(video)
        source = str(f["c2pa_digital_source_type"] or "").rsplit("/", 1)[-1].casefold()
        generative_c2pa = f["c2pa_state"] in ("valid", "trusted") and source in (
            GENERATIVE_SOURCE_TYPES
        )
        ai = bool(f["ai_label"]) or generative_c2pa
        reasons = []
        if f["ai_label"]:
            reasons.append("platform_label")
        if generative_c2pa:
            reasons.append("c2pa_generative")
        return [
            SignalResult(
                signal=self.name,
                kind=self.kind,
                character_id=None,
                score=1.0 if ai else 0.0,
                raw=None,
                matched=ai,
                details={**f, "ai_generated": ai, "reasons": reasons},
            )
        ]


SIGNAL_CLASSES: tuple[type[Signal], ...] = (
    PdqSignal,
    EmbeddingSignal,
    TextPromptSignal,
    CaptionSignal,
    ProvenanceSignal,
)


def make_signals(cfg: DetectConfig, embedder: Any) -> list[Signal]:
    """The signals that can run with this embedder: :data:`SIGNAL_CLASSES` and
    :class:`index.geometric.GeometricSignal`."""
    from index.geometric import GeometricSignal  # subclasses Signal: imported late

    sigs = [cls(cfg, embedder) for cls in (*SIGNAL_CLASSES, GeometricSignal)]
    return [s for s in sigs if s.available()]
