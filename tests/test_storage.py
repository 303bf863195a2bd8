"""Storage: migrations, WAL, uniqueness, and the work queue's leases."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from storage import Store, Video, VideoState, utcnow, workqueue


def _add_videos(store: Store, n: int) -> None:
    with store.session() as s:
        for i in range(n):
            s.add(Video(platform="tiktok", platform_id=str(1000 + i), url=f"http://x/{i}"))


def test_migrate_twice_and_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'c.db'}"
    Store(url)
    Store(url)  # second upgrade is a no-op
    con = sqlite3.connect(tmp_path / "db" / "c.db")
    assert con.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert con.execute("select version_num from alembic_version").fetchone()[0] == "0005"


def test_video_unique_per_platform_id(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    _add_videos(store, 1)
    with pytest.raises(IntegrityError), store.session() as s:
        s.add(Video(platform="tiktok", platform_id="1000", url="http://x/dup"))
    with store.session() as s:  # same id on another platform is a different video
        s.add(Video(platform="youtube", platform_id="1000", url="http://y/1000"))
        assert s.scalar(select(func.count()).select_from(Video)) == 2


def test_times_come_back_aware_utc(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    posted = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    with store.session() as s:
        s.add(Video(platform="tiktok", platform_id="1", url="u", posted_at=posted))
    with store.session() as s:
        v = s.scalar(select(Video))
        assert v.posted_at == posted and v.posted_at.tzinfo is not None


def test_lease_excludes_other_workers_and_expires(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    _add_videos(store, 5)
    a = workqueue.claim(store, "a", limit=3, lease_s=60)
    b = workqueue.claim(store, "b", limit=10, lease_s=60)
    assert len(a) == 3 and len(b) == 2 and not set(a) & set(b)
    assert workqueue.claim(store, "c", limit=10, lease_s=60) == []
    # a lease that ran out (a worker killed with -9) is taken over
    with store.session() as s:
        s.get(Video, a[0]).lease_expires = utcnow() - dt.timedelta(seconds=1)
    assert workqueue.claim(store, "c", limit=10, lease_s=60) == [a[0]]
    # the old owner lost it: its writes are refused
    assert not workqueue.advance(store, "a", a[0], VideoState.DOWNLOADED)
    assert workqueue.advance(store, "c", a[0], VideoState.MATCHED)
    with store.session() as s:
        v = s.get(Video, a[0])
        assert v.state == VideoState.MATCHED and v.lease_owner is None


def test_claimable_agrees_with_claim_and_only_reads(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = Store(f"sqlite:///{db}")
    states = (VideoState.DISCOVERED,)
    assert not workqueue.claimable(store, states)  # nothing queued
    assert workqueue.count_claimable(store, states) == 0
    _add_videos(store, 2)
    assert workqueue.claimable(store, states)
    assert workqueue.count_claimable(store, states) == 2
    assert workqueue.count_claimable(store, states, skip_platforms=["tiktok"]) == 0  # paused
    assert not workqueue.claimable(store, (VideoState.EMBEDDED,))
    a = workqueue.claim(store, "a", limit=2, lease_s=60)
    assert not workqueue.claimable(store, states)  # both held by a live lease
    assert workqueue.count_claimable(store, states) == 0
    assert workqueue.claim(store, "b", limit=2, lease_s=60) == []
    with store.session() as s:
        s.get(Video, a[1]).lease_expires = utcnow() - dt.timedelta(seconds=1)
    assert workqueue.claimable(store, states)
    assert workqueue.count_claimable(store, states) == 1  # the expired lease is free again
    assert not workqueue.claimable(store, states, ids=[a[0]])  # that one is still held
    # another connection holds SQLite's write lock: the check still answers (a read in WAL)
    other = sqlite3.connect(db, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    try:
        assert workqueue.claimable(store, states, ids=[a[1]])
    finally:
        other.rollback()
        other.close()
    assert workqueue.claim(store, "b", limit=2, lease_s=60) == [a[1]]
    assert not workqueue.claimable(store, states)


def test_fail_retries_then_gives_up(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    _add_videos(store, 1)
    (vid,) = workqueue.claim(store, "w", 1, 60)
    assert workqueue.fail(store, "w", vid, "HTTP 429", transient=True, max_attempts=2) == "retry"
    assert workqueue.claim(store, "w", 1, 60) == []  # backing off
    with store.session() as s:
        s.get(Video, vid).next_attempt_at = utcnow()
    (vid,) = workqueue.claim(store, "w", 1, 60)
    assert workqueue.fail(store, "w", vid, "HTTP 429", transient=True, max_attempts=2) == "failed"
    with store.session() as s:
        v = s.get(Video, vid)
        assert (v.state, v.attempts, v.error) == (VideoState.FAILED, 2, "HTTP 429")
    assert workqueue.requeue_failed(store) == 1


def _claim_all(args: tuple[str, str]) -> list[int]:
    url, owner = args
    store = Store(url, auto_migrate=False)
    got: list[int] = []
    while batch := workqueue.claim(store, owner, limit=2, lease_s=600):
        got.extend(batch)
    return got


def test_two_processes_never_claim_the_same_video(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = Store(url)
    _add_videos(store, 60)
    with mp.get_context("spawn").Pool(2) as pool:
        a, b = pool.map(_claim_all, [(url, "a"), (url, "b")])
    assert len(a) + len(b) == 60
    assert not set(a) & set(b)


def test_listed_video_fields_are_the_item_the_columns_and_model_columns() -> None:
    """One definition of a video's fields: the item, the refresh rules and the CLI follow it."""
    from charwatch.commands.videos import COLUMNS
    from crawler.items import VideoItem
    from storage import video_fields as vf

    assert set(VideoItem.fields) == set(vf.ITEM_FIELDS)
    model_columns = set(Video.__table__.columns.keys())
    assert set(vf.ITEM_FIELDS) <= model_columns
    assert set(COLUMNS) <= model_columns and COLUMNS == vf.COLUMNS
    rules = (vf.KEY_FIELDS, vf.REFRESHED, vf.KEPT_FIRST, vf.MERGED)
    assert sorted(sum(rules, ())) == sorted(vf.ITEM_FIELDS)  # every field has one rule
