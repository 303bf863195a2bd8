"""Queue claim micro-benchmark on a real PostgreSQL: the per-row claim against the batched one.

    python -m bench.claims --rows 100000          # 1/8/32 clients, old and new claim
    python -m bench.claims --rows 1000000 --seconds 5

``N`` videos are queued and the oldest half is leased by a live worker (long lease), as in a
busy cluster. Each client is a thread with its own connection claiming batches of 8 for
``seconds``; every claimed video is then finished (moved to ``embedded``) so the pool of work
shrinks as in real use. Between runs the claimed rows are put back and the table vacuumed.

Reported per (claim, clients): claims/s (videos leased per second), wasted attempts (old: row
updates that lost the race; new: calls that came back short while work remained) and the p50 and
p99 latency of one claim call in milliseconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import threading
import time
from typing import Any

from sqlalchemy import and_, or_, select, text, update

from storage import workqueue
from storage.db import Store
from storage.models import Video, VideoState, utcnow

BATCH = 8
STATES = (VideoState.DISCOVERED, VideoState.DOWNLOADED, VideoState.FRAMES)


def old_claim(store: Store, owner: str, limit: int, lease_s: int) -> tuple[list[int], int]:
    """The claim before the batched one: candidates first, then one conditional UPDATE per row
    (client clock). Returns the ids and how many row updates lost the race."""
    now = utcnow()
    ok = and_(
        Video.state.in_(STATES),
        or_(Video.lease_expires.is_(None), Video.lease_expires < now),
        or_(Video.next_attempt_at.is_(None), Video.next_attempt_at <= now),
    )
    with store.session() as s:
        candidates = list(s.scalars(select(Video.id).where(ok).order_by(Video.id).limit(limit * 4)))
    claimed: list[int] = []
    wasted = 0
    for vid in candidates:
        if len(claimed) >= limit:
            break
        with store.session() as s:
            res = s.execute(
                update(Video)
                .where(Video.id == vid, ok)
                .values(lease_owner=owner, lease_expires=now + dt.timedelta(seconds=lease_s))
                .execution_options(synchronize_session=False)
            )
            if res.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(vid)
            else:
                wasted += 1
    return claimed, wasted


def new_claim(store: Store, owner: str, limit: int, lease_s: int) -> tuple[list[int], int]:
    got = workqueue.claim(store, owner, limit, lease_s, states=STATES)
    return got, 0


def _fill(store: Store, rows: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("TRUNCATE videos CASCADE"))
        conn.execute(
            text(
                "INSERT INTO videos (platform, platform_id, url, hashtags, first_seen, last_seen,"
                " state, attempts) SELECT 'tiktok', g::text, 'https://x/' || g, '[]', now(),"
                " now(), 'discovered', 0 FROM generate_series(1, :n) g"
            ),
            {"n": rows},
        )
        conn.execute(
            text(
                "UPDATE videos SET lease_owner = 'busy-worker', "
                "lease_expires = now() + interval '1 day' WHERE id <= :half"
            ),
            {"half": rows // 2},
        )
    _vacuum(store)


def _reset(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE videos SET state = 'discovered', lease_owner = NULL, "
                "lease_expires = NULL WHERE lease_owner LIKE 'bench-%' OR state = 'embedded'"
            )
        )
    _vacuum(store)


def _vacuum(store: Store) -> None:
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE videos"))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]


def _one(url: str, which: str, clients: int, seconds: float) -> dict[str, Any]:
    claim = old_claim if which == "old" else new_claim
    stores = [Store(url, auto_migrate=False) for _ in range(clients)]
    for st in stores:  # open the connection before the clock starts
        with st.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    barrier = threading.Barrier(clients + 1)
    stop = threading.Event()
    lat: list[list[float]] = [[] for _ in range(clients)]
    got = [0] * clients
    wasted = [0] * clients
    short = [0] * clients

    def run(i: int) -> None:
        st, owner = stores[i], f"bench-{which}-{i}"
        barrier.wait()
        while not stop.is_set():
            t0 = time.perf_counter()
            ids, lost = claim(st, owner, BATCH, 600)
            lat[i].append(time.perf_counter() - t0)
            got[i] += len(ids)
            wasted[i] += lost
            if not ids:
                short[i] += 1
                if which == "new":
                    break  # the queue is empty (SKIP LOCKED never returns [] with work left)
                continue
            with st.session() as s:  # the work is done: the video leaves the queue
                s.execute(
                    update(Video)
                    .where(Video.id.in_(ids))
                    .values(state=VideoState.EMBEDDED, lease_owner=None, lease_expires=None)
                    .execution_options(synchronize_session=False)
                )

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for st in stores:
        st.dispose()
    all_lat = [x for li in lat for x in li]
    calls = len(all_lat)
    return {
        "claim": which,
        "clients": clients,
        "claims_per_s": round(sum(got) / elapsed, 1),
        "calls": calls,
        "wasted_attempts": sum(wasted) + (sum(short) if which == "new" else 0),
        "wasted_pct": round(
            100.0 * sum(wasted) / max(1, sum(wasted) + sum(got)) if which == "old" else 0.0, 1
        ),
        "p50_ms": round(1000 * _pct(all_lat, 0.50), 2),
        "p99_ms": round(1000 * _pct(all_lat, 0.99), 2),
    }


def run(
    rows: int = 100_000,
    clients: tuple[int, ...] = (1, 8, 32),
    seconds: float = 3.0,
    url: str | None = None,
) -> list[dict[str, Any]]:
    """Benchmark both claims at each client count; starts a throw-away PostgreSQL unless
    ``url`` is given (its ``videos`` table is emptied)."""
    if url is None:
        from storage.pgserver import TempPostgres

        with TempPostgres() as pg:
            return run(rows, clients, seconds, pg.create_database("bench_claims"))
    store = Store(url)
    _fill(store, rows)
    out = []
    for n in clients:
        for which in ("old", "new"):
            out.append(_one(url, which, n, seconds))
            _reset(store)
    store.dispose()
    return out


def table(results: list[dict[str, Any]]) -> str:
    """A markdown table of :func:`run`'s results."""
    lines = [
        "| claim | clients | videos claimed/s | wasted attempts | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        wasted = f"{r['wasted_attempts']}" + (f" ({r['wasted_pct']}%)" if r["wasted_pct"] else "")
        lines.append(
            f"| {r['claim']} | {r['clients']} | {r['claims_per_s']:,.0f} | {wasted} | "
            f"{r['p50_ms']} | {r['p99_ms']} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--url", default=None, help="an existing PostgreSQL (its videos are emptied)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    clients = tuple(int(c) for c in args.clients.split(","))
    results = run(args.rows, clients, args.seconds, args.url)
    print(json.dumps(results, indent=2) if args.json else table(results))


if __name__ == "__main__":
    main()
