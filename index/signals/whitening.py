"""Background whitening of image embeddings.

Signed square root, then PCA-whitening estimated on a fixed bank of generic images (cluttered
backgrounds and generic cartoon figures, see :mod:`index.refindex`), then L2 normalisation.
Pooled CNN features share a large common component (every frame of a busy background looks
alike to them); whitening removes what generic clutter and generic figures have in common.
"""

from __future__ import annotations

import math

import numpy as np


def signed_sqrt(x: np.ndarray) -> np.ndarray:
    """Power normalisation (signed square root), rows re-normalised: tames bursty features."""
    y = np.sign(x) * np.sqrt(np.abs(x))
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


class Whitener:
    """PCA-whitening fitted on a background bank, regularised by ``eps`` x the top eigenvalue.

    Low-rank form: with bank eigenvectors V (k x d) and eigenvalues L,
    ``w(x) = x/sqrt(e) + ((x V^T) * (1/sqrt(L+e) - 1/sqrt(e))) V``, then L2-normalised, where
    x is the signed-square-rooted vector minus the bank mean. Directions the bank never
    varies in keep weight 1/sqrt(e); common background directions are damped.
    """

    EPS = 1e-3

    def __init__(self, mean: np.ndarray, basis: np.ndarray, gains: np.ndarray, base: float):
        self.mean = mean.astype(np.float32)
        self.basis = basis.astype(np.float32)
        self.gains = gains.astype(np.float32)
        self.base = float(base)

    @classmethod
    def fit(cls, bank: np.ndarray, eps: float = EPS) -> Whitener:
        x = signed_sqrt(np.asarray(bank, dtype=np.float64))
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        lam = s**2 / max(1, len(x))
        e = eps * float(lam.max()) if lam.size and lam.max() > 0 else 1.0
        keep = lam > 1e-12 * max(float(lam.max()), 1e-30)
        base = 1.0 / math.sqrt(e)
        gains = 1.0 / np.sqrt(lam[keep] + e) - base
        return cls(mean, vt[keep], gains, base)

    @classmethod
    def identity(cls, dim: int) -> Whitener:
        return cls(np.zeros(dim), np.zeros((0, dim)), np.zeros(0), 1.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = signed_sqrt(np.asarray(x, dtype=np.float32)) - self.mean
        y = x * self.base + ((x @ self.basis.T) * self.gains) @ self.basis
        return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        """The whitener as arrays of a :class:`~index.signals.vector_index.VectorIndex`."""
        return {
            "w_mean": self.mean,
            "w_basis": self.basis,
            "w_gains": self.gains,
            "w_base": np.array([self.base], dtype=np.float32),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Whitener:
        return cls(arrays["w_mean"], arrays["w_basis"], arrays["w_gains"], arrays["w_base"][0])
