"""Shared test fixtures: the fixture platform on 127.0.0.1, temp configs, the real CLI."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
RECORDED = REPO.parent / "shared" / "recorded"


@pytest.fixture(scope="session")
def recorded_dir() -> Path:
    """The real recorded platform responses beside the repo (skip when absent)."""
    if not RECORDED.is_dir():
        pytest.skip("../shared/recorded is not present")
    return RECORDED


@pytest.fixture(scope="session")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One fixture platform for the whole session (MP4s cached across tests)."""
    from fixture_platform.server import FixtureServer

    media = tmp_path_factory.mktemp("fixture-media")
    with FixtureServer(media_dir=media) as srv:
        yield srv


def write_config(path: Path, data_dir: Path, base_url: str, extra: str = "") -> Path:
    """A TOML config for tests: temp data dir, every platform on the fixture, no delays."""
    platforms = "\n".join(
        f'[platforms.{p}]\nbase_url = "{base_url}"\ndownload_delay = 0.0\n'
        "sleep_interval = 0.0\nsleep_requests = 0.0\nmax_downloads_per_hour = 0\n"
        'fetch = { hashtag = "http", search = "http", user = "http" }\n'
        + ('cookies = { sessionid = "test-session" }\n' if p == "instagram" else "")
        for p in ("tiktok", "youtube", "instagram")
    )
    path.write_text(
        f'[storage]\ndata_dir = "{data_dir.as_posix()}"\n\n{platforms}\n'
        f"[crawl]\nautothrottle = false\n\n{extra}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config_file(tmp_path: Path, fixture_server: object) -> Path:
    return write_config(tmp_path / "charwatch.toml", tmp_path / "data", fixture_server.base_url)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(),
    reason="headless Chromium not installed (Debian package `chromium`; .ci/run installs it)",
)


@contextlib.contextmanager
def local_http_server(handler: Any) -> Iterator[str]:
    """Serve ``handler`` (a request handler class or factory) on 127.0.0.1; yields the URL."""

    class _Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # clients closing early (yt-dlp sniffing a URL, a size cap) are expected

    srv = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server on 127.0.0.1 for the session (skipped when not installed)."""
    from storage import pgserver

    if not pgserver.available():
        pytest.skip("PostgreSQL not installed (Debian package `postgresql`; .ci/run installs it)")
    with pgserver.TempPostgres() as pg:
        yield pg


@pytest.fixture
def pg_url(postgres: Any, request: pytest.FixtureRequest) -> str:
    """A fresh database on the session's PostgreSQL server; its SQLAlchemy URL."""
    name = "t_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    return postgres.create_database(name)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An S3-compatible server (moto) on 127.0.0.1; yields its endpoint URL."""
    import socket
    import time
    import urllib.request

    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        pytest.skip("moto_server not installed (pip install 'moto[server]')")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(tmp_path_factory.mktemp("s3") / "moto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
def s3_bucket(s3_server: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """A fresh bucket on the S3 server: ``(s3://bucket/prefix, {"endpoint_url": ...})``."""
    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = "b" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:20]
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_server})
    fs.mkdir(name)
    return f"s3://{name}/charwatch", {"endpoint_url": s3_server}


def charwatch_exe() -> list[str]:
    exe = Path(sys.executable).with_name("charwatch")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("charwatch")
    return [found] if found else [sys.executable, "-m", "charwatch.cli"]


def run_cli(
    *args: str, config: Path | None = None, env: dict[str, str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``charwatch`` command for real and capture its output."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CHARWATCH_")}
    full_env.update(env or {})
    cmd = charwatch_exe()
    if config is not None:
        cmd += ["--config", str(config)]
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, env=full_env, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def bank_cache(request: pytest.FixtureRequest) -> Path:
    """Where the background-bank embeddings are kept between tests and runs: pytest's cache
    folder, under a key made from the code that computes them (any change recomputes)."""
    import index.refindex
    import index.signals
    import pipeline.color
    import pipeline.embedders.effnet
    import pipeline.regions

    modules = (index.refindex, pipeline.regions, pipeline.color, pipeline.embedders.effnet)
    files = [Path(m.__file__) for m in modules]
    files += sorted(Path(index.signals.__file__).parent.glob("*.py"))  # the signals package
    code = b"".join(f.read_bytes() for f in files)
    key = hashlib.sha256(code).hexdigest()[:16]
    cache = getattr(request.config, "cache", None)
    if cache is None:
        return request.getfixturevalue("tmp_path_factory").getbasetemp() / f"bank-{key}"
    return Path(cache.mkdir(f"charwatch-bank-{key}"))
