"""The fixture platform HTTP server: one host on 127.0.0.1 that plays TikTok, YouTube and
Instagram (paths do not collide), plus lazily generated MP4s and cover images under /media/.

    with FixtureServer() as srv:
        urllib.request.urlopen(srv.base_url + "/tag/charwatchdemo")
"""

from __future__ import annotations

import email.utils
import io
import re
import signal
import tempfile
import threading
import traceback
from collections import Counter
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from PIL import Image, ImageDraw

from fixture_platform import pages_instagram as IG
from fixture_platform import pages_tiktok as TT
from fixture_platform import pages_youtube as YT
from fixture_platform import webapp as W
from fixture_platform.catalog import DEMO_SEARCH, DEMO_TAG, DEMO_USER, Catalog, get_catalog
from fixture_platform.pages import Request, Response, esc, html_response, not_found, page
from fixture_platform.videos import make_video, poster

MEDIA_VERSION = 1  # bump when the drawing of videos changes, so cached files are not reused
MAX_BODY = 1 << 20

Handler = Callable[[Request, "FixtureServer", re.Match[str]], Response]


def _route_table() -> list[tuple[str, re.Pattern[str], Handler]]:
    r: list[tuple[str, str, Handler]] = [
        ("GET", r"/", lambda q, s, m: _index(q, s)),
        # TikTok
        ("GET", r"/tag/([^/]+)/?", lambda q, s, m: TT.tag_page(q, s.catalog, m[1])),
        (
            "GET",
            r"/api/challenge/item_list/?",
            lambda q, s, m: TT.challenge_item_list(q, s.catalog),
        ),
        ("GET", r"/api/creator/item_list/?", lambda q, s, m: TT.creator_item_list(q, s.catalog)),
        ("GET", r"/api/search/item/full/?", lambda q, s, m: TT.search_item_full(q, s.catalog)),
        ("GET", r"/login/?", lambda q, s, m: TT.login_page(q)),
        ("GET", r"/search/video/?", lambda q, s, m: W.search_page(q, s.catalog)),
        ("GET", r"/webapp/app\.js", lambda q, s, m: W.app_script(q, s.catalog)),
        (
            "GET",
            r"/@([^/]+)/video/(\d+)/?",
            lambda q, s, m: TT.video_page(q, s.catalog, m[1], m[2]),
        ),
        # YouTube
        ("GET", r"/@([^/]+)/shorts/?", lambda q, s, m: YT.channel_shorts_page(q, s.catalog, m[1])),
        (
            "GET",
            r"/channel/(UC[\w-]+)/shorts/?",
            lambda q, s, m: YT.channel_shorts_page(q, s.catalog, m[1]),
        ),
        (
            "GET",
            r"/hashtag/([^/]+)(?:/shorts)?/?",
            lambda q, s, m: YT.hashtag_page(q, s.catalog, m[1], s.request_count(q.path)),
        ),
        ("GET", r"/results/?", lambda q, s, m: YT.search_page(q, s.catalog)),
        ("GET", r"/feeds/videos\.xml", lambda q, s, m: YT.rss_feed(q, s.catalog)),
        ("GET", r"/shorts/([\w-]+)/?", lambda q, s, m: YT.video_page(q, s.catalog, m[1])),
        ("GET", r"/watch/?", lambda q, s, m: YT.video_page(q, s.catalog, q.query.get("v", ""))),
        ("POST", r"/youtubei/v1/browse/?", lambda q, s, m: YT.browse_api(q, s.catalog)),
        ("POST", r"/youtubei/v1/search/?", lambda q, s, m: YT.search_api(q, s.catalog)),
        # TikTok user page after the YouTube /@handle/shorts route
        ("GET", r"/@([^/]+)/?", lambda q, s, m: TT.user_page(q, s.catalog, m[1])),
        # Instagram
        (
            "GET",
            r"/api/v1/users/web_profile_info/?",
            lambda q, s, m: IG.web_profile_info(q, s.catalog),
        ),
        ("POST", r"/api/v1/clips/user/?", lambda q, s, m: IG.clips_user(q, s.catalog)),
        (
            "POST",
            r"/api/v1/tags/([^/]+)/sections/?",
            lambda q, s, m: IG.tag_sections(q, s.catalog, m[1]),
        ),
        ("GET", r"/(?:reel|reels|p)/([\w-]+)/?", lambda q, s, m: IG.reel_page(q, s.catalog, m[1])),
        (
            "GET",
            r"/explore/tags/([^/]+)/?",
            lambda q, s, m: IG.explore_tag_page(q, s.catalog, m[1]),
        ),
        ("GET", r"/accounts/login/?", lambda q, s, m: IG.login_page(q)),
        ("GET", r"/web/search/topsearch/?", lambda q, s, m: IG.topsearch(q, s.catalog)),
        # media
        (
            "GET",
            r"/media/(tiktok|youtube|instagram)/([\w-]+)\.(mp4|jpg)",
            lambda q, s, m: s._media(q, m),
        ),
        ("GET", r"/media/avatar/([\w.-]+)\.jpg", lambda q, s, m: s._avatar(m[1])),
        # Instagram profile pages last: /USERNAME/ would shadow the fixed paths above
        (
            "GET",
            r"/([A-Za-z0-9._]{1,30})(?:/reels)?/?",
            lambda q, s, m: IG.profile_page(q, s.catalog, m[1]),
        ),
    ]
    return [(method, re.compile(pattern + r"\Z"), fn) for method, pattern, fn in r]


_ROUTES = _route_table()


def _index(req: Request, srv: FixtureServer) -> Response:
    """A small start page with links to the demo listings."""
    q = DEMO_SEARCH.replace(" ", "+")
    links = [
        ("TikTok #" + DEMO_TAG, f"/tag/{DEMO_TAG}"),
        ("TikTok @" + DEMO_USER["tiktok"], f"/@{DEMO_USER['tiktok']}"),
        ("YouTube #" + DEMO_TAG, f"/hashtag/{DEMO_TAG}"),
        ("YouTube @" + DEMO_USER["youtube"] + " Shorts", f"/@{DEMO_USER['youtube']}/shorts"),
        ("YouTube search", f"/results?search_query={q}"),
    ]
    for p in ("tiktok", "youtube", "instagram"):
        for vid in srv.catalog.demo_video_ids(p)[:2]:
            links.append((f"{p} demo video {vid}", srv.catalog.videos[(p, vid)].path))
    items = "\n".join(f'<li><a href="{esc(href)}">{esc(text)}</a></li>' for text, href in links)
    return html_response(
        page("charwatch fixture platform", body=f"<h1>Fixture platform</h1><ul>{items}</ul>")
    )


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    fixture: FixtureServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.fixture.errors.append(traceback.format_exc())


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fixture-platform/1"
    sys_version = ""
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _request(self, method: str, length: int) -> Request:
        parts = urlsplit(self.path)
        body = self.rfile.read(length) if length > 0 else b""
        cookies: dict[str, str] = {}
        raw_cookie = self.headers.get("Cookie", "")
        if raw_cookie:
            try:
                jar = SimpleCookie()
                jar.load(raw_cookie)
                cookies = {k: m.value for k, m in jar.items()}
            except CookieError:
                for part in raw_cookie.split(";"):
                    k, _, v = part.strip().partition("=")
                    if k:
                        cookies[k] = v
        host = self.headers.get("Host") or f"{self.server.fixture.host}:{self.server.fixture.port}"
        return Request(
            method=method,
            path=unquote(parts.path or "/"),
            query={k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            cookies=cookies,
            body=body,
            base=f"http://{host}",
        )

    def _dispatch(self, method: str) -> None:
        fx = self.server.fixture
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self.send_error(400 if length < 0 else 413)
            return
        req = self._request(method, length)
        fx._count(req.path)
        fx.last_headers[req.path] = [(k.lower(), v) for k, v in self.headers.items()]
        try:
            resp = fx.handle(req)
        except Exception:  # a bug in a page: answer 500 and keep it for tests to see
            fx.errors.append(traceback.format_exc())
            resp = html_response(page("500", body="<h1>500 Internal Server Error</h1>"), 500)
        self._send(req, resp)

    def _send(self, req: Request, resp: Response) -> None:
        if resp.file_path is not None:
            self._send_file(req, resp, resp.file_path)
            return
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for k, v in resp.headers:
            self.send_header(k, v)
        self.end_headers()
        if req.method != "HEAD" and resp.body:
            self.wfile.write(resp.body)

    def _send_file(self, req: Request, resp: Response, path: Path) -> None:
        size = path.stat().st_size
        start, end, status = 0, size - 1, 200
        rng = req.headers.get("range", "")
        m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", rng) if rng else None
        if rng and m and (m[1] or m[2]):
            if m[1]:
                start = int(m[1])
                end = min(int(m[2]), size - 1) if m[2] else size - 1
            else:
                start, end = max(0, size - int(m[2])), size - 1
            if start >= size or start > end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        mtime = email.utils.formatdate(path.stat().st_mtime, usegmt=True)
        self.send_response(status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Last-Modified", mtime)
        self.send_header("ETag", f'"{size:x}-{int(path.stat().st_mtime):x}"')
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if req.method == "HEAD":
            return
        with path.open("rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(65536, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)


class FixtureServer:
    """The fixture platform in a background thread (``with FixtureServer() as srv: ...``).

    ``media_dir``: where generated MP4s/JPEGs are cached (default: a temporary folder removed
    on :meth:`stop`). ``requests`` counts requests per path (without the query string).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        media_dir: Path | None = None,
        seed: int = 7,
    ) -> None:
        self.host = host
        self._want_port = port
        self.seed = seed
        self.catalog: Catalog = get_catalog(seed)
        self._media_root = Path(media_dir) if media_dir is not None else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.requests: Counter[str] = Counter()
        self.errors: list[str] = []
        # path -> the (name, value) headers of its latest request, as sent, names lower-cased
        self.last_headers: dict[str, list[tuple[str, str]]] = {}
        self._lock = threading.Lock()
        self._file_locks: dict[Path, threading.Lock] = {}
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.media_blocks: dict[str, int] = {}  # platform -> status its media answers now

    # -- lifecycle ----------------------------------------------------------------------------

    def _bind(self) -> _HTTPServer:
        if self._httpd is not None:
            return self._httpd
        if self._media_root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="charwatch-fixture-media-")
            self._media_root = Path(self._tmp.name)
        httpd = _HTTPServer((self.host, self._want_port), _RequestHandler)
        httpd.fixture = self
        self._httpd = httpd
        return httpd

    def start(self) -> FixtureServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._thread is not None:
            return self
        httpd = self._bind()
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="fixture-platform",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and remove a temporary media folder."""
        if self._httpd is not None:
            if self._thread is not None:
                self._httpd.shutdown()
                self._thread.join(timeout=5)
            self._httpd.server_close()
        self._httpd = None
        self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._media_root = None

    def __enter__(self) -> FixtureServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            return self._want_port
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def media_dir(self) -> Path:
        """The folder holding this catalog's generated media."""
        if self._media_root is None:
            raise RuntimeError("the server has not been started")
        return self._media_root / f"v{MEDIA_VERSION}-seed{self.seed}"

    # -- counters -----------------------------------------------------------------------------

    def _count(self, path: str) -> int:
        with self._lock:
            self.requests[path] += 1
            return self.requests[path]

    def request_count(self, path: str) -> int:
        """Requests received so far for ``path`` (no query string)."""
        with self._lock:
            return self.requests[path]

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- dispatch -----------------------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        """Route one request to its page."""
        method = "GET" if req.method == "HEAD" else req.method
        allowed = set()
        for m, pattern, fn in _ROUTES:
            match = pattern.match(req.path)
            if match is None:
                continue
            if m == method:
                return fn(req, self, match)
            allowed.add(m)
        if allowed:
            return Response(405, b"", headers=[("Allow", ", ".join(sorted(allowed | {"HEAD"})))])
        return not_found()

    # -- media --------------------------------------------------------------------------------

    def media_file(self, platform: str, video_id: str, ext: str = "mp4") -> Path | None:
        """The cached MP4 (or ``jpg`` cover) of a catalog video, generated on first use;
        None for an unknown video."""
        v = self.catalog.video(platform, video_id)
        if v is None or ext not in ("mp4", "jpg"):
            return None
        path = self.media_dir / platform / f"{v.video_id}.{ext}"
        if path.exists():
            return path
        with self._lock:
            lock = self._file_locks.setdefault(path, threading.Lock())
        with lock:
            if not path.exists():
                if ext == "mp4":
                    make_video(v.spec, path)
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    buf = io.BytesIO()
                    poster(v.spec).save(buf, format="JPEG", quality=85)
                    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.part")
                    tmp.write_bytes(buf.getvalue())
                    tmp.replace(path)
        return path

    def block_media(self, platform: str, status: int = 429) -> None:
        """Answer every media request of ``platform`` with ``status`` (a platform-wide block,
        as a CDN rate limit does) until :meth:`unblock_media`."""
        with self._lock:
            self.media_blocks[platform] = status

    def unblock_media(self, platform: str) -> None:
        with self._lock:
            self.media_blocks.pop(platform, None)

    def _media(self, req: Request, m: re.Match[str]) -> Response:
        with self._lock:
            blocked = self.media_blocks.get(m[1])
        if blocked is not None:
            body = b"Too Many Requests" if blocked == 429 else b"Blocked"
            return Response(blocked, body, "text/plain", headers=[("Retry-After", "3600")])
        path = self.media_file(m[1], m[2], m[3])
        if path is None:
            return not_found("no such media")
        return Response(200, b"", "video/mp4" if m[3] == "mp4" else "image/jpeg", file_path=path)

    def _avatar(self, handle: str) -> Response:
        hue = sum(handle.encode()) % 360
        img = Image.new("RGB", (96, 96), (240, 240, 240))
        d = ImageDraw.Draw(img)
        d.ellipse((4, 4, 92, 92), fill=f"hsl({hue}, 70%, 60%)")
        d.text((48, 48), handle[:1].upper(), fill=(255, 255, 255), anchor="mm", font_size=44)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
        return Response(200, buf.getvalue(), "image/jpeg")


def serve_forever(
    host: str = "127.0.0.1", port: int = 8000, media_dir: Path | None = None, seed: int = 7
) -> None:
    """Serve the fixture platform in the foreground until SIGINT or SIGTERM (prints nothing)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # explicit handlers: a process started in the background inherits SIGINT ignored
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)
    srv = FixtureServer(host, port, media_dir, seed)
    httpd = srv._bind()
    try:
        httpd.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


__all__ = ["MEDIA_VERSION", "FixtureServer", "serve_forever"]
