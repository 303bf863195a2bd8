"""Objects every machine must reach (media, frames, thumbnails): a local folder, a shared mount
or an S3 bucket, behind one small interface (fsspec; s3fs for ``s3://``).

Keys are the relative paths the database stores (``frames/12/a3f0/0001.jpg``), so on a local
root a key is simply ``root/key``, exactly as before. On a remote root, writers put the local
file they made and readers get a cached local copy (:meth:`Blobs.local_path`), so ffmpeg,
PIL and OpenCV keep working on files. Every put is atomic (local: a temporary name renamed into
place by :mod:`storage.files`, without fsync; S3: one PUT); a key is never rewritten by a
different attempt, because the writers put the attempt into the key.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from storage.files import atomic_copy, atomic_path, atomic_write_bytes


def is_url(root: str) -> bool:
    """True for ``scheme://...`` roots other than ``file://``."""
    return "://" in root and not root.startswith("file://")


class Blobs:
    """A store of objects under ``root`` (a folder path, ``file://``, or ``s3://bucket/prefix``).

    ``cache_dir`` holds local copies of remote objects; ``options`` go to the fsspec file
    system (e.g. ``{"endpoint_url": "http://127.0.0.1:9000"}`` for an S3-compatible server).
    """

    def __init__(
        self, root: str | Path, cache_dir: Path | None = None, options: dict[str, Any] | None = None
    ) -> None:
        text = str(root)
        self.remote = is_url(text)
        self.options = dict(options or {})
        if self.remote:
            import fsspec

            protocol = text.split("://", 1)[0]
            fs_opts = dict(self.options)
            if protocol == "s3" and "endpoint_url" in fs_opts:
                fs_opts.setdefault("client_kwargs", {})["endpoint_url"] = fs_opts.pop(
                    "endpoint_url"
                )
            self.fs = fsspec.filesystem(protocol, **fs_opts)
            self.root = text.rstrip("/")
            self.cache_dir = (
                Path(cache_dir)
                if cache_dir is not None
                else Path(tempfile.gettempdir())
                / ("charwatch-objects-" + hashlib.sha1(self.root.encode()).hexdigest()[:10])
            )
        else:
            self.fs = None
            self.root = text.removeprefix("file://")
            self.cache_dir = Path(self.root)

    # -- naming ------------------------------------------------------------------------------

    def _remote(self, key: str) -> str:
        return f"{self.root}/{_clean(key)}"

    def path(self, key: str) -> Path:
        """Where ``key`` lives locally: the file itself (local root) or its cached copy."""
        return (Path(self.root) if not self.remote else self.cache_dir) / _clean(key)

    # -- writing -----------------------------------------------------------------------------

    def put_file(self, local: Path, key: str) -> None:
        """Store a local file under ``key`` (atomic; the local file is left in place)."""
        local = Path(local)
        if not self.remote:
            dest = self.path(key)
            if dest.resolve() == local.resolve():
                return
            atomic_copy(local, dest, fsync=False)
            return
        self.fs.put_file(str(local), self._remote(key))
        cached = self.path(key)
        if cached.resolve() != local.resolve():
            atomic_copy(local, cached, fsync=False)

    def put_bytes(self, data: bytes, key: str) -> None:
        """Store ``data`` under ``key`` (atomic)."""
        if not self.remote:
            atomic_write_bytes(self.path(key), data, fsync=False)
            return
        self.fs.pipe_file(self._remote(key), data)

    # -- reading -----------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        if not self.remote:
            return self.path(key).is_file()
        return bool(self.fs.exists(self._remote(key)))

    def get_bytes(self, key: str) -> bytes:
        if not self.remote:
            return self.path(key).read_bytes()
        return bytes(self.fs.cat_file(self._remote(key)))

    def local_path(self, key: str) -> Path:
        """A local file with the object's bytes (remote objects are fetched once and cached).

        Raises FileNotFoundError when the object does not exist.
        """
        path = self.path(key)
        if not self.remote or path.is_file():
            if not path.is_file():
                raise FileNotFoundError(str(path))
            return path
        with atomic_path(path, fsync=False) as tmp:
            self.fs.get_file(self._remote(key), str(tmp))
        return path

    # -- removing ----------------------------------------------------------------------------

    def delete(self, key: str) -> None:
        """Remove one object (and its cached copy); a missing one is fine."""
        self.path(key).unlink(missing_ok=True)
        if self.remote:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self._remote(key))

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under ``prefix/`` (a video's frames, a failed attempt)."""
        shutil.rmtree(self.path(prefix), ignore_errors=True)
        if self.remote:
            target = self._remote(prefix)
            if self.fs.exists(target):
                self.fs.rm(target, recursive=True)

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix/``, sorted."""
        if not self.remote:
            base = self.path(prefix)
            if not base.is_dir():
                return []
            root = Path(self.root)
            return sorted(p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file())
        target = self._remote(prefix)
        if not self.fs.exists(target):
            return []
        bare = self.root.split("://", 1)[1]
        return sorted(
            str(p).split(bare + "/", 1)[1] for p in self.fs.find(target) if not str(p).endswith("/")
        )


def _clean(key: str) -> str:
    parts = [p for p in str(key).replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ValueError(f"object key leaves its root: {key!r}")
    return "/".join(parts)


_ACTIVE: Blobs | None = None


def activate(root: str, cache_dir: Path, options: dict[str, Any] | None = None) -> Blobs | None:
    """Make a remote object store this process's (readers then fetch missing files from it).

    A local ``root`` needs nothing: keys are files below it. Returns the remote store or None.
    """
    global _ACTIVE
    if not is_url(str(root)):
        _ACTIVE = None
        return None
    if _ACTIVE is None or _ACTIVE.root != str(root).rstrip("/") or _ACTIVE.cache_dir != cache_dir:
        _ACTIVE = Blobs(root, cache_dir=cache_dir, options=options)
    return _ACTIVE


def active() -> Blobs | None:
    """The remote object store activated in this process, if any."""
    return _ACTIVE


def data_file(data_dir: str | Path, stored: str, *, fetch: bool = True) -> Path:
    """The local file of a path the store keeps (``Video.media_path``, ``Frame.image_path``,
    ``Reference.path``...). The one rule for every reader:

    * an absolute path is the file itself;
    * a relative one lies below ``data_dir``, the local data folder;
    * when a remote object store is active (``storage.data_dir`` is an ``s3://`` URL, see
      :func:`activate`) and the file is not here yet, it is fetched into ``data_dir`` first
      (``fetch=False`` skips that, e.g. for a file about to be removed); a missing object
      stays missing (the path returned does not exist).
    """
    p = Path(stored)
    if p.is_absolute():
        return p
    local = Path(data_dir) / p
    objects = _ACTIVE
    if fetch and objects is not None and stored and not local.exists():
        with contextlib.suppress(FileNotFoundError, ValueError):
            objects.local_path(stored)
    return local
