"""Copy evidence verified by geometry: ORB keypoints of a frame matched to each reference.

The method and its constants are in :mod:`index.geometric` (pure geometry, no signal code);
this file holds the signal: the index of reference keypoints and the comparison.

The index keeps one metadata row per reference variant; the descriptors, their keypoint
coordinates and the variant row of each descriptor are arrays of the :class:`VectorIndex`
(its FAISS part only numbers the variants). Frames are read from their stored JPEG
(``FrameRow.image_path``, relative to ``VideoEvidence.data_dir``); a missing file is skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from index.geometric import (
    BLURRY_BELOW,
    CEILING_INLIERS,
    FRAME_FEATURES,
    FRAME_SIDE,
    MIN_AGREEMENT,
    MIN_INLIERS,
    MIN_SUBJECT_AGREEMENT,
    MIN_VISIBLE,
    REF_FEATURES,
    REF_SIDE,
    THUMB_SIDE,
    HammingIndex,
    Verification,
    candidate_matches,
    describe,
    fit,
    neighbours,
    one_picture_per_place,
    overlay_map,
    pixel_agreement,
    resize_long,
    sharpened,
    sharpness,
)
from index.signals.base import (
    COPY,
    ROLE_COPY,
    CharacterRef,
    IndexInputs,
    ReferenceSet,
    Signal,
    SignalResult,
    VideoEvidence,
)
from index.signals.policy import MatchPolicy, calibrate_similarity, frame_seconds
from index.signals.vector_index import VectorIndex
from storage.blobs import data_file


def _subject_mask(thumb_bgr: np.ndarray) -> np.ndarray:
    """Where the character is in a reference thumbnail (a mask of its size): the subject of a
    picture on a plain or gradient backdrop
    (:func:`index.signals.subjects.foreground_mask`); the whole picture otherwise.

    A backdrop can cover most of a picture, and official art often draws a cast's pictures on
    one template: at 200 same-style characters, 87 fits of another character's picture matched
    the frame's pixels at 0.94 or more, mostly on the shared backdrop (``bench.geometric_scale``,
    tune frames). Asking the subject's pixels to agree too left 13."""
    from PIL import Image

    from index.signals.subjects import foreground_mask

    th, tw = thumb_bgr.shape[:2]
    rgb = Image.fromarray(cv2.cvtColor(thumb_bgr, cv2.COLOR_BGR2RGB))
    fm = foreground_mask(rgb, size=THUMB_SIDE)
    if fm is None or not fm.any():
        return np.ones((th, tw), bool)
    mask = Image.fromarray(fm.astype(np.uint8) * 255).resize((tw, th), Image.Resampling.NEAREST)
    return np.asarray(mask) > 127


class GeometricSignal(Signal):
    """Re-use of a reference picture anywhere in a frame, verified by a RANSAC fit of ORB
    keypoint matches and by the frame reproducing the reference's pixels where the fit puts
    them (see :mod:`index.geometric`). One verified frame flags a copy, like PDQ; a character's
    calibrated ``geometric`` threshold replaces the inlier threshold."""

    name = "geometric"
    kind = COPY
    indexed = True
    fusion_role = ROLE_COPY
    default_threshold: ClassVar[float | None] = float(MIN_INLIERS)
    threshold_detail = "min_inliers"

    @classmethod
    def applies_to(cls, char: CharacterRef | None, has_images: bool) -> bool:
        return has_images

    def index_references(self, refs: ReferenceSet, inputs: IndexInputs) -> VectorIndex:
        meta: list[dict[str, Any]] = []
        xys: list[np.ndarray] = []
        descs: list[np.ndarray] = []
        owner: list[np.ndarray] = []
        thumbs: list[np.ndarray] = []
        subjects: list[np.ndarray] = []
        for ref, img in inputs.pictures(refs, negatives=False):
            bgr = cv2.cvtColor(np.asarray(img.convert("RGB")), cv2.COLOR_RGB2BGR)
            gray, _ = resize_long(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), REF_SIDE)
            thumb, _ = resize_long(bgr, THUMB_SIDE)
            subject = _subject_mask(thumb)  # the mirrored variant's is its mirror image
            for mirrored in (False, True):
                xy, desc = describe(cv2.flip(gray, 1) if mirrored else gray, REF_FEATURES)
                if len(desc) < MIN_INLIERS:
                    continue
                owner.append(np.full(len(desc), len(meta), np.int32))
                padded = np.zeros((THUMB_SIDE, THUMB_SIDE, 3), np.uint8)
                t = cv2.flip(thumb, 1) if mirrored else thumb
                padded[: t.shape[0], : t.shape[1]] = t
                where = np.zeros((THUMB_SIDE, THUMB_SIDE), bool)
                where[: t.shape[0], : t.shape[1]] = np.fliplr(subject) if mirrored else subject
                subjects.append(where)
                meta.append(
                    {
                        "reference_id": ref.reference_id,
                        "character_id": ref.character_id,
                        "mirrored": mirrored,
                        "size": [int(gray.shape[1]), int(gray.shape[0])],
                        "thumb": [int(t.shape[1]), int(t.shape[0])],
                    }
                )
                xys.append(xy)
                descs.append(desc)
                thumbs.append(padded)
        all_desc = np.concatenate(descs) if descs else np.zeros((0, 32), np.uint8)
        search = HammingIndex(all_desc)
        stored = search.serialized()  # a large registry's inverted file, trained once here
        index = VectorIndex.flat_ip(
            np.zeros((len(meta), 1), np.float32),
            meta,
            desc=all_desc,
            xy=np.concatenate(xys) if xys else np.zeros((0, 2), np.float32),
            variant=np.concatenate(owner) if owner else np.zeros(0, np.int32),
            thumb=np.stack(thumbs)
            if thumbs
            else np.zeros((0, THUMB_SIDE, THUMB_SIDE, 3), np.uint8),
            subject=np.stack(subjects) if subjects else np.zeros((0, THUMB_SIDE, THUMB_SIDE), bool),
            **({"desc_ivf": stored} if stored is not None else {}),
        )
        index.__dict__["_hamming"] = search
        return index

    def frame_path(self, video: VideoEvidence, stored: str) -> Path:
        """The file of a stored frame path (relative to ``video.data_dir`` unless absolute;
        fetched from the object store when one is active)."""
        if Path(stored).is_absolute() or not video.data_dir:
            return Path(stored)
        return data_file(Path(video.data_dir), stored)

    @staticmethod
    def _hamming(index: VectorIndex) -> HammingIndex:
        """The reference descriptors' Hamming search, made on first use per index (from the
        inverted file stored with a large registry's index)."""
        got = index.__dict__.get("_hamming")
        if got is None:
            got = HammingIndex(index.arrays["desc"], stored=index.arrays.get("desc_ivf"))
            index.__dict__["_hamming"] = got
        return got

    def verify_frame(self, bgr: np.ndarray, index: VectorIndex) -> list[Verification]:
        """Every fit of one frame (BGR, at ``FRAME_SIDE``) to a reference variant."""
        a = index.arrays
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        xy, desc = describe(gray, FRAME_FEATURES)
        if len(desc) < MIN_INLIERS or len(a["desc"]) == 0:
            return []
        dist, ids = self._hamming(index).search(desc, neighbours(len(a["desc"])))
        out = []
        overlays = None  # the frame's overlay map, made for its first fit worth checking
        for v, (qi, ri) in candidate_matches(dist, ids, a["variant"]).items():
            if len(qi) < MIN_INLIERS // 2:
                continue
            m = index.meta[v]
            size = (float(m["size"][0]), float(m["size"][1]))
            got = fit(xy, a["xy"], qi, ri, size, v)
            if got is None:
                continue
            ver, transform = got
            if ver.sane and ver.inliers >= MIN_INLIERS // 2:
                tw, th = m["thumb"]
                thumb = a["thumb"][v][:th, :tw]
                subject = a["subject"][v] if "subject" in a else None  # older indexes: none
                if overlays is None:
                    overlays = overlay_map(bgr)
                ver.agreement, ver.visible, ver.subject = pixel_agreement(
                    bgr, thumb, transform, size, subject, overlays, ver.inliers >= MIN_INLIERS
                )
            out.append(ver)
        return out

    def frame_fits(self, bgr: np.ndarray, index: VectorIndex) -> list[Verification]:
        """:meth:`verify_frame`, less the fits another character's verified fit beats in
        the same place (:func:`index.geometric.one_picture_per_place`).

        A blurred frame (:func:`index.geometric.sharpness` under
        :data:`~index.geometric.BLURRY_BELOW`) is also verified once more, sharpened
        (:func:`index.geometric.sharpened`), and both looks' fits count: blur flattens the
        corners ORB looks for, so a blurred copy often kept no fit at all."""
        fits = self.verify_frame(bgr, index)
        if sharpness(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)) < BLURRY_BELOW:
            fits += self.verify_frame(sharpened(bgr), index)
        return one_picture_per_place(
            fits,
            owner=lambda v: index.meta[v.variant]["character_id"],
            ok=lambda v: self.verified(v, 1),
        )

    @staticmethod
    def verified(ver: Verification, min_inliers: int) -> bool:
        """The fit proves a copy: enough inliers, sane transform, pixels reproduced, those of
        the character itself too (not only its backdrop)."""
        return (
            ver.sane
            and ver.inliers >= min_inliers
            and ver.visible >= MIN_VISIBLE
            and ver.agreement >= MIN_AGREEMENT
            and ver.subject >= MIN_SUBJECT_AGREEMENT
        )

    def compare(
        self, video: VideoEvidence, refs: ReferenceSet, index: VectorIndex | None
    ) -> list[SignalResult]:
        if index is None or index.ntotal == 0 or "desc" not in index.arrays:
            return []
        used: list[int] = []  # positions of the frames read
        best: dict[int, dict[int, Verification]] = {}  # character -> frame -> best fit
        for i, f in enumerate(video.frames):
            if not f.image_path:
                continue
            path = self.frame_path(video, f.image_path)
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
            if bgr is None:  # cleaned up or unreadable
                continue
            small, k = resize_long(bgr, FRAME_SIDE)
            used.append(i)
            for ver in self.frame_fits(small, index):
                ver.box = [[x / k, y / k] for x, y in ver.box]  # frame file pixels
                ver.scale /= k
                cid = index.meta[ver.variant]["character_id"]
                row = best.setdefault(cid, {})
                old = row.get(i)
                rank = (self.verified(ver, 1), ver.sane, ver.inliers)
                if old is None or rank > (self.verified(old, 1), old.sane, old.inliers):
                    row[i] = ver
        if not used:
            return []
        secs = frame_seconds([video.frames[i].t for i in used], video.duration_s)
        out = []
        for cid, row in best.items():
            char = refs.characters.get(cid)
            calibrated = char.threshold(self.name) if char is not None else None
            need_inliers = int(round(calibrated)) if calibrated is not None else MIN_INLIERS
            fits = [row.get(i) for i in used]
            ok = np.array([v is not None and self.verified(v, need_inliers) for v in fits])
            policy = MatchPolicy.for_character(char, 1, copy=True)
            over, need, seconds, matched = policy.check(ok, secs, len(used))
            # the best frame: verified first, then most inliers
            j = max(
                (j for j, v in enumerate(fits) if v is not None),
                key=lambda j: (bool(ok[j]), fits[j].inliers),  # type: ignore[union-attr]
            )
            ver = fits[j]
            assert ver is not None
            m = index.meta[ver.variant]
            # unverified fits score below 0.5 whatever their inlier count
            raw = float(ver.inliers)
            score = calibrate_similarity(
                raw, need_inliers, 0.0, max(CEILING_INLIERS, need_inliers + 1)
            )
            if not ok[j]:
                score = min(score, 0.49)
            out.append(
                SignalResult(
                    signal=self.name,
                    kind=self.kind,
                    character_id=cid,
                    score=score,
                    raw=raw,
                    matched=matched,
                    frame_t=video.frames[used[j]].t,
                    reference_id=m["reference_id"],
                    details={
                        "inliers": ver.inliers,
                        "min_inliers": need_inliers,
                        "calibrated": calibrated is not None,
                        "matches": ver.matches,
                        "pixel_agreement": ver.agreement,
                        "subject_agreement": ver.subject,
                        "visible": ver.visible,
                        "variant": "mirrored" if m["mirrored"] else "original",
                        "scale": ver.scale,
                        "box": ver.box,
                        "frames_matched": over,
                        "frames_needed": need,
                        "seconds_matched": seconds,
                        "min_seconds": policy.min_seconds,
                        "frames_used": len(used),
                    },
                )
            )
        return out
