"""The reference index a signal builds: a FAISS index plus the metadata of each FAISS id.

FAISS stores only integers, so each id's metadata (reference, character, variant...) is kept
beside it, with any extra arrays a signal needs at compare time (whitening, classifier...).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import faiss
import numpy as np

PDQ_BITS = 256
SEARCH_K = 256  # neighbours fetched per query vector (all of them for small reference sets)


class VectorIndex:
    """A FAISS index (float inner product or binary Hamming) plus per-id metadata and arrays."""

    def __init__(
        self,
        index: Any,
        meta: list[dict[str, Any]],
        arrays: dict[str, np.ndarray] | None = None,
    ) -> None:
        if index.ntotal != len(meta):
            raise ValueError(f"index has {index.ntotal} vectors but {len(meta)} metadata rows")
        self.index = index
        self.meta = meta
        self.arrays = arrays or {}

    @property
    def binary(self) -> bool:
        return isinstance(self.index, faiss.IndexBinary)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def flat_ip(
        cls, vectors: np.ndarray, meta: list[dict[str, Any]], **arrays: np.ndarray
    ) -> VectorIndex:
        """An exact inner-product index of float vectors."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = faiss.IndexFlatIP(vectors.shape[1])
        if len(vectors):
            index.add(vectors)
        return cls(index, meta, dict(arrays))

    @classmethod
    def binary_flat(cls, hex_hashes: Sequence[str], meta: list[dict[str, Any]]) -> VectorIndex:
        """An exact Hamming index of 256-bit hashes given in hex."""
        index = faiss.IndexBinaryFlat(PDQ_BITS)
        if hex_hashes:
            index.add(hashes_to_array(hex_hashes))
        return cls(index, meta)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` of the ``k`` nearest (ids -1 where fewer exist)."""
        k = max(1, min(k, self.ntotal))
        return self.index.search(np.ascontiguousarray(queries), k)

    def to_bytes(self) -> bytes:
        """One ``.npz`` blob: the serialised FAISS index and the extra arrays (not the meta)."""
        ser = (
            faiss.serialize_index_binary(self.index)
            if self.binary
            else faiss.serialize_index(self.index)
        )
        buf = io.BytesIO()
        np.savez(buf, __faiss__=ser, __binary__=np.array([self.binary]), **self.arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, meta: list[dict[str, Any]]) -> VectorIndex:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            binary = bool(z["__binary__"][0])
            ser = z["__faiss__"]
            index = faiss.deserialize_index_binary(ser) if binary else faiss.deserialize_index(ser)
            arrays = {k: z[k] for k in z.files if not k.startswith("__")}
        return cls(index, meta, arrays)


def hashes_to_array(hex_hashes: Sequence[str]) -> np.ndarray:
    """Hex PDQ hashes -> ``(n, 32)`` uint8, the layout FAISS binary indexes take."""
    return np.frombuffer(b"".join(bytes.fromhex(h) for h in hex_hashes), dtype=np.uint8).reshape(
        -1, PDQ_BITS // 8
    )
