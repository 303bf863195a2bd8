"""`charwatch demo` end to end: fixture platform -> report, checked against ground truth."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_demo_flags_exactly_the_videos_with_demo_characters(tmp_path: Path) -> None:
    res = run_cli("demo", "--quiet", "--data-dir", str(tmp_path / "demo"))
    assert res.returncode == 0, res.stdout + res.stderr
    html = Path(res.stdout.split("HTML report:")[1].split()[0])
    csv = Path(res.stdout.split("CSV:")[1].split()[0])
    assert html.is_file() and csv.is_file()
    m = re.search(r"demo result: (\d+)/(\d+) .* (\d+) false flag", res.stdout)
    assert m, res.stdout
    found, expected, false = map(int, m.groups())
    assert expected > 0
    # a second run finds nothing new and writes a new report without duplicates
    again = run_cli("demo", "--quiet", "--data-dir", str(tmp_path / "demo"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{found}/{expected}" in again.stdout
    assert found == expected and false == 0, m.group(0)
