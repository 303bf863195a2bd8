"""The regions of a frame that get a vector of their own besides the whole frame.

A character often fills only part of a vertical 9:16 frame (a reaction video, a caption block,
picture-in-picture, a character peeking in at an edge). Squeezed into the embedder's square
input with the rest of the frame, it is small and the background dominates the pooled
features. So square crops of two sizes are embedded too (:data:`SCALES`):

* side = the frame's short side, sliding along the long side (``top``/``mid``/``bot`` on a
  portrait frame, ``left``/``mid``/``right`` on a landscape one; none on a square frame);
* side = 0.45 of the short side, on a grid across the whole frame whose neighbours overlap
  by a third, named ``s45-r<row>c<col>``.

On a 360x640 frame that is 1 + 3 + 18 = 22 pictures. The scheme was chosen by measurement,
with the detector's own code, on fixture videos of the demo characters (centred, panning,
zooming, picture-in-picture at 35-45% of the width, cut by a frame edge; look-alike
distractors; five kinds of background; lowest positive minus highest negative score):

=====================================  =====  ======  =============  =============
regions                                count  demo    demo, seed 11  held-out (65)
=====================================  =====  ======  =============  =============
whole frame + 3 full-width squares        4   -0.13   -0.19          -1.26 (20/30)
+ 0.7 grid (8)                           12   +0.02   +0.17          (not run)
+ 0.45 grid, step 2/3 side (18): this    22   +0.25   +0.14          +0.01 (30/30)
+ 0.7 and 0.45 grids                     30   +0.24   +0.14          +0.01
0.45 grid thinned to 4 rows              16   +0.12   +0.04          -0.08 (4 missed)
=====================================  =====  ======  =============  =============

Larger and denser schemes (up to 80 crops, measured on the same videos with raw pooled
features) gained no more. The table measured crops embedded one by one; effnet-lite0 now pools
the same boxes from one feature map of the whole frame
(:meth:`pipeline.embedders.effnet.EffNetLite0.embed_frames`), where a further grid of squares
0.3 of the short side (68 regions in all) gained nothing on same-style characters. Letterbox
bars are removed first (layer after layer), so a 16:9 clip padded into 9:16 is cut like a
landscape frame. Region names are stored in
``Embedding.region``; :func:`region_box` maps a name back to its box.
"""

from __future__ import annotations

import math
import re

from PIL import Image

from pipeline.hashing import remove_borders

FULL = "full"
PORTRAIT = ("top", "mid", "bot")
LANDSCAPE = ("left", "mid", "right")
# (side as a share of the short side, step as a share of the side): the full-width squares,
# then the grid
SCALES: tuple[tuple[float, float], ...] = ((1.0, 0.5), (0.45, 0.67))
VERSION = 2  # bump when the scheme changes (stored vectors of another scheme still compare)
MIN_SIDE = 32  # crops smaller than this (px) are not made

_GRID_NAME = re.compile(r"^s(\d{2,3})-r(\d+)c(\d+)$")


def _positions(length: int, side: int, step_frac: float) -> list[int]:
    """Evenly spread offsets of a ``side`` window along ``length``, at most
    ``step_frac * side`` apart, first at 0 and last at the end."""
    if length <= side:
        return [0]
    n = math.ceil((length - side) / max(1.0, side * step_frac)) + 1
    return [round(i * (length - side) / (n - 1)) for i in range(n)]


def region_boxes(width: int, height: int) -> list[tuple[str, tuple[int, int, int, int]]]:
    """``[(name, (left, top, right, bottom)), ...]`` for a (border-free) frame of this size,
    starting with ``("full", whole frame)``; no two boxes are equal."""
    out: list[tuple[str, tuple[int, int, int, int]]] = [(FULL, (0, 0, width, height))]
    short = min(width, height)
    seen = {out[0][1]}
    for scale, step in SCALES:
        side = int(round(short * scale))
        if side < MIN_SIDE:
            continue
        xs = _positions(width, side, step)
        ys = _positions(height, side, step)
        for r, y in enumerate(ys):
            for c, x in enumerate(xs):
                box = (x, y, x + side, y + side)
                if box in seen:
                    continue
                seen.add(box)
                n = len(ys) if height > width else len(xs)
                if scale >= 1.0 and n <= 3:
                    names = PORTRAIT if height > width else LANDSCAPE
                    k = r if height > width else c
                    name = names[min(2, round(2 * k / max(1, n - 1)))] if n > 1 else "mid"
                else:  # a grid, or a very elongated frame with more than three squares
                    name = f"s{round(scale * 100)}-r{r}c{c}"
                out.append((name, box))
    return out


def region_box(name: str, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The box of a region name on a (border-free) frame of this size; None if unknown."""
    for n, box in region_boxes(width, height):
        if n == name:
            return box
    return None


def region_scale(name: str) -> float:
    """The crop's side as a share of the frame's short side (1.0 for full-width squares and
    the whole frame)."""
    m = _GRID_NAME.match(name)
    return int(m.group(1)) / 100 if m else 1.0


def regions(img: Image.Image, *, borders: bool = True) -> list[tuple[str, Image.Image]]:
    """``[("full", img), ...crops]``; ``borders`` removes flat letterbox bars first."""
    img = remove_borders(img) if borders else (img if img.mode == "RGB" else img.convert("RGB"))
    w, h = img.size
    if min(w, h) < 16:
        return [(FULL, img)]
    return [(name, img if name == FULL else img.crop(box)) for name, box in region_boxes(w, h)]
