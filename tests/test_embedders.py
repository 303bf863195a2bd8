"""Embedders: EfficientNet-Lite0 with its real ImageNet weights, open_clip code paths, errors."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.embedders import Embedder, EmbedderUnavailable, cpu_has_bf16, load_embedder
from pipeline.embedders.base import cpu_flags
from pipeline.embedders.clip import auto_precision
from pipeline.embedders.effnet import EffNetLite0, map_state_dict

skimage_data = pytest.importorskip("skimage.data")

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CUP_CLASSES = {967, 968}  # espresso, cup


@pytest.fixture(scope="module")
def effnet_fp32() -> EffNetLite0:
    emb = load_embedder("effnet-lite0", precision="fp32")
    assert isinstance(emb, EffNetLite0)
    return emb


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [
        Image.fromarray(skimage_data.chelsea()),
        Image.fromarray(skimage_data.coffee()),
        Image.fromarray(skimage_data.astronaut()),
    ]


def test_effnet_real_weights_classify_photos(effnet_fp32: EffNetLite0, photos) -> None:
    (cat, p_cat), (cup, p_cup), _ = effnet_fp32.classify(photos)
    assert cat in CAT_CLASSES and p_cat > 0.3, (cat, p_cat)
    assert cup in CUP_CLASSES and p_cup > 0.3, (cup, p_cup)


def test_effnet_embedding_shape_norm_and_id(effnet_fp32: EffNetLite0, photos) -> None:
    assert isinstance(effnet_fp32, Embedder)
    assert effnet_fp32.id == "effnet-lite0:imagenet-gem3-hsv51:fp32"
    assert effnet_fp32.dim == 1280 + 51 and effnet_fp32.has_text is False
    vecs = effnet_fp32.embed_images(photos)
    assert vecs.shape == (3, effnet_fp32.dim) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # different photos are not the same vector; the same photo twice is
    assert float(vecs[0] @ vecs[1]) < 0.9
    again = effnet_fp32.embed_images(photos[:1])
    assert float(again[0] @ vecs[0]) > 0.9999
    assert effnet_fp32.embed_images([]).shape == (0, effnet_fp32.dim)
    with pytest.raises(NotImplementedError):
        effnet_fp32.embed_texts(["a cat"])


def test_effnet_vertical_frame_kept_whole(effnet_fp32: EffNetLite0, photos) -> None:
    """A 9:16 frame with the cat in its top third still looks like the cat (letterbox input)."""
    cat = photos[0].resize((360, 240))
    frame = Image.new("RGB", (360, 640), (20, 20, 20))
    frame.paste(cat, (0, 0))
    ((idx, _),) = effnet_fp32.classify([frame])
    assert idx in CAT_CLASSES


def test_effnet_regions_pooled_from_one_pass(effnet_fp32: EffNetLite0, photos) -> None:
    """Every region of the frame comes from one pass; a region around the cat is nearer to
    the cat photo than the frame's other regions, and the default crop path names the same
    regions."""
    from pipeline.regions import region_boxes

    cat = photos[0].resize((300, 200))
    noise = np.random.default_rng(0).integers(0, 255, (640 // 8, 360 // 8, 3), dtype=np.uint8)
    frame = Image.fromarray(noise).resize((360, 640))  # busy: no border to remove
    frame.paste(cat, (30, 20))
    (fv,) = effnet_fp32.embed_frames([frame])
    assert fv.names == [n for n, _ in region_boxes(360, 640)]
    assert fv.vectors.shape == (len(fv.names), effnet_fp32.dim)
    np.testing.assert_allclose(np.linalg.norm(fv.vectors, axis=1), 1.0, atol=1e-5)
    ref = effnet_fp32.embed_images([photos[0]])[0]
    sims = dict(zip(fv.names, fv.vectors @ ref, strict=True))
    assert sims["top"] > sims["bot"] + 0.1, sims
    (crops,) = Embedder.embed_frames(effnet_fp32, [frame])  # the crop-by-crop default
    assert crops.names == fv.names
    # the same frame twice in one batch gives the same vectors
    a, b = effnet_fp32.embed_frames([frame, frame])
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)


def _unfolded_effnet():  # type: ignore[no-untyped-def]
    """timm's network with the shipped weights, BatchNorms as they come."""
    import timm
    import torch

    from pipeline.embedders.effnet import TIMM_ARCH, weights_file

    src = torch.load(weights_file(), map_location="cpu", weights_only=True)
    model = timm.create_model(TIMM_ARCH, pretrained=False)
    model.load_state_dict(map_state_dict(src, model), strict=True)
    return src, model.eval()


def test_effnet_key_mapping_is_complete() -> None:
    src, model = _unfolded_effnet()
    mapped = map_state_dict(src, model)
    assert set(mapped) == set(model.state_dict())
    assert len(mapped) == len(src)
    broken = dict(src)
    broken.pop("_blocks.3._bn1.running_var")
    with pytest.raises(EmbedderUnavailable, match="missing"):
        map_state_dict(broken, model)


def test_effnet_batchnorm_folding_keeps_the_features(effnet_fp32: EffNetLite0, photos) -> None:
    import torch

    from pipeline.embedders.effnet import to_batch

    _, model = _unfolded_effnet()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in effnet_fp32.model.modules())
    assert effnet_fp32.precision == "fp32"
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x = to_batch(photos)
    with torch.inference_mode():
        want = model.forward_features(x)
        got = effnet_fp32.model.forward_features(x)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= 1e-3 * float(want.abs().max())


def test_effnet_bf16_close_to_fp32(effnet_fp32: EffNetLite0, photos) -> None:
    bf16 = load_embedder("effnet-lite0", precision="bf16")
    assert bf16.id == "effnet-lite0:imagenet-gem3-hsv51:bf16"
    cos = np.sum(bf16.embed_images(photos) * effnet_fp32.embed_images(photos), axis=1)
    assert cos.min() >= 0.99, cos


def test_precision_auto_follows_cpu() -> None:
    auto = load_embedder("effnet-lite0")
    assert auto.id.endswith(":bf16" if cpu_has_bf16() else ":fp32")


# The CLIP code path (open_clip towers, precisions, checkpoints) on ViT-S-32: the same code as
# ViT-B-32 in a third of the time.
CLIP_ARCH = "ViT-S-32"
CLIP_DIM = 384


@pytest.fixture(scope="module")
def clip_random() -> Embedder:
    return load_embedder(f"clip:{CLIP_ARCH}:none", precision="fp32")


def test_clip_random_weights_code_path(clip_random: Embedder, photos) -> None:
    assert "random" in clip_random.id and clip_random.id.startswith(f"clip:{CLIP_ARCH}:")
    assert clip_random.has_text and clip_random.dim == CLIP_DIM
    img = clip_random.embed_images(photos[:2])
    txt = clip_random.embed_texts(["a photo of a cat", "a cup of coffee"])
    assert img.shape == (2, CLIP_DIM) and txt.shape == (2, CLIP_DIM)
    assert img.dtype == np.float32 and txt.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_clip_reduced_precision_close_to_fp32(clip_random: Embedder, photos, precision) -> None:
    fast = load_embedder(f"clip:{CLIP_ARCH}:none", precision=precision)
    assert fast.id.endswith(f":{precision}")
    cos = np.sum(fast.embed_images(photos) * clip_random.embed_images(photos), axis=1)
    assert cos.min() >= 0.99, cos
    texts = ["a photo of a cat", "a cup of coffee"]
    cos = np.sum(fast.embed_texts(texts) * clip_random.embed_texts(texts), axis=1)
    assert cos.min() >= 0.99, cos


def test_clip_precision_auto_follows_cpu() -> None:
    import torch

    auto = load_embedder(f"clip:{CLIP_ARCH}:none")
    assert auto.id.endswith(f":{auto_precision()}")
    engines = set(torch.backends.quantized.supported_engines)
    fallback = "int8" if {"x86", "fbgemm"} & engines else "fp32"
    assert auto_precision() == ("bf16" if "amx_bf16" in cpu_flags() else fallback)


def test_clip_int8_quantizes_the_attention_projections() -> None:
    fast = load_embedder(f"clip:{CLIP_ARCH}:none", precision="int8")
    blocks = fast.model.visual.transformer.resblocks
    kinds = {type(m).__module__ for blk in blocks for m in (blk.attn.in_proj, blk.mlp.c_fc)}
    assert kinds and all("quantized" in k for k in kinds), kinds


def test_clip_local_checkpoint(clip_random: Embedder, photos, tmp_path: Path) -> None:
    """A checkpoint file is loaded from its path; the id names the file."""
    import torch

    ckpt = tmp_path / "vits32-test.pt"
    torch.save(clip_random.model.state_dict(), ckpt)
    local = load_embedder(f"clip:{CLIP_ARCH}:{ckpt}", precision="fp32")
    assert "vits32-test.pt" in local.id and local.id.endswith(":fp32")
    a = clip_random.embed_images(photos[:1])
    b = local.embed_images(photos[:1])
    assert float(a[0] @ b[0]) > 0.9999


def test_clip_missing_checkpoint_is_clear(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "model.pt"
    t0 = time.monotonic()
    with pytest.raises(EmbedderUnavailable) as err:
        load_embedder(f"clip:ViT-B-32:{missing}")
    msg = str(err.value)
    assert str(missing) in msg and "effnet-lite0" in msg and "internet" in msg
    assert time.monotonic() - t0 < 10


def test_clip_hub_tag_offline_fails_fast_and_clear() -> None:
    from pipeline.embedders.clip import hub_reachable

    if hub_reachable(timeout_s=2.0):
        pytest.skip("the hub is reachable here; this checks the offline error")
    t0 = time.monotonic()
    with pytest.raises(EmbedderUnavailable) as err:
        load_embedder("clip:ViT-B-32:laion2b_s34b_b79k")
    elapsed = time.monotonic() - t0
    msg = str(err.value)
    assert isinstance(err.value, RuntimeError)
    assert "internet" in msg and "/path/to/checkpoint" in msg and '"effnet-lite0"' in msg
    assert elapsed < 20, f"took {elapsed:.1f} s to fail"


def test_bad_specs() -> None:
    with pytest.raises(EmbedderUnavailable, match="effnet-lite0"):
        load_embedder("resnet50")
    with pytest.raises(EmbedderUnavailable, match="unknown tag"):
        load_embedder("clip:ViT-B-32:no_such_tag")
    with pytest.raises(EmbedderUnavailable, match="architecture"):
        load_embedder("clip:NoSuchArch:none")
    with pytest.raises(ValueError, match="precision"):
        load_embedder("effnet-lite0", precision="fp8")
