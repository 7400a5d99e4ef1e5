"""Users, passwords and login tokens.

Passwords are hashed with argon2id; a login hands out an opaque random token that the database
keeps only as its SHA-256 digest, so a leaked database does not leak usable tokens. Every request
looks its token up again: deactivating a user, resetting a password or logging out takes effect
at once.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from contracts.models import utc_now
from gateway.api.deps import CurrentUser, Role
from gateway.config import check_secret
from gateway.db.schema import ApiToken, User
from gateway.services import Services

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 10
FAILURE_WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class LoginError(Exception):
    """Wrong username or password (the message never says which)."""


class AccountLockedError(LoginError):
    """Too many failed logins: the account is locked until ``until``."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"too many failed logins; try again after {until.isoformat()}")
        self.until = until


class UsernameTakenError(ValueError):
    """Another account already has this username (compared case-insensitively)."""


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    expires_at: datetime
    user: CurrentUser


@cache
def _dummy_hash() -> str:
    """A hash to verify against for unknown users, so they cost as much time as known ones."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """The argon2id hash of a password."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether the password matches the hash (False for a malformed hash)."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    """What the database stores of a token: its SHA-256 hex digest."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_password(password: str, *, mode: str, username: str = "") -> str:
    """Refuse weak passwords: short ones, and placeholders outside development mode."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if username and password.strip().lower() == username.strip().lower():
        raise ValueError("password must not be the username")
    check_secret("password", password, mode)
    return password


def check_username(username: str) -> str:
    """Usernames are 1-64 letters, digits, '_', '.', '@', '-', starting with a letter or digit."""
    if not _USERNAME.fullmatch(username):
        raise ValueError(
            f"username {username!r} is not valid: use 1-64 letters, digits, '_', '.', '@', '-', "
            "starting with a letter or digit"
        )
    return username


def check_role(role: str) -> Role:
    """The Role named ``role``, or ValueError listing the roles."""
    try:
        return Role(role)
    except ValueError:
        raise ValueError(
            f"unknown role {role!r}; use one of: " + ", ".join(r.value for r in Role)
        ) from None


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    display_name: str = "",
    *,
    mode: str = "production",
    now: datetime | None = None,
) -> User:
    """Add a user with an argon2 password hash; ValueError for a taken name or weak password."""
    check_username(username)
    checked_role = check_role(role)
    check_password(password, mode=mode, username=username)
    taken = session.scalar(
        select(User.id).where(func.lower(User.username) == username.lower()).limit(1)
    )
    if taken is not None:
        raise UsernameTakenError(f"username {username!r} is taken")
    user = User(
        username=username,
        display_name=display_name,
        password_hash=hash_password(password),
        role=checked_role.value,
        active=True,
        created_at=now if now is not None else utc_now(),
        failed_logins=0,
    )
    session.add(user)
    session.flush()
    log.info("user created", extra={"user": username, "role": checked_role.value})
    return user


def set_password(session: Session, user: User, password: str, *, mode: str) -> None:
    """Replace a user's password, clear a lockout and revoke every token they hold."""
    check_password(password, mode=mode, username=user.username)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    revoke_all(session, user.id)


def revoke_all(session: Session, user_id: int) -> int:
    """Revoke every token of a user; returns how many were live."""
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked.is_(False))
        .values(revoked=True)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def is_locked(user: User, max_failures: int, now: datetime) -> bool:
    """Whether the account is locked now.

    ``locked_until`` has two meanings, told apart by ``failed_logins``: while the failures are
    below the limit it marks the end of the current 15-minute failure window; once they reach it
    the account is locked until then.
    """
    return (
        user.failed_logins >= max_failures
        and user.locked_until is not None
        and user.locked_until > now
    )


def _record_failure(user: User, max_failures: int, now: datetime) -> None:
    window_over = user.locked_until is None or user.locked_until <= now
    if window_over:
        user.failed_logins = 1
        user.locked_until = now + FAILURE_WINDOW
    else:
        user.failed_logins += 1
    if user.failed_logins >= max_failures:
        user.locked_until = now + LOCKOUT


def login(services: Services, username: str, password: str) -> LoginResult:
    """Check the password and issue a token; LoginError / AccountLockedError otherwise."""
    now = services.clock()
    max_failures = services.config.api.login_max_failures
    failure: LoginError | None = None
    result: LoginResult | None = None
    with services.sessions.begin() as session:
        user = session.scalar(
            select(User).where(func.lower(User.username) == username.lower()).limit(1)
        )
        if user is None or not user.active:
            verify_password(_dummy_hash(), password)  # same cost as a real check
            log.info("login refused: unknown or inactive user")
            raise LoginError("invalid username or password")
        if is_locked(user, max_failures, now):
            verify_password(_dummy_hash(), password)
            assert user.locked_until is not None
            log.warning("login refused: account locked", extra={"user": user.username})
            raise AccountLockedError(user.locked_until)
        if not verify_password(user.password_hash, password):
            _record_failure(user, max_failures, now)
            log.warning(
                "login failed (%d of %d)",
                user.failed_logins,
                max_failures,
                extra={"user": user.username},
            )
            failure = (
                AccountLockedError(user.locked_until)
                if user.locked_until is not None and user.failed_logins >= max_failures
                else LoginError("invalid username or password")
            )
        else:
            result = _issue_token(session, user, password, now, services.config.api.token_ttl_s)
    if failure is not None:
        raise failure  # after the commit: the failure count is stored
    assert result is not None
    log.info("login", extra={"user": result.user.username, "role": result.user.role.value})
    return result


def _issue_token(
    session: Session, user: User, password: str, now: datetime, ttl_s: int
) -> LoginResult:
    """Record a successful login and store a new token's digest."""
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    # Forget this user's tokens that expired over a day ago (keeps the table small).
    session.execute(
        delete(ApiToken).where(
            ApiToken.user_id == user.id, ApiToken.expires_at < now - timedelta(days=1)
        )
    )
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=ttl_s)
    session.add(
        ApiToken(
            token_hash=token_digest(token),
            user_id=user.id,
            created_at=now,
            expires_at=expires_at,
            revoked=False,
        )
    )
    return LoginResult(token, expires_at, CurrentUser(user.id, user.username, Role(user.role)))


def authenticate(services: Services, token: str) -> CurrentUser | None:
    """The user a token belongs to; None when unknown, expired, revoked or the user inactive."""
    if not token or len(token) > 512:
        return None
    now = services.clock()
    with services.sessions() as session:
        row = session.execute(
            select(ApiToken.expires_at, ApiToken.revoked, User.id, User.username, User.role)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == token_digest(token), User.active.is_(True))
        ).first()
    if row is None or row.revoked or row.expires_at <= now:
        return None
    try:
        role = Role(row.role)
    except ValueError:
        return None
    return CurrentUser(row.id, row.username, role)


def logout(services: Services, token: str) -> bool:
    """Revoke one token; False when it was not a live token."""
    with services.sessions.begin() as session:
        result = session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == token_digest(token), ApiToken.revoked.is_(False))
            .values(revoked=True)
        )
        return bool(getattr(result, "rowcount", 0))
