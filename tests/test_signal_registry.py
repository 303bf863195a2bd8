"""A signal takes part in fusion and calibration through its class attributes alone.

The toy signals here are defined in the test, never registered: fusion and calibration must
treat them by their ``fusion_role``, ``direction``, thresholds and bonus, as they treat the
built-in ones.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from charwatch.config import Config
from index.calibrate import passes, threshold_for_fpr
from index.matcher import detect_video, fuse
from index.refindex import ReferenceIndex
from index.signals import (
    FUSION_ROLES,
    LOWER,
    ROLE_COPY,
    ROLE_EXPLAIN,
    ROLE_SEMANTIC,
    ROLE_SUPPORT,
    SEMANTIC,
    SIGNAL_CLASSES,
    CharacterRef,
    EmbeddingSignal,
    ReferenceSet,
    Signal,
    SignalResult,
    VectorIndex,
    VideoEvidence,
)


class TitleSignal(Signal):
    """Toy semantic evidence: the caption starts with the character's name."""

    name = "title"
    kind = SEMANTIC
    fusion_role = ROLE_SEMANTIC
    default_threshold = 0.5
    threshold_detail = "threshold"
    fusion_threshold_key = "title_threshold"

    def compare(
        self, video: VideoEvidence, refs: ReferenceSet, index: VectorIndex | None
    ) -> list[SignalResult]:
        out = []
        for char in refs.characters.values():
            if video.caption.casefold().startswith(char.name.casefold()):
                out.append(
                    SignalResult(
                        signal=self.name,
                        kind=self.kind,
                        character_id=char.id,
                        score=0.8,
                        raw=1.0,
                        matched=True,
                        frame_t=0.0,
                        details={"threshold": 0.5},
                    )
                )
        return out


class TitleHint(TitleSignal):
    """The same evidence, only explaining."""

    fusion_role = ROLE_EXPLAIN


class TitleBonus(TitleSignal):
    """The same evidence as support: a bonus on another signal's flag."""

    fusion_role = ROLE_SUPPORT
    fusion_bonus = 0.1


class TitleCopy(TitleSignal):
    """The same evidence counted as a copy."""

    fusion_role = ROLE_COPY


class GapSignal(Signal):
    """Toy distance signal for calibration: lower is a match, never looser than 10."""

    name = "gap"
    kind = SEMANTIC
    direction = LOWER
    calibratable = True
    loosest_threshold = 10.0

    def compare(
        self, video: VideoEvidence, refs: ReferenceSet, index: VectorIndex | None
    ) -> list[SignalResult]:
        return []


def _setup(tmp_path: Path) -> tuple[Config, ReferenceIndex]:
    cfg = Config()
    cfg.storage.data_dir = str(tmp_path / "data")
    chars = {1: CharacterRef(1, "Pompom"), 2: CharacterRef(2, "Kumo")}
    ri = ReferenceIndex(
        embedder_id="toy", fingerprint="toy", refs=ReferenceSet(chars, []), parts={}
    )
    return cfg, ri


def _video(caption: str) -> VideoEvidence:
    return VideoEvidence(video_id=7, caption=caption)


def test_a_new_semantic_signal_flags_through_its_role(tmp_path):
    cfg, ri = _setup(tmp_path)
    [d] = detect_video(cfg, _video("Pompom dancing"), ri, [TitleSignal(cfg.detect)])
    assert d.character_id == 1 and d.match_type == SEMANTIC and d.score == 0.8
    fusion = d.signals["fusion"]
    assert fusion["decided_by"] == "title" and fusion["title_threshold"] == 0.5
    assert d.signals["title"]["matched"] is True
    assert detect_video(cfg, _video("a cat"), ri, [TitleSignal(cfg.detect)]) == []


def test_the_role_not_the_name_decides(tmp_path):
    cfg, ri = _setup(tmp_path)
    video = _video("Kumo at the beach")
    assert detect_video(cfg, video, ri, [TitleHint(cfg.detect)]) == []  # explains only
    assert detect_video(cfg, video, ri, [TitleBonus(cfg.detect)]) == []  # support only
    [d] = detect_video(cfg, video, ri, [TitleCopy(cfg.detect)])
    assert d.character_id == 2 and d.match_type == "copy"
    # a result of a signal fusion is not told about only explains
    results = {"title": TitleSignal(cfg.detect).compare(video, ri.refs, None)}
    assert fuse(cfg, video, ri, results, [TitleHint]) == []
    assert [x.character_id for x in fuse(cfg, video, ri, results, [TitleSignal])] == [2]


def test_a_support_signal_adds_its_bonus_to_another_flag(tmp_path):
    cfg, ri = _setup(tmp_path)
    video = _video("Pompom again")
    semantic = SignalResult("embedding", SEMANTIC, 1, score=0.6, raw=0.6, matched=True)
    results = {
        "embedding": [semantic],
        "title": TitleBonus(cfg.detect).compare(video, ri.refs, None),
    }
    [d] = fuse(cfg, video, ri, results, [EmbeddingSignal, TitleBonus])
    assert d.score == pytest.approx(0.7)
    assert d.signals["fusion"]["caption_bonus"] == pytest.approx(0.1)
    assert d.signals["fusion"]["decided_by"] == "embedding"
    [plain] = fuse(cfg, video, ri, {"embedding": [semantic]}, [EmbeddingSignal, TitleBonus])
    assert plain.score == pytest.approx(0.6)


def test_calibration_follows_the_threshold_direction():
    dist = np.array([30.0, 4.0, 20.0, math.inf])
    assert threshold_for_fpr(dist, 0.001, GapSignal) == 3  # under the nearest negative
    assert threshold_for_fpr(np.array([50.0]), 0.001, GapSignal) == 10  # never looser
    assert passes(np.array([2.0, 3.0, 4.0]), 3.0, GapSignal).tolist() == [True, True, False]
    sims = np.array([0.2, 0.4])
    assert threshold_for_fpr(sims, 0.001, TitleSignal) == pytest.approx(0.4001)


def test_every_registered_signal_declares_its_attributes():
    names = [cls.name for cls in SIGNAL_CLASSES]
    assert len(set(names)) == len(names)
    for cls in SIGNAL_CLASSES:
        assert cls.fusion_role in FUSION_ROLES
        assert cls.direction in ("higher", "lower")
        if cls.calibratable:
            assert cls.default_threshold is not None and cls.indexed
        if cls.fusion_role == ROLE_SUPPORT:
            assert cls.fusion_bonus > 0
