"""Test support for the review desk: a store with real rows and images, the real
``charwatch serve`` on 127.0.0.1, and a small HTTP client that keeps cookies.

Detections are written as the matcher writes them (``Detection.signals`` in its shape); the
characters and their reference pictures go through the real registry.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from PIL import Image, ImageDraw
from sqlalchemy import select

from charwatch.config import Config, load_config
from index import registry
from storage import Character, Detection, Frame, Store, Video, VideoState
from tests.conftest import charwatch_exe, run_cli

T0 = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)
SCRIPT_PAYLOAD = "<script>window.__pwned=1;document.title='pwned'</script>"
IMG_PAYLOAD = (
    "\"><img src=x onerror=\"window.__pwned=2;document.body.setAttribute('data-pwned','1')\">"
)
HOSTILE_URL = "javascript:window.__pwned=3"


def picture(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (90, 160)) -> Path:
    """A small real image file: a coloured frame with a figure-like shape."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", size, color)
    d = ImageDraw.Draw(im)
    w, h = size
    d.ellipse((w // 4, h // 5, 3 * w // 4, h // 2), fill=(255, 220, 235))
    d.rectangle((w // 3, h // 2, 2 * w // 3, 5 * h // 6), fill=(40, 40, 90))
    im.save(path, "PNG" if path.suffix == ".png" else "JPEG", quality=85)
    return path


def matcher_signals(
    score: float,
    t: float,
    reference_id: int | None,
    frame_times: list[float],
    *,
    terms: list[str] | None = None,
    ai_label: str | None = None,
) -> dict[str, Any]:
    """``Detection.signals`` as fusion writes it for a semantic flag."""
    out: dict[str, Any] = {
        "embedding": {
            "kind": "semantic",
            "score": round(score, 4),
            "raw": round(score - 0.2, 4),
            "matched": True,
            "frame_t": t,
            "reference_id": reference_id,
            "threshold": 0.41,
            "calibrated": False,
            "best_probability": round(score - 0.2, 4),
            "best_similarity": 0.7,
            "best_region": "full",
            "frames_over": 2,
            "frames_needed": 2,
            "seconds_matched": 2.0,
            "min_seconds": 0.0,
            "top_k": 3,
            "regions_lost_to_rivals": 0,
            "frames": [[ft, round(0.3 + 0.1 * i, 4)] for i, ft in enumerate(frame_times)],
        },
        "provenance": {
            "kind": "context",
            "score": 1.0 if ai_label else 0.0,
            "raw": None,
            "matched": bool(ai_label),
            "frame_t": None,
            "reference_id": None,
            "ai_label": ai_label,
            "c2pa_state": "absent",
            "c2pa_generator": None,
            "c2pa_digital_source_type": None,
            "c2pa_signer": None,
            "ai_generated": bool(ai_label),
            "reasons": ["platform_label"] if ai_label else [],
        },
        "fusion": {
            "match_type": "semantic",
            "decided_by": "embedding",
            "caption_bonus": 0.05 if terms else 0.0,
            "pdq_max_distance": 31,
            "embed_threshold": 0.41,
            "calibrated": [],
            "top_k": 3,
            "min_frames": 2,
            "min_seconds": 0.0,
            "frames": len(frame_times),
        },
    }
    if terms:
        out["caption"] = {
            "kind": "context",
            "score": 1.0,
            "raw": float(len(terms)),
            "matched": True,
            "frame_t": None,
            "reference_id": None,
            "terms": terms,
            "where": ["caption"],
        }
    return out


@dataclass
class DeskLab:
    """A store for the desk tests: ``ids`` names each detection by what a test does with it."""

    root: Path
    cfg: Config
    store: Store
    config: Path
    ids: dict[str, int] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    reference_ids: list[int] = field(default_factory=list)

    def state(self, key: str) -> str:
        with self.store.session() as s:
            det = s.get(Detection, self.ids[key])
            assert det is not None
            return det.review_state

    def detection(self, key: str) -> Detection:
        with self.store.session() as s:
            det = s.get(Detection, self.ids[key])
            assert det is not None
            return det


# (key, platform, author, caption, state, ai label, caption terms)
SPECS: list[tuple[str, str, str, str, str, str | None, list[str] | None]] = [
    ("browser_confirm", "tiktok", "dance_fan", "ポム dance cover!", "new", None, ["ポム"]),
    ("browser_reject", "youtube", "toy_channel", "unboxing a plush", "new", None, None),
    ("hostile", "tiktok", IMG_PAYLOAD, SCRIPT_PAYLOAD, "new", "AI-generated", None),
    ("http_confirm", "instagram", "reels_maker", "Pompom edit", "new", None, ["Pompom"]),
    ("http_reject", "tiktok", "someone", "look-alike", "needs_review", None, None),
    ("bulk_a", "tiktok", "bulk_one", "first of two", "new", None, None),
    ("bulk_b", "youtube", "bulk_two", "second of two", "new", None, None),
    ("bulk_done", "youtube", "bulk_three", "already sent", "notice_sent", None, None),
    ("refused", "tiktok", "no_jump", "cannot skip states", "new", None, None),
    ("allow", "tiktok", "Pom_Official", "official channel", "new", None, None),
    ("viewer", "tiktok", "viewer_target", "viewer must not change", "new", None, None),
    ("forged", "tiktok", "forged_target", "no token", "new", None, None),
    ("reference", "youtube", "lookalike_art", "a similar mascot", "new", None, None),
    ("keys", "tiktok", "keyboard_fan", "press r", "new", None, None),
    ("nojs", "youtube", "plain_forms", "no script", "new", None, None),
]


def build_lab(root: Path, *, users: bool = True) -> DeskLab:
    """Characters with reference pictures, one video with frames per :data:`SPECS` row, its
    detection in the row's review state, and (``users``) two users made with the real CLI."""
    data = root / "data"
    config = root / "charwatch.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{data.as_posix()}"\n\n'
        "[serve]\nlogin_max_failures = 3\nlogin_lockout_s = 60\n",
        encoding="utf-8",
    )
    cfg = load_config(config, environ={})
    store = Store(cfg.storage.database_url)
    lab = DeskLab(root, cfg, store, config)
    refs = root / "refs"
    pom = registry.add_character(
        cfg,
        store,
        "Pompom",
        franchise="Charwatch Demo",
        aliases=["ポム", "Pom-Pom"],
        images=[
            picture(refs / "front.png", (250, 180, 200), (120, 120)),
            picture(refs / "side.png", (240, 170, 210), (120, 120)),
        ],
    )
    registry.add_character(
        cfg,
        store,
        "Kitsumaru",
        franchise="Charwatch Demo",
        images=[picture(refs / "kitsu.png", (250, 150, 60), (120, 120))],
    )
    front = next(r.id for r in pom.references if r.label == "front")
    lab.reference_ids = [r.id for r in pom.references]
    colors = [(200, 40, 60), (30, 120, 200), (40, 160, 90), (220, 160, 30)]
    with store.session() as s:
        char_id = s.scalar(select(Character.id).where(Character.name == "Pompom"))
        for i, (key, platform, author, caption, state, ai, terms) in enumerate(SPECS):
            seen = T0 + dt.timedelta(hours=i)
            v = Video(
                platform=platform,
                platform_id=f"v{i:03d}",
                url=HOSTILE_URL if key == "hostile" else f"https://www.{platform}.com/v/{i}",
                author=author,
                caption=caption,
                hashtags=["pompom"] if i % 2 else [],
                posted_at=seen - dt.timedelta(hours=3),
                ai_label=ai,
                first_seen=seen,
                last_seen=seen,
                state=VideoState.MATCHED,
                processed_at=seen,
                c2pa_state="absent",
                media_sha256=f"{i:02d}" * 32,
            )
            s.add(v)
            s.flush()
            times = [0.0, 1.0, 2.0, 3.0]
            for k, t in enumerate(times):
                p = picture(data / "frames" / str(v.id) / f"{t:06.2f}.jpg", colors[(i + k) % 4])
                s.add(Frame(video_id=v.id, t=t, pdq="0" * 64, pdq_quality=90, thumb_path=str(p)))
            score = round(0.95 - 0.02 * i, 3)
            det = Detection(
                video_id=v.id,
                character_id=char_id,
                score=score,
                match_type="semantic",
                signals=matcher_signals(score, 3.0, front, times, terms=terms, ai_label=ai),
                best_frame_t=3.0,
                best_frame_thumb=None,
                best_reference_id=front,
                model_id="effnet-lite0",
                review_state=state,
                detected_at=seen + dt.timedelta(minutes=5),
            )
            s.add(det)
            s.flush()
            lab.ids[key] = det.id
    for name, role in (("ana", "analyst"), ("vic", "viewer")) if users else ():
        res = run_cli("users", "add", name, "--role", role, config=config)
        assert res.returncode == 0, res.stderr
        m = re.search(r"password \(shown once\): (\S+)", res.stdout)
        assert m, res.stdout
        lab.passwords[name] = m.group(1)
    return lab


# ---------------------------------------------------------------------------------------------
# the real server


@contextlib.contextmanager
def desk_server(config: Path, *extra: str, tmp_dir: Path | None = None) -> Iterator[str]:
    """``charwatch serve --port 0`` as a child process; yields its base URL. ``tmp_dir``: the
    server's temporary folder (``TMPDIR``), for a test to see what it leaves there."""
    cmd = [*charwatch_exe(), "--config", str(config), "serve", "--port", "0", *extra]
    env = None
    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TMPDIR": str(tmp_dir)}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env
    )
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"review desk on (http://\S+?)/ ", line)
            if m:
                url = m.group(1)
                break
        assert url, "".join(lines)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    def set_cookies(self) -> list[str]:
        return self.headers.get_all("Set-Cookie") or []


class Client:
    """Plain HTTP against the desk: keeps cookies, never follows redirects."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, data: dict[str, Any] | None = None) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        headers = {}
        body = None
        if data is not None:
            body = urlencode(data, doseq=True)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            reply = Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()
        for raw in reply.set_cookies():
            jar = SimpleCookie()
            jar.load(raw)
            for name, morsel in jar.items():
                if morsel.value and "1970" not in (morsel["expires"] or ""):
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return reply

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, data: dict[str, Any]) -> Reply:
        return self.request("POST", path, data)

    def csrf(self, path: str = "/login") -> str:
        """The CSRF token of the form on ``path``."""
        reply = self.get(path)
        m = re.search(r'name="csrf_token" value="([^"]+)"', reply.text)
        assert m, reply.text[:500]
        return m.group(1)

    def login(self, name: str, password: str) -> Reply:
        token = self.csrf("/login")
        return self.post("/login", {"csrf_token": token, "username": name, "password": password})
