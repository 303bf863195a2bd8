"""A few-shot classifier of the registered characters, trained when the reference index is built.

Nearest-reference similarity cannot tell apart characters drawn in one house style: every
character of the style is near every reference. So each index build also trains one
multinomial logistic regression over the whitened region descriptors, with a class per
registered character and one ``background`` class, from pictures made automatically:

* **positives**: each positive reference's subject cut from its plain background
  (:func:`index.signals.foreground_mask`) and pasted on generic backdrops at several sizes
  (45-95 % of the picture) and mirrored, the way a frame region shows a character; a picture
  without a plain background is used as given, mirrored and cropped;
* **background**: the background bank's region descriptors (clutter and generic figures),
  the character's negative references, and synthetic *same-style strangers* made from the
  references themselves: the subject recoloured (hue turned by 60-300 degrees) and chimeras
  of two registered characters (the top of one over the bottom of another). A stranger of
  the same style shares a body plan and line work with the registered characters but not
  their colours and parts; these teach the classifier that colours and parts decide.

Half the positives from the fifth on, and as many strangers, also carry one of the damages a
re-upload brings (:func:`degraded`; only blur is on, :data:`DEGRADE_KINDS`), so a blurred or
downscaled frame still reads as its character; strangers get it at the same rate, so damage
alone never reads as a registered character. Grain and low-bitrate JPEG are available but off:
with them, look-alikes of a registered character's body plan in another colour (the demo's
Mossling for Pompom) read as that character (7 of 285 negatives flagged on the distinct-design
tune set, against none with blur alone).

Every registered character is a negative for every other one (the softmax), so a region
scores high for a character only when it looks like that character *and not like the
others*. The probability of a character's class is the region's score for it.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

FILLS = (0.35, 0.5, 0.65, 0.8, 0.95)  # subject size in a positive picture, share of its side
MAX_TILT = 15.0  # degrees a positive subject is turned at most
STRETCH = (0.85, 1.18)  # height/width stretch of a positive subject (squash and stretch)
POSITIVES_PER_REFERENCE = 24
RECOLOURS_PER_REFERENCE = 3
CHIMERAS_PER_REFERENCE = 3
L2 = 1e-4  # weight decay of the logistic regression (on whitened, unit-length descriptors)
MAX_ITER = 300
DEGRADE_FROM = 4  # positives before this index are never degraded
DEGRADE_SHARE = 0.5  # share of the later positives (and of the strangers) degraded
DEGRADE_KINDS = 1  # blur only; 2 adds grain, 3 low-bitrate JPEG, 4 the colour grade
DAMAGES = ("blur", "grain", "low bitrate", "colour grade")  # what degraded() does, in order
SEED = 20261202
PICTURE = 224  # side of the synthetic pictures


def hue_turned(img: Image.Image, degrees: float) -> Image.Image:
    """``img`` with every hue turned by ``degrees`` (saturation and value kept)."""
    h, s, v = img.convert("RGB").convert("HSV").split()
    shift = int(round(degrees / 360 * 256)) % 256
    h = h.point(lambda x: (x + shift) % 256)
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def degraded(img: Image.Image, rng: random.Random, kind: str | None = None) -> Image.Image:
    """``img`` with one damage of a re-upload: Gaussian blur, grain, JPEG at quality 8-25
    after halving the resolution (a low-bitrate copy), or a colour grade that keeps hues
    within 20 degrees (strangers are turned by 60 or more). ``kind``: one of
    :data:`DAMAGES`; None draws one of the first :data:`DEGRADE_KINDS`."""
    img = img.convert("RGB")
    k = rng.randrange(DEGRADE_KINDS) if kind is None else DAMAGES.index(kind)
    if k == 0:
        return img.filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 3.5)))
    if k == 1:
        gen = np.random.default_rng(rng.getrandbits(32))
        arr = np.asarray(img, np.float32) + gen.normal(
            0.0, rng.uniform(8, 20), (*img.size[::-1], 3)
        )
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if k == 2:
        w, h = img.size
        small = img.resize((max(8, w // 2), max(8, h // 2)), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        small.save(buf, format="JPEG", quality=rng.randint(8, 25))
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB").resize((w, h))
    out = hue_turned(img, rng.uniform(-20, 20))
    out = ImageEnhance.Color(out).enhance(rng.uniform(0.9, 1.5))
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.85, 1.15))
    return ImageEnhance.Contrast(out).enhance(rng.uniform(0.85, 1.2))


def _maybe_degraded(img: Image.Image, rng: random.Random) -> Image.Image:
    return degraded(img, rng) if rng.random() < DEGRADE_SHARE else img


def posed(
    img: Image.Image, mask: np.ndarray, tilt: float, stretch: float
) -> tuple[Image.Image, np.ndarray]:
    """The picture and its subject mask turned by ``tilt`` degrees and stretched vertically
    by ``stretch``: the pose changes a drawing of the same character shows."""
    w, h = img.size
    size = (w, max(8, int(round(h * stretch))))
    m = Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
    pic = img.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    if tilt:
        edge = tuple(int(c) for c in np.asarray(pic)[0, 0])
        pic = pic.rotate(tilt, Image.Resampling.BICUBIC, expand=True, fillcolor=edge)
        m = m.rotate(tilt, Image.Resampling.NEAREST, expand=True)
    n = mask.shape[0]
    out = np.asarray(m.resize((n, n), Image.Resampling.NEAREST)) > 127
    return pic, out if out.any() else mask


def subject_on(
    img: Image.Image, mask: np.ndarray | None, backdrop: Image.Image, fill: float, mirrored: bool
) -> Image.Image:
    """The reference's subject on ``backdrop`` at ``fill`` of a square picture; a picture
    without a mask is cropped around its centre to ``fill`` instead."""
    from index.signals import composite_on

    if mirrored:
        img = ImageOps.mirror(img)
        mask = mask[:, ::-1] if mask is not None else None
    if mask is not None:
        return composite_on(img, mask, backdrop, size=PICTURE, fill=fill)
    w, h = img.size
    side = max(8, int(min(w, h) * max(fill, 0.6)))
    left, top = (w - side) // 2, (h - side) // 2
    return img.convert("RGB").crop((left, top, left + side, top + side)).resize((PICTURE, PICTURE))


def positive_pictures(
    img: Image.Image,
    mask: np.ndarray | None,
    backdrops: Sequence[Image.Image],
    rng: random.Random,
    n: int = POSITIVES_PER_REFERENCE,
) -> list[Image.Image]:
    """``n`` pictures of one reference's subject at the sizes of :data:`FILLS`, mirrored
    every other time, on backdrops drawn from ``backdrops``; from the third on, the subject is
    also turned and stretched a little (:func:`posed`)."""
    out = []
    for k in range(n):
        bd = backdrops[rng.randrange(len(backdrops))] if backdrops else Image.new("RGB", (8, 8))
        pic, m = img, mask
        if mask is not None and k >= 2:
            pic, m = posed(img, mask, rng.uniform(-MAX_TILT, MAX_TILT), rng.uniform(*STRETCH))
        made = subject_on(pic, m, bd, FILLS[k % len(FILLS)], mirrored=bool(k % 2))
        out.append(_maybe_degraded(made, rng) if k >= DEGRADE_FROM else made)
    return out


def stranger_pictures(
    subjects: Sequence[tuple[int, Image.Image, np.ndarray]],
    backdrops: Sequence[Image.Image],
    rng: random.Random,
) -> list[Image.Image]:
    """Same-style strangers: recoloured references and chimeras of two characters.

    ``subjects`` are ``(character id, picture, foreground mask)`` of positive references
    with a plain background; nothing is made from fewer than one.
    """
    if not subjects or not backdrops:
        return []
    out: list[Image.Image] = []
    black = Image.new("RGB", (PICTURE, PICTURE))
    for cid, img, mask in subjects:
        for _ in range(RECOLOURS_PER_REFERENCE):
            turned = hue_turned(img, rng.choice((60, 120, 180, 240, 300)))
            bd = backdrops[rng.randrange(len(backdrops))]
            made = subject_on(turned, mask, bd, rng.choice(FILLS[1:]), rng.random() < 0.5)
            out.append(_maybe_degraded(made, rng))
        others = [s for s in subjects if s[0] != cid]
        for _ in range(CHIMERAS_PER_REFERENCE if others else 0):
            _, o_img, o_mask = others[rng.randrange(len(others))]
            fill = rng.choice(FILLS[1:])
            top = subject_on(img, mask, black, fill, False)
            bottom = subject_on(o_img, o_mask, black, fill, False)
            cut = int(PICTURE * rng.uniform(0.4, 0.6))
            chimera = bottom.copy()
            chimera.paste(top.crop((0, 0, PICTURE, cut)), (0, 0))
            alpha = Image.fromarray(((np.asarray(chimera).sum(axis=2) > 24) * 255).astype(np.uint8))
            bd = backdrops[rng.randrange(len(backdrops))].convert("RGB")
            side = min(bd.size)
            canvas = bd.crop((0, 0, side, side)).resize((PICTURE, PICTURE))
            canvas.paste(chimera, (0, 0), alpha)
            out.append(_maybe_degraded(canvas, rng))
    return out


def train(
    positives: np.ndarray,
    labels: np.ndarray,
    background: np.ndarray,
    n_classes: int,
    l2: float = L2,
    max_iter: int = MAX_ITER,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression, class 0 = background, 1..``n_classes`` = ``labels``.

    Classes are weighted to equal total weight. Returns ``(weights (C+1, d), bias (C+1,))``
    as float32. Deterministic for the same inputs.
    """
    import torch

    x = torch.from_numpy(np.concatenate([positives, background]).astype(np.float32))
    y = torch.from_numpy(
        np.concatenate([np.asarray(labels, dtype=np.int64), np.zeros(len(background), np.int64)])
    )
    counts = torch.bincount(y, minlength=n_classes + 1).float().clamp(min=1)
    sample_w = (len(y) / (n_classes + 1) / counts)[y]
    lin = torch.nn.Linear(x.shape[1], n_classes + 1)
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(x), y, reduction="none")
        loss = (loss * sample_w).mean() + l2 * (lin.weight**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return (
        lin.weight.detach().numpy().astype(np.float32),
        lin.bias.detach().numpy().astype(np.float32),
    )


def probabilities(weights: np.ndarray, bias: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Softmax class probabilities ``(n, C+1)`` of whitened descriptors ``x``."""
    logits = np.asarray(x, dtype=np.float32) @ weights.T + bias
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def seeded(*parts: object) -> random.Random:
    """A random generator seeded from :data:`SEED` and ``parts`` (stable across runs)."""
    text = ":".join(str(p) for p in (SEED, *parts))
    return random.Random(text)
