"""C2PA (Content Credentials) read from the downloaded file.

Call it on the raw download, before any remux: an ``ffmpeg -c copy`` remux, ``+faststart`` or a
re-encode deletes the manifest. Most platforms strip it on upload, so ``absent`` is the usual
answer and means nothing; ``valid`` with a generative ``digital_source_type`` is a strong hint.
Remote manifests and OCSP are never fetched (no network calls while reading crawled media).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ABSENT = "absent"
VALID = "valid"
INVALID = "invalid"
ERROR = "error"

_SETTINGS = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
_ACTION_LABELS = ("c2pa.actions.v2", "c2pa.actions")


def _result(state: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "state": state,
        "claim_generator": None,
        "digital_source_type": None,
        "signer": None,
    }
    out.update(extra)
    return out


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    infos = manifest.get("claim_generator_info") or []
    if infos and isinstance(infos[0], dict) and infos[0].get("name"):
        first = infos[0]
        return f"{first['name']} {first.get('version', '')}".strip()
    gen = manifest.get("claim_generator")
    return str(gen) if gen else None


def _digital_source_type(manifest: dict[str, Any]) -> str | None:
    for assertion in manifest.get("assertions") or []:
        if assertion.get("label") not in _ACTION_LABELS:
            continue
        actions = (assertion.get("data") or {}).get("actions") or []
        # the creating action names the source; fall back to any action that names one
        for action in sorted(actions, key=lambda a: a.get("action") != "c2pa.created"):
            if action.get("digitalSourceType"):
                return str(action["digitalSourceType"])
    return None


def _signer(manifest: dict[str, Any]) -> str | None:
    sig = manifest.get("signature_info") or {}
    parts = [sig.get("issuer"), sig.get("common_name")]
    text = " / ".join(str(p) for p in parts if p)
    return text or None


def _failures(results: dict[str, Any] | None) -> list[str]:
    if not results:
        return []
    active = results.get("activeManifest") or {}
    return sorted({f.get("code", "") for f in active.get("failure") or [] if f.get("code")})


def read_c2pa(path: Path | str) -> dict[str, Any]:
    """``{state: absent|valid|invalid|error, claim_generator, digital_source_type, signer}``.

    ``valid`` means the signature and the content hashes check out; whether the signer is on a
    trust list is reported separately (``trusted``), since no trust anchors are configured.
    Extra keys: ``trusted``, ``failures`` (validation failure codes), ``message`` on errors.
    """
    try:
        import c2pa
    except ImportError:  # the reader is a dependency; a broken install must not stop downloads
        return _result(ERROR, message="c2pa-python is not installed")

    path = Path(path)
    if not path.is_file():
        return _result(ERROR, message=f"file not found: {path}")
    try:
        ctx = c2pa.Context.from_dict(_SETTINGS)
        reader = c2pa.Reader.try_create(str(path), context=ctx)
    except c2pa.C2paError.NotSupported:
        return _result(ABSENT, message="format not supported by the C2PA reader")
    except c2pa.C2paError as exc:
        return _result(ERROR, message=f"{type(exc).__name__.lstrip('_')}: {exc}"[:500])
    if reader is None:
        return _result(ABSENT)
    with reader:
        try:
            manifest = reader.get_active_manifest() or {}
            state = (reader.get_validation_state() or "").lower()
            failures = _failures(reader.get_validation_results())
        except c2pa.C2paError as exc:
            return _result(ERROR, message=str(exc)[:500])
    untrusted = {"signingCredential.untrusted"}
    valid = state in ("valid", "trusted")
    return _result(
        VALID if valid else INVALID,
        claim_generator=_claim_generator(manifest),
        digital_source_type=_digital_source_type(manifest),
        signer=_signer(manifest),
        trusted=state == "trusted",
        failures=[f for f in failures if f not in untrusted],
        validation_state=state or None,
    )
