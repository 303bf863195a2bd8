"""Benchmarks: detection quality on a generated set, throughput, archive-index scale.

Run ``python -m bench.run`` (``--quick`` for the smoke run); see ``bench/README.md``.
"""
