"""Signals: one class per kind of evidence, one file per signal, all behind one interface.

* :mod:`~index.signals.base`: the :class:`Signal` interface, its class attributes (fusion
  role, threshold direction and default, calibratability) and the data signals read and
  return (:class:`VideoEvidence`, :class:`FrameRow`, :class:`SignalResult`...);
* one file per signal: :mod:`~index.signals.pdq`, :mod:`~index.signals.embedding`,
  :mod:`~index.signals.text_prompt`, :mod:`~index.signals.caption`,
  :mod:`~index.signals.provenance`, :mod:`~index.signals.geometric`;
* shared parts: :mod:`~index.signals.vector_index` (FAISS index plus metadata),
  :mod:`~index.signals.whitening` (background whitening), :mod:`~index.signals.policy`
  (match policy, score maps), :mod:`~index.signals.text` (text folding),
  :mod:`~index.signals.subjects` (reference subjects cut from their background).

The fusion in :mod:`index.matcher` sees only the results and the classes' attributes.
Adding a signal is one new file with its class, listed in :data:`SIGNAL_CLASSES`.
"""

from __future__ import annotations

from typing import Any

from charwatch.config import DetectConfig
from index.signals.base import (
    CONTEXT,
    COPY,
    FUSION_ROLES,
    HIGHER,
    LOWER,
    ROLE_COPY,
    ROLE_EXPLAIN,
    ROLE_SEMANTIC,
    ROLE_SEMANTIC_FALLBACK,
    ROLE_SUPPORT,
    SEMANTIC,
    CharacterRef,
    FrameRow,
    IndexInputs,
    ReferenceImage,
    ReferenceSet,
    Signal,
    SignalResult,
    VideoEvidence,
)
from index.signals.caption import CaptionSignal
from index.signals.embedding import (
    DEFAULT_PROFILE,
    PROFILES,
    EmbeddingSignal,
    EmbedProfile,
    embed_profile,
    embed_threshold,
)
from index.signals.geometric import GeometricSignal
from index.signals.pdq import DIHEDRAL_NAMES, PdqSignal
from index.signals.policy import (
    MatchPolicy,
    calibrate_distance,
    calibrate_similarity,
    frame_seconds,
)
from index.signals.provenance import ProvenanceSignal
from index.signals.subjects import composite_on, foreground_mask
from index.signals.text import fold_text
from index.signals.text_prompt import GENERIC_PROMPTS, TextPromptSignal
from index.signals.vector_index import PDQ_BITS, VectorIndex, hashes_to_array
from index.signals.whitening import Whitener, signed_sqrt

# every signal, in the order they run; of two matched signals with one fusion role, the
# first here decides
SIGNAL_CLASSES: tuple[type[Signal], ...] = (
    PdqSignal,
    EmbeddingSignal,
    TextPromptSignal,
    CaptionSignal,
    ProvenanceSignal,
    GeometricSignal,
)


def make_signals(cfg: DetectConfig, embedder: Any) -> list[Signal]:
    """The signals of :data:`SIGNAL_CLASSES` that can run with this embedder."""
    sigs = [cls(cfg, embedder) for cls in SIGNAL_CLASSES]
    return [s for s in sigs if s.available()]


__all__ = [
    "CONTEXT",
    "COPY",
    "DEFAULT_PROFILE",
    "DIHEDRAL_NAMES",
    "FUSION_ROLES",
    "GENERIC_PROMPTS",
    "HIGHER",
    "LOWER",
    "PDQ_BITS",
    "PROFILES",
    "ROLE_COPY",
    "ROLE_EXPLAIN",
    "ROLE_SEMANTIC",
    "ROLE_SEMANTIC_FALLBACK",
    "ROLE_SUPPORT",
    "SEMANTIC",
    "SIGNAL_CLASSES",
    "CaptionSignal",
    "CharacterRef",
    "EmbedProfile",
    "EmbeddingSignal",
    "FrameRow",
    "GeometricSignal",
    "IndexInputs",
    "MatchPolicy",
    "PdqSignal",
    "ProvenanceSignal",
    "ReferenceImage",
    "ReferenceSet",
    "Signal",
    "SignalResult",
    "TextPromptSignal",
    "VectorIndex",
    "VideoEvidence",
    "Whitener",
    "calibrate_distance",
    "calibrate_similarity",
    "composite_on",
    "embed_profile",
    "embed_threshold",
    "fold_text",
    "foreground_mask",
    "frame_seconds",
    "hashes_to_array",
    "make_signals",
    "signed_sqrt",
]
