"""open_clip image and text towers: ``clip:ARCH:PRETRAINED_TAG``, ``clip:ARCH:/path/to.ckpt``,
``clip:ARCH:none`` (random weights, seeded, for tests and throughput benchmarks).

Hub tags download weights on first use. Where the hub cannot be reached, the load must fail
fast with a clear message instead of retrying for most of a minute: before loading a hub tag
the hub host is probed (3 s TCP connect), and when it is unreachable the load runs with
huggingface_hub in offline mode, so weights already in the local cache still load and missing
ones fail at once. With a proxy configured in the environment the probe is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from PIL import Image

from pipeline.embedders.base import (
    OFFLINE_DEFAULT,
    Embedder,
    EmbedderUnavailable,
    cpu_flags,
    l2_normalize,
    letterbox,
    resolve_precision,
    set_threads,
)

RANDOM_TAGS = ("none", "random")
RANDOM_SEED = 0
CHUNK = 64
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
_offline_lock = threading.Lock()


def auto_precision() -> str:
    """The fastest precision within cosine 0.99 of fp32 for a ViT image tower on a CPU:
    bfloat16 weights on CPUs with AMX (its tile unit multiplies bfloat16 matrices), else int8
    where PyTorch has a quantized CPU engine (x86/fbgemm), else fp32.

    Measured on 2 idle cores, ViT-B-32, batch 64:

    * AVX-512-BF16 without AMX: fp32 28 img/s, bf16 weights 17, bf16 autocast 10, int8 with
      the MLP layers only 49, int8 with the attention projections too
      (:func:`quantize_image_tower`) 74;
    * AMX (Xeon with AMX-BF16): fp32 35 img/s, int8 58, bf16 weights 145; the 22 regions of
      8 frames took 1.39 s in bf16, 2.35 s in int8 and 5.75 s in fp32, at cosine >= 0.9999
      to fp32 (int8: 0.9998).
    """
    import torch

    if "amx_bf16" in cpu_flags():
        return "bf16"
    engines = set(torch.backends.quantized.supported_engines)
    return "int8" if {"x86", "fbgemm"} & engines else "fp32"


def _linear_self_attention():  # type: ignore[no-untyped-def]
    import torch
    import torch.nn.functional as F
    from torch import nn

    class LinearSelfAttention(nn.Module):
        """``nn.MultiheadAttention`` (self-attention, no dropout) rebuilt on two ``nn.Linear``
        layers, so dynamic quantization reaches its projections too."""

        def __init__(self, mha: nn.MultiheadAttention) -> None:
            super().__init__()
            d = mha.embed_dim
            self.heads, self.batch_first = mha.num_heads, mha.batch_first
            self.in_proj = nn.Linear(d, 3 * d)
            self.out_proj = nn.Linear(d, d)
            with torch.no_grad():
                self.in_proj.weight.copy_(mha.in_proj_weight)
                self.in_proj.bias.copy_(mha.in_proj_bias)
                self.out_proj.weight.copy_(mha.out_proj.weight)
                self.out_proj.bias.copy_(mha.out_proj.bias)

        def forward(self, q, k=None, v=None, need_weights=False, attn_mask=None):  # type: ignore[no-untyped-def]
            x = q if self.batch_first else q.transpose(0, 1)
            b, n, d = x.shape
            qkv = self.in_proj(x).reshape(b, n, 3, self.heads, d // self.heads)
            qkv = qkv.permute(2, 0, 3, 1, 4)
            out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)
            out = self.out_proj(out.transpose(1, 2).reshape(b, n, d))
            return (out if self.batch_first else out.transpose(0, 1)), None

    return LinearSelfAttention


def quantize_image_tower(visual):  # type: ignore[no-untyped-def]
    """int8 weights for every linear layer of an image tower (dynamic quantization: activations
    stay float). Self-attention blocks of open_clip ViTs get their projections as linear layers
    first; other towers keep their attention as it is."""
    import warnings

    import torch
    from torch import nn

    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None) or []
    attention = _linear_self_attention()
    for blk in blocks:
        mha = getattr(blk, "attn", None)
        if (
            isinstance(mha, nn.MultiheadAttention)
            and not hasattr(blk, "ln_1_kv")  # cross-attention keeps its own module
            and mha.in_proj_weight is not None
            and mha.in_proj_bias is not None
            and mha.dropout == 0.0
        ):
            blk.attn = attention(mha)
    with warnings.catch_warnings():  # the eager quantization API warns of its deprecation
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(visual, {nn.Linear}, dtype=torch.qint8)


def _looks_like_path(value: str) -> bool:
    return (
        "/" in value
        or "\\" in value
        or value.startswith(".")
        or value.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))
    )


def _unavailable(arch: str, weights: str, reason: str) -> EmbedderUnavailable:
    return EmbedderUnavailable(
        f"CLIP weights {weights!r} for {arch} are not available: {reason}. "
        f"Either use a hub tag with internet access on first use (clip:{arch}:TAG, e.g. "
        f"clip:ViT-B-32:laion2b_s34b_b79k; the weights are cached afterwards), or download the "
        f"checkpoint elsewhere and give its local path (clip:{arch}:/path/to/checkpoint.pt). "
        f'Offline default: embed.model = "{OFFLINE_DEFAULT}".'
    )


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """True when the Hugging Face hub answers a TCP connect (or a proxy is configured)."""
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return True
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:
        endpoint = "https://huggingface.co"
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
    """Put huggingface_hub in offline mode for the duration (cached files only)."""
    if not offline:
        yield
        return
    from huggingface_hub import constants

    with _offline_lock:
        before = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = True
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = before


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()[:12]


class ClipEmbedder(Embedder):
    """An open_clip model; images are letterboxed to the model's square input size."""

    has_text = True

    def __init__(self, arch: str, weights: str, precision: str = "auto", threads: int = 0) -> None:
        import open_clip
        import torch

        set_threads(threads)
        self.precision = resolve_precision(precision, auto=auto_precision())
        self.arch = arch
        if arch not in open_clip.list_models():
            raise EmbedderUnavailable(
                f"unknown open_clip architecture {arch!r} (see open_clip.list_models()); "
                f'offline default: embed.model = "{OFFLINE_DEFAULT}"'
            )
        pretrained: str | None
        offline = False
        if weights.lower() in RANDOM_TAGS:
            pretrained, weights_id = None, f"random-seed{RANDOM_SEED}"
        elif _looks_like_path(weights):
            path = Path(weights).expanduser()
            if not path.is_file():
                raise _unavailable(arch, weights, f"checkpoint file not found: {path}")
            pretrained, weights_id = str(path), f"file-{path.name}-{_file_digest(path)}"
        else:
            known = open_clip.list_pretrained_tags_by_model(arch)
            if weights not in known:
                raise _unavailable(
                    arch, weights, f"unknown tag (known for {arch}: {', '.join(known) or 'none'})"
                )
            pretrained, weights_id = weights, weights
            offline = not hub_reachable()
        try:
            with _hub_offline(offline), torch.random.fork_rng():
                torch.manual_seed(RANDOM_SEED)
                model, _, preprocess = open_clip.create_model_and_transforms(
                    arch, pretrained=pretrained
                )
        except EmbedderUnavailable:
            raise
        except Exception as exc:  # open_clip raises RuntimeError/OSError/hub errors
            reason = "the hub cannot be reached and they are not in the local cache"
            if not offline:
                reason = f"loading failed ({type(exc).__name__}: {str(exc)[:300]})"
            raise _unavailable(arch, weights, reason) from exc
        model = model.eval()
        if self.precision == "bf16":
            model = model.to(torch.bfloat16)  # bf16 weights: faster than autocast's casts
        elif self.precision == "int8":  # the image tower; text prompts are few and stay fp32
            model.visual = quantize_image_tower(model.visual)
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.input_size = _input_size(model)
        mean = getattr(model.visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073)
        self.fill = tuple(int(round(m * 255)) for m in mean)
        self.id = f"clip:{arch}:{weights_id}:{self.precision}"
        with torch.inference_mode():
            self.dim = int(self.model.encode_text(self.tokenizer(["a"])).shape[-1])

    def _dtype(self):  # type: ignore[no-untyped-def]
        import torch

        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        outs = []
        with torch.inference_mode():
            for i in range(0, len(images), CHUNK):
                batch = torch.stack(
                    [
                        self.preprocess(letterbox(im, self.input_size, self.fill))
                        for im in images[i : i + CHUNK]
                    ]
                )
                outs.append(self.model.encode_image(batch.to(self._dtype())).float())
        return l2_normalize(torch.cat(outs).numpy())

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode():
            out = self.model.encode_text(self.tokenizer(list(texts))).float()
        return l2_normalize(out.numpy())


def _input_size(model) -> int:  # type: ignore[no-untyped-def]
    size = getattr(model.visual, "image_size", 224)
    if isinstance(size, (tuple, list)):
        return int(size[0])
    return int(size)
