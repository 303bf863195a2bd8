"""The processing loop: discovered -> downloaded -> frames -> embedded, over the durable queue.

Videos are claimed with a lease (``storage.workqueue``) in small chunks. Downloads (network I/O) run
in one thread pool; frame sampling (an ffmpeg child process) and writing the frame and thumbnail
JPEGs run in a second, small one, so decoding the next videos overlaps the embedding of the
current batch on the main thread. The number of videos downloaded or being sampled ahead of the
main thread is bounded, so memory and disk stay bounded. Embedding is batched across videos
(``process.batch_size`` images per forward pass). All database access stays on the main thread.

Every stage is idempotent per video: it replaces what an earlier, interrupted attempt of the same
stage wrote (rows and files) and only then moves the video's state on. Each stage's rows and its
state change commit in one transaction that first locks the video's row and checks that this
loop still holds the lease (``workqueue.leased``), so a loop whose lease was taken over (it stalled,
or was judged dead) writes nothing over the new holder's work. Frame files carry the attempt in
their folder name (``frames/<video id>/<attempt>/``), so two attempts never write the same file;
a losing attempt removes its own folder, a winning one the folders of earlier attempts. A
``kill -9`` at any point followed by another run gives the same end state. Failures are
recorded per video (transient ones retry with backoff, permanent ones end as ``failed`` with a
one-line reason) and the batch goes on. The lease is given back when a video reaches
``embedded`` (the matcher claims it next) and when the loop stops early. The loop registers in
the worker registry (``storage.workers``) and beats a heartbeat from a background thread, so a
loop killed with ``-9`` frees its leases for the next claim at once on this host, and within
``workers.DEAD_AFTER_S`` seconds from other hosts.

A failure that is the platform's, not the video's (a 429, a bot check, a login wall, a missing
JS runtime, ``max_consecutive_errors`` errors in a row) pauses that platform for its cool-down
(``storage.platform_state``): its videos are released without counting an attempt, no more of
them are claimed until the cool-down ends, and the other platforms go on. Download starts of a
platform take slots from its rate budget, shared with every other process on the database.
"""

from __future__ import annotations

import logging
import queue
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

from PIL import Image
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from tqdm import tqdm

from charwatch.config import Config, ConfigError, PlatformConfig
from pipeline.download import DownloadError, DownloadResult, YtdlpSessions, batch_options, download
from pipeline.embedders.base import Embedder, FrameVectors
from pipeline.frames import FramesError, SampledFrame, sample_frames
from pipeline.media import jpeg_round_trip, objects_for, probe, to_data_path
from pipeline.provenance import read_c2pa
from storage import platform_state, workers, workqueue
from storage.blobs import data_file
from storage.db import Store
from storage.models import Embedding, Frame, Video, VideoState, utcnow
from storage.vectors import encode_vectors

log = logging.getLogger(__name__)

STATES = (VideoState.DISCOVERED, VideoState.DOWNLOADED, VideoState.FRAMES)
DOWNLOAD_WORKERS = 3
FRAME_WORKERS = 2  # ffmpeg runs single-threaded per video (see pipeline.frames)
FRAMES_AHEAD = 3  # videos submitted for sampling and not yet taken back by the main thread
CLAIM_CHUNK = 8
FRAME_JPEG_QUALITY = 90
THUMB_JPEG_QUALITY = 80
_STEM_BAD = re.compile(r"[^A-Za-z0-9._-]+")
MAX_SLOT_WAIT_S = 60.0  # a longer wait for the rate budget defers the platform to a later run


class _PlatformWait(Exception):
    """The platform cannot be asked now (paused, or its rate budget is spent for a while)."""


@dataclass
class ProcessStats:
    """What one call of :func:`process_pending` did.

    ``seconds`` per stage sums the time spent on each video: downloads and frame sampling run
    in thread pools, so ``download`` and ``frames`` overlap each other and the main thread's
    ``embed`` time, and each may exceed ``total`` (wall time of the whole call).
    """

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
    paused: dict[str, str] = field(default_factory=dict)  # platform -> why and until when
    deferred: dict[str, str] = field(default_factory=dict)  # platform -> rate budget spent
    busy: int = 0  # queued videos left alone because other live workers hold their leases
    lost: int = 0  # leases taken over by another worker while this one worked on them

    def summary(self) -> str:
        """One line for people, plus a line per paused or deferred platform."""
        line = (
            f"{self.processed} processed, {self.failed} failed, {self.retrying} to retry, "
            f"{self.released} left queued ({self.claimed} claimed, {self.downloaded} downloaded, "
            f"{self.frames} frames, {self.embeddings} embeddings, "
            f"{self.seconds.get('total', 0.0):.1f} s)"
        )
        for why in self.paused.values():
            line += f"\n  PAUSED: {why}"
        for name, why in self.deferred.items():
            line += f"\n  deferred {name}: {why}"
        if self.lost:
            line += f"\n  {self.lost} videos were taken over by other workers"
        if self.busy:
            line += f"\n  {self.busy} videos are being processed by other live workers"
        return line

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
            "paused": dict(self.paused),
            "deferred": dict(self.deferred),
            "busy": self.busy,
            "lost": self.lost,
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
    token: str = ""  # this attempt's name in the files it writes (workqueue.attempt_token)
    result: DownloadResult | None = None
    c2pa: dict[str, Any] | None = None
    error: BaseException | None = None
    seconds: float = 0.0


@dataclass
class _StoredFrame:
    """A frame written to disk by the sampling step, before its database row exists."""

    t: float
    pdq: str | None
    pdq_quality: int | None
    image_path: str  # relative to the data dir
    thumb_path: str


@dataclass
class _Sampled:
    """What the sampling step made of one video: stored frames and their pixels, or an error."""

    job: _Job
    frames: list[_StoredFrame] = field(default_factory=list)
    images: list[Image.Image] = field(default_factory=list)  # the stored JPEG's pixels
    error: BaseException | None = None
    seconds: float = 0.0


@dataclass
class _EmbedItem:
    video_id: int
    frame_ids: list[int]
    images: list[Image.Image]  # the stored JPEG's pixels, one per frame id


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
        self.frames_running: dict[Future[_Sampled], _Job] = {}
        self.embed_buf: list[_EmbedItem] = []
        self.max_ahead = DOWNLOAD_WORKERS * 2  # downloaded or downloading, not yet sampled
        # bounded; never full in practice, since at most max_ahead downloads are submitted
        self.done: queue.Queue[_Job] = queue.Queue(maxsize=self.max_ahead * 2)
        self.inflight: set[Future[_Job]] = set()
        self.exhausted = False
        self.gates: dict[str, _Gate] = {}
        self.gates_lock = threading.Lock()
        self.sessions = YtdlpSessions(batch_options(self.pcfg), self.data_dir)
        self.objects = objects_for(cfg)  # a remote object store (s3://), else None
        self.paused: dict[str, platform_state.Pause] = {}
        self.pool = ThreadPoolExecutor(DOWNLOAD_WORKERS, thread_name_prefix="download")
        self.frames_pool = ThreadPoolExecutor(FRAME_WORKERS, thread_name_prefix="frames")
        self.wake = threading.Event()  # set when a download or a sampling job finishes
        self.last_renew = time.monotonic()
        self.attempts = 0  # videos claimed so far: numbers each attempt's token
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

    def _ahead(self) -> int:
        """Videos downloading, downloaded or being sampled, not yet taken back by the main
        thread."""
        return (
            len(self.inflight)
            + self.done.qsize()
            + len(self.frames_todo)
            + len(self.frames_running)
        )

    def _backlog(self) -> int:
        return len(self.dl_pending) + self._ahead()

    def _refill(self) -> None:
        if self.exhausted or self.stop.is_set() or self._backlog() >= self.max_ahead:
            return
        n = CLAIM_CHUNK
        if self.limit is not None:
            n = min(n, self.limit - self.stats.claimed)
            if n <= 0:
                self.exhausted = True
                return
        for pause in platform_state.active_pauses(self.store):
            self._note_pause(pause)
        skip = set(self.paused) | set(self.stats.deferred)
        ids = workqueue.claim(
            self.store, self.owner, n, self.pcfg.lease_s, states=STATES, skip_platforms=skip
        )
        if not ids:
            self.exhausted = True
            self.stats.busy = workqueue.held_by_others(
                self.store, self.owner, STATES, skip_platforms=skip
            )
            return
        self.stats.claimed += len(ids)
        self.held.update(ids)
        with self.store.session() as s:
            videos = {v.id: v for v in s.scalars(select(Video).where(Video.id.in_(ids)))}
        for vid in ids:
            v = videos[vid]
            job = _Job(vid, v.platform, v.platform_id, v.url, v.state, v.media_path, v.duration_s)
            self.attempts += 1
            job.token = workqueue.attempt_token(self.owner, self.attempts)
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
        kept = workqueue.renew_many(self.store, self.owner, self.held, self.pcfg.lease_s)
        for vid in self.held - kept:
            self._lost(vid)

    def _lost(self, vid: int, job: _Job | None = None) -> None:
        """The lease of ``vid`` went to another worker: forget it and drop this attempt's files."""
        if vid in self.held:
            log.warning("video %s: lease lost", vid)
            self.held.discard(vid)
            self.stats.lost += 1
        if job is not None and job.token:
            self._drop_attempt(vid, job.token)

    def _fail(self, vid: int, stage: str, reason: str, *, transient: bool) -> None:
        if vid not in self.held:
            return
        message = f"{stage}: {reason}"
        outcome = workqueue.fail(
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
            if self._ahead() >= self.max_ahead:
                return
            job = self.dl_pending.popleft()
            fut = self.pool.submit(self._download, job)
            self.inflight.add(fut)
            fut.add_done_callback(self._on_done)

    def _on_done(self, fut: Future[_Job]) -> None:
        if not fut.cancelled():
            self.done.put(fut.result())
        self.wake.set()

    def _download(self, job: _Job) -> _Job:
        t0 = time.perf_counter()
        try:
            if not job.url:
                raise DownloadError("video has no URL", transient=False)
            platform = self._platform(job.platform)
            dest = self.data_dir / "media" / media_stem(job.platform)
            with self._gate(job.platform).slot():
                self._wait_for_budget(job.platform, platform)
                job.result = download(
                    job.url,
                    dest,
                    media_stem(job.platform_id),
                    self.pcfg,
                    platform,
                    sessions=self.sessions,
                    platform_name=job.platform,
                )
            job.c2pa = read_c2pa(job.result.path)  # the raw file, before anything rewrites it
        except BaseException as exc:  # noqa: BLE001 - reported per video by the main thread
            job.error = exc
        job.seconds = time.perf_counter() - t0
        return job

    def _wait_for_budget(self, name: str, platform: PlatformConfig | None) -> None:
        """Take a slot of the platform's shared rate budget (download thread).

        Raises :class:`_PlatformWait` when the platform is paused or the budget would make
        this download wait longer than ``MAX_SLOT_WAIT_S``.
        """
        if name in self.paused or name in self.stats.deferred:
            raise _PlatformWait(name)
        if platform is None:
            return
        interval = max(0.0, platform.sleep_interval)
        per_hour = max(0, platform.max_downloads_per_hour)
        if not interval and not per_hour:
            return
        while True:
            wait = platform_state.take_slot(self.store, name, interval, per_hour)
            if wait <= 0:
                return
            if wait > MAX_SLOT_WAIT_S:
                raise _PlatformWait(
                    f"rate budget spent ({per_hour} downloads/hour); next slot in "
                    f"{wait / 60:.0f} min"
                )
            if self.stop.wait(min(wait, 5.0)) or name in self.paused:
                raise _PlatformWait(name)

    def _note_pause(self, pause: platform_state.Pause) -> None:
        if pause.platform not in self.paused:
            log.warning("%s", pause.describe())
        self.paused[pause.platform] = pause
        self.stats.paused[pause.platform] = pause.describe()
        self._release_pending(pause.platform)

    def _release_pending(self, name: str) -> None:
        """Give back the platform's claimed videos that have not started downloading."""
        keep: deque[_Job] = deque()
        for job in self.dl_pending:
            if job.platform == name:
                self._release(job)
                self.bars["download"].total -= 1
                self.bars["frames"].total -= 1
            else:
                keep.append(job)
        self.dl_pending = keep

    def _release(self, job: _Job) -> None:
        if job.video_id in self.held:
            workqueue.release(self.store, self.owner, job.video_id)
            self.held.discard(job.video_id)
            self.stats.released += 1

    def _pause_platform(self, name: str, reason: str) -> None:
        platform = self._platform(name)
        seconds = platform.cooldown_s if platform else 3600
        if seconds > 0:
            pause = platform_state.pause(self.store, name, reason, "download", seconds)
        else:  # pausing switched off: only this run leaves the platform alone
            now = utcnow()
            pause = platform_state.Pause(name, reason, "download", now, now)
        self._note_pause(pause)

    def _collect_downloads(self) -> int:
        """Take in every finished download; returns how many."""
        n = 0
        while True:
            try:
                job = self.done.get_nowait()
            except queue.Empty:
                return n
            self._collect(job)
            n += 1

    def _collect(self, job: _Job) -> None:
        self.inflight = {f for f in self.inflight if not f.done()}
        self.stats.seconds["download"] += job.seconds
        self.bars["download"].update(1)
        vid = job.video_id
        if job.error is not None or job.result is None:
            self.bars["frames"].total -= 1  # it will not reach the frames stage
        if isinstance(job.error, _PlatformWait):
            if job.platform not in self.paused and str(job.error) != job.platform:
                self.stats.deferred[job.platform] = str(job.error)
            self._release(job)
            return
        if isinstance(job.error, DownloadError):
            if job.error.platform_wide:
                self._pause_platform(job.platform, job.error.message)
                self._release(job)
                return
            if job.platform in self.paused:  # the same block, seen by a download in flight
                self._release(job)
                return
            if job.error.transient:
                errors = platform_state.note_error(self.store, job.platform)
                platform = self._platform(job.platform)
                limit = platform.max_consecutive_errors if platform else 0
                if limit and errors >= limit:
                    self._pause_platform(
                        job.platform, f"{errors} download errors in a row; last: {job.error}"
                    )
                    self._release(job)
                    return
            self._fail(vid, "download", job.error.message, transient=job.error.transient)
            return
        if job.error is not None or job.result is None:
            err = job.error or RuntimeError("no result")
            log.error("video %s: download crashed", vid, exc_info=err)
            self._fail(vid, "download", f"{type(err).__name__}: {err}", transient=True)
            return
        res = job.result
        platform_state.note_success(self.store, job.platform)
        c2pa = job.c2pa or {"state": "error", "message": "not read"}
        values: dict[str, Any] = {
            "media_path": to_data_path(self.data_dir, res.path),
            "media_sha256": res.sha256,
            "media_bytes": res.size,
            "c2pa_state": c2pa.get("state"),
            "c2pa_info": c2pa,
            "error": None,
        }
        if self.objects is not None and self.pcfg.keep_media != "none":
            self.objects.put_file(res.path, values["media_path"])  # evidence for any machine
        duration = res.info.get("duration")
        if job.duration_s is None:
            if duration is None:
                duration = probe(res.path).duration
            if duration is not None:
                values["duration_s"] = float(duration)
        try:
            with workqueue.leased(self.store, self.owner, vid, self.pcfg.lease_s) as s:
                workqueue.set_state(s, vid, VideoState.DOWNLOADED, **values)
        except workqueue.LeaseLost:
            self._lost(vid)
            return
        self.stats.downloaded += 1
        job.state = VideoState.DOWNLOADED
        job.media_path = values["media_path"]
        self.frames_todo.append(job)

    # -- frames (sampling in a thread pool, database rows on the main thread) ----------------

    def _frames_dir(self, vid: int, token: str = "") -> Path:
        """Frame files of one video, or of one attempt at it (``token``)."""
        base = self.data_dir / "frames" / str(vid)
        return base / token if token else base

    def _drop_attempt(self, vid: int, token: str) -> None:
        """Remove one attempt's frame files (here and in the object store)."""
        fdir = self._frames_dir(vid, token)
        shutil.rmtree(fdir, ignore_errors=True)
        if self.objects is not None and token:
            self.objects.delete_prefix(to_data_path(self.data_dir, fdir))

    def _drop_other_attempts(self, vid: int, token: str) -> None:
        """Remove the frame files of every other attempt at ``vid`` (and of the older layout,
        files straight in the video's folder): their rows were just replaced."""
        base = self._frames_dir(vid)
        if self.objects is not None:
            prefix = to_data_path(self.data_dir, base)
            others = {k.split("/")[2] for k in self.objects.list(prefix) if k.count("/") >= 3}
            for other in others - {token}:
                self.objects.delete_prefix(f"{prefix}/{other}")
        if not base.is_dir():
            return
        for entry in base.iterdir():
            if entry.name == token:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    def _submit_frames(self) -> None:
        while (
            self.frames_todo and len(self.frames_running) < FRAMES_AHEAD and not self.stop.is_set()
        ):
            job = self.frames_todo.popleft()
            fut = self.frames_pool.submit(self._sample, job)
            self.frames_running[fut] = job
            fut.add_done_callback(lambda _: self.wake.set())

    def _sample(self, job: _Job) -> _Sampled:
        """Sample the video's frames and write their JPEGs and thumbnails (worker thread: no
        database access, no shared state)."""
        out = _Sampled(job)
        t0 = time.perf_counter()
        try:
            media = data_file(self.data_dir, job.media_path or "")
            self._write_frames(job, sample_frames(media, self.pcfg), out)
        except BaseException as exc:  # noqa: BLE001 - reported per video by the main thread
            out.error = exc
        out.seconds = time.perf_counter() - t0
        return out

    def _write_frames(self, job: _Job, frames: list[SampledFrame], out: _Sampled) -> None:
        fdir = self._frames_dir(job.video_id, job.token)  # this attempt's own folder
        shutil.rmtree(fdir, ignore_errors=True)
        fdir.mkdir(parents=True, exist_ok=True)
        thumb_px = max(16, int(self.cfg.report.thumb_px))
        for i, f in enumerate(frames):
            name = f"{i:02d}_{round(f.t * 1000):08d}"
            image_path = fdir / f"{name}.jpg"
            thumb_path = fdir / f"{name}_t.jpg"
            data, decoded = jpeg_round_trip(f.image, FRAME_JPEG_QUALITY)
            image_path.write_bytes(data)
            # embed what was stored (the JPEG's pixels), so a resumed run embeds the same pixels
            out.images.append(decoded)
            thumb = f.image.copy()
            thumb.thumbnail((thumb_px, thumb_px), Image.Resampling.LANCZOS)
            thumb.save(thumb_path, "JPEG", quality=THUMB_JPEG_QUALITY)
            if self.objects is not None:  # other machines read frames from the object store
                for path in (image_path, thumb_path):
                    self.objects.put_file(path, to_data_path(self.data_dir, path))
            out.frames.append(
                _StoredFrame(
                    t=f.t,
                    pdq=f.pdq,
                    pdq_quality=f.pdq_quality,
                    image_path=to_data_path(self.data_dir, image_path),
                    thumb_path=to_data_path(self.data_dir, thumb_path),
                )
            )

    def _collect_frames(self) -> int:
        """Take in every finished sampling job; returns how many."""
        done = [fut for fut in self.frames_running if fut.done()]
        for fut in done:
            del self.frames_running[fut]
            self._finish_frames(fut.result())
        return len(done)

    def _finish_frames(self, res: _Sampled) -> None:
        job, vid = res.job, res.job.video_id
        t0 = time.perf_counter()
        try:
            if vid not in self.held:
                self._lost(vid, job)  # lease lost while sampling
                return
            if res.error is not None:
                self._drop_attempt(vid, job.token)
            if isinstance(res.error, FramesError):
                self._fail(vid, "frames", str(res.error), transient=False)
                return
            if res.error is not None:
                err = res.error
                log.error("video %s: frame sampling crashed", vid, exc_info=err)
                self._fail(vid, "frames", f"{type(err).__name__}: {err}", transient=True)
                return
            drop_media = self.pcfg.keep_media == "none" and bool(job.media_path)
            try:
                with workqueue.leased(self.store, self.owner, vid, self.pcfg.lease_s) as s:
                    item = self._store_frames(s, vid, res)
                    values: dict[str, Any] = {"error": None}
                    if drop_media:
                        values["media_path"] = None
                    workqueue.set_state(s, vid, VideoState.FRAMES, **values)
                    s.flush()
                    # under the row lock: no other attempt can commit frames meanwhile
                    self._drop_other_attempts(vid, job.token)
            except workqueue.LeaseLost:
                self._lost(vid, job)
                return
            self.stats.frames += len(item.frame_ids)
            if drop_media:  # sampling is over: the file may go
                data_file(self.data_dir, job.media_path or "").unlink(missing_ok=True)
            self.embed_buf.append(item)
        finally:
            self.stats.seconds["frames"] += res.seconds + time.perf_counter() - t0
            self.bars["frames"].update(1)

    def _store_frames(self, s: Session, vid: int, res: _Sampled) -> _EmbedItem:
        """Replace the video's frame rows (and their embeddings) with the sampled frames
        (inside the caller's lease-checked transaction)."""
        rows = [
            Frame(
                video_id=vid,
                t=f.t,
                pdq=f.pdq,
                pdq_quality=f.pdq_quality,
                thumb_path=f.thumb_path,
                image_path=f.image_path,
            )
            for f in res.frames
        ]
        old = select(Frame.id).where(Frame.video_id == vid)
        s.execute(delete(Embedding).where(Embedding.frame_id.in_(old)))
        s.execute(delete(Frame).where(Frame.video_id == vid))
        s.add_all(rows)
        s.flush()
        return _EmbedItem(vid, [r.id for r in rows], res.images)

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
        images = []
        for _, image_path in rows:
            path = data_file(self.data_dir, image_path) if image_path else None
            if path is None or not path.is_file():
                return None
            images.append(_open_rgb(path))
        return _EmbedItem(job.video_id, [fid for fid, _ in rows], images)

    # -- embeddings (main thread, batched across videos) ---------------------------------

    def _pending_images(self) -> int:
        return sum(len(item.images) for item in self.embed_buf)

    def _flush_embed(self) -> None:
        items, self.embed_buf = self.embed_buf, []
        items = [it for it in items if it.video_id in self.held]
        if not items:
            return
        t0 = time.perf_counter()
        images = [img for it in items for img in it.images]
        bs = max(1, self.pcfg.batch_size)
        try:
            per_frame: list[FrameVectors] = []
            for i in range(0, len(images), bs):
                per_frame.extend(self.embedder.embed_frames(images[i : i + bs]))
                self.bars["embed"].update(len(images[i : i + bs]))
        except Exception as exc:
            log.exception("embedding a batch of %d frames failed", len(images))
            for it in items:
                self._fail(it.video_id, "embed", f"{type(exc).__name__}: {exc}", transient=True)
            return
        finally:
            self.stats.seconds["embed"] += time.perf_counter() - t0
        model_id = self.embedder.id
        offset = 0
        for it in items:
            frames = per_frame[offset : offset + len(it.images)]
            offset += len(it.images)
            rows = [
                Embedding(
                    frame_id=fid,
                    region=region,
                    model_id=model_id,
                    vector=blob,
                )
                for fid, fv in zip(it.frame_ids, frames, strict=True)
                for region, blob in zip(fv.names, encode_vectors(fv.vectors), strict=True)
            ]
            try:
                with workqueue.leased(self.store, self.owner, it.video_id) as s:
                    s.execute(
                        delete(Embedding).where(
                            Embedding.frame_id.in_(it.frame_ids), Embedding.model_id == model_id
                        )
                    )
                    s.add_all(rows)
                    # embedded: the lease ends with the rows (the matcher claims it next)
                    workqueue.set_state(
                        s,
                        it.video_id,
                        VideoState.EMBEDDED,
                        error=None,
                        lease_owner=None,
                        lease_expires=None,
                    )
            except workqueue.LeaseLost:
                self._lost(it.video_id)
                continue
            self.stats.processed += 1
            self.stats.embeddings += len(rows)
            self.held.discard(it.video_id)

    # -- the loop ------------------------------------------------------------------------

    def _idle(self) -> bool:
        return self.exhausted and not (
            self.dl_pending
            or self.inflight
            or self.frames_todo
            or self.frames_running
            or not self.done.empty()
        )

    def run(self) -> ProcessStats:
        start = time.perf_counter()
        heartbeat = workers.Heartbeat(self.store, self.owner).start()
        workqueue.sweep(self.store)  # forget dead workers, free expired leases
        try:
            while not self.stop.is_set():
                self.wake.clear()  # before looking, so no completion goes unnoticed
                self._renew()
                self._refill()
                self._submit_downloads()
                moved = self._collect_downloads()
                self._submit_frames()
                moved += self._collect_frames()
                # refill the sampling slots before embedding, so ffmpeg decodes meanwhile
                self._submit_frames()
                self._submit_downloads()
                if self._pending_images() >= self.pcfg.batch_size:
                    self._flush_embed()
                elif self._idle():
                    self._flush_embed()
                    if self._idle():
                        break
                elif not moved and (self.inflight or self.frames_running):
                    self.wake.wait(0.2)
        finally:
            try:
                self._shutdown()
            finally:
                heartbeat.stop()
            self.stats.seconds["total"] = time.perf_counter() - start
            for bar in self.bars.values():
                bar.close()
        return self.stats

    def _shutdown(self) -> None:
        """Finish what is in hand (running downloads, the embed buffer), release the rest.

        Sampling jobs not started are cancelled and running ones awaited, but their frame rows
        are not written: those videos keep their state and the next run samples them again.
        """
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.frames_pool.shutdown(wait=False, cancel_futures=True)
        self.pool.shutdown(wait=True)
        self.frames_pool.shutdown(wait=True)
        for job in self.frames_running.values():  # released below, still "downloaded"
            self._drop_attempt(job.video_id, job.token)
        self.frames_running.clear()
        try:
            self._collect_downloads()
            if self.embed_buf:
                self._flush_embed()
        finally:
            self.sessions.close()
            for vid in list(self.held):
                workqueue.release(self.store, self.owner, vid)
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
        owner or workqueue.worker_id(),
        progress,
        stop or threading.Event(),
    )
    return loop.run()
