"""The embedder interface, the error for missing weights, and CPU precision helpers."""

from __future__ import annotations

import functools
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

OFFLINE_DEFAULT = "effnet-lite0"
PRECISIONS = ("auto", "fp32", "bf16", "int8")


class EmbedderUnavailable(RuntimeError):
    """The model or its weights cannot be loaded here (offline, missing file, bad spec)."""


@dataclass
class FrameVectors:
    """The region vectors of one frame: row ``i`` of ``vectors`` is region ``names[i]``
    (:mod:`pipeline.regions`; ``names[0]`` is ``"full"``)."""

    names: list[str]
    vectors: np.ndarray


class Embedder(ABC):
    """Maps images (and, when ``has_text``, texts) to L2-normalised float32 vectors.

    ``id`` names model, weights and precision (e.g. ``effnet-lite0:imagenet:bf16``); vectors
    with different ids are never compared.
    """

    id: str
    dim: int
    has_text: bool = False

    @abstractmethod
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """``(n, dim)`` float32, rows L2-normalised."""

    def embed_frames(self, frames: Sequence[Image.Image]) -> list[FrameVectors]:
        """One :class:`FrameVectors` per frame, for the regions of :func:`pipeline.regions.regions`.

        This default crops each region and embeds the crops; embedders with a convolutional
        feature map override it to pool every region from one pass over the frame.
        """
        from pipeline.regions import regions

        named = [regions(f) for f in frames]
        flat = [crop for n in named for _, crop in n]
        vecs = self.embed_images(flat) if flat else np.zeros((0, self.dim), np.float32)
        out, at = [], 0
        for n in named:
            out.append(FrameVectors([name for name, _ in n], vecs[at : at + len(n)]))
            at += len(n)
        return out

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, dim)`` float32, rows L2-normalised, in the image space (text towers only)."""
        raise NotImplementedError(f"{self.id} has no text tower")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} dim={self.dim}>"


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags from ``/proc/cpuinfo`` (empty where it does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def resolve_precision(precision: str, auto: str | None = None) -> str:
    """``auto`` -> ``auto`` when given (the model's own choice), else ``bf16`` on CPUs with
    native bfloat16, else ``fp32``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":
        if auto is not None:
            return auto
        return "bf16" if cpu_has_bf16() else "fp32"
    if precision == "bf16" and not cpu_has_bf16():
        log.warning("bf16 requested but this CPU has no native bfloat16; it will be slow")
    return precision


def set_threads(threads: int) -> None:
    """Set torch's intra-op thread count when ``threads`` > 0 (0 keeps torch's default)."""
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def letterbox(img: Image.Image, size: int, fill: tuple[int, int, int]) -> Image.Image:
    """Resize the long side to ``size`` and pad to a square with ``fill`` (nothing is cut off)."""
    img = img if img.mode == "RGB" else img.convert("RGB")
    w, h = img.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
    if (nw, nh) == (size, size):
        return img
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(img, ((size - nw) // 2, (size - nh) // 2))
    return canvas
