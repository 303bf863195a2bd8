"""Scores as the copy-detection challenges compute them, plus the counts a user asks for.

* :func:`micro_ap`: micro-average precision over all (video, character) pairs pooled and ranked
  by score (the ISC21 / VSC22 descriptor-track metric). Pairs without a score (``-inf`` or
  ``nan``: the signal produced nothing) are never retrieved, so they cost recall.
* :func:`recall_at_precision`: the largest recall reached at precision >= ``p`` over all score
  thresholds, with that threshold (ISC21 reports it at p = 0.9).
* :func:`decision_counts`: precision, recall and false positives of a fixed yes/no decision.

Ties are scored pessimistically: pairs with equal scores are taken together, so a tie between a
positive and a negative never earns the positive a better rank than the negative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _ranked(scores: Sequence[float], labels: Sequence[bool]) -> tuple[np.ndarray, np.ndarray, int]:
    """Scores (descending, finite only), labels in the same order, and the positive count."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape} vs {y.shape}")
    n_pos = int(y.sum())
    keep = np.isfinite(s)
    s, y = s[keep], y[keep]
    order = np.argsort(-s, kind="mergesort")
    return s[order], y[order], n_pos


def _tie_ends(s: np.ndarray) -> np.ndarray:
    """Indexes of the last element of each run of equal scores (s sorted descending)."""
    if s.size == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.nonzero(np.diff(s) != 0)[0]
    return np.append(change, s.size - 1)


def micro_ap(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Micro-AP: sum over ranks of precision x recall gain; 0.0 when there is no positive."""
    s, y, n_pos = _ranked(scores, labels)
    if n_pos == 0 or s.size == 0:
        return 0.0
    tp = np.cumsum(y)
    ends = _tie_ends(s)
    tp_at, n_at = tp[ends], ends + 1
    prev_tp = np.concatenate(([0], tp_at[:-1]))
    return float(np.sum((tp_at - prev_tp) / n_pos * (tp_at / n_at)))


def recall_at_precision(
    scores: Sequence[float], labels: Sequence[bool], precision: float = 0.9
) -> tuple[float, float | None]:
    """``(recall, threshold)``: the best recall at precision >= ``precision``, and the lowest
    score still accepted there (``score >= threshold`` is the decision). ``(0.0, None)`` when
    no threshold reaches that precision."""
    s, y, n_pos = _ranked(scores, labels)
    if n_pos == 0 or s.size == 0:
        return 0.0, None
    tp = np.cumsum(y)
    ends = _tie_ends(s)
    prec = tp[ends] / (ends + 1)
    rec = tp[ends] / n_pos
    ok = np.nonzero(prec >= precision)[0]
    if ok.size == 0:
        return 0.0, None
    best = ok[np.argmax(rec[ok])]
    return float(rec[best]), float(s[ends[best]])


@dataclass
class DecisionCounts:
    """A yes/no decision over pairs: true/false positives and the derived rates."""

    tp: int
    fp: int
    positives: int

    @property
    def recall(self) -> float:
        return self.tp / self.positives if self.positives else 0.0

    @property
    def precision(self) -> float:
        flagged = self.tp + self.fp
        return self.tp / flagged if flagged else 1.0


def decision_counts(decisions: Sequence[bool], labels: Sequence[bool]) -> DecisionCounts:
    """Counts of a fixed decision (e.g. the matcher's flags) against the ground truth."""
    d = np.asarray(decisions, dtype=bool)
    y = np.asarray(labels, dtype=bool)
    if d.shape != y.shape:
        raise ValueError(f"decisions and labels differ in length: {d.shape} vs {y.shape}")
    return DecisionCounts(tp=int((d & y).sum()), fp=int((d & ~y).sum()), positives=int(y.sum()))


def per_thousand(count: int, total: int) -> float:
    """``count`` per 1,000 of ``total`` (nan when ``total`` is 0)."""
    return 1000.0 * count / total if total else math.nan


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean share of each query's true ``k`` nearest ids found among its ``k`` returned ids."""
    found = np.asarray(found)[:, :k]
    truth = np.asarray(truth)[:, :k]
    if truth.size == 0:
        return 0.0
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits) / k)


def proc_status_mb(field: str = "VmHWM") -> float | None:
    """A memory field of ``/proc/self/status`` in MiB: ``VmHWM`` is this process's peak RSS,
    ``VmRSS`` its current RSS (None where /proc does not exist).

    ``getrusage().ru_maxrss`` is not used: Linux carries the parent's peak over into a child
    started with fork + exec, so a child of a big process would report the parent's size.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None
