"""Estimated precision: a flag's score read as the share of past flags at that score that
analysts confirmed (``index.precision``), carried by the flag into the report and the desk."""

from __future__ import annotations

import random

import pandas as pd
import pytest
from sqlalchemy import select

from charwatch.demo import register_demo_characters
from index.matcher import detect_pending
from index.precision import MIN_VERDICTS, PrecisionModel, fit_curve
from reports.csv_export import CSV_COLUMNS, csv_frame
from reports.data import Period, load_flags
from reports.explain import explain
from storage import Character, Detection, Video, VideoState
from tests.conftest import run_cli, seed_bank


def test_curve_is_monotonic_shrunk_and_needs_enough_verdicts():
    rng = random.Random(3)
    scores = [rng.random() for _ in range(400)]
    right = [rng.random() < 0.2 + 0.75 * s for s in scores]  # truly rising with the score
    curve = fit_curve(scores, right, "semantic")
    assert curve is not None and curve.verdicts == 400
    grid = [i / 50 for i in range(51)]
    est = [curve.estimate(s) for s in grid]
    assert all(a <= b for a, b in zip(est, est[1:], strict=False))
    assert est[0] < 0.35 and est[-1] > 0.8  # follows the truth at both ends
    assert sum(b.n for b in curve.blocks) == 400
    assert curve.blocks[0].lo == min(scores) and curve.blocks[-1].hi == max(scores)

    # a block of perfect verdicts is shrunk toward the overall precision, never read as certain
    few = fit_curve([0.1] * 10 + [0.9] * 10, [False] * 10 + [True] * 10, "copy")
    assert few is not None and 0.5 < few.estimate(0.95) < 1.0 and 0.0 < few.estimate(0.0) < 0.5
    # decreasing verdicts pool into one level: a higher score never reads as less likely right
    flat = fit_curve([0.1] * 10 + [0.9] * 10, [True] * 10 + [False] * 10, "copy")
    assert flat is not None and len(flat.blocks) == 1 and flat.estimate(0.0) == pytest.approx(0.5)

    assert fit_curve(scores[: MIN_VERDICTS - 1], right[: MIN_VERDICTS - 1], "copy") is None
    model = PrecisionModel.fit([(s, "semantic", r) for s, r in zip(scores, right, strict=True)])
    assert model.estimate(0.5, "copy") is None  # no copy verdicts: no estimate
    assert model.estimate(0.5, "semantic").verdicts == 400
    with pytest.raises(ValueError):
        fit_curve([0.1, 0.2], [True], "copy")


def _history(store, model_id: str, n: int, match_type: str, rng: random.Random) -> list:
    """``n`` reviewed flags of ``model_id`` on videos of their own: confirmed more often the
    higher the score; returns ``(score, match_type, right)``."""
    rows = []
    with store.session() as s:
        cid = s.scalars(select(Character.id)).first()
        for i in range(n):
            v = Video(
                platform="tiktok",
                platform_id=f"past-{match_type}-{i}",
                url=f"https://www.tiktok.com/@past/video/{match_type}{i}",
                state=VideoState.MATCHED,
            )
            s.add(v)
            s.flush()
            score = round(rng.uniform(0.3, 1.0), 4)
            ok = rng.random() < score
            state = rng.choice(("confirmed", "notice_sent")) if ok else "rejected"
            s.add(
                Detection(
                    video_id=v.id,
                    character_id=cid,
                    score=score,
                    match_type=match_type,
                    model_id=model_id,
                    review_state=state,
                )
            )
            rows.append((score, match_type, ok))
        # flags nobody reviewed yet and another embedder's verdicts do not count
        for i, (mid, st) in enumerate(((model_id, "new"), ("clip:other", "rejected"))):
            v = Video(platform="tiktok", platform_id=f"other-{match_type}-{i}", url="u")
            s.add(v)
            s.flush()
            s.add(
                Detection(
                    video_id=v.id,
                    character_id=cid,
                    score=0.99,
                    match_type=match_type,
                    model_id=mid,
                    review_state=st,
                )
            )
    return rows


def test_flags_carry_the_estimate_into_report_and_explanation(stored_videos, embedder, bank_file):
    stored = stored_videos()
    cfg, store = stored.cfg, stored.store
    register_demo_characters(cfg, store)
    seed_bank(cfg, bank_file)
    rng = random.Random(8)
    history = _history(store, embedder.id, 40, "semantic", rng)
    history += _history(store, embedder.id, MIN_VERDICTS - 1, "copy", rng)  # one short
    with store.session() as s:
        past = set(s.scalars(select(Detection.id)))

    stats = detect_pending(cfg, store, embedder, progress=False)
    assert stats.matched == 3 and stats.flags >= 1, stats.summary()
    expected = PrecisionModel.fit(history)
    assert set(expected.curves) == {"semantic"}
    with store.session() as s:
        fresh = [d for d in s.scalars(select(Detection)) if d.id not in past]
    assert any(d.match_type == "semantic" for d in fresh), [d.match_type for d in fresh]
    for det in fresh:
        fusion = det.signals["fusion"]
        want = expected.estimate(det.score, det.match_type)
        if det.match_type == "semantic":
            assert want is not None and fusion["estimated_precision"] == want.value
            assert fusion["precision_verdicts"] == 40
        else:
            assert fusion["estimated_precision"] is None
            assert fusion["precision_verdicts"] == MIN_VERDICTS - 1

    with store.session() as s:
        flags = load_flags(s, Period(None, None))
    table = csv_frame(flags)
    assert list(table.columns) == list(CSV_COLUMNS) and CSV_COLUMNS[-1] == "estimated_precision"
    by_id = dict(zip(table["detection_id"], table["estimated_precision"], strict=True))
    for det in fresh:
        stored_value = det.signals["fusion"]["estimated_precision"]
        if stored_value is None:
            assert pd.isna(by_id[det.id])
        else:
            assert by_id[det.id] == pytest.approx(stored_value)
        why = explain(det.signals, character="Pompom", match_type=det.match_type)
        words = " | ".join(why.point_texts).lower()
        if stored_value is None:
            assert "no precision estimate yet" in words
        else:
            assert f"about {stored_value:.0%} of the 40 reviewed semantic flags" in words
            assert "reviewed semantic flags" in why.text.lower()  # a lead clause

    # what the verdicts say, for people: charwatch calibrate --show
    res = run_cli("calibrate", "--show", config=stored.config)
    assert res.returncode == 0, res.stderr
    assert f"estimated precision of {embedder.id} flags" in res.stdout
    assert "semantic: 40 verdicts" in res.stdout
    assert f"copy: {MIN_VERDICTS - 1} verdicts (an estimate needs {MIN_VERDICTS})" in res.stdout
    assert "clip:other" in res.stdout  # the other embedder's one verdict, listed apart


def test_benchmark_reads_the_estimate_on_another_seed():
    """``bench.samestyle.precision_check`` fits on one seed's flags and reads another's."""
    from bench.quality import PairRow
    from bench.samestyle import precision_check

    def rows(seed: int, n: int) -> list[PairRow]:
        rng = random.Random(seed)
        out = []
        for i in range(n):
            score = rng.uniform(0.5, 1.0)
            label = rng.random() < score
            out.append(
                PairRow(
                    video=f"v{i}",
                    transform="scale",
                    group="easy",
                    kind="new drawing",
                    character="a",
                    label=label,
                    negative_video=False,
                    scores={"fused": 1.0 + score},
                    decisions={"fused": i % 5 != 0},  # one pair in five not flagged
                    match_type="semantic",
                )
            )
        return out

    check = precision_check(rows(1, 300), rows(2, 300))
    assert check["tune_flags"] == {"semantic": 240} and check["report_flags"] == 240
    assert check["report_flags_estimated"] == 240
    assert sum(b["flags"] for b in check["bins"]) == 240
    assert abs(check["mean_estimate"] - check["right"]) < 0.05  # same process, new draw
    assert check["calibration_error"] < 0.1
    few = precision_check(rows(1, 10), rows(2, 300))
    assert few["report_flags_estimated"] == 0 and few["calibration_error"] is None
