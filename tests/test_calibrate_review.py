"""Review states, the allow-list and calibration, through the real CLI entry point and the
real matcher, signals, FAISS and effnet-lite0 embeddings."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from sqlalchemy import select

from charwatch.cli import main
from index import registry
from index.calibrate import (
    calibrate,
    split_frames,
    stored_thresholds,
    threshold_for_fpr,
)
from index.matcher import detect_pending, load_evidence, rematch
from index.refindex import load_or_build
from index.review import TRANSITIONS, ReviewError, list_detections, set_review_state
from index.signals import EmbeddingSignal, PdqSignal, embed_threshold
from storage.models import CharacterThreshold, Detection
from tests.test_archive import Lab, scene


@pytest.fixture(scope="module")
def graded(tmp_path_factory, embedder, bank_file):
    """Pompom and Kitsumaru registered; two Pompom videos, a look-alike, an empty one."""
    lab = Lab(tmp_path_factory.mktemp("graded"), embedder, bank_file)
    for key, name in (("pompom", "Pompom"), ("kitsumaru", "Kitsumaru")):
        registry.add_character(lab.cfg, lab.store, name, images=[lab.reference(key, 0)])
    rng = random.Random(5)
    lab.p1 = lab.add_video([scene(rng, "pompom", 0.85, pose=p) for p in (0, 2)])
    lab.p2_frames = [scene(rng, "pompom", 0.8, pose=p) for p in (1, 3)]
    lab.p2 = lab.add_video(lab.p2_frames, author="Pom_Official")
    lab.moss = lab.add_video([scene(rng, "mossling", 0.8, pose=4)])
    lab.empty = lab.add_video([scene(rng, None)])
    detect_pending(lab.cfg, lab.store, embedder, progress=False)
    flags = lab.flags()
    assert (lab.p1, "Pompom") in flags and (lab.p2, "Pompom") in flags
    lab.config = lab.root / "charwatch.toml"
    lab.config.write_text(f'[storage]\ndata_dir = "{lab.cfg.data_dir.as_posix()}"\n')
    return lab


def cli(lab, capsys, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(lab.config), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def detection_id(lab, video_id: int) -> int:
    with lab.store.session() as s:
        return s.scalar(select(Detection.id).where(Detection.video_id == video_id))


# ---------------------------------------------------------------------------------------------
# review


def test_review_states_move_as_allowed_and_refuse_the_rest(graded, capsys):
    d1, d2 = detection_id(graded, graded.p1), detection_id(graded, graded.p2)

    code, out, _ = cli(graded, capsys, "detections", "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and {r["id"] for r in rows} >= {d1, d2}
    assert all(r["review_state"] == "new" for r in rows)
    code, out, _ = cli(graded, capsys, "detections", "--state", "new")
    assert code == 0 and "Pompom" in out and "review_state" in out

    for flag, state in (
        ("--needs-review", "needs_review"),
        ("--confirm", "confirmed"),
        ("--notice-sent", "notice_sent"),
        ("--removed", "removed"),
    ):
        code, out, err = cli(graded, capsys, "review", str(d1), flag, "--note", f"step {state}")
        assert code == 0, err
        assert out.strip().endswith(f"-> {state} (note: step {state})")
    with graded.store.session() as s:
        det = s.get(Detection, d1)
        assert det.review_state == "removed" and det.review_note == "step removed"
        assert det.reviewed_at is not None
    assert [r["id"] for r in list_detections(graded.store, state="removed")] == [d1]

    # a notice for a detection nobody confirmed is refused, in one line, nothing changes
    code, _, err = cli(graded, capsys, "review", str(d2), "--notice-sent")
    assert code == 2
    assert err.strip() == (
        f"charwatch: error: detection {d2}: cannot go from new to notice_sent "
        "(from new: needs_review, confirmed, rejected)"
    )
    code, _, err = cli(graded, capsys, "review", "999999", "--confirm")
    assert code == 2 and "no detection with id 999999" in err
    with pytest.raises(ReviewError, match="already removed"):
        set_review_state(graded.store, d1, "removed")
    with pytest.raises(ReviewError, match="unknown review state"):
        set_review_state(graded.store, d2, "approved")
    with graded.store.session() as s:
        assert s.get(Detection, d2).review_state == "new"
    # every state can be reached from "new", and "removed" can go back to "notice_sent"
    seen, todo = {"new"}, ["new"]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(TRANSITIONS) and TRANSITIONS["removed"] == ("notice_sent",)


# ---------------------------------------------------------------------------------------------
# allow-list


def test_allow_list_cli_adds_lists_and_removes(graded, capsys):
    code, out, err = cli(
        graded,
        capsys,
        "allow",
        "add",
        "--platform",
        "tiktok",
        "--author",
        "@Pom_Official",
        "--character",
        "Pompom",
        "--note",
        "the rights holder's own account",
    )
    assert code == 0, err
    assert out.startswith("allowed tiktok @Pom_Official for Pompom (entry ")
    entry = int(out.strip().rsplit(" ", 1)[1].rstrip(")"))
    code, out, err = cli(graded, capsys, "allow", "add", "--platform", "youtube", "--author", "x")
    assert code == 0 and "for (all characters)" in out

    code, _, err = cli(
        graded, capsys, "allow", "add", "--platform", "tiktok", "--author", "pom_official",
        "--character", "Pompom",
    )  # fmt: skip
    assert code == 2 and "already allowed for 'Pompom'" in err and len(err.splitlines()) == 1
    code, _, err = cli(
        graded, capsys, "allow", "add", "--platform", "tiktok", "--author", "a",
        "--character", "Nobody",
    )  # fmt: skip
    assert code == 2 and "no character named 'Nobody'" in err
    code, _, err = cli(graded, capsys, "allow", "add", "--platform", "tiktok", "--author", " @ ")
    assert code == 2 and "must not be empty" in err

    code, out, _ = cli(graded, capsys, "allow", "list", "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["platform"], r["author"], r["character"]) for r in rows] == [
        ("tiktok", "Pom_Official", "Pompom"),
        ("youtube", "x", None),
    ]
    other = next(r["id"] for r in rows if r["platform"] == "youtube")
    code, out, _ = cli(graded, capsys, "allow", "remove", str(other))
    assert code == 0 and out.startswith(f"removed entry {other}: youtube @x")
    code, _, err = cli(graded, capsys, "allow", "remove", str(other))
    assert code == 2 and f"no allow-list entry with id {other}" in err
    code, out, _ = cli(graded, capsys, "allow", "list")
    assert "Pom_Official" in out and "@x" not in out and str(entry) in out

    # the matcher reads the list: the allowed account's video is no longer flagged for
    # Pompom (the handle compares case-insensitively), and is again once the entry goes
    rematch(graded.store, [graded.p2, graded.p1])
    detect_pending(graded.cfg, graded.store, graded.embedder, progress=False)
    flags = graded.flags()
    assert (graded.p2, "Pompom") not in flags and (graded.p1, "Pompom") in flags
    assert cli(graded, capsys, "allow", "remove", str(entry))[0] == 0
    rematch(graded.store, [graded.p2])
    detect_pending(graded.cfg, graded.store, graded.embedder, progress=False)
    assert (graded.p2, "Pompom") in graded.flags()


# ---------------------------------------------------------------------------------------------
# calibration


def test_threshold_for_fpr_picks_the_least_strict_value():
    neg = np.array([0.1, 0.2, 0.3, 0.5, -math.inf])
    assert threshold_for_fpr(neg, 0.001, EmbeddingSignal) == pytest.approx(0.5001)
    assert threshold_for_fpr(neg, 0.2, EmbeddingSignal) == pytest.approx(0.3001)  # 1 of 5 pass
    dist = np.array([90.0, 40.0, 70.0, math.inf])
    assert threshold_for_fpr(dist, 0.001, PdqSignal) == 39  # distances: lower is a match
    assert threshold_for_fpr(np.array([100.0]), 0.001, PdqSignal) == 52  # capped


def test_calibration_stores_thresholds_and_uses_the_verdicts(graded, embedder, capsys):
    small = dict(semantic_per_ref=1, copy_per_ref=1, negative_per_ref=1, bank_samples=4)
    first = calibrate(graded.cfg, graded.store, embedder, **small)
    assert {(c.character, c.signal) for c in first} == {
        (n, s) for n in ("Pompom", "Kitsumaru") for s in ("pdq", "embedding")
    }
    emb = {c.character: c for c in first if c.signal == "embedding"}
    for c in first:
        assert c.model_id == embedder.id and c.target_fpr == 0.001
        assert c.positives > 0 and c.negatives > 0 and c.fpr == 0.0
        assert c.details["negatives"]["n"] == c.negatives
        assert {"background_bank", "other_character"} <= set(c.details["negative_sources"]) or (
            c.signal == "pdq"
        )
    # stricter than the default when a negative demands it (here a frame of the unflagged
    # look-alike video), never looser on synthetic negatives alone
    for c in emb.values():
        assert c.threshold == pytest.approx(max(c.default, c.details["fpr_threshold"]))
        assert c.threshold > c.details["negatives"]["max"]
    kitsu = emb["Kitsumaru"]
    assert kitsu.details["fpr_threshold"] < kitsu.threshold == kitsu.default
    assert "kept at the default" in kitsu.note and not kitsu.details["may_loosen"]
    assert emb["Pompom"].details["positive_sources"] == {
        "augmented_reference": 1,
        "reference_copy": 1,
    }
    with graded.store.session() as s:
        rows = list(s.scalars(select(CharacterThreshold)))
    assert len(rows) == 4 and all(r.model_id == embedder.id for r in rows)

    # an analyst rejects one Pompom video: its frames become negatives and the threshold
    # rises above them; the confirmed one gives positives
    set_review_state(graded.store, detection_id(graded, graded.p2), "rejected", note="licensed")
    confirmed = detection_id(graded, graded.p1)
    with graded.store.session() as s:
        s.get(Detection, confirmed).review_state = "confirmed"
    # (stored frames only this time: no synthetic ones)
    stored = dict(semantic_per_ref=0, copy_per_ref=0, negative_per_ref=0, bank_samples=0)
    second = calibrate(graded.cfg, graded.store, embedder, character="Pompom", **stored)
    assert {c.character for c in second} == {"Pompom"}
    after = next(c for c in second if c.signal == "embedding")
    assert after.details["negative_sources"]["rejected"] == 2
    assert after.details["positive_sources"] == {"confirmed": min(2, graded.cfg.detect.top_k)}
    ri = load_or_build(graded.cfg, graded.store, embedder)
    sig = EmbeddingSignal(graded.cfg.detect, embedder)
    pom = next(c.id for c in ri.refs.characters.values() if c.name == "Pompom")
    rejected = [
        {r.character_id: r.raw for r in sig.compare(f, ri.refs, ri.part("embedding"))}[pom]
        for f in split_frames(load_evidence(graded.store, graded.p2, embedder.id, embedder.dim))
    ]
    assert after.threshold > max(rejected) >= embed_threshold(graded.cfg.detect, embedder.id)
    assert after.fpr == 0.0 and after.details["fpr_threshold"] == after.threshold
    shown = stored_thresholds(graded.store, embedder.id)
    assert [r["threshold"] for r in shown if r["signal"] == "embedding"] == [
        emb["Kitsumaru"].threshold,
        after.threshold,
    ]

    # the matcher uses the stored threshold: a re-upload of the rejected video (flagged under
    # the default threshold before) is not flagged any more
    reupload = graded.add_video(graded.p2_frames, author="someone_else")
    detect_pending(graded.cfg, graded.store, embedder, progress=False)
    assert (reupload, "Pompom") not in graded.flags()

    code, out, _ = cli(graded, capsys, "calibrate", "--show")
    assert code == 0 and "Pompom" in out and f"{after.threshold:.3f}" in out
    code, _, err = cli(graded, capsys, "calibrate", "--target-fpr", "0.7")
    assert code == 2 and "target false-positive rate must be in (0, 0.5)" in err
    code, _, err = cli(graded, capsys, "calibrate", "--character", "Nobody")
    assert code == 2 and "no character named 'Nobody'" in err
