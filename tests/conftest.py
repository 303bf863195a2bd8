"""Shared test fixtures: the fixture platform on 127.0.0.1, temp configs, the real CLI, the
effnet-lite0 embedder and its background bank, and stored, processed fixture videos."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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
    return kept_dir(request, f"bank-{key}")


def kept_dir(request: pytest.FixtureRequest, name: str) -> Path:
    """A folder kept between tests and runs: ``charwatch-<name>`` in pytest's cache folder, or
    with ``-p no:cacheprovider`` in this run's temp folder (shared by the xdist workers)."""
    cache = getattr(request.config, "cache", None)
    if cache is None:
        base = request.getfixturevalue("tmp_path_factory").getbasetemp()
        if os.environ.get("PYTEST_XDIST_WORKER"):
            base = base.parent
        return base / name
    return Path(cache.mkdir(f"charwatch-{name}"))


@pytest.fixture(scope="session")
def made_once(request: pytest.FixtureRequest) -> Callable[[str, Any, Callable[[Path], None]], Path]:
    """``made_once(name, recipe, make)``: the folder ``make(folder)`` fills, made once per
    ``recipe`` (anything JSON can write: what the files depend on) and kept between runs in
    :func:`kept_dir`; one xdist worker makes it, the others wait. Callers copy, never change."""

    def get(name: str, recipe: Any, make: Callable[[Path], None]) -> Path:
        key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
        folder = kept_dir(request, f"{name}-{key}")
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (folder / ".done").exists():  # absent or left half-made by a crash
                for old in folder.iterdir():
                    if old.is_dir():
                        shutil.rmtree(old)
                    elif old.name != ".lock":
                        old.unlink()
                make(folder)
                (folder / ".done").touch()
        return folder

    return get


def seed_bank(cfg: Any, bank: Path) -> None:
    """Copy the session's background bank (:func:`bank_file`) into ``cfg``'s index folder, so
    building a reference index there reads it instead of embedding the bank pictures again."""
    from index.refindex import index_dir

    dst = index_dir(cfg) / bank.name
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(bank, dst)


# -- the embedder and its background bank, once per session --------------------------------


@pytest.fixture(scope="session")
def embedder() -> Any:
    """effnet-lite0 (the default embedder) with its shipped weights, loaded once per session.
    A test that patches one of its methods does so with ``monkeypatch``, which puts it back."""
    from pipeline.embedders import load_embedder

    return load_embedder("effnet-lite0")


CLIP_TEST_SPEC = "clip:ViT-S-32:none"


@pytest.fixture(scope="session")
def clip_embedder() -> Any:
    """open_clip with seeded random weights and a text tower, loaded once per session: the
    CLIP code path (the image and text towers, int8 where the CPU has a quantized engine) on
    ViT-S-32, three times as fast as ViT-B-32 on a CPU and the same code."""
    from pipeline.embedders import load_embedder

    return load_embedder(CLIP_TEST_SPEC)


@pytest.fixture(scope="session")
def bank_file(bank_cache: Path, embedder: Any) -> Path:
    """The background-bank embeddings of :func:`embedder`, computed by the real
    ``background_bank`` once (and kept in :func:`bank_cache` between runs); seed a data dir
    with :func:`seed_bank`."""
    from charwatch.config import Config
    from index.refindex import background_bank, embedder_slug, index_dir

    cfg = Config()
    cfg.storage.data_dir = str(bank_cache)
    bank_cache.mkdir(parents=True, exist_ok=True)
    with open(bank_cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one xdist worker computes it, the others wait
        background_bank(cfg, embedder)  # reads the file when it is there and current
    return index_dir(cfg) / f"bank-{embedder_slug(embedder.id)}.npz"


@pytest.fixture(scope="session")
def bank_vectors(bank_file: Path) -> np.ndarray:
    """The background bank's region vectors (float32), as ``background_bank`` returns them."""
    with np.load(bank_file, allow_pickle=False) as z:
        return np.asarray(z["vectors"], dtype=np.float32)


# -- stored, processed videos ---------------------------------------------------------------

STORED_LISTING = "tiktok:hashtag:charwatchdemo"
STORED_VIDEOS = 3  # the first videos of the listing
STORED_PROCESS = {"download_retries": 0, "batch_size": 4}


@dataclass
class StoredVideos:
    """A data dir of fixture videos (a copy, the test's own): its config file, the loaded
    config and its store."""

    config: Path
    cfg: Any  # charwatch.config.Config
    store: Any  # storage.Store

    def platform_ids(self) -> list[str]:
        from sqlalchemy import select

        from storage import Video

        with self.store.session() as s:
            return list(s.scalars(select(Video.platform_id).order_by(Video.platform_id)))


@dataclass
class PreparedVideos:
    """The session's prepared data dirs (never handed to a test: :func:`stored_videos` copies
    them) and the processed one's end state (:func:`end_state`)."""

    crawled: Path
    processed: Path
    end_state: dict[str, Any]


def _stored_config(
    path: Path, data: Path, base_url: str, url: str = "", process: dict[str, Any] | None = None
) -> Path:
    """``write_config`` with one ``[process]`` table and, when given, a database URL."""
    settings = {**STORED_PROCESS, **(process or {})}
    table = "[process]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
    path = write_config(path, data, base_url, table)
    if url:
        body = path.read_text(encoding="utf-8")
        path.write_text(body.replace("[storage]\n", f'[storage]\nurl = "{url}"\n', 1))
    return path


@pytest.fixture(scope="session")
def prepared_videos(
    tmp_path_factory: pytest.TempPathFactory, fixture_server: Any, embedder: Any
) -> PreparedVideos:
    """Built once per session with the real parts: the first fixture videos of a listing
    crawled (Scrapy) into one data dir, and a copy of it processed (yt-dlp, ffmpeg, PDQ,
    effnet-lite0, SQLite) into another."""
    from charwatch.config import load_config
    from crawler.listing import Listing
    from crawler.run import run_crawl
    from pipeline.worker import process_pending
    from storage import Store

    root = tmp_path_factory.mktemp("prepared")
    crawled, processed = root / "crawled", root / "processed"
    cfg = load_config(_stored_config(root / "crawl.toml", crawled, fixture_server.base_url), {})
    run_crawl(cfg, [Listing.parse(STORED_LISTING)], max_items=STORED_VIDEOS)
    Store(cfg.storage.database_url).dispose()
    shutil.copytree(crawled, processed)
    path = _stored_config(root / "process.toml", processed, fixture_server.base_url)
    cfg = load_config(path, {})
    store = Store(cfg.storage.database_url)
    stats = process_pending(cfg, store, embedder, progress=False)
    assert (stats.processed, stats.failed) == (STORED_VIDEOS, 0), stats.summary()
    state = end_state(store)
    store.dispose()  # a complete SQLite file (no WAL left) to copy
    return PreparedVideos(crawled, processed, state)


@pytest.fixture
def stored_videos(
    prepared_videos: PreparedVideos, fixture_server: Any, tmp_path: Path
) -> Callable[..., StoredVideos]:
    """Copies of :func:`prepared_videos` in ``tmp_path``, one per call (a copy is cheap, and
    the test may change it at will). ``stored_videos()``: the videos processed (media, frames,
    embeddings; state ``embedded``); ``processed=False``: only crawled (``discovered``).
    ``url``: the crawled rows go into that database instead (e.g. PostgreSQL); ``process``:
    more ``[process]`` settings for the config file."""
    from sqlalchemy import select

    from charwatch.config import load_config
    from storage import Store, Video
    from storage.video_fields import ITEM_FIELDS

    made = 0

    def make(
        processed: bool = True, url: str = "", process: dict[str, Any] | None = None
    ) -> StoredVideos:
        nonlocal made
        if url and processed:
            raise ValueError("only crawled videos can go into another database")
        made += 1
        home = tmp_path / f"stored-{made}"
        source = prepared_videos.processed if processed else prepared_videos.crawled
        shutil.copytree(source, home / "data")
        path = _stored_config(
            home / "charwatch.toml", home / "data", fixture_server.base_url, url, process
        )
        cfg = load_config(path, {})
        store = Store(cfg.storage.database_url)
        if url:
            copied = Store(f"sqlite:///{home / 'data' / 'charwatch.db'}")
            with copied.session() as s, store.session() as d:
                for v in s.scalars(select(Video)):
                    d.add(Video(**{f: getattr(v, f) for f in ITEM_FIELDS}))
            copied.dispose()
        return StoredVideos(path, cfg, store)

    return make


def end_state(store: Any) -> dict[str, Any]:
    """What processing leaves per video, whatever interrupted it on the way: state, error,
    media hash, lease, frames (time, PDQ, quality) and embedding vectors."""
    from sqlalchemy import select

    from storage import Embedding, Frame, Video

    out: dict[str, Any] = {}
    with store.session() as s:
        for v in s.scalars(select(Video).order_by(Video.platform_id)):
            frames = list(s.scalars(select(Frame).where(Frame.video_id == v.id).order_by(Frame.t)))
            embs = {}
            for f in frames:
                for e in s.scalars(select(Embedding).where(Embedding.frame_id == f.id)):
                    embs[(f.t, e.region, e.model_id)] = np.frombuffer(e.vector, np.float16)
            out[v.platform_id] = {
                "state": v.state,
                "error": (v.error or "").split(" (")[0],
                "sha": v.media_sha256,
                "lease": v.lease_owner,
                "frames": [(f.t, f.pdq, f.pdq_quality) for f in frames],
                "embeddings": embs,
            }
    return out


def assert_same_end_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two :func:`end_state` results agree: the same rows and frames, vectors within rounding."""
    assert a.keys() == b.keys()
    for pid in a:
        x, y = a[pid], b[pid]
        for key in ("state", "error", "sha", "lease", "frames"):
            assert x[key] == y[key], (pid, key, x[key], y[key])
        assert x["embeddings"].keys() == y["embeddings"].keys(), pid
        for k, vec in x["embeddings"].items():
            other = y["embeddings"][k].astype(np.float32)
            assert float(vec.astype(np.float32) @ other) > 0.999, (pid, k)


# -- a worker killed with kill -9 -------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import sys
    from charwatch.config import load_config
    from charwatch.jobs import current_embedder
    from pipeline.worker import process_pending
    from storage.db import Store

    cfg = load_config(sys.argv[1], environ={})
    store = Store(cfg.storage.database_url)
    process_pending(cfg, store, current_embedder(cfg), progress=False)
    """
)


@dataclass
class Killed:
    """How a :func:`kill_9_midway` went: whether the worker was still running when the kill
    came, and how many videos were leased then."""

    running: bool
    leased: int


def kill_9_midway(config: Path, store: Any, timeout: float = 120) -> Killed:
    """Run the real worker (``process_pending``) on ``config`` in a child process and kill it
    with SIGKILL as soon as a video has its frames stored, i.e. in the middle of the batch."""
    from sqlalchemy import func, select

    from storage import Video, VideoState

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed = Killed(running=False, leased=0)
    started = (VideoState.FRAMES, VideoState.EMBEDDED)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            with store.session() as s:
                count = select(func.count()).select_from(Video)
                if s.scalar(count.where(Video.state.in_(started))):
                    killed.leased = s.scalar(count.where(Video.lease_owner.is_not(None)))
                    break
            time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed.running = True
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    return killed


# -- xdist ----------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per xdist worker (``make test-fast`` runs two): as many busy threads
    as workers, not twice that. Where the modules' durations of an earlier run are known,
    xdist hands modules out in the order :func:`pytest_collection_modifyitems` gives them
    (longest first) instead of by their number of tests."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
    elif hasattr(config.option, "loadscopereorder") and _module_times(config):
        config.option.loadscopereorder = False


# -- the longest modules first ----------------------------------------------------------------
#
# With ``--dist loadfile`` each module runs whole in one process, handed out in order; a long
# module handed out last leaves the other process idle. So each run records every module's
# duration (setup, call and teardown of its tests) in pytest's cache, per ``-m`` expression, and
# the next run collects the modules longest first. A module's time is replaced only by a run
# that ran at least as many of its tests (a ``-k`` run does not shrink it). A fresh clone starts
# from ``tests/module_seconds.json`` (one run's times, for the fast set and the whole suite).

_MODULE_TIMES = "charwatch/module-seconds"
_this_run: dict[str, list[float]] = {}  # module -> [seconds, tests]


def _module_times_key(config: pytest.Config) -> str:
    marks = re.sub(r"[^A-Za-z0-9]+", "-", config.option.markexpr or "").strip("-")
    return f"{_MODULE_TIMES}/{marks or 'all'}"


def _module_times(config: pytest.Config) -> dict[str, list[float]]:
    """``{module: [seconds, tests]}`` recorded by earlier runs (anything malformed left out);
    before any run (a fresh clone, CI), the times kept in ``tests/module_seconds.json``."""
    cache = getattr(config, "cache", None)
    key = _module_times_key(config)
    times = cache.get(key, {}) if cache is not None else {}
    if not times:
        seed = Path(__file__).with_name("module_seconds.json")
        try:
            times = json.loads(seed.read_text(encoding="utf-8")).get(key.rsplit("/", 1)[1], {})
        except (OSError, ValueError, AttributeError):
            times = {}
    if not isinstance(times, dict):
        return {}
    return {
        module: [float(v[0]), int(v[1])]
        for module, v in times.items()
        if isinstance(v, list) and len(v) == 2 and all(isinstance(x, int | float) for x in v)
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The modules timed before, longest first; the others after them, in collection order
    (a stable sort: each module's tests keep their order)."""
    times = _module_times(config)
    if times:
        items.sort(key=lambda item: -times.get(item.nodeid.split("::")[0], [0.0, 0])[0])


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _this_run.setdefault(report.nodeid.split("::")[0], [0.0, 0])
    entry[0] += report.duration
    entry[1] += report.when == "setup"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Record this run's module durations (in the xdist controller, or a run without xdist)."""
    config = session.config
    cache = getattr(config, "cache", None)
    if cache is None or hasattr(config, "workerinput") or not _this_run:
        return
    times = _module_times(config)
    for module, (seconds, tests) in _this_run.items():
        if tests >= times.get(module, [0.0, 0])[1]:
            times[module] = [round(seconds, 1), int(tests)]
    cache.set(_module_times_key(config), times)
