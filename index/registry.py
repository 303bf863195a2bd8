"""The character registry: characters, their aliases and prompts, and their reference images.

Reference images are validated with PIL and copied under
``<data_dir>/references/<slug>/<sha256>.<ext>`` (deduplicated by content hash per character).
``Reference.path`` holds that path relative to ``data_dir`` (POSIX separators); resolve it with
:func:`storage.blobs.data_file` once :func:`pipeline.media.objects_for` has activated the
config's object store.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, selectinload

from charwatch.config import Config
from charwatch.errors import UsageError
from pipeline.media import objects_for
from storage.blobs import data_file
from storage.db import Store
from storage.files import atomic_copy
from storage.models import Character, Detection, Reference

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
CHARACTER_TOML = "character.toml"
NEGATIVE_DIR = "negative"
_TOML_KEYS = {"name", "franchise", "aliases", "prompts", "rights_holder"}
_FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}


class RegistryError(UsageError):
    """A bad registry request: duplicate or unknown name, unreadable image, bad character.toml."""


def normalize_text(text: str) -> str:
    """NFKC + casefold + collapsed whitespace: the form names and aliases are compared in."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def slugify(name: str) -> str:
    """A filesystem-safe folder name; non-ASCII names get a short hash so they stay distinct."""
    ascii_part = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_part.lower()).strip("-")[:60] or "character"
    if not name.isascii():
        digest = hashlib.sha1(normalize_text(name).encode()).hexdigest()[:8]
        slug = f"{slug}-{digest}"
    return slug


def _dedupe(items: Iterable[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        text = " ".join(str(item).split())
        key = normalize_text(text)
        if text and key not in seen:
            seen.add(key)
            out.append(text)
    return out


class _CheckedImage:
    """An image file that opened and decoded, with its content hash and canonical suffix."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise RegistryError(f"reference image not found: {path}")
        data = path.read_bytes()
        try:
            with Image.open(path) as img:
                img.verify()
            with Image.open(path) as img:
                img.load()
                fmt = img.format or ""
                if img.width < 8 or img.height < 8:
                    raise RegistryError(
                        f"reference image too small ({img.width}x{img.height}): {path}"
                    )
        except RegistryError:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise RegistryError(f"not a readable image: {path} ({exc})") from exc
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.ext = _FORMAT_EXT.get(fmt.upper(), fmt.lower() or path.suffix.lstrip(".").lower())


def _check_images(images: Iterable[str | os.PathLike[str]]) -> list[_CheckedImage]:
    return [_CheckedImage(Path(p)) for p in images]


def _copy_into(cfg: Config, slug: str, img: _CheckedImage) -> str:
    """Copy atomically to references/<slug>/<sha>.<ext>; returns the data_dir-relative path."""
    rel = Path("references") / slug / f"{img.sha256}.{img.ext}"
    dest = cfg.data_dir / rel
    if not dest.is_file():
        atomic_copy(img.path, dest)
    if (objects := objects_for(cfg)) is not None:
        objects.put_file(dest, rel.as_posix())  # every machine's index reads it
    return rel.as_posix()


def _find(s: Session, name: str) -> Character | None:
    """Exact name first, then the NFKC-casefolded name."""
    found = s.scalar(select(Character).where(Character.name == name))
    if found is not None:
        return found
    key = normalize_text(name)
    for cand in s.scalars(select(Character)):
        if normalize_text(cand.name) == key:
            return cand
    return None


def _attach(
    cfg: Config,
    s: Session,
    char: Character,
    images: list[_CheckedImage],
    negative: bool,
    label: str | None = None,
) -> int:
    """Add checked images as references of ``char``; returns how many were new. Each is
    labelled ``label``, else with its file name (``front.png``: ``front``)."""
    existing = {
        r.sha256: r for r in s.scalars(select(Reference).where(Reference.character_id == char.id))
    }
    added = 0
    for img in images:
        prior = existing.get(img.sha256)
        if prior is not None:
            if prior.negative != negative:
                kind = "negative" if prior.negative else "positive"
                raise RegistryError(
                    f"{img.path} is already a {kind} reference of {char.name!r}; "
                    "an image cannot be both positive and negative"
                )
            continue
        ref = Reference(
            character_id=char.id,
            path=_copy_into(cfg, slugify(char.name), img),
            sha256=img.sha256,
            negative=negative,
            label=" ".join((label or img.path.stem).split())[:256] or None,
        )
        s.add(ref)
        existing[img.sha256] = ref
        added += 1
    s.flush()
    return added


def _load(store: Store, character_id: int) -> Character:
    with store.session() as s:
        char = s.scalar(
            select(Character)
            .where(Character.id == character_id)
            .options(selectinload(Character.references))
        )
        assert char is not None
        return char


def add_character(
    cfg: Config,
    store: Store,
    name: str,
    *,
    franchise: str | None = None,
    aliases: Sequence[str] = (),
    images: Sequence[str | os.PathLike[str]] = (),
    prompts: Sequence[str] = (),
    rights_holder: str | None = None,
    negative_images: Sequence[str | os.PathLike[str]] = (),
) -> Character:
    """Register a character with its reference images.

    A name that already exists (compared NFKC-casefolded) is an error unless images are
    given: then the images are added, and aliases/prompts merged into the existing character.
    Every image is checked before anything is written.
    """
    name = " ".join(str(name).split())
    if not name:
        raise RegistryError("character name must not be empty")
    pos = _check_images(images)
    neg = _check_images(negative_images)
    with store.session() as s:
        char = _find(s, name)
        if char is not None:
            if not pos and not neg:
                raise RegistryError(
                    f"character {char.name!r} already exists (use add_images to add references)"
                )
            char.aliases = _dedupe([*char.aliases, *aliases])
            char.prompts = _dedupe([*char.prompts, *prompts])
            char.franchise = franchise or char.franchise
            char.rights_holder = rights_holder or char.rights_holder
        else:
            char = Character(
                name=name,
                franchise=franchise or None,
                rights_holder=rights_holder or None,
                aliases=_dedupe(aliases),
                prompts=_dedupe(prompts),
            )
            s.add(char)
            s.flush()
        _attach(cfg, s, char, pos, negative=False)
        _attach(cfg, s, char, neg, negative=True)
        char_id = char.id
    return _load(store, char_id)


def add_images(
    cfg: Config,
    store: Store,
    name: str,
    images: Sequence[str | os.PathLike[str]],
    negative: bool = False,
    *,
    label: str | None = None,
) -> Character:
    """Add reference images (or negative ones) to a registered character; returns it.

    Images already registered (same content) are skipped. ``label`` names the new references
    (default: each file's name).
    """
    checked = _check_images(images)
    with store.session() as s:
        char = _find(s, name)
        if char is None:
            raise RegistryError(f"no character named {name!r}")
        _attach(cfg, s, char, checked, negative=negative, label=label)
        char_id = char.id
    return _load(store, char_id)


def get_character(store: Store, name: str) -> Character | None:
    """The character of that name (exact, else NFKC-casefolded), references loaded; or None."""
    with store.session() as s:
        char = _find(s, name)
        if char is None:
            return None
        char_id = char.id
    return _load(store, char_id)


def list_characters(store: Store) -> list[dict[str, Any]]:
    """All characters as plain dicts, sorted by name, with reference counts."""
    with store.session() as s:
        counts: dict[tuple[int, bool], int] = {
            (cid, bool(neg)): n
            for cid, neg, n in s.execute(
                select(Reference.character_id, Reference.negative, func.count()).group_by(
                    Reference.character_id, Reference.negative
                )
            )
        }
        return [
            {
                "id": c.id,
                "name": c.name,
                "franchise": c.franchise,
                "rights_holder": c.rights_holder,
                "aliases": list(c.aliases or []),
                "prompts": list(c.prompts or []),
                "references": counts.get((c.id, False), 0),
                "negative_references": counts.get((c.id, True), 0),
                "created_at": c.created_at,
            }
            for c in s.scalars(select(Character).order_by(Character.name))
        ]


def remove_character(cfg: Config, store: Store, name: str) -> bool:
    """Delete a character, its references, its detections and its copied images."""
    with store.session() as s:
        char = _find(s, name)
        if char is None:
            return False
        paths = [
            r.path for r in s.scalars(select(Reference).where(Reference.character_id == char.id))
        ]
        s.execute(delete(Detection).where(Detection.character_id == char.id))
        s.delete(char)
        s.flush()
        still_used = set(s.scalars(select(Reference.path).where(Reference.path.in_(paths))))
    objects = objects_for(cfg)
    for rel in paths:
        if rel in still_used:
            continue
        f = data_file(cfg.data_dir, rel, fetch=False)
        f.unlink(missing_ok=True)
        if objects is not None and not Path(rel).is_absolute():
            objects.delete(rel)
        with contextlib.suppress(OSError):
            f.parent.rmdir()
    return True


def _read_character_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - _TOML_KEYS)
    if unknown:
        raise RegistryError(f"{path}: unknown key {unknown[0]!r} (known: {sorted(_TOML_KEYS)})")
    for key in ("aliases", "prompts"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RegistryError(f"{path}: {key} must be a list of strings")
    for key in ("name", "franchise", "rights_holder"):
        if key in data and not isinstance(data[key], str):
            raise RegistryError(f"{path}: {key} must be a string")
    return data


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def import_tree(cfg: Config, store: Store, root: str | os.PathLike[str]) -> list[Character]:
    """Import ``root/<franchise>/<character>/*.png`` (plus ``negative/*.png``).

    An optional ``character.toml`` beside the images may set ``name``, ``franchise``,
    ``aliases``, ``prompts`` and ``rights_holder``. Re-importing the same tree adds nothing.
    """
    root = Path(root)
    if not root.is_dir():
        raise RegistryError(f"reference tree not found: {root}")
    out: list[Character] = []
    for franchise_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if franchise_dir.name.startswith("."):
            continue
        for char_dir in sorted(p for p in franchise_dir.iterdir() if p.is_dir()):
            if char_dir.name.startswith("."):
                continue
            meta_path = char_dir / CHARACTER_TOML
            meta = _read_character_toml(meta_path) if meta_path.is_file() else {}
            pos = _images_in(char_dir)
            neg = _images_in(char_dir / NEGATIVE_DIR)
            if not pos and not neg and not meta.get("prompts"):
                continue
            name = meta.get("name") or char_dir.name
            franchise = meta.get("franchise") or franchise_dir.name
            if get_character(store, name) is None:
                char = add_character(
                    cfg,
                    store,
                    name,
                    franchise=franchise,
                    aliases=meta.get("aliases", []),
                    prompts=meta.get("prompts", []),
                    rights_holder=meta.get("rights_holder"),
                    images=pos,
                    negative_images=neg,
                )
            else:
                _update_meta(store, name, meta, franchise)
                add_images(cfg, store, name, pos)
                char = add_images(cfg, store, name, neg, negative=True)
            out.append(char)
    return out


def _update_meta(store: Store, name: str, meta: dict[str, Any], franchise: str) -> None:
    with store.session() as s:
        char = _find(s, name)
        assert char is not None
        char.aliases = _dedupe([*char.aliases, *meta.get("aliases", [])])
        char.prompts = _dedupe([*char.prompts, *meta.get("prompts", [])])
        char.franchise = franchise or char.franchise
        char.rights_holder = meta.get("rights_holder") or char.rights_holder
