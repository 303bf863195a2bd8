"""yt-dlp as the live sites need it: a JS runtime, TLS impersonation, cookies, pacing.

:func:`platform_options` turns a platform's config into yt-dlp options: the JavaScript runtime
yt-dlp needs for YouTube (the ``deno`` binary from PyPI, passed by path so it is found whether
or not the venv is activated), the impersonation target (curl_cffi), cookies (inline, a
Netscape file or a browser profile), extractor arguments and request pacing, and a cache folder
under ``data_dir`` (player JS, tokens). :class:`YtdlpSessions` keeps one ``YoutubeDL`` per
platform and thread for a whole batch, so that cache and the cookies live across videos.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import ipaddress
import shutil
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from charwatch.config import PlatformConfig

# runtimes yt-dlp accepts, in its order of preference, and their executables
_RUNTIME_EXES = (("deno", "deno"), ("node", "node"), ("bun", "bun"), ("quickjs", "qjs"))


def js_runtimes() -> dict[str, dict[str, str]]:
    """yt-dlp's ``js_runtimes`` option: every runtime found, the PyPI ``deno`` first."""
    found: dict[str, dict[str, str]] = {}
    try:
        import deno  # the PyPI package ships the binary

        path = deno.find_deno_bin()
        if path and Path(path).is_file():
            found["deno"] = {"path": str(path)}
    except (ImportError, OSError, RuntimeError):
        pass
    for name, exe in _RUNTIME_EXES:
        if name not in found and (path := shutil.which(exe)):
            found[name] = {"path": path}
    return found


def parse_extractor_args(args: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """``{"youtube": "player_client=default,web_safari;skip=dash"}`` -> yt-dlp's form."""
    out: dict[str, dict[str, list[str]]] = {}
    for extractor, text in args.items():
        pairs = out.setdefault(extractor.strip().lower(), {})
        for part in str(text).split(";"):
            key, sep, value = part.partition("=")
            if sep and key.strip():
                pairs[key.strip()] = [v.strip() for v in value.split(",") if v.strip()]
    return out


def parse_cookies_from_browser(text: str) -> tuple[str, str | None, str | None, str | None]:
    """``BROWSER[+KEYRING][:PROFILE][::CONTAINER]`` (yt-dlp's syntax) -> its option tuple."""
    rest, _, container = text.partition("::")
    rest, _, profile = rest.partition(":")
    browser, _, keyring = rest.partition("+")
    return (
        browser.strip().lower(),
        profile.strip() or None,
        keyring.strip().upper() or None,
        container.strip() or None,
    )


def impersonate_target(name: str) -> Any:
    """yt-dlp's ImpersonateTarget for a name such as ``chrome`` or ``safari-18.0``."""
    from yt_dlp.networking.impersonate import ImpersonateTarget

    return ImpersonateTarget.from_str(name.strip().lower())


def cache_dir(data_dir: Path) -> Path:
    """yt-dlp's cache (player JS, tokens) under the data folder."""
    return Path(data_dir) / "cache" / "yt-dlp"


def platform_options(
    platform: PlatformConfig | None, data_dir: Path | None, name: str = ""
) -> dict[str, Any]:
    """yt-dlp options for talking to one platform (no per-video options)."""
    opts: dict[str, Any] = {"js_runtimes": js_runtimes()}
    if data_dir is not None:
        opts["cachedir"] = str(cache_dir(data_dir))
    else:
        opts["cachedir"] = False
    if platform is None:
        return opts
    if platform.proxy:
        opts["proxy"] = platform.proxy
    if platform.headers:
        opts["http_headers"] = dict(platform.headers)
    if platform.impersonate:
        opts["impersonate"] = impersonate_target(platform.impersonate)
    if platform.cookies_file:
        opts["cookiefile"] = str(Path(platform.cookies_file).expanduser())
    if platform.cookies_from_browser:
        opts["cookiesfrombrowser"] = parse_cookies_from_browser(platform.cookies_from_browser)
    if platform.extractor_args:
        opts["extractor_args"] = parse_extractor_args(platform.extractor_args)
    if platform.sleep_requests > 0:
        opts["sleep_interval_requests"] = float(platform.sleep_requests)
    return opts


def cookie_domain(base_url: str) -> str:
    """The cookie domain of a platform's base URL (``.tiktok.com``, or an IP as is)."""
    host = urlparse(base_url).hostname or ""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if "." not in host:
        return host
    return "." + host.removeprefix("www.")


def add_cookies(ydl: Any, platform: PlatformConfig) -> None:
    """Scope the platform's inline cookies to its own domain (never sent to other hosts)."""
    from pipeline.failures import DownloadError

    domain = cookie_domain(platform.base_url)
    if not domain:
        raise DownloadError("platform cookies need platforms.<name>.base_url", transient=False)
    for name, value in platform.cookies.items():
        ydl.cookiejar.set_cookie(
            http.cookiejar.Cookie(
                version=0,
                name=name,
                value=value,
                port=None,
                port_specified=False,
                domain=domain,
                domain_specified=True,
                domain_initial_dot=domain.startswith("."),
                path="/",
                path_specified=True,
                secure=False,
                expires=None,
                discard=True,
                comment=None,
                comment_url=None,
                rest={},
            )
        )


class YtdlpSessions:
    """One ``YoutubeDL`` per platform and thread, kept for a batch; :meth:`close` at the end.

    ``base`` holds options common to every video of the batch; per-video options (output
    folder, size cap, filters) are set on the instance before each use by its only thread.
    """

    def __init__(self, base: dict[str, Any], data_dir: Path | None) -> None:
        self.base = base
        self.data_dir = data_dir
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def get(self, name: str, platform: PlatformConfig | None) -> Any:
        """This thread's ``YoutubeDL`` for platform ``name``."""
        from yt_dlp import YoutubeDL

        mine: dict[str, Any] = getattr(self._local, "ydls", None) or {}
        self._local.ydls = mine
        if name not in mine:
            opts = {**self.base, **platform_options(platform, self.data_dir, name)}
            ydl = YoutubeDL(opts)
            if platform is not None and platform.cookies:
                add_cookies(ydl, platform)
            mine[name] = ydl
            with self._lock:
                self._all.append(ydl)
        return mine[name]

    def close(self) -> None:
        """Close every instance (saves the cookie file, closes connections)."""
        with self._lock:
            ydls, self._all = self._all, []
        for ydl in ydls:
            with contextlib.suppress(Exception):  # closing must not hide the batch's result
                ydl.close()

    def __enter__(self) -> YtdlpSessions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
