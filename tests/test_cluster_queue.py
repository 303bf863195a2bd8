"""The shared queue on SQLite and a real PostgreSQL: claims, lease-checked writes, dead workers,
concurrent migrations and 64-bit ids."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text, update

from pipeline import worker
from pipeline.worker import process_pending
from storage import workers, workqueue
from storage.db import Store
from storage.models import Character, Detection, Embedding, Frame, Video, VideoState, Worker
from tests import test_pipeline as tp
from tests.conftest import PreparedVideos, assert_same_end_state, end_state, kill_9_midway

REPO = Path(__file__).resolve().parents[1]

# the clips and the local server of the pipeline tests
media = tp.media
server = tp.server


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: SQLite in a temp folder, or one on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'c.db'}"
    return str(request.getfixturevalue("pg_url"))


def _add_videos(store: Store, n: int, state: str = VideoState.DISCOVERED) -> list[int]:
    with store.session() as s:
        rows = [
            Video(platform="tiktok", platform_id=str(10_000 + i), url=f"u{i}", state=state)
            for i in range(n)
        ]
        s.add_all(rows)
        s.flush()
        return [v.id for v in rows]


def _expire(store: Store, vid: int) -> None:
    with store.session() as s:
        s.get(Video, vid).lease_expires = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)


# -- claims ------------------------------------------------------------------------------------


def test_concurrent_claims_from_threads_each_get_a_full_batch(url: str) -> None:
    """16 claimers at once, each asking for 5 of 80 videos: every one gets 5, none twice."""
    store = Store(url)
    ids = _add_videos(store, 80)
    stores = [Store(url, auto_migrate=False) for _ in range(16)]
    barrier = threading.Barrier(16)
    got: dict[int, list[int]] = {}

    def claim(i: int) -> None:
        barrier.wait()
        got[i] = workqueue.claim(stores[i], f"w{i}", 5, 60, states=(VideoState.DISCOVERED,))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(len(v) == 5 for v in got.values()), got
    flat = [v for batch in got.values() for v in batch]
    assert sorted(flat) == sorted(ids)
    with store.session() as s:
        owners = dict(s.execute(select(Video.id, Video.lease_owner)).all())
    assert all(owners[v] == f"w{i}" for i, batch in got.items() for v in batch)


_start: Any = None  # in each pool process: the barrier all of them wait at


def _meet_at(barrier: Any) -> None:
    global _start
    _start = barrier


def _drain(args: tuple[str, str]) -> list[int]:
    db, owner = args
    store = Store(db, auto_migrate=False)
    _start.wait(timeout=120)  # every process is up and connected
    got: list[int] = []
    while batch := workqueue.claim(store, owner, limit=3, lease_s=600):
        got.extend(batch)
    store.dispose()
    return got


def test_claims_from_processes_hand_each_video_out_once(url: str) -> None:
    store = Store(url)
    ids = _add_videos(store, 600)
    ctx = mp.get_context("spawn")
    with ctx.Pool(4, initializer=_meet_at, initargs=(ctx.Barrier(4),)) as pool:
        results = pool.map(_drain, [(url, f"p{i}") for i in range(4)], chunksize=1)
    flat = [v for r in results for v in r]
    assert len(flat) == len(set(flat)) == len(ids)
    assert sum(1 for r in results if r) >= 2  # they really ran side by side


def test_claim_respects_ids_skip_platforms_states_and_backoff(url: str) -> None:
    store = Store(url)
    a, b, c, d = _add_videos(store, 4)
    with store.session() as s:
        s.get(Video, b).platform = "youtube"
        s.get(Video, c).state = VideoState.EMBEDDED
        s.get(Video, d).next_attempt_at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    states = (VideoState.DISCOVERED,)
    assert workqueue.claim(store, "w", 10, 60, states=states, skip_platforms={"tiktok"}) == [b]
    workqueue.release(store, "w", b)
    assert workqueue.claim(store, "w", 10, 60, states=states, ids=[b, c, d]) == [b]
    assert workqueue.claim(store, "m", 10, 60, states=(VideoState.EMBEDDED,)) == [c]
    assert workqueue.claim(store, "w", 10, 60) == [a]
    assert workqueue.claim(store, "w", 10, 60) == []


def test_leases_use_the_server_clock(pg_url: str) -> None:
    store = Store(pg_url)
    (vid,) = _add_videos(store, 1)
    workqueue.claim(store, "w", 1, 60)
    with store.session() as s:
        left = s.scalar(
            select(func.extract("epoch", Video.lease_expires - func.now())).where(Video.id == vid)
        )
    assert 55 < float(left) <= 60


def test_partial_index_serves_the_claim(pg_url: str) -> None:
    store = Store(pg_url)
    with store.session() as s:
        s.execute(
            text(
                "INSERT INTO videos (platform, platform_id, url, hashtags, first_seen, "
                "last_seen, state, attempts) SELECT 'tiktok', g::text, 'u', '[]', now(), now(), "
                "CASE WHEN g % 2 = 0 THEN 'matched' ELSE 'discovered' END, 0 "
                "FROM generate_series(1, 20000) g"
            )
        )
        s.execute(text("ANALYZE videos"))
    sent: list[tuple[str, dict]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        sent.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", grab)
    assert len(workqueue.claim(store, "x", 8, 60, states=worker.STATES)) == 8
    event.remove(store.engine, "before_cursor_execute", grab)
    sql, params = next((q, p) for q, p in sent if "lease_owner IS NULL" in q)
    with store.engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, params))
    assert "ix_videos_claimable" in plan, plan


# -- lease-checked writes ----------------------------------------------------------------------


def test_stale_owner_writes_are_refused(url: str) -> None:
    store = Store(url)
    (vid,) = _add_videos(store, 1)
    assert workqueue.claim(store, "a", 1, 60) == [vid]
    with workqueue.leased(store, "a", vid) as s:
        s.add(Frame(video_id=vid, t=1.0, image_path="frames/a.jpg"))
    _expire(store, vid)
    assert workqueue.claim(store, "b", 1, 60) == [vid]
    with workqueue.leased(store, "b", vid) as s:  # the new holder replaces the frames
        s.execute(Frame.__table__.delete().where(Frame.video_id == vid))
        f = Frame(video_id=vid, t=2.0, image_path="frames/b.jpg")
        s.add(f)
        s.flush()
        s.add(Embedding(frame_id=f.id, region="full", model_id="m", vector=b"\x00\x01"))
    with pytest.raises(workqueue.LeaseLost), workqueue.leased(store, "a", vid) as s:
        s.execute(Frame.__table__.delete().where(Frame.video_id == vid))
    assert not workqueue.advance(store, "a", vid, VideoState.FRAMES)
    assert workqueue.fail(store, "a", vid, "x", transient=True, max_attempts=3) == "lost"
    workqueue.release(store, "a", vid)
    assert not workqueue.renew(store, "a", vid, 60)
    with store.session() as s:
        v = s.get(Video, vid)
        assert (v.lease_owner, v.state, v.attempts) == ("b", VideoState.DISCOVERED, 0)
        frames = s.scalars(select(Frame).where(Frame.video_id == vid)).all()
        assert [f.image_path for f in frames] == ["frames/b.jpg"]
        assert s.scalar(select(func.count()).select_from(Embedding)) == 1


def test_a_lease_write_blocks_a_concurrent_takeover(pg_url: str) -> None:
    """While a holder writes under its lease (row locked), an expired-lease claim skips the row
    instead of taking it; the holder's commit renews the lease."""
    store = Store(pg_url)
    (vid,) = _add_videos(store, 1)
    workqueue.claim(store, "a", 1, 60)
    _expire(store, vid)
    other = Store(pg_url, auto_migrate=False)
    with workqueue.leased(store, "a", vid, lease_s=60) as s:
        s.add(Frame(video_id=vid, t=1.0))
        s.flush()
        assert workqueue.claim(other, "b", 1, 60) == []  # skipped: locked
    assert workqueue.claim(other, "b", 1, 60) == []  # renewed by the write
    with store.session() as s:
        assert s.get(Video, vid).lease_owner == "a"


def _steal(store: Store, vid: int, data_dir: Path, thief: str = "thief") -> str:
    """Another worker takes ``vid`` over and stores one frame (row and file) of its own."""
    with store.session() as s:
        s.execute(
            update(Video)
            .where(Video.id == vid)
            .values(
                lease_owner=thief, lease_expires=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
            )
        )
    rel = f"frames/{vid}/{thief}/00_thief.jpg"
    (data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    (data_dir / rel).write_bytes(b"winner")
    with workqueue.leased(store, thief, vid) as s:
        s.execute(Frame.__table__.delete().where(Frame.video_id == vid))
        f = Frame(video_id=vid, t=99.0, image_path=rel, thumb_path=rel)
        s.add(f)
        s.flush()
        s.add(Embedding(frame_id=f.id, region="full", model_id="thief", vector=b"\x01\x02"))
    return rel


def _thief_intact(store: Store, vid: int, data_dir: Path, rel: str, only: bool = True) -> None:
    with store.session() as s:
        v = s.get(Video, vid)
        assert v.lease_owner == "thief" and v.state != VideoState.EMBEDDED
        frames = s.scalars(select(Frame).where(Frame.video_id == vid)).all()
        assert [f.image_path for f in frames] == [rel]
        embs = s.scalars(select(Embedding)).all()
        assert [(e.frame_id, e.model_id) for e in embs] == [(frames[0].id, "thief")]
    assert (data_dir / rel).read_bytes() == b"winner"
    if only:  # the loser removed its own frame files
        assert [p.name for p in (data_dir / "frames" / str(vid)).iterdir()] == ["thief"]


def test_stale_worker_loses_its_frames_not_the_winners(
    url: str, tmp_path: Path, server: str, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tp._config(tmp_path)
    store = Store(url)
    tp._add(store, server, {"ok": "/ok.mp4"})
    real = worker.sample_frames
    stolen: list[str] = []

    def sample_then_lose_the_lease(path, pcfg):  # type: ignore[no-untyped-def]
        frames = real(path, pcfg)
        with store.session() as s:
            vid = s.scalar(select(Video.id))
        stolen.append(_steal(store, vid, cfg.data_dir))
        return frames

    monkeypatch.setattr(worker, "sample_frames", sample_then_lose_the_lease)
    stats = process_pending(cfg, store, embedder, progress=False)
    assert (stats.processed, stats.lost, stats.frames) == (0, 1, 0)
    with store.session() as s:
        vid = s.scalar(select(Video.id))
    _thief_intact(store, vid, cfg.data_dir, stolen[0])


def test_stale_worker_loses_its_embeddings_not_the_winners(
    pg_url: str, tmp_path: Path, server: str, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tp._config(tmp_path)
    store = Store(pg_url)
    tp._add(store, server, {"ok": "/ok.mp4"})
    real = embedder.embed_frames
    stolen: list[str] = []

    def embed_then_lose_the_lease(images):  # type: ignore[no-untyped-def]
        out = real(images)
        with store.session() as s:
            vid = s.scalar(select(Video.id))
        stolen.append(_steal(store, vid, cfg.data_dir))
        return out

    monkeypatch.setattr(embedder, "embed_frames", embed_then_lose_the_lease)
    stats = process_pending(cfg, store, embedder, progress=False)
    assert (stats.processed, stats.lost, stats.embeddings) == (0, 1, 0)
    with store.session() as s:
        vid = s.scalar(select(Video.id))
    # the loser's committed frame files stay until the holder's frame stage replaces them
    _thief_intact(store, vid, cfg.data_dir, stolen[0], only=False)


# -- dead workers ------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_dead_and_silent_workers_free_their_leases(url: str) -> None:
    store = Store(url)
    ids = _add_videos(store, 6)
    dead_here, silent, live, unregistered = "dead-here", "silent", "live", "legacy"
    workers.register(store, live)
    with store.session() as s:
        s.add(
            Worker(
                owner=dead_here,
                host="h",
                pid=_dead_pid(),
                pid_space=workers.pid_space(),
                started_at=func.now() if "postgresql" in url else dt.datetime.now(dt.UTC),
                heartbeat_at=dt.datetime.now(dt.UTC),
            )
        )
        s.add(
            Worker(
                owner=silent,
                host="elsewhere",
                pid=os.getpid(),
                pid_space="another-machine",
                started_at=dt.datetime.now(dt.UTC),
                heartbeat_at=dt.datetime.now(dt.UTC)
                - dt.timedelta(seconds=workers.DEAD_AFTER_S + 5),
            )
        )
    for owner, vids in (
        (dead_here, ids[:2]),
        (silent, ids[2:3]),
        (live, ids[3:4]),
        (unregistered, ids[4:5]),
    ):
        assert workqueue.claim(store, owner, len(vids), 900, ids=vids) == vids
    assert [w.owner for w in workers.live_workers(store)] == [live]
    assert workqueue.held_by_others(store, "me") == 2  # the dead ones' leases do not count
    # the dead and the silent owner's leases are free at once; live and unregistered ones not
    assert workqueue.claim(store, "me", 10, 60) == sorted(ids[:3] + ids[5:])
    assert workqueue.held_by_others(store, "me") == 2
    assert workqueue.sweep(store) == 0  # nothing expired; the dead workers are forgotten
    with store.session() as s:
        assert sorted(s.scalars(select(Worker.owner))) == [live]
    _expire(store, ids[4])
    assert workqueue.sweep(store) == 1
    workers.deregister(store, live)
    assert workers.live_workers(store) == []


def test_heartbeat_thread_registers_beats_and_deregisters(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "HEARTBEAT_S", 0.05)
    store = Store(url)
    with workers.registered(store, "w1"):
        with store.session() as s:
            first = s.get(Worker, "w1").heartbeat_at
            s.execute(Worker.__table__.delete())  # a sweep removed it: it comes back
        time.sleep(0.5)
        (info,) = workers.live_workers(store)
        assert info.owner == "w1" and info.pid == os.getpid() and info.heartbeat_at >= first
        assert info.as_dict()["owner"] == "w1"
    assert workers.live_workers(store) == []


def test_run_says_when_live_workers_hold_everything(url: str, tmp_path: Path, embedder) -> None:
    cfg = tp._config(tmp_path)
    store = Store(url)
    ids = _add_videos(store, 3)
    workers.register(store, "other")
    workqueue.claim(store, "other", 3, 900, ids=ids)
    stats = process_pending(cfg, store, embedder, progress=False)
    assert stats.claimed == 0 and stats.busy == 3
    assert "3 videos are being processed by other live workers" in stats.summary()
    assert stats.as_dict()["busy"] == 3


@pytest.mark.slow  # a worker process killed mid-batch
def test_kill_9_then_an_immediate_rerun_finishes_everything(
    url: str, stored_videos, prepared_videos: PreparedVideos, embedder
) -> None:
    stored = stored_videos(processed=False, url=url)  # the default 15-minute lease stays
    cfg, store = stored.cfg, stored.store
    killed = kill_9_midway(stored.config, store)
    assert killed.running, "the worker ended before it could be killed"
    assert killed.leased  # the killed worker held leases (15 minutes long)
    t0 = time.monotonic()
    stats = process_pending(cfg, store, embedder, progress=False)
    assert time.monotonic() - t0 < 90
    assert stats.busy == 0
    assert_same_end_state(prepared_videos.end_state, end_state(store))
    with store.session() as s:
        assert s.scalar(select(func.count()).where(Video.lease_owner.is_not(None))) == 0
        assert s.scalar(select(func.count()).select_from(Worker)) == 0  # swept or deregistered
        paths = [p for p in s.scalars(select(Frame.image_path)) if p]
    assert all((cfg.data_dir / p).is_file() for p in paths)
    on_disk = {p.relative_to(cfg.data_dir).as_posix() for p in cfg.data_dir.glob("frames/*/*/*")}
    thumbs = {p for p in on_disk if p.endswith("_t.jpg")}
    assert on_disk - thumbs == set(paths)  # the killed attempt's frame files are gone


# -- migrations and ids ------------------------------------------------------------------------

_MIGRATE_SCRIPT = textwrap.dedent(
    """
    import sys
    from storage.db import Store
    print("ready", flush=True)
    sys.stdin.readline()  # go, once all are ready
    Store(sys.argv[1]).dispose()
    """
)


def test_concurrent_migrations_run_once(url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE_SCRIPT, url],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    for p in procs:  # all six are up and waiting
        assert p.stdout is not None and p.stdout.readline() == "ready\n", p.communicate()[1]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err for _, err in outs]
    store = Store(url, auto_migrate=False)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            "0005"
        ]
    store.dispose()
    Store(url)  # at head: nothing to do


def test_64_bit_ids_round_trip(pg_url: str) -> None:
    store = Store(pg_url)
    big = 2**40 + 7
    with store.session() as s:
        s.add(Video(id=big, platform="tiktok", platform_id="big", url="u"))
        s.add(Frame(id=big + 1, video_id=big, t=0.5))
        s.add(Character(id=1, name="c"))
        s.flush()
        s.add(Embedding(id=big + 2, frame_id=big + 1, model_id="m", vector=b"\x00"))
        s.add(Detection(id=big + 3, video_id=big, character_id=1, score=0.9))
    with store.session() as s:
        assert s.get(Video, big) is not None
        assert s.get(Frame, big + 1).video_id == big
        assert s.get(Embedding, big + 2).frame_id == big + 1
        assert s.get(Detection, big + 3).video_id == big
        s.add(Video(platform="tiktok", platform_id="next", url="u"))
        s.flush()
        s.execute(text("SELECT setval('videos_id_seq', :v)"), {"v": 2**40})
        v = Video(platform="tiktok", platform_id="after", url="u")
        s.add(v)
        s.flush()
        assert v.id == 2**40 + 1
    claimed = workqueue.claim(store, "w", 5, 60)
    assert len(claimed) == 3 and claimed[-2:] == [v.id, big]


def test_claim_benchmark_runs(pg_url: str) -> None:
    from bench import claims

    results = claims.run(rows=2000, clients=(1, 4), seconds=0.3, url=pg_url)
    assert [(r["claim"], r["clients"]) for r in results] == [
        ("old", 1),
        ("new", 1),
        ("old", 4),
        ("new", 4),
    ]
    assert all(r["claims_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in results)
    assert "| new | 4 |" in claims.table(results)
