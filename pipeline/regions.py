"""Crops of a frame that are embedded besides the whole frame.

A character often fills only part of a vertical 9:16 frame (a reaction video, a caption block, a
split screen). Squeezed into the embedder's square input, the whole frame shows it small, so
square crops along the long side are embedded too: ``top``/``mid``/``bot`` for portrait frames,
``left``/``mid``/``right`` for landscape ones, and a ``center`` crop for near-square frames.
Letterbox bars are removed first, so a 16:9 clip padded into 9:16 is treated as landscape.
The names are stored in ``Embedding.region``.
"""

from __future__ import annotations

from PIL import Image

from pipeline.hashing import remove_borders

FULL = "full"
PORTRAIT = ("top", "mid", "bot")
LANDSCAPE = ("left", "mid", "right")
CENTER = "center"
ALL_REGIONS = (FULL, *PORTRAIT, "left", "right", CENTER)

ELONGATED = 1.25  # long/short side ratio from which three squares are cut
CENTER_FRACTION = 0.6  # side of the centre crop relative to the short side


def regions(img: Image.Image, *, borders: bool = True) -> list[tuple[str, Image.Image]]:
    """``[("full", img), ...crops]``; ``borders`` removes flat letterbox bars first."""
    img = remove_borders(img) if borders else (img if img.mode == "RGB" else img.convert("RGB"))
    w, h = img.size
    out: list[tuple[str, Image.Image]] = [(FULL, img)]
    short, long_ = min(w, h), max(w, h)
    if short < 16:
        return out
    if long_ >= ELONGATED * short:
        names = PORTRAIT if h > w else LANDSCAPE
        offsets = (0, (long_ - short) // 2, long_ - short)
        for name, off in zip(names, offsets, strict=True):
            box = (0, off, w, off + short) if h > w else (off, 0, off + short, h)
            out.append((name, img.crop(box)))
    else:
        side = int(short * CENTER_FRACTION)
        left, top = (w - side) // 2, (h - side) // 2
        out.append((CENTER, img.crop((left, top, left + side, top + side))))
    return out
