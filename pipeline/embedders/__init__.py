"""Image (and text) embedders behind one interface, chosen by a spec string.

Specs: ``effnet-lite0`` (offline default, real ImageNet weights), ``clip:ARCH:PRETRAINED_TAG``
(hub weights), ``clip:ARCH:/path/to/checkpoint.pt`` (local weights), ``clip:ARCH:none`` (random
weights, for tests and throughput benchmarks).
"""

from __future__ import annotations

from pipeline.embedders.base import (
    OFFLINE_DEFAULT,
    Embedder,
    EmbedderUnavailable,
    cpu_has_bf16,
    l2_normalize,
    resolve_precision,
)

__all__ = [
    "OFFLINE_DEFAULT",
    "Embedder",
    "EmbedderUnavailable",
    "cpu_has_bf16",
    "l2_normalize",
    "load_embedder",
    "resolve_precision",
]


def load_embedder(spec: str, precision: str = "auto", threads: int = 0) -> Embedder:
    """Build the embedder named by ``spec``; raises :class:`EmbedderUnavailable` when it cannot."""
    spec = spec.strip()
    if spec in ("effnet-lite0", "effnet", "efficientnet-lite0"):
        from pipeline.embedders.effnet import EffNetLite0

        return EffNetLite0(precision=precision, threads=threads)
    if spec.startswith("clip:"):
        parts = spec.split(":", 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise EmbedderUnavailable(
                f"bad embedder spec {spec!r}: use clip:ARCH:PRETRAINED_TAG, "
                f"clip:ARCH:/path/to/checkpoint.pt or clip:ARCH:none"
            )
        from pipeline.embedders.clip import ClipEmbedder

        return ClipEmbedder(parts[1], parts[2], precision=precision, threads=threads)
    raise EmbedderUnavailable(
        f"unknown embedder spec {spec!r}: use {OFFLINE_DEFAULT!r} (offline default), "
        "clip:ARCH:PRETRAINED_TAG (hub weights, needs internet on first use) or "
        "clip:ARCH:/path/to/checkpoint.pt (local weights)"
    )
