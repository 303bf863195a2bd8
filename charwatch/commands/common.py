"""Helpers several commands share: stopping long jobs on a signal, the ``--strict`` exit."""

from __future__ import annotations

import sys
import threading
from typing import Any

from charwatch.errors import EXIT_CRAWL_PROBLEM, EXIT_OK, EXIT_PLATFORM_PAUSED

STRICT_HELP = "exit 3 if any listing failed, 4 if a platform is paused"


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM/SIGINT so long jobs finish or release the current video."""
    import signal

    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return stop

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        print(f"\nsignal {signum}: finishing the current step (again to abort)", file=sys.stderr)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def run_exit(result: Any, problems: int, strict: bool) -> int:
    """3 with --strict when a listing failed; 4 with --strict when a platform is paused."""
    if not strict:
        return EXIT_OK
    if problems:
        return EXIT_CRAWL_PROBLEM
    paused = result.processed is not None and getattr(result.processed.process, "paused", None)
    return EXIT_PLATFORM_PAUSED if paused else EXIT_OK
