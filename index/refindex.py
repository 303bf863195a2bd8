"""The reference index: what every indexed signal built from the registry, saved under
``<data_dir>/indexes/`` and reused while nothing changed.

Files, per embedder (``<slug>`` is a file-safe form of the embedder id):

* ``<slug>-<fingerprint>.npz``: every signal's FAISS index (serialised) and arrays;
* ``<slug>.json``: the sidecar, written last: embedder id, reference-set fingerprint, the
  SHA-256 of the ``.npz``, and per signal the metadata of each FAISS id (reference id,
  character id, variant); FAISS stores only integers;
* ``bank-<slug>.npz``: the background-bank embeddings (see :func:`background_bank`);
* ``pictures-<slug>.npz``: the embeddings of the reference pictures the latest build used
  (see :class:`PictureCache`), so a rebuild embeds only pictures it has not seen.

Every file is written to a temporary name, fsynced, then renamed over the old one
(:mod:`storage.files`), so a crash leaves either the old or the new index, never a torn one; a
sidecar whose data file is missing or does not match its checksum makes the index rebuild.
An index is only used with the embedder whose id it carries: another embedder gets its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import random
import re
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageOps
from sqlalchemy import select

from charwatch.config import Config
from index.signals import (
    CharacterRef,
    IndexInputs,
    ReferenceImage,
    ReferenceSet,
    Signal,
    VectorIndex,
    make_signals,
)
from pipeline.media import objects_for
from pipeline.regions import VERSION as REGIONS_VERSION
from storage.blobs import data_file
from storage.db import Store
from storage.files import atomic_write_bytes
from storage.models import Character, CharacterThreshold, Reference

log = logging.getLogger(__name__)

INDEX_VERSION = 4  # bump when what goes into an index changes
BANK_VERSION = 3
BANK_SIZE = 128
BANK_SEED = 20240611
STALE_TMP_S = 3600
PICTURES_VERSION = 1  # bump when the picture cache's file or key changes
PICTURE_KEY_BYTES = 16
# what reading a damaged or truncated .npz raises
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


@dataclass
class ReferenceIndex:
    """The registry snapshot plus each indexed signal's :class:`VectorIndex`."""

    embedder_id: str
    fingerprint: str
    refs: ReferenceSet
    parts: dict[str, VectorIndex]
    built: bool = False  # True when built by this call, False when loaded from disk
    path: Path | None = None
    skipped: list[int] = field(default_factory=list)  # reference ids whose file was unusable

    def part(self, name: str) -> VectorIndex | None:
        return self.parts.get(name)


# ---------------------------------------------------------------------------------------------
# the registry snapshot


def load_reference_set(store: Store, model_id: str | None = None) -> ReferenceSet:
    """Characters (with their match policy) and reference rows as they are in the store now.

    With ``model_id``, each character also carries its calibrated thresholds for that
    embedder (:class:`storage.models.CharacterThreshold` rows); they are not part of the
    index fingerprint, since they change no index.
    """
    with store.session() as s:
        calibrated: dict[int, list[tuple[str, float]]] = {}
        if model_id is not None:
            for t in s.scalars(
                select(CharacterThreshold)
                .where(CharacterThreshold.model_id == model_id)
                .order_by(CharacterThreshold.id)
            ):
                if t.threshold is not None and math.isfinite(float(t.threshold)):
                    calibrated.setdefault(t.character_id, []).append((t.signal, float(t.threshold)))
        chars = {
            c.id: CharacterRef(
                id=c.id,
                name=c.name,
                aliases=tuple(c.aliases or ()),
                prompts=tuple(c.prompts or ()),
                min_frames=c.min_frames,
                min_seconds=c.min_seconds,
                thresholds=tuple(calibrated.get(c.id, ())),
            )
            for c in s.scalars(select(Character).order_by(Character.id))
        }
        images = [
            ReferenceImage.from_row(r) for r in s.scalars(select(Reference).order_by(Reference.id))
        ]
    return ReferenceSet(characters=chars, images=images)


def fingerprint(
    cfg: Config, refs: ReferenceSet, signal_names: Sequence[str], bank_size: int = BANK_SIZE
) -> str:
    """A hash of everything an index depends on: references (content, polarity, file
    present), prompts, the signals indexed and the index recipe version."""
    objects_for(cfg)  # reference files are fetched from a remote object store
    doc = {
        "version": INDEX_VERSION,
        "bank": [BANK_VERSION, bank_size, BANK_SEED, REGIONS_VERSION],
        "signals": sorted(signal_names),
        "prompts": sorted((c.id, sorted(c.prompts)) for c in refs.characters.values()),
        "images": [
            (
                r.reference_id,
                r.character_id,
                r.sha256,
                r.negative,
                data_file(cfg.data_dir, r.path).is_file(),
            )
            for r in refs.images
        ],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def load_reference_image(cfg: Config, ref: ReferenceImage) -> Image.Image | None:
    """The reference picture as RGB (transparency flattened onto white); None if unusable."""
    objects_for(cfg)  # fetched from a remote object store
    path = data_file(cfg.data_dir, ref.path)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                flat.alpha_composite(rgba)
                return flat.convert("RGB")
            return im.convert("RGB")
    except (OSError, ValueError) as exc:
        log.warning("reference %s (%s) is unusable and is skipped: %s", ref.reference_id, path, exc)
        return None


# ---------------------------------------------------------------------------------------------
# the background bank


def _rand_color(rng: random.Random, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return (rng.randrange(lo, hi), rng.randrange(lo, hi), rng.randrange(lo, hi))


def _bank_background(rng: random.Random, w: int, h: int) -> Image.Image:
    """A cluttered backdrop: gradient, shapes, stripes, noise or a room-like scene."""
    kind = rng.randrange(5)
    img = Image.new("RGB", (w, h), _rand_color(rng))
    d = ImageDraw.Draw(img)
    if kind == 0:
        mask = Image.linear_gradient("L").resize((w, h))
        img = Image.composite(
            Image.new("RGB", (w, h), _rand_color(rng)),
            Image.new("RGB", (w, h), _rand_color(rng)),
            mask,
        )
    elif kind == 1:
        for _ in range(rng.randrange(6, 20)):
            x, y, r = rng.randrange(w), rng.randrange(h), rng.randrange(8, max(9, w // 4))
            box = (x - r, y - r, x + r, y + r)
            (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=_rand_color(rng))
    elif kind == 2:
        step, color = rng.randrange(8, 40), _rand_color(rng)
        for x in range(-h, w, step * 2):
            d.polygon([(x, 0), (x + step, 0), (x + step + h, h), (x + h, h)], fill=color)
    elif kind == 3:
        gen = np.random.default_rng(rng.randrange(1 << 30))
        noise = gen.normal(128, rng.randrange(10, 60), (h // 4 + 1, w // 4 + 1, 3))
        img = Image.fromarray(noise.clip(0, 255).astype(np.uint8)).resize((w, h))
    else:
        floor_y = int(h * rng.uniform(0.55, 0.8))
        d.rectangle((0, floor_y, w, h), fill=_rand_color(rng, 60, 200))
        for _ in range(3):
            x0, y0 = rng.randrange(w), rng.randrange(floor_y)
            box = (x0, y0, x0 + rng.randrange(20, w // 2), y0 + rng.randrange(20, h // 3))
            d.rectangle(box, fill=_rand_color(rng))
    if rng.random() < 0.3:  # a caption bar, as on short-form videos
        y = rng.randrange(h - h // 8)
        d.rectangle((w // 20, y, w - w // 20, y + h // 10), fill=(20, 20, 20))
    return img


def _bank_figure(rng: random.Random, size: int) -> Image.Image:
    """A generic cartoon figure (blob body, eyes, optional ears and arms), RGBA."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    s = size
    body = _rand_color(rng)
    outline = tuple(c // 3 for c in body)
    cx, cy = s * 0.5, s * rng.uniform(0.5, 0.6)
    rx, ry = s * rng.uniform(0.2, 0.32), s * rng.uniform(0.2, 0.32)
    for side in (-1, 1):
        if rng.random() < 0.6:
            ex = cx + side * rx * 0.7
            tip = (ex + side * s * 0.05, cy - ry - s * 0.15)
            ear = [(ex - s * 0.06, cy - ry * 0.8), (ex + s * 0.06, cy - ry * 0.8), tip]
            d.polygon(ear, fill=_rand_color(rng), outline=outline)
        if rng.random() < 0.6:
            hand = (cx + side * (rx + s * 0.12), cy + rng.uniform(-0.15, 0.15) * s)
            d.line((cx + side * rx, cy, *hand), fill=body, width=max(2, s // 20))
    box = (cx - rx, cy - ry, cx + rx, cy + ry)
    shape = rng.randrange(3)
    if shape == 0:
        d.ellipse(box, fill=body, outline=outline, width=max(1, s // 80))
    elif shape == 1:
        d.rounded_rectangle(box, radius=s * 0.06, fill=body, outline=outline, width=max(1, s // 80))
    else:
        d.polygon([(cx, cy - ry), (cx + rx, cy + ry), (cx - rx, cy + ry)], fill=body)
    if rng.random() < 0.5:
        d.ellipse((cx - rx * 0.5, cy, cx + rx * 0.5, cy + ry * 0.8), fill=_rand_color(rng, 150))
    ey, er = cy - ry * rng.uniform(0, 0.35), s * rng.uniform(0.03, 0.07)
    for side in (-1, 1):
        ex = cx + side * rx * rng.uniform(0.3, 0.5)
        d.ellipse((ex - er, ey - er * 1.2, ex + er, ey + er * 1.2), fill="white", outline="black")
        d.ellipse((ex - er * 0.5, ey - er * 0.5, ex + er * 0.5, ey + er * 0.7), fill=(20, 20, 20))
    mouth = (cx - rx * 0.3, ey + er, cx + rx * 0.3, ey + er + ry * 0.4)
    d.arc(mouth, 20, 160, fill=(60, 20, 20), width=max(1, s // 60))
    return img


def bank_images(n: int = BANK_SIZE, seed: int = BANK_SEED) -> list[Image.Image]:
    """The generic pictures of the background bank: half cluttered backdrops (square crops
    and 9:16 frames), half generic figures on backdrops. Deterministic for a seed."""
    rng = random.Random(seed)
    out: list[Image.Image] = []
    for i in range(n):
        portrait = i % 4 == 3
        w, h = (180, 320) if portrait else (224, 224)
        bg = _bank_background(rng, w, h)
        if i % 2 == 1:
            side = int(min(w, h) * rng.uniform(0.5, 0.95))
            fig = _bank_figure(rng, 256).resize((side, side))
            bg = bg.convert("RGBA")
            bg.alpha_composite(fig, (rng.randrange(w - side + 1), rng.randrange(h - side + 1)))
            bg = bg.convert("RGB")
        out.append(bg)
    return out


def backdrops(images: Sequence[Image.Image]) -> list[Image.Image]:
    """The bank pictures without a figure (every other one): backdrops for reference
    subjects (see :class:`index.signals.EmbeddingSignal`)."""
    return list(images[0::2])


def background_bank(
    cfg: Config, embedder: Any, n: int = BANK_SIZE, images: Sequence[Image.Image] | None = None
) -> np.ndarray:
    """The region vectors (:meth:`Embedder.embed_frames`, every region of every picture) of
    :func:`bank_images` for this embedder, cached under ``indexes/``."""
    path = index_dir(cfg) / f"bank-{embedder_slug(embedder.id)}.npz"
    tag = f"{embedder.id}|{BANK_VERSION}|{n}|{BANK_SEED}|regions-{REGIONS_VERSION}"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["tag"][0]) == tag:
                    return np.asarray(z["vectors"], dtype=np.float32)
        except UNREADABLE as exc:
            log.warning("background bank %s unreadable, recomputing: %s", path, exc)
    pictures = images if images is not None else bank_images(n)
    per_frame = embedder.embed_frames(pictures)
    vectors = np.concatenate([np.asarray(f.vectors, np.float32) for f in per_frame])
    buf = _npz_bytes(vectors=vectors, tag=np.array([tag]))
    atomic_write_bytes(path, buf)
    return vectors


# ---------------------------------------------------------------------------------------------
# the picture cache


def picture_key(img: Image.Image) -> bytes:
    """A hash of a picture's mode, size and pixels: the key of :class:`PictureCache`."""
    h = hashlib.blake2b(digest_size=PICTURE_KEY_BYTES)
    h.update(f"{img.mode}:{img.width}x{img.height}:".encode())
    h.update(img.tobytes())
    return h.digest()


class PictureCache:
    """The embeddings of the pictures earlier index builds embedded with one embedder, keyed
    by :func:`picture_key`.

    A reference's augmented pictures (:mod:`index.fewshot`) are the same in every build, so a
    rebuild after a registry change looks them up here and embeds only the pictures it has not
    seen: a new reference's, and the same-style strangers, which are drawn anew whenever the
    positive references change. It stands in for the embedder in
    :class:`~index.signals.IndexInputs`: :meth:`embed_images` looks pictures up, the rest
    (``id``, ``dim``, ``has_text``, :meth:`embed_texts`) is the embedder's.

    The file (``pictures-<slug>.npz`` beside the index, written atomically by :meth:`save`)
    keeps only the entries the latest build used, so it does not grow with every change; one
    written for another embedder id or cache version, or damaged, counts as empty. Vectors are
    kept as the embedder returned them (float32), so a cached build equals an uncached one
    wherever a picture's vector does not depend on the other pictures of its batch (effnet-lite0;
    CLIP under int8 dynamic quantization scales each batch's activations, so a vector there
    differs slightly with its batch, cached or not).
    """

    def __init__(self, embedder: Any, path: Path | None = None) -> None:
        self.embedder = embedder
        self.path = path
        self.tag = f"{embedder.id}|pictures-{PICTURES_VERSION}"
        self.vectors: dict[bytes, np.ndarray] = {}
        self.used: set[bytes] = set()
        self.loaded = 0  # entries read from the file
        self.embedded = 0  # pictures embedded because they were not found

    @classmethod
    def load(cls, cfg: Config, embedder: Any) -> PictureCache:
        """The cache saved in this config's index folder for this embedder (empty when there
        is none or it is unusable)."""
        path = index_dir(cfg) / f"pictures-{embedder_slug(embedder.id)}.npz"
        cache = cls(embedder, path)
        if path.is_file():
            cache._read(path)
        return cache

    def _read(self, path: Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as z:
                tag, keys, vectors = str(z["tag"][0]), z["keys"], z["vectors"]
            if tag != self.tag:
                return
            n = len(keys)
            if keys.dtype != np.uint8 or keys.shape != (n, PICTURE_KEY_BYTES):
                raise ValueError(f"keys of shape {keys.shape} and type {keys.dtype}")
            if vectors.dtype != np.float32 or vectors.shape != (n, self.embedder.dim):
                raise ValueError(f"vectors of shape {vectors.shape} and type {vectors.dtype}")
        except UNREADABLE as exc:
            log.warning("picture cache %s unusable, ignored: %s", path, exc)
            return
        self.vectors = {k.tobytes(): v for k, v in zip(keys, vectors, strict=True)}
        self.loaded = n

    @property
    def id(self) -> str:
        return self.embedder.id

    @property
    def dim(self) -> int:
        return self.embedder.dim

    @property
    def has_text(self) -> bool:
        return self.embedder.has_text

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.embedder.embed_texts(texts)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """``(n, dim)`` float32: cached rows for the pictures seen before, the embedder's for
        the others (embedded in one call, each distinct picture once)."""
        keys = [picture_key(im) for im in images]
        missing: dict[bytes, Image.Image] = {}
        for key, im in zip(keys, images, strict=True):
            if key not in self.vectors:
                missing.setdefault(key, im)
        if missing:
            new = np.asarray(self.embedder.embed_images(list(missing.values())), np.float32)
            self.vectors.update(zip(missing, new, strict=True))
            self.embedded += len(missing)
        self.used.update(keys)
        out = np.zeros((len(keys), self.dim), np.float32)
        for i, key in enumerate(keys):
            out[i] = self.vectors[key]
        return out

    def save(self) -> None:
        """Write the entries this build used (nothing when it used exactly the loaded ones)."""
        if self.path is None or (not self.embedded and len(self.used) == self.loaded):
            return
        keys = list(self.used)
        vectors = [self.vectors[k] for k in keys]
        data = _npz_bytes(
            tag=np.array([self.tag]),
            keys=np.frombuffer(b"".join(keys), np.uint8).reshape(len(keys), PICTURE_KEY_BYTES),
            vectors=np.stack(vectors) if vectors else np.zeros((0, self.dim), np.float32),
        )
        atomic_write_bytes(self.path, data)


# ---------------------------------------------------------------------------------------------
# files


def index_dir(cfg: Config) -> Path:
    return cfg.data_dir / "indexes"


def embedder_slug(embedder_id: str) -> str:
    """A file-name-safe, collision-free form of an embedder id."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", embedder_id).strip("._")[:60] or "embedder"
    return f"{clean}-{hashlib.sha1(embedder_id.encode()).hexdigest()[:8]}"


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save_index(cfg: Config, ri: ReferenceIndex) -> Path:
    """Write the data file, then the sidecar; remove older data files of this embedder."""
    folder = index_dir(cfg)
    slug = embedder_slug(ri.embedder_id)
    data_name = f"{slug}-{ri.fingerprint[:16]}.npz"
    blobs = {name: np.frombuffer(vi.to_bytes(), dtype=np.uint8) for name, vi in ri.parts.items()}
    data = _npz_bytes(**blobs)
    atomic_write_bytes(folder / data_name, data)
    sidecar = {
        "format": "charwatch-reference-index",
        "version": INDEX_VERSION,
        "embedder_id": ri.embedder_id,
        "fingerprint": ri.fingerprint,
        "data_file": data_name,
        "data_sha256": hashlib.sha256(data).hexdigest(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "skipped_references": ri.skipped,
        "parts": {
            name: {"ntotal": vi.ntotal, "binary": vi.binary, "meta": vi.meta}
            for name, vi in ri.parts.items()
        },
    }
    side_path = folder / f"{slug}.json"
    atomic_write_bytes(side_path, json.dumps(sidecar, ensure_ascii=False).encode())
    cleanup_superseded(folder, slug, keep=data_name)
    ri.path = side_path
    return side_path


def cleanup_superseded(folder: Path, slug: str, keep: str, suffix: str = ".npz") -> None:
    """Remove this embedder's superseded ``suffix`` data files (all but ``keep``) and temporary
    files left by crashes."""
    now = time.time()
    for p in folder.iterdir():
        old_data = p.name.startswith(f"{slug}-") and p.suffix == suffix and p.name != keep
        crash_tmp = p.name.startswith(".") and p.name.endswith(".tmp")
        with contextlib.suppress(OSError):
            if old_data or (crash_tmp and now - p.stat().st_mtime > STALE_TMP_S):
                p.unlink()


def load_index(
    cfg: Config, embedder_id: str, expected_fingerprint: str | None = None
) -> tuple[dict[str, VectorIndex], dict[str, Any]] | None:
    """The saved parts and sidecar for this embedder, or None when absent, stale
    (``expected_fingerprint`` differs), for another embedder, or damaged."""
    folder = index_dir(cfg)
    side_path = folder / f"{embedder_slug(embedder_id)}.json"
    if not side_path.is_file():
        return None
    try:
        side = json.loads(side_path.read_text(encoding="utf-8"))
        if side.get("format") != "charwatch-reference-index" or side.get("version") != (
            INDEX_VERSION
        ):
            return None
        if side.get("embedder_id") != embedder_id:
            log.warning("index %s belongs to embedder %s", side_path, side.get("embedder_id"))
            return None
        if expected_fingerprint is not None and side.get("fingerprint") != expected_fingerprint:
            return None
        data = (folder / side["data_file"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != side["data_sha256"]:
            log.warning("index data %s does not match its checksum; rebuilding", side["data_file"])
            return None
        parts: dict[str, VectorIndex] = {}
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            for name, info in side["parts"].items():
                vi = VectorIndex.from_bytes(z[name].tobytes(), info["meta"])
                if vi.ntotal != info["ntotal"]:
                    raise ValueError(f"part {name}: {vi.ntotal} vectors, not {info['ntotal']}")
                parts[name] = vi
        return parts, side
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        log.warning("reference index %s unusable (%s); rebuilding", side_path, exc)
        return None


# ---------------------------------------------------------------------------------------------
# build or reuse


def build_index(
    cfg: Config,
    embedder: Any,
    refs: ReferenceSet,
    signals: Sequence[Signal],
    fp: str,
    bank_size: int = BANK_SIZE,
    pictures: PictureCache | None = None,
) -> ReferenceIndex:
    """Compute every indexed signal's index from the references (no saving).

    With ``pictures`` (a :class:`PictureCache` of this embedder), pictures embedded by earlier
    builds are taken from it and the new ones added to it; saving it is the caller's.
    """
    if pictures is not None and pictures.id != embedder.id:
        raise ValueError(f"picture cache of {pictures.id} used with {embedder.id}")
    skipped: list[int] = []
    cache: dict[int, Image.Image | None] = {}

    def load(ref: ReferenceImage) -> Image.Image | None:
        if ref.reference_id not in cache:
            img = load_reference_image(cfg, ref)
            cache[ref.reference_id] = img
            if img is None:
                skipped.append(ref.reference_id)
        return cache[ref.reference_id]

    generic = bank_images(bank_size)
    bank = background_bank(cfg, embedder, bank_size, generic) if embedder is not None else None
    inputs = IndexInputs(
        embedder=embedder if pictures is None else pictures,
        load_image=load,
        bank=bank,
        backdrops=backdrops(generic),
    )
    parts: dict[str, VectorIndex] = {}
    for sig in signals:
        if not sig.indexed:
            continue
        vi = sig.index_references(refs, inputs)
        if vi is not None:
            parts[sig.name] = vi
    return ReferenceIndex(
        embedder_id=embedder.id,
        fingerprint=fp,
        refs=refs,
        parts=parts,
        built=True,
        skipped=sorted(set(skipped)),
    )


def load_or_build(
    cfg: Config,
    store: Store,
    embedder: Any,
    signals: Sequence[Signal] | None = None,
    *,
    save: bool = True,
    bank_size: int = BANK_SIZE,
) -> ReferenceIndex:
    """The reference index for the registry as it is now: loaded when the saved one matches
    (same embedder id, same fingerprint, intact files), else built (with the
    :class:`PictureCache` of earlier builds) and saved, the picture cache after it."""
    signals = list(signals) if signals is not None else make_signals(cfg.detect, embedder)
    refs = load_reference_set(store, embedder.id)
    names = [s.name for s in signals if s.indexed]
    fp = fingerprint(cfg, refs, names, bank_size)
    loaded = load_index(cfg, embedder.id, fp)
    if loaded is not None:
        parts, side = loaded
        return ReferenceIndex(
            embedder_id=embedder.id,
            fingerprint=fp,
            refs=refs,
            parts=parts,
            built=False,
            path=index_dir(cfg) / f"{embedder_slug(embedder.id)}.json",
            skipped=list(side.get("skipped_references", [])),
        )
    pictures = PictureCache.load(cfg, embedder)
    ri = build_index(cfg, embedder, refs, signals, fp, bank_size, pictures)
    log.info(
        "reference index for %s built: %d picture(s) embedded, %d from the picture cache",
        embedder.id,
        pictures.embedded,
        len(pictures.used) - pictures.embedded,
    )
    if save:
        save_index(cfg, ri)
        pictures.save()
    return ri
