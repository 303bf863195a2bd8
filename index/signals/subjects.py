"""Reference pictures without their background: the subject cut out and pasted elsewhere
(the embedding signal's training pictures, :mod:`index.fewshot`)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image


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
