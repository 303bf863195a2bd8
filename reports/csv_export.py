"""The flag CSV: one row per detection, stable columns, UTF-8 with BOM (opens right in Excel).

The columns and their meaning are listed in ``reports/COLUMNS.md``; ``CSV_COLUMNS`` is the order.
Scraped free text (``author``, ``caption``) that starts like a spreadsheet formula
(``=``, ``+``, ``-``, ``@``, tab, carriage return) gets a leading ``'`` so a spreadsheet shows
it as text instead of evaluating it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from reports.data import iso_time
from storage.files import atomic_path

CSV_COLUMNS: tuple[str, ...] = (
    "platform",
    "platform_id",
    "url",
    "character",
    "score",
    "match_type",
    "signals",
    "best_frame_time",
    "author",
    "caption",
    "posted_at",
    "ai_label",
    "c2pa_state",
    "evidence_sha256",
    "review_state",
    "detected_at",
    "franchise",
    "detection_id",
    "video_id",
    "estimated_precision",
)
CSV_ENCODING = "utf-8-sig"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FREE_TEXT_COLUMNS = ("author", "caption")


def compact_json(value: Any) -> str:
    """Signals as one-line JSON with sorted keys, non-ASCII kept readable."""
    return json.dumps(
        value or {}, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str
    )


def defuse_formula(text: Any) -> str:
    """Text a spreadsheet would evaluate as a formula gets a leading apostrophe."""
    s = "" if text is None or (isinstance(text, float) and pd.isna(text)) else str(text)
    return "'" + s if s.startswith(FORMULA_PREFIXES) else s


def csv_frame(flags: pd.DataFrame) -> pd.DataFrame:
    """The CSV table from the flags frame of ``reports.data.load_flags``."""
    out = pd.DataFrame(
        {
            "platform": flags["platform"],
            "platform_id": flags["platform_id"],
            "url": flags["url"],
            "character": flags["character"],
            "score": flags["score"],
            "match_type": flags["match_type"],
            "signals": [compact_json(s) for s in flags["signals"]],
            "best_frame_time": flags["best_frame_t"],
            "author": [defuse_formula(a) for a in flags["author"]],
            "caption": [defuse_formula(c) for c in flags["caption"]],
            "posted_at": [iso_time(t) for t in flags["posted_at"]],
            "ai_label": flags["ai_label"],
            "c2pa_state": flags["c2pa_state"],
            "evidence_sha256": flags["media_sha256"],
            "review_state": flags["review_state"],
            "detected_at": [iso_time(t) for t in flags["detected_at"]],
            "franchise": flags["franchise"],
            "detection_id": flags["detection_id"],
            "video_id": flags["video_id"],
            "estimated_precision": flags["estimated_precision"].round(4),
        },
        columns=list(CSV_COLUMNS),
    )
    return out


def write_csv(flags: pd.DataFrame, path: Path) -> Path:
    """Write the flag CSV to ``path`` (via a temporary file, so no half-written CSV remains)."""
    with atomic_path(path) as tmp:
        csv_frame(flags).to_csv(tmp, index=False, encoding=CSV_ENCODING, lineterminator="\r\n")
    return path
