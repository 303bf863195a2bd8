"""The review desk's users: names, roles and argon2 password hashes.

``analyst`` reads and decides (verdicts, allow-list, references); ``viewer`` reads only.
Passwords are generated here, shown once by ``charwatch users``, and only their argon2id hash
(``argon2-cffi``) is stored. Names are ASCII handles compared case-insensitively.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select

from charwatch.errors import UsageError
from storage.db import Store
from storage.models import User, utcnow

ANALYST = "analyst"
VIEWER = "viewer"
ROLES = (ANALYST, VIEWER)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
PASSWORD_BYTES = 15  # 20 URL-safe characters, 120 bits

_hasher = PasswordHasher()
# verified against when a name is unknown, so a wrong name costs as long as a wrong password
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(PASSWORD_BYTES))


class UserError(UsageError):
    """A bad users request: unknown or duplicate name, bad role."""


@dataclass(frozen=True)
class UserInfo:
    """A user as the desk sees it (never the hash)."""

    id: int
    name: str
    role: str
    password_set_at: str  # ISO time: a session from before a password change is void

    @property
    def can_change(self) -> bool:
        return self.role == ANALYST


def _info(u: User) -> UserInfo:
    return UserInfo(u.id, u.name, u.role, u.password_set_at.isoformat())


def check_name(name: str) -> str:
    """``name`` without surrounding spaces, when it is a valid handle."""
    name = (name or "").strip()
    if not NAME_RE.fullmatch(name):
        raise UserError(
            f"bad user name {name!r}: 1-64 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    return role


def new_password() -> str:
    """A random password (20 URL-safe characters)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def _find(s: Any, name: str) -> User | None:
    return s.scalar(select(User).where(func.lower(User.name) == name.strip().lower()))


def add_user(store: Store, name: str, role: str) -> str:
    """Create a user with a generated password; returns the password (shown once)."""
    name, role = check_name(name), check_role(role)
    password = new_password()
    with store.session() as s:
        if _find(s, name) is not None:
            raise UserError(f"a user named {name!r} already exists")
        now = utcnow()
        s.add(
            User(
                name=name,
                role=role,
                password_hash=_hasher.hash(password),
                created_at=now,
                password_set_at=now,
            )
        )
    return password


def reset_password(store: Store, name: str) -> str:
    """Give a user a new generated password (their sessions end); returns it."""
    password = new_password()
    with store.session() as s:
        user = _find(s, name)
        if user is None:
            raise UserError(f"no user named {name!r}")
        user.password_hash = _hasher.hash(password)
        user.password_set_at = utcnow()
    return password


def set_role(store: Store, name: str, role: str) -> None:
    """Change a user's role (takes effect on their next request)."""
    role = check_role(role)
    with store.session() as s:
        user = _find(s, name)
        if user is None:
            raise UserError(f"no user named {name!r}")
        user.role = role


def remove_user(store: Store, name: str) -> None:
    """Delete a user (their sessions end; their past verdicts keep their name)."""
    with store.session() as s:
        user = _find(s, name)
        if user is None:
            raise UserError(f"no user named {name!r}")
        s.delete(user)


def list_users(store: Store) -> list[dict[str, Any]]:
    """Every user, by name (no hashes)."""
    with store.session() as s:
        users = s.scalars(select(User).order_by(User.name)).all()
    return [
        {
            "name": u.name,
            "role": u.role,
            "created_at": u.created_at,
            "last_login_at": u.last_login_at,
        }
        for u in users
    ]


def authenticate(store: Store, name: str, password: str) -> UserInfo | None:
    """The user when ``password`` is theirs (and their last login time is updated), else None.

    Takes about as long for an unknown name as for a wrong password."""
    with store.session() as s:
        user = _find(s, name) if NAME_RE.fullmatch((name or "").strip()) else None
        stored = user.password_hash if user is not None else _DUMMY_HASH
        try:
            _hasher.verify(stored, password or "")
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        if _hasher.check_needs_rehash(stored):
            user.password_hash = _hasher.hash(password)
        user.last_login_at = utcnow()
        return _info(user)


def get_user(store: Store, user_id: int) -> UserInfo | None:
    """The user with this id, or None (removed)."""
    with store.session() as s:
        user = s.get(User, user_id)
        return _info(user) if user is not None else None
