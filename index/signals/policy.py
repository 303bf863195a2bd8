"""How much of a video must match, and how raw values map to scores.

Shared by the signals that score frames: a frame's value is compared with the threshold, a
:class:`MatchPolicy` decides whether enough frames (and seconds) match, and the raw value is
mapped to a score where 0.5 sits at the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from index.signals.base import CharacterRef

SUPPRESSED = -1.0  # the score of a region another character (or a negative) wins


def calibrate_similarity(raw: float, threshold: float, floor: float, ceiling: float) -> float:
    """Piecewise-linear map: ``floor`` -> 0, ``threshold`` -> 0.5, ``ceiling`` -> 1, clipped."""
    if raw >= threshold:
        span = max(ceiling - threshold, 1e-6)
        return float(min(1.0, 0.5 + 0.5 * (raw - threshold) / span))
    span = max(threshold - floor, 1e-6)
    return float(max(0.0, 0.5 * (raw - floor) / span))


def calibrate_distance(distance: int, max_distance: int) -> float:
    """PDQ bits: 0 -> 1, ``max_distance`` -> 0.5, 128 (unrelated) -> 0."""
    max_distance = max(1, max_distance)
    if distance <= max_distance:
        return 1.0 - 0.5 * distance / max_distance
    return float(max(0.0, 0.5 * (128 - distance) / max(1, 128 - max_distance)))


def frame_seconds(times: Sequence[float], duration_s: float | None = None) -> np.ndarray:
    """How many seconds of the video each sampled frame stands for: from halfway to the
    previous frame to halfway to the next (the first from 0, the last to the end, or half a
    median step past it when the duration is unknown)."""
    t = np.asarray(times, dtype=np.float64)
    if t.size == 0:
        return np.zeros(0)
    if t.size == 1:
        return np.array([float(duration_s) if duration_s and duration_s > 0 else 1.0])
    mids = (t[1:] + t[:-1]) / 2
    step = float(np.median(np.diff(t)))
    end = float(duration_s) if duration_s and duration_s > t[-1] else t[-1] + step / 2
    lo = np.concatenate([[0.0], mids])
    hi = np.concatenate([mids, [end]])
    return np.maximum(hi - lo, 0.0)


@dataclass(frozen=True)
class MatchPolicy:
    """How much of a video must match: ``min_frames`` sampled frames over the threshold and,
    when ``min_seconds`` > 0, that many seconds of video covered by them. ``strict``: the
    frame count is not lowered for videos with fewer frames (an explicit character policy)."""

    min_frames: int = 1
    min_seconds: float = 0.0
    strict: bool = False

    @classmethod
    def for_character(
        cls, char: CharacterRef | None, default_min_frames: int, *, copy: bool = False
    ) -> MatchPolicy:
        """The character's own policy, else the default (copies: one frame is enough)."""
        explicit = char is not None and char.min_frames is not None
        frames = char.min_frames if explicit and char is not None else None
        if frames is None:
            frames = 1 if copy else default_min_frames
        seconds = char.min_seconds if char is not None and char.min_seconds else 0.0
        return cls(max(1, int(frames)), max(0.0, float(seconds)), strict=explicit)

    def check(
        self, over: np.ndarray, seconds_per_frame: np.ndarray, n_valid: int
    ) -> tuple[int, int, float, bool]:
        """``(frames over, frames needed, seconds matched, matched)`` for a boolean mask of
        the frames over the threshold."""
        over = np.asarray(over, dtype=bool)
        count = int(over.sum())
        need = self.min_frames if self.strict else max(1, min(self.min_frames, n_valid))
        secs = float(seconds_per_frame[over].sum()) if len(seconds_per_frame) else 0.0
        ok = count > 0 and count >= need and secs + 1e-6 >= self.min_seconds
        return count, need, round(secs, 3), ok


def frame_verdict(
    scores: np.ndarray,
    threshold: float,
    top_k: int,
    policy: MatchPolicy,
    seconds_per_frame: np.ndarray,
) -> tuple[float, int, int, float, bool]:
    """``(top-k mean, frames over, frames needed, seconds matched, matched)`` of one
    character's per-frame scores (-inf: a frame without a score)."""
    valid = np.isfinite(scores)
    if not valid.any():
        return float("-inf"), 0, policy.min_frames, 0.0, False
    top = np.sort(scores[valid])[::-1][: max(1, top_k)]
    over, need, secs, ok = policy.check(
        valid & (scores >= threshold), seconds_per_frame, int(valid.sum())
    )
    return float(top.mean()), over, need, secs, ok
