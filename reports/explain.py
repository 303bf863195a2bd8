"""A detection's evidence in plain words, from what the matcher stored (``Detection.signals``).

One explanation serves the review desk and the static report's cards, e.g.::

    matched reference *Pompom, front* at 0:03, similarity 0.62 (threshold 0.41);
    caption names the alias ポム

``Detection.signals`` holds one entry per signal (``SignalResult.as_json``: ``kind``, ``score``,
``raw``, ``matched``, ``frame_t``, ``reference_id`` and the signal's own details) plus
``fusion`` (which signal decided, the thresholds applied). Sentences are lists of
:data:`Fragment` so a template can emphasise a reference name without marking anything safe;
:attr:`Explanation.text` is the same as plain text. Older or hand-made rows without that shape
are described key by key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Fragment = tuple[str, bool]  # (text, emphasised)
Sentence = tuple[Fragment, ...]

KNOWN_SIGNALS = ("pdq", "geometric", "embedding", "text_prompt", "caption", "provenance")
COPY_SIGNALS = ("pdq", "geometric")
SEMANTIC_SIGNALS = ("embedding", "text_prompt")
VARIANTS = {
    "rot90": "rotated",
    "rot180": "upside down",
    "rot270": "rotated",
    "flip_v": "flipped",
    "flip_h": "mirrored",
    "transpose": "rotated and mirrored",
    "transverse": "rotated and mirrored",
    "mirrored": "mirrored",
}
MAX_FALLBACK = 8  # key-by-key sentences for rows without the matcher's shape


def sentence_text(s: Sentence) -> str:
    """A sentence as plain text."""
    return "".join(text for text, _ in s)


@dataclass(frozen=True)
class Explanation:
    """``summary``: the lead clauses (what matched, what the caption says, AI-made);
    ``points``: every sentence, the lead ones first."""

    summary: tuple[Sentence, ...] = ()
    points: tuple[Sentence, ...] = ()
    reference_id: int | None = None
    frame_scores: dict[float, float] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The summary as one line of plain text (clauses joined by ``; ``)."""
        return "; ".join(sentence_text(s) for s in self.summary)

    @property
    def point_texts(self) -> list[str]:
        return [sentence_text(s) for s in self.points]


def clock(t: Any) -> str:
    """Seconds as ``m:ss`` (``0:03``; ``0:01.5`` for a fractional time; ``h:mm:ss``)."""
    x = _num(t)
    if x is None:
        return "?"
    x = max(0.0, x)
    whole = int(x)
    frac = round(x - whole, 1)
    if frac >= 1.0:
        whole, frac = whole + 1, 0.0
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    sec = f"{s:02d}" if frac == 0 else f"{s + frac:04.1f}"
    return f"{h}:{m:02d}:{sec}" if h else f"{m}:{sec}"


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return None if math.isnan(f) or math.isinf(f) else f


def _n2(v: Any) -> str:
    f = _num(v)
    return "?" if f is None else f"{f:.2f}"


def _int(v: Any) -> int | None:
    f = _num(v)
    return None if f is None else int(round(f))


def _plain(*parts: str | Fragment) -> Sentence:
    return tuple((p, False) if isinstance(p, str) else p for p in parts)


def estimated_precision(signals: Mapping[str, Any] | None) -> tuple[float | None, int]:
    """``(estimated precision, verdicts behind it)`` stored with a flag by the matcher
    (:mod:`index.precision`); ``(None, n)`` when there were too few verdicts to estimate."""
    fusion = signals.get("fusion") if isinstance(signals, Mapping) else None
    if not isinstance(fusion, Mapping):
        return None, 0
    value = _num(fusion.get("estimated_precision"))
    verdicts = _num(fusion.get("precision_verdicts"))
    n = int(verdicts) if verdicts is not None and verdicts >= 0 else 0
    return (value if value is not None and 0.0 <= value <= 1.0 else None), n


def precision_text(signals: Mapping[str, Any] | None, match_type: str | None) -> str | None:
    """``about 93% of the 140 reviewed copy flags at this score were right``, or None when the
    flag carries no estimate."""
    value, n = estimated_precision(signals)
    if value is None:
        return None
    kind = f"{match_type} " if match_type in ("copy", "semantic") else ""
    return f"about {value:.0%} of the {n} reviewed {kind}flags at this score were right"


def reference_name(character: str, label: str | None, reference_id: int | None) -> str:
    """``Pompom, front``; ``Pompom, reference #12`` without a label."""
    if label:
        return f"{character}, {label}"
    if reference_id is not None:
        return f"{character}, reference #{reference_id}"
    return f"a reference of {character}"


def _and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _frames_clause(sig: Mapping[str, Any], over_key: str, total: int | None) -> str:
    over, need = _int(sig.get(over_key)), _int(sig.get("frames_needed"))
    if over is None:
        return ""
    of = f" of {total}" if total else ""
    text = f"{over}{of} frame{'' if (total or over) == 1 else 's'} matched"
    if need is not None and need > 1:
        text += f" ({need} needed)"
    secs, min_s = _num(sig.get("seconds_matched")), _num(sig.get("min_seconds"))
    if min_s and secs is not None:
        text += f", {secs:.1f} s on screen (at least {min_s:g} s)"
    return text


def _primary(
    name: str, sig: Mapping[str, Any], ref: str, fusion: Mapping[str, Any]
) -> list[Sentence]:
    """The deciding signal's sentences (first: what matched, where; then how much)."""
    t = clock(sig.get("frame_t"))
    total = _int(fusion.get("frames"))
    calibrated = name in (fusion.get("calibrated") or ()) or bool(sig.get("calibrated"))
    cal = ", calibrated" if calibrated else ""
    out: list[Sentence] = []
    if name == "embedding":
        thr = sig.get("threshold", fusion.get("embed_threshold"))
        out.append(
            _plain(
                "matched reference ",
                (ref, True),
                f" at {t}, similarity {_n2(sig.get('raw'))} (threshold {_n2(thr)}{cal})",
            )
        )
        frames = _frames_clause(sig, "frames_over", total)
        if frames:
            out.append(_plain(frames))
    elif name == "text_prompt":
        out.append(
            _plain(
                "the frame at ",
                t,
                " fits the description ",
                (f"“{sig.get('prompt') or '?'}”", True),
                f", similarity {_n2(sig.get('raw'))} (threshold {_n2(sig.get('threshold'))}{cal})",
            )
        )
        frames = _frames_clause(sig, "frames_over", total)
        if frames:
            out.append(_plain(frames))
    elif name == "pdq":
        variant = VARIANTS.get(str(sig.get("variant") or ""), "")
        dist = _int(sig.get("distance", sig.get("raw")))
        limit = _int(sig.get("max_distance", fusion.get("pdq_max_distance")))
        out += _copy_clauses(
            sig,
            ref,
            t,
            variant,
            total,
            f"picture hash {dist} of 256 bits apart (at most {limit}{cal})",
        )
    elif name == "geometric":
        variant = VARIANTS.get(str(sig.get("variant") or ""), "")
        inliers = _int(sig.get("inliers", sig.get("raw")))
        need = _int(sig.get("min_inliers"))
        visible = _num(sig.get("visible"))
        tail = f", {visible:.0%} of it visible" if visible is not None and visible < 0.95 else ""
        out += _copy_clauses(
            sig, ref, t, variant, total, f"{inliers} keypoints line up (at least {need}{cal}){tail}"
        )
    return out


def _copy_clauses(
    sig: Mapping[str, Any], ref: str, t: str, variant: str, total: int | None, detail: str
) -> list[Sentence]:
    """ "copy of reference *R* at T[, variant]: DETAIL", then how many frames matched."""
    out = [
        _plain(
            "copy of reference ",
            (ref, True),
            f" at {t}" + (f", {variant}" if variant else ""),
            f": {detail}",
        )
    ]
    frames = _frames_clause(sig, "frames_matched", total)
    if frames:
        out.append(_plain(frames))
    return out


def _secondary(name: str, sig: Mapping[str, Any], ref: str) -> Sentence | None:
    """A signal that did not decide: how close it came."""
    matched = bool(sig.get("matched"))
    if name == "embedding":
        thr = sig.get("threshold")
        if matched:
            return _plain(
                "also similar in look to ",
                (ref, True),
                f": {_n2(sig.get('raw'))} (threshold {_n2(thr)})",
            )
        return _plain(f"similarity in look {_n2(sig.get('raw'))}, under the threshold {_n2(thr)}")
    if name == "text_prompt":
        state = "fits" if matched else "does not fit"
        return _plain(
            f"{state} the description ",
            (f"“{sig.get('prompt') or '?'}”", True),
            f" ({_n2(sig.get('raw'))}, threshold {_n2(sig.get('threshold'))})",
        )
    if name == "pdq":
        dist, limit = _int(sig.get("distance", sig.get("raw"))), _int(sig.get("max_distance"))
        if matched:
            return _plain(f"also a picture-hash copy at {clock(sig.get('frame_t'))}")
        return _plain(f"nearest picture hash {dist} bits apart (a copy needs {limit} or less)")
    if name == "geometric":
        inliers, need = _int(sig.get("inliers", sig.get("raw"))), _int(sig.get("min_inliers"))
        if matched:
            return _plain(f"also a keypoint copy at {clock(sig.get('frame_t'))}")
        return _plain(f"{inliers} keypoints line up (a copy needs {need})")
    return None


def _caption(sig: Mapping[str, Any], character: str) -> Sentence | None:
    terms = [str(t) for t in sig.get("terms") or [] if str(t)]
    if not sig.get("matched") or not terms:
        return None
    where = [str(w) for w in sig.get("where") or []]
    subject = " and ".join(w for w in ("caption", "hashtags") if w in where) or "caption"
    verb = "name" if subject != "caption" else "names"
    names = [t for t in terms if t.casefold() == character.casefold()]
    aliases = [t for t in terms if t not in names]
    parts: list[str | Fragment] = [f"{subject} {verb} "]
    if names:
        parts.append((names[0], True))
    if aliases:
        if names:
            parts.append(" and ")
        parts.append("the alias " if len(aliases) == 1 else "the aliases ")
        for i, a in enumerate(aliases):
            if i:
                parts.append(" and " if i == len(aliases) - 1 else ", ")
            parts.append((a, True))
    return _plain(*parts)


def _provenance(sig: Mapping[str, Any]) -> tuple[Sentence | None, Sentence | None]:
    """``(lead, detail)``: AI-made (lead) and what the C2PA credentials say (detail)."""
    lead = None
    reasons = list(sig.get("reasons") or [])
    if sig.get("ai_generated") or reasons:
        bits: list[str | Fragment] = []
        if "platform_label" in reasons or sig.get("ai_label"):
            bits += ["the platform labels it ", (str(sig.get("ai_label") or "AI-made"), True)]
        if "c2pa_generative" in reasons:
            if bits:
                bits.append(" and ")
            bits.append("its C2PA credentials say generative AI made it")
        lead = _plain(*bits) if bits else None
    state = sig.get("c2pa_state")
    detail = None
    if state:
        text = f"C2PA credentials: {state}"
        if sig.get("c2pa_generator"):
            text += f", made with {sig['c2pa_generator']}"
        if sig.get("c2pa_signer"):
            text += f", signed by {sig['c2pa_signer']}"
        detail = _plain(text)
    return lead, detail


def _fallback(signals: Mapping[str, Any], best_frame_t: Any) -> list[Sentence]:
    """Rows without the matcher's shape: one sentence per key, in words."""
    out: list[Sentence] = []
    if _num(best_frame_t) is not None:
        out.append(_plain(f"best frame at {clock(best_frame_t)}"))
    for key in sorted(signals, key=str)[:MAX_FALLBACK]:
        value = signals[key]
        if isinstance(value, dict | list):
            continue
        if isinstance(value, float):
            value = _n2(value)
        out.append(_plain(f"{str(key).replace('_', ' ')} {value}"))
    return out


def _decider(signals: Mapping[str, Any], match_type: str | None) -> str | None:
    fusion = signals.get("fusion") if isinstance(signals.get("fusion"), dict) else {}
    name = fusion.get("decided_by")
    if isinstance(name, str) and isinstance(signals.get(name), dict):
        return name
    order = COPY_SIGNALS + SEMANTIC_SIGNALS if match_type == "copy" else SEMANTIC_SIGNALS
    for cand in (*order, *COPY_SIGNALS):
        sig = signals.get(cand)
        if isinstance(sig, dict) and sig.get("matched"):
            return cand
    return None


def frame_scores(signals: Mapping[str, Any]) -> dict[float, float]:
    """Per sampled frame time, the image similarity the matcher gave it (empty if none)."""
    out: dict[float, float] = {}
    for name in SEMANTIC_SIGNALS:
        sig = signals.get(name)
        frames = sig.get("frames") if isinstance(sig, dict) else None
        for item in frames or []:
            if isinstance(item, list | tuple) and len(item) == 2:
                t, score = _num(item[0]), _num(item[1])
                if t is not None and score is not None:
                    out.setdefault(round(t, 3), score)
        if out:
            break
    return out


def explain(
    signals: Mapping[str, Any] | None,
    *,
    character: str,
    reference_label: str | None = None,
    reference_id: int | None = None,
    match_type: str | None = None,
    best_frame_t: Any = None,
) -> Explanation:
    """The plain-words explanation of one detection.

    ``reference_label`` / ``reference_id``: the detection's matched reference
    (``best_reference_id`` and that reference's label)."""
    signals = signals if isinstance(signals, Mapping) else {}
    if not any(isinstance(signals.get(k), dict) for k in (*KNOWN_SIGNALS, "fusion")):
        points = _fallback(signals, best_frame_t) or [_plain("no signal details were stored")]
        return Explanation(tuple(points[:3]), tuple(points), reference_id)
    fusion = signals.get("fusion") if isinstance(signals.get("fusion"), dict) else {}
    decider = _decider(signals, match_type)
    dsig = signals.get(decider) if decider else None
    ref_id = reference_id
    if ref_id is None and isinstance(dsig, dict) and isinstance(dsig.get("reference_id"), int):
        ref_id = dsig["reference_id"]
    ref = reference_name(character, reference_label, ref_id)
    lead: list[Sentence] = []
    more: list[Sentence] = []
    if decider and isinstance(dsig, dict):
        first, *rest = _primary(decider, dsig, ref, fusion) or [None]
        if first is not None:
            lead.append(first)
        more += rest
    for name in (*COPY_SIGNALS, *SEMANTIC_SIGNALS):
        sig = signals.get(name)
        if name != decider and isinstance(sig, dict):
            s = _secondary(name, sig, ref)
            if s is not None:
                more.append(s)
    cap = signals.get("caption")
    if isinstance(cap, dict):
        s = _caption(cap, character)
        if s is not None:
            lead.append(s)
    prov = signals.get("provenance")
    if isinstance(prov, dict):
        ai, c2pa = _provenance(prov)
        if ai is not None:
            lead.append(ai)
        if c2pa is not None:
            more.append(c2pa)
    bonus = _num(fusion.get("caption_bonus"))
    if bonus:
        more.append(_plain(f"the caption added {bonus:+.2f} to the score"))
    est = precision_text(signals, match_type)
    if est is not None:
        lead.append(_plain(est[0].upper() + est[1:]))
    elif "precision_verdicts" in fusion:
        n = _num(fusion.get("precision_verdicts")) or 0
        more.append(_plain(f"no precision estimate yet ({int(n)} verdicts of this kind on record)"))
    if not lead:
        lead = _fallback({}, best_frame_t) or [_plain("no signal details were stored")]
    return Explanation(tuple(lead), tuple(lead + more), ref_id, frame_scores(signals))
