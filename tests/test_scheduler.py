"""The real scheduler daemon with seconds-level triggers against the fixture platform."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from charwatch.config import load_config
from charwatch.demo import register_demo_characters
from storage import Detection, JobRun, Store, Video, VideoState
from tests.conftest import REPO, run_cli, write_config

pytestmark = pytest.mark.slow

DEMO_TAG = "charwatchdemo"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A server of this module's own, so its request counters see only these tests."""
    from fixture_platform.server import FixtureServer

    with FixtureServer(media_dir=tmp_path_factory.mktemp("sched-media")) as srv:
        yield srv


def _setup(tmp_path: Path, base_url: str, nightly: str) -> tuple[Path, Store]:
    extra = (
        f'[schedule]\nnightly = "{nightly}"\nrecheck = ""\nmisfire_grace_s = 600\n\n'
        '[process]\nkeep_media = "all"\n\n'
        f'[[watch]]\nplatform = "tiktok"\nhashtag = "{DEMO_TAG}"\n'
    )
    cfg_path = write_config(tmp_path / "charwatch.toml", tmp_path / "data", base_url, extra)
    cfg = load_config(cfg_path, environ={})
    store = Store(cfg.storage.database_url)
    register_demo_characters(cfg, store)
    return cfg_path, store


def _start(cfg_path: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARWATCH_")}
    return subprocess.Popen(
        [sys.executable, str(REPO / "scheduler.py"), "--config", str(cfg_path)],
        cwd=REPO,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _stop(proc: subprocess.Popen[bytes], log: Path, timeout: float = 240) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"scheduler did not stop on SIGTERM:\n{log.read_text()}") from None
    assert rc == 0, log.read_text()
    assert "scheduler stopped" in log.read_text()


def _wait(cond: Callable[[], bool], timeout: float, log: Path, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


def _jobs(store: Store, kind: str = "nightly") -> list[JobRun]:
    with store.session() as s:
        return list(s.scalars(select(JobRun).where(JobRun.kind == kind).order_by(JobRun.id)))


def _states(store: Store) -> dict[str, int]:
    with store.session() as s:
        rows = s.execute(select(Video.state, func.count()).group_by(Video.state)).all()
    return {state: n for state, n in rows}


def _media_paths(store: Store) -> list[str]:
    with store.session() as s:
        ids = list(s.scalars(select(Video.platform_id).where(Video.platform == "tiktok")))
    return [f"/media/tiktok/{i}.mp4" for i in ids]


def _assert_each_video_once(store: Store, server: object) -> None:
    """Every video matched, each downloaded exactly once, no duplicate rows or flags."""
    states = _states(store)
    expected = len(server.catalog.demo_video_ids("tiktok"))
    assert states == {VideoState.MATCHED: expected}, states
    counts = {p: server.request_count(p) for p in _media_paths(store)}
    assert all(n == 1 for n in counts.values()), counts
    with store.session() as s:
        pairs = s.execute(select(Detection.video_id, Detection.character_id)).all()
    assert len(pairs) == len(set(pairs)) > 0


def test_nightly_job_runs_and_writes_its_report(tmp_path: Path, server: object) -> None:
    server.reset_counters()
    cfg_path, store = _setup(tmp_path, server.base_url, "*/2 * * * * *")
    log = tmp_path / "scheduler.log"
    proc = _start(cfg_path, log)
    try:
        _wait(lambda: any(j.status == "ok" for j in _jobs(store)), 240, log, "a nightly run")
    finally:
        _stop(proc, log)
    done = [j for j in _jobs(store) if j.status == "ok"][0]
    assert done.listings == 1 and done.listings_failed == 0
    assert done.videos_new == len(server.catalog.demo_video_ids("tiktok"))
    assert done.report_path and Path(done.report_path).is_file()
    assert done.flags > 0
    # never two at once: runs do not overlap in time
    runs = _jobs(store)
    for a, b in zip(runs, runs[1:], strict=False):
        assert a.finished_at is not None and a.finished_at <= b.started_at
    _assert_each_video_once(store, server)
    res = run_cli("runs", "--jobs", "--format", "jsonl", config=cfg_path)
    assert '"kind": "nightly"' in res.stdout


def test_rescan_during_nightly_processes_each_video_once(tmp_path: Path, server: object) -> None:
    server.reset_counters()
    cfg_path, store = _setup(tmp_path, server.base_url, "*/2 * * * * *")
    log = tmp_path / "scheduler.log"
    proc = _start(cfg_path, log)
    try:
        _wait(lambda: bool(_jobs(store)), 120, log, "the nightly run to start")
        rescan = run_cli(
            "rescan", "--hashtag", DEMO_TAG, "--platform", "tiktok", "-q", config=cfg_path
        )
        assert rescan.returncode == 0, rescan.stdout + rescan.stderr
        assert "HTML report:" in rescan.stdout
        _wait(lambda: any(j.status == "ok" for j in _jobs(store)), 240, log, "nightly done")
    finally:
        _stop(proc, log)
    _assert_each_video_once(store, server)
    assert _jobs(store, "rescan")[0].status == "ok"


def test_sigterm_mid_run_then_restart_processes_everything_once(
    tmp_path: Path, server: object
) -> None:
    server.reset_counters()
    cfg_path, store = _setup(tmp_path, server.base_url, "*/2 * * * * *")
    log = tmp_path / "scheduler.log"
    proc = _start(cfg_path, log)

    def mid_run() -> bool:
        s = _states(store)
        return sum(s.get(k, 0) for k in (VideoState.DOWNLOADED, VideoState.FRAMES)) > 0

    try:
        _wait(mid_run, 180, log, "processing to start")
    finally:
        _stop(proc, log)
    first = _jobs(store)[-1]
    assert first.status in ("stopped", "ok")
    with store.session() as s:  # nothing left leased after a graceful stop
        assert s.scalar(select(func.count()).where(Video.lease_owner.is_not(None))) == 0
    total = len(server.catalog.demo_video_ids("tiktok"))
    proc = _start(cfg_path, log)
    try:
        _wait(lambda: _states(store) == {VideoState.MATCHED: total}, 240, log, "resume")
    finally:
        _stop(proc, log)
    _assert_each_video_once(store, server)


def test_missed_night_runs_once_after_restart(tmp_path: Path, server: object) -> None:
    due_utc = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=6)  # the config's timezone is UTC
    cron = f"{due_utc.second} {due_utc.minute} {due_utc.hour} * * *"
    cfg_path, store = _setup(tmp_path, server.base_url, cron)
    log = tmp_path / "scheduler.log"
    proc = _start(cfg_path, log)
    _wait(lambda: "scheduled nightly" in log.read_text(), 60, log, "the scheduler to start")
    _stop(proc, log)  # down while the run falls due
    while dt.datetime.now(dt.UTC) < due_utc + dt.timedelta(seconds=2):
        time.sleep(0.2)
    assert _jobs(store) == []
    proc = _start(cfg_path, log)
    try:
        _wait(lambda: any(j.status == "ok" for j in _jobs(store)), 240, log, "the missed run")
        time.sleep(3)  # a second (duplicate) run would have started by now
    finally:
        _stop(proc, log)
    assert len(_jobs(store)) == 1
