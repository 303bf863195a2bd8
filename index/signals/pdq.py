"""Copy evidence: the PDQ hash of a frame near a hash of a reference picture."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from PIL import Image

from charwatch.config import DetectConfig
from index.signals.base import (
    COPY,
    LOWER,
    ROLE_COPY,
    CharacterRef,
    IndexInputs,
    ReferenceSet,
    Signal,
    SignalResult,
    VideoEvidence,
)
from index.signals.policy import MatchPolicy, calibrate_distance, frame_seconds
from index.signals.vector_index import PDQ_BITS, VectorIndex, hashes_to_array

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
PDQ_CAP = 52  # bits: the high-recall PDQ operating point, the loosest calibrated threshold


class PdqSignal(Signal):
    """Re-use of a reference picture: frame PDQ vs the 8 dihedral hashes of each reference.

    The 8 variants are hashed from the rotated/mirrored pixels: pdqhash's own dihedral
    shortcut was measured 34 bits away from the hash of a mirrored flat-colour drawing,
    against 2 bits for hashing the mirrored pixels.

    Both sides are hashed after border removal at one canonical size
    (:func:`pipeline.hashing.canonical`), so letterboxed and mirrored re-uses match. Frames
    and references with PDQ quality below ``pdq_min_quality`` are not used (flat images hash
    unreliably). Only positive references are indexed. The raw value is a bit distance.
    """

    name = "pdq"
    kind = COPY
    indexed = True
    fusion_role = ROLE_COPY
    direction = LOWER
    default_threshold: ClassVar[float | None] = float(DetectConfig.pdq_max_distance)
    calibratable = True
    threshold_detail = "max_distance"
    fusion_threshold_key = "pdq_max_distance"
    loosest_threshold = float(PDQ_CAP)

    @classmethod
    def threshold_default(cls, cfg: DetectConfig, embedder_id: str) -> float | None:
        return cfg.pdq_max_distance

    @classmethod
    def applies_to(cls, char: CharacterRef | None, has_images: bool) -> bool:
        return has_images

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
