"""Sessions, CSRF tokens, roles and the login limiter of the review desk.

* The session is Flask's signed cookie (HttpOnly, SameSite=Lax, Secure when configured),
  signed with a key generated once into a file under the data folder (mode 0600). It holds the
  user id, the time their password was set (a reset ends older sessions) and a CSRF token.
* Every POST must carry the session's token in the form field ``csrf_token`` (or the header
  ``X-CSRF-Token``): a missing or wrong one is refused with 403 before anything runs.
* Every page except the login form needs a logged-in user; a ``viewer`` gets 403 on any POST
  other than logging in or out.
* A login name (or address) with too many failed logins in a window is refused (429) until
  the window has passed, without checking the password.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from collections import deque
from pathlib import Path

from charwatch.config import Config

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SECRET_NAME = "desk-secret.key"
SECRET_BYTES = 32


def secret_key_path(cfg: Config) -> Path:
    """Where the session signing key is kept."""
    name = cfg.serve.secret_key_file
    return Path(name) if name else cfg.data_dir / SECRET_NAME


def load_secret_key(path: Path) -> bytes:
    """The signing key in ``path``; made (random, mode 0600) when the file does not exist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(SECRET_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
    data = path.read_bytes()
    if len(data) < 16:
        raise ValueError(f"session key file {path} is too short; delete it to make a new one")
    return data


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of two tokens (False when either is missing)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


class LoginLimiter:
    """Counts failed logins per key (a name, an address) in a sliding window."""

    def __init__(self, max_failures: int, window_s: float) -> None:
        self.max_failures = max(1, int(max_failures))
        self.window_s = float(window_s)
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def blocked_for(self, keys: list[tuple[str, int]]) -> float:
        """Seconds until a login may be tried again (0: now); ``keys``: (key, allowed
        failures)."""
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            for key, limit in keys:
                q = self._recent(key, now)
                if len(q) >= limit:
                    wait = max(wait, self.window_s - (now - q[-limit]))
        return wait

    def failed(self, keys: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)
            if len(self._fails) > 10_000:  # forget idle keys
                for k in [k for k, q in self._fails.items() if not q]:
                    del self._fails[k]

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._fails.pop(key, None)
