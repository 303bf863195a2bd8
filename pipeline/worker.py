"""The processing loop: discovered -> downloaded -> frames -> embedded, over the durable queue.

Videos are claimed with a lease (``storage.queue``) in small chunks. Downloads (network I/O) run
in a thread pool while the main thread samples frames and embeds; the number of downloaded
videos waiting for the main thread is bounded, so memory and disk stay bounded. Embedding is
batched across videos (``process.batch_size`` images per forward pass).

Every stage is idempotent per video: it deletes what an earlier, interrupted attempt of the same
stage wrote (rows and files) and writes it again, and only then moves the video's state on. A
``kill -9`` at any point followed by another run gives the same end state. Failures are
recorded per video (transient ones retry with backoff, permanent ones end as ``failed`` with a
one-line reason) and the batch goes on. The lease is given back when a video reaches
``embedded`` (the matcher claims it next) and when the loop stops early.
"""

from __future__ import annotations

import logging
import queue as queue_mod
import re
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import delete, select
from tqdm import tqdm

from charwatch.config import Config, ConfigError, PlatformConfig
from pipeline.download import DownloadError, DownloadResult, download
from pipeline.embedders.base import Embedder
from pipeline.frames import FramesError, SampledFrame, sample_frames
from pipeline.media import data_file, probe, to_data_path
from pipeline.provenance import read_c2pa
from pipeline.regions import regions
from storage import queue
from storage.db import Store
from storage.models import Embedding, Frame, Video, VideoState

log = logging.getLogger(__name__)

STATES = (VideoState.DISCOVERED, VideoState.DOWNLOADED, VideoState.FRAMES)
DOWNLOAD_WORKERS = 3
CLAIM_CHUNK = 8
FRAME_JPEG_QUALITY = 90
THUMB_JPEG_QUALITY = 80
_STEM_BAD = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class ProcessStats:
    """What one call of :func:`process_pending` did."""

    claimed: int = 0
    processed: int = 0  # reached "embedded"
    failed: int = 0  # ended as "failed" (permanent, or out of attempts)
    retrying: int = 0  # transient failure, retried after a backoff
    released: int = 0  # leases given back unfinished (stop requested)
    downloaded: int = 0
    frames: int = 0  # frame rows written
    embeddings: int = 0  # embedding rows written
    seconds: dict[str, float] = field(
        default_factory=lambda: {"download": 0.0, "frames": 0.0, "embed": 0.0, "total": 0.0}
    )
    errors: list[str] = field(default_factory=list)  # "video <id>: <stage>: <reason>"

    def as_dict(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed,
            "processed": self.processed,
            "failed": self.failed,
            "retrying": self.retrying,
            "released": self.released,
            "downloaded": self.downloaded,
            "frames": self.frames,
            "embeddings": self.embeddings,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "errors": list(self.errors),
        }


@dataclass
class _Job:
    video_id: int
    platform: str
    platform_id: str
    url: str
    state: str
    media_path: str | None = None
    duration_s: float | None = None
    result: DownloadResult | None = None
    c2pa: dict[str, Any] | None = None
    error: BaseException | None = None
    seconds: float = 0.0


@dataclass
class _EmbedItem:
    video_id: int
    frame_ids: list[int]
    crops: list[tuple[int, str, Image.Image]]  # (frame_id, region, image)


def _open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def media_stem(platform_id: str) -> str:
    """A file-name-safe stem for a platform id."""
    stem = _STEM_BAD.sub("_", platform_id).strip("._")
    return stem[:120] or "video"


class _Gate:
    """Per-platform concurrency and a minimum interval between download starts."""

    def __init__(self, concurrency: int, delay_s: float) -> None:
        self.sem = threading.BoundedSemaphore(max(1, concurrency))
        self.delay_s = max(0.0, delay_s)
        self.lock = threading.Lock()
        self.next_start = 0.0

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self.sem:
            with self.lock:
                now = time.monotonic()
                wait = self.next_start - now
                self.next_start = max(now, self.next_start) + self.delay_s
            if wait > 0:
                time.sleep(wait)
            yield


class _Loop:
    def __init__(
        self,
        cfg: Config,
        store: Store,
        embedder: Embedder,
        limit: int | None,
        owner: str,
        progress: bool,
        stop: threading.Event,
    ) -> None:
        self.cfg = cfg
        self.pcfg = cfg.process
        self.store = store
        self.embedder = embedder
        self.limit = limit
        self.owner = owner
        self.stop = stop
        self.stats = ProcessStats()
        self.data_dir = cfg.data_dir
        self.held: set[int] = set()
        self.dl_pending: deque[_Job] = deque()
        self.frames_todo: deque[_Job] = deque()
        self.embed_buf: list[_EmbedItem] = []
        self.max_ahead = DOWNLOAD_WORKERS * 2  # downloaded or downloading, not yet sampled
        # bounded; never full in practice, since at most max_ahead downloads are submitted
        self.done: queue_mod.Queue[_Job] = queue_mod.Queue(maxsize=self.max_ahead * 2)
        self.inflight: set[Future[_Job]] = set()
        self.exhausted = False
        self.gates: dict[str, _Gate] = {}
        self.gates_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(DOWNLOAD_WORKERS, thread_name_prefix="download")
        self.last_renew = time.monotonic()
        disable = not progress
        opts: dict[str, Any] = {"file": sys.stderr, "disable": disable, "dynamic_ncols": True}
        self.bars = {
            "download": tqdm(desc="download", unit="video", position=0, total=0, **opts),
            "frames": tqdm(desc="frames  ", unit="video", position=1, total=0, **opts),
            "embed": tqdm(desc="embed   ", unit="img", position=2, **opts),
        }

    # -- claiming and leases -------------------------------------------------------------

    def _platform(self, name: str) -> PlatformConfig | None:
        try:
            return self.cfg.platforms.get(name)
        except ConfigError:
            return None

    def _gate(self, name: str) -> _Gate:
        with self.gates_lock:
            if name not in self.gates:
                p = self._platform(name)
                delay = p.download_delay if p else 0.0
                self.gates[name] = _Gate(p.concurrency if p else 2, delay)
            return self.gates[name]

    def _backlog(self) -> int:
        return len(self.dl_pending) + len(self.inflight) + self.done.qsize() + len(self.frames_todo)

    def _refill(self) -> None:
        if self.exhausted or self.stop.is_set() or self._backlog() >= self.max_ahead:
            return
        n = CLAIM_CHUNK
        if self.limit is not None:
            n = min(n, self.limit - self.stats.claimed)
            if n <= 0:
                self.exhausted = True
                return
        ids = queue.claim(self.store, self.owner, n, self.pcfg.lease_s, states=STATES)
        if not ids:
            self.exhausted = True
            return
        self.stats.claimed += len(ids)
        self.held.update(ids)
        with self.store.session() as s:
            videos = {v.id: v for v in s.scalars(select(Video).where(Video.id.in_(ids)))}
        for vid in ids:
            v = videos[vid]
            job = _Job(vid, v.platform, v.platform_id, v.url, v.state, v.media_path, v.duration_s)
            self._route(job)

    def _route(self, job: _Job) -> None:
        media_ok = bool(job.media_path) and data_file(self.data_dir, job.media_path).is_file()
        if job.state == VideoState.FRAMES:
            item = self._load_embed_item(job)
            if item is not None:
                self.embed_buf.append(item)
                return
            job.state = VideoState.DOWNLOADED  # frame files are gone: sample again
        if job.state == VideoState.DOWNLOADED and media_ok:
            self.bars["frames"].total += 1
            self.frames_todo.append(job)
            return
        self.bars["download"].total += 1
        self.bars["frames"].total += 1
        self.dl_pending.append(job)

    def _renew(self) -> None:
        if time.monotonic() - self.last_renew < self.pcfg.lease_s / 3:
            return
        self.last_renew = time.monotonic()
        for vid in list(self.held):
            if not queue.renew(self.store, self.owner, vid, self.pcfg.lease_s):
                log.warning("video %s: lease lost", vid)
                self.held.discard(vid)

    def _fail(self, vid: int, stage: str, reason: str, *, transient: bool) -> None:
        if vid not in self.held:
            return
        message = f"{stage}: {reason}"
        outcome = queue.fail(
            self.store,
            self.owner,
            vid,
            message,
            transient=transient,
            max_attempts=self.pcfg.max_attempts,
        )
        self.held.discard(vid)
        self.stats.errors.append(f"video {vid}: {message}")
        if outcome == "retry":
            self.stats.retrying += 1
        elif outcome == VideoState.FAILED:
            self.stats.failed += 1
        log.info("video %s: %s (%s)", vid, message, outcome)

    # -- download (thread pool) ----------------------------------------------------------

    def _submit_downloads(self) -> None:
        while self.dl_pending and not self.stop.is_set():
            ahead = len(self.inflight) + self.done.qsize() + len(self.frames_todo)
            if ahead >= self.max_ahead:
                return
            job = self.dl_pending.popleft()
            fut = self.pool.submit(self._download, job)
            self.inflight.add(fut)
            fut.add_done_callback(self._on_done)

    def _on_done(self, fut: Future[_Job]) -> None:
        if not fut.cancelled():
            self.done.put(fut.result())

    def _download(self, job: _Job) -> _Job:
        t0 = time.perf_counter()
        try:
            if not job.url:
                raise DownloadError("video has no URL", transient=False)
            platform = self._platform(job.platform)
            dest = self.data_dir / "media" / media_stem(job.platform)
            with self._gate(job.platform).slot():
                job.result = download(
                    job.url, dest, media_stem(job.platform_id), self.pcfg, platform
                )
            job.c2pa = read_c2pa(job.result.path)  # the raw file, before anything rewrites it
        except BaseException as exc:  # noqa: BLE001 - reported per video by the main thread
            job.error = exc
        job.seconds = time.perf_counter() - t0
        return job

    def _collect(self, block: bool) -> None:
        try:
            job = self.done.get(timeout=0.2 if block else 0)
        except queue_mod.Empty:
            return
        self.inflight = {f for f in self.inflight if not f.done()}
        self.stats.seconds["download"] += job.seconds
        self.bars["download"].update(1)
        vid = job.video_id
        if job.error is not None or job.result is None:
            self.bars["frames"].total -= 1  # it will not reach the frames stage
        if isinstance(job.error, DownloadError):
            self._fail(vid, "download", job.error.message, transient=job.error.transient)
            return
        if job.error is not None or job.result is None:
            err = job.error or RuntimeError("no result")
            log.error("video %s: download crashed", vid, exc_info=err)
            self._fail(vid, "download", f"{type(err).__name__}: {err}", transient=True)
            return
        res = job.result
        c2pa = job.c2pa or {"state": "error", "message": "not read"}
        values: dict[str, Any] = {
            "media_path": to_data_path(self.data_dir, res.path),
            "media_sha256": res.sha256,
            "media_bytes": res.size,
            "c2pa_state": c2pa.get("state"),
            "c2pa_info": c2pa,
            "error": None,
        }
        duration = res.info.get("duration")
        if job.duration_s is None:
            if duration is None:
                duration = probe(res.path).duration
            if duration is not None:
                values["duration_s"] = float(duration)
        if not queue.advance(self.store, self.owner, vid, VideoState.DOWNLOADED, **values):
            self.held.discard(vid)
            return
        self.stats.downloaded += 1
        job.state = VideoState.DOWNLOADED
        job.media_path = values["media_path"]
        self.frames_todo.append(job)

    # -- frames (main thread) ------------------------------------------------------------

    def _frames_dir(self, vid: int) -> Path:
        return self.data_dir / "frames" / str(vid)

    def _do_frames(self, job: _Job) -> None:
        vid = job.video_id
        t0 = time.perf_counter()
        try:
            media = data_file(self.data_dir, job.media_path or "")
            frames = sample_frames(media, self.pcfg)
            item = self._store_frames(vid, frames)
        except FramesError as exc:
            self._fail(vid, "frames", str(exc), transient=False)
            return
        except Exception as exc:
            log.exception("video %s: frame sampling crashed", vid)
            self._fail(vid, "frames", f"{type(exc).__name__}: {exc}", transient=True)
            return
        finally:
            self.stats.seconds["frames"] += time.perf_counter() - t0
            self.bars["frames"].update(1)
        if not queue.advance(self.store, self.owner, vid, VideoState.FRAMES, error=None):
            self.held.discard(vid)
            return
        self.stats.frames += len(item.frame_ids)
        self._drop_media_if_unwanted(vid, job)
        self.embed_buf.append(item)

    def _store_frames(self, vid: int, frames: list[SampledFrame]) -> _EmbedItem:
        fdir = self._frames_dir(vid)
        shutil.rmtree(fdir, ignore_errors=True)
        fdir.mkdir(parents=True, exist_ok=True)
        thumb_px = max(16, int(self.cfg.report.thumb_px))
        rows: list[Frame] = []
        for i, f in enumerate(frames):
            name = f"{i:02d}_{round(f.t * 1000):08d}"
            image_path = fdir / f"{name}.jpg"
            thumb_path = fdir / f"{name}_t.jpg"
            f.image.save(image_path, "JPEG", quality=FRAME_JPEG_QUALITY)
            thumb = f.image.copy()
            thumb.thumbnail((thumb_px, thumb_px), Image.Resampling.LANCZOS)
            thumb.save(thumb_path, "JPEG", quality=THUMB_JPEG_QUALITY)
            rows.append(
                Frame(
                    video_id=vid,
                    t=f.t,
                    pdq=f.pdq,
                    pdq_quality=f.pdq_quality,
                    thumb_path=to_data_path(self.data_dir, thumb_path),
                    image_path=to_data_path(self.data_dir, image_path),
                )
            )
        with self.store.session() as s:
            old = select(Frame.id).where(Frame.video_id == vid)
            s.execute(delete(Embedding).where(Embedding.frame_id.in_(old)))
            s.execute(delete(Frame).where(Frame.video_id == vid))
            s.add_all(rows)
            s.flush()
            ids = [r.id for r in rows]
        # embed what was stored (the JPEG), so a resumed run embeds exactly the same pixels
        crops = []
        for fid, row in zip(ids, rows, strict=True):
            img = _open_rgb(data_file(self.data_dir, row.image_path or ""))
            crops.extend((fid, name, crop) for name, crop in regions(img))
        return _EmbedItem(vid, ids, crops)

    def _load_embed_item(self, job: _Job) -> _EmbedItem | None:
        """Frames stored by an earlier run, read back for embedding (None if any is missing)."""
        with self.store.session() as s:
            rows = list(
                s.execute(
                    select(Frame.id, Frame.image_path)
                    .where(Frame.video_id == job.video_id)
                    .order_by(Frame.t)
                )
            )
        if not rows:
            return None
        crops = []
        for fid, image_path in rows:
            path = data_file(self.data_dir, image_path) if image_path else None
            if path is None or not path.is_file():
                return None
            crops.extend((fid, name, crop) for name, crop in regions(_open_rgb(path)))
        return _EmbedItem(job.video_id, [fid for fid, _ in rows], crops)

    def _drop_media_if_unwanted(self, vid: int, job: _Job) -> None:
        if self.pcfg.keep_media != "none" or not job.media_path:
            return
        data_file(self.data_dir, job.media_path).unlink(missing_ok=True)
        with self.store.session() as s:
            video = s.get(Video, vid)
            if video is not None:
                video.media_path = None

    # -- embeddings (main thread, batched across videos) ---------------------------------

    def _pending_images(self) -> int:
        return sum(len(item.crops) for item in self.embed_buf)

    def _flush_embed(self) -> None:
        items, self.embed_buf = self.embed_buf, []
        items = [it for it in items if it.video_id in self.held]
        if not items:
            return
        t0 = time.perf_counter()
        images = [img for it in items for _, _, img in it.crops]
        bs = max(1, self.pcfg.batch_size)
        try:
            parts = []
            for i in range(0, len(images), bs):
                parts.append(self.embedder.embed_images(images[i : i + bs]))
                self.bars["embed"].update(len(images[i : i + bs]))
            vectors = np.concatenate(parts) if parts else np.zeros((0, self.embedder.dim))
        except Exception as exc:
            log.exception("embedding a batch of %d images failed", len(images))
            for it in items:
                self._fail(it.video_id, "embed", f"{type(exc).__name__}: {exc}", transient=True)
            return
        finally:
            self.stats.seconds["embed"] += time.perf_counter() - t0
        model_id = self.embedder.id
        offset = 0
        for it in items:
            vecs = vectors[offset : offset + len(it.crops)]
            offset += len(it.crops)
            with self.store.session() as s:
                s.execute(
                    delete(Embedding).where(
                        Embedding.frame_id.in_(it.frame_ids), Embedding.model_id == model_id
                    )
                )
                s.add_all(
                    Embedding(
                        frame_id=fid,
                        region=region,
                        model_id=model_id,
                        vector=vec.astype(np.float16).tobytes(),
                    )
                    for (fid, region, _), vec in zip(it.crops, vecs, strict=True)
                )
            if queue.advance(self.store, self.owner, it.video_id, VideoState.EMBEDDED, error=None):
                queue.release(self.store, self.owner, it.video_id)
                self.stats.processed += 1
                self.stats.embeddings += len(it.crops)
            self.held.discard(it.video_id)

    # -- the loop ------------------------------------------------------------------------

    def _idle(self) -> bool:
        return self.exhausted and not (
            self.dl_pending or self.inflight or self.frames_todo or not self.done.empty()
        )

    def run(self) -> ProcessStats:
        start = time.perf_counter()
        try:
            while not self.stop.is_set():
                self._renew()
                self._refill()
                self._submit_downloads()
                waiting = not self.frames_todo and self._pending_images() < self.pcfg.batch_size
                self._collect(block=waiting and bool(self.inflight))
                if self.frames_todo:
                    self._do_frames(self.frames_todo.popleft())
                if self._pending_images() >= self.pcfg.batch_size:
                    self._flush_embed()
                if self._idle():
                    self._flush_embed()
                    if self._idle():
                        break
        finally:
            self._shutdown()
            self.stats.seconds["total"] = time.perf_counter() - start
            for bar in self.bars.values():
                bar.close()
        return self.stats

    def _shutdown(self) -> None:
        """Finish what is in hand (running downloads, the embed buffer), release the rest."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        try:
            while not self.done.empty():
                self._collect(block=False)
            if self.embed_buf:
                self._flush_embed()
        finally:
            for vid in list(self.held):
                queue.release(self.store, self.owner, vid)
                self.stats.released += 1
            self.held.clear()


def process_pending(
    cfg: Config,
    store: Store,
    embedder: Embedder,
    *,
    limit: int | None = None,
    owner: str | None = None,
    progress: bool = True,
    stop: threading.Event | None = None,
) -> ProcessStats:
    """Take videos in discovered/downloaded/frames to ``embedded``; returns what was done.

    ``limit`` caps the videos claimed; ``stop`` ends the loop early (running downloads finish,
    claimed videos not finished are released and keep their state for the next run).
    """
    loop = _Loop(
        cfg,
        store,
        embedder,
        limit,
        owner or queue.worker_id(),
        progress,
        stop or threading.Event(),
    )
    return loop.run()
