"""Cluster mode: many machines share one PostgreSQL database and a task engine on it.

Cluster mode is on when ``storage.url`` is a PostgreSQL URL. The coarse jobs run on
procrastinate, whose jobs live in tables of the same database (claimed with
``FOR UPDATE SKIP LOCKED``); the per-video work queue stays in ``videos`` (``storage.workqueue``).
``charwatch worker`` runs one procrastinate worker; start one or more per machine.

Queues, one per kind of job:

``crawl``     crawl one listing; the nightly fan-out; the re-check of confirmed detections
``process``   download, sample, hash and embed a batch of videos, then match them
``match``     match embedded videos against the registry
``report``    write a report (the nightly one waits for its crawls and the backlog first)
``archive``   bring the archive index up to date (one at a time in the whole cluster)

Every worker also listens to ``housekeeping``, where the one-minute tick runs.

How every video that any crawl discovers gets processed without a further command:

* after a crawl, wherever it ran (``charwatch crawl``, a worker's crawl job, the local
  one-machine jobs in cluster mode), :func:`after_crawl` defers a ``process`` job under a
  queueing lock, so at most one waits in the queue however many crawls finish;
* a ``process`` job that starts while more videos are claimable than its batch defers the next
  one first (the lock is free again once a job runs), so idle workers join in and the number of
  busy workers grows with the backlog; when it ends it defers again if videos remain;
* the tick (a procrastinate periodic task, deferred once a minute for the whole cluster) defers
  processing or matching when claimable videos exist and none is queued (videos that waited
  for a retry back-off, a platform pause or a dead worker's lease), puts the jobs of workers
  whose heartbeat stopped back in the queue, and defers the nightly and re-check jobs when due.

The nightly job is deferred with procrastinate's periodic-defer record (one row per task and
scheduled time, unique in the database): the tick of any worker, ``charwatch scheduler`` and
``charwatch run-nightly`` may all try, and it is deferred once per period. The nightly job
itself only defers work (a crawl job per watched listing and a report job) and records a
``nightly`` job run per period, so a retried nightly job defers nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from charwatch.config import Config, ConfigError

if TYPE_CHECKING:
    from procrastinate import App, JobContext

    from crawler.listing import Listing
    from storage import CrawlRun, Store

log = logging.getLogger("charwatch.cluster")

T = TypeVar("T")

QUEUES = ("crawl", "process", "match", "report", "archive")
HOUSEKEEPING = "housekeeping"

TASK_CRAWL = "charwatch.crawl"
TASK_PROCESS = "charwatch.process"
TASK_MATCH = "charwatch.match"
TASK_REPORT = "charwatch.report"
TASK_ARCHIVE = "charwatch.archive"
TASK_NIGHTLY = "charwatch.nightly"
TASK_RECHECK = "charwatch.recheck"
TASK_TICK = "charwatch.tick"

PROCESS_LOCK = "charwatch:process"
MATCH_LOCK = "charwatch:match"
ARCHIVE_LOCK = "charwatch:archive"
TICK_LOCK = "charwatch:tick"

DEFAULT_BATCH = 16  # videos per process job
GRACE_S = 40.0  # after SIGTERM: how long running jobs may take to finish
HARD_STOP_S = 55.0  # after SIGTERM: unfinished jobs go back to the queue and the worker exits
HEARTBEAT_S = 10.0
STALLED_S = 60.0  # a worker silent this long is dead: its jobs are queued again
REPORT_POLL_S = 20  # a waiting report job looks again after this
REPORT_MAX_WAIT_S = 6 * 3600  # then writes the report anyway
SCHEMA_LOCK_KEY = 0x63776174636801  # pg_advisory_lock key for the task tables' set-up

_active: tuple[App, asyncio.AbstractEventLoop] | None = None  # the worker of this process
_schema_ready: set[str] = set()


# ---------------------------------------------------------------- mode and connections


def is_cluster(cfg: Config) -> bool:
    """True when the storage URL names PostgreSQL (cluster mode)."""
    try:
        return make_url(cfg.storage.database_url).get_backend_name() == "postgresql"
    except ArgumentError:
        return False


def require_cluster(cfg: Config) -> None:
    """Raise a clear error when the configuration is not in cluster mode."""
    if not is_cluster(cfg):
        raise ConfigError(
            "cluster mode needs a PostgreSQL storage.url "
            "(e.g. postgresql+psycopg://charwatch@db-host/charwatch); "
            f"the storage is {_safe_url(cfg.storage.database_url)}"
        )


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url)


def conninfo(cfg: Config) -> str:
    """The storage URL as libpq takes it (``postgresql://...``, no SQLAlchemy driver)."""
    require_cluster(cfg)
    url = make_url(cfg.storage.database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def ensure_schema(cfg: Config) -> bool:
    """Create procrastinate's tables when missing, under an advisory lock so that workers
    starting together do it once; returns True when this call created them."""
    import psycopg
    from procrastinate.schema import SchemaManager

    info = conninfo(cfg)
    if info in _schema_ready:
        return False
    created = False
    with psycopg.connect(info, autocommit=True) as con:
        con.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
        try:
            row = con.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
            if not (row and row[0]):
                with con.transaction():
                    con.execute(SchemaManager.get_schema())  # type: ignore[arg-type]
                created = True
                log.info("created the task tables")
        finally:
            con.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))
    _schema_ready.add(info)
    return created


# ---------------------------------------------------------------- the app and its tasks


@dataclass
class Runtime:
    """What the tasks of one worker process share: config, store, embedder, stop flag."""

    cfg: Config
    store: Store
    batch: int = DEFAULT_BATCH
    shutdown: threading.Event = field(default_factory=threading.Event)
    _embedder: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def embedder(self) -> Any:
        """The configured embedder, loaded once per worker process."""
        with self._lock:
            if self._embedder is None:
                from charwatch.jobs import current_embedder

                self._embedder = current_embedder(self.cfg)
            return self._embedder


def _rt(context: JobContext) -> Runtime:
    rt = context.additional_context.get("charwatch")
    if not isinstance(rt, Runtime):
        raise RuntimeError("charwatch tasks run inside `charwatch worker` only")
    return rt


@contextlib.contextmanager
def _job_stop(rt: Runtime, context: JobContext) -> Iterator[threading.Event]:
    """An event set when the worker shuts down or someone asks to abort this job."""
    stop, done = threading.Event(), threading.Event()

    def watch() -> None:
        while not done.wait(0.5):
            if rt.shutdown.is_set() or context.should_abort():
                stop.set()
                return

    watcher = threading.Thread(target=watch, name="job-stop", daemon=True)
    watcher.start()
    try:
        yield stop
    finally:
        done.set()
        watcher.join()


def _crawl_task(
    context: JobContext, platform: str, kind: str, target: str, max_items: int | None = None
) -> dict[str, Any]:
    """Crawl one listing; processing of what it found is deferred by :func:`after_crawl`."""
    from charwatch import jobs
    from crawler.listing import Listing

    rt = _rt(context)
    runs = jobs.crawl(rt.cfg, rt.store, [Listing(platform, kind, target)], max_items=max_items)
    return {
        "runs": [f"{r.platform} {r.kind} {r.target}: {r.status}, {r.items_new} new" for r in runs]
    }


def _process_task(context: JobContext, limit: int | None = None) -> dict[str, Any]:
    """Process a batch of videos and match them; defer more work while videos remain."""
    from index.matcher import detect_pending
    from pipeline.retention import apply_retention
    from pipeline.worker import process_pending

    rt = _rt(context)
    cfg, store = rt.cfg, rt.store
    limit = limit or rt.batch
    waiting = claimable_videos(store)
    if not waiting and not matchable_videos(store):
        return {"process": "nothing to claim"}
    if waiting > limit:
        defer_processing(cfg)  # more than this batch: let an idle worker start on the rest
    out: dict[str, Any] = {}
    with _job_stop(rt, context) as stop:
        embedder = rt.embedder()
        stats = process_pending(cfg, store, embedder, limit=limit, progress=False, stop=stop)
        out["process"] = stats.summary().splitlines()[0]
        if not stop.is_set():
            det = detect_pending(cfg, store, embedder, limit=limit * 4, progress=False)
            out["match"] = det.summary().splitlines()[0]
            out["media_deleted"] = apply_retention(cfg, store)
    _follow_up(cfg, store)
    return out


def _match_task(context: JobContext, limit: int | None = None) -> dict[str, Any]:
    """Match embedded videos (after a character was registered, or what processing left)."""
    from index.matcher import detect_pending

    rt = _rt(context)
    det = detect_pending(
        rt.cfg, rt.store, rt.embedder(), limit=(limit or rt.batch * 4), progress=False
    )
    _follow_up(rt.cfg, rt.store)
    return {"match": det.summary().splitlines()[0]}


class ReportNotReady(Exception):
    """The report waits: its crawls or the processing backlog are not done yet."""


class _QuietWaits(logging.Filter):
    """Log a waiting report's retry as one line with the reason, not a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ReportNotReady):
            record.msg = f"{record.getMessage()} (waiting: {exc})"
            record.args = ()
            record.exc_info = None
        return True


def _report_task(
    context: JobContext,
    since: str | None = None,
    until: str | None = None,
    wait_for: list[int] | None = None,
    wait_until: str | None = None,
    then_archive: bool = False,
) -> dict[str, Any]:
    """Write a report; with ``wait_until``, first wait (by retrying) until the crawl jobs in
    ``wait_for`` ended and no video waits for processing, at most until then."""
    from charwatch import jobs

    rt = _rt(context)
    if wait_until and dt.datetime.now(dt.UTC) < _parse_time(wait_until):
        why = _report_blockers(rt.store, wait_for or [])
        if why:
            raise ReportNotReady(why)
    result = jobs.report(rt.cfg, rt.store, since=_parse_time(since), until=_parse_time(until))
    if then_archive:
        _call(rt.cfg, lambda app: _defer(app, TASK_ARCHIVE, queueing_lock=ARCHIVE_LOCK))
    return {"report": str(result.html_path), "flags": result.flags}


def _archive_task(context: JobContext) -> dict[str, Any]:
    """Bring the archive index of the configured embedder up to date."""
    from charwatch import jobs

    rt = _rt(context)
    arc = jobs.update_archive(rt.cfg, rt.store)
    return {"archive": f"{arc.embedder_id}: {arc.ntotal} vector(s)"}


def _nightly_task(context: JobContext, timestamp: int) -> dict[str, Any]:
    """The nightly fan-out for the period starting at ``timestamp``: a crawl job per watched
    listing and a report job that waits for them; once per period, even when retried."""
    from charwatch import jobs
    from storage import JobRun

    rt = _rt(context)
    cfg, store = rt.cfg, rt.store
    period = f"period {dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat()}"
    with store.session() as s:
        done = s.scalar(
            select(JobRun.id).where(
                JobRun.kind == "nightly", JobRun.target == period, JobRun.status == "ok"
            )
        )
    if done:
        return {"skipped": f"{period} already deferred its jobs (job run {done})"}
    with jobs.record_job(store, "nightly", target=period) as job:
        since = jobs.last_report_time(store) or job.started_at - dt.timedelta(days=1)
        listings = jobs.watch_listings(cfg)
        crawl_ids = [i for lst in listings if (i := defer_crawl(cfg, lst)) is not None]
        report_id = defer_report(cfg, since=since, wait_for=crawl_ids, then_archive=True)
        _follow_up(cfg, store)  # what earlier runs left waiting
        job.listings = len(listings)
        job.message = f"deferred {len(crawl_ids)} crawl job(s) and report job {report_id}"
    return {"period": period, "crawl_jobs": crawl_ids, "report_job": report_id}


def _recheck_task(context: JobContext, timestamp: int | None = None) -> dict[str, Any]:
    """Re-check that confirmed detections' videos are still up."""
    from charwatch import jobs

    rt = _rt(context)
    return {"recheck": jobs.recheck(rt.cfg, rt.store).summary()}


async def _tick_task(context: JobContext, timestamp: int) -> dict[str, Any]:
    """Once a minute for the whole cluster: requeue dead workers' jobs, defer processing or
    matching that nobody queued, defer the nightly and re-check jobs when due."""
    rt = _rt(context)
    requeued = await _requeue_stalled(context.app)
    notes = await asyncio.to_thread(_housekeeping, rt)
    return {"requeued": requeued, **notes}


def _housekeeping(rt: Runtime) -> dict[str, Any]:
    cfg, store = rt.cfg, rt.store
    notes: dict[str, Any] = {"leases_released": _sweep(store), "process": None, "match": None}
    if claimable_videos(store):
        notes["process"] = defer_processing(cfg)
    if matchable_videos(store):
        notes["match"] = defer_matching(cfg)
    now = dt.datetime.now(dt.UTC)
    if (ts := due_period(cfg, cfg.schedule.nightly, now)) is not None:
        notes["nightly"] = defer_nightly(cfg, timestamp=ts)
    if cfg.schedule.recheck and (ts := due_period(cfg, cfg.schedule.recheck, now)) is not None:
        notes["recheck"] = defer_recheck(cfg, timestamp=ts)
    return notes


async def _requeue_stalled(app: App) -> list[int]:
    """Put the running jobs of workers without a recent heartbeat back in the queue."""
    from procrastinate import exceptions
    from procrastinate.jobs import Status

    requeued = []
    for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_S):
        try:
            await app.job_manager.retry_job(job)
            requeued.append(job.id)
            log.warning("job %s (%s) of a dead worker queued again", job.id, job.task_name)
        except exceptions.ConnectorException:
            # an equal job (same queueing lock) is already queued: that one does the work
            await app.job_manager.finish_job(job, status=Status.FAILED, delete_job=False)
    return requeued


_TASKS: tuple[tuple[str, Callable[..., Any], dict[str, Any]], ...] = (
    (TASK_CRAWL, _crawl_task, {"queue": "crawl"}),
    (TASK_PROCESS, _process_task, {"queue": "process"}),
    (TASK_MATCH, _match_task, {"queue": "match"}),
    (TASK_ARCHIVE, _archive_task, {"queue": "archive", "lock": ARCHIVE_LOCK}),
    (TASK_NIGHTLY, _nightly_task, {"queue": "crawl"}),
    (TASK_RECHECK, _recheck_task, {"queue": "crawl"}),
    (TASK_TICK, _tick_task, {"queue": HOUSEKEEPING}),
)


def make_app(cfg: Config, *, pool_size: int = 4) -> App:
    """The procrastinate app on the configured PostgreSQL database, with charwatch's tasks."""
    from procrastinate import App, PsycopgConnector, RetryStrategy

    connector = PsycopgConnector(conninfo=conninfo(cfg), min_size=1, max_size=max(2, pool_size))
    app = App(connector=connector, periodic_defaults={"max_delay": 120})
    for name, fn, opts in _TASKS:
        app.task(name=name, pass_context=True, **opts)(fn)
    app.task(
        name=TASK_REPORT,
        queue="report",
        pass_context=True,
        retry=RetryStrategy(wait=REPORT_POLL_S, retry_exceptions={ReportNotReady}),
    )(_report_task)
    app.periodic(cron="* * * * *", periodic_id="tick", queueing_lock=TICK_LOCK)(
        app.tasks[TASK_TICK]
    )
    return app


# ---------------------------------------------------------------- deferring


def _call(cfg: Config, fn: Callable[[App], Awaitable[T]]) -> T:
    """Run ``fn(app)``: on the worker's event loop when called from one of its job threads,
    else on a connection of its own (CLI, scheduler, tests)."""
    active = _active
    if active is not None:
        app, loop = active
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run_coroutine_threadsafe(fn(app), loop).result(timeout=120)
        raise RuntimeError("called on the event loop: await the coroutine instead")
    ensure_schema(cfg)
    app = make_app(cfg, pool_size=2)

    async def run() -> T:
        async with app.open_async():
            return await fn(app)

    return asyncio.run(run())


async def _defer(
    app: App,
    task: str,
    *,
    queueing_lock: str | None = None,
    schedule_in: dict[str, int] | None = None,
    **kwargs: Any,
) -> int | None:
    """Defer a job; None when an equal one (same queueing lock) is already queued."""
    from procrastinate import exceptions

    opts: dict[str, Any] = {"queueing_lock": queueing_lock}
    if schedule_in:
        opts["schedule_in"] = schedule_in
    try:
        return await app.configure_task(task, **opts).defer_async(**kwargs)
    except exceptions.AlreadyEnqueued:
        return None


async def _defer_periodic(app: App, task: str, periodic_id: str, timestamp: int) -> int | None:
    """Defer ``task`` for the period starting at ``timestamp``: once per period, whoever
    asks (the database keeps one row per task, id and time); None when already deferred."""
    deferrer = app.configure_task(task, task_kwargs={"timestamp": timestamp})
    return await app.job_manager.defer_periodic_job(
        job=deferrer.job, periodic_id=periodic_id, defer_timestamp=timestamp
    )


def defer_processing(cfg: Config) -> int | None:
    """Queue a process job unless one is already queued; returns its id (None if queued)."""
    return _call(cfg, lambda app: _defer(app, TASK_PROCESS, queueing_lock=PROCESS_LOCK))


def defer_matching(cfg: Config) -> int | None:
    """Queue a match job unless one is already queued."""
    return _call(cfg, lambda app: _defer(app, TASK_MATCH, queueing_lock=MATCH_LOCK))


def defer_crawl(cfg: Config, listing: Listing, *, max_items: int | None = None) -> int | None:
    """Queue a crawl of one listing (None when that listing's crawl is already queued)."""
    return _call(
        cfg,
        lambda app: _defer(
            app,
            TASK_CRAWL,
            queueing_lock=f"charwatch:crawl:{listing.key}",
            platform=listing.platform,
            kind=listing.kind,
            target=listing.target,
            max_items=max_items,
        ),
    )


def defer_report(
    cfg: Config,
    *,
    since: dt.datetime | None = None,
    wait_for: list[int] | None = None,
    max_wait_s: float = REPORT_MAX_WAIT_S,
    then_archive: bool = False,
) -> int | None:
    """Queue a report from ``since`` that first waits for the crawl jobs ``wait_for`` and the
    processing backlog (at most ``max_wait_s``)."""
    wait_until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=max_wait_s)
    return _call(
        cfg,
        lambda app: _defer(
            app,
            TASK_REPORT,
            since=since.isoformat() if since else None,
            wait_for=list(wait_for or []),
            wait_until=wait_until.isoformat(),
            then_archive=then_archive,
        ),
    )


def defer_rescan(
    cfg: Config,
    hashtag: str,
    *,
    platforms: list[str] | None = None,
    max_items: int | None = None,
) -> dict[str, Any]:
    """Queue a crawl of one hashtag per platform and a report from now that waits for them."""
    from charwatch import jobs
    from charwatch.config import PLATFORMS

    listings = [jobs.make_listing(p, hashtag=hashtag) for p in (platforms or list(PLATFORMS))]
    started = dt.datetime.now(dt.UTC)
    crawl_ids = [defer_crawl(cfg, lst, max_items=max_items) for lst in listings]
    report_id = defer_report(cfg, since=started, wait_for=[i for i in crawl_ids if i])
    return {
        "crawl_jobs": dict(zip([lst.key for lst in listings], crawl_ids, strict=True)),
        "report_job": report_id,
    }


def defer_nightly(cfg: Config, *, timestamp: int | None = None) -> int | None:
    """Queue the nightly job of the current period (or of ``timestamp``); None when it was
    already deferred for that period, by anyone."""
    ts = timestamp if timestamp is not None else period_start(cfg, cfg.schedule.nightly)
    return _call(cfg, lambda app: _defer_periodic(app, TASK_NIGHTLY, "nightly", ts))


def defer_recheck(cfg: Config, *, timestamp: int | None = None) -> int | None:
    """Queue the re-check of the current period (once per period)."""
    ts = timestamp if timestamp is not None else period_start(cfg, cfg.schedule.recheck)
    return _call(cfg, lambda app: _defer_periodic(app, TASK_RECHECK, "recheck", ts))


def after_crawl(cfg: Config, store: Store, runs: list[CrawlRun]) -> int | None:
    """After a crawl in cluster mode: queue processing when videos wait for it. A failure
    here loses nothing (the tick defers processing within a minute), so it is only logged."""
    try:
        return defer_processing(cfg) if claimable_videos(store) else None
    except Exception as exc:  # the crawl's rows are stored; do not fail the crawl for this
        log.warning("could not queue processing after the crawl: %s", exc)
        return None


def _follow_up(cfg: Config, store: Store) -> None:
    if claimable_videos(store):
        defer_processing(cfg)
    if matchable_videos(store):
        defer_matching(cfg)


# ---------------------------------------------------------------- schedule


def _cron(expr: str, start: dt.datetime) -> Any:
    from croniter import croniter

    fields = expr.split()
    if len(fields) not in (5, 6):
        raise ConfigError(f"cron expression {expr!r} needs 5 fields (or 6 with seconds)")
    try:
        return croniter(expr, start, second_at_beginning=len(fields) == 6)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"bad cron expression {expr!r}: {exc}") from exc


def period_start(cfg: Config, expr: str, now: dt.datetime | None = None) -> int:
    """The latest time at or before ``now`` that the cron expression fires, in the
    configured time zone, as a Unix timestamp: the key of one scheduled run."""
    from zoneinfo import ZoneInfo

    now = now or dt.datetime.now(dt.UTC)
    local = now.astimezone(ZoneInfo(cfg.schedule.timezone)) + dt.timedelta(seconds=1)
    prev = _cron(expr, local).get_prev(dt.datetime)
    return int(prev.timestamp())


def due_period(cfg: Config, expr: str, now: dt.datetime | None = None) -> int | None:
    """The period to defer now: the latest fire time, when it lies within
    ``schedule.misfire_grace_s`` (a cluster that was down longer skips that run)."""
    now = now or dt.datetime.now(dt.UTC)
    ts = period_start(cfg, expr, now)
    return ts if now.timestamp() - ts <= cfg.schedule.misfire_grace_s else None


# ---------------------------------------------------------------- videos waiting for work


def _paused(store: Store) -> list[str]:
    from storage import platform_state

    return sorted(p.platform for p in platform_state.active_pauses(store))


def _waiting(store: Store, states: tuple[str, ...], *, leased_too: bool = False) -> int:
    """Videos in ``states`` of platforms not paused: those a claim could lease now
    (:func:`storage.workqueue.count_claimable`), or all of them with ``leased_too``."""
    from storage import Video, workqueue

    paused = _paused(store)
    if not leased_too:
        return workqueue.count_claimable(store, states, skip_platforms=paused)
    q = select(func.count()).select_from(Video).where(Video.state.in_(states))
    if paused:
        q = q.where(Video.platform.not_in(paused))
    with store.session() as s:
        return int(s.scalar(q) or 0)


def _sweep(store: Store) -> int:
    """Release expired and dead owners' leases (:func:`storage.workqueue.sweep`)."""
    from storage import workqueue

    return int(workqueue.sweep(store))


def _has_characters(store: Store) -> bool:
    from storage import Character

    with store.session() as s:
        return s.scalar(select(Character.id).limit(1)) is not None


def claimable_videos(store: Store) -> int:
    """Videos a process job could claim now (not leased, not backing off, platform not paused)."""
    from storage import VideoState

    return _waiting(store, (VideoState.DISCOVERED, VideoState.DOWNLOADED, VideoState.FRAMES))


def matchable_videos(store: Store) -> int:
    """Embedded videos a match job could claim now (0 while no character is registered)."""
    from storage import VideoState

    if not _has_characters(store):
        return 0
    return _waiting(store, (VideoState.EMBEDDED,))


def _report_blockers(store: Store, wait_for: list[int]) -> str:
    """Why a waiting report cannot be written yet ('' when it can)."""
    from storage import VideoState

    if wait_for:
        with store.session() as s:
            running = s.scalar(
                text(
                    "SELECT count(*) FROM procrastinate_jobs "
                    "WHERE id = ANY(:ids) AND status IN ('todo', 'doing')"
                ),
                {"ids": list(wait_for)},
            )
        if running:
            return f"{running} crawl job(s) not finished"
    states = [VideoState.DISCOVERED, VideoState.DOWNLOADED, VideoState.FRAMES]
    if _has_characters(store):
        states.append(VideoState.EMBEDDED)
    pending = _waiting(store, tuple(states), leased_too=True)
    return f"{pending} video(s) not processed" if pending else ""


def _parse_time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


# ---------------------------------------------------------------- status


def cluster_status(store: Store) -> dict[str, Any]:
    """Jobs per queue (queued, scheduled for later, running, failed, done) and the live
    workers (heartbeat within the stall timeout) with what they run."""
    out: dict[str, Any] = {"jobs": {}, "workers": []}
    with store.session() as s:
        if not s.scalar(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")):
            out["note"] = "no task tables yet (created by the first `charwatch worker`)"
            return out
        rows = s.execute(
            text(
                "SELECT queue_name, status::text AS status, "
                "coalesce(scheduled_at > now(), false) AS later, count(*) AS n "
                "FROM procrastinate_jobs GROUP BY 1, 2, 3"
            )
        ).all()
        workers = s.execute(
            text(
                "SELECT w.id, w.last_heartbeat, "
                "extract(epoch FROM now() - w.last_heartbeat) AS age_s, "
                "array_remove(array_agg(j.task_name || '#' || j.id ORDER BY j.id), NULL) AS jobs "
                "FROM procrastinate_workers w "
                "LEFT JOIN procrastinate_jobs j ON j.worker_id = w.id AND j.status = 'doing' "
                "WHERE w.last_heartbeat > now() - make_interval(secs => :stall) "
                "GROUP BY w.id ORDER BY w.id"
            ),
            {"stall": STALLED_S},
        ).all()
    names = {"todo": "queued", "doing": "running", "succeeded": "done"}
    for queue in (*QUEUES, HOUSEKEEPING):
        out["jobs"][queue] = {"queued": 0, "scheduled": 0, "running": 0, "failed": 0, "done": 0}
    for queue, status, later, n in rows:
        key = "scheduled" if status == "todo" and later else names.get(status, status)
        counts = out["jobs"].setdefault(queue, {})
        counts[key] = counts.get(key, 0) + int(n)
    out["workers"] = [
        {
            "id": int(w.id),
            "last_heartbeat": w.last_heartbeat.isoformat(),
            "heartbeat_age_s": round(float(w.age_s), 1),
            "running": list(w.jobs or []),
        }
        for w in workers
    ]
    return out


def video_workers(store: Store) -> list[dict[str, Any]] | None:
    """The live processing loops holding video leases (``storage.workers.live_workers``:
    host, pid, role, heartbeat); None when that registry is not there."""
    try:
        from storage import workers
    except ImportError:
        return None
    if not hasattr(workers, "live_workers"):
        return None
    return [_as_dict(w) for w in workers.live_workers(store)]


def _as_dict(row: Any) -> dict[str, Any]:
    import dataclasses

    if hasattr(row, "as_dict"):
        return dict(row.as_dict())
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return dataclasses.asdict(row)
    if hasattr(row, "_asdict"):
        return dict(row._asdict())
    if isinstance(row, dict):
        return dict(row)
    table = getattr(row, "__table__", None)
    if table is not None:
        return {c.name: getattr(row, c.name) for c in table.columns}
    return {"worker": str(row)}


# ---------------------------------------------------------------- the worker


def run_worker(
    cfg: Config,
    *,
    queues: list[str] | None = None,
    concurrency: int = 1,
    batch: int = DEFAULT_BATCH,
    wait: bool = True,
    name: str | None = None,
) -> int:
    """Run one worker until SIGTERM/SIGINT (or, without ``wait``, until no job is left).

    On a signal the worker takes no new job; a running process job stops at once through its
    stop event (downloads in flight finish, claimed videos are released), other jobs get
    ``GRACE_S`` to finish; what still runs after ``HARD_STOP_S`` is put back in the queue and
    the process exits.
    """
    from charwatch.jobs import open_store

    require_cluster(cfg)
    if concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    if batch < 1:
        raise ConfigError("--batch must be at least 1")
    unknown = sorted(set(queues or ()) - set(QUEUES))
    if unknown:
        raise ConfigError(f"unknown queue {unknown[0]!r} (known: {', '.join(QUEUES)})")
    ensure_schema(cfg)
    store = open_store(cfg)
    rt = Runtime(cfg=cfg, store=store, batch=batch)
    quiet = _QuietWaits()
    logging.getLogger("procrastinate.worker").addFilter(quiet)
    try:
        return asyncio.run(_serve(rt, queues, concurrency, wait, name))
    finally:
        logging.getLogger("procrastinate.worker").removeFilter(quiet)
        store.dispose()


async def _serve(
    rt: Runtime, queues: list[str] | None, concurrency: int, wait: bool, name: str | None
) -> int:
    global _active
    from procrastinate.worker import Worker

    app = make_app(rt.cfg, pool_size=concurrency + 4)
    loop = asyncio.get_running_loop()
    name = name or f"{socket.gethostname()}:{os.getpid()}"
    listen = [*queues, HOUSEKEEPING] if queues else None
    hard_stop: asyncio.Task[None] | None = None
    async with app.open_async():
        worker = Worker(
            app=app,
            queues=listen,
            name=name,
            concurrency=concurrency,
            wait=wait,
            shutdown_graceful_timeout=GRACE_S,
            install_signal_handlers=False,
            additional_context={"charwatch": rt},
            update_heartbeat_interval=HEARTBEAT_S,
            stalled_worker_timeout=STALLED_S,
        )

        def on_signal(signum: int) -> None:
            nonlocal hard_stop
            if rt.shutdown.is_set():  # a second signal: do not wait any longer
                print(f"worker {name}: signal {signum} again, stopping now", flush=True)
                asyncio.create_task(_hard_stop(app, worker, name, 0.0))
                return
            print(f"worker {name}: signal {signum}, stopping", flush=True)
            rt.shutdown.set()
            worker.stop()
            hard_stop = asyncio.create_task(_hard_stop(app, worker, name, HARD_STOP_S))

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        _active = (app, loop)
        queue_text = ", ".join(listen) if listen else "all queues"
        print(
            f"worker {name}: {queue_text}; concurrency {concurrency}, batch {rt.batch}",
            flush=True,
        )
        try:
            await worker.run()
        finally:
            _active = None
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if hard_stop is not None:
                hard_stop.cancel()
    print(f"worker {name}: stopped", flush=True)
    return 0


async def _hard_stop(app: App, worker: Any, name: str, delay: float) -> None:
    """After ``delay`` seconds: queue this worker's unfinished jobs again and exit."""
    await asyncio.sleep(delay)
    worker_id = worker.worker_id
    if worker_id is not None:
        rows = await app.connector.execute_query_all_async(
            "SELECT id FROM procrastinate_jobs WHERE worker_id = %(worker_id)s "
            "AND status = 'doing'",
            worker_id=worker_id,
        )
        for row in rows:
            await app.job_manager.retry_job_by_id_async(
                job_id=row["id"], retry_at=dt.datetime.now(dt.UTC)
            )
        await app.job_manager.unregister_worker(worker_id)
        print(f"worker {name}: {len(rows)} unfinished job(s) queued again", flush=True)
    os._exit(1)
