"""Context: how a video was made (platform AI label, C2PA Content Credentials)."""

from __future__ import annotations

from typing import Any

from index.signals.base import (
    CONTEXT,
    ROLE_EXPLAIN,
    ReferenceSet,
    Signal,
    SignalResult,
    VideoEvidence,
)
from index.signals.vector_index import VectorIndex

GENERATIVE_SOURCE_TYPES = (
    "trainedalgorithmicmedia",
    "compositewithtrainedalgorithmicmedia",
    "algorithmicmedia",
)


class ProvenanceSignal(Signal):
    """Platform AI label and C2PA Content Credentials: context about how a video was made.

    Not a match signal: it says nothing about which character is shown. A valid manifest with
    a generative ``digitalSourceType`` or a platform AI label sets ``matched`` (AI-made);
    an absent manifest is no evidence either way (platforms strip them).
    """

    name = "provenance"
    kind = CONTEXT
    fusion_role = ROLE_EXPLAIN

    def features(self, video: VideoEvidence) -> dict[str, Any]:
        info = video.c2pa_info or {}
        return {
            "ai_label": video.ai_label or None,
            "c2pa_state": video.c2pa_state or info.get("state") or None,
            "c2pa_generator": info.get("claim_generator"),
            "c2pa_digital_source_type": info.get("digital_source_type"),
            "c2pa_signer": info.get("signer"),
        }

    def compare(
        self, video: VideoEvidence, refs: ReferenceSet, index: VectorIndex | None
    ) -> list[SignalResult]:
        f = self.features(video)
        source = str(f["c2pa_digital_source_type"] or "").rsplit("/", 1)[-1].casefold()
        generative_c2pa = f["c2pa_state"] in ("valid", "trusted") and source in (
            GENERATIVE_SOURCE_TYPES
        )
        ai = bool(f["ai_label"]) or generative_c2pa
        reasons = []
        if f["ai_label"]:
            reasons.append("platform_label")
        if generative_c2pa:
            reasons.append("c2pa_generative")
        return [
            SignalResult(
                signal=self.name,
                kind=self.kind,
                character_id=None,
                score=1.0 if ai else 0.0,
                raw=None,
                matched=ai,
                details={**f, "ai_generated": ai, "reasons": reasons},
            )
        ]
