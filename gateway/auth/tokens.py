"""Login tokens: opaque random strings the database keeps only as their SHA-256 digest.

A leaked database does not leak usable tokens. Every request looks its token up again:
deactivating a user, resetting a password or logging out takes effect at once.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from gateway.auth.roles import CurrentUser, Role
from gateway.db.schema import ApiToken, User
from gateway.services import Services


def token_digest(token: str) -> str:
    """What the database stores of a token: its SHA-256 hex digest."""
    return hashlib.sha256(token.encode()).hexdigest()


def revoke_all(session: Session, user_id: int) -> int:
    """Revoke every token of a user; returns how many were live."""
    return _revoke(session, ApiToken.user_id == user_id)


def _revoke(session: Session, which: ColumnElement[bool]) -> int:
    """Mark the live tokens ``which`` selects as revoked; returns how many there were."""
    result = session.execute(
        update(ApiToken).where(which, ApiToken.revoked.is_(False)).values(revoked=True)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def authenticate(services: Services, token: str) -> CurrentUser | None:
    """The user a token belongs to; None when unknown, expired, revoked or the user inactive."""
    if not token or len(token) > 512:
        return None
    now = services.clock()
    with services.sessions() as session:
        row = session.execute(
            select(
                ApiToken.expires_at,
                ApiToken.revoked,
                User.id,
                User.username,
                User.role,
                User.person_id,
            )
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == token_digest(token), User.active.is_(True))
        ).first()
    if row is None or row.revoked or row.expires_at <= now:
        return None
    try:
        role = Role(row.role)
    except ValueError:
        return None
    if role is Role.STUDENT and not row.person_id:
        return None  # a student account is always someone's own; without one it sees nothing
    return CurrentUser(row.id, row.username, role, row.person_id)


def logout(services: Services, token: str) -> bool:
    """Revoke one token; False when it was not a live token."""
    with services.sessions.begin() as session:
        return _revoke(session, ApiToken.token_hash == token_digest(token)) > 0
