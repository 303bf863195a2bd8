"""The jobs: crawl, process, report, rescan, nightly. The CLI and the scheduler both call these.

Each job opens nothing on its own: it gets the typed config and the store from its caller.
Heavy imports (torch, Scrapy, FAISS) happen inside the job that needs them, so ``--help`` is fast.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from charwatch.config import PLATFORMS, Config, ConfigError
from storage import CrawlRun, JobRun, ListingStatus, ReportRun, Store, utcnow

if TYPE_CHECKING:
    from crawler.listing import Listing


def open_store(cfg: Config) -> Store:
    """Open (and migrate) the configured database; the data folder is created."""
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    return Store(cfg.storage.database_url)


def make_listing(
    platform: str, *, hashtag: str = "", user: str = "", search: str = "", rss: str = ""
) -> Listing:
    """Build one listing from CLI/config words, with a clear error for a bad combination."""
    from crawler.listing import Listing

    given = [
        (k, v)
        for k, v in (("hashtag", hashtag), ("user", user), ("search", search), ("rss", rss))
        if v
    ]
    if len(given) != 1:
        raise ConfigError("give exactly one of --hashtag, --user, --search, --rss")
    return Listing(platform, *given[0])


def crawl(
    cfg: Config, store: Store, listings: list[Listing], *, max_items: int | None = None
) -> list[CrawlRun]:
    """Crawl listings with the Scrapy spiders; returns one CrawlRun per listing.

    In cluster mode (PostgreSQL storage) processing of what was found is queued for the
    workers (``charwatch.cluster.after_crawl``), wherever the crawl ran."""
    from charwatch import cluster
    from crawler.run import run_crawl

    batch = run_crawl(cfg, listings, max_items=max_items)
    with store.session() as s:
        q = select(CrawlRun).where(CrawlRun.batch == batch).order_by(CrawlRun.id)
        runs = list(s.scalars(q))
    if cluster.is_cluster(cfg):
        cluster.after_crawl(cfg, store, runs)
    return runs


@dataclass
class ProcessResult:
    """What one processing pass did."""

    process: Any = None
    detect: Any = None
    media_deleted: int = 0


def process(
    cfg: Config,
    store: Store,
    *,
    limit: int | None = None,
    progress: bool = True,
    stop: threading.Event | None = None,
) -> ProcessResult:
    """Download, sample, hash and embed pending videos, match them, and apply retention.

    Matching runs beside processing, on a thread of its own that claims each video once it is
    embedded (:func:`index.matcher.detect_pending` with ``until``), so it uses the cores that
    downloads and decoding leave idle and flags appear while a long run goes on; when
    processing ends, it matches what is left (every ``embedded`` video) and returns.
    """
    from index.matcher import detect_pending
    from pipeline.embedders import load_embedder
    from pipeline.retention import apply_retention
    from pipeline.worker import process_pending

    embedder = load_embedder(
        cfg.embed.model, precision=cfg.embed.precision, threads=cfg.process.torch_threads
    )
    result = ProcessResult()
    processed = threading.Event()
    failure: list[BaseException] = []

    def match() -> None:
        try:
            result.detect = detect_pending(
                cfg, store, embedder, limit=None, progress=progress, until=processed
            )
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            failure.append(exc)

    matcher = threading.Thread(target=match, name="match-follow", daemon=True)
    matcher.start()
    try:
        result.process = process_pending(
            cfg, store, embedder, limit=limit, progress=progress, stop=stop
        )
    except BaseException:
        # not waiting for the matcher to drain: the leases it holds expire if it is cut off
        processed.set()
        raise
    processed.set()
    matcher.join()
    if failure:
        raise failure[0]
    result.media_deleted = apply_retention(cfg, store)
    return result


def report(
    cfg: Config,
    store: Store,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    character: str | None = None,
    platform: str | None = None,
    out_dir: Path | None = None,
) -> Any:
    """Write the CSV and HTML report for a period; returns the paths written."""
    from reports.report import write_report

    return write_report(
        cfg,
        store,
        since=since,
        until=until,
        character=character,
        platform=platform,
        out_dir=out_dir,
    )


@dataclass
class RunResult:
    """A whole run (rescan or nightly): crawl statuses, processing, report."""

    started_at: dt.datetime
    job_id: int | None = None
    runs: list[CrawlRun] = field(default_factory=list)
    processed: ProcessResult | None = None
    report: Any = None

    @property
    def crawl_failures(self) -> list[CrawlRun]:
        return [r for r in self.runs if r.status in ListingStatus.FAILURES]


@contextmanager
def record_job(store: Store, kind: str, target: str | None = None) -> Iterator[JobRun]:
    """Record one job run: a ``running`` row first, its outcome and counts at the end.

    The yielded row is detached; fill its fields and they are saved when the block ends
    (``failed`` with the reason on an exception, ``stopped`` when the caller set that status).
    """
    with store.session() as s:
        job = JobRun(kind=kind, target=target, status="running", started_at=utcnow())
        s.add(job)
    try:
        yield job
    except BaseException as exc:
        job.status = "failed"
        job.message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:1000]
        raise
    else:
        if job.status == "running":
            job.status = "ok"
    finally:
        job.finished_at = utcnow()
        with store.session() as s:
            s.merge(job)


def _fill_job(job: JobRun, result: RunResult, stop: threading.Event | None) -> None:
    if result.runs:
        job.crawl_batch = result.runs[0].batch
    job.listings = len(result.runs)
    job.listings_failed = len(result.crawl_failures)
    job.videos_new = sum(r.items_new for r in result.runs)
    if result.processed is not None:
        job.processed = getattr(result.processed.process, "processed", 0)
        job.failed = getattr(result.processed.process, "failed", 0)
    if result.report is not None:
        job.flags = result.report.flags
        job.report_path = str(result.report.html_path)
    notes = [f"{r.platform} {r.kind} {r.target}: {r.status}" for r in result.crawl_failures]
    if result.processed is not None:
        paused = getattr(result.processed.process, "paused", None) or {}
        notes += [f"PAUSED {why}" for why in paused.values()]
    if notes:
        job.message = "; ".join(notes)[:2000]
    if stop is not None and stop.is_set():
        job.status = "stopped"


def rescan(
    cfg: Config,
    store: Store,
    hashtag: str,
    *,
    platforms: list[str] | None = None,
    max_items: int | None = None,
    progress: bool = True,
    stop: threading.Event | None = None,
) -> RunResult:
    """Crawl one hashtag now on the given platforms, process what is new, report from now."""
    listings = [make_listing(p, hashtag=hashtag) for p in (platforms or list(PLATFORMS))]
    with record_job(store, "rescan", target=f"#{listings[0].target}") as job:
        result = RunResult(started_at=job.started_at, job_id=job.id)
        result.runs = crawl(cfg, store, listings, max_items=max_items)
        result.processed = process(cfg, store, progress=progress, stop=stop)
        result.report = report(cfg, store, since=job.started_at)
        _fill_job(job, result, stop)
    return result


def watch_listings(cfg: Config) -> list[Listing]:
    """The configured watchlist as listings."""
    return [
        make_listing(w.platform, hashtag=w.hashtag, user=w.user, search=w.search) for w in cfg.watch
    ]


def last_report_time(store: Store) -> dt.datetime | None:
    """When the newest report was written (the start of the next nightly period)."""
    with store.session() as s:
        return s.scalar(select(ReportRun.created_at).order_by(ReportRun.created_at.desc()).limit(1))


def run_nightly(
    cfg: Config, store: Store, *, progress: bool = False, stop: threading.Event | None = None
) -> RunResult:
    """The nightly job once: crawl the watchlist, process, report since the last report."""
    with record_job(store, "nightly") as job:
        since = last_report_time(store) or job.started_at - dt.timedelta(days=1)
        result = RunResult(started_at=job.started_at, job_id=job.id)
        listings = watch_listings(cfg)
        if listings:
            result.runs = crawl(cfg, store, listings)
        if not (stop is not None and stop.is_set()):
            result.processed = process(cfg, store, progress=progress, stop=stop)
        result.report = report(cfg, store, since=since)
        _fill_job(job, result, stop)
    return result


def recheck(cfg: Config, store: Store) -> Any:
    """Re-check confirmed/notified detections' videos: still up or taken down?"""
    from pipeline.recheck import recheck_flagged

    with record_job(store, "recheck") as job:
        stats = recheck_flagged(cfg, store)
        job.processed = stats.checked
        job.message = stats.summary()
    return stats


# ---------------------------------------------------------------- detection upkeep


def current_embedder(cfg: Config) -> Any:
    """The configured embedder (``embed.model``), loaded."""
    from pipeline.embedders import load_embedder

    return load_embedder(
        cfg.embed.model, precision=cfg.embed.precision, threads=cfg.process.torch_threads
    )


def retro_scan(
    cfg: Config,
    store: Store,
    character_ids: list[int],
    *,
    reference_ids: list[int] | None = None,
    prompts: tuple[str, ...] | list[str] = (),
    embedder: Any = None,
    progress: bool = False,
) -> Any:
    """Search past videos for newly registered characters or references and match them again."""
    from index.retro import retro_scan as scan

    return scan(
        cfg,
        store,
        embedder or current_embedder(cfg),
        character_ids,
        reference_ids=reference_ids,
        prompts=prompts,
        progress=progress,
    )


def calibrate(
    cfg: Config,
    store: Store,
    *,
    character: str | None = None,
    target_fpr: float = 0.001,
    augment: int | None = None,
    progress: bool = True,
) -> Any:
    """Calibrate per-character thresholds for the configured embedder and store them.
    ``augment``: synthetic frames per reference image (default: the module's)."""
    from index.calibrate import calibrate as run
    from index.calibrate import check_request

    check_request(store, character, target_fpr)  # before loading the model
    sizes: dict[str, int] = {}
    if augment is not None:
        if augment < 1:
            raise ConfigError(f"--augment must be at least 1, not {augment}")
        sizes = {"semantic_per_ref": augment, "copy_per_ref": max(1, augment // 2)}
    return run(
        cfg,
        store,
        current_embedder(cfg),
        character=character,
        target_fpr=target_fpr,
        progress=progress,
        **sizes,
    )


def reembed(cfg: Config, store: Store, *, dry_run: bool = False) -> Any:
    """After an embedding-model change: queue videos for re-embedding with the configured
    model, delete other models' vectors and their archive indexes."""
    from index.archive import drop_archive
    from pipeline.reembed import reembed as run

    embedder = current_embedder(cfg)
    stats = run(cfg, store, embedder.id, dry_run=dry_run)
    if not dry_run:
        for model_id in stats.other_models:
            drop_archive(cfg, model_id)
    return stats


def update_archive(
    cfg: Config,
    store: Store,
    *,
    rebuild: bool = False,
    kind: str | None = None,
    prune_db_vectors: bool = False,
) -> Any:
    """Bring the archive index of the configured embedder up to date (or rebuild it); new
    vectors go to a new archive shard. ``prune_db_vectors``: then empty the database copies of
    the vectors the shards hold (``arc.pruned`` says how many)."""
    from index.archive import ArchiveIndex

    embedder = current_embedder(cfg)
    arc = ArchiveIndex.load_or_create(cfg, embedder.id, embedder.dim, kind=kind)
    if rebuild:
        arc.rebuild(store, kind=kind)
    else:
        arc.update(store)
    if arc.dirty and arc.ready:
        arc.save()
    arc.pruned = arc.prune_db_vectors(store) if prune_db_vectors else 0
    return arc
