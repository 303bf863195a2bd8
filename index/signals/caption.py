"""Context: the caption or hashtags name the character."""

from __future__ import annotations

import re

from index.signals.base import (
    CONTEXT,
    ROLE_SUPPORT,
    CharacterRef,
    ReferenceSet,
    Signal,
    SignalResult,
    VideoEvidence,
)
from index.signals.text import compact, fold_text, has_word_chars
from index.signals.vector_index import VectorIndex


class CaptionSignal(Signal):
    """The caption or hashtags name the character (name or alias), e.g. ``#ナルト``.

    Context only: text is cheap to fake and often wrong, so it never flags on its own.
    ASCII terms match on word boundaries (``pom`` does not match ``pompadour``); terms in
    scripts without spaces (Japanese, Chinese) match as substrings. Hashtags match when equal
    to a term in compact form (``#pompom_chan`` = ``Pompom chan``) or, for terms of 4+
    letters, when they start with it (``#pompomedit``); Japanese terms anywhere in a tag.
    """

    name = "caption"
    kind = CONTEXT
    fusion_role = ROLE_SUPPORT
    fusion_bonus = 0.05

    def features(self, video: VideoEvidence) -> tuple[str, list[str]]:
        tags = [compact(str(t)) for t in video.hashtags or [] if str(t).strip()]
        caption = fold_text(video.caption or "")
        tags.extend(compact(m) for m in re.findall(r"[#＃]([^\s#＃]+)", caption))
        return caption, sorted(set(t for t in tags if t))

    @staticmethod
    def terms(char: CharacterRef) -> list[tuple[str, str]]:
        """``(as registered, folded)`` for the name and each alias (2+ characters)."""
        seen: dict[str, str] = {}
        for t in (char.name, *char.aliases):
            f = fold_text(t)
            if len(compact(f)) >= 2:
                seen.setdefault(f, t)
        return [(shown, f) for f, shown in seen.items()]

    def compare(
        self, video: VideoEvidence, refs: ReferenceSet, index: VectorIndex | None
    ) -> list[SignalResult]:
        caption, tags = self.features(video)
        out = []
        for char in refs.characters.values():
            found: list[str] = []
            where: set[str] = set()
            for shown, term in self.terms(char):
                short = compact(term)
                if has_word_chars(term):
                    pat = r"(?<![0-9a-z])" + re.escape(term) + r"(?![0-9a-z])"
                    in_caption = re.search(pat, caption) is not None
                    in_tags = any(
                        t == short or (len(short) >= 4 and t.startswith(short)) for t in tags
                    )
                else:
                    in_caption = term in caption
                    in_tags = any(short in t for t in tags)
                if in_caption or in_tags:
                    found.append(shown)
                    if in_caption:
                        where.add("caption")
                    if in_tags:
                        where.add("hashtags")
            if found:
                out.append(
                    SignalResult(
                        signal=self.name,
                        kind=self.kind,
                        character_id=char.id,
                        score=1.0,
                        raw=float(len(found)),
                        matched=True,
                        details={"terms": found, "where": sorted(where)},
                    )
                )
        return out
