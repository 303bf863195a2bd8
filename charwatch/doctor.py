"""``charwatch doctor``: check the set-up (tools, cookies, proxies, browser, database, disk).

Every check runs locally: the platforms themselves are never contacted. A proxy is checked by
opening (and closing) a TCP connection to it; the browser and ffmpeg by asking for their
version. Each check yields rows of (check, platform, status, detail, fix) with status ``ok``,
``warn`` (works, but worse than it could) or ``fail`` (that part cannot work as configured).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import http.cookiejar
import importlib.metadata
import io
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from charwatch.config import PLATFORMS, Config, PlatformConfig
from charwatch.platforms import DESCRIPTIONS

OK, WARN, FAIL = "ok", "warn", "fail"
GIB = 1 << 30
DISK_WARN_BYTES = 5 * GIB
DISK_FAIL_BYTES = 1 * GIB
PROXY_TIMEOUT_S = 3.0
EXE_TIMEOUT_S = 30.0
# cookies that carry a login; without them a cookies file only makes requests look anonymous
LOGIN_COOKIES = {p.name: p.login_cookies for p in DESCRIPTIONS}
_PROXY_PORTS = {"http": 80, "https": 443} | dict.fromkeys(
    ("socks4", "socks4a", "socks5", "socks5h"), 1080
)


@dataclass(frozen=True)
class Check:
    """One result row; ``platform`` is None for checks that are not per platform."""

    check: str
    platform: str | None
    status: str
    detail: str
    fix: str = ""


# ---------------------------------------------------------------- yt-dlp


@functools.cache
def _ydl() -> Any:
    """One quiet ``YoutubeDL`` (no network on creation) for yt-dlp's own view of the set-up."""
    from yt_dlp import YoutubeDL

    return YoutubeDL({"quiet": True, "no_warnings": True, "js_runtimes": {}})


def check_js_runtime() -> list[Check]:
    """The JavaScript runtime yt-dlp gets for YouTube's player challenges, and yt-dlp-ejs."""
    from yt_dlp.globals import supported_js_runtimes

    from pipeline.ytdlp import js_runtimes

    fix = "pip install deno (or put deno 2.3+, node 22+ or bun on PATH)"
    runtimes = js_runtimes()  # what the downloader passes to yt-dlp
    known = supported_js_runtimes.value
    usable: list[str] = []
    other: list[str] = []
    for name, conf in runtimes.items():
        cls = known.get(name)
        if cls is None:
            other.append(f"{name} (not a runtime yt-dlp knows: {', '.join(known)})")
            continue
        info = cls(path=(conf or {}).get("path")).info
        if info is None:
            other.append(f"{name} at {(conf or {}).get('path') or name} (does not run)")
        elif info.supported:
            usable.append(f"{info.name} {info.version} ({info.path})")
        else:
            too_old = getattr(cls, "MIN_SUPPORTED_VERSION", ())
            need = ".".join(map(str, too_old)) if too_old else "newer"
            other.append(f"{info.name} {info.version} (too old, needs {need})")
    rows: list[Check] = []
    if usable:
        detail = usable[0] + (
            f"; also {', '.join(usable[1:] + other)}" if len(usable) > 1 or other else ""
        )
        rows.append(Check("js runtime", "youtube", OK, detail))
    else:
        detail = (f"none usable ({', '.join(other)})" if other else "none found") + (
            ": YouTube downloads fail with 'Requested format is not available'"
        )
        rows.append(Check("js runtime", "youtube", FAIL, detail, fix))
    rows.append(_check_ejs())
    return rows


def _check_ejs() -> Check:
    try:
        from yt_dlp.extractor.youtube.jsc._builtin import vendor

        wanted: str | None = vendor.VERSION
    except Exception:  # noqa: BLE001 - a layout change inside yt-dlp must not stop the doctor
        wanted = None
    try:
        have = importlib.metadata.version("yt-dlp-ejs")
    except importlib.metadata.PackageNotFoundError:
        return Check(
            "yt-dlp-ejs",
            "youtube",
            WARN,
            "not installed: yt-dlp falls back to its bundled challenge solver",
            'pip install "yt-dlp[default]"',
        )
    if wanted and have.split(".")[:2] != wanted.split(".")[:2]:
        return Check(
            "yt-dlp-ejs",
            "youtube",
            WARN,
            f"{have} installed, this yt-dlp expects {wanted} (it will ignore it)",
            'pip install -U "yt-dlp[default]"',
        )
    return Check("yt-dlp-ejs", "youtube", OK, have)


def _ytdlp_spelling(target: str) -> str:
    """A curl_cffi target name (``chrome131``, ``safari17_2_ios``) as yt-dlp writes it."""
    m = re.fullmatch(r"([a-z]+)(\d+(?:[._]\d+)*)[a-z]?(?:_([a-z]+))?", target)
    if not m:
        return target
    client, version, os_ = m.groups()
    return f"{client}-{version.replace('_', '.')}" + (f":{os_}" if os_ else "")


def check_impersonation(platform: str, pcfg: PlatformConfig) -> list[Check]:
    """Browser TLS impersonation: the target as yt-dlp gets it, and curl_cffi for Scrapy."""
    from pipeline.ytdlp import impersonate_target

    name = "impersonate (yt-dlp)"
    fix_dep = 'pip install "yt-dlp[curl-cffi]"'
    ydl = _ydl()
    targets = [str(t) for t, _handler in ydl._get_available_impersonate_targets()]
    wanted = pcfg.impersonate.strip().lower()
    summary = f"{len(targets)} target(s) available" + (
        f", e.g. {', '.join(targets[:2])}" if targets else ""
    )
    rows: list[Check] = []
    if wanted:
        if _available(ydl, impersonate_target, wanted):
            rows.append(Check(name, platform, OK, f"{wanted!r}: {summary}"))
        else:
            # YoutubeDL refuses to start with a target it cannot impersonate
            detail = f"{wanted!r} is not available: {summary}"
            alias = _ytdlp_spelling(wanted)
            if alias != wanted and _available(ydl, impersonate_target, alias):
                detail = f"{wanted!r} is a curl_cffi name; yt-dlp calls it {alias!r}"
            fix = f"use a name both yt-dlp and curl_cffi take: {', '.join(_clients(targets))}"
            rows.append(Check(name, platform, FAIL, detail, fix if targets else fix_dep))
    elif not targets:
        # yt-dlp's TikTok extractor always asks for impersonation
        status = FAIL if platform == "tiktok" else WARN if platform == "instagram" else OK
        detail = "no target available (curl_cffi missing)"
        rows.append(Check(name, platform, status, detail, fix_dep if status != OK else ""))
    else:
        rows.append(Check(name, platform, OK, f"not configured; {summary}"))
    rows.append(_check_scrapy_impersonation(platform, wanted))
    return rows


def _available(ydl: Any, to_target: Callable[[str], Any], text: str) -> bool:
    try:
        target = to_target(text)
    except ValueError:
        return False
    return bool(ydl._impersonate_target_available(target))


def _clients(targets: Sequence[str]) -> list[str]:
    """The plain browser names (``chrome``, ``safari``) among yt-dlp targets."""
    return sorted({t.split(":")[0].split("-")[0] for t in targets})


def _check_scrapy_impersonation(platform: str, wanted: str) -> Check:
    name = "impersonate (scrapy)"
    fix = "pip install scrapy-impersonate curl_cffi"
    missing = []
    for module in ("scrapy_impersonate", "curl_cffi"):
        try:
            __import__(module)
        except Exception as exc:  # noqa: BLE001 - a broken native library raises OSError too
            missing.append(f"{module}: {type(exc).__name__}: {exc}")
    if missing:
        status = FAIL if wanted else WARN
        return Check(name, platform, status, "; ".join(missing), fix)
    if not wanted:
        return Check(name, platform, OK, "available, not configured (plain Scrapy TLS)")
    from curl_cffi.requests import BrowserType

    names = {b.value for b in BrowserType}
    with contextlib.suppress(Exception):
        from curl_cffi.requests.impersonate import REAL_TARGET_MAP

        names |= set(REAL_TARGET_MAP)
    version = importlib.metadata.version("curl_cffi")
    if wanted not in names:
        plain = sorted(n for n in names if n.isalpha()) or sorted(names)[:6]
        sample = ", ".join(plain)
        return Check(
            name,
            platform,
            FAIL,
            f"{wanted!r} is not a curl_cffi {version} target",
            f"use a curl_cffi name such as {sample}",
        )
    return Check(name, platform, OK, f"{wanted!r} (curl_cffi {version})")


# ---------------------------------------------------------------- cookies


def _site(base_url: str) -> str:
    host = urlsplit(base_url).hostname or ""
    return host.removeprefix("www.")


def _same_site(cookie_domain: str, site: str) -> bool:
    domain = cookie_domain.lstrip(".").lower()
    return not site or domain == site or domain.endswith("." + site) or site.endswith("." + domain)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def check_cookies(platform: str, pcfg: PlatformConfig) -> list[Check]:
    """Inline cookies, a Netscape cookies file (readable, for this site, not expired), a browser."""
    login = LOGIN_COOKIES.get(platform, ())
    sources = []
    if pcfg.cookies:
        sources.append(f"inline: {', '.join(sorted(pcfg.cookies))}")
    if pcfg.cookies_file:
        sources.append(f"file {pcfg.cookies_file}")
    if pcfg.cookies_from_browser:
        sources.append(f"browser {pcfg.cookies_from_browser}")
    rows: list[Check] = []
    if sources:
        rows.append(Check("cookies", platform, OK, "; ".join(sources)))
    elif platform == "instagram":
        rows.append(
            Check(
                "cookies",
                platform,
                WARN,
                "none: Instagram answers most anonymous requests with 429 or a login page",
                "set platforms.instagram.cookies_file (or cookies = { sessionid = ... })",
            )
        )
    else:
        rows.append(Check("cookies", platform, OK, "none (anonymous)"))
    if pcfg.cookies_file:
        rows.append(check_cookies_file(platform, Path(pcfg.cookies_file), pcfg.base_url, login))
    if pcfg.cookies_from_browser:
        rows.append(_check_cookies_from_browser(platform, pcfg.cookies_from_browser))
    return rows


def load_cookies_file(path: Path) -> tuple[http.cookiejar.MozillaCookieJar, list[str]]:
    """Read a Netscape cookies file as yt-dlp does (``#HttpOnly_`` lines kept, expired ones too);
    returns the jar and the lines it skipped as malformed. Raises ``LoadError`` or ``OSError``."""
    from yt_dlp.cookies import YoutubeDLCookieJar

    jar = YoutubeDLCookieJar(str(path))
    skipped = io.StringIO()
    with contextlib.redirect_stderr(skipped):
        jar.load(ignore_discard=True, ignore_expires=True)
    return jar, [ln for ln in skipped.getvalue().splitlines() if ln.strip()]


def check_cookies_file(platform: str, path: Path, base_url: str, login: Sequence[str]) -> Check:
    """One row for a cookies file: missing, unreadable, not for this site, expired, or fine."""
    name = "cookies file"
    export = (
        f"export fresh cookies from a browser logged in to {_site(base_url) or platform} "
        "as a Netscape cookies.txt (first line '# Netscape HTTP Cookie File')"
    )
    if not path.is_file():
        return Check(name, platform, FAIL, f"{path} not found", export)
    try:
        jar, skipped = load_cookies_file(path)
    except (http.cookiejar.LoadError, OSError, UnicodeDecodeError, ValueError) as exc:
        return Check(name, platform, FAIL, f"{path} unreadable: {_one_line(exc)}", export)
    site = _site(base_url)
    mine = [c for c in jar if _same_site(c.domain, site)]
    note = f"; {len(skipped)} malformed line(s) skipped" if skipped else ""
    if not mine:
        return Check(
            name, platform, FAIL, f"{len(list(jar))} cookie(s), none for {site}{note}", export
        )
    now = time.time()
    expired = [c for c in mine if c.expires and c.expires <= now]
    logins = [c for c in mine if c.name in login]
    dead = [c for c in logins if c in expired]
    if dead:
        when = ", ".join(f"{c.name} expired {_when(c.expires or 0)}" for c in dead)
        return Check(name, platform, FAIL, f"{when}{note}", export)
    if len(expired) == len(mine):
        return Check(name, platform, FAIL, f"all {len(mine)} cookie(s) expired{note}", export)
    detail = f"{len(mine)} cookie(s) for {site}" + (f", {len(expired)} expired" if expired else "")
    if login and not logins:
        return Check(
            name,
            platform,
            WARN,
            f"{detail}; no login cookie ({', '.join(login)}){note}",
            export,
        )
    soonest = min((c.expires for c in logins if c.expires), default=None)
    if soonest is not None:
        detail += f"; login until {_when(soonest)}"
    return Check(name, platform, WARN if skipped else OK, detail + note, export if skipped else "")


def _check_cookies_from_browser(platform: str, spec: str) -> Check:
    from yt_dlp.cookies import SUPPORTED_BROWSERS

    from pipeline.ytdlp import parse_cookies_from_browser

    browser = parse_cookies_from_browser(spec)[0]
    if browser not in SUPPORTED_BROWSERS:
        return Check(
            "cookies from browser",
            platform,
            FAIL,
            f"{browser!r} is not a browser yt-dlp reads",
            f"use one of {', '.join(sorted(SUPPORTED_BROWSERS))} (BROWSER[:PROFILE])",
        )
    return Check(
        "cookies from browser",
        platform,
        OK,
        f"{spec} (read by yt-dlp at download time; the profile is not checked here)",
    )


# ---------------------------------------------------------------- network and tools


def check_proxy(platform: str, proxy: str) -> Check:
    """Open a TCP connection to the proxy (nothing is sent through it)."""
    url = proxy if "://" in proxy else f"http://{proxy}"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    fix = f"start the proxy or fix platforms.{platform}.proxy"
    try:
        port = parts.port or _PROXY_PORTS.get(scheme)
    except ValueError as exc:
        return Check("proxy", platform, FAIL, f"{_redact(url)}: {exc}", fix)
    if not parts.hostname or port is None:
        return Check("proxy", platform, FAIL, f"cannot read {_redact(url)!r}", fix)
    where = f"{parts.hostname}:{port}"
    start = time.monotonic()
    try:
        with socket.create_connection((parts.hostname, port), timeout=PROXY_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else _one_line(exc)
        return Check("proxy", platform, FAIL, f"{scheme} {where} unreachable: {reason}", fix)
    ms = (time.monotonic() - start) * 1000
    return Check("proxy", platform, OK, f"{scheme} {where} accepts connections ({ms:.0f} ms)")


def _redact(url: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", url)


def _run_version(cmd: list[str]) -> tuple[bool, str]:
    """Run ``cmd`` (a version query); returns (ran cleanly, first output line or the error)."""
    try:
        res = subprocess.run(
            cmd, capture_output=True, text=True, timeout=EXE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, _one_line(exc)
    lines = [ln.strip() for ln in (res.stdout or res.stderr).splitlines() if ln.strip()]
    first = lines[0] if lines else f"no output (exit {res.returncode})"
    return res.returncode == 0, first


def browser_needed(cfg: Config, platforms: Iterable[str]) -> list[str]:
    """``platform kind`` pairs whose listings are fetched with a real browser."""
    return [
        f"{p} {kind}"
        for p in platforms
        for kind in sorted(cfg.platforms.get(p).fetch)
        if cfg.platforms.get(p).fetch_mode(kind) == "browser"
    ]


def check_browser(cfg: Config, platforms: Sequence[str]) -> list[Check]:
    """Chromium for listings with ``fetch = "browser"``: found, and answers ``--version``."""
    try:
        users = browser_needed(cfg, platforms)
    except ValueError as exc:
        return [Check("config", None, FAIL, _one_line(exc), 'fetch values are "http" or "browser"')]
    if not users:
        return [Check("browser", None, OK, 'not needed (no listing uses fetch = "browser")')]
    scope = ", ".join(users)
    fix = (
        "install Chromium (apt-get install chromium) or set crawl.browser_path, "
        f'or use fetch = "http" for {scope}'
    )
    from crawler.browser import BrowserError, find_browser

    try:
        path = find_browser(cfg.crawl.browser_path)
    except BrowserError as exc:
        reason = str(exc).split(": ")[0]  # the rest is the install hint, given as the fix
        return [Check("browser", None, FAIL, f"{reason} (needed by {scope})", fix)]
    ran, first = _run_version([path, "--version"])
    if not ran:
        return [Check("browser", None, FAIL, f"{path} does not run: {first}", fix)]
    first = first.split(" built on ")[0]
    rows = [Check("browser", None, OK, f"{first} ({path}), for {scope}")]
    try:
        rows.append(Check("playwright", None, OK, importlib.metadata.version("playwright")))
    except importlib.metadata.PackageNotFoundError:
        rows.append(Check("playwright", None, FAIL, "not installed", "pip install playwright"))
    return rows


def check_ffmpeg() -> Check:
    """The bundled ffmpeg that samples frames: found, and answers ``-version``."""
    fix = "pip install --force-reinstall imageio-ffmpeg (or set IMAGEIO_FFMPEG_EXE)"
    try:
        from pipeline.media import ffmpeg_exe

        exe = ffmpeg_exe()
    except Exception as exc:  # noqa: BLE001 - imageio-ffmpeg raises RuntimeError and others
        return Check("ffmpeg", None, FAIL, _one_line(exc), fix)
    ran, first = _run_version([exe, "-hide_banner", "-version"])
    if not ran:
        return Check("ffmpeg", None, FAIL, f"{exe} does not run: {first}", fix)
    first = first.split(" Copyright ")[0]
    return Check("ffmpeg", None, OK, f"{first} ({exe})")


def check_database(cfg: Config) -> Check:
    """Connect, ``SELECT 1``, and compare the schema revision with the code's."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(cfg.storage.database_url)
    shown = url.render_as_string(hide_password=True)
    init_fix = "run `charwatch init` (creates the database and brings the schema up to date)"
    kwargs: dict[str, Any] = {}
    backend = url.get_backend_name()
    if backend == "sqlite":
        db = url.database
        if db and db != ":memory:" and not Path(db).is_file():
            return Check("database", None, WARN, f"{shown}: not created yet", init_fix)
        kwargs["connect_args"] = {"timeout": 5}
    elif backend in ("postgresql", "mysql", "mariadb"):
        kwargs["connect_args"] = {"connect_timeout": 5}
    try:
        engine = create_engine(url, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a missing driver raises ImportError/NoSuchModule
        fix = "install the database driver that storage.url names, or fix storage.url"
        return Check("database", None, FAIL, f"{shown}: {_one_line(exc)}", fix)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            try:
                revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except Exception:  # noqa: BLE001 - no such table: never initialised
                revision = None
    except Exception as exc:  # noqa: BLE001 - every driver has its own errors
        return Check(
            "database",
            None,
            FAIL,
            f"{shown}: {_one_line(exc)}",
            "check storage.url and that the database server runs and accepts this user",
        )
    finally:
        engine.dispose()
    heads = _schema_heads()
    if revision is None:
        return Check("database", None, WARN, f"{shown}: reachable, no schema", init_fix)
    if heads and revision not in heads:
        return Check(
            "database",
            None,
            WARN,
            f"{shown}: schema {revision}, this charwatch expects {', '.join(heads)}",
            init_fix,
        )
    return Check("database", None, OK, f"{shown}: reachable, schema {revision}")


def _schema_heads() -> list[str]:
    try:
        from alembic.script import ScriptDirectory

        from storage.db import MIGRATIONS_DIR

        return list(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())
    except Exception:  # noqa: BLE001 - the revision is a nicety; reachability is the check
        return []


def check_disk(cfg: Config) -> Check:
    """Free space where the data folder is (or will be)."""
    path = cfg.data_dir.resolve()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    detail = f"{free / GIB:.1f} GiB free at {path}" + ("" if probe == path else " (not created)")
    fix = "free space or point storage.data_dir at a larger disk"
    if free < DISK_FAIL_BYTES:
        return Check("disk", None, FAIL, detail, fix)
    if free < DISK_WARN_BYTES:
        return Check("disk", None, WARN, detail, fix)
    return Check("disk", None, OK, detail)


# ---------------------------------------------------------------- running and printing


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _guard(name: str, platform: str | None, fn: Callable[[], Any]) -> list[Check]:
    """Run one check; a crash in it becomes a ``fail`` row instead of stopping the others."""
    try:
        out = fn()
    except Exception as exc:  # noqa: BLE001 - report, keep checking
        return [Check(name, platform, FAIL, f"check crashed: {type(exc).__name__}: {exc}")]
    return list(out) if isinstance(out, list) else [out]


def run_checks(cfg: Config, platforms: Sequence[str] | None = None) -> list[Check]:
    """Every check for ``platforms`` (default: all), in a stable order."""
    chosen = [p for p in PLATFORMS if not platforms or p in platforms]
    rows: list[Check] = []
    if "youtube" in chosen:
        rows += _guard("js runtime", "youtube", check_js_runtime)
    for p in chosen:
        pcfg = cfg.platforms.get(p)
        rows += _guard("impersonate", p, lambda p=p, c=pcfg: check_impersonation(p, c))
        rows += _guard("cookies", p, lambda p=p, c=pcfg: check_cookies(p, c))
        if pcfg.proxy:
            rows += _guard("proxy", p, lambda p=p, c=pcfg: check_proxy(p, c.proxy))
    rows += _guard("browser", None, lambda: check_browser(cfg, chosen))
    rows += _guard("ffmpeg", None, check_ffmpeg)
    rows += _guard("database", None, lambda: check_database(cfg))
    rows += _guard("disk", None, lambda: check_disk(cfg))
    return rows


def format_table(rows: Sequence[Check]) -> str:
    """Aligned columns (check, platform, status, detail), each fix on an indented line below."""
    head = ("check", "platform", "status", "detail")
    cells = [(r.check, r.platform or "-", r.status, r.detail) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    indent = sum(widths[:3]) + 6

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    out = [line(head)]
    for row, c in zip(rows, cells, strict=True):
        out.append(line(c))
        if row.fix and row.status != OK:
            out.append(" " * indent + f"fix: {row.fix}")
    return "\n".join(out)


def summary(rows: Sequence[Check]) -> str:
    counts = {s: sum(r.status == s for r in rows) for s in (OK, WARN, FAIL)}
    verdict = "cannot work as configured" if counts[FAIL] else "can work"
    return f"{counts[OK]} ok, {counts[WARN]} warning(s), {counts[FAIL]} failure(s): {verdict}"


def run_doctor(cfg: Config, platforms: Sequence[str] | None = None, as_json: bool = False) -> bool:
    """Run the checks, print them (table or JSON) and return whether none failed."""
    rows = run_checks(cfg, platforms)
    ok = not any(r.status == FAIL for r in rows)
    if as_json:
        doc = {"ok": ok, "summary": summary(rows), "checks": [asdict(r) for r in rows]}
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        print(format_table(rows))
        print()
        print(summary(rows))
    return ok
