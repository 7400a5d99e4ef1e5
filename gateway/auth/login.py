"""Logging in: the throttle first, then the password (outside any transaction), then a token."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.auth import throttle
from gateway.auth.addresses import address_key
from gateway.auth.passwords import dummy_hash, hash_password, needs_rehash, verify_password
from gateway.auth.roles import CurrentUser, Role
from gateway.auth.throttle import FailureCount, ThrottleCounts, ThrottlePolicy, ThrottleScope
from gateway.auth.throttle_store import (
    ThrottleKey,
    audit_throttle,
    count_of,
    forget_idle_throttles,
    forget_throttles,
    lock_throttle_rows,
    throttle_keys,
)
from gateway.auth.tokens import token_digest
from gateway.auth.users import username_is
from gateway.config import ApiSettings
from gateway.db.schema import ApiToken, User
from gateway.services import Services

log = logging.getLogger(__name__)


class LoginError(Exception):
    """Wrong username or password (the message never says which)."""


class LoginThrottledError(LoginError):
    """Too many failed logins lately: no password is checked for ``retry_after_s`` seconds.

    The message is the same whichever throttle applies and whether or not the account exists.
    """

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    expires_at: datetime
    user: CurrentUser


@dataclass(frozen=True, slots=True)
class _Attempt:
    """A login let through the throttle, already counted as a failure until it succeeds."""

    keys: tuple[ThrottleKey, ...]
    address: str
    started: tuple[tuple[ThrottleScope, FailureCount], ...]  # waits that begin if it fails


@dataclass(frozen=True, slots=True)
class _Account:
    id: int
    username: str
    password_hash: str


def login(
    services: Services, username: str, password: str, address: str | None = None
) -> LoginResult:
    """Check the password and issue a token; LoginThrottledError or LoginError otherwise.

    ``address`` is the client's (see ``client_address``); None counts as one unknown source.
    Known and unknown user names are throttled alike, so a 429 says nothing about the account.
    """
    now = services.clock()
    policy = ThrottlePolicy.of(services.config.api)
    source = address_key(address)
    keys = throttle_keys(username, source)
    try:
        with services.sessions.begin() as session:
            attempt = _admit(session, keys, source, now, policy)
            user = session.scalar(select(User).where(username_is(username)).limit(1))
            account = (
                _Account(user.id, user.username, user.password_hash)
                if user is not None and user.active
                else None
            )
    except LoginThrottledError:
        log.debug("login refused: throttled", extra={"address": source})
        raise
    # The password is checked outside any transaction: argon2 takes a while.
    if account is None:
        verify_password(dummy_hash(), password)  # same cost as a real check
    elif verify_password(account.password_hash, password):
        with services.sessions.begin() as session:
            result = _succeed(session, attempt, account, password, now, services.config.api)
        if result is not None:
            log.info("login", extra={"user": result.user.username, "role": result.user.role.value})
            return result
    with services.sessions.begin() as session:
        _record_failure(session, attempt, account.username if account else None, now, policy)
    log.info(
        "login failed",
        extra={"user": account.username if account else None, "address": attempt.address},
    )
    raise LoginError("invalid username or password")


def _admit(
    session: Session,
    keys: tuple[ThrottleKey, ...],
    address: str,
    now: datetime,
    policy: ThrottlePolicy,
) -> _Attempt:
    """Refuse a throttled attempt, or count it as a failure now and let it check the password.

    Counting before the (slow) password check, under the rows' lock, means parallel attempts
    cannot all slip through on the same free turn; a success removes the counts again.
    """
    rows = lock_throttle_rows(session, keys, now)
    before = {
        scope: throttle.current_count(count_of(row), now, policy) for scope, row in rows.items()
    }
    counts = ThrottleCounts(
        address=before[ThrottleScope.ADDRESS],
        account_address=before[ThrottleScope.ACCOUNT_ADDRESS],
        account=before[ThrottleScope.ACCOUNT],
    )
    wait = throttle.login_wait_s(counts, now, policy)
    if wait > 0:
        raise LoginThrottledError(throttle.retry_after_s(wait))  # rolls back: nothing is counted
    started: list[tuple[ThrottleScope, FailureCount]] = []
    for scope, row in rows.items():
        after = throttle.count_failure(before[scope], now, policy)
        if before[scope] is None:
            row.first_failure_at = now
        row.failures = after.failures
        row.last_failure_at = after.last_failure_at
        if throttle.starts_waiting(scope, before[scope], after, policy):
            started.append((scope, after))
    return _Attempt(keys, address, tuple(started))


def _record_failure(
    session: Session,
    attempt: _Attempt,
    account_name: str | None,
    now: datetime,
    policy: ThrottlePolicy,
) -> None:
    """Audit the waits this failure starts and forget counts nobody added to for a while."""
    forget_idle_throttles(session, now, policy)
    for scope, count in attempt.started:
        delay = throttle.throttle_delay_s(count.failures, policy.cap_s(scope), policy)
        # A name that is no account may be a password typed into the wrong field: not recorded.
        audit_throttle(
            session,
            "login_throttled",
            now,
            None,
            account_name or "",
            attempt.address,
            {"scope": scope.value, "failures": count.failures, "delay_s": delay},
        )
        log.warning(
            "login throttling started: %s after %d failed logins, next try waits %g s",
            scope.value,
            count.failures,
            delay,
            extra={"user": account_name, "address": attempt.address, "scope": scope.value},
        )


def _succeed(
    session: Session,
    attempt: _Attempt,
    account: _Account,
    password: str,
    now: datetime,
    api: ApiSettings,
) -> LoginResult | None:
    """Reset the attempt's counts and issue a token; None if the account changed meanwhile."""
    user = session.get(User, account.id)
    if user is None or not user.active or user.password_hash != account.password_hash:
        return None  # deactivated or given a new password while we checked the old one
    forget_throttles(session, attempt.keys)
    return _issue_token(session, user, password, now, api.token_ttl_s)


def _issue_token(
    session: Session, user: User, password: str, now: datetime, ttl_s: int
) -> LoginResult:
    """Record a successful login and store a new token's digest."""
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
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
