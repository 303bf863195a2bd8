"""The ``charwatch`` command line: parse arguments, call a job, print the result.

Exit status 0 on success; on failure a one-line reason on stderr and a non-zero status
(1 for a failed job, 2 for bad usage, 3 when a crawl listing ended blocked or broken, 4 when a
platform is paused after a platform-wide block and its videos wait for the cool-down).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from charwatch import __version__
from charwatch.config import PLATFORMS, Config, dump_toml, load_config
from charwatch.errors import UsageError

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CRAWL_PROBLEM = 3
EXIT_PLATFORM_PAUSED = 4
STRICT_HELP = "exit 3 if any listing failed, 4 if a platform is paused"


def parse_time(text: str) -> dt.datetime:
    """Read an ISO date or datetime; a time without a zone is UTC."""
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def _emit(rows: list[dict[str, Any]], fmt: str, columns: list[str]) -> None:
    """Print ``rows`` as JSON lines, CSV (every key) or a table of ``columns``."""
    if fmt == "jsonl":
        for r in rows:
            print(json.dumps({k: _jsonable(v) for k, v in r.items()}, ensure_ascii=False))
    elif fmt == "csv":
        import csv

        w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else columns)
        w.writeheader()
        for r in rows:
            w.writerow(
                {k: " ".join(v) if isinstance(v, list) else _jsonable(v) for k, v in r.items()}
            )
    else:
        _print_table(rows, columns)


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _cell(value: Any, limit: int = 48) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)):
        value = ",".join(map(str, value))
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _print_runs(runs: Sequence[Any]) -> int:
    """Print crawl-run statuses; returns the number of listings that ended in a problem."""
    from storage import ListingStatus

    problems = 0
    for r in runs:
        mark = "ok" if r.status == ListingStatus.OK else r.status.upper()
        line = (
            f"  [{mark}] {r.platform} {r.kind} {r.target}: "
            f"{r.items_seen} seen, {r.items_new} new, {r.pages} page(s)"
        )
        if r.message:
            line += f" - {r.message}"
        if r.debug_path:
            line += f" (page saved: {r.debug_path})"
        print(line)
        if r.status in ListingStatus.FAILURES:
            problems += 1
    return problems


def _print_report(result: Any) -> None:
    print(f"HTML report: {result.html_path}")
    print(f"CSV:         {result.csv_path}")
    print(f"Flags:       {result.flags}")


# ---------------------------------------------------------------- commands


def cmd_init(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store

    store = open_store(cfg)
    print(f"data folder: {cfg.data_dir.resolve()}")
    print(f"database:    {store.url} (schema up to date)")
    if args.write_config:
        path = Path(args.write_config)
        if path.exists() and not args.force:
            raise UsageError(f"{path} exists (use --force to overwrite)")
        path.write_text(dump_toml(cfg), encoding="utf-8")
        print(f"config:      {path}")
    return 0


def cmd_characters(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store
    from index import registry

    store = open_store(cfg)
    if args.action == "add":
        before = _reference_ids(registry.get_character(store, args.name))
        ch = registry.add_character(
            cfg,
            store,
            args.name,
            franchise=args.franchise,
            aliases=args.alias or (),
            images=[Path(p) for p in args.image or ()],
            prompts=args.prompt or (),
            rights_holder=args.rights_holder,
        )
        print(f"registered {ch.name!r} ({len(ch.references)} reference image(s))")
        if not args.no_retro:
            _retro_after_registering(cfg, store, ch, before, prompts=args.prompt or ())
    elif args.action == "add-images":
        before = _reference_ids(registry.get_character(store, args.name))
        ch = registry.add_images(
            cfg, store, args.name, [Path(p) for p in args.images], negative=args.negative
        )
        print(f"{ch.name!r} now has {len(ch.references)} reference image(s)")
        if not args.no_retro:
            _retro_after_registering(cfg, store, ch, before)
    elif args.action == "import":
        added = registry.import_tree(cfg, store, Path(args.root))
        print(f"imported {len(added)} character(s) from {args.root}")
    elif args.action == "remove":
        if not registry.remove_character(cfg, store, args.name):
            raise UsageError(f"no character named {args.name!r}")
        print(f"removed {args.name!r}")
    elif args.action == "show":
        ch = registry.get_character(store, args.name)
        if ch is None:
            raise UsageError(f"no character named {args.name!r}")
        print(json.dumps(_character_dict(ch, full=True), ensure_ascii=False, indent=2))
    else:  # list
        rows = registry.list_characters(store)
        if args.format == "json":
            print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        else:
            _print_table(rows, ["name", "franchise", "aliases", "references"])
    return 0


def _reference_ids(ch: Any) -> set[int]:
    return {r.id for r in ch.references} if ch is not None else set()


def _retro_after_registering(
    cfg: Config, store: Any, ch: Any, before: set[int], prompts: Sequence[str] = ()
) -> None:
    """The retroactive scan for a character's new references (and prompts), when any past
    video has stored frame vectors to search."""
    from charwatch.jobs import retro_scan
    from index.retro import has_archived_frames

    new_refs = sorted(_reference_ids(ch) - before)
    if not new_refs and not prompts:
        return
    if not has_archived_frames(store):
        print("retroactive scan: no processed videos yet, nothing to search")
        return
    result = retro_scan(cfg, store, [ch.id], reference_ids=new_refs, prompts=tuple(prompts))
    print(f"retroactive scan: {result.summary()}")
    for d in result.created:
        print(
            f"  flagged: detection {d['detection_id']} {d['url']} "
            f"({d['match_type']}, score {d['score']:.2f})"
        )
    for d in result.removed:
        print(f"  no longer flagged: {d['url']} ({d['character']})")


def _character_dict(ch: Any, full: bool = False) -> dict[str, Any]:
    out = {
        "name": ch.name,
        "franchise": ch.franchise,
        "rights_holder": ch.rights_holder,
        "aliases": ch.aliases,
        "prompts": ch.prompts,
        "references": len(ch.references),
    }
    if full:
        out["reference_images"] = [
            {"path": r.path, "sha256": r.sha256, "negative": r.negative} for r in ch.references
        ]
    return out


def cmd_crawl(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import crawl, make_listing, open_store

    store = open_store(cfg)
    listing = make_listing(
        args.platform, hashtag=args.hashtag, user=args.user, search=args.search, rss=args.rss
    )
    runs = crawl(cfg, store, [listing], max_items=args.max_items)
    print(f"crawled {len(runs)} listing(s):")
    problems = _print_runs(runs)
    if not runs:
        print("the crawl recorded no listing (see the crawl log under data/logs)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_CRAWL_PROBLEM if problems else 0


def cmd_videos(cfg: Config, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from charwatch.jobs import open_store
    from storage import Video

    store = open_store(cfg)
    with store.session() as s:
        q = select(Video).order_by(Video.id)
        if args.platform:
            q = q.where(Video.platform == args.platform)
        if args.since:
            q = q.where(Video.last_seen >= args.since)
        if args.state:
            q = q.where(Video.state == args.state)
        videos = list(s.scalars(q))
    cols = [
        "platform",
        "platform_id",
        "url",
        "author",
        "caption",
        "hashtags",
        "posted_at",
        "view_count",
        "like_count",
        "duration_s",
        "ai_label",
        "listing",
        "state",
        "attempts",
        "error",
        "first_seen",
        "last_seen",
    ]
    rows = [{c: getattr(v, c) for c in cols} for v in videos]
    _emit(rows, args.format, ["platform", "platform_id", "author", "caption", "state", "error"])
    return 0


def cmd_runs(cfg: Config, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from charwatch.jobs import open_store
    from storage import CrawlRun

    store = open_store(cfg)
    if args.jobs:
        return _print_job_runs(store, args)
    with store.session() as s:
        runs = list(s.scalars(select(CrawlRun).order_by(CrawlRun.id.desc()).limit(args.limit)))
    cols = [
        "id",
        "batch",
        "platform",
        "kind",
        "target",
        "status",
        "items_seen",
        "items_new",
        "pages",
        "message",
        "debug_path",
        "started_at",
        "finished_at",
    ]
    rows = [{c: getattr(r, c) for c in cols} for r in runs]
    _emit(
        rows,
        args.format,
        ["id", "platform", "kind", "target", "status", "items_seen", "items_new", "started_at"],
    )
    if args.format == "table":
        _print_pauses(store)
    return 0


def _print_pauses(store: Any) -> int:
    """Print the platforms cooling down after a block; returns how many."""
    from storage import platform_state

    pauses = platform_state.active_pauses(store)
    for pause in pauses:
        print(f"PAUSED: {pause.describe()}")
    return len(pauses)


def cmd_status(cfg: Config, args: argparse.Namespace) -> int:
    from sqlalchemy import func, select

    from charwatch.jobs import open_store
    from storage import CrawlRun, PlatformState, Video, utcnow

    store = open_store(cfg)
    now = utcnow()
    with store.session() as s:
        counts = s.execute(
            select(Video.platform, Video.state, func.count()).group_by(Video.platform, Video.state)
        ).all()
        states = {r.platform: r for r in s.scalars(select(PlatformState))}
        last = {}
        for run in s.scalars(select(CrawlRun).order_by(CrawlRun.id.desc()).limit(500)):
            last.setdefault(run.platform, run)
    queue: dict[str, dict[str, int]] = {}
    for platform, state, n in counts:
        queue.setdefault(platform, {})[state] = n
    rows = []
    for name in PLATFORMS:
        st = states.get(name)
        paused = st is not None and st.paused_until is not None and st.paused_until > now
        q = queue.get(name, {})
        run = last.get(name)
        rows.append(
            {
                "platform": name,
                "status": "PAUSED" if paused else "ok",
                "paused_until": st.paused_until if paused and st else None,
                "reason": st.pause_reason if paused and st else "",
                "queued": sum(q.get(k, 0) for k in ("discovered", "downloaded", "frames")),
                "done": sum(q.get(k, 0) for k in ("embedded", "matched")),
                "failed": q.get("failed", 0),
                "errors_in_a_row": st.consecutive_errors if st else 0,
                "last_crawl": f"{run.status} {run.kind} {run.target}" if run else "",
                "last_crawl_at": run.started_at if run else None,
            }
        )
    videos: dict[str, int] = {}
    for _platform, state, n in counts:
        videos[state] = videos.get(state, 0) + n
    paused = [
        {"platform": r["platform"], "until": r["paused_until"], "reason": r["reason"]}
        for r in rows
        if r["status"] == "PAUSED"
    ]
    code = EXIT_PLATFORM_PAUSED if paused else 0
    extra = _status_extra(cfg, store)
    if args.format == "json":
        doc = {"platforms": rows, "videos": videos, "paused": paused, **extra}
        print(json.dumps(doc, ensure_ascii=False, indent=2, default=_json_default))
        return code
    cols = ["platform", "status", "paused_until", "queued", "done", "failed", "last_crawl"]
    _emit(rows, args.format, cols)
    if args.format == "table":
        for r in rows:
            if r["status"] == "PAUSED":
                print(f"{r['platform']}: {r['reason']}")
        _print_status_extra(videos, extra)
    return code


def _json_default(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def _status_extra(cfg: Config, store: Any) -> dict[str, Any]:
    """Live workers, and in cluster mode the task engine's jobs per queue and its workers."""
    from charwatch import cluster

    out: dict[str, Any] = {"cluster": cluster.is_cluster(cfg)}
    try:
        workers = cluster.video_workers(store)
    except Exception as exc:  # status must still show the rest
        logging.getLogger(__name__).warning("cannot list workers: %s", exc)
        workers = None
    if out["cluster"]:
        jobs = cluster.cluster_status(store)
        out["jobs"] = jobs["jobs"]
        out["job_workers"] = jobs["workers"]
        if "note" in jobs:
            out["note"] = jobs["note"]
    out["workers"] = workers if workers is not None else out.get("job_workers", [])
    return out


def _print_status_extra(videos: dict[str, int], extra: dict[str, Any]) -> None:
    from storage import VideoState

    states = [*VideoState.ALL, *sorted(set(videos) - set(VideoState.ALL))]
    print("videos: " + ", ".join(f"{s} {videos.get(s, 0)}" for s in states))
    workers = extra.get("workers") or []
    print(f"workers: {len(workers)} live")
    for w in workers:
        who = w.get("owner") or f"job worker {w.get('id')}"
        role = f" {w['role']}" if w.get("role") else ""
        age = w.get("age_s", w.get("heartbeat_age_s"))
        print(f"  {who}{role} (heartbeat {age} s ago)")
    if not extra.get("cluster"):
        return
    if extra.get("note"):
        print(f"jobs: {extra['note']}")
        return
    jobs = extra.get("jobs") or {}
    print("jobs:")
    _print_table(
        [{"queue": q, **counts} for q, counts in jobs.items()],
        ["queue", "queued", "scheduled", "running", "failed", "done"],
    )
    job_workers = extra.get("job_workers") or []
    print(f"job workers: {len(job_workers)} live")
    for w in job_workers:
        running = ", ".join(w["running"]) or "idle"
        print(f"  #{w['id']}: {running} (heartbeat {w['heartbeat_age_s']} s ago)")


def cmd_resume(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store
    from storage import platform_state

    store = open_store(cfg)
    if platform_state.resume(store, args.platform):
        print(f"{args.platform}: pause lifted; its queued videos are processed by the next run")
    else:
        print(f"{args.platform} was not paused")
    return 0


def _print_job_runs(store: Any, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from storage import JobRun

    with store.session() as s:
        jobs = list(s.scalars(select(JobRun).order_by(JobRun.id.desc()).limit(args.limit)))
    cols = [
        "id",
        "kind",
        "target",
        "status",
        "crawl_batch",
        "listings",
        "listings_failed",
        "videos_new",
        "processed",
        "failed",
        "flags",
        "report_path",
        "message",
        "started_at",
        "finished_at",
    ]
    rows = [{c: getattr(j, c) for c in cols} for j in jobs]
    _emit(
        rows,
        args.format,
        ["id", "kind", "status", "listings", "videos_new", "processed", "flags", "started_at"],
    )
    return 0


def cmd_recheck(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store, recheck

    stats = recheck(cfg, open_store(cfg))
    print(f"re-check: {stats.summary()}")
    for change in stats.changes:
        print(f"  {change}")
    return 0


def _print_process(result: Any) -> None:
    p, d = result.process, result.detect
    print(f"processed: {p.summary() if hasattr(p, 'summary') else p}")
    print(f"detection: {d.summary() if hasattr(d, 'summary') else d}")
    if result.media_deleted:
        print(f"retention: deleted {result.media_deleted} media file(s) of unflagged videos")


def cmd_process(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store, process

    store = open_store(cfg)
    stop = _stop_on_signals()
    result = process(cfg, store, limit=args.limit, progress=not args.quiet, stop=stop)
    _print_process(result)
    return EXIT_PLATFORM_PAUSED if getattr(result.process, "paused", None) else 0


def cmd_report(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store, report

    store = open_store(cfg)
    result = report(
        cfg,
        store,
        since=args.since,
        until=args.until,
        character=args.character,
        platform=args.platform,
        out_dir=Path(args.out) if args.out else None,
    )
    _print_report(result)
    return 0


def cmd_evidence(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store
    from reports.evidence import export_evidence

    store = open_store(cfg)
    path = export_evidence(cfg, store, args.detection_id, Path(args.out), zip=args.zip)
    print(f"evidence: {path}")
    return 0


def _print_run(result: Any) -> int:
    problems = _print_runs(result.runs)
    if result.processed is not None:
        _print_process(result.processed)
    _print_report(result.report)
    return problems


def cmd_rescan(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch import cluster
    from charwatch.jobs import open_store, rescan

    store = open_store(cfg)
    platforms = [args.platform] if args.platform else None
    if cluster.is_cluster(cfg):  # the workers crawl, process and report
        queued = cluster.defer_rescan(
            cfg, args.hashtag, platforms=platforms, max_items=args.max_items
        )
        for key, job_id in queued["crawl_jobs"].items():
            print(f"crawl {key}: " + (f"job {job_id} queued" if job_id else "already queued"))
        print(f"report: job {queued['report_job']} queued (written once the workers are done)")
        return 0
    result = rescan(
        cfg,
        store,
        args.hashtag,
        platforms=platforms,
        max_items=args.max_items,
        progress=not args.quiet,
        stop=_stop_on_signals(),
    )
    return _run_exit(result, _print_run(result), args.strict)


def _run_exit(result: Any, problems: int, strict: bool) -> int:
    """3 with --strict when a listing failed; 4 with --strict when a platform is paused."""
    if not strict:
        return 0
    if problems:
        return EXIT_CRAWL_PROBLEM
    paused = result.processed is not None and getattr(result.processed.process, "paused", None)
    return EXIT_PLATFORM_PAUSED if paused else 0


def cmd_run_nightly(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch import cluster
    from charwatch.jobs import open_store, run_nightly

    store = open_store(cfg)
    if cluster.is_cluster(cfg):  # queue this period's nightly job for the workers, once
        job_id = cluster.defer_nightly(cfg)
        print(
            f"nightly: job {job_id} queued for the workers"
            if job_id
            else "nightly: already queued for this period (it runs once per period)"
        )
        return 0
    if not cfg.watch:
        print("no [[watch]] entries in the config: processing and reporting only", file=sys.stderr)
    result = run_nightly(cfg, store, progress=not args.quiet, stop=_stop_on_signals())
    return _run_exit(result, _print_run(result), args.strict)


def cmd_fixture_server(cfg: Config, args: argparse.Namespace) -> int:
    from fixture_platform.server import serve_forever

    media = Path(args.media_dir) if args.media_dir else cfg.data_dir / "fixture-media"
    print(f"fixture platform on http://127.0.0.1:{args.port} (Ctrl-C to stop)", flush=True)
    print("point platforms.*.base_url at it, e.g.", flush=True)
    print(f"  CHARWATCH_PLATFORMS__TIKTOK__BASE_URL=http://127.0.0.1:{args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        serve_forever("127.0.0.1", args.port, media)
    return 0


def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.demo import run_demo

    outcome = run_demo(
        cfg, data_dir=Path(args.data_dir) if args.data_dir else None, progress=not args.quiet
    )
    return 0 if outcome.ok or not args.strict else EXIT_FAILED


def cmd_worker(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.cluster import run_worker

    queues = [q.strip() for q in (args.queues or "").split(",") if q.strip()] or None
    for name in ("procrastinate", "charwatch"):
        logging.getLogger(name).setLevel(logging.INFO)
    return run_worker(
        cfg,
        queues=queues,
        concurrency=args.concurrency,
        batch=args.batch,
        wait=not args.burst,
        name=args.name,
    )


def cmd_scheduler(cfg: Config, args: argparse.Namespace) -> int:
    from scheduler import run_scheduler

    return run_scheduler(cfg, once=args.once)


def cmd_doctor(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.doctor import run_doctor

    return 0 if run_doctor(cfg, platforms=args.platform, as_json=args.json) else EXIT_FAILED


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM/SIGINT so long jobs finish or release the current video."""
    import signal

    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return stop

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        print(f"\nsignal {signum}: finishing the current step (again to abort)", file=sys.stderr)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def cmd_detections(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store
    from index.review import list_detections

    rows = list_detections(
        open_store(cfg), state=args.state, character=args.character, limit=args.limit
    )
    _emit(
        rows,
        args.format,
        [
            "id",
            "character",
            "platform",
            "author",
            "match_type",
            "score",
            "review_state",
            "detected_at",
            "url",
        ],
    )
    return 0


def cmd_review(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store
    from index.review import set_review_state

    change = set_review_state(open_store(cfg), args.detection_id, args.state, note=args.note)
    line = f"detection {change.detection_id}: {change.old_state} -> {change.new_state}"
    if change.note:
        line += f" (note: {change.note})"
    print(line)
    return 0


def cmd_allow(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store
    from index import allowlist

    store = open_store(cfg)
    if args.action == "add":
        row = allowlist.add_allowed(
            store, args.platform, args.author, character=args.character, note=args.note
        )
        print(f"allowed {row['platform']} @{row['author']} for {row['scope']} (entry {row['id']})")
    elif args.action == "remove":
        row = allowlist.remove_allowed(store, args.entry_id)
        print(f"removed entry {row['id']}: {row['platform']} @{row['author']} ({row['scope']})")
    else:
        rows = allowlist.list_allowed(store)
        _emit(rows, args.format, ["id", "platform", "author", "scope", "note", "created_at"])
    return 0


def cmd_calibrate(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import calibrate, open_store

    store = open_store(cfg)
    if args.show:
        from index.calibrate import stored_thresholds

        rows = stored_thresholds(store)
        _print_table(
            rows,
            ["character", "model_id", "signal", "threshold", "target_fpr", "recall", "fpr"],
        )
        return 0
    results = calibrate(
        cfg,
        store,
        character=args.character,
        target_fpr=args.target_fpr,
        augment=args.augment,
        progress=not args.quiet,
    )
    print(f"calibrated {len(results)} threshold(s), target false-positive rate {args.target_fpr}:")
    _print_table(
        [r.row() for r in results],
        ["character", "signal", "threshold", "default", "recall", "fpr", "positives", "negatives"],
    )
    for r in results:
        if r.note:
            print(f"  {r.character} {r.signal}: {r.note}")
    return 0


def cmd_reembed(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import open_store, reembed

    stats = reembed(cfg, open_store(cfg), dry_run=args.dry_run)
    print(stats.summary())
    for model, n in sorted(stats.other_models.items()):
        print(f"  {model}: {n} vector(s)")
    if stats.videos and not args.dry_run:
        print("run `charwatch process` to embed and match them again")
    return 0


def cmd_archive(cfg: Config, args: argparse.Namespace) -> int:
    from charwatch.jobs import current_embedder, open_store, update_archive
    from index.archive import archive_status, saved_archives

    store = open_store(cfg)
    if args.action == "rebuild":
        arc = update_archive(cfg, store, rebuild=True, kind=args.kind)
        d = arc.describe()
        print(
            f"archive rebuilt for {d['embedder_id']}: {d['ntotal']} vector(s), "
            f"{d['kind']} {json.dumps(d['params']) if d['params'] else ''}".rstrip()
        )
        return 0
    if args.action == "update":
        arc = update_archive(cfg, store, prune_db_vectors=args.prune_db_vectors)
        print(f"archive of {arc.embedder_id}: {arc.ntotal} vector(s) ({arc.kind})")
        if args.prune_db_vectors:
            print(f"database copies emptied: {getattr(arc, 'pruned', 0)} (kept in the shards)")
        return 0
    embedder = current_embedder(cfg)
    status = archive_status(cfg, store, embedder.id)
    status["saved"] = [
        {k: a.get(k) for k in ("embedder_id", "kind", "ntotal", "updated_at", "error") if k in a}
        for a in saved_archives(cfg)
    ]
    if args.format == "json":
        print(json.dumps(status, ensure_ascii=False, indent=2, default=str))
        return 0
    arc = status["archive"]
    print(f"embedder:           {status['embedder_id']}")
    if arc:
        print(
            f"archive index:      {arc.get('kind')} with {arc.get('ntotal')} vector(s)"
            f" (updated {arc.get('updated_at')})"
        )
    else:
        print("archive index:      none yet (built on the next retroactive scan or update)")
    if "shards" in status:
        print(f"archive shards:     {status['shards']}")
    if status.get("pruned_db_vectors"):
        print(f"pruned from the db: {status['pruned_db_vectors']} vector(s), kept in the shards")
    print(
        f"stored vectors:     {status['store_vectors']} ({status['pending_vectors']} not indexed)"
    )
    print(
        f"to re-embed:        {status['frames_to_reembed']} frame(s) in "
        f"{status['videos_to_reembed']} video(s) have no vector of this embedder"
    )
    for model, n in sorted(status["other_models"].items()):
        print(f"other model:        {model}: {n} vector(s) (run `charwatch reembed`)")
    return 0


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="charwatch",
        description=(
            "Watch TikTok, YouTube Shorts and Instagram Reels for unlicensed uses of registered "
            "characters: crawl listings, download and fingerprint new videos, match them against "
            "the character registry and write CSV/HTML reports."
        ),
        epilog=(
            "Configuration: --config PATH or $CHARWATCH_CONFIG (TOML); every key can be overridden "
            "with CHARWATCH_<SECTION>__<KEY>, e.g. CHARWATCH_STORAGE__DATA_DIR=/srv/charwatch. "
            "Start with `charwatch demo` to see the whole chain on the built-in fixture platform."
        ),
    )
    p.add_argument("--config", help="TOML config file (default: $CHARWATCH_CONFIG, else defaults)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more and show tracebacks")
    p.add_argument("--version", action="version", version=f"charwatch {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_: str, func: Any, desc: str | None = None) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=desc or help_)
        sp.set_defaults(func=func)
        return sp

    sp = add("init", "create the data folder and database (and optionally a config file)", cmd_init)
    sp.add_argument("--write-config", metavar="PATH", help="write the effective config as TOML")
    sp.add_argument("--force", action="store_true", help="overwrite an existing config file")

    sp = add(
        "characters",
        "manage the character registry",
        cmd_characters,
        "Register characters with reference images, aliases and text prompts.",
    )
    csub = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = csub.add_parser("add", help="register a character", description="Register a character.")
    a.add_argument("name", help="the character's display name")
    a.add_argument("--franchise", help="franchise or series name")
    a.add_argument("--rights-holder", help="who owns the rights")
    a.add_argument("--alias", action="append", help="another name (repeatable; any language)")
    a.add_argument("--image", action="append", help="reference image file (repeatable)")
    a.add_argument("--prompt", action="append", help="text prompt for CLIP models (repeatable)")
    a.add_argument(
        "--no-retro",
        action="store_true",
        help="skip the retroactive scan of already processed videos",
    )
    a = csub.add_parser("add-images", help="add reference images to a character")
    a.add_argument("name", help="a registered character's name (case and width insensitive)")
    a.add_argument("images", nargs="+", help="image files (png, jpg, webp)")
    a.add_argument("--negative", action="store_true", help="look-alikes that must NOT match")
    a.add_argument(
        "--no-retro",
        action="store_true",
        help="skip the retroactive scan of already processed videos",
    )
    a = csub.add_parser(
        "import",
        help="import refs/<franchise>/<character>/*.png (+ optional character.toml)",
        description="Register every <franchise>/<character>/ folder below ROOT with its images; "
        "look-alikes that must not match go in <character>/negative/. An optional "
        "character.toml beside the images may set name, franchise, aliases, prompts and "
        "rights_holder. Importing the same tree again adds nothing.",
    )
    a.add_argument("root", help="the folder holding <franchise>/<character>/ folders")
    a = csub.add_parser("list", help="list registered characters")
    a.add_argument("--format", choices=["table", "json"], default="table")
    a = csub.add_parser("show", help="show one character")
    a.add_argument("name", help="a registered character's name (case and width insensitive)")
    a = csub.add_parser("remove", help="remove a character and its references")
    a.add_argument("name", help="a registered character's name (case and width insensitive)")

    sp = add(
        "crawl",
        "crawl one listing (hashtag, user feed or search) and store its videos",
        cmd_crawl,
        "Crawl one listing with the platform's spider and store new videos (deduplicated). "
        "Exit status 3 when the listing was blocked, needs login, was not found or changed layout.",
    )
    sp.add_argument("--platform", required=True, choices=PLATFORMS)
    g = sp.add_mutually_exclusive_group(required=True)
    g.add_argument("--hashtag", default="", help="hashtag/tag name (with or without #)")
    g.add_argument("--user", default="", help="account handle (leading @ optional)")
    g.add_argument("--search", default="", help="search query")
    g.add_argument("--rss", default="", help="YouTube channel or playlist id (Atom feed)")
    sp.add_argument("--max-items", type=int, help="stop after this many items")

    sp = add("videos", "list stored videos", cmd_videos)
    sp.add_argument("--platform", choices=PLATFORMS)
    sp.add_argument("--since", type=parse_time, help="last seen at or after (ISO)")
    sp.add_argument("--state", help="only videos in this processing state")
    sp.add_argument("--format", choices=["table", "csv", "jsonl"], default="table")

    sp = add(
        "runs",
        "list crawl runs (one row per listing crawled) or job runs",
        cmd_runs,
        "List crawl runs, one record per listing crawled with its status (ok, blocked, "
        "login_required, not_found, layout_changed, error, paused), or with --jobs the nightly, "
        "rescan and re-check runs with their counts and report paths. Paused platforms are "
        "listed after the table.",
    )
    sp.add_argument("--jobs", action="store_true", help="list job runs instead of crawl runs")
    sp.add_argument("--format", choices=["table", "jsonl"], default="table")
    sp.add_argument("--limit", type=int, default=50)

    sp = add(
        "status",
        "per platform: paused or not, queued/done/failed videos, the last crawl",
        cmd_status,
        "Show each platform's state: whether it is paused after a platform-wide block (a 429, "
        "a bot check, a login wall, a missing JS runtime) and until when, its videos by state, "
        "and its last crawl; then videos per state and the live workers, and in cluster mode "
        "the jobs queued, running and failed per queue. --format json prints all of it as one "
        "JSON document. Exit status 4 when a platform is paused.",
    )
    sp.add_argument("--format", choices=["table", "jsonl", "json"], default="table")

    sp = add(
        "resume",
        "lift a platform's pause now (after fixing cookies, proxy or set-up)",
        cmd_resume,
        "End a platform's cool-down early; its queued videos are processed by the next run.",
    )
    sp.add_argument("platform", choices=PLATFORMS)

    sp = add(
        "process",
        "download, fingerprint and match pending videos",
        cmd_process,
        "Download pending videos (yt-dlp), sample frames (ffmpeg), hash (PDQ) and embed them, "
        "then match against the registry. Safe to stop and rerun: work resumes where it stopped.",
    )
    sp.add_argument("--limit", type=int, help="process at most N videos")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    sp = add("report", "write the CSV and HTML report", cmd_report)
    sp.add_argument("--since", type=parse_time, help="flags detected at or after (ISO)")
    sp.add_argument("--until", type=parse_time, help="flags detected before (ISO)")
    sp.add_argument("--character", help="only this character")
    sp.add_argument("--platform", choices=PLATFORMS)
    sp.add_argument("--out", help="output folder (default: <data_dir>/reports)")

    sp = add("evidence", "export the evidence bundle of one detection", cmd_evidence)
    sp.description = (
        "Write what a takedown notice needs: the video file and its sha256, the raw listing JSON, "
        "the frame thumbnails, capture times and URLs."
    )
    sp.add_argument("detection_id", type=int, help="the detection id (see `charwatch detections`)")
    sp.add_argument("--out", required=True, help="output folder")
    sp.add_argument("--zip", action="store_true", help="write a .zip instead of a folder")

    from index.review import STATES

    sp = add(
        "detections",
        "list detections (flags) with their review state",
        cmd_detections,
        "List detections newest first: character, video, match type, score and review state.",
    )
    sp.add_argument("--state", choices=STATES, help="only detections in this review state")
    sp.add_argument("--character", help="only this character (exact name)")
    sp.add_argument("--limit", type=int, help="at most N rows")
    sp.add_argument("--format", choices=["table", "jsonl"], default="table")

    sp = add(
        "review",
        "record a review verdict on a detection",
        cmd_review,
        "Move a detection through the review states: new -> needs_review -> confirmed or "
        "rejected -> notice_sent -> removed. Moves the states do not allow are refused. "
        "Calibration uses the confirmed and rejected verdicts.",
    )
    sp.add_argument("detection_id", type=int, help="the detection id (see `charwatch detections`)")
    g = sp.add_mutually_exclusive_group(required=True)
    for flag, state, text in (
        ("--needs-review", "needs_review", "route it to a person"),
        ("--confirm", "confirmed", "it is an unlicensed use"),
        ("--reject", "rejected", "it is a false alarm"),
        ("--notice-sent", "notice_sent", "a takedown notice was sent"),
        ("--removed", "removed", "the platform took the video down"),
    ):
        g.add_argument(flag, dest="state", action="store_const", const=state, help=text)
    sp.add_argument("--note", help="a note kept with the verdict")

    sp = add(
        "allow",
        "manage the allow-list of licensed accounts",
        cmd_allow,
        "Licensed accounts (the rights holder's own channels, partners) are never flagged, "
        "for every character or for one.",
    )
    asub = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = asub.add_parser("add", help="allow an account", description="Allow an account.")
    a.add_argument("--platform", required=True, choices=PLATFORMS, help="the platform")
    a.add_argument("--author", required=True, help="account handle (leading @ optional)")
    a.add_argument("--character", help="only for this character (default: every character)")
    a.add_argument("--note", help="why (licence, partner name)")
    a = asub.add_parser("list", help="list allowed accounts")
    a.add_argument("--format", choices=["table", "jsonl"], default="table")
    a = asub.add_parser("remove", help="remove an entry by id (see `allow list`)")
    a.add_argument("entry_id", type=int)

    sp = add(
        "calibrate",
        "set per-character thresholds to a target false-positive rate",
        cmd_calibrate,
        "Score augmented reference images (positives) and background, look-alike, rejected and "
        "unflagged frames (negatives) with the real signals, and store per character and "
        "signal the threshold that keeps false positives at the target rate, for the "
        "configured embedder.",
    )
    sp.add_argument("--character", help="only this character (default: all)")
    sp.add_argument(
        "--target-fpr",
        type=float,
        default=0.001,
        help="target false-positive rate per frame (default: 0.001)",
    )
    sp.add_argument(
        "--augment",
        type=int,
        metavar="N",
        help="augmented frames per reference image (default: 4; more is slower and gives a "
        "finer recall estimate)",
    )
    sp.add_argument("--show", action="store_true", help="list the stored thresholds and exit")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    sp = add(
        "reembed",
        "queue every video for re-embedding after an embedding-model change",
        cmd_reembed,
        "Send videos whose frames have no vector of the configured embedder back to the work "
        "queue (to re-embed their stored frames, or to re-sample or re-download them when the "
        "files are gone) and delete the vectors of other models, so models never mix. "
        "Then run `charwatch process`.",
    )
    sp.add_argument("--dry-run", action="store_true", help="only count what would change")

    sp = add(
        "archive",
        "status, update or rebuild of the archive index of all frame vectors",
        cmd_archive,
        "The archive index holds every stored frame vector of the configured embedder; the "
        "retroactive scan searches it when a character is registered. Exact (flat) below "
        "50,000 vectors, IVF above; updated incrementally.",
    )
    asub = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = asub.add_parser("status", help="what the archive holds, and what needs re-embedding")
    a.add_argument("--format", choices=["text", "json"], default="text")
    a = asub.add_parser("update", help="add the vectors stored since the last update")
    a.add_argument(
        "--prune-db-vectors",
        action="store_true",
        help="then empty the database copies of vectors the archive shards hold",
    )
    a = asub.add_parser("rebuild", help="build the archive again from the store")
    a.add_argument(
        "--kind",
        choices=["auto", "flat", "ivf", "hnsw"],
        help="index kind (default: keep the saved choice, else auto)",
    )

    sp = add(
        "rescan",
        "crawl a hashtag now, process and report (on-demand)",
        cmd_rescan,
        "Crawl a hashtag on one or all platforms, process the new videos and write a report. "
        "In cluster mode (PostgreSQL storage) the crawls and the report are queued for the "
        "workers instead.",
    )
    sp.add_argument("--hashtag", required=True)
    sp.add_argument("--platform", choices=PLATFORMS, help="default: all platforms")
    sp.add_argument("--max-items", type=int)
    sp.add_argument("--strict", action="store_true", help=STRICT_HELP)
    sp.add_argument("-q", "--quiet", action="store_true")

    sp = add(
        "run-nightly",
        "run the nightly job once (for cron/systemd timers)",
        cmd_run_nightly,
        "Crawl the watchlist, process and report since the last report. In cluster mode "
        "(PostgreSQL storage) queue the nightly job of the current period for the workers "
        "instead (once per period, whoever asks).",
    )
    sp.add_argument("--strict", action="store_true", help=STRICT_HELP)
    sp.add_argument("-q", "--quiet", action="store_true")

    add(
        "recheck",
        "re-check that confirmed detections' videos are still up",
        cmd_recheck,
        "Visit the URLs of detections reviewed as confirmed (or notice sent) and record whether "
        "each video is still up, removed, or could not be checked.",
    )

    sp = add("scheduler", "run the scheduler daemon (nightly crawls, re-checks)", cmd_scheduler)
    sp.add_argument("--once", action="store_true", help="run due jobs once and exit")

    from charwatch.cluster import DEFAULT_BATCH, QUEUES

    sp = add(
        "worker",
        "run one cluster worker (PostgreSQL storage) until SIGTERM",
        cmd_worker,
        "Run one worker of the task engine on the configured PostgreSQL database: crawl, "
        "process, match, report and archive jobs, and every minute the housekeeping tick "
        "(requeue dead workers' jobs, queue waiting work, the nightly and re-check jobs when "
        "due). Start one or more per machine. SIGTERM/SIGINT stop it gracefully within a "
        "minute: a running process job releases its videos, other jobs finish or are queued "
        "again.",
    )
    sp.add_argument(
        "--concurrency", type=int, default=1, help="jobs run at once (threads; default 1)"
    )
    sp.add_argument(
        "--queues",
        metavar="Q[,Q...]",
        help=f"only these queues (of {','.join(QUEUES)}; default: all)",
    )
    sp.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        help=f"videos per process job (default {DEFAULT_BATCH})",
    )
    sp.add_argument("--name", help="worker name in logs (default: host:pid)")
    sp.add_argument(
        "--burst", action="store_true", help="exit when no job is left instead of waiting"
    )

    sp = add(
        "doctor",
        "check the set-up: JS runtime, impersonation, cookies, proxies, browser, ffmpeg, database",
        cmd_doctor,
        "Check locally (no platform is contacted) what downloads and crawls need. Exit status 1 "
        "when a check fails; warnings still exit 0.",
    )
    sp.add_argument("--platform", action="append", choices=PLATFORMS, help="only this platform")
    sp.add_argument("--json", action="store_true", help="print the results as JSON")

    sp = add(
        "fixture-server",
        "serve the built-in fixture platform on 127.0.0.1",
        cmd_fixture_server,
        "Serve listing pages shaped like TikTok, YouTube and Instagram, video pages and MP4s "
        "with the demo characters, on 127.0.0.1 (for demos and tests; no internet needed).",
    )
    sp.add_argument("--port", type=int, default=8765)
    sp.add_argument("--media-dir", help="cache folder for generated MP4s")

    sp = add(
        "demo",
        "run the whole chain on the fixture platform and print the report path",
        cmd_demo,
        "Start the fixture platform, register the demo characters, crawl, process, match and "
        "report, then compare the flags with what the fixture videos really show.",
    )
    sp.add_argument("--data-dir", help="where the demo keeps its data (default: <data_dir>/demo)")
    sp.add_argument("--strict", action="store_true", help="exit 1 if a flag is wrong or missing")
    sp.add_argument("-q", "--quiet", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        os.environ.setdefault("TQDM_MININTERVAL", "0.5")
    try:
        cfg = load_config(args.config)
        return int(args.func(cfg, args) or 0)
    except UsageError as exc:
        print(f"charwatch: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("charwatch: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for users; the traceback with -v
        if args.verbose:
            raise
        print(f"charwatch: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
