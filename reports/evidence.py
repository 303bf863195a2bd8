"""Export what a takedown notice needs for one detection: a folder or a zip.

Contents::

    video.<ext>            the downloaded video file (when still on disk)
    video.<ext>.sha256     its SHA-256, re-computed on export (``sha256sum -c`` format)
    listing.json           the raw listing record as crawled (``Video.raw``)
    frames/…               the sampled frame thumbnails (``best_frame…`` is the matched frame)
    manifest.json          detection, character, video, capture times, URLs, files and hashes
    summary.txt            a short plain-text summary to paste into a notice
    SHA256SUMS             hashes of every file above
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from charwatch import __version__
from charwatch.config import Config
from reports.data import ReportError, iso_time
from storage import Detection, Frame, Store, utcnow
from storage.blobs import data_file
from storage.files import atomic_path


class UnknownDetectionError(ReportError, LookupError):
    """No detection has the asked id."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _safe(text: str, limit: int = 60) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:limit] or "x"


def _suffix(path: Path, default: str) -> str:
    s = path.suffix.lower()
    return s if re.fullmatch(r"\.[a-z0-9]{1,8}", s) else default


def _json_default(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return iso_time(v)
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def _dump(path: Path, data: Any) -> None:
    path.write_text(
        json.dumps(data, ensure_ascii=False, indent=2, default=_json_default) + "\n",
        encoding="utf-8",
    )


def _fill(cfg: Config, det: Detection, frames: list[Frame], folder: Path, now: dt.datetime) -> None:
    """Write the evidence files of ``det`` into the empty ``folder``."""
    video, char = det.video, det.character
    notes: list[str] = []
    files: list[str] = []

    # the video file, re-hashed
    media: dict[str, Any] = {
        "original_path": video.media_path,
        "recorded_sha256": video.media_sha256,
        "recorded_bytes": video.media_bytes,
        "present": False,
    }
    src = data_file(cfg.data_dir, video.media_path) if video.media_path else None
    if src is not None and src.is_file():
        name = "video" + _suffix(src, ".mp4")
        shutil.copyfile(src, folder / name)
        digest = sha256_file(folder / name)
        (folder / f"{name}.sha256").write_text(f"{digest}  {name}\n", encoding="utf-8")
        files += [name, f"{name}.sha256"]
        match = None if not video.media_sha256 else digest == video.media_sha256
        media.update(
            present=True,
            file=name,
            bytes=(folder / name).stat().st_size,
            sha256=digest,
            sha256_matches_recorded=match,
        )
        if match is False:
            notes.append(
                f"WARNING: the video file's SHA-256 ({digest}) differs from the hash recorded at "
                f"download ({video.media_sha256}); the file changed after download."
            )
    else:
        if video.media_path:
            why = "the file is no longer on disk"
        elif video.media_sha256:
            why = (
                "the file was deleted after matching "
                f"(process.keep_media = {cfg.process.keep_media!r})"
            )
        else:
            why = "the video was never downloaded"
        media["missing_reason"] = why
        notes.append(
            f"The video file is not included: {why}."
            + (f" Hash recorded at download: {video.media_sha256}." if video.media_sha256 else "")
        )

    # raw listing record
    _dump(folder / "listing.json", video.raw if video.raw is not None else {})
    files.append("listing.json")
    if video.raw is None:
        notes.append("No raw listing record was stored for this video.")

    # frame thumbnails
    thumbs: list[dict[str, Any]] = []
    wanted: list[tuple[str, str, float | None]] = []
    if det.best_frame_thumb:
        wanted.append(("best_frame", det.best_frame_thumb, det.best_frame_t))
    wanted += [(f"frame_t{f.t:09.3f}", f.thumb_path, f.t) for f in frames if f.thumb_path]
    seen: set[str] = set()
    for stem, stored, t in wanted:
        if stored in seen and stem != "best_frame":
            continue
        seen.add(stored)
        p = data_file(cfg.data_dir, stored) if stored else None
        entry: dict[str, Any] = {"t": t, "original_path": stored}
        if p is not None and p.is_file():
            (folder / "frames").mkdir(exist_ok=True)
            rel = f"frames/{stem}{_suffix(p, '.jpg')}"
            shutil.copyfile(p, folder / rel)
            files.append(rel)
            entry.update(file=rel, sha256=sha256_file(folder / rel))
        else:
            entry["missing"] = True
        thumbs.append(entry)

    manifest: dict[str, Any] = {
        "format": "charwatch-evidence/1",
        "exported_at": iso_time(now),
        "tool": f"charwatch {__version__}",
        "detection": {
            "id": det.id,
            "score": det.score,
            "match_type": det.match_type,
            "signals": det.signals or {},
            "best_frame_t": det.best_frame_t,
            "best_reference_id": det.best_reference_id,
            "model_id": det.model_id,
            "review_state": det.review_state,
            "review_note": det.review_note,
            "detected_at": iso_time(det.detected_at),
        },
        "character": {
            "id": char.id,
            "name": char.name,
            "franchise": char.franchise,
            "rights_holder": char.rights_holder,
        },
        "video": {
            "id": video.id,
            "platform": video.platform,
            "platform_id": video.platform_id,
            "url": video.url,
            "author": video.author,
            "caption": video.caption,
            "hashtags": video.hashtags or [],
            "posted_at": iso_time(video.posted_at),
            "view_count": video.view_count,
            "like_count": video.like_count,
            "duration_s": video.duration_s,
            "thumbnail_url": video.thumbnail_url,
            "listing": video.listing,
            "ai_label": video.ai_label,
            "c2pa_state": video.c2pa_state,
            "c2pa_info": video.c2pa_info,
        },
        "capture": {
            "first_seen": iso_time(video.first_seen),
            "last_seen": iso_time(video.last_seen),
            "processed_at": iso_time(video.processed_at),
            "detected_at": iso_time(det.detected_at),
        },
        "media": media,
        "frames": thumbs,
        "notes": notes,
    }
    _dump(folder / "manifest.json", manifest)
    (folder / "summary.txt").write_text(_summary(manifest), encoding="utf-8")
    files += ["manifest.json", "summary.txt"]
    sums = "".join(f"{sha256_file(folder / f)}  {f}\n" for f in files)
    (folder / "SHA256SUMS").write_text(sums, encoding="utf-8")


def _summary(m: dict[str, Any]) -> str:
    d, c, v, cap, media = m["detection"], m["character"], m["video"], m["capture"], m["media"]
    who = c["name"] + (f" ({c['franchise']})" if c["franchise"] else "")
    if c["rights_holder"]:
        who += f", rights holder: {c['rights_holder']}"
    signals = ", ".join(
        f"{k}={json.dumps(val, ensure_ascii=False)}" for k, val in d["signals"].items()
    )
    if media["present"]:
        verified = {True: "matches", False: "DOES NOT match", None: "no hash recorded to compare"}
        file_line = (
            f"{media['file']} ({media['bytes']:,} bytes)\n"
            f"SHA-256:        {media['sha256']}\n"
            f"                re-computed {m['exported_at']}; "
            f"{verified[media['sha256_matches_recorded']]} the hash recorded at download"
        )
    else:
        file_line = f"not included ({media['missing_reason']})"
        if media["recorded_sha256"]:
            file_line += f"\nSHA-256:        {media['recorded_sha256']} (recorded at download)"
    best = f"{d['best_frame_t']:.1f} s into the video" if d["best_frame_t"] is not None else "—"
    lines = [
        f"Evidence of detection #{d['id']}",
        "=" * 40,
        f"Character:      {who}",
        f"Platform:       {v['platform']}",
        f"Video URL:      {v['url']}",
        f"Video ID:       {v['platform_id']}",
        f"Uploader:       {v['author'] or '—'}",
        f"Caption:        {(v['caption'] or '—').replace(chr(10), ' ')}",
        f"Posted:         {v['posted_at'] or 'unknown'}",
        f"First seen:     {cap['first_seen']}",
        f"Last seen:      {cap['last_seen']}",
        f"Detected:       {cap['detected_at']}",
        f"Match:          {d['match_type']}, score {d['score']:.4f}, best frame {best}",
        f"Signals:        {signals or '—'}",
        f"AI label:       {v['ai_label'] or 'none shown by the platform'}",
        f"C2PA:           {v['c2pa_state'] or 'not checked'}",
        f"Review state:   {d['review_state']}",
        f"Video file:     {file_line}",
        f"Frames:         {sum(1 for f in m['frames'] if 'file' in f)} thumbnail(s) in frames/",
        f"Exported:       {m['exported_at']} by {m['tool']}",
    ]
    if m["notes"]:
        lines += ["", "Notes:"] + [f"- {n}" for n in m["notes"]]
    return "\n".join(lines) + "\n"


def export_evidence(
    cfg: Config, store: Store, detection_id: int, out_dir: Path, *, zip: bool = False
) -> Path:
    """Write the evidence of ``detection_id`` under ``out_dir``; returns the folder or ``.zip``.

    The name is ``charwatch-evidence-<id>-<platform>-<video id>-<UTC time>``; nothing existing
    is overwritten. Raises ``UnknownDetectionError`` for an id that is not in the store.
    """
    now = utcnow()
    with store.session() as s:
        det = s.get(Detection, int(detection_id))
        if det is None:
            raise UnknownDetectionError(f"no detection with id {detection_id}")
        _ = det.video, det.character
        frames = list(det.video.frames)
        name = (
            f"charwatch-evidence-{det.id}-{_safe(det.video.platform, 20)}-"
            f"{_safe(det.video.platform_id)}-{now.strftime('%Y%m%dT%H%M%SZ')}"
        )
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / (name + (".zip" if zip else ""))
        n = 1
        while target.exists():
            n += 1
            target = out_dir / (f"{name}-{n}" + (".zip" if zip else ""))
        with tempfile.TemporaryDirectory(prefix=".evidence-", dir=out_dir) as tmp:
            folder = Path(tmp) / target.name.removesuffix(".zip")
            folder.mkdir()
            _fill(cfg, det, frames, folder, now)
            if zip:
                with (
                    atomic_path(target) as part,
                    zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zf,
                ):
                    for f in sorted(folder.rglob("*")):
                        if f.is_file():
                            video = f.name.startswith("video.") and f.suffix != ".sha256"
                            method = zipfile.ZIP_STORED if video else zipfile.ZIP_DEFLATED
                            zf.write(f, f"{folder.name}/{f.relative_to(folder).as_posix()}", method)
            else:
                os.replace(folder, target)
    return target
