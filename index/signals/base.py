"""The signal interface and the data every signal reads or returns.

Following python-threatexchange's ``SignalType``, a signal is one class in one file that
carries everything about itself:

* ``name`` and ``kind`` (the evidence it gives: :data:`COPY`, :data:`SEMANTIC` or
  :data:`CONTEXT`, recorded in each :class:`SignalResult`);
* how fusion uses it (``fusion_role``, ``fusion_bonus``) and how its threshold reads
  (``direction``, ``default_threshold``, ``calibratable``), so :mod:`index.matcher` and
  :mod:`index.calibrate` read these attributes and never a signal's name;
* :meth:`Signal.features`: what it reads from one video's stored row, frames and vectors;
* :meth:`Signal.index_references`: how the references become a :class:`VectorIndex`;
* :meth:`Signal.compare`: one :class:`SignalResult` per character, with a ``score`` in [0, 1]
  where 0.5 sits at the decision threshold, the ``raw`` value (distance or similarity), and
  ``matched``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from charwatch.config import DetectConfig
from index.signals.vector_index import VectorIndex

# the kind of evidence (SignalResult.kind; a flag's match type is COPY or SEMANTIC)
COPY = "copy"
SEMANTIC = "semantic"
CONTEXT = "context"

# threshold directions
HIGHER = "higher"  # a raw value at or over the threshold matches (similarity, inliers)
LOWER = "lower"  # a raw value at or under the threshold matches (distance)

# fusion roles
ROLE_COPY = "copy"  # a match flags on its own, as a copy
ROLE_SEMANTIC = "semantic"  # a match flags on its own, as semantic evidence
ROLE_SEMANTIC_FALLBACK = "semantic_fallback"  # semantic, only for characters without pictures
ROLE_SUPPORT = "support"  # a match adds ``fusion_bonus`` to a flag; never flags
ROLE_EXPLAIN = "explain"  # explains a flag; never flags, never changes a score
FUSION_ROLES = (ROLE_COPY, ROLE_SEMANTIC, ROLE_SEMANTIC_FALLBACK, ROLE_SUPPORT, ROLE_EXPLAIN)


# ---------------------------------------------------------------------------------------------
# data the signals read and return


@dataclass
class SignalResult:
    """One signal's verdict for one (video, character); ``character_id`` None: video-wide."""

    signal: str
    kind: str
    character_id: int | None
    score: float
    raw: float | None
    matched: bool
    frame_t: float | None = None
    reference_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """A JSON-safe dict (floats rounded) for ``Detection.signals``."""

        def clean(v: Any) -> Any:
            if isinstance(v, float | np.floating):
                return round(float(v), 4)
            if isinstance(v, np.integer):
                return int(v)
            if isinstance(v, dict):
                return {str(k): clean(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [clean(x) for x in v]
            return v

        return clean(
            {
                "kind": self.kind,
                "score": self.score,
                "raw": self.raw,
                "matched": self.matched,
                "frame_t": self.frame_t,
                "reference_id": self.reference_id,
                **self.details,
            }
        )


@dataclass
class FrameRow:
    """A stored frame, as the signals see it."""

    frame_id: int
    t: float
    pdq: str | None
    pdq_quality: int | None
    thumb_path: str | None = None
    image_path: str | None = None


@dataclass
class VideoEvidence:
    """Everything stored for one video that a signal may read.

    ``vectors`` are the region embeddings (float32, rows L2-normalised) of ``model_id``;
    ``vector_frame[i]`` is the index in ``frames`` of row ``i``, ``vector_region[i]`` its region.
    """

    video_id: int
    caption: str = ""
    hashtags: list[str] = field(default_factory=list)
    platform: str = ""
    author: str | None = None
    duration_s: float | None = None
    ai_label: str | None = None
    c2pa_state: str | None = None
    c2pa_info: dict[str, Any] | None = None
    frames: list[FrameRow] = field(default_factory=list)
    model_id: str | None = None
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    vector_frame: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    vector_region: list[str] = field(default_factory=list)
    data_dir: str | None = None  # stored frame paths are relative to it


@dataclass(frozen=True)
class CharacterRef:
    """A registered character as the signals see it.

    ``min_frames`` / ``min_seconds``: its match policy (None: the config default, no
    minimum duration). ``thresholds``: ``(signal name, threshold)`` pairs calibrated for the
    current embedder (``charwatch calibrate``); a signal without one uses its default.
    """

    id: int
    name: str
    aliases: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    min_frames: int | None = None
    min_seconds: float | None = None
    thresholds: tuple[tuple[str, float], ...] = ()

    def threshold(self, signal: str) -> float | None:
        """The calibrated threshold of ``signal`` for this character, or None."""
        for name, value in self.thresholds:
            if name == signal:
                return float(value)
        return None


@dataclass(frozen=True)
class ReferenceImage:
    """A reference image row; ``path`` is as stored (relative to ``data_dir``)."""

    reference_id: int
    character_id: int
    path: str
    sha256: str
    negative: bool = False

    @classmethod
    def from_row(cls, row: Any) -> ReferenceImage:
        """From a ``storage.models.Reference`` row."""
        return cls(row.id, row.character_id, row.path, row.sha256, bool(row.negative))


@dataclass
class ReferenceSet:
    """The registry snapshot an index is built from."""

    characters: dict[int, CharacterRef]
    images: list[ReferenceImage]

    def positives(self, character_id: int) -> list[ReferenceImage]:
        """The character's positive reference images."""
        return [r for r in self.images if r.character_id == character_id and not r.negative]


@dataclass
class IndexInputs:
    """What ``index_references`` may use: the embedder, the reference pictures and the bank."""

    embedder: Any
    load_image: Callable[[ReferenceImage], Image.Image | None]
    bank: np.ndarray | None = None  # background-bank embeddings (n, dim) of the same embedder
    backdrops: Sequence[Image.Image] = ()  # generic backdrops to paste reference subjects on

    def pictures(
        self, refs: ReferenceSet, *, negatives: bool = True
    ) -> Iterator[tuple[ReferenceImage, Image.Image]]:
        """``(reference, picture)`` for each reference that loads (positives only when
        ``negatives`` is False)."""
        for ref in refs.images:
            if ref.negative and not negatives:
                continue
            img = self.load_image(ref)
            if img is not None:
                yield ref, img


# ---------------------------------------------------------------------------------------------
# the interface


class Signal(ABC):
    """One kind of evidence. Subclasses set the class attributes below and implement
    ``compare``; fusion and calibration read only these attributes.

    * ``fusion_role``: one of :data:`FUSION_ROLES`; among signals of one role, the first
      matched in registry order decides. ``fusion_bonus``: added to a flag's score when a
      :data:`ROLE_SUPPORT` signal matches.
    * ``direction``: :data:`HIGHER` (similarities) or :data:`LOWER` (distances) is a match.
    * ``default_threshold``: the threshold without configuration or calibration (None: the
      signal has none); :meth:`threshold_default` resolves the configured one.
    * ``calibratable``: ``charwatch calibrate`` sets per-character thresholds for it.
    * ``threshold_detail``: the key of :attr:`SignalResult.details` holding the threshold it
      applied; ``fusion_threshold_key``: where fusion's explanation repeats that threshold.
    * ``loosest_threshold``: the loosest threshold calibration may return.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    indexed: ClassVar[bool] = False  # True when it keeps a reference index
    fusion_role: ClassVar[str] = ROLE_EXPLAIN
    fusion_bonus: ClassVar[float] = 0.0
    direction: ClassVar[str] = HIGHER
    default_threshold: ClassVar[float | None] = None
    calibratable: ClassVar[bool] = False
    threshold_detail: ClassVar[str | None] = None
    fusion_threshold_key: ClassVar[str | None] = None
    loosest_threshold: ClassVar[float] = -1.0

    def __init__(self, cfg: DetectConfig, embedder: Any = None) -> None:
        self.cfg = cfg
        self.embedder = embedder

    @classmethod
    def lower_is_match(cls) -> bool:
        """True for distances: a raw value at or under the threshold matches."""
        return cls.direction == LOWER

    @classmethod
    def threshold_default(cls, cfg: DetectConfig, embedder_id: str) -> float | None:
        """The uncalibrated threshold the signal applies under ``cfg`` with this embedder."""
        return cls.default_threshold

    @classmethod
    def calibration_floor(cls, cfg: DetectConfig, embedder_id: str) -> tuple[float, str] | None:
        """``(bound, what it is)``: the loosest threshold calibration may store in the end
        (None: only ``loosest_threshold``)."""
        return None

    @classmethod
    def applies_to(cls, char: CharacterRef | None, has_images: bool) -> bool:
        """Whether the signal can have evidence for ``char`` (``has_images``: the character
        has positive reference images)."""
        return True

    def available(self) -> bool:
        """False when it cannot run here (e.g. text prompts without a text tower)."""
        return True

    def features(self, video: VideoEvidence) -> Any:
        """What this signal reads from the stored video."""
        return video

    def index_references(self, refs: ReferenceSet, inputs: IndexInputs) -> VectorIndex | None:
        """Index the references (signals with ``indexed`` True)."""
        return None

    @abstractmethod
    def compare(
        self, video: VideoEvidence, refs: ReferenceSet, index: VectorIndex | None
    ) -> list[SignalResult]:
        """Results for the characters with any evidence (context signals: possibly one
        video-wide result with ``character_id`` None)."""
