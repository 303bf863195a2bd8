"""The real ``charwatch`` command: help, errors, and the whole chain step by step."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from charwatch.cli import main
from tests.conftest import run_cli

COMMANDS = [
    "init",
    "characters",
    "crawl",
    "videos",
    "runs",
    "status",
    "resume",
    "process",
    "report",
    "evidence",
    "detections",
    "review",
    "allow",
    "users",
    "serve",
    "calibrate",
    "reembed",
    "archive",
    "rescan",
    "run-nightly",
    "recheck",
    "scheduler",
    "worker",
    "doctor",
    "fixture-server",
    "demo",
]
PROJECT = Path(__file__).resolve().parents[1]


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli("--help")
    assert res.returncode == 0
    listed = re.findall(r"^    (\S+)", res.stdout, flags=re.MULTILINE)
    assert listed == COMMANDS  # in the registry's order
    sub = run_cli(COMMANDS[0], "--help")
    assert sub.returncode == 0 and f"usage: charwatch {COMMANDS[0]}" in sub.stdout, sub.stderr
    for name in COMMANDS:  # the same parser in this process: no interpreter start for each
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        out = capsys.readouterr()
        assert done.value.code == 0, (name, out.err)
        assert f"usage: charwatch {name}" in out.out


def test_every_command_is_one_module() -> None:
    from charwatch.commands import COMMANDS as REGISTRY
    from charwatch.commands import by_name

    assert [c.NAME for c in REGISTRY] == COMMANDS
    for command in REGISTRY:
        assert command.__name__ == "charwatch.commands." + command.NAME.replace("-", "_")
        assert command.HELP and command.DESCRIPTION and command.__doc__
        assert callable(command.add_arguments) and callable(command.run)
        assert by_name(command.NAME) is command


def test_nothing_imports_the_cli_back() -> None:
    offenders = [
        str(path.relative_to(PROJECT))
        for folder in ("charwatch", "crawler", "pipeline", "index", "reports", "storage")
        for path in (PROJECT / folder).rglob("*.py")
        if path.name != "cli.py" and "charwatch.cli" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_summaries_are_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    from dataclasses import dataclass, field

    from charwatch.jobs import ProcessResult
    from charwatch.printing import print_process, summarize

    @dataclass
    class Stats:
        claimed: int = 2
        failed: int = 0
        errors: list[str] = field(default_factory=list)

    assert summarize(Stats()) == "claimed 2"
    assert summarize(None) == "nothing to do"
    print_process(ProcessResult(process=Stats(), detect=None, media_deleted=1))
    out = capsys.readouterr().out
    assert "Stats(" not in out
    assert out.splitlines() == [
        "processed: claimed 2",
        "detection: nothing to do",
        "retention: deleted 1 media file(s) of unflagged videos",
    ]


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    res = run_cli("crawl", "--platform", "tiktok")
    assert res.returncode == 2
    assert "one of the arguments --hashtag --user --search --rss is required" in res.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[storage]\nbogus = 1\n", encoding="utf-8")
    res = run_cli("init", config=bad)
    assert res.returncode == 2
    assert res.stderr.strip() == "charwatch: error: unknown config key storage.bogus"
    res = run_cli(
        "characters",
        "add",
        "X",
        "--image",
        str(tmp_path / "missing.png"),
        env={"CHARWATCH_STORAGE__DATA_DIR": str(tmp_path / "d")},
    )
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "missing.png" in res.stderr


@pytest.mark.slow
def test_whole_chain_through_the_cli(config_file: Path, fixture_server, tmp_path: Path) -> None:
    from fixture_platform.characters import DEMO_CHARACTERS, write_reference_images

    assert run_cli("init", config=config_file).returncode == 0
    refs = write_reference_images(tmp_path / "refs")
    for ch in DEMO_CHARACTERS:
        if not ch.registered:
            continue
        args = ["characters", "add", ch.name, "--franchise", ch.franchise]
        for alias in ch.aliases:
            args += ["--alias", alias]
        for img in refs[ch.key]:
            args += ["--image", str(img)]
        res = run_cli(*args, config=config_file)
        assert res.returncode == 0, res.stderr
    listed = json.loads(
        run_cli("characters", "list", "--format", "json", config=config_file).stdout
    )
    assert {c["name"] for c in listed} == {c.name for c in DEMO_CHARACTERS if c.registered}

    res = run_cli("crawl", "--platform", "tiktok", "--hashtag", "charwatchdemo", config=config_file)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "[ok] tiktok hashtag charwatchdemo" in res.stdout

    res = run_cli("process", "--quiet", config=config_file)
    assert res.returncode == 0, res.stdout + res.stderr

    videos = [
        json.loads(line)
        for line in run_cli("videos", "--format", "jsonl", config=config_file).stdout.splitlines()
    ]
    assert videos and all(v["state"] == "matched" for v in videos)

    out = tmp_path / "out"
    res = run_cli("report", "--out", str(out), config=config_file)
    assert res.returncode == 0, res.stderr
    html_path = Path(res.stdout.split("HTML report:")[1].split()[0])
    csv_path = Path(res.stdout.split("CSV:")[1].split()[0])
    assert html_path.is_file() and csv_path.is_file() and html_path.parent == out
    with csv_path.open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    flagged = {(r["platform"], r["platform_id"], r["character"]) for r in rows}
    expected = {
        (v["platform"], v["platform_id"], name)
        for v in videos
        if (name := fixture_server.catalog.expected_character(v["platform"], v["platform_id"]))
    }
    assert expected, "the demo listing should contain videos showing a demo character"
    for r in rows:
        assert r["url"].startswith(fixture_server.base_url)
        assert 0.0 < float(r["score"]) <= 1.0
    assert flagged == expected, (sorted(flagged - expected), sorted(expected - flagged))
