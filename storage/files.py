"""Atomic file writes: a file is either its old self or complete, never half-written.

The rule, in one place: write to a temporary name in the destination's folder
(``.<name>.<token>.tmp``), flush and fsync it, rename it over the destination, then fsync
the folder so the rename itself survives a crash. Readers never see a partial file; a crash
leaves at most a dot-named ``.tmp`` file, which the index folders' clean-ups remove.

* :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`atomic_copy` for whole files;
* :func:`atomic_writer` for a file object written bit by bit;
* :func:`atomic_path` for tools that write by path (ffmpeg, FAISS, pandas, PIL).

``fsync=False`` keeps the temporary-name-and-rename (no reader sees a partial file) without
forcing the bytes to disk, for many small files whose loss in a power cut costs nothing but a
re-run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TMP_SUFFIX = ".tmp"


def temp_name(path: Path, suffix: str = TMP_SUFFIX) -> Path:
    """A fresh dot-named temporary path beside ``path``."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def fsync_file(path: Path) -> None:
    """Force a written file's bytes to disk."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Force a folder's entries (a rename into it) to disk; a no-op where folders cannot be
    opened (Windows) or fsynced."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, suffix: str = TMP_SUFFIX, fsync: bool = True
) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for the caller (or a tool) to write; on a clean
    exit it is fsynced and renamed over ``path``, on an error it is removed. ``suffix`` ends
    the temporary name (``.part.mp4`` lets ffmpeg infer the format)."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(dest, suffix)
    try:
        yield tmp
        if fsync:
            fsync_file(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(dest.parent)


@contextmanager
def atomic_writer(
    path: str | os.PathLike[str],
    mode: str = "wb",
    *,
    encoding: str | None = None,
    newline: str | None = None,
    fsync: bool = True,
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` (``mode`` ``"wb"`` or ``"w"``); on a clean exit it
    replaces ``path`` (see :func:`atomic_path`)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer writes whole files ('w' or 'wb'), not {mode!r}")
    with atomic_path(path, fsync=False) as tmp:
        text = {} if mode == "wb" else {"encoding": encoding or "utf-8", "newline": newline}
        with open(tmp, mode.replace("w", "x"), **text) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
    if fsync:
        fsync_dir(Path(path).parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_writer(path, "wb", fsync=fsync) as f:
        f.write(data)


def atomic_write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    encoding: str = "utf-8",
    newline: str | None = None,
    fsync: bool = True,
) -> None:
    """Replace ``path`` with ``text`` atomically (``newline`` as for :func:`open`)."""
    with atomic_writer(path, "w", encoding=encoding, newline=newline, fsync=fsync) as f:
        f.write(text)


def atomic_copy(
    src: str | os.PathLike[str], dest: str | os.PathLike[str], *, fsync: bool = True
) -> None:
    """Replace ``dest`` with a copy of ``src`` atomically (``src`` is left in place)."""
    with atomic_path(dest, fsync=fsync) as tmp:
        shutil.copyfile(src, tmp)
