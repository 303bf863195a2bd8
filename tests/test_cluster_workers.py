"""Cluster mode for real: a PostgreSQL server, the fixture platform and several
``charwatch worker`` processes. What any crawl finds is processed and matched with no further
command; a ``kill -9`` loses and duplicates nothing; SIGTERM stops a worker within a minute;
the nightly job runs once per period however often it is deferred."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from charwatch import cluster
from charwatch.config import Config, load_config
from charwatch.demo import compare, register_demo_characters
from storage import Detection, Embedding, Frame, JobRun, Store, Video, VideoState
from tests.conftest import charwatch_exe, run_cli, seed_bank, write_config

DEMO_TAG = "charwatchdemo"
STOP_LIMIT_S = 60.0


def cluster_config(tmp_path: Path, base_url: str, pg_url: str, extra: str = "") -> Path:
    """A fixture-platform config whose storage is the test's PostgreSQL database."""
    extra = (
        "[process]\ntorch_threads = 1\nlease_s = 30\n\n"
        '[schedule]\nmisfire_grace_s = 0\nrecheck = ""\n\n' + extra
    )
    path = write_config(tmp_path / "charwatch.toml", tmp_path / "data", base_url, extra)
    body = path.read_text(encoding="utf-8")
    path.write_text(body.replace("[storage]\n", f'[storage]\nurl = "{pg_url}"\n', 1))
    return path


def prepare_matching(cfg: Config, store: Store, embedder: Any, bank: Path) -> None:
    """Register the demo characters and build their reference index once, here, so the
    workers load it instead of each building it (the background bank is the session's)."""
    from index.refindex import load_or_build

    register_demo_characters(cfg, store)
    seed_bank(cfg, bank)
    load_or_build(cfg, store, embedder)


class Workers:
    """``charwatch worker`` subprocesses, each logging to a file; stopped at the end."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config = config
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CHARWATCH_")}

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        log = open(self.logs / f"worker-{n}.log", "wb")  # noqa: SIM115 - closed with the process
        cmd = [*charwatch_exe(), "--config", str(self.config), "worker", *args]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        i = self.procs.index(proc)
        return (self.logs / f"worker-{i}.log").read_text(errors="replace")

    def stop(self, proc: subprocess.Popen[bytes]) -> tuple[int, float]:
        """SIGTERM; returns the exit status and how long it took."""
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=STOP_LIMIT_S + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        return rc, time.monotonic() - t0

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[Path], Workers]]:
    made: list[Workers] = []

    def make(config: Path) -> Workers:
        logs = tmp_path / "logs"
        logs.mkdir(exist_ok=True)
        made.append(Workers(config, logs))
        return made[-1]

    yield make
    for w in made:
        w.close()


def wait_for(
    check: Callable[[], Any], timeout: float, what: str, on_timeout: Callable[[], str]
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1.0)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{on_timeout()}")


def video_states(store: Store) -> dict[str, int]:
    with store.session() as s:
        rows = s.execute(select(Video.state, func.count()).group_by(Video.state)).all()
    return {state: n for state, n in rows}


def all_matched(store: Store, n: int) -> bool:
    states = video_states(store)
    return sum(states.values()) >= n and set(states) <= {VideoState.MATCHED, VideoState.FAILED}


def job_counts(store: Store, task: str) -> dict[str, int]:
    with store.session() as s:
        rows = s.execute(
            text(
                "SELECT status::text, count(*) FROM procrastinate_jobs "
                "WHERE task_name = :t GROUP BY 1"
            ),
            {"t": task},
        ).all()
    return {status: n for status, n in rows}


def leases_by_pid(store: Store) -> dict[int, int]:
    """Videos leased now, per worker process id (owners are ``host:pid:suffix``)."""
    with store.session() as s:
        owners = list(s.scalars(select(Video.lease_owner).where(Video.lease_owner.is_not(None))))
    out: dict[int, int] = {}
    for owner in owners:
        m = re.match(r"[^:]*:(\d+):", owner or "")
        if m:
            out[int(m[1])] = out.get(int(m[1]), 0) + 1
    return out


def assert_nothing_lost_or_duplicated(cfg: Config, store: Store, catalog: Any) -> None:
    """Every video matched, frames and vectors unique and present, one detection per video
    and character, and the flags exactly what the fixture videos show."""
    from charwatch.jobs import current_embedder

    model_id = current_embedder(cfg).id
    with store.session() as s:
        assert not s.execute(
            select(Embedding.frame_id, Embedding.region, Embedding.model_id)
            .group_by(Embedding.frame_id, Embedding.region, Embedding.model_id)
            .having(func.count() > 1)
        ).all()
        assert not s.execute(
            select(Frame.video_id, Frame.t)
            .group_by(Frame.video_id, Frame.t)
            .having(func.count() > 1)
        ).all()
        assert not s.execute(
            select(Detection.video_id, Detection.character_id)
            .group_by(Detection.video_id, Detection.character_id)
            .having(func.count() > 1)
        ).all()
        videos = list(s.scalars(select(Video)))
        for v in videos:
            assert v.state == VideoState.MATCHED, (v.platform_id, v.state, v.error)
            frames = list(s.scalars(select(Frame).where(Frame.video_id == v.id)))
            assert frames, v.platform_id
            for f in frames:
                assert (cfg.data_dir / f.image_path).is_file(), f.image_path
                n = s.scalar(
                    select(func.count())
                    .select_from(Embedding)
                    .where(Embedding.frame_id == f.id, Embedding.model_id == model_id)
                )
                assert n, f"frame {f.id} of {v.platform_id} has no vector"
    outcome = compare(store, catalog)
    assert outcome.expected, "the listing should hold videos showing demo characters"
    assert not outcome.missed and not outcome.false_flags, (outcome.missed, outcome.false_flags)


@pytest.mark.slow
def test_a_queued_rescan_is_crawled_processed_matched_and_reported_by_workers(
    tmp_path: Path,
    fixture_server: Any,
    pg_url: str,
    embedder: Any,
    bank_file: Path,
    workers: Any,
) -> None:
    config = cluster_config(tmp_path, fixture_server.base_url, pg_url)
    cfg = load_config(config)
    store = Store(pg_url)
    prepare_matching(cfg, store, embedder, bank_file)
    pool = workers(config)
    procs = [pool.start("--batch", "3", "--concurrency", "2"), pool.start("--batch", "3")]

    res = run_cli(
        "rescan", "--hashtag", DEMO_TAG, "--platform", "tiktok", "--max-items", "6", config=config
    )
    assert res.returncode == 0, res.stderr
    assert "queued" in res.stdout

    def report_done() -> bool:
        return job_counts(store, cluster.TASK_REPORT).get("succeeded", 0) == 1

    def logs() -> str:
        return "\n".join(pool.log(p)[-3000:] for p in procs) + f"\n{video_states(store)}"

    wait_for(report_done, 300, "the report job", logs)
    assert job_counts(store, cluster.TASK_CRAWL) == {"succeeded": 1}
    states = video_states(store)
    assert states == {VideoState.MATCHED: 6}, states
    assert_nothing_lost_or_duplicated(cfg, store, fixture_server.catalog)
    with store.session() as s:
        run = s.scalars(select(JobRun).order_by(JobRun.id)).all()
    assert not [r for r in run if r.status == "failed"]

    status = run_cli("status", "--format", "json", config=config)
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["cluster"] is True
    assert doc["videos"] == {"matched": 6}
    assert doc["paused"] == []
    assert len(doc["job_workers"]) == 2
    assert doc["jobs"]["crawl"]["done"] == 1 and doc["jobs"]["report"]["done"] == 1
    assert {"queued", "running", "failed"} <= set(doc["jobs"]["process"])
    table = run_cli("status", config=config)
    assert "job workers: 2 live" in table.stdout and "matched 6" in table.stdout

    for proc in procs:
        rc, took = pool.stop(proc)
        assert rc == 0 and took < STOP_LIMIT_S, (rc, took, pool.log(proc)[-2000:])


@pytest.mark.slow
def test_kill_9_loses_nothing_and_sigterm_releases_within_a_minute(
    tmp_path: Path,
    fixture_server: Any,
    pg_url: str,
    embedder: Any,
    bank_file: Path,
    workers: Any,
) -> None:
    config = cluster_config(tmp_path, fixture_server.base_url, pg_url)
    cfg = load_config(config)
    store = Store(pg_url)
    prepare_matching(cfg, store, embedder, bank_file)
    pool = workers(config)
    procs = [pool.start("--batch", "2") for _ in range(3)]

    # a crawl here, from the CLI: processing is queued for the workers without a command
    res = run_cli(
        "crawl", "--platform", "youtube", "--hashtag", DEMO_TAG, "--max-items", "8", config=config
    )
    assert res.returncode == 0, res.stderr
    total = sum(video_states(store).values())
    assert total == 8

    def logs() -> str:
        return "\n".join(pool.log(p)[-3000:] for p in procs) + f"\n{video_states(store)}"

    def busy_worker(exclude: set[int]) -> subprocess.Popen[bytes] | None:
        held = leases_by_pid(store)
        return next((p for p in procs if held.get(p.pid) and p.pid not in exclude), None)

    victim = wait_for(lambda: busy_worker(set()), 120, "a worker holding videos", logs)
    held = leases_by_pid(store)
    victim.kill()  # kill -9 in the middle of its batch
    victim.wait()
    killed_at = time.monotonic()
    print(f"killed worker {victim.pid} holding {held.get(victim.pid)} video(s); {held}")

    leaving = wait_for(lambda: busy_worker({victim.pid}), 120, "another busy worker", logs)
    held_before = leases_by_pid(store).get(leaving.pid, 0)
    rc, took = pool.stop(leaving)
    assert rc == 0, pool.log(leaving)[-3000:]
    assert took < STOP_LIMIT_S, took
    assert leases_by_pid(store).get(leaving.pid, 0) == 0, (held_before, leases_by_pid(store))
    print(f"SIGTERM: worker {leaving.pid} ({held_before} video(s) held) exited in {took:.1f} s")

    survivor = next(p for p in procs if p not in (victim, leaving))
    wait_for(lambda: all_matched(store, total), 300, "every video matched", logs)
    print(f"all {total} videos matched {time.monotonic() - killed_at:.1f} s after the kill")
    assert survivor.poll() is None
    assert_nothing_lost_or_duplicated(cfg, store, fixture_server.catalog)
    rc, took = pool.stop(survivor)
    assert rc == 0 and took < STOP_LIMIT_S, (rc, took)


def test_the_nightly_job_deferred_twice_for_one_period_runs_once(
    tmp_path: Path, fixture_server: Any, pg_url: str
) -> None:
    watch = f'[[watch]]\nplatform = "tiktok"\nhashtag = "{DEMO_TAG}"\n'
    config = cluster_config(tmp_path, fixture_server.base_url, pg_url, extra=watch)
    config.write_text(config.read_text().replace("[crawl]\n", "[crawl]\nmax_items = 2\n", 1))
    cfg = load_config(config)
    store = Store(pg_url)
    period = cluster.period_start(cfg, cfg.schedule.nightly)

    first = cluster.defer_nightly(cfg)
    assert first is not None
    again = run_cli("run-nightly", config=config)  # the same period, from the CLI
    assert again.returncode == 0, again.stderr
    assert "already queued" in again.stdout
    assert cluster.defer_nightly(cfg, timestamp=period) is None  # and from the scheduler path
    assert job_counts(store, cluster.TASK_NIGHTLY) == {"todo": 1}

    burst = run_cli("worker", "--burst", "--queues", "crawl,report", config=config, timeout=240)
    assert burst.returncode == 0, burst.stdout + burst.stderr
    assert job_counts(store, cluster.TASK_NIGHTLY) == {"succeeded": 1}
    assert job_counts(store, cluster.TASK_CRAWL) == {"succeeded": 1}
    assert cluster.defer_nightly(cfg, timestamp=period) is None  # after it ran: still once

    # a retried nightly job of the same period (a dead worker's) defers nothing again
    cluster._call(cfg, lambda app: cluster._defer(app, cluster.TASK_NIGHTLY, timestamp=period))
    burst = run_cli("worker", "--burst", "--queues", "crawl", config=config, timeout=240)
    assert burst.returncode == 0, burst.stdout + burst.stderr
    assert job_counts(store, cluster.TASK_CRAWL) == {"succeeded": 1}
    with store.session() as s:
        runs = list(s.scalars(select(JobRun).where(JobRun.kind == "nightly")))
    assert [(r.status, r.listings) for r in runs] == [("ok", 1)]
    # the report waits for the crawled videos, which no process worker took here
    assert job_counts(store, cluster.TASK_REPORT) == {"todo": 1}


def test_worker_needs_postgresql_and_status_json_on_sqlite(
    config_file: Path, tmp_path: Path
) -> None:
    res = run_cli("worker", config=config_file)
    assert res.returncode == 2
    assert "PostgreSQL" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    status = run_cli("status", "--format", "json", config=config_file)
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["cluster"] is False and "jobs" not in doc
    assert [p["platform"] for p in doc["platforms"]] == ["tiktok", "youtube", "instagram"]
    assert doc["videos"] == {} and doc["paused"] == [] and isinstance(doc["workers"], list)
