"""`charwatch demo` end to end: fixture platform -> report, checked against ground truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_demo_flags_exactly_the_videos_with_demo_characters(tmp_path: Path) -> None:
    res = run_cli("demo", "--quiet", "--strict", "--data-dir", str(tmp_path / "demo"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 false flag(s)" in res.stdout
    html = Path(res.stdout.split("HTML report:")[1].split()[0])
    csv = Path(res.stdout.split("CSV:")[1].split()[0])
    assert html.is_file() and csv.is_file()
    # a second run finds nothing new and writes a new report without duplicates
    again = run_cli("demo", "--quiet", "--strict", "--data-dir", str(tmp_path / "demo"))
    assert again.returncode == 0, again.stdout + again.stderr
