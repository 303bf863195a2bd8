"""PDQ perceptual hashes on a normalised image.

Normalisation follows the measurements in the detection research: cropping flat (black or
coloured) letterbox bars before hashing took the padded case from 0% to 100% matched, and the
hash of a 1080p frame differs by 16 bits from the hash of the same frame downscaled, so every
image (reference or frame) is hashed at one canonical size. 256x256 is well above PDQ's internal
64x64 grid, costs about 0.7 ms per hash, and is below the 512x512 the PDQ authors advise as
the largest input worth hashing. The aspect ratio is not kept: PDQ squeezes to a square anyway.
"""

from __future__ import annotations

import numpy as np
import pdqhash
from PIL import Image

CANONICAL_SIZE = 256
_BORDER_TOL = 12.0  # mean absolute difference (0-255) for a row to count as border
_BLACK = 40  # a bar whose colour has no channel above this is black
_MIN_KEEP = 0.15  # content narrower than this share of a side is not cropped to


def _rgb(img: Image.Image) -> Image.Image:
    return img if img.mode == "RGB" else img.convert("RGB")


def _border_run(lines: np.ndarray, limit: int, chunk: int = 16) -> tuple[int, np.ndarray]:
    """How many leading lines (rows or columns, each (n, 3)) are flat in the first line's colour,
    and that colour.

    Lines are read in chunks until the first non-flat one; a run reaching ``limit`` is a flat
    picture, not a bar, and counts as 0.
    """
    ref = np.median(lines[0], axis=0)
    tol3 = 3 * _BORDER_TOL
    for start in range(0, limit, chunk):
        part = lines[start : min(start + chunk, limit)]
        diff = np.abs(part - ref[None, None, :]).sum(axis=2)  # (lines, n), 0..765
        flat = (diff.mean(axis=1) < tol3) & ((diff > 3 * tol3).mean(axis=1) < 0.02)
        if not flat.all():
            return start + int(np.argmin(flat)), ref
    return 0, ref


def _pair(a: tuple[int, np.ndarray], b: tuple[int, np.ndarray]) -> tuple[int, int]:
    """Keep a bar when it is near black, or when the opposite side has a bar of its colour
    (a coloured template); a lone coloured edge is more likely part of the picture."""
    (ra, ca), (rb, cb) = a, b
    same = ra > 0 and rb > 0 and float(np.abs(ca - cb).max()) < 3 * _BORDER_TOL
    keep_a = ra if (ca.max() <= _BLACK or same) else 0
    keep_b = rb if (cb.max() <= _BLACK or same) else 0
    return keep_a, keep_b


def border_box(img: Image.Image) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box left after cutting flat bars on each side."""
    a = np.asarray(_rgb(img), dtype=np.int16)
    h, w = a.shape[:2]
    if h < 8 or w < 8:
        return 0, 0, w, h
    max_h = int(h * (1 - _MIN_KEEP) / 2)
    max_w = int(w * (1 - _MIN_KEEP) / 2)
    top, bottom = _pair(_border_run(a, max_h), _border_run(a[::-1], max_h))
    cols = a.transpose(1, 0, 2)
    left, right = _pair(_border_run(cols, max_w), _border_run(cols[::-1], max_w))
    return left, top, w - right, h - bottom


def remove_borders(img: Image.Image) -> Image.Image:
    """Crop flat letterbox/pillarbox bars: black ones, or same-coloured pairs on opposite sides.
    A flat image stays whole."""
    img = _rgb(img)
    box = border_box(img)
    if box == (0, 0, img.width, img.height):
        return img
    return img.crop(box)


def canonical(img: Image.Image) -> Image.Image:
    """Borders removed, then resized to ``CANONICAL_SIZE`` square: the form that is hashed."""
    out = remove_borders(img)
    if out.size != (CANONICAL_SIZE, CANONICAL_SIZE):
        out = out.resize((CANONICAL_SIZE, CANONICAL_SIZE), Image.Resampling.BILINEAR)
    return out


def _hex(bits: np.ndarray) -> str:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def pdq(img: Image.Image, *, normalize: bool = True) -> tuple[str, int]:
    """PDQ hash (64 hex chars, bits MSB-first as ThreatExchange writes them) and quality 0-100."""
    src = canonical(img) if normalize else _rgb(img)
    bits, quality = pdqhash.compute(np.ascontiguousarray(np.asarray(src, dtype=np.uint8)))
    return _hex(bits), int(quality)


def pdq_dihedral(img: Image.Image, *, normalize: bool = True) -> tuple[list[str], int]:
    """The 8 dihedral PDQ hashes (original, rot90, rot180, rot270, flipV, flipH, and the two
    transposes, in pdqhash's order) and the quality; query with all 8 to match flipped copies."""
    src = canonical(img) if normalize else _rgb(img)
    vectors, quality = pdqhash.compute_dihedral(
        np.ascontiguousarray(np.asarray(src, dtype=np.uint8))
    )
    return [_hex(v) for v in vectors], int(quality)


def hamming(a: str, b: str) -> int:
    """Bit distance between two hex hashes of the same length."""
    if len(a) != len(b):
        raise ValueError(f"hash lengths differ: {len(a)} vs {len(b)}")
    return (int(a, 16) ^ int(b, 16)).bit_count()
