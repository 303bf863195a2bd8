"""``charwatch doctor`` run for real: tools found; bad cookies, proxies and browsers caught."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from tests.conftest import run_cli

SITES = {
    "tiktok": "https://www.tiktok.com",
    "youtube": "https://www.youtube.com",
    "instagram": "https://www.instagram.com",
}


def _config(tmp_path: Path, platform_extra: dict[str, str] | None = None, extra: str = "") -> Path:
    """Every platform on its real base URL with plain-HTTP listings (unless its extra TOML
    sets ``fetch``), plus extra TOML per platform and at the end."""
    parts = [f'[storage]\ndata_dir = "{(tmp_path / "data").as_posix()}"\n']
    for p, url in SITES.items():
        more = (platform_extra or {}).get(p, "")
        if "fetch =" not in more:
            more += 'fetch = { hashtag = "http", search = "http", user = "http" }\n'
        parts.append(f'[platforms.{p}]\nbase_url = "{url}"\n{more}')
    path = tmp_path / "charwatch.toml"
    path.write_text("\n".join(parts) + "\n" + extra, encoding="utf-8")
    return path


def _doctor(config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    res = run_cli("doctor", "--json", *args, config=config, timeout=120)
    assert res.returncode in (0, 1), res.stderr
    return res.returncode, json.loads(res.stdout)


def _row(doc: dict[str, Any], check: str, platform: str | None) -> dict[str, Any]:
    rows = [r for r in doc["checks"] if r["check"] == check and r["platform"] == platform]
    assert len(rows) == 1, (check, platform, doc["checks"])
    return rows[0]


def _cookie_line(domain: str, name: str, expires: int, http_only: bool = False) -> str:
    prefix = "#HttpOnly_" if http_only else ""
    return f"{prefix}{domain}\tTRUE\t/\tTRUE\t{expires}\t{name}\tvalue-{name}\n"


NETSCAPE = "# Netscape HTTP Cookie File\n"


def test_healthy_setup_reports_runtime_targets_and_schema(tmp_path: Path) -> None:
    later = int(time.time()) + 30 * 86400
    cookies = tmp_path / "ig.txt"
    cookies.write_text(
        NETSCAPE
        + _cookie_line(".instagram.com", "csrftoken", later)
        + _cookie_line(".instagram.com", "sessionid", later, http_only=True),
        encoding="utf-8",
    )
    cfg = _config(tmp_path, {"instagram": f'cookies_file = "{cookies.as_posix()}"\n'})
    assert run_cli("init", config=cfg).returncode == 0

    rc, doc = _doctor(cfg)
    assert rc == 0 and doc["ok"] is True, doc
    assert not [r for r in doc["checks"] if r["status"] == "fail"]
    js = _row(doc, "js runtime", "youtube")
    assert js["status"] == "ok" and js["detail"].split()[0] in ("deno", "node", "bun", "quickjs")
    imp = _row(doc, "impersonate (yt-dlp)", "tiktok")
    assert imp["status"] == "ok" and "'chrome'" in imp["detail"]
    assert int(imp["detail"].split(": ")[1].split()[0]) > 0  # "N target(s) available"
    assert _row(doc, "impersonate (scrapy)", "tiktok")["status"] == "ok"
    ig = _row(doc, "cookies file", "instagram")
    assert ig["status"] == "ok" and "2 cookie(s) for instagram.com" in ig["detail"]
    db = _row(doc, "database", None)
    assert db["status"] == "ok" and "schema" in db["detail"]
    assert _row(doc, "ffmpeg", None)["status"] == "ok"
    assert _row(doc, "browser", None)["detail"].startswith("not needed")

    table = run_cli("doctor", config=cfg, timeout=120)
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == ["check", "platform", "status", "detail"]
    assert "0 failure(s): can work" in table.stdout


def test_expired_and_unreadable_cookie_files_fail_with_a_fix(tmp_path: Path) -> None:
    now = int(time.time())
    expired = tmp_path / "ig.txt"
    expired.write_text(
        NETSCAPE
        + _cookie_line(".instagram.com", "csrftoken", now + 86400)
        + _cookie_line(".instagram.com", "sessionid", now - 86400, http_only=True),
        encoding="utf-8",
    )
    as_json = tmp_path / "tt.json"
    as_json.write_text('[{"name": "sessionid", "value": "x"}]\n', encoding="utf-8")
    headerless = tmp_path / "yt.txt"
    headerless.write_text(_cookie_line(".youtube.com", "SID", now + 86400), encoding="utf-8")
    cfg = _config(
        tmp_path,
        {
            "instagram": f'cookies_file = "{expired.as_posix()}"\n',
            "tiktok": f'cookies_file = "{as_json.as_posix()}"\n',
            "youtube": f'cookies_file = "{headerless.as_posix()}"\n',
        },
    )
    rc, doc = _doctor(cfg)
    assert rc == 1 and doc["ok"] is False
    ig = _row(doc, "cookies file", "instagram")
    assert ig["status"] == "fail" and "sessionid expired" in ig["detail"]
    assert "Netscape" in ig["fix"] and "instagram.com" in ig["fix"]
    tt = _row(doc, "cookies file", "tiktok")
    assert tt["status"] == "fail" and "not JSON" in tt["detail"] and tt["fix"]
    yt = _row(doc, "cookies file", "youtube")
    assert yt["status"] == "fail" and "unreadable" in yt["detail"] and yt["fix"]

    table = run_cli("doctor", "--platform", "instagram", config=cfg, timeout=120)
    assert table.returncode == 1
    assert "sessionid expired" in table.stdout and "fix: export fresh cookies" in table.stdout
    assert "youtube" not in table.stdout and "tiktok" not in table.stdout


def test_cookies_for_another_site_or_without_login_are_flagged(tmp_path: Path) -> None:
    later = int(time.time()) + 86400
    other = tmp_path / "other.txt"
    other.write_text(NETSCAPE + _cookie_line(".example.com", "sessionid", later), "utf-8")
    anon = tmp_path / "anon.txt"
    anon.write_text(NETSCAPE + _cookie_line(".tiktok.com", "tt_csrf_token", later), "utf-8")
    cfg = _config(
        tmp_path,
        {
            "instagram": f'cookies_file = "{other.as_posix()}"\n',
            "tiktok": f'cookies_file = "{anon.as_posix()}"\n'
            'cookies_from_browser = "netscape-navigator"\n',
            "youtube": 'cookies_from_browser = "firefox:default"\n',
        },
    )
    rc, doc = _doctor(cfg)
    assert rc == 1
    ig = _row(doc, "cookies file", "instagram")
    assert ig["status"] == "fail" and "none for instagram.com" in ig["detail"]
    tt = _row(doc, "cookies file", "tiktok")
    assert tt["status"] == "warn" and "no login cookie" in tt["detail"]
    assert _row(doc, "cookies from browser", "tiktok")["status"] == "fail"
    assert _row(doc, "cookies from browser", "youtube")["status"] == "ok"


def test_unreachable_proxy_and_unknown_impersonation_target_fail(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        live_port = listening.getsockname()[1]
        cfg = _config(
            tmp_path,
            {
                "tiktok": f'proxy = "http://user:secret@127.0.0.1:{dead_port}"\n',
                "youtube": f'proxy = "socks5://127.0.0.1:{live_port}"\n',
                "instagram": 'impersonate = "netscape"\n',
            },
        )
        rc, doc = _doctor(cfg)
    assert rc == 1
    dead = _row(doc, "proxy", "tiktok")
    assert dead["status"] == "fail" and f"127.0.0.1:{dead_port} unreachable" in dead["detail"]
    assert "secret" not in json.dumps(doc) and "platforms.tiktok.proxy" in dead["fix"]
    live = _row(doc, "proxy", "youtube")
    assert live["status"] == "ok" and f"127.0.0.1:{live_port}" in live["detail"]
    assert not [r for r in doc["checks"] if r["check"] == "proxy" and r["platform"] == "instagram"]
    # an impersonation target neither yt-dlp nor curl_cffi knows
    for check in ("impersonate (yt-dlp)", "impersonate (scrapy)"):
        row = _row(doc, check, "instagram")
        assert row["status"] == "fail" and "'netscape'" in row["detail"] and "chrome" in row["fix"]


def test_browser_path_checked_only_when_a_listing_uses_the_browser(tmp_path: Path) -> None:
    nowhere = tmp_path / "no" / "chromium"
    browser = f'[crawl]\nbrowser_path = "{nowhere.as_posix()}"\n'
    tiktok_browser = {"tiktok": 'fetch = { hashtag = "browser" }\n'}

    rc, doc = _doctor(_config(tmp_path, extra=browser))
    assert rc == 0
    assert _row(doc, "browser", None)["detail"].startswith("not needed")

    rc, doc = _doctor(_config(tmp_path, tiktok_browser, extra=browser))
    assert rc == 1
    row = _row(doc, "browser", None)
    assert row["status"] == "fail" and str(nowhere) in row["detail"]
    assert "tiktok hashtag" in row["detail"] and "crawl.browser_path" in row["fix"]
    # limited to a platform that fetches over HTTP, the browser is not needed
    rc, doc = _doctor(_config(tmp_path, tiktok_browser, extra=browser), "--platform", "youtube")
    assert rc == 0 and _row(doc, "browser", None)["detail"].startswith("not needed")

    broken = tmp_path / "broken-chromium"
    broken.write_text("#!/bin/sh\necho 'cannot open display' >&2\nexit 3\n", encoding="utf-8")
    broken.chmod(0o755)
    extra = f'[crawl]\nbrowser_path = "{broken.as_posix()}"\n'
    rc, doc = _doctor(_config(tmp_path, tiktok_browser, extra=extra))
    row = _row(doc, "browser", None)
    assert rc == 1 and row["status"] == "fail" and "does not run" in row["detail"]
