"""Typed configuration: one TOML file, defaults when absent, env overrides.

Every key can be overridden by an environment variable named
``CHARWATCH_<SECTION>__<KEY>`` (nested tables add more ``__`` parts), e.g.
``CHARWATCH_STORAGE__URL`` or ``CHARWATCH_PLATFORMS__TIKTOK__BASE_URL``.
Values are parsed as TOML literals when they parse (``3``, ``true``,
``["a", "b"]``, ``{ sessionid = "x" }``) and taken as plain strings otherwise.

The config is loaded once at the edge (CLI, scheduler, Scrapy settings) and
passed in; no other module reads the environment.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charwatch.errors import UsageError
from charwatch.platforms import BY_NAME, PLATFORMS

ENV_PREFIX = "CHARWATCH_"
ENV_CONFIG = "CHARWATCH_CONFIG"

DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


class ConfigError(UsageError):
    """Raised for an unreadable config file, an unknown key or a bad value."""


@dataclass
class StorageConfig:
    """Where things are kept.

    ``data_dir`` is a local folder (the default), a shared mount every machine reaches, or an
    object store URL (``s3://bucket/prefix``, with ``s3_endpoint_url`` for any S3-compatible
    server). With a URL, media and frames go to the object store and the local files a process
    needs (caches, logs, indexes, the SQLite database if used) to ``work_dir``.
    """

    url: str = ""  # empty: sqlite:///<data_dir>/charwatch.db
    data_dir: str = "data"
    work_dir: str = ""  # local folder when data_dir is a URL; empty: ./charwatch-work
    s3_endpoint_url: str = ""

    @property
    def objects_remote(self) -> bool:
        return "://" in self.data_dir and not self.data_dir.startswith("file://")

    @property
    def data_path(self) -> Path:
        """The local folder: ``data_dir`` itself, or ``work_dir`` when that is a URL."""
        if self.objects_remote:
            return Path(self.work_dir or "charwatch-work")
        return Path(self.data_dir.removeprefix("file://"))

    @property
    def objects_options(self) -> dict[str, str]:
        return {"endpoint_url": self.s3_endpoint_url} if self.s3_endpoint_url else {}

    @property
    def database_url(self) -> str:
        return self.url or f"sqlite:///{self.data_path / 'charwatch.db'}"


FETCH_MODES = ("http", "browser")


@dataclass
class PlatformConfig:
    """How charwatch talks to one platform: where, as whom, through what, and how fast.

    ``download_delay``/``concurrency`` pace the crawler; ``sleep_interval`` (seconds between
    video downloads), ``sleep_requests`` (seconds between yt-dlp's own requests) and
    ``max_downloads_per_hour`` pace downloads. ``fetch`` chooses, per listing kind, plain
    HTTP or a real browser (headless Chromium) for listings. ``impersonate`` names a browser
    TLS fingerprint (curl_cffi target such as ``chrome``; empty: none). ``extractor_args`` are
    yt-dlp extractor arguments, e.g. ``{ youtube = "player_client=default,web_safari" }``.
    ``cooldown_s`` is how long a platform-wide block pauses the platform (0: no pause kept
    between runs);
    ``max_consecutive_errors`` errors in a row count as such a block.
    """

    base_url: str = ""
    cookies: dict[str, str] = field(default_factory=dict)
    cookies_file: str = ""  # Netscape cookies.txt
    cookies_from_browser: str = ""  # e.g. "chromium" or "firefox:PROFILE" (yt-dlp syntax)
    proxy: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    impersonate: str = ""
    extractor_args: dict[str, str] = field(default_factory=dict)
    fetch: dict[str, str] = field(default_factory=dict)  # listing kind -> http | browser
    download_delay: float = 1.0
    concurrency: int = 2
    sleep_interval: float = 0.0
    sleep_requests: float = 0.0
    max_downloads_per_hour: int = 0  # 0: no limit
    cooldown_s: int = 3600
    max_consecutive_errors: int = 5

    def fetch_mode(self, kind: str) -> str:
        """``http`` or ``browser`` for a listing kind (default ``http``)."""
        mode = (self.fetch.get(kind) or "http").strip().lower()
        if mode not in FETCH_MODES:
            raise ConfigError(f"fetch mode {mode!r} for {kind} is not one of {FETCH_MODES}")
        return mode


def platform_defaults(name: str) -> PlatformConfig:
    """A platform's config as its description (``charwatch.platforms``) sets it."""
    desc = BY_NAME[name]
    return PlatformConfig(base_url=desc.base_url, **copy.deepcopy(desc.defaults))


@dataclass
class PlatformsConfig:
    # one field per described platform; defaults are what works on the live sites today
    tiktok: PlatformConfig = field(default_factory=lambda: platform_defaults("tiktok"))
    youtube: PlatformConfig = field(default_factory=lambda: platform_defaults("youtube"))
    instagram: PlatformConfig = field(default_factory=lambda: platform_defaults("instagram"))

    def get(self, name: str) -> PlatformConfig:
        if name not in PLATFORMS:
            raise ConfigError(f"unknown platform {name!r} (known: {', '.join(PLATFORMS)})")
        return getattr(self, name)


@dataclass
class CrawlConfig:
    user_agent: str = DEFAULT_USER_AGENT
    max_items: int = 200  # per listing and run
    stop_after_known: int = 30  # consecutive already-stored items that end paging
    max_pages: int = 50
    retry_times: int = 3
    autothrottle: bool = True
    timeout_s: float = 30.0
    browser_path: str = ""  # Chromium for fetch = "browser"; empty: chromium on PATH


@dataclass
class ProcessConfig:
    max_filesize_mb: int = 60
    max_duration_s: int = 600
    download_timeout_s: float = 60.0
    download_retries: int = 3
    frame_interval_s: float = 1.0  # at most one sampled frame per interval
    max_frames: int = 16  # per video
    frame_short_side: int = 360  # decode downscaled to this short side
    frames_timeout_s: float = 120.0
    batch_size: int = 32  # images per embedding batch
    torch_threads: int = 0  # 0: all cores
    lease_s: int = 900
    max_attempts: int = 3
    keep_media: str = "flagged"  # flagged | all | none


@dataclass
class EmbedConfig:
    model: str = "effnet-lite0"  # or clip:ARCH:PRETRAINED_TAG or clip:ARCH:/path/to/ckpt
    precision: str = "auto"  # auto | fp32 | bf16 | int8 (int8: CLIP image tower only)


@dataclass
class DetectConfig:
    embed_threshold: float = 0.0  # 0: the embedder's default
    pdq_max_distance: int = 31
    pdq_min_quality: int = 50
    top_k: int = 3  # frames fused per video
    min_frames: int = 2  # frames over threshold needed to flag


@dataclass
class ReportConfig:
    out_dir: str = ""  # empty: <data_dir>/reports
    thumb_px: int = 160


@dataclass
class ScheduleConfig:
    nightly: str = "0 2 * * *"  # cron: 5 fields, or 6 with seconds first
    recheck: str = "30 5 * * *"  # re-check confirmed detections; "" disables
    timezone: str = "UTC"
    misfire_grace_s: int = 3600


@dataclass
class ServeConfig:
    """The review desk (``charwatch serve``).

    It binds ``host`` (loopback unless told otherwise). Sessions are signed with a key kept in
    ``secret_key_file`` (empty: ``<data_dir>/desk-secret.key``, made once with mode 0600).
    ``secure_cookies``: send the session cookie over HTTPS only (set it behind a TLS proxy).
    A name that fails to log in ``login_max_failures`` times within ``login_lockout_s``
    seconds is refused until that window has passed.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    threads: int = 8
    secret_key_file: str = ""
    session_hours: float = 12.0
    secure_cookies: bool = False
    page_size: int = 50
    login_max_failures: int = 5
    login_lockout_s: int = 300


@dataclass
class WatchConfig:
    platform: str = ""
    hashtag: str = ""
    user: str = ""
    search: str = ""


@dataclass
class Config:
    storage: StorageConfig = field(default_factory=StorageConfig)
    platforms: PlatformsConfig = field(default_factory=PlatformsConfig)
    crawl: CrawlConfig = field(default_factory=CrawlConfig)
    process: ProcessConfig = field(default_factory=ProcessConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    watch: list[WatchConfig] = field(default_factory=list)
    source: str = ""  # the file it was read from, if any

    @property
    def data_dir(self) -> Path:
        return self.storage.data_path

    @property
    def reports_dir(self) -> Path:
        return Path(self.report.out_dir) if self.report.out_dir else self.data_dir / "reports"


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _env_overrides(environ: typing.Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"env {name} conflicts with another override")
        node[parts[-1]] = _parse_env_value(raw)
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table")
        return _build(tp, value, where)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list")
        return [_coerce(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table")
        return {str(k): str(v) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        return value
    try:
        if tp is bool:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if tp in (int, float, str):
            return tp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot read {value!r} as {tp.__name__}") from exc
    return value


def _build(cls: type, data: dict[str, Any], where: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key {where + '.' if where else ''}{unknown[0]}")
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}" if where else key)
    if cls is PlatformsConfig:
        # merge per-platform tables over each platform's own defaults
        defaults = PlatformsConfig()
        for key in list(kwargs):
            base = dataclasses.asdict(getattr(defaults, key))
            kwargs[key] = _build(PlatformConfig, _merge(base, data[key]), f"platforms.{key}")
    return cls(**kwargs)


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: typing.Mapping[str, str] | None = None,
) -> Config:
    """Read the TOML file (``path``, else ``$CHARWATCH_CONFIG``, else none) and env overrides."""
    environ = os.environ if environ is None else environ
    path = path or environ.get(ENV_CONFIG) or None
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
    data = _merge(data, _env_overrides(environ))
    cfg = _build(Config, data)
    cfg.source = str(path or "")
    for i, w in enumerate(cfg.watch):
        cfg.platforms.get(w.platform)
        if sum(bool(x) for x in (w.hashtag, w.user, w.search)) != 1:
            raise ConfigError(f"watch[{i}] needs exactly one of hashtag, user, search")
    return cfg


def dump_toml(cfg: Config) -> str:
    """Render a config as TOML (used by ``charwatch init`` to write a starter file)."""
    lines: list[str] = []

    def lit(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {lit(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(lit(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    def table(name: str, obj: Any) -> None:
        scalars = [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
        lines.append(f"[{name}]")
        subs = []
        for k, v in scalars:
            if dataclasses.is_dataclass(v):
                subs.append((k, v))
            else:
                lines.append(f"{k} = {lit(v)}")
        lines.append("")
        for k, v in subs:
            table(f"{name}.{k}", v)

    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            table(f.name, value)
    for w in cfg.watch:
        lines.append("[[watch]]")
        lines.extend(f"{k} = {lit(v)}" for k, v in dataclasses.asdict(w).items() if v)
        lines.append("")
    return "\n".join(lines)
