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
    """How many leading lines (rows or columns, each (n, 3) uint8) are flat in the first
    line's colour, and that colour.

    Lines are read in chunks until the first non-flat one; a run reaching ``limit`` is a flat
    picture, not a bar, and counts as 0.
    """
    ref = np.median(lines[0], axis=0)
    tol3 = 3 * _BORDER_TOL
    for start in range(0, limit, chunk):
        part = lines[start : min(start + chunk, limit)].astype(np.int16)
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


_MAX_LAYERS = 4  # nested bars cut at most (e.g. black letterbox around a white-margined picture)


def _one_layer(a: np.ndarray) -> tuple[int, int, int, int]:
    h, w = a.shape[:2]
    if h < 8 or w < 8:
        return 0, 0, w, h
    max_h = int(h * (1 - _MIN_KEEP) / 2)
    max_w = int(w * (1 - _MIN_KEEP) / 2)
    top, bottom = _pair(_border_run(a, max_h), _border_run(a[::-1], max_h))
    cols = a.transpose(1, 0, 2)
    left, right = _pair(_border_run(cols, max_w), _border_run(cols[::-1], max_w))
    return left, top, w - right, h - bottom


def border_box(img: Image.Image, *, layers: int = _MAX_LAYERS) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box left after cutting flat bars on each side.

    Cutting repeats until nothing changes (at most ``layers`` times), so nested bars (a
    letterbox around a picture with its own plain margins) all go; content narrower than
    ``_MIN_KEEP`` of the original side is never cropped to.
    """
    a = np.asarray(_rgb(img))  # uint8, no copy: lines are widened chunk by chunk
    h, w = a.shape[:2]
    left, top, right, bottom = 0, 0, w, h
    for _ in range(max(1, layers)):
        dl, dt, dr, db = _one_layer(a[top:bottom, left:right])
        if (dl, dt, dr, db) == (0, 0, right - left, bottom - top):
            break
        nl, nt, nr, nb = left + dl, top + dt, left + dr, top + db
        if nr - nl < _MIN_KEEP * w or nb - nt < _MIN_KEEP * h:
            break
        left, top, right, bottom = nl, nt, nr, nb
    return left, top, right, bottom


def remove_borders(img: Image.Image, *, layers: int = _MAX_LAYERS) -> Image.Image:
    """Crop flat letterbox/pillarbox bars (black ones, or same-coloured pairs on opposite
    sides), layer after layer (at most ``layers``) until none is left. A flat image stays
    whole."""
    img = _rgb(img)
    box = border_box(img, layers=layers)
    if box == (0, 0, img.width, img.height):
        return img
    return img.crop(box)


def canonical(img: Image.Image) -> Image.Image:
    """One layer of borders removed, then resized to ``CANONICAL_SIZE`` square: the form that
    is hashed.

    Only the outer layer goes: a picture with its own plain margins re-used inside letterbox
    bars then hashes exactly like the picture (<= 8 bits measured), whereas cutting down to
    the subject on both sides put the same copy 12 bits away (the subject's box is found a
    pixel or two differently at each resolution, and PDQ is crop-sensitive)."""
    out = remove_borders(img, layers=1)
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


DIHEDRAL = (
    ("original", None),
    ("rot90", Image.Transpose.ROTATE_90),
    ("rot180", Image.Transpose.ROTATE_180),
    ("rot270", Image.Transpose.ROTATE_270),
    ("flip_v", Image.Transpose.FLIP_TOP_BOTTOM),
    ("flip_h", Image.Transpose.FLIP_LEFT_RIGHT),
    ("transpose", Image.Transpose.TRANSPOSE),
    ("transverse", Image.Transpose.TRANSVERSE),
)


def pdq_dihedral(img: Image.Image, *, normalize: bool = True) -> tuple[list[str], int]:
    """The PDQ hashes of the 8 rotated/mirrored pictures (in :data:`DIHEDRAL` order) and the
    quality of the original; query with all 8 to match flipped or rotated copies.

    Each variant is hashed from its own transformed pixels: pdqhash's dihedral shortcut
    (``compute_dihedral``, a transform of the DCT) lands up to ~34 bits away from the hash of
    the truly mirrored picture on flat-coloured drawings, against ~2 bits this way.
    """
    src = canonical(img) if normalize else _rgb(img)
    out, quality = [], 0
    for i, (_, op) in enumerate(DIHEDRAL):
        pic = src if op is None else src.transpose(op)
        bits, q = pdqhash.compute(np.ascontiguousarray(np.asarray(pic, dtype=np.uint8)))
        out.append(_hex(bits))
        if i == 0:
            quality = int(q)
    return out, quality


def hamming(a: str, b: str) -> int:
    """Bit distance between two hex hashes of the same length."""
    if len(a) != len(b):
        raise ValueError(f"hash lengths differ: {len(a)} vs {len(b)}")
    return (int(a, 16) ^ int(b, 16)).bit_count()
