"""The exit statuses the README promises, asserted exactly on the real ``charwatch`` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from charwatch import cli, errors
from tests.conftest import run_cli, write_config


def _env(data_dir: Path) -> dict[str, str]:
    return {"CHARWATCH_STORAGE__DATA_DIR": str(data_dir)}


def test_exit_constants_are_the_documented_ones() -> None:
    assert (cli.EXIT_OK, cli.EXIT_FAILED, cli.EXIT_USAGE) == (0, 1, 2)
    assert (cli.EXIT_CRAWL_PROBLEM, cli.EXIT_PLATFORM_PAUSED) == (3, 4)
    assert cli.EXIT_USAGE is errors.EXIT_USAGE


def test_good_command_exits_0(tmp_path: Path) -> None:
    res = run_cli("init", env=_env(tmp_path / "d"))
    assert res.returncode == 0, res.stderr
    assert "database:" in res.stdout and res.stderr == ""
    res = run_cli("status", env=_env(tmp_path / "d"))
    assert res.returncode == 0, res.stderr
    assert "PAUSED" not in res.stdout


def test_unknown_option_exits_2(tmp_path: Path) -> None:
    res = run_cli("status", "--no-such-option", env=_env(tmp_path / "d"))
    assert res.returncode == 2
    assert "unrecognized arguments: --no-such-option" in res.stderr
    assert run_cli("no-such-command").returncode == 2
    with pytest.raises(SystemExit) as exc:  # argparse's own exit, in-process too
        cli.main(["status", "--no-such-option"])
    assert exc.value.code == 2


def test_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[storage]\nbogus = 1\n", encoding="utf-8")
    res = run_cli("status", config=bad)
    assert res.returncode == 2
    assert res.stderr.strip() == "charwatch: error: unknown config key storage.bogus"
    res = run_cli("status", config=tmp_path / "absent.toml")
    assert res.returncode == 2
    assert res.stderr.strip().startswith("charwatch: error: config file not found")


def test_missing_reference_image_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent.png"
    res = run_cli("characters", "add", "X", "--image", str(missing), env=_env(tmp_path / "d"))
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == f"charwatch: error: reference image not found: {missing}"
    res = run_cli("characters", "show", "X", env=_env(tmp_path / "d"))
    assert res.returncode == 2
    assert res.stderr.strip() == "charwatch: error: no character named 'X'"


def test_other_failure_exits_1(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("", encoding="utf-8")
    res = run_cli("status", env=_env(not_a_folder))
    assert res.returncode == 1
    assert len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith("charwatch: error: ")


def test_status_with_a_paused_platform_exits_4(tmp_path: Path) -> None:
    from charwatch.config import load_config
    from charwatch.jobs import open_store
    from storage import platform_state

    data = tmp_path / "d"
    cfg = load_config(environ=_env(data))
    platform_state.pause(open_store(cfg), "youtube", "HTTP 429 on every request", "test", 3600)
    res = run_cli("status", env=_env(data))
    assert res.returncode == 4, res.stderr
    assert "youtube: HTTP 429 on every request" in res.stdout
    res = run_cli("status", "--format", "json", env=_env(data))
    assert res.returncode == 4
    assert run_cli("resume", "youtube", env=_env(data)).returncode == 0
    assert run_cli("status", env=_env(data)).returncode == 0


def test_blocked_listing_exits_3(tmp_path: Path, fixture_server: object) -> None:
    from fixture_platform.catalog import TIKTOK_BLOCKED_TAG

    config = write_config(tmp_path / "c.toml", tmp_path / "d", fixture_server.base_url)
    res = run_cli("crawl", "--platform", "tiktok", "--hashtag", TIKTOK_BLOCKED_TAG, config=config)
    assert res.returncode == 3, res.stdout + res.stderr
    assert f"[BLOCKED] tiktok hashtag {TIKTOK_BLOCKED_TAG}" in res.stdout
