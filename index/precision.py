"""What a flag's score means: the share of flags at that score that analysts found right.

Fitted from the review verdicts of one embedder's flags, one curve per match type (a copy and
a new drawing at the same score are not equally likely to be right):

* a verdict is *right* when the flag was confirmed (or went on to ``notice_sent``/``removed``)
  and *wrong* when it was rejected; flags waiting for review do not count;
* the curve is an isotonic (pool-adjacent-violators) regression of right/wrong on the score, so
  a higher score never reads as less likely to be right; each pooled block is shrunk toward its
  type's overall precision by :data:`PRIOR_STRENGTH` pseudo-verdicts, so a block of two
  confirmed flags does not read as certain;
* a match type with fewer than :data:`MIN_VERDICTS` verdicts has no curve: its flags carry no
  estimate (``None``), never a made-up one.

The matcher writes a flag's estimate into its explanation (``signals["fusion"]``:
``estimated_precision``, ``precision_verdicts``) when it flags, from the verdicts on record then;
re-matching refreshes it. The score itself stays the ranking score: the curve is non-decreasing
in it, so ordering by either agrees.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from index.review import CONFIRMED, NOTICE_SENT, REJECTED, REMOVED
from storage.db import Store
from storage.models import Detection

RIGHT_STATES = (CONFIRMED, NOTICE_SENT, REMOVED)
WRONG_STATES = (REJECTED,)
MIN_VERDICTS = 20
PRIOR_STRENGTH = 2.0


@dataclass(frozen=True)
class Block:
    """Scores ``lo``..``hi`` pooled into one level: ``right`` of ``n`` verdicts, ``value`` the
    shrunk precision."""

    lo: float
    hi: float
    right: int
    n: int
    value: float


@dataclass(frozen=True)
class PrecisionCurve:
    """Estimated precision as a non-decreasing step function of the score."""

    match_type: str
    blocks: tuple[Block, ...]
    verdicts: int
    overall: float

    def estimate(self, score: float) -> float:
        """The level of the block holding ``score``; between two blocks the lower one's (the
        cautious reading); below the first or above the last block, the end block's."""
        los = [b.lo for b in self.blocks]
        i = max(0, bisect.bisect_right(los, score) - 1)
        return self.blocks[i].value

    def as_json(self) -> dict[str, Any]:
        return {
            "match_type": self.match_type,
            "verdicts": self.verdicts,
            "overall": round(self.overall, 4),
            "blocks": [[b.lo, b.hi, b.right, b.n, round(b.value, 4)] for b in self.blocks],
        }


def _pool(levels: list[list[float]]) -> list[list[float]]:
    """Pool adjacent violators: ``levels`` are ``[lo, hi, weight_sum, weight, value]`` in score
    order; neighbours merge until the values strictly increase (equal neighbours pool too, so
    a run of confirmed flags is one level with all its verdicts behind it)."""
    out: list[list[float]] = []
    for lv in levels:
        out.append(list(lv))
        while len(out) > 1 and out[-2][4] >= out[-1][4] - 1e-12:
            b = out.pop()
            a = out[-1]
            a[1] = b[1]
            a[2] += b[2]
            a[3] += b[3]
            a[4] = a[2] / a[3]
    return out


def fit_curve(
    scores: Sequence[float],
    right: Sequence[bool],
    match_type: str,
    *,
    min_verdicts: int = MIN_VERDICTS,
    prior_strength: float = PRIOR_STRENGTH,
) -> PrecisionCurve | None:
    """The curve of one match type's verdicts, or None with fewer than ``min_verdicts``."""
    if len(scores) != len(right):
        raise ValueError("scores and verdicts differ in length")
    n = len(scores)
    if n < min_verdicts or n == 0:
        return None
    overall = sum(right) / n
    by_score: dict[float, list[int]] = {}
    for s, r in zip(scores, right, strict=True):
        acc = by_score.setdefault(float(s), [0, 0])
        acc[0] += bool(r)
        acc[1] += 1
    raw = [[s, s, float(k), float(m), k / m] for s, (k, m) in sorted(by_score.items())]
    pooled = _pool(raw)
    counts = [(int(round(p[2])), int(round(p[3]))) for p in pooled]
    # shrink toward the overall precision, then pool again: shrinking can reorder neighbours
    shrunk = [
        [p[0], p[1], k + prior_strength * overall, m + prior_strength, 0.0]
        for p, (k, m) in zip(pooled, counts, strict=True)
    ]
    for lv in shrunk:
        lv[4] = lv[2] / lv[3]
    final = _pool(shrunk)
    blocks = []
    for lv in final:
        inside = [c for p, c in zip(pooled, counts, strict=True) if lv[0] <= p[0] <= lv[1]]
        blocks.append(
            Block(
                lo=lv[0],
                hi=lv[1],
                right=sum(k for k, _ in inside),
                n=sum(m for _, m in inside),
                value=lv[4],
            )
        )
    return PrecisionCurve(match_type, tuple(blocks), n, overall)


@dataclass(frozen=True)
class Estimate:
    """A flag's estimated precision and the verdicts of its match type behind it."""

    value: float
    verdicts: int


@dataclass
class PrecisionModel:
    """One embedder's curves by match type (none for a type with too few verdicts)."""

    model_id: str | None = None
    curves: dict[str, PrecisionCurve] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        rows: Iterable[tuple[float, str, bool]],
        model_id: str | None = None,
        *,
        min_verdicts: int = MIN_VERDICTS,
    ) -> PrecisionModel:
        """From ``(score, match_type, right)`` verdicts."""
        by_type: dict[str, tuple[list[float], list[bool]]] = {}
        for score, match_type, ok in rows:
            s, r = by_type.setdefault(match_type, ([], []))
            s.append(float(score))
            r.append(bool(ok))
        model = cls(model_id=model_id, verdicts={t: len(s) for t, (s, _) in by_type.items()})
        for t, (s, r) in by_type.items():
            curve = fit_curve(s, r, t, min_verdicts=min_verdicts)
            if curve is not None:
                model.curves[t] = curve
        return model

    @classmethod
    def load(cls, store: Store, model_id: str) -> PrecisionModel:
        """Fitted from the verdicts on record for ``model_id``'s flags."""
        states = RIGHT_STATES + WRONG_STATES
        with store.session() as s:
            rows = s.execute(
                select(Detection.score, Detection.match_type, Detection.review_state).where(
                    Detection.model_id == model_id, Detection.review_state.in_(states)
                )
            ).all()
        return cls.fit(
            ((score, mt or "semantic", st in RIGHT_STATES) for score, mt, st in rows), model_id
        )

    def estimate(self, score: float, match_type: str) -> Estimate | None:
        """The estimate for a flag, or None when its match type has too few verdicts."""
        curve = self.curves.get(match_type)
        if curve is None:
            return None
        return Estimate(round(curve.estimate(score), 4), curve.verdicts)

    def annotate(self, decisions: Iterable[Any]) -> None:
        """Write each decision's estimate into its explanation (``signals["fusion"]``)."""
        for d in decisions:
            est = self.estimate(d.score, d.match_type)
            fusion = d.signals.setdefault("fusion", {})
            fusion["estimated_precision"] = est.value if est is not None else None
            fusion["precision_verdicts"] = self.verdicts.get(d.match_type, 0)

    def summary(self) -> str:
        """One line per match type, for people."""
        if not self.verdicts:
            return "no verdicts yet: flags carry no precision estimate"
        lines = []
        for t, n in sorted(self.verdicts.items()):
            curve = self.curves.get(t)
            if curve is None:
                lines.append(f"{t}: {n} verdicts (an estimate needs {MIN_VERDICTS})")
            else:
                lo, hi = curve.blocks[0].value, curve.blocks[-1].value
                lines.append(
                    f"{t}: {n} verdicts, {curve.overall:.0%} right; estimates from {lo:.0%} "
                    f"(scores up to {curve.blocks[0].hi:.3f}) to {hi:.0%} "
                    f"(from {curve.blocks[-1].lo:.3f})"
                )
        return "\n".join(lines)


def models_on_record(store: Store) -> list[PrecisionModel]:
    """One fitted model per embedder whose flags have verdicts, by model id."""
    states = RIGHT_STATES + WRONG_STATES
    with store.session() as s:
        ids = s.scalars(
            select(Detection.model_id)
            .where(Detection.review_state.in_(states), Detection.model_id.is_not(None))
            .distinct()
            .order_by(Detection.model_id)
        ).all()
    return [PrecisionModel.load(store, mid) for mid in ids]
