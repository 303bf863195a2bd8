"""The desk's reads and writes on SQLite and PostgreSQL: keyset paging of the queue in every
sort order and direction, filters, verdicts with their reviewer and history, users and
passwords, and the plain-words explanation shared with the static report."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text

from index.review import ReviewError, review_history, set_review_state, set_review_states
from reports import write_report
from reports.desk.queries import SORTS, Cursor, QueueFilter, count, neighbours, queue_page
from reports.explain import clock, explain
from storage import Character, Detection, Store, User, Video, VideoState
from storage.users import (
    UserError,
    add_user,
    authenticate,
    get_user,
    list_users,
    remove_user,
    reset_password,
)
from tests.conftest import run_cli
from tests.desk_support import build_lab, matcher_signals

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
STATES = ("new", "new", "new", "needs_review", "confirmed", "rejected")


def fill(store: Store, n: int, seed: int = 3) -> list[dict]:
    """``n`` flags with many ties in score and time (the id breaks them)."""
    rng = random.Random(seed)
    with store.session() as s:
        chars = [Character(name=f"c{i}") for i in range(3)]
        s.add_all(chars)
        s.flush()
        cids = [c.id for c in chars]
        videos = [
            {
                "id": i + 1,
                "platform": ("tiktok", "youtube", "instagram")[i % 3],
                "platform_id": str(i),
                "url": f"https://x/{i}",
                "author": f"user{i % 7}",
                "caption": "Pompom dance" if i % 4 == 0 else "something else",
                "state": VideoState.MATCHED,
                "hashtags": [],
                "first_seen": T0,
                "last_seen": T0,
                "attempts": 0,
            }
            for i in range(n)
        ]
        s.execute(insert(Video), videos)
        rows = [
            {
                "video_id": i + 1,
                "character_id": cids[i % 3],
                "score": round(rng.choice((0.5, 0.6, 0.7)) + rng.randrange(3) / 100, 2),
                "match_type": "semantic",
                "signals": {},
                "review_state": STATES[i % len(STATES)],
                "detected_at": T0 + dt.timedelta(hours=rng.randrange(0, 72, 6)),
            }
            for i in range(n)
        ]
        s.execute(insert(Detection), rows)
        got = s.execute(
            select(
                Detection.id,
                Detection.score,
                Detection.detected_at,
                Detection.review_state,
                Detection.character_id,
                Video.platform,
            ).join(Video, Video.id == Detection.video_id)
        ).all()
    return [r._asdict() for r in got]


def expected(rows: list[dict], f: QueueFilter) -> list[int]:
    col, desc = SORTS[f.sort]
    keep = [
        r
        for r in rows
        if (f.state == "all" or (r["review_state"] in ("new", "needs_review")))
        and (f.character_id is None or r["character_id"] == f.character_id)
        and (f.platform is None or r["platform"] == f.platform)
        and (f.min_score is None or r["score"] >= f.min_score)
    ]
    keep.sort(key=lambda r: (r[col], r["id"]), reverse=desc)
    return [r["id"] for r in keep]


def walk(store: Store, f: QueueFilter) -> tuple[list[int], list[int]]:
    """Every page forward by the ``older`` cursors, then back by the ``newer`` ones."""
    forward: list[list[int]] = []
    after = None
    with store.session() as s:
        while True:
            page = queue_page(s, f, after=after)
            if after is None:
                first_total = page.total
            forward.append([r.id for r in page.rows])
            if page.older is None:
                break
            after = page.older
        backward = [[r.id for r in page.rows]]
        before = page.newer
        while before is not None:
            page = queue_page(s, f, before=before)
            backward.append([r.id for r in page.rows])
            before = page.newer
    assert first_total == sum(len(p) for p in forward)
    assert all(len(p) == f.per_page for p in forward[:-1])
    return [i for p in forward for i in p], [i for p in reversed(backward) for i in p]


FILTERS = [QueueFilter(state="all", sort=sort, per_page=25) for sort in SORTS] + [
    QueueFilter(state="open", sort="score", per_page=25),
    QueueFilter(state="open", platform="youtube", min_score=0.6, sort="oldest", per_page=25),
]


def check_paging(store: Store) -> None:
    rows = fill(store, 260)
    cid = rows[0]["character_id"]
    for f in [*FILTERS, QueueFilter(state="all", character_id=cid, sort="score_asc", per_page=25)]:
        want = expected(rows, f)
        fwd, back = walk(store, f)
        assert fwd == want, f
        assert back == want, f
    with store.session() as s:
        f = QueueFilter(state="all", sort="newest", per_page=25)
        order = expected(rows, f)
        det = s.get(Detection, order[10])
        assert neighbours(s, f, det) == (order[9], order[11])
        assert count(s, QueueFilter(q="pompom", state="all")) == 65
        assert count(s, QueueFilter(q="100%", state="all")) == 0  # LIKE wildcards are literal


def test_keyset_paging_sqlite(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    check_paging(store)
    store.dispose()


def test_keyset_paging_postgres(pg_url: str) -> None:
    store = Store(pg_url)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0005"
    check_paging(store)
    store.dispose()


def test_filter_reads_and_writes_the_query_string() -> None:
    f = QueueFilter.from_args(
        {
            "state": "confirmed",
            "character": "3",
            "platform": "tiktok",
            "since": "2026-11-01",
            "until": "2026-11-02",
            "min_score": "0.5",
            "q": "  dance   cover ",
            "sort": "score",
            "per_page": "100",
        }
    )
    assert f.to_args() == {
        "state": "confirmed",
        "character": "3",
        "platform": "tiktok",
        "since": "2026-11-01",
        "until": "2026-11-02",
        "min_score": "0.5",
        "q": "dance cover",
        "sort": "score",
        "per_page": "100",
    }
    assert QueueFilter.from_args(f.to_args()) == f
    bad = QueueFilter.from_args(
        {"state": "x", "platform": "myspace", "since": "yesterday", "min_score": "nan", "sort": "?"}
    )
    assert bad == QueueFilter() and bad.to_args() == {}
    assert Cursor.decode("not a cursor", "newest") is None
    assert Cursor.decode("2026-11-01T00:00:00+00:00~7", "newest") == Cursor(T0, 7)
    assert Cursor.decode("0.5~3", "score") == Cursor(0.5, 3)


def verdicts_and_users(store: Store) -> None:
    rows = fill(store, 12)
    new = [r["id"] for r in rows if r["review_state"] == "new"]
    change = set_review_state(store, new[0], "confirmed", "same art", reviewer="ana")
    assert change.reviewer == "ana"
    with pytest.raises(ReviewError, match="cannot go from confirmed to removed"):
        set_review_state(store, new[0], "removed", reviewer="ana")
    done, refused = set_review_states(store, [new[0], new[1]], "notice_sent", reviewer="bo")
    assert [c.detection_id for c in done] == [new[0]] and len(refused) == 1
    history = review_history(store, new[0])
    assert [(h["old_state"], h["new_state"], h["reviewer"]) for h in history] == [
        ("new", "confirmed", "ana"),
        ("confirmed", "notice_sent", "bo"),
    ]
    with store.session() as s:
        det = s.get(Detection, new[0])
        assert det.reviewed_by == "bo" and det.review_note == "same art"

    password = add_user(store, "Ana.K", "analyst")
    assert len(password) >= 20
    with pytest.raises(UserError, match="already exists"):
        add_user(store, "ana.k", "viewer")
    with pytest.raises(UserError, match="bad user name"):
        add_user(store, "two words", "viewer")
    with pytest.raises(UserError, match="unknown role"):
        add_user(store, "carol", "admin")
    assert authenticate(store, "ana.k", "wrong") is None
    assert authenticate(store, "nobody", password) is None
    user = authenticate(store, "ANA.K", password)
    assert user is not None and user.name == "Ana.K" and user.can_change
    with store.session() as s:
        stored = s.scalar(select(User.password_hash))
        assert stored.startswith("$argon2id$") and password not in stored
    new_password = reset_password(store, "Ana.K")
    assert authenticate(store, "Ana.K", password) is None
    again = authenticate(store, "Ana.K", new_password)
    assert again is not None and again.password_set_at != user.password_set_at
    assert [u["name"] for u in list_users(store)] == ["Ana.K"]
    remove_user(store, "ana.k")
    assert get_user(store, user.id) is None


def test_verdicts_and_users_sqlite(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    verdicts_and_users(store)
    store.dispose()


def test_verdicts_and_users_postgres(pg_url: str) -> None:
    store = Store(pg_url)
    verdicts_and_users(store)
    store.dispose()


# ---------------------------------------------------------------------------------------------
# the plain-words explanation


def test_explanation_of_a_semantic_flag_in_plain_words() -> None:
    sig = matcher_signals(0.82, 3.0, 12, [0.0, 1.0, 2.0, 3.0], terms=["ポム"])
    sig["embedding"]["raw"] = 0.62
    why = explain(sig, character="Pompom", reference_label="front", reference_id=12)
    assert why.text == (
        "matched reference Pompom, front at 0:03, similarity 0.62 (threshold 0.41); "
        "caption names the alias ポム"
    )
    assert ("Pompom, front", True) in why.summary[0]  # emphasised for the pages
    assert "2 of 4 frames matched (2 needed)" in why.point_texts
    assert "the caption added +0.05 to the score" in why.point_texts
    assert why.frame_scores == {0.0: 0.3, 1.0: 0.4, 2.0: 0.5, 3.0: 0.6}
    assert explain(sig, character="Pompom", reference_id=12).summary[0][1] == (
        "Pompom, reference #12",
        True,
    )


def test_explanation_of_a_copy_with_name_alias_and_ai_label() -> None:
    sig = matcher_signals(0.9, 1.5, 4, [0.0, 1.5], terms=["Pompom", "ポム"], ai_label="AI生成")
    sig["embedding"]["matched"] = False
    sig["pdq"] = {
        "kind": "copy",
        "score": 0.9,
        "raw": 6.0,
        "matched": True,
        "frame_t": 1.5,
        "reference_id": 4,
        "distance": 6,
        "max_distance": 31,
        "variant": "flip_h",
        "frames_matched": 2,
        "frames_needed": 1,
    }
    sig["caption"]["where"] = ["caption", "hashtags"]
    sig["fusion"]["decided_by"] = "pdq"
    sig["fusion"]["calibrated"] = ["pdq"]
    why = explain(sig, character="Pompom", reference_label="front", match_type="copy")
    assert why.point_texts[:3] == [
        "copy of reference Pompom, front at 0:01.5, mirrored: picture hash 6 of 256 bits apart "
        "(at most 31, calibrated)",
        "caption and hashtags name Pompom and the alias ポム",
        "the platform labels it AI生成",
    ]
    assert "similarity in look 0.70, under the threshold 0.41" in why.point_texts


def test_explanation_of_rows_without_the_matchers_shape() -> None:
    why = explain({"embed_sim": 0.884, "pdq_distance": 12}, character="X", best_frame_t=61)
    assert why.text == "best frame at 1:01; embed sim 0.88; pdq distance 12"
    assert explain(None, character="X").text == "no signal details were stored"
    assert [clock(t) for t in (0, 3, 1.5, 59.96, 3725)] == [
        "0:00",
        "0:03",
        "0:01.5",
        "1:00",
        "1:02:05",
    ]


def test_static_report_cards_use_the_same_words(tmp_path: Path) -> None:
    lab = build_lab(tmp_path, users=False)
    res = write_report(lab.cfg, lab.store, out_dir=tmp_path / "out")
    html = res.html_path.read_text(encoding="utf-8")
    card = html.split(f'data-detection-id="{lab.ids["browser_confirm"]}"', 2)[2]
    why = card.split('<ul class="why">', 1)[1].split("</ul>", 1)[0]
    assert "matched reference <em>Pompom, front</em> at 0:03, similarity 0.75" in why
    assert "caption names the alias <em>ポム</em>" in why
    assert "embedding.frame_t" not in why and "caption.raw" not in why
    lab.store.dispose()


def test_users_command_prints_the_password_once_and_never_the_hash(tmp_path: Path) -> None:
    env = {"CHARWATCH_STORAGE__DATA_DIR": str(tmp_path / "data")}
    res = run_cli("users", "add", "mika", "--role", "viewer", env=env)
    assert res.returncode == 0, res.stderr
    password = res.stdout.rsplit(" ", 1)[1].strip()
    assert "viewer 'mika'" in res.stdout and len(password) >= 20
    again = run_cli("users", "add", "MIKA", "--role", "analyst", env=env)
    assert again.returncode == 2 and "already exists" in again.stderr
    listed = run_cli("users", "list", "--format", "jsonl", env=env)
    assert listed.returncode == 0 and '"name": "mika"' in listed.stdout
    assert password not in listed.stdout and "argon2" not in listed.stdout
