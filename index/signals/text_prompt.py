"""Semantic evidence in words: frame regions near the character's text prompts."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from charwatch.config import DetectConfig
from index.signals.base import (
    ROLE_SEMANTIC_FALLBACK,
    SEMANTIC,
    CharacterRef,
    IndexInputs,
    ReferenceSet,
    Signal,
    SignalResult,
    VideoEvidence,
)
from index.signals.embedding import DEFAULT_PROFILE, embed_profile
from index.signals.policy import (
    SUPPRESSED,
    MatchPolicy,
    calibrate_similarity,
    frame_seconds,
    frame_verdict,
)
from index.signals.vector_index import SEARCH_K, VectorIndex

GENERIC_PROMPTS = (
    "a photo",
    "a video frame",
    "a cartoon character",
    "an anime character",
    "a person",
    "text on a screen",
)


class TextPromptSignal(Signal):
    """The character described in words: frame regions vs the character's prompts.

    Needs an embedder with a text tower (CLIP). Each frame's best region-prompt cosine must
    reach the profile's ``text_threshold`` and beat every generic prompt ("a photo", "a
    cartoon character", ...) for that region, so a frame that merely looks like any cartoon
    does not count. Same temporal rule as :class:`EmbeddingSignal`.
    """

    name = "text_prompt"
    kind = SEMANTIC
    indexed = True
    fusion_role = ROLE_SEMANTIC_FALLBACK
    default_threshold: ClassVar[float | None] = DEFAULT_PROFILE.text_threshold
    calibratable = True
    threshold_detail = "threshold"

    @classmethod
    def threshold_default(cls, cfg: DetectConfig, embedder_id: str) -> float | None:
        return embed_profile(embedder_id).text_threshold

    @classmethod
    def applies_to(cls, char: CharacterRef | None, has_images: bool) -> bool:
        return char is not None and bool(char.prompts)

    def available(self) -> bool:
        return self.embedder is not None and bool(getattr(self.embedder, "has_text", False))

    def index_references(self, refs: ReferenceSet, inputs: IndexInputs) -> VectorIndex | None:
        emb = inputs.embedder
        if not getattr(emb, "has_text", False):
            return None
        texts: list[str] = []
        meta: list[dict[str, Any]] = []
        for char in refs.characters.values():
            for prompt in char.prompts:
                texts.append(prompt)
                meta.append({"character_id": char.id, "prompt": prompt})
        vecs = emb.embed_texts(texts) if texts else np.zeros((0, emb.dim), np.float32)
        generic = emb.embed_texts(list(GENERIC_PROMPTS))
        return VectorIndex.flat_ip(vecs, meta, generic=generic.astype(np.float32))

    def compare(
        self, video: VideoEvidence, refs: ReferenceSet, index: VectorIndex | None
    ) -> list[SignalResult]:
        vectors = video.vectors
        if index is None or index.ntotal == 0 or len(vectors) == 0:
            return []
        prof = embed_profile(self.embedder.id)
        generic_best = (vectors @ index.arrays["generic"].T).max(axis=1)
        sims, ids = index.search(vectors, SEARCH_K)
        n = len(video.frames)
        per: dict[int, dict[str, Any]] = {}
        for row in range(sims.shape[0]):
            fi = int(video.vector_frame[row])
            for s, i in zip(sims[row], ids[row], strict=True):
                if i < 0:
                    continue
                m = index.meta[int(i)]
                acc = per.setdefault(
                    m["character_id"],
                    {"score": np.full(n, -np.inf, np.float32), "prompt": [None] * n},
                )
                # a region counts only where it beats every generic prompt
                value = float(s) if s > generic_best[row] else SUPPRESSED
                if value > acc["score"][fi]:
                    acc["score"][fi] = value
                    acc["prompt"][fi] = m["prompt"]
        secs = frame_seconds([f.t for f in video.frames], video.duration_s)
        out = []
        for cid, acc in per.items():
            char = refs.characters.get(cid)
            calibrated = char.threshold(self.name) if char is not None else None
            thr = calibrated if calibrated is not None else prof.text_threshold
            policy = MatchPolicy.for_character(char, self.cfg.min_frames)
            raw, over, need, seconds, matched = frame_verdict(
                acc["score"], thr, self.cfg.top_k, policy, secs
            )
            if not np.isfinite(raw):
                continue
            best = int(np.argmax(acc["score"]))
            out.append(
                SignalResult(
                    signal=self.name,
                    kind=self.kind,
                    character_id=cid,
                    score=calibrate_similarity(raw, thr, thr - 0.1, thr + 0.1),
                    raw=raw,
                    matched=matched,
                    frame_t=video.frames[best].t,
                    details={
                        "threshold": thr,
                        "calibrated": calibrated is not None,
                        "prompt": acc["prompt"][best],
                        "frames_over": over,
                        "frames_needed": need,
                        "seconds_matched": seconds,
                    },
                )
            )
        return out
