"""The scheduler daemon: the nightly crawl/process/report job on a cron trigger.

Run ``python scheduler.py [--config PATH]`` or ``charwatch scheduler``. Jobs live in APScheduler's
SQLAlchemy job store inside the project database, with ``coalesce`` (a missed night runs once),
a misfire grace time and ``max_instances=1`` (never twice at once). SIGTERM/SIGINT stop it
gracefully: the running job finishes or releases its current video, and the next start resumes.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from charwatch.config import Config, load_config

log = logging.getLogger("charwatch.scheduler")

NIGHTLY_JOB_ID = "nightly"


@dataclass
class _Context:
    cfg: Config
    stop: threading.Event


_context: _Context | None = None


def nightly_job() -> None:
    """The nightly job body (referenced by name from the persisted job store)."""
    from charwatch import jobs

    if _context is None:
        raise RuntimeError("scheduler context not set")
    store = jobs.open_store(_context.cfg)
    try:
        result = jobs.run_nightly(_context.cfg, store, progress=False, stop=_context.stop)
        log.info("nightly run done: report %s", getattr(result.report, "html_path", None))
    finally:
        store.dispose()


def build_scheduler(cfg: Config, stop: threading.Event) -> Any:
    """A BackgroundScheduler with the persisted nightly job (replaced on each start)."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

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
    trigger = CronTrigger.from_crontab(cfg.schedule.nightly, timezone=cfg.schedule.timezone)
    sched.add_job(
        "scheduler:nightly_job",
        trigger=trigger,
        id=NIGHTLY_JOB_ID,
        name="nightly crawl, process and report",
        replace_existing=True,
    )
    return sched


def run_scheduler(cfg: Config, *, once: bool = False) -> int:
    """Run until SIGTERM/SIGINT (or, with ``once``, run the nightly job now and return)."""
    stop = threading.Event()
    if once:
        global _context
        _context = _Context(cfg=cfg, stop=stop)
        nightly_job()
        return 0
    sched = build_scheduler(cfg, stop)

    def on_signal(signum: int, _frame: Any) -> None:
        log.warning("signal %s: stopping after the current step", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sched.start()
    job = sched.get_job(NIGHTLY_JOB_ID)
    print(f"scheduler running; next nightly run: {job.next_run_time}", flush=True)
    stop.wait()
    sched.shutdown(wait=True)
    print("scheduler stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="TOML config (default: $CHARWATCH_CONFIG)")
    parser.add_argument("--once", action="store_true", help="run the nightly job now and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return run_scheduler(load_config(args.config), once=args.once)


if __name__ == "__main__":
    sys.exit(main())
