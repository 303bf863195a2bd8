"""Nightly scheduler entry point (``python scheduler.py``)."""
