"""Colour descriptors of image regions: what a character's palette looks like.

Characters of one house style share outlines, body plan and shading; what sets them apart is
largely their colours (hair, skin or fur, clothes, eyes). ImageNet features see colour only
weakly, so every region descriptor carries a colour histogram too: hue in ``HUE_BINS`` bins,
each split into normal and light, for saturated pixels, plus three grey levels (dark, mid,
light) for the rest; counted on ``CELL`` x ``CELL`` pixel cells and summed over a region's
cells through an integral histogram, so any number of regions costs one pass over the
pixels. The histogram is L1-normalised and square-rooted (Hellinger), then L2-normalised.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

HUE_BINS = 24
BINS = 2 * HUE_BINS + 3
CELL = 8  # pixels per histogram cell side
MIN_SAT = 0.18  # below this saturation (or value MIN_VAL) a pixel counts as grey
MIN_VAL = 0.2
LIGHT_VAL = 0.75


def _pixel_bins(img: Image.Image) -> np.ndarray:
    hsv = np.asarray(img.convert("RGB").convert("HSV"), dtype=np.float32) / 255.0
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    chroma = (s > MIN_SAT) & (v > MIN_VAL)
    hue = np.minimum((h * HUE_BINS).astype(np.int64), HUE_BINS - 1)
    grey = np.where(v < 0.3, 0, np.where(v < 0.7, 1, 2))
    return np.where(chroma, hue * 2 + (v > LIGHT_VAL), 2 * HUE_BINS + grey)


def integral_histogram(img: Image.Image, cell: int = CELL) -> np.ndarray:
    """``(rows + 1, cols + 1, BINS)`` cumulative histogram over ``cell``-pixel cells."""
    bins = _pixel_bins(img)
    h, w = bins.shape
    rows, cols = max(1, h // cell), max(1, w // cell)
    bins = bins[: rows * cell, : cols * cell] if h >= cell and w >= cell else bins
    ch, cw = bins.shape[0] // rows, bins.shape[1] // cols
    r_idx = np.minimum(np.arange(bins.shape[0]) // max(ch, 1), rows - 1)
    c_idx = np.minimum(np.arange(bins.shape[1]) // max(cw, 1), cols - 1)
    flat = (r_idx[:, None] * cols + c_idx[None, :]) * BINS + bins
    counts = np.bincount(flat.ravel(), minlength=rows * cols * BINS).astype(np.float32)
    ii = np.zeros((rows + 1, cols + 1, BINS), np.float32)
    ii[1:, 1:] = counts.reshape(rows, cols, BINS).cumsum(0).cumsum(1)
    return ii


def region_histograms(
    img: Image.Image, boxes: Sequence[tuple[float, float, float, float]]
) -> np.ndarray:
    """``(len(boxes), BINS)`` colour descriptors of pixel boxes ``(left, top, right, bottom)``."""
    ii = integral_histogram(img)
    rows, cols = ii.shape[0] - 1, ii.shape[1] - 1
    w, h = img.size
    out = np.zeros((len(boxes), BINS), np.float32)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        c0 = min(cols - 1, max(0, int(round(x0 / w * cols))))
        c1 = max(c0 + 1, min(cols, int(round(x1 / w * cols))))
        r0 = min(rows - 1, max(0, int(round(y0 / h * rows))))
        r1 = max(r0 + 1, min(rows, int(round(y1 / h * rows))))
        out[i] = ii[r1, c1] - ii[r0, c1] - ii[r1, c0] + ii[r0, c0]
    out = np.sqrt(out / np.maximum(out.sum(axis=1, keepdims=True), 1.0))
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def image_histogram(img: Image.Image) -> np.ndarray:
    """The colour descriptor of a whole picture, ``(BINS,)``."""
    return region_histograms(img, [(0, 0, *img.size)])[0]
