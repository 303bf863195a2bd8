"""The scheduler daemon: the nightly crawl/process/report job and the daily re-check.

Run ``python scheduler.py [--config PATH]`` or ``charwatch scheduler``. Jobs live in APScheduler's
SQLAlchemy job store inside the project database, with ``coalesce`` (a missed night runs once),
a misfire grace time and ``max_instances=1`` (never twice at once). SIGTERM/SIGINT stop it
gracefully: the running job finishes or releases its current video, and the next start resumes.

In cluster mode (PostgreSQL storage) the jobs only queue work for ``charwatch worker``
processes, once per scheduled time whoever asks (``charwatch.cluster``); the workers' own
one-minute tick does the same, so this daemon is optional there.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from charwatch.config import Config, ConfigError, load_config

log = logging.getLogger("charwatch.scheduler")

NIGHTLY_JOB_ID = "nightly"
RECHECK_JOB_ID = "recheck"


@dataclass
class _Context:
    cfg: Config
    stop: threading.Event


_context: _Context | None = None


def _ctx() -> _Context:
    if _context is None:
        raise RuntimeError("scheduler context not set")
    return _context


def nightly_job() -> None:
    """The nightly job body (referenced by name from the persisted job store); in cluster
    mode it only queues the nightly job for the workers."""
    from charwatch import cluster, jobs

    ctx = _ctx()
    if ctx.stop.is_set():
        return
    if cluster.is_cluster(ctx.cfg):  # the workers run it; deferred once per period
        job_id = cluster.defer_nightly(ctx.cfg)
        log.info("nightly job %s", f"{job_id} queued" if job_id else "already queued")
        return
    store = jobs.open_store(ctx.cfg)
    try:
        result = jobs.run_nightly(ctx.cfg, store, progress=False, stop=ctx.stop)
        log.info("nightly run done: report %s", getattr(result.report, "html_path", None))
    finally:
        store.dispose()


def recheck_job() -> None:
    """The re-check job body: are confirmed detections' videos still up? (In cluster mode:
    queue it for the workers.)"""
    from charwatch import cluster, jobs

    ctx = _ctx()
    if ctx.stop.is_set():
        return
    if cluster.is_cluster(ctx.cfg):
        job_id = cluster.defer_recheck(ctx.cfg)
        log.info("re-check job %s", f"{job_id} queued" if job_id else "already queued")
        return
    store = jobs.open_store(ctx.cfg)
    try:
        log.info("re-check done: %s", jobs.recheck(ctx.cfg, store).summary())
    finally:
        store.dispose()


def make_trigger(expr: str, timezone: str) -> Any:
    """A cron trigger from 5 fields (min hour dom mon dow) or 6 (seconds first)."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    try:
        if len(fields) == 5:
            return CronTrigger.from_crontab(expr, timezone=timezone)
        if len(fields) == 6:
            second, minute, hour, day, month, dow = fields
            return CronTrigger(
                second=second,
                minute=minute,
                hour=hour,
                day=day,
                month=month,
                day_of_week=dow,
                timezone=timezone,
            )
    except ValueError as exc:
        raise ConfigError(f"bad cron expression {expr!r}: {exc}") from exc
    raise ConfigError(f"cron expression {expr!r} needs 5 fields (or 6 with seconds)")


def _ensure_job(sched: Any, job_id: str, func: str, name: str, trigger: Any) -> None:
    """Add the job, or keep the stored one (and its missed run time) when unchanged."""
    job = sched.get_job(job_id)
    if job is not None and str(job.trigger) == str(trigger) and job.func_ref == func:
        return
    sched.add_job(func, trigger=trigger, id=job_id, name=name, replace_existing=True)


def build_scheduler(cfg: Config, stop: threading.Event) -> Any:
    """A paused BackgroundScheduler over the persisted job store, jobs ensured."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    from charwatch import jobs

    global _context
    _context = _Context(cfg=cfg, stop=stop)
    jobs.open_store(cfg).dispose()  # create and migrate the database first
    sched = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=cfg.storage.database_url)},
        executors={"default": ThreadPoolExecutor(2)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": cfg.schedule.misfire_grace_s,
        },
        timezone=cfg.schedule.timezone,
    )
    # start paused: stored jobs load with their next run times, so a night missed while the
    # daemon was down is still due (once, coalesced) when it resumes below
    sched.start(paused=True)
    tz = cfg.schedule.timezone
    _ensure_job(
        sched,
        NIGHTLY_JOB_ID,
        "scheduler:nightly_job",
        "nightly crawl, process and report",
        make_trigger(cfg.schedule.nightly, tz),
    )
    if cfg.schedule.recheck:
        _ensure_job(
            sched,
            RECHECK_JOB_ID,
            "scheduler:recheck_job",
            "re-check confirmed detections",
            make_trigger(cfg.schedule.recheck, tz),
        )
    elif sched.get_job(RECHECK_JOB_ID):
        sched.remove_job(RECHECK_JOB_ID)
    return sched


def run_scheduler(cfg: Config, *, once: bool = False) -> int:
    """Run until SIGTERM/SIGINT (or, with ``once``, run the nightly job now and return)."""
    stop = threading.Event()
    if once:
        global _context
        _context = _Context(cfg=cfg, stop=stop)
        nightly_job()
        return 0

    def on_signal(signum: int, _frame: Any) -> None:
        log.warning("signal %s: stopping after the current step", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sched = build_scheduler(cfg, stop)
    sched.resume()
    for job in sched.get_jobs():
        print(f"scheduled {job.id}: next run {job.next_run_time}", flush=True)
    while not stop.wait(1.0):
        pass
    sched.shutdown(wait=True)
    print("scheduler stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="TOML config (default: $CHARWATCH_CONFIG)")
    parser.add_argument("--once", action="store_true", help="run the nightly job now and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return run_scheduler(load_config(args.config), once=args.once)
    except ConfigError as exc:
        print(f"scheduler: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # run the importable module, which is what the persisted job references point at
    import scheduler as _scheduler

    sys.exit(_scheduler.main())
