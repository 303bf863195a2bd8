"""What the commands print for people: tables, JSON lines and CSV, summaries of runs and reports.

Shared by the commands and the demo; nothing here imports the CLI.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Sequence
from typing import Any


def parse_time(text: str) -> dt.datetime:
    """Read an ISO date or datetime; a time without a zone is UTC (an argparse ``type``)."""
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def emit(rows: list[dict[str, Any]], fmt: str, columns: list[str]) -> None:
    """Print ``rows`` as JSON lines, CSV (every key) or a table of ``columns``."""
    if fmt == "jsonl":
        for r in rows:
            print(json.dumps({k: jsonable(v) for k, v in r.items()}, ensure_ascii=False))
    elif fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else columns)
        w.writeheader()
        for r in rows:
            w.writerow(
                {k: " ".join(v) if isinstance(v, list) else jsonable(v) for k, v in r.items()}
            )
    else:
        print_table(rows, columns)


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Print ``columns`` of ``rows`` as an aligned text table, or ``(none)``."""
    if not rows:
        print("(none)")
        return
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def cell(value: Any, limit: int = 48) -> str:
    """One table cell: ``-`` for nothing, short dates and floats, long text cut to ``limit``."""
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)):
        value = ",".join(map(str, value))
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it (datetimes as ISO text)."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)``: datetimes as ISO text, anything else as its text."""
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def summarize(stats: Any) -> str:
    """One line for people about a job's statistics: its ``summary()``, else its fields."""
    if stats is None:
        return "nothing to do"
    if hasattr(stats, "summary"):
        return str(stats.summary())
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        values = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
        shown = [f"{k} {v}" for k, v in values.items() if isinstance(v, (int, float, str)) and v]
        return ", ".join(shown) or "nothing to do"
    return str(stats)


def print_runs(runs: Sequence[Any]) -> int:
    """Print crawl-run statuses; returns the number of listings that ended in a problem."""
    from storage import ListingStatus

    problems = 0
    for r in runs:
        mark = "ok" if r.status == ListingStatus.OK else r.status.upper()
        line = (
            f"  [{mark}] {r.platform} {r.kind} {r.target}: "
            f"{r.items_seen} seen, {r.items_new} new, {r.pages} page(s)"
        )
        if r.message:
            line += f" - {r.message}"
        if r.debug_path:
            line += f" (page saved: {r.debug_path})"
        print(line)
        if r.status in ListingStatus.FAILURES:
            problems += 1
    return problems


def print_process(result: Any) -> None:
    """Print what one processing pass did: downloads and embeddings, detection, retention."""
    print(f"processed: {summarize(result.process)}")
    print(f"detection: {summarize(result.detect)}")
    if result.media_deleted:
        print(f"retention: deleted {result.media_deleted} media file(s) of unflagged videos")


def print_report(result: Any) -> None:
    """Print the paths of a written report and its number of flags."""
    print(f"HTML report: {result.html_path}")
    print(f"CSV:         {result.csv_path}")
    print(f"Flags:       {result.flags}")


def print_run(result: Any) -> int:
    """Print a whole run (crawls, processing, report); returns the listings with a problem."""
    problems = print_runs(result.runs)
    if result.processed is not None:
        print_process(result.processed)
    print_report(result.report)
    return problems
