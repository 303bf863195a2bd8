"""The allow-list: licensed accounts (the rights holder's own channels, partners) whose videos
are never flagged, for every character or for one.

Rows live in :class:`storage.models.AllowedAccount`; the matcher reads them. Handles are stored
as typed, without a leading ``@`` and surrounding spaces; they are compared with a video's
author case-insensitively (:func:`normalize_handle`), as the platforms treat handles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from charwatch.config import PLATFORMS
from charwatch.errors import UsageError
from index.registry import get_character
from storage.db import Store
from storage.models import AllowedAccount, Character


class AllowListError(UsageError):
    """A bad allow-list request: unknown platform or character, empty or duplicate handle."""


def clean_handle(author: str) -> str:
    """The handle as stored: spaces trimmed, one leading ``@`` removed."""
    text = " ".join(str(author).split())
    if text.startswith("@"):
        text = text[1:].strip()
    return text


def normalize_handle(author: str | None) -> str:
    """The form handles are compared in: cleaned and casefolded."""
    return clean_handle(author or "").casefold()


def add_allowed(
    store: Store,
    platform: str,
    author: str,
    *,
    character: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Allow ``author`` on ``platform`` (for ``character`` only, or every character)."""
    platform = platform.strip().lower()
    if platform not in PLATFORMS:
        raise AllowListError(f"unknown platform {platform!r} (known: {', '.join(PLATFORMS)})")
    handle = clean_handle(author)
    if not handle:
        raise AllowListError("the account handle must not be empty")
    char_id = None
    if character is not None:
        ch = get_character(store, character)
        if ch is None:
            raise AllowListError(f"no character named {character!r}")
        char_id = ch.id
    scope_cond = (
        AllowedAccount.character_id.is_(None)
        if char_id is None
        else AllowedAccount.character_id == char_id
    )
    with store.session() as s:
        for row in s.scalars(
            select(AllowedAccount).where(AllowedAccount.platform == platform, scope_cond)
        ):
            if normalize_handle(row.author) == handle.casefold():
                scope = f"for {character!r}" if character else "for every character"
                raise AllowListError(
                    f"{platform} @{row.author} is already allowed {scope} (entry {row.id})"
                )
        row = AllowedAccount(
            platform=platform,
            author=handle,
            character_id=char_id,
            note=(note or "").strip() or None,
        )
        s.add(row)
        s.flush()
        row_id = row.id
    return next(r for r in list_allowed(store) if r["id"] == row_id)


def list_allowed(store: Store) -> list[dict[str, Any]]:
    """Every allow-list entry, by platform and handle."""
    with store.session() as s:
        rows = s.execute(
            select(AllowedAccount, Character.name)
            .outerjoin(Character, Character.id == AllowedAccount.character_id)
            .order_by(AllowedAccount.platform, AllowedAccount.author, AllowedAccount.id)
        ).all()
    return [
        {
            "id": a.id,
            "platform": a.platform,
            "author": a.author,
            "character": name if a.character_id is not None else None,
            "scope": name if a.character_id is not None else "(all characters)",
            "note": a.note,
            "created_at": a.created_at,
        }
        for a, name in rows
    ]


def remove_allowed(store: Store, entry_id: int) -> dict[str, Any]:
    """Delete one entry by id; returns what it was."""
    found = [r for r in list_allowed(store) if r["id"] == entry_id]
    if not found:
        raise AllowListError(f"no allow-list entry with id {entry_id}")
    with store.session() as s:
        row = s.get(AllowedAccount, entry_id)
        if row is not None:
            s.delete(row)
    return found[0]


@dataclass
class AllowList:
    """Licensed accounts: ``(platform, normalised handle)`` -> the character ids they may
    show, or None for every character."""

    entries: dict[tuple[str, str], set[int] | None] = field(default_factory=dict)

    @classmethod
    def load(cls, store: Store) -> AllowList:
        out = cls()
        with store.session() as s:
            rows = s.execute(
                select(AllowedAccount.platform, AllowedAccount.author, AllowedAccount.character_id)
            ).all()
        for platform, author, cid in rows:
            key = ((platform or "").strip().lower(), normalize_handle(author))
            if not key[1]:
                continue
            if cid is None:
                out.entries[key] = None
            elif key not in out.entries or out.entries[key] is not None:
                scope = out.entries.setdefault(key, set())
                assert scope is not None
                scope.add(cid)
        return out

    def allows(self, platform: str, author: str | None, character_id: int) -> bool:
        """True when this account may show this character (its videos are not flagged)."""
        key = ((platform or "").strip().lower(), normalize_handle(author))
        if not key[1] or key not in self.entries:
            return False
        scope = self.entries[key]
        return scope is None or character_id in scope
