"""Run crawls: ``run_crawl`` starts a fresh crawler process per call; ``main`` is that process.

Each call of :func:`run_crawl` runs ``python -m crawler.run`` in a subprocess, so the Twisted
reactor is new every time and a long-lived scheduler can crawl repeatedly. The subprocess
crawls all listings in one Scrapy ``CrawlerProcess`` and writes one ``CrawlRun`` row per
listing (sharing the batch id); its log goes to ``<data_dir>/logs/crawl-<batch>.log``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from charwatch.config import Config, ConfigError, dump_toml, load_config
from crawler.listing import KINDS, SUPPORTED, Listing, normalize_target

__all__ = [
    "KINDS",
    "SUPPORTED",
    "Listing",
    "main",
    "new_batch_id",
    "normalize_target",
    "parse_listing_args",
    "run_crawl",
]

REPO_ROOT = Path(__file__).resolve().parents[1]


def new_batch_id() -> str:
    """A sortable, unique batch id, e.g. ``20261124T233000Z-3f9a1c``."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def parse_listing_args(
    platform: str | None = None,
    *,
    hashtag: str | None = None,
    user: str | None = None,
    search: str | None = None,
    rss: str | None = None,
    listings: Sequence[str] = (),
) -> list[Listing]:
    """Listings from command-line words.

    Either ``platform`` with exactly one of ``hashtag``/``user``/``search``/``rss`` (the
    platform may be ``all`` for a hashtag or search), or ``platform:kind:target`` texts in
    ``listings`` (or both). Raises :class:`ConfigError` on a bad combination.
    """
    out = [Listing.parse(text) for text in listings]
    given = [
        (k, v)
        for k, v in (("hashtag", hashtag), ("user", user), ("search", search), ("rss", rss))
        if v
    ]
    if platform or given:
        if not platform:
            raise ConfigError("a listing needs a platform")
        if len(given) != 1:
            raise ConfigError("give exactly one of hashtag, user, search, rss")
        kind, target = given[0]
        platforms = list(SUPPORTED) if platform == "all" else [platform]
        if platform == "all" and kind not in ("hashtag", "search"):
            raise ConfigError("platform 'all' works with a hashtag or a search only")
        out.extend(Listing(p, kind, target) for p in platforms)
    if not out:
        raise ConfigError("no listing given")
    return out


def finished_run(batch: str, lst: Listing, status: str, message: str) -> Any:
    """A finished ``CrawlRun`` for a listing that was not (or could not be) crawled."""
    from storage import CrawlRun, utcnow

    now = utcnow()
    return CrawlRun(
        batch=batch,
        platform=lst.platform,
        kind=lst.kind,
        target=lst.target,
        status=status,
        message=message,
        started_at=now,
        finished_at=now,
    )


def _settle_rows(
    cfg: Config, listings: Sequence[Listing], batch: str, returncode: int, log_path: Path
) -> None:
    """Make sure every listing has a finished CrawlRun row for the batch after the process."""
    from sqlalchemy import select

    from storage import CrawlRun, ListingStatus, Store, utcnow

    store = Store(cfg.storage.database_url)
    try:
        with store.session() as s:
            rows = list(s.scalars(select(CrawlRun).where(CrawlRun.batch == batch)))
            for row in rows:
                if row.status == ListingStatus.RUNNING:
                    row.status = ListingStatus.ERROR
                    row.message = (
                        f"the crawler process ended (exit {returncode}) before this listing "
                        f"finished; see {log_path}"
                    )
                    row.finished_at = utcnow()
            have = {(r.platform, r.kind, r.target) for r in rows}
            for lst in listings:
                if (lst.platform, lst.kind, lst.target) in have:
                    continue
                message = (
                    f"the crawler process failed (exit {returncode}) before starting "
                    f"this listing; see {log_path}"
                )
                s.add(finished_run(batch, lst, ListingStatus.ERROR, message))
    finally:
        store.dispose()


def run_crawl(
    cfg: Config,
    listings: list[Listing],
    *,
    max_items: int | None = None,
    batch: str | None = None,
) -> str:
    """Crawl ``listings`` in a fresh crawler subprocess; returns the batch id.

    Blocks until the crawl ends. Afterwards every listing has exactly one ``CrawlRun`` row
    with that batch id and a final status (``ok``, ``blocked``, ``login_required``,
    ``not_found``, ``layout_changed``, ``error`` or ``paused``); found videos are in ``videos``.
    A listing that ends ``blocked`` or ``login_required`` pauses its platform for
    ``platforms.<p>.cooldown_s``; the platform's later listings are recorded ``paused``.
    ``max_items`` caps items per listing (default ``crawl.max_items``).
    """
    if not listings:
        raise ConfigError("no listing to crawl")
    listings = [lst if isinstance(lst, Listing) else Listing(*lst) for lst in listings]
    if max_items is not None and max_items < 1:
        raise ConfigError("max_items must be at least 1")
    batch = batch or new_batch_id()
    logs = cfg.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"crawl-{batch}.log"
    fd, tmp_name = tempfile.mkstemp(prefix="charwatch-crawl-", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(dump_toml(cfg))
        cmd = [sys.executable, "-m", "crawler.run", "--config", tmp_name, "--batch", batch]
        if max_items is not None:
            cmd += ["--max-items", str(int(max_items))]
        for lst in listings:
            cmd += ["--listing", lst.key]
        # the written file is the whole config: env overrides were applied already
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHARWATCH_")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        with open(log_path, "ab") as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    _settle_rows(cfg, listings, batch, proc.returncode, log_path)
    return batch


def spider_class(platform: str) -> type:
    """The spider class of a platform, found by name through Scrapy's spider loader."""
    from scrapy.settings import Settings
    from scrapy.spiderloader import SpiderLoader

    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    return SpiderLoader.from_settings(settings).load(platform)


# listing outcomes that concern the whole platform: it is paused for its cool-down
PAUSING_STATUSES = ("blocked", "login_required")


def record_if_paused(cfg: Config, lst: Listing, batch: str) -> bool:
    """Record a ``paused`` CrawlRun for a listing of a platform cooling down; True if so."""
    from crawler.pipelines import shared_store
    from storage import ListingStatus, platform_state

    store = shared_store(cfg)
    pause = platform_state.active_pause(store, lst.platform)
    if pause is None:
        return False
    with store.session() as s:
        s.add(finished_run(batch, lst, ListingStatus.PAUSED, f"not crawled: {pause.describe()}"))
    return True


def pause_if_blocked(cfg: Config, lst: Listing, batch: str) -> None:
    """Pause the platform when the listing just crawled ended blocked or at a login wall."""
    from sqlalchemy import select

    from crawler.pipelines import shared_store
    from storage import CrawlRun, platform_state

    store = shared_store(cfg)
    with store.session() as s:
        run = s.scalar(
            select(CrawlRun)
            .where(
                CrawlRun.batch == batch,
                CrawlRun.platform == lst.platform,
                CrawlRun.kind == lst.kind,
                CrawlRun.target == lst.target,
            )
            .order_by(CrawlRun.id.desc())
        )
        if run is None or run.status not in PAUSING_STATUSES:
            return
        reason = f"{run.status} on {lst.key}: {run.message or ''}".strip()
    seconds = cfg.platforms.get(lst.platform).cooldown_s
    if seconds > 0:  # 0: pausing switched off
        platform_state.pause(store, lst.platform, reason, "crawl", seconds)


def crawl_in_process(
    cfg: Config, listings: Sequence[Listing], *, batch: str, max_items: int | None = None
) -> None:
    """Run the listings in one ``CrawlerProcess`` in this process (blocks; once per process).

    Platforms are crawled in parallel, but the listings of one platform one after another,
    so the platform's delay and concurrency settings hold for the whole batch.
    """
    import logging

    from scrapy.crawler import CrawlerProcess
    from scrapy.settings import Settings
    from twisted.internet.defer import DeferredList, inlineCallbacks

    log = logging.getLogger("crawler.run")
    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    settings.set("CHARWATCH_CONFIG_OBJ", cfg, priority="cmdline")
    process = CrawlerProcess(settings)

    groups: dict[str, list[Listing]] = {}
    for lst in listings:
        groups.setdefault(lst.platform, []).append(lst)

    @inlineCallbacks
    def crawl_group(group: list[Listing]):  # type: ignore[no-untyped-def]
        for lst in group:
            if record_if_paused(cfg, lst, batch):
                continue
            kwargs: dict[str, object] = {lst.kind: lst.target, "batch": batch}
            if max_items is not None:
                kwargs["max_items"] = max_items
            try:
                yield process.crawl(spider_class(lst.platform), **kwargs)
            except Exception:  # one broken listing must not stop the others
                log.exception("crawl of %s failed", lst.key)
            pause_if_blocked(cfg, lst, batch)

    def stop_reactor(_: object) -> None:
        from twisted.internet import reactor

        with contextlib.suppress(RuntimeError):  # already stopped
            reactor.stop()

    done = DeferredList([crawl_group(g) for g in groups.values()], consumeErrors=True)
    if done.called:
        return
    done.addBoth(stop_reactor)
    process.start(stop_after_crawl=False)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m crawler.run --config FILE --batch B [--max-items N] --listing P:K:T ...``"""
    ap = argparse.ArgumentParser(prog="python -m crawler.run", description=__doc__)
    ap.add_argument("--config", help="TOML config (default: $CHARWATCH_CONFIG or defaults)")
    ap.add_argument("--batch", help="batch id for the CrawlRun rows (default: a new one)")
    ap.add_argument("--max-items", type=int, help="items per listing (default crawl.max_items)")
    ap.add_argument(
        "--listing", action="append", default=[], help="platform:kind:target (repeatable)"
    )
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config)
        listings = [Listing.parse(text) for text in args.listing]
        if not listings:
            raise ConfigError("no --listing given")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    batch = args.batch or new_batch_id()
    crawl_in_process(cfg, listings, batch=batch, max_items=args.max_items)
    print(f"batch {batch}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
