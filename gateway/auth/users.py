"""Gateway accounts: usernames, creating one, changing its password."""

from __future__ import annotations

import logging
import re
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from contracts.models import utc_now
from gateway.auth.passwords import check_password, hash_password
from gateway.auth.roles import check_role
from gateway.auth.tokens import revoke_all
from gateway.db.schema import User

log = logging.getLogger(__name__)

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class UsernameTakenError(ValueError):
    """Another account already has this username (compared case-insensitively)."""


def check_username(username: str) -> str:
    """Usernames are 1-64 letters, digits, '_', '.', '@', '-', starting with a letter or digit."""
    if not _USERNAME.fullmatch(username):
        raise ValueError(
            f"username {username!r} is not valid: use 1-64 letters, digits, '_', '.', '@', '-', "
            "starting with a letter or digit"
        )
    return username


def username_is(username: str) -> ColumnElement[bool]:
    """Matches the account called ``username``: usernames compare case-insensitively."""
    return func.lower(User.username) == username.lower()


def account_name(session: Session, username: str) -> str | None:
    """The name of the account called ``username`` (any case), None when there is none."""
    return session.scalar(select(User.username).where(username_is(username)).limit(1))


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    display_name: str = "",
    *,
    mode: str = "production",
    now: datetime | None = None,
    person_id: str | None = None,
) -> User:
    """Add a user with an argon2 password hash; ValueError for a taken name or weak password."""
    check_username(username)
    checked_role = check_role(role)
    check_password(password, mode=mode, username=username)
    taken = session.scalar(select(User.id).where(username_is(username)).limit(1))
    if taken is not None:
        raise UsernameTakenError(f"username {username!r} is taken")
    user = User(
        username=username,
        display_name=display_name,
        password_hash=hash_password(password),
        role=checked_role.value,
        person_id=person_id,
        active=True,
        created_at=now if now is not None else utc_now(),
    )
    session.add(user)
    session.flush()
    log.info("user created", extra={"user": username, "role": checked_role.value})
    return user


def set_password(session: Session, user: User, password: str, *, mode: str) -> None:
    """Replace a user's password and revoke every token they hold."""
    check_password(password, mode=mode, username=user.username)
    user.password_hash = hash_password(password)
    revoke_all(session, user.id)


def is_locked(user: User, max_failures: int, now: datetime) -> bool:
    """Always False: accounts are no longer locked, failed logins are throttled instead.

    Kept for the users API's ``locked`` field; the throttles are at /api/login-throttles.
    """
    return False
