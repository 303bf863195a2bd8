"""The registry of running workers: who holds leases, where, and whether they are still alive.

A processing loop registers its lease owner name with its host and pid, beats a heartbeat
from a background thread every ``HEARTBEAT_S`` seconds (in the database's clock on
PostgreSQL), and deregisters on exit. A worker counts as dead, and its leases as free, when
its heartbeat is older than ``DEAD_AFTER_S`` (any host), or at once when it ran on this host
and its process is gone (``kill -9``, a crash, a reboot).

Owners that never registered (older code, one-off tools) are judged by their lease expiry only.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Interval, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from storage.db import Store
from storage.models import UTCDateTime, Worker, utcnow

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
DEAD_AFTER_S = 4 * HEARTBEAT_S  # missed heartbeats before another host's worker is dead


@dataclass(frozen=True)
class WorkerInfo:
    """One registered worker, as ``charwatch status`` shows it."""

    owner: str
    host: str
    pid: int
    role: str
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    age_s: float  # seconds since the last heartbeat

    def as_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "host": self.host,
            "pid": self.pid,
            "role": self.role,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "age_s": round(self.age_s, 1),
        }


@cache
def pid_space() -> str:
    """This kernel boot and pid namespace: pids are comparable only within one of these."""
    parts = [socket.gethostname()]
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        pass
    return ":".join(parts)[:128]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this pid space is running (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def db_now(store: Store | Session) -> ColumnElement[Any] | dt.datetime:
    """Now in the database's clock (PostgreSQL), or this host's (SQLite: one host anyway)."""
    bind = store.engine if isinstance(store, Store) else store.get_bind()
    if bind.dialect.name == "postgresql":
        return func.now()
    return utcnow()


def register(store: Store, owner: str, role: str = "process") -> None:
    """Add (or refresh) ``owner`` in the registry."""
    with store.session() as s:
        now = db_now(s)
        row = s.get(Worker, owner)
        if row is None:
            s.add(
                Worker(
                    owner=owner,
                    host=socket.gethostname()[:256],
                    pid=os.getpid(),
                    pid_space=pid_space(),
                    role=role,
                    started_at=now,
                    heartbeat_at=now,
                )
            )
        else:
            row.heartbeat_at = now  # type: ignore[assignment]


def heartbeat(store: Store, owner: str, role: str = "process") -> None:
    """Say ``owner`` is alive; registers it again if a sweep removed it."""
    with store.session() as s:
        res = s.execute(
            update(Worker)
            .where(Worker.owner == owner)
            .values(heartbeat_at=db_now(s))
            .execution_options(synchronize_session=False)
        )
        gone = res.rowcount != 1  # type: ignore[attr-defined]
    if gone:
        register(store, owner, role)


def deregister(store: Store, owner: str) -> None:
    """Remove ``owner`` from the registry (a clean exit)."""
    with store.session() as s:
        s.execute(delete(Worker).where(Worker.owner == owner))


@cache
def _workers_stmt(pg: bool) -> Any:
    if pg:  # the server's clock
        stale = Worker.heartbeat_at < func.now() - bindparam("dead_after", type_=Interval())
    else:  # SQLite keeps times as text: compare with a time computed here
        stale = Worker.heartbeat_at < bindparam("stale_before", type_=UTCDateTime())
    return select(Worker.owner, Worker.pid, Worker.pid_space, stale)


def dead_owners(s: Session) -> list[str]:
    """Registered owners that are dead: heartbeat too old, or a vanished process of this host."""
    pg = s.get_bind().dialect.name == "postgresql"
    params: dict[str, Any] = {"dead_after": dt.timedelta(seconds=DEAD_AFTER_S)}
    if not pg:
        params = {"stale_before": utcnow() - dt.timedelta(seconds=DEAD_AFTER_S)}
    rows = s.connection().execute(_workers_stmt(pg), params).all()
    mine = pid_space()
    return [
        owner
        for owner, pid, space, is_stale in rows
        if is_stale or (space == mine and not pid_alive(pid))
    ]


def live_workers(store: Store) -> list[WorkerInfo]:
    """Registered workers that are alive, oldest first."""
    with store.session() as s:
        dead = set(dead_owners(s))
        rows = s.scalars(select(Worker).order_by(Worker.started_at, Worker.owner)).all()
        now = s.scalar(select(func.now())) if s.get_bind().dialect.name == "postgresql" else None
    now = now or utcnow()
    return [
        WorkerInfo(
            w.owner,
            w.host,
            w.pid,
            w.role,
            w.started_at,
            w.heartbeat_at,
            max(0.0, (now - w.heartbeat_at).total_seconds()),
        )
        for w in rows
        if w.owner not in dead
    ]


class Heartbeat:
    """Registers ``owner``, beats from a daemon thread, deregisters on :meth:`stop`."""

    def __init__(self, store: Store, owner: str, role: str = "process") -> None:
        self.store = store
        self.owner = owner
        self.role = role
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        register(self.store, self.owner, self.role)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                heartbeat(self.store, self.owner, self.role)
            except Exception:  # noqa: BLE001 - a missed beat is retried; leases still expire
                log.warning("heartbeat of %s failed", self.owner, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        try:
            deregister(self.store, self.owner)
        except Exception:  # noqa: BLE001 - the sweep removes it later
            log.warning("could not deregister %s", self.owner, exc_info=True)


@contextmanager
def registered(store: Store, owner: str, role: str = "process") -> Iterator[Heartbeat]:
    """``with registered(store, owner):`` the owner is registered and beating inside."""
    hb = Heartbeat(store, owner, role).start()
    try:
        yield hb
    finally:
        hb.stop()
