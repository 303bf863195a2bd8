"""The processing pipeline on real parts: ffmpeg-made MP4s served over HTTP on 127.0.0.1,
real yt-dlp downloads, ffmpeg frame sampling, PDQ, EfficientNet-Lite0 embeddings, SQLite."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import http.server
import inspect
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from sqlalchemy import select, update

from charwatch.config import Config, ProcessConfig, StorageConfig
from pipeline import hashing
from pipeline.download import DownloadError, download
from pipeline.frames import FramesError, sample_frames
from pipeline.media import ffmpeg_exe, probe
from pipeline.provenance import read_c2pa
from pipeline.regions import region_box, region_scale, regions
from pipeline.worker import process_pending
from storage.blobs import data_file
from storage.db import Store
from storage.models import Embedding, Frame, Video, VideoState
from tests.conftest import (
    PreparedVideos,
    assert_same_end_state,
    end_state,
    kill_9_midway,
    local_http_server,
)

# -- test media made with the real ffmpeg --------------------------------------------------


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _x264(*extra: str) -> list[str]:
    return ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", *extra]


def _make_media(d: Path) -> None:
    """The clips (the real ffmpeg) and the bad inputs, written into ``d``."""
    _ffmpeg(  # 6 s moving test pattern with sound, moov first
        "-f", "lavfi", "-i", "testsrc2=size=360x640:rate=30:duration=6",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=6",
        *_x264("-c:a", "aac", "-shortest", "-movflags", "+faststart"), str(d / "ok.mp4"),
    )  # fmt: skip
    _ffmpeg(  # three shots with hard cuts at 2 s and 4 s, moov at the end
        "-f", "lavfi", "-i", "testsrc2=size=360x640:rate=30:duration=2",
        "-f", "lavfi", "-i", "mandelbrot=size=360x640:rate=30,trim=duration=2",
        "-f", "lavfi", "-i", "smptebars=size=360x640:rate=30:duration=2",
        "-filter_complex", "[0][1][2]concat=n=3:v=1:a=0", *_x264("-g", "300"),
        str(d / "cuts.mp4"),
    )  # fmt: skip
    _ffmpeg(  # about 3 MB, for the size cap
        "-f", "lavfi", "-i", "testsrc2=size=720x1280:rate=30:duration=6",
        *_x264("-b:v", "4M"), str(d / "big.mp4"),
    )  # fmt: skip
    _ffmpeg("-f", "lavfi", "-i", "sine=duration=3", "-c:a", "aac", str(d / "audio.m4a"))
    ok, cuts = (d / "ok.mp4").read_bytes(), (d / "cuts.mp4").read_bytes()
    (d / "trunc.mp4").write_bytes(ok[: int(len(ok) * 0.45)])  # header intact, data cut
    (d / "trunc_moov.mp4").write_bytes(cuts[: len(cuts) // 2])  # index lost
    (d / "zero.mp4").write_bytes(b"")
    (d / "html.mp4").write_text("<!DOCTYPE html><html><body>Please log in</body></html>")
    (d / "page.html").write_text(
        '<!DOCTYPE html><html><head><meta property="og:video" content="/cuts.mp4">'
        '<meta property="og:title" content="a post"></head><body>post</body></html>'
    )
    (d / "novideo.html").write_text("<html><head><title>x</title></head><body>hi</body></html>")


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, made_once: Callable[..., Path]) -> Path:
    """Small 9:16 clips plus the bad inputs, in one folder that the server below serves. The
    real ffmpeg makes them once (kept between runs for this ffmpeg binary and this recipe)."""
    exe = Path(ffmpeg_exe())
    recipe = {
        "ffmpeg": [str(exe), exe.stat().st_size, exe.stat().st_mtime_ns],
        "make": [inspect.getsource(f) for f in (_ffmpeg, _x264, _make_media)],
    }
    d = tmp_path_factory.mktemp("www")
    made = made_once("pipeline-media", recipe, _make_media)
    shutil.copytree(made, d, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".lock", ".done"))
    return d


SEEN_HEADERS: list[dict[str, str]] = []


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        SEEN_HEADERS.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        if self.path.startswith("/status/"):
            self.send_response(int(self.path.split("/")[2]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture(scope="module")
def server(media: Path) -> Iterator[str]:
    with local_http_server(functools.partial(_Handler, directory=str(media))) as url:
        yield url


def _pcfg(**kw: object) -> ProcessConfig:
    base = {"download_retries": 0, "download_timeout_s": 10.0}
    base.update(kw)
    return ProcessConfig(**base)  # type: ignore[arg-type]


# -- hashing and regions -------------------------------------------------------------------


def _picture(w: int = 320, h: int = 240) -> Image.Image:
    rng = np.random.default_rng(7)
    img = Image.fromarray(rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8))
    img = img.resize((w, h), Image.Resampling.BICUBIC)
    ImageDraw.Draw(img).ellipse((w // 4, h // 4, w * 3 // 4, h * 3 // 4), fill=(250, 200, 40))
    return img


def test_pdq_hex_quality_and_hamming() -> None:
    img = _picture()
    h, q = hashing.pdq(img)
    assert len(h) == 64 and int(h, 16) >= 0 and 0 <= q <= 100 and q >= 50
    assert hashing.hamming(h, h) == 0
    other, _ = hashing.pdq(Image.fromarray(255 - np.asarray(img)))
    assert hashing.hamming(h, other) > 100  # the negative flips most bits
    assert hashing.hamming("f" * 64, "0" * 64) == 256
    with pytest.raises(ValueError):
        hashing.hamming("ab", "abc")


def test_borders_removed_before_hashing() -> None:
    """A 4:3 picture letterboxed into 9:16 hashes like the picture itself."""
    img = _picture(360, 270)
    frame = Image.new("RGB", (360, 640), (0, 0, 0))
    frame.paste(img, (0, 185))
    assert hashing.border_box(frame) == (0, 185, 360, 455)
    assert hashing.remove_borders(frame).size == (360, 270)
    assert hashing.canonical(frame).size == (hashing.CANONICAL_SIZE, hashing.CANONICAL_SIZE)
    (a, _), (b, _) = hashing.pdq(img), hashing.pdq(frame)
    raw, _ = hashing.pdq(frame, normalize=False)
    assert hashing.hamming(a, b) <= 8 < hashing.hamming(a, raw)
    flat = Image.new("RGB", (100, 100), (0, 0, 0))
    assert hashing.remove_borders(flat).size == (100, 100)  # nothing but border: kept whole


def test_dihedral_hashes_find_a_mirrored_copy() -> None:
    img = _picture()
    (orig, _) = hashing.pdq(img)
    mirrored, _ = hashing.pdq(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    variants, q = hashing.pdq_dihedral(img)
    assert len(variants) == 8 and variants[0] == orig and q >= 50
    assert hashing.hamming(orig, mirrored) > 31
    names = [n for n, _ in hashing.DIHEDRAL]
    assert hashing.hamming(variants[names.index("flip_h")], mirrored) <= 4  # the true mirror


def test_regions_follow_the_frame_shape() -> None:
    portrait = regions(_picture(360, 640))
    names = [n for n, _ in portrait]
    assert names[:4] == ["full", "top", "mid", "bot"] and len(names) == len(set(names)) == 22
    assert all(im.size == (360, 360) for _, im in portrait[1:4])
    assert {im.size for n, im in portrait if n.startswith("s45-")} == {(162, 162)}
    assert sum(n.startswith("s45-") for n in names) == 18  # 3 columns x 6 rows
    # the grid covers the whole frame: every pixel lies in some small crop
    cover = np.zeros((640, 360), bool)
    for n in names:
        if n.startswith("s45-"):
            left, top, right, bottom = region_box(n, 360, 640)
            cover[top:bottom, left:right] = True
    assert cover.all()
    assert region_scale("s45-r2c1") == 0.45 and region_scale("mid") == 1.0
    assert region_box("nope", 360, 640) is None
    landscape = [n for n, _ in regions(_picture(640, 360))]
    assert landscape[:4] == ["full", "left", "mid", "right"]
    square = [n for n, _ in regions(_picture(300, 300))]
    assert square[0] == "full" and "mid" not in square and len(square) == 1 + 9
    boxed = Image.new("RGB", (360, 640))
    boxed.paste(_picture(360, 202), (0, 219))  # 16:9 clip inside a 9:16 frame
    named = regions(boxed)
    assert named[0][1].size == (360, 202)  # bars removed: cut like a landscape frame
    assert [n for n, _ in named][:4] == ["full", "left", "mid", "right"]
    assert regions(Image.new("RGB", (12, 40)))[0][0] == "full"


def test_nested_borders_are_all_removed() -> None:
    """A picture with its own white margins, letterboxed in black: both layers go."""
    pic = Image.new("RGB", (300, 300), (255, 255, 255))
    ImageDraw.Draw(pic).ellipse((80, 60, 220, 240), fill=(200, 50, 90))
    frame = Image.new("RGB", (360, 640))
    frame.paste(pic.resize((360, 360)), (0, 140))
    left, top, right, bottom = hashing.border_box(frame)
    assert 90 <= left <= 100 and 205 <= top <= 215 and 260 <= right <= 270 and 425 <= bottom <= 435
    assert hashing.border_box(frame, layers=1) == (0, 140, 360, 500)


# -- frames --------------------------------------------------------------------------------


def test_frames_scene_cuts_and_timestamps(media: Path) -> None:
    t0 = time.perf_counter()
    frames = sample_frames(media / "cuts.mp4", _pcfg())
    elapsed = time.perf_counter() - t0
    ts = [f.t for f in frames]
    assert ts == sorted(ts) and ts[0] == 0.0 and len(set(ts)) == len(ts)
    assert all(b - a >= 0.5 for a, b in zip(ts, ts[1:], strict=False))
    cuts = [f.t for f in frames if f.kind == "scene"]
    assert any(abs(t - 2.0) < 0.1 for t in cuts) and any(abs(t - 4.0) < 0.1 for t in cuts)
    # the static colour bars (4-6 s) give one frame, not two
    assert len([t for t in ts if t >= 4.0]) == 1
    for f in frames:
        assert f.image.mode == "RGB" and min(f.image.size) == 360
        assert f.pdq and len(f.pdq) == 64 and f.pdq_quality is not None
    assert elapsed < 20


def test_frames_caps_and_downscale(media: Path) -> None:
    frames = sample_frames(media / "ok.mp4", _pcfg(max_frames=3, frame_short_side=180))
    assert 1 <= len(frames) <= 3
    assert all(f.image.size == (180, 320) for f in frames)
    # three buckets of 2 s over 6 s
    assert [round(f.t) for f in frames] == [0, 2, 4]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("trunc.mp4", "truncated or corrupt video"),
        ("trunc_moov.mp4", "moov atom not found"),
        ("audio.m4a", "audio-only"),
        ("zero.mp4", "empty"),
        ("html.mp4", "not a readable video"),
    ],
)
def test_frames_bad_files(media: Path, name: str, reason: str) -> None:
    with pytest.raises(FramesError, match=reason):
        sample_frames(media / name, _pcfg())


def test_frames_timeout(media: Path) -> None:
    with pytest.raises(FramesError, match="timed out"):
        sample_frames(media / "big.mp4", _pcfg(frames_timeout_s=0.05))


# -- download ------------------------------------------------------------------------------


def test_download_direct_and_page(server: str, media: Path, tmp_path: Path) -> None:
    res = download(f"{server}/ok.mp4", tmp_path / "m", "vid1", _pcfg())
    assert res.path == tmp_path / "m" / "vid1.mp4"
    assert res.sha256 == hashlib.sha256((media / "ok.mp4").read_bytes()).hexdigest()
    assert res.size == (media / "ok.mp4").stat().st_size
    page = download(f"{server}/page.html", tmp_path / "m", "vid2", _pcfg())
    assert page.path.read_bytes() == (media / "cuts.mp4").read_bytes()
    assert page.info.get("title") == "a post"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["vid1.mp4", "vid2.mp4"]


@pytest.mark.parametrize(
    ("path", "kw", "reason", "transient"),
    [
        ("/status/404", {}, "HTTP 404", False),
        ("/gone.mp4", {}, "HTTP 404", False),
        ("/status/429", {}, "HTTP 429", True),
        ("/status/503", {}, "HTTP 503", True),
        ("/zero.mp4", {}, "empty", False),
        ("/html.mp4", {}, "HTML page instead of the video", False),
        ("/novideo.html", {}, "no video found", False),
        ("/ok.mp4", {"max_duration_s": 3}, "too long", False),
        ("/big.mp4", {"max_filesize_mb": 1}, "too large", False),
    ],
)
def test_download_errors(
    server: str, tmp_path: Path, path: str, kw: dict, reason: str, transient: bool
) -> None:
    with pytest.raises(DownloadError, match=reason) as err:
        download(f"{server}{path}", tmp_path, "x", _pcfg(**kw))
    assert err.value.transient is transient
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no half file, no temp folder


def test_download_sends_platform_cookies_and_headers_to_its_host_only(
    server: str, tmp_path: Path
) -> None:
    from charwatch.config import PlatformConfig

    own = PlatformConfig(base_url=server, cookies={"sessionid": "s3cret"}, headers={"X-Test": "1"})
    SEEN_HEADERS.clear()
    download(f"{server}/ok.mp4?own", tmp_path, "a", _pcfg(), own)
    got = [h for h in SEEN_HEADERS if h["path"] == "/ok.mp4?own"]
    assert got and all("sessionid=s3cret" in h.get("cookie", "") for h in got)
    assert all(h.get("x-test") == "1" for h in got)
    # the same cookies configured for another site are not sent to this host
    other = PlatformConfig(base_url="https://www.example.com", cookies={"sessionid": "s3cret"})
    SEEN_HEADERS.clear()
    download(f"{server}/ok.mp4?other", tmp_path, "b", _pcfg(), other)
    got = [h for h in SEEN_HEADERS if h["path"] == "/ok.mp4?other"]
    assert got and not any("s3cret" in h.get("cookie", "") for h in got)


def test_download_timeout_is_transient(tmp_path: Path) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)  # accepts, never answers
    try:
        port = sock.getsockname()[1]
        with pytest.raises(DownloadError) as err:
            download(f"http://127.0.0.1:{port}/v.mp4", tmp_path, "x", _pcfg(download_timeout_s=1))
        assert err.value.transient and "timed out" in str(err.value)
    finally:
        sock.close()


# -- provenance ----------------------------------------------------------------------------


def _sign(src: Path, dst: Path) -> None:
    """Sign an MP4 with a throwaway two-level certificate chain (not on any trust list)."""
    import c2pa
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "charwatch tests"),
            ]
        )

    def cert(subject, issuer, pub, key, ca: bool):  # type: ignore[no-untyped-def]
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
            .add_extension(aki, critical=False)
        )
        if ca:
            usage = x509.KeyUsage(True, False, False, False, False, True, True, False, False)
        else:
            usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
            b = b.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
            )
        return b.add_extension(usage, critical=True).sign(key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = cert(name("test root"), name("test root"), ca_key.public_key(), ca_key, True)
    leaf = cert(name("test signer"), root.subject, key.public_key(), ca_key, False)
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, root))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, pem, None))
    source_type = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    manifest = {
        "claim_generator_info": [{"name": "test-generator", "version": "1.0"}],
        "title": src.name,
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": source_type}]},
            }
        ],
    }
    with c2pa.Builder(manifest) as builder, open(src, "rb") as fin, open(dst, "w+b") as fout:
        builder.sign(signer, "video/mp4", fin, fout)


def test_c2pa_states(media: Path, tmp_path: Path) -> None:
    signed = tmp_path / "signed.mp4"
    _sign(media / "ok.mp4", signed)
    info = read_c2pa(signed)
    assert info["state"] == "valid" and info["trusted"] is False
    assert info["claim_generator"] == "test-generator 1.0"
    assert info["digital_source_type"].endswith("/trainedAlgorithmicMedia")
    assert "test signer" in info["signer"]
    tampered = tmp_path / "tampered.mp4"
    data = bytearray(signed.read_bytes())
    data[data.rfind(b"mdat") + 5000] ^= 0xFF
    tampered.write_bytes(bytes(data))
    bad = read_c2pa(tampered)
    assert bad["state"] == "invalid" and bad["failures"]
    assert read_c2pa(media / "ok.mp4")["state"] == "absent"
    assert read_c2pa(media / "zero.mp4")["state"] in ("error", "absent")
    # a remux deletes the manifest: why it is read on the raw download
    remuxed = tmp_path / "remuxed.mp4"
    _ffmpeg("-i", str(signed), "-c", "copy", str(remuxed))
    assert read_c2pa(remuxed)["state"] == "absent"


# -- the worker ----------------------------------------------------------------------------

GOOD = {"ok": "/ok.mp4", "page": "/page.html", "cuts": "/cuts.mp4"}
BAD = {
    "zero": ("/zero.mp4", "download: server sent an empty (zero-byte) file"),
    "html": ("/html.mp4", "download: server sent an HTML page instead of the video"),
    "trunc": ("/trunc.mp4", "frames: truncated or corrupt video"),
    "trunc_moov": ("/trunc_moov.mp4", "frames: not a readable video: moov atom not found"),
    "gone": ("/status/404", "download: HTTP 404"),
    "audio": ("/audio.m4a", "frames: no video stream (audio-only file)"),
}


def _config(tmp: Path, **process: object) -> Config:
    cfg = Config(storage=StorageConfig(data_dir=str(tmp / "data")))
    for name in ("tiktok", "youtube", "instagram"):
        plat = cfg.platforms.get(name)
        plat.download_delay = plat.sleep_interval = 0.0
        plat.max_downloads_per_hour = 0
    cfg.process.download_retries = 0
    cfg.process.download_timeout_s = 10.0
    for k, v in process.items():
        setattr(cfg.process, k, v)
    return cfg


def _add(store: Store, server: str, items: dict[str, str]) -> None:
    with store.session() as s:
        for pid, path in items.items():
            s.add(Video(platform="tiktok", platform_id=pid, url=f"{server}{path}"))


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory, server: str, embedder):
    """One clean run over good and bad inputs."""
    tmp = tmp_path_factory.mktemp("clean")
    cfg = _config(tmp)
    store = Store(cfg.storage.database_url)
    _add(store, server, GOOD | {k: p for k, (p, _) in BAD.items()})
    stats = process_pending(cfg, store, embedder, progress=False)
    return cfg, store, stats


def test_worker_processes_good_and_fails_bad(processed, embedder, media: Path) -> None:
    cfg, store, stats = processed
    assert stats.claimed == len(GOOD) + len(BAD)
    assert stats.processed == len(GOOD) and stats.failed == len(BAD)
    assert stats.frames > 0 and stats.embeddings >= 4 * len(GOOD)
    assert all(v >= 0 for v in stats.seconds.values()) and stats.seconds["total"] > 0
    with store.session() as s:
        videos = {v.platform_id: v for v in s.scalars(select(Video))}
        for pid in GOOD:
            v = videos[pid]
            assert v.state == VideoState.EMBEDDED and v.error is None
            assert v.lease_owner is None and v.lease_expires is None  # the matcher can claim it
            assert v.media_path == f"media/tiktok/{pid}.mp4"
            file = data_file(cfg.data_dir, v.media_path)
            assert hashlib.sha256(file.read_bytes()).hexdigest() == v.media_sha256
            assert v.media_bytes == file.stat().st_size
            assert v.c2pa_state == "absent" and v.c2pa_info["state"] == "absent"
            assert v.duration_s == pytest.approx(6.0, abs=0.1)
            frames = list(s.scalars(select(Frame).where(Frame.video_id == v.id)))
            assert 1 <= len(frames) <= cfg.process.max_frames
            for f in frames:
                assert len(f.pdq) == 64 and f.pdq_quality >= 0
                thumb = Image.open(data_file(cfg.data_dir, f.thumb_path))
                assert max(thumb.size) == cfg.report.thumb_px
                full = Image.open(data_file(cfg.data_dir, f.image_path))
                assert full.size == (360, 640)
                embs = list(s.scalars(select(Embedding).where(Embedding.frame_id == f.id)))
                assert {e.region for e in embs} == {n for n, _ in regions(full)}
                for e in embs:
                    assert e.model_id == embedder.id
                    vec = np.frombuffer(e.vector, dtype=np.float16).astype(np.float32)
                    assert vec.shape == (embedder.dim,)
                    assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-2
        for pid, (_, reason) in BAD.items():
            v = videos[pid]
            assert v.state == VideoState.FAILED, (pid, v.error)
            assert v.error.startswith(reason), (pid, v.error)
            assert "\n" not in v.error and v.lease_owner is None
    # the page and the direct link to the same file give the same media hash
    assert videos["page"].media_sha256 == videos["cuts"].media_sha256
    assert (media / "ok.mp4").stat().st_size == videos["ok"].media_bytes


def test_worker_transient_failure_is_retried_later(tmp_path: Path, server: str, embedder) -> None:
    cfg = _config(tmp_path, max_attempts=3)
    store = Store(cfg.storage.database_url)
    _add(store, server, {"busy": "/status/503", "ok": "/ok.mp4"})
    stats = process_pending(cfg, store, embedder, progress=False)
    assert stats.retrying == 1 and stats.processed == 1 and stats.failed == 0
    with store.session() as s:
        v = s.scalar(select(Video).where(Video.platform_id == "busy"))
        assert v.state == VideoState.DISCOVERED and v.attempts == 1
        assert v.error.startswith("download: HTTP 503")
        assert v.next_attempt_at is not None and v.next_attempt_at > dt.datetime.now(dt.UTC)
    # not claimable again until the backoff has passed
    assert process_pending(cfg, store, embedder, progress=False).claimed == 0


def test_worker_stop_midway_releases_and_resumes(
    tmp_path: Path, server: str, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(tmp_path, max_frames=3, batch_size=4)  # about two videos per embedding batch
    store = Store(cfg.storage.database_url)
    _add(store, server, {f"v{i}": p for i, p in enumerate(["/ok.mp4", "/cuts.mp4"] * 2)})
    stop = threading.Event()
    embed_frames = embedder.embed_frames

    def stop_after_first_batch(images: list[Image.Image]) -> list:
        # the next videos are sampled in the background meanwhile, so the next batch could
        # start at once: stop here rather than when a watcher sees the first "embedded" row
        out = embed_frames(images)
        stop.set()
        return out

    monkeypatch.setattr(embedder, "embed_frames", stop_after_first_batch)
    stats = process_pending(cfg, store, embedder, progress=False, stop=stop)
    monkeypatch.undo()
    assert 1 <= stats.processed < 4 and stats.failed == 0
    with store.session() as s:
        videos = list(s.scalars(select(Video)))
        assert all(v.lease_owner is None for v in videos)  # nothing left leased
        assert all(v.state in VideoState.PENDING and v.attempts == 0 for v in videos)
    again = process_pending(cfg, store, embedder, progress=False)
    assert stats.processed + again.processed == 4
    with store.session() as s:
        assert {v.state for v in s.scalars(select(Video))} == {VideoState.EMBEDDED}


def test_worker_samples_frames_in_a_pool_before_dropping_media(
    tmp_path: Path, server: str, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sampling runs on the "frames" threads, and the media file goes only once it is done."""
    import pipeline.worker as worker

    cfg = _config(tmp_path, keep_media="none", batch_size=4)
    store = Store(cfg.storage.database_url)
    _add(store, server, {f"v{i}": p for i, p in enumerate(["/ok.mp4", "/cuts.mp4"] * 2)})
    seen: list[tuple[str, bool]] = []
    real = worker.sample_frames

    def spy(path: Path, pcfg: ProcessConfig) -> list:
        frames = real(path, pcfg)
        seen.append((threading.current_thread().name, path.is_file()))
        return frames

    monkeypatch.setattr(worker, "sample_frames", spy)
    stats = process_pending(cfg, store, embedder, progress=False)
    assert stats.processed == 4 and stats.failed == 0 and stats.released == 0
    assert len(seen) == 4
    assert all(name.startswith("frames") and present for name, present in seen), seen
    with store.session() as s:
        videos = list(s.scalars(select(Video)))
        assert {v.state for v in videos} == {VideoState.EMBEDDED}
        assert all(v.media_path is None and v.lease_owner is None for v in videos)
    assert not list((cfg.data_dir / "media").rglob("*.mp4"))


def test_worker_stages_are_idempotent(stored_videos, embedder) -> None:
    """Rewinding finished videos to an earlier state and running again changes nothing."""
    stored = stored_videos()
    cfg, store = stored.cfg, stored.store
    first, second = stored.platform_ids()[:2]
    before = end_state(store)
    with store.session() as s:
        s.execute(
            update(Video)
            .where(Video.platform_id == first)
            .values(state=VideoState.DOWNLOADED)  # killed after frames were written
        )
        s.execute(update(Video).where(Video.platform_id == second).values(state=VideoState.FRAMES))
        second_id = s.scalar(select(Video.id).where(Video.platform_id == second))
        frame_ids = select(Frame.id).where(Frame.video_id == second_id)
        s.execute(  # killed halfway through writing its embeddings
            Embedding.__table__.delete().where(
                Embedding.frame_id.in_(frame_ids), Embedding.region != "full"
            )
        )
    stats = process_pending(cfg, store, embedder, progress=False)
    assert stats.processed == 2 and stats.downloaded == 0
    assert_same_end_state(before, end_state(store))


@pytest.mark.slow  # a worker process killed mid-batch
def test_kill_9_then_retry_gives_the_same_end_state(
    stored_videos, prepared_videos: PreparedVideos, embedder
) -> None:
    stored = stored_videos(processed=False, process={"lease_s": 2})
    cfg, store = stored.cfg, stored.store
    kill_9_midway(stored.config, store)
    time.sleep(2.1)  # the dead worker's leases run out
    process_pending(cfg, store, embedder, progress=False)
    # media_path, frames dir etc. differ by folder; states, hashes and vectors must not
    assert_same_end_state(prepared_videos.end_state, end_state(store))
    data = cfg.data_dir / "media" / "tiktok"
    assert not [p for p in data.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_probe_reports_streams(media: Path) -> None:
    info = probe(media / "ok.mp4")
    assert info.has_video and info.has_audio and (info.width, info.height) == (360, 640)
    assert info.duration == pytest.approx(6.0, abs=0.05) and info.error is None
    audio = probe(media / "audio.m4a")
    assert not audio.has_video and audio.has_audio
    assert probe(media / "zero.mp4").error
