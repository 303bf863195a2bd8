"""Copies verified by geometry: ORB keypoints of the frame matched to each reference picture.

PDQ hashes the whole frame, so a reference picture re-used as part of a frame (cropped,
picture-in-picture, letterboxed, under text overlays) escapes it. Local features do not care
what surrounds the copy: each positive reference picture, as given and mirrored, is reduced to
ORB keypoints (binary 256-bit descriptors) at a fixed size. For each stored frame, the frame's
keypoints are matched to each reference variant (Hamming distance, Lowe ratio test) and a
similarity transform (rotation, uniform scale, translation) is fitted with RANSAC. The frame
*verifies* the reference when enough matches agree with one transform of sane scale, spread over
the picture. The fit is then checked pixel by pixel: the frame, warped back onto the reference,
must reproduce its colours, over the whole picture and over the character alone (a shared
backdrop must not carry it), leaving out near-white and near-black pixels that disagree (a
caption's letters). A new drawing of the same character (another pose) shares style and
colours but not the pixel layout, so it does not verify: that is the semantic signals'
business.

The signal itself (its reference index and comparison) is
:class:`index.signals.geometric.GeometricSignal`; this module holds the geometry.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

REF_SIDE = 480  # reference pictures are described at this long side (px)
REF_FEATURES = 500
FRAME_SIDE = 640  # frames are described at this long side (px, up- or downscaled)
FRAME_FEATURES = 1000
KNN = 4  # neighbours fetched per frame keypoint among all reference descriptors (fewest)
DESCRIPTORS_PER_NEIGHBOUR = 25_000  # large registries: one more neighbour per this many
RATIO = 0.8  # Lowe ratio test within one reference variant
MAX_DISTANCE = 80  # Hamming bits: farther neighbours are no match
RANSAC_PX = 5.0  # reprojection tolerance in frame pixels (at FRAME_SIDE)
MIN_INLIERS = 15  # a frame verifies a reference at this many inliers (score 0.5)
CEILING_INLIERS = 60  # score 1.0
MIN_SCALE, MAX_SCALE = 0.1, 10.0  # reference px -> frame px
MIN_SPREAD = 0.15  # inliers must span this share of the reference's width and height
THUMB_SIDE = 128  # colour thumbnail of each reference variant, for the pixel check
PIXEL_TOLERANCE = 40  # a pixel agrees when no channel differs by more (0-255)
MIN_AGREEMENT = 0.92  # share of the visible reference pixels that must agree (as the subject)
MIN_VISIBLE = 0.25  # share of the reference that must lie inside the frame
SAME_PLACE = 0.5  # fits whose boxes overlap this much (IoU) show one picture: the best wins
DETECT_FACTOR = 3  # keypoints detected per keypoint kept (the kept ones spread over the picture)
SPREAD_CELL = 64  # px: buckets of the spread (per pyramid level)
MIN_SUBJECT_AGREEMENT = 0.92  # share of the visible subject pixels that must agree
OVERLAY_WHITE, OVERLAY_BLACK = 215, 40  # frame pixels this light or dark may be an overlay
MAX_OVERLAY = 0.35  # share of the visible reference an overlay may cover and be excused
RECOLOUR_FROM = 0.8  # agreement from which a failed pixel check is tried again colour-mapped
COLOUR_PRIOR = 6000.0  # squared levels per pixel: how hard the colour map is held to no change
BLURRY_BELOW = 12.0  # Laplacian variance (at FRAME_SIDE) under which a frame is blurred
SHARPEN_SIGMA = 3.0  # px: the Gaussian of the unsharp mask a blurred frame is looked at again with
SHARPEN_AMOUNT = 1.5


@dataclass
class Verification:
    """The best geometric fit of one frame to one reference variant."""

    variant: int
    inliers: int
    matches: int
    scale: float
    box: list[list[float]]  # the reference's corners in frame pixels
    agreement: float = 0.0  # share of visible reference pixels the frame reproduces
    visible: float = 0.0  # share of the reference inside the frame
    sane: bool = False
    subject: float = 0.0  # the agreement over the reference's subject (its character) alone


def _orb(nfeatures: int) -> Any:
    return cv2.ORB_create(nfeatures=nfeatures, scaleFactor=1.2, nlevels=8, fastThreshold=12)


def resize_long(img: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """``img`` scaled so its long side is ``side``; also the factor applied."""
    h, w = img.shape[:2]
    f = side / max(h, w)
    if abs(f - 1.0) < 1e-3:
        return img, 1.0
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(img, size, interpolation=interp), f


def spread_keep(xy: np.ndarray, octave: np.ndarray, response: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` keypoints to keep, spread over the picture: each keypoint is ranked
    within its bucket (pyramid level, :data:`SPREAD_CELL` square), and the buckets' best go
    first, then their second best, and so on (ties by response)."""
    if len(xy) <= n:
        return np.arange(len(xy))
    cell = (xy // SPREAD_CELL).astype(np.int64)
    bucket = (octave.astype(np.int64) * 4096 + cell[:, 1]) * 4096 + cell[:, 0]
    order = np.lexsort((-response, bucket))  # by bucket, strongest first within it
    ranked = bucket[order]
    first = np.r_[0, np.flatnonzero(ranked[1:] != ranked[:-1]) + 1]
    starts = np.repeat(first, np.diff(np.r_[first, len(order)]))
    rank = np.empty(len(xy), np.int64)
    rank[order] = np.arange(len(order)) - starts
    return np.lexsort((-response, rank))[:n]


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian of a grayscale picture: low on a blurred one."""
    return float(cv2.Laplacian(gray, cv2.CV_32F).var())


def sharpened(bgr: np.ndarray) -> np.ndarray:
    """``bgr`` with an unsharp mask (:data:`SHARPEN_AMOUNT` of the detail above a Gaussian of
    :data:`SHARPEN_SIGMA` px added back): a blurred frame's edges steep enough again for ORB's
    corner test."""
    soft = cv2.GaussianBlur(bgr, (0, 0), SHARPEN_SIGMA)
    return cv2.addWeighted(bgr, 1.0 + SHARPEN_AMOUNT, soft, -SHARPEN_AMOUNT, 0)


def describe(gray: np.ndarray, nfeatures: int) -> tuple[np.ndarray, np.ndarray]:
    """ORB ``(xy (n, 2) float32, descriptors (n, 32) uint8)`` of a grayscale picture: at most
    ``nfeatures`` keypoints, chosen from :data:`DETECT_FACTOR` times as many spread over the
    picture (:func:`spread_keep`).

    ORB alone keeps the strongest corners of each pyramid level. A caption's letters (white
    with a dark outline) are the strongest corners of a frame, so they took the fine levels'
    quotas and a copy under a two-line caption kept almost none of its own keypoints (4 and 2
    matches where 129 and 28 were without it): 0 of 6 captioned copies verified. Spread over
    the picture, the text keeps only its own buckets' share."""
    orb = _orb(nfeatures * DETECT_FACTOR)
    kps = orb.detect(gray, None)
    if kps:
        keep = spread_keep(
            np.array([k.pt for k in kps], dtype=np.float32),
            np.array([k.octave for k in kps]),
            np.array([k.response for k in kps], dtype=np.float32),
            nfeatures,
        )
        kps, desc = orb.compute(gray, [kps[i] for i in keep])
    if not kps or desc is None:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    xy = np.array([k.pt for k in kps], dtype=np.float32)
    return xy, np.ascontiguousarray(desc, dtype=np.uint8)


class HammingIndex:
    """Hamming k-nearest-neighbour search over the reference descriptors, on one thread
    (frames are verified one at a time, often beside other work, where OpenMP's waiting
    threads cost more than they gain).

    Up to :data:`EXACT_LIMIT` descriptors (2 or 3 characters of 4 pictures, each also
    mirrored) the search is exact: a FAISS binary flat index, SIMD popcount, about 7 times
    OpenCV's brute-force matcher with the same result. Its cost grows with the registry
    (about 1.2 ms per 1,000 descriptors per frame: about 1 s a frame at 200 characters), so
    above the limit an inverted file takes over (:func:`_inverted_file`): descriptors are
    grouped around k-means centres and a frame keypoint is compared with the
    :data:`IVF_PROBES` nearest groups only. Measured on same-style reference art (96k
    descriptors), it keeps 98% of the exact nearest neighbours closer than 40 bits (the
    matches that make copies) at a seventh of the time; at 12k descriptors (the demo's three
    characters) 99.8 % at 0.6 of the time. ``bench.geometric_scale`` measures verification
    and time against registry size: on its tune frames, 8 characters (32k descriptors) gave
    the same verdicts both ways, in 20 instead of 42 ms a frame, so the limit went from
    50,000 to 10,000.
    """

    def __init__(
        self,
        desc: np.ndarray,
        *,
        exact_limit: int | None = None,
        stored: np.ndarray | None = None,
    ) -> None:
        """``stored``: the inverted file of these descriptors as :meth:`serialized` gave it
        (an index build keeps it, so a process that loads the index does not train it again);
        ignored when the search is exact or it does not hold ``desc``'s count."""
        import faiss

        self.ntotal = len(desc)
        desc = np.ascontiguousarray(desc, dtype=np.uint8)
        limit = EXACT_LIMIT if exact_limit is None else exact_limit
        self.exact = self.ntotal <= limit
        self.loaded = False  # the inverted file came from ``stored``
        if self.exact:
            self._index = faiss.IndexBinaryFlat(desc.shape[1] * 8)  # (n, bytes) descriptors
            if self.ntotal:
                self._index.add(desc)
            return
        if stored is not None and len(stored):
            ivf = faiss.deserialize_index_binary(np.ascontiguousarray(stored, dtype=np.uint8))
            if ivf.ntotal == self.ntotal and ivf.d == desc.shape[1] * 8 and hasattr(ivf, "nlist"):
                ivf.nprobe = min(IVF_PROBES, ivf.nlist)
                self._index, self.loaded = ivf, True
                return
        self._index = _inverted_file(desc)

    def serialized(self) -> np.ndarray | None:
        """The inverted file as bytes (uint8) to store with the index; None for an exact one."""
        import faiss

        if self.exact:
            return None
        return np.asarray(faiss.serialize_index_binary(self._index), dtype=np.uint8)

    def search(self, desc: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(distances (n, k) float32, ids (n, k) int64)``; id -1 where fewer exist."""
        import faiss

        k = max(1, min(k, self.ntotal))
        with _ONE_THREAD:
            before = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                dist, ids = self._index.search(np.ascontiguousarray(desc, dtype=np.uint8), k)
            finally:
                faiss.omp_set_num_threads(before)
        return dist.astype(np.float32), ids.astype(np.int64)


EXACT_LIMIT = 10_000  # reference descriptors searched exhaustively up to this many
IVF_PROBES = 32  # groups searched per frame keypoint above the limit
IVF_TRAIN_PER_LIST = 10  # k-means sample: descriptors per group
IVF_SEED = 1234


def ivf_lists(n: int) -> int:
    """Groups for ``n`` descriptors: about ``sqrt(IVF_PROBES * n)``, which balances the
    comparisons with the group centres against those inside the probed groups (a power of
    two, at least 256)."""
    want = math.sqrt(IVF_PROBES * n)
    return max(256, 1 << round(math.log2(max(1.0, want))))


def _inverted_file(desc: np.ndarray) -> Any:
    """A FAISS binary inverted file over ``desc``, its centres trained by k-means on a fixed
    sample (the same registry gives the same index)."""
    import faiss

    n, nbytes = desc.shape
    nlist = ivf_lists(n)
    quantizer = faiss.IndexBinaryFlat(nbytes * 8)
    ivf = faiss.IndexBinaryIVF(quantizer, nbytes * 8, nlist)
    ivf.own_fields = True
    quantizer.this.disown()  # the inverted file frees its quantizer
    ivf.cp.min_points_per_centroid = 1  # the sample is sized on purpose: no warning
    ivf.cp.seed = IVF_SEED
    rng = np.random.default_rng(IVF_SEED)
    sample = desc[np.sort(rng.choice(n, min(n, nlist * IVF_TRAIN_PER_LIST), replace=False))]
    ivf.train(sample)
    ivf.add(desc)
    ivf.nprobe = min(IVF_PROBES, nlist)
    return ivf


_ONE_THREAD = threading.Lock()


def neighbours(ntotal: int) -> int:
    """Neighbours to fetch per frame keypoint among ``ntotal`` reference descriptors.

    The ratio test compares a keypoint's match with the second nearest descriptor of the
    same reference picture, looked for among the fetched neighbours. In a large registry of
    one house style, many other pictures' descriptors crowd those few out: with 4 neighbours,
    copies' inliers halved and 24 of 32 copies still verified at 200 characters (800k
    descriptors), 29 at 56. One neighbour per :data:`DESCRIPTORS_PER_NEIGHBOUR` descriptors
    (9 at 56 characters, 32 at 200) verified all 32 in both (``bench.geometric_scale``, its
    tune frames); up to 100k descriptors it stays :data:`KNN`."""
    return max(KNN, math.ceil(ntotal / DESCRIPTORS_PER_NEIGHBOUR))


def box_overlap(a: list[list[float]], b: list[list[float]]) -> float:
    """Intersection over union of the bounding rectangles of two fitted boxes (corners in
    frame pixels)."""
    ax, ay = [p[0] for p in a], [p[1] for p in a]
    bx, by = [p[0] for p in b], [p[1] for p in b]
    iw = min(max(ax), max(bx)) - max(min(ax), min(bx))
    ih = min(max(ay), max(by)) - max(min(ay), min(by))
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area_a = (max(ax) - min(ax)) * (max(ay) - min(ay))
    area_b = (max(bx) - min(bx)) * (max(by) - min(by))
    return float(inter / max(1e-9, area_a + area_b - inter))


def one_picture_per_place(
    fits: list[Verification],
    owner: Callable[[Verification], int],
    ok: Callable[[Verification], bool],
) -> list[Verification]:
    """Drop a verified fit when a verified fit of another owner (character) covers the same
    place of the frame (:data:`SAME_PLACE`) with more inliers (then higher pixel agreement).

    Characters drawn on one template (the same backdrop, pose and framing, as official art
    of a cast often is) can both verify where only one is shown: measured with 56
    registered same-style characters whose reference pictures share backgrounds, a copy of
    one verified another at 20-24 inliers where its own had 36-56, in the same box. Copies
    of two characters side by side keep both: their boxes do not overlap.
    """
    verified = [v for v in fits if ok(v)]
    beaten: set[int] = set()
    for v in verified:
        for w in verified:
            if (
                owner(w) != owner(v)
                and (w.inliers, w.agreement) > (v.inliers, v.agreement)
                and box_overlap(v.box, w.box) >= SAME_PLACE
            ):
                beaten.add(id(v))
                break
    return [v for v in fits if id(v) not in beaten]


def candidate_matches(
    dist: np.ndarray, ids: np.ndarray, owner: np.ndarray
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per reference variant, ``(frame rows, reference rows)`` passing the ratio test, the
    variants in the order their first match appears.

    ``dist``/``ids``: each frame keypoint's fetched nearest reference descriptors (id -1:
    none). Within one keypoint's neighbours, a variant's first neighbour is its match
    candidate and its next one the ratio test's second nearest; a variant with no second
    among them takes the farthest fetched (a lower bound)."""
    n, k = ids.shape
    if n == 0:
        return {}
    valid = ids >= 0
    own = np.where(valid, owner[np.clip(ids, 0, None)], -1)
    last = dist[:, -1]
    passes = np.zeros((n, k), bool)
    for j in range(k):
        first = valid[:, j].copy()
        for j0 in range(j):
            first &= own[:, j0] != own[:, j]
        second = last.copy()
        found = np.zeros(n, bool)
        for j2 in range(j + 1, k):
            hit = ~found & valid[:, j2] & (own[:, j2] == own[:, j])
            second = np.where(hit, dist[:, j2], second)
            found |= hit
        passes[:, j] = first & (dist[:, j] <= MAX_DISTANCE) & (dist[:, j] < RATIO * second)
    q, j = np.nonzero(passes)  # row-major: keypoints in order
    if len(q) == 0:
        return {}
    v = own[q, j]
    variants, first_at = np.unique(v, return_index=True)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for var in variants[np.argsort(first_at)]:
        sel = v == var
        out[int(var)] = (q[sel].astype(np.int64), ids[q[sel], j[sel]].astype(np.int64))
    return out


def fit(
    frame_xy: np.ndarray,
    ref_xy: np.ndarray,
    qi: np.ndarray,
    ri: np.ndarray,
    ref_size: tuple[float, float],
    variant: int = 0,
) -> tuple[Verification, np.ndarray] | None:
    """A similarity transform (2 x 3, reference px -> frame px) fitted with RANSAC to the
    matches, and its verification (pixels not checked yet); None when it cannot be fitted."""
    if len(qi) < 4:
        return None
    m, mask = cv2.estimateAffinePartial2D(
        ref_xy[ri].reshape(-1, 1, 2),
        frame_xy[qi].reshape(-1, 1, 2),
        method=cv2.RANSAC,
        ransacReprojThreshold=RANSAC_PX,
        maxIters=2000,
        confidence=0.995,
    )
    if m is None or mask is None or not np.isfinite(m).all():
        return None
    inl = mask.ravel().astype(bool)
    scale = float(math.hypot(m[0, 0], m[1, 0]))
    w, h = ref_size
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    box = corners @ m[:, :2].T + m[:, 2]
    pts = ref_xy[ri][inl]
    spread = bool(
        len(pts) and np.ptp(pts[:, 0]) >= MIN_SPREAD * w and np.ptp(pts[:, 1]) >= MIN_SPREAD * h
    )
    # count distinct frame keypoints: one may match several reference keypoints
    inliers = len(np.unique(qi[inl]))
    ver = Verification(variant, inliers, len(qi), scale, box.tolist())
    ver.sane = MIN_SCALE <= scale <= MAX_SCALE and spread
    return ver, m


def overlay_map(frame_bgr: np.ndarray) -> np.ndarray:
    """Where a frame may carry an overlay (uint8, 255): near-white or near-black pixels
    (:data:`OVERLAY_WHITE`, :data:`OVERLAY_BLACK`), grown by a pixel. Computed once per frame
    and shared by its fits (:func:`pixel_agreement`)."""
    b, g, r = cv2.split(frame_bgr)
    light = cv2.min(cv2.min(b, g), r) >= OVERLAY_WHITE
    dark = cv2.max(cv2.max(b, g), r) <= OVERLAY_BLACK
    return cv2.dilate((light | dark).astype(np.uint8) * 255, np.ones((3, 3), np.uint8))


def pixel_agreement(
    frame_bgr: np.ndarray,
    thumb: np.ndarray,
    m: np.ndarray,
    ref_size: tuple[float, float],
    subject: np.ndarray | None = None,
    overlays: np.ndarray | None = None,
    recolour: bool = True,
) -> tuple[float, float, float]:
    """``(agreement, visible, subject agreement)``: the frame resampled onto the reference's
    thumbnail through ``m``; the share of the visible thumbnail pixels whose colour it
    reproduces, the share of the thumbnail inside the frame, and the agreement over the
    ``subject`` mask's pixels (the character, not its backdrop; all pixels without a mask).

    Pixels under an overlay are left out of both agreements: where the frame is near white or
    near black (a caption's letters and their outline, subtitles, a black bar), dilated by a
    pixel, and the reference disagrees, up to :data:`MAX_OVERLAY` of the visible reference.
    A wrong character's colours are neither, so they still count. ``overlays``: the frame's
    :func:`overlay_map`, when already made.

    With ``recolour``, a check that fails with at least :data:`RECOLOUR_FROM` agreement is
    made once more on the frame's pixels through :func:`colour_mapped` (a colour filter or
    grade undone), and the better of the two counts."""
    th, tw = thumb.shape[:2]
    w, h = ref_size
    to_frame = m.astype(np.float64) @ np.diag([w / tw, h / th, 1.0])  # thumb px -> frame px
    step = float(math.hypot(to_frame[0, 0], to_frame[1, 0]))  # frame px per thumb px
    src = cv2.GaussianBlur(frame_bgr, (0, 0), max(0.5, 0.5 * step)) if step > 1.5 else frame_bgr
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(src, to_frame, (tw, th), flags=flags, borderValue=(0, 0, 0))
    inside = cv2.warpAffine(
        np.full(frame_bgr.shape[:2], 255, np.uint8), to_frame, (tw, th), flags=flags
    )
    valid = inside == 255
    visible = float(valid.mean())
    if not valid.any():
        return 0.0, 0.0, 0.0
    a = cv2.GaussianBlur(warped, (0, 0), 1.0).astype(np.float32)
    b = cv2.GaussianBlur(thumb, (0, 0), 1.0).astype(np.float32)
    # overlays, found at the frame's own resolution (shrunk onto the thumbnail they blur away)
    extreme = overlay_map(frame_bgr) if overlays is None else overlays
    extreme = cv2.warpAffine(extreme, to_frame, (tw, th), flags=flags) > 76
    mask = subject[:th, :tw] if subject is not None else None
    got = _agreement(a, b, valid, extreme, mask)
    failed = got[0] < MIN_AGREEMENT or got[1] < MIN_SUBJECT_AGREEMENT
    if recolour and failed and got[0] >= RECOLOUR_FROM:  # a colour edit, perhaps
        graded = _agreement(colour_mapped(a, b, valid), b, valid, extreme, mask)
        got = max(
            got, graded, key=lambda g: min(g[0] - MIN_AGREEMENT, g[1] - MIN_SUBJECT_AGREEMENT)
        )
    return got[0], visible, got[1]


def _agreement(
    a: np.ndarray, b: np.ndarray, valid: np.ndarray, extreme: np.ndarray, subject: np.ndarray | None
) -> tuple[float, float]:
    """``(agreement, subject agreement)`` of two aligned pictures (float BGR) over ``valid``,
    the overlay pixels (``extreme`` where they disagree, up to :data:`MAX_OVERLAY`) left out."""
    agree = np.abs(a - b).max(axis=2) <= PIXEL_TOLERANCE
    overlay = extreme & ~agree & valid
    if overlay.sum() > MAX_OVERLAY * valid.sum():
        overlay[:] = False  # too much to be an overlay: count it
    counted = valid & ~overlay
    subj = counted if subject is None else counted & subject
    return float(agree[counted].mean()), float(agree[subj].mean()) if subj.any() else 0.0


def colour_mapped(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``a`` through the colour map (3x3 and an offset) that brings its ``valid`` pixels
    closest to ``b``'s, pulled towards no change by :data:`COLOUR_PRIOR` per pixel.

    A filter or grade over the whole picture (hue turn, saturation, brightness, contrast) is
    close to one such map, so the copy's pixels agree again once it is undone. A character
    recoloured on an unchanged backdrop is not: the backdrop holds the map near no change,
    and the character's pixels still disagree."""
    n = int(valid.sum())
    x = np.concatenate([a[valid], np.ones((n, 1), np.float32)], axis=1).astype(np.float64)
    y = b[valid].astype(np.float64)
    prior = COLOUR_PRIOR * n
    keep = np.vstack([np.eye(3), np.zeros((1, 3))])
    m = np.linalg.solve(x.T @ x + prior * np.eye(4), x.T @ y + prior * keep)
    flat = np.concatenate([a.reshape(-1, 3), np.ones((a.size // 3, 1), np.float32)], axis=1)
    return (flat @ m.astype(np.float32)).reshape(a.shape)
