"""How embedding vectors are stored: float16 bytes, ``dim`` values, little-endian.

The pipeline writes a region's vector with :func:`encode_vector`; every reader turns the
bytes back with :func:`decode_vector` (one), :func:`decode_vectors` (many, with a mask of
the usable ones) or :func:`stack_f16` (the raw float16 rows, as the archive's shards keep
them). Decoded vectors are float32 and re-normalised, since float16 rounding moves their
length a little; :func:`round_fp16` gives a freshly computed vector that same rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

STORED_DTYPE = np.dtype("<f2")  # float16, little-endian
BYTES_PER_VALUE = STORED_DTYPE.itemsize


class VectorSizeError(ValueError):
    """A stored vector does not have the number of values asked for."""


def encode_vector(vec: np.ndarray) -> bytes:
    """One vector -> its stored float16 bytes."""
    return np.asarray(vec).astype(STORED_DTYPE).tobytes()


def encode_vectors(vectors: np.ndarray) -> list[bytes]:
    """``(n, dim)`` vectors -> ``n`` stored blobs, one per row."""
    return [row.tobytes() for row in np.asarray(vectors).astype(STORED_DTYPE)]


def fits(blob: bytes | None, dim: int) -> bool:
    """True when ``blob`` holds exactly ``dim`` stored values (pruned rows are ``None``)."""
    return blob is not None and len(blob) == BYTES_PER_VALUE * dim


def _normalised(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


def decode_vector(blob: bytes, dim: int) -> np.ndarray:
    """Stored bytes -> a float32 vector, re-normalised (a zero vector stays zero).

    Raises :class:`VectorSizeError` when the blob does not hold ``dim`` values.
    """
    v = np.frombuffer(blob, dtype=STORED_DTYPE).astype(np.float32)
    if v.size != dim:
        raise VectorSizeError(f"stored vector has {v.size} values, the embedder makes {dim}")
    return _normalised(v)


def stack_f16(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Stored blobs, each of ``dim`` values -> their float16 rows ``(n, dim)``, unchanged."""
    if not blobs:
        return np.zeros((0, dim), STORED_DTYPE)
    return np.frombuffer(b"".join(blobs), dtype=STORED_DTYPE).reshape(-1, dim)


def decode_vectors(blobs: Sequence[bytes | None], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Stored blobs -> ``(vectors, ok)``: float32 rows re-normalised, and a mask of the blobs
    that had ``dim`` values (the others, pruned or of another model size, are zero rows)."""
    ok = np.array([fits(b, dim) for b in blobs], dtype=bool)
    out = np.zeros((len(blobs), dim), dtype=np.float32)
    if ok.any():
        out[ok] = stack_f16([b for b, fine in zip(blobs, ok, strict=True) if fine], dim)
    return _normalised(out), ok


def round_fp16(vectors: np.ndarray) -> np.ndarray:
    """Vectors as they read back after storing: float16-rounded, float32, re-normalised."""
    return _normalised(np.asarray(vectors).astype(STORED_DTYPE).astype(np.float32))
