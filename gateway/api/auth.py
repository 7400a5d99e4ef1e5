"""Users, passwords, login tokens and login throttling.

Passwords are hashed with argon2id; a login hands out an opaque random token that the database
keeps only as its SHA-256 digest, so a leaked database does not leak usable tokens. Every request
looks its token up again: deactivating a user, resetting a password or logging out takes effect
at once.

Failed logins slow further tries down instead of locking the account (a lock lets anyone who
knows a user name keep its owner out): per source address, per account from that address, and per
account from everywhere with a much shorter cap, so the owner trying from another address waits
seconds at most (docs/decisions/0007-login-throttling.md). The throttle arithmetic is the pure
functions below; the state is in ``login_throttles``, shared by every gateway on the database.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import logging
import math
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from contracts.models import utc_now
from gateway.api.deps import CurrentUser, Role
from gateway.config import ApiSettings, check_secret
from gateway.db.schema import ApiToken, AuthEvent, LoginThrottle, User
from gateway.services import Services

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 10
UNKNOWN_ADDRESS = "unknown"
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class LoginError(Exception):
    """Wrong username or password (the message never says which)."""


class LoginThrottledError(LoginError):
    """Too many failed logins lately: no password is checked for ``retry_after_s`` seconds.

    The message is the same whichever throttle applies and whether or not the account exists.
    """

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


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


def revoke_all(session: Session, user_id: int) -> int:
    """Revoke every token of a user; returns how many were live."""
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked.is_(False))
        .values(revoked=True)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def is_locked(user: User, max_failures: int, now: datetime) -> bool:
    """Always False: accounts are no longer locked, failed logins are throttled instead.

    Kept for the users API's ``locked`` field; the throttles are at /api/login-throttles.
    """
    return False


# --- throttle arithmetic (pure: plain values in, plain values out) ---------------------------


class ThrottleScope(enum.StrEnum):
    ADDRESS = "address"  # every failed login from one source address
    ACCOUNT_ADDRESS = "account_address"  # failures for one user name from one source address
    ACCOUNT = "account"  # failures for one user name from anywhere


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How failed logins slow the next try down (the reasoning: docs/decisions/0007)."""

    free_failures: int = 5
    first_delay_s: float = 1.0
    address_cap_s: float = 300.0  # per address and per (account, address)
    account_cap_s: float = 30.0  # per account from everywhere: short, the owner may be elsewhere
    forget_after_s: float = 3600.0  # a count with no new failure for this long starts again

    @classmethod
    def of(cls, api: ApiSettings) -> ThrottlePolicy:
        """The policy the gateway runs with (``api.login_max_failures`` free failures)."""
        return cls(free_failures=api.login_max_failures)

    def cap_s(self, scope: ThrottleScope) -> float:
        """The longest wait a count of this scope can impose."""
        return self.account_cap_s if scope is ThrottleScope.ACCOUNT else self.address_cap_s


@dataclass(frozen=True, slots=True)
class FailureCount:
    """One throttle key's failed logins: how many, and when the last one was."""

    failures: int
    last_failure_at: datetime


@dataclass(frozen=True, slots=True)
class ThrottleCounts:
    """The three counts that decide whether one address may try one account now."""

    address: FailureCount | None = None
    account_address: FailureCount | None = None
    account: FailureCount | None = None


def throttle_delay_s(failures: int, cap_s: float, policy: ThrottlePolicy) -> float:
    """The wait after ``failures`` failures: none for the free ones, then doubling to the cap."""
    extra = failures - policy.free_failures
    if extra <= 0:
        return 0.0
    return min(cap_s, policy.first_delay_s * 2.0 ** min(extra - 1, 60))


def current_count(
    count: FailureCount | None, now: datetime, policy: ThrottlePolicy
) -> FailureCount | None:
    """The count still in force; None when there is none or it is forgotten."""
    if count is None or count.failures <= 0:
        return None
    if now - count.last_failure_at >= timedelta(seconds=policy.forget_after_s):
        return None
    return count


def count_failure(
    count: FailureCount | None, now: datetime, policy: ThrottlePolicy
) -> FailureCount:
    """The count after one more failure at ``now`` (a forgotten count starts again at 1)."""
    live = current_count(count, now, policy)
    return FailureCount((live.failures if live is not None else 0) + 1, now)


def throttle_until(scope: ThrottleScope, count: FailureCount, policy: ThrottlePolicy) -> datetime:
    """When the wait this count imposes on its own ends (its last failure plus the delay)."""
    delay = throttle_delay_s(count.failures, policy.cap_s(scope), policy)
    return count.last_failure_at + timedelta(seconds=delay)


def login_wait_s(counts: ThrottleCounts, now: datetime, policy: ThrottlePolicy) -> float:
    """Seconds before this address may try this account again; 0 when it may try now.

    The address's and the (account, address) counts each make it wait from their own last
    failure. The account's count from everywhere only applies to an address that has failed for
    this account itself, and also from that address's own last failure: an attacker elsewhere
    cannot make the owner wait at a fresh address, nor use up the owner's turn by trying first,
    and after a typo the owner waits ``account_cap_s`` at most.
    """
    wait = 0.0
    address = current_count(counts.address, now, policy)
    if address is not None:
        until = throttle_until(ThrottleScope.ADDRESS, address, policy)
        wait = max(wait, (until - now).total_seconds())
    pair = current_count(counts.account_address, now, policy)
    if pair is not None:
        account = current_count(counts.account, now, policy)
        delay = max(
            throttle_delay_s(pair.failures, policy.address_cap_s, policy),
            throttle_delay_s(
                account.failures if account is not None else 0, policy.account_cap_s, policy
            ),
        )
        wait = max(wait, (pair.last_failure_at + timedelta(seconds=delay) - now).total_seconds())
    return wait


def retry_after_s(wait_s: float) -> int:
    """A wait as whole seconds for Retry-After (rounded up, at least 1)."""
    return max(1, math.ceil(wait_s))


def starts_waiting(
    scope: ThrottleScope,
    before: FailureCount | None,
    after: FailureCount,
    policy: ThrottlePolicy,
) -> bool:
    """Whether this failure is the one from which the key's count imposes a wait (audited)."""
    cap = policy.cap_s(scope)
    was = throttle_delay_s(before.failures, cap, policy) if before is not None else 0.0
    return was == 0.0 and throttle_delay_s(after.failures, cap, policy) > 0.0


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a peer or X-Forwarded-For entry ('[v6]:port', 'v4:port' allowed)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted_proxies: Sequence[Network]
) -> str | None:
    """The client a login comes from: the peer, unless it is one of ``trusted_proxies``.

    Behind trusted proxies X-Forwarded-For is read from the right, each proxy having appended
    the address it saw; the first hop that is not a trusted proxy is the client. Without trusted
    proxies the header is ignored: anyone can write it.
    """
    if peer is None or not trusted_proxies:
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    current = peer
    ip = _parse_ip(peer)
    while ip is not None and any(ip in network for network in trusted_proxies) and hops:
        hop = hops.pop()
        hop_ip = _parse_ip(hop)
        if hop_ip is None:
            return current  # garbage a proxy passed on: stay with the last address we trust
        current, ip = str(hop_ip), hop_ip
    return current


def address_key(address: str | None) -> str:
    """What a source is counted under: an IPv4 address, an IPv6 address's /64, else the text.

    One IPv6 host usually holds a whole /64, so counting single addresses would let it rotate.
    """
    if not address:
        return UNKNOWN_ADDRESS
    ip = _parse_ip(address)
    if ip is None:
        return address.strip()[:64] or UNKNOWN_ADDRESS
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


# --- throttle state in the database ---------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class ThrottleKey:
    scope: ThrottleScope
    username: str
    address: str


def throttle_keys(username: str, address: str) -> tuple[ThrottleKey, ThrottleKey, ThrottleKey]:
    """The address, (account, address) and account keys of one attempt (name lowercased)."""
    name = username.lower()[:64]
    return (
        ThrottleKey(ThrottleScope.ADDRESS, "", address),
        ThrottleKey(ThrottleScope.ACCOUNT_ADDRESS, name, address),
        ThrottleKey(ThrottleScope.ACCOUNT, name, ""),
    )


def _count_of(row: LoginThrottle) -> FailureCount | None:
    return FailureCount(row.failures, row.last_failure_at) if row.failures > 0 else None


def _insert_if_missing(session: Session, key: ThrottleKey, now: datetime) -> Executable:
    """INSERT of a zero count for ``key`` that does nothing when the key has a row."""
    values = {
        "scope": key.scope.value,
        "username": key.username,
        "address": key.address,
        "failures": 0,
        "first_failure_at": now,
        "last_failure_at": now,
    }
    keys = ["scope", "username", "address"]
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(LoginThrottle).values(values).on_conflict_do_nothing(index_elements=keys)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(LoginThrottle).values(values).on_conflict_do_nothing(index_elements=keys)


def _lock_throttle_rows(
    session: Session, keys: Iterable[ThrottleKey], now: datetime
) -> dict[ThrottleScope, LoginThrottle]:
    """The rows of these keys (created at zero if missing), locked until the transaction ends.

    Keys are locked in one global order so that concurrent logins cannot deadlock. PostgreSQL
    locks the rows; SQLite's first write here takes the database's write lock.
    """
    rows: dict[ThrottleScope, LoginThrottle] = {}
    for key in sorted(keys):
        session.execute(_insert_if_missing(session, key, now))
        rows[key.scope] = session.scalars(
            select(LoginThrottle)
            .where(
                LoginThrottle.scope == key.scope.value,
                LoginThrottle.username == key.username,
                LoginThrottle.address == key.address,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
    return rows


@dataclass(frozen=True, slots=True)
class _Attempt:
    """A login let through the throttle, already counted as a failure until it succeeds."""

    keys: tuple[ThrottleKey, ...]
    address: str
    started: tuple[tuple[ThrottleScope, FailureCount], ...]  # waits that begin if it fails


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
    rows = _lock_throttle_rows(session, keys, now)
    before = {scope: current_count(_count_of(row), now, policy) for scope, row in rows.items()}
    counts = ThrottleCounts(
        address=before[ThrottleScope.ADDRESS],
        account_address=before[ThrottleScope.ACCOUNT_ADDRESS],
        account=before[ThrottleScope.ACCOUNT],
    )
    wait = login_wait_s(counts, now, policy)
    if wait > 0:
        raise LoginThrottledError(retry_after_s(wait))  # rolls back: nothing is counted
    started: list[tuple[ThrottleScope, FailureCount]] = []
    for scope, row in rows.items():
        after = count_failure(before[scope], now, policy)
        if before[scope] is None:
            row.first_failure_at = now
        row.failures = after.failures
        row.last_failure_at = after.last_failure_at
        if starts_waiting(scope, before[scope], after, policy):
            started.append((scope, after))
    return _Attempt(keys, address, tuple(started))


def _throttle_key_filter(keys: Iterable[ThrottleKey]) -> Any:
    return or_(
        *(
            and_(
                LoginThrottle.scope == key.scope.value,
                LoginThrottle.username == key.username,
                LoginThrottle.address == key.address,
            )
            for key in keys
        )
    )


def forget_idle_throttles(session: Session, now: datetime, policy: ThrottlePolicy) -> None:
    """Delete the counts with no failure for ``policy.forget_after_s`` (they start again)."""
    session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.last_failure_at <= now - timedelta(seconds=policy.forget_after_s)
        )
    )


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
        delay = throttle_delay_s(count.failures, policy.cap_s(scope), policy)
        # A name that is no account may be a password typed into the wrong field: not recorded.
        session.add(
            AuthEvent(
                at=now,
                action="login_throttled",
                actor=None,
                username=account_name or "",
                address=attempt.address,
                detail={"scope": scope.value, "failures": count.failures, "delay_s": delay},
            )
        )
        log.warning(
            "login throttling started: %s after %d failed logins, next try waits %g s",
            scope.value,
            count.failures,
            delay,
            extra={"user": account_name, "address": attempt.address, "scope": scope.value},
        )


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
            user = session.scalar(
                select(User).where(func.lower(User.username) == username.lower()).limit(1)
            )
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
        verify_password(_dummy_hash(), password)  # same cost as a real check
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
    session.execute(delete(LoginThrottle).where(_throttle_key_filter(attempt.keys)))
    return _issue_token(session, user, password, now, api.token_ttl_s)


def _issue_token(
    session: Session, user: User, password: str, now: datetime, ttl_s: int
) -> LoginResult:
    """Record a successful login and store a new token's digest."""
    if _hasher.check_needs_rehash(user.password_hash):
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


# --- throttles for admins -------------------------------------------------------------------


def list_throttles(
    session: Session,
    now: datetime,
    policy: ThrottlePolicy,
    *,
    username: str | None = None,
    address: str | None = None,
    limit: int = 200,
) -> list[LoginThrottle]:
    """The counts still in force, most recent failure first (optionally one name or address)."""
    query = select(LoginThrottle).where(
        LoginThrottle.failures > 0,
        LoginThrottle.last_failure_at > now - timedelta(seconds=policy.forget_after_s),
    )
    if username:
        query = query.where(LoginThrottle.username == username.lower())
    if address:
        query = query.where(LoginThrottle.address == address_key(address))
    query = query.order_by(LoginThrottle.last_failure_at.desc(), LoginThrottle.id.desc())
    return list(session.scalars(query.limit(limit)))


def _account_name(session: Session, username: str) -> str | None:
    """The name of the account called ``username`` (any case), None when there is none."""
    return session.scalar(
        select(User.username).where(func.lower(User.username) == username.lower()).limit(1)
    )


def lift_throttle(
    session: Session, throttle_id: int, actor: str, now: datetime
) -> LoginThrottle | None:
    """Delete one throttle's count (audited); None when there is no such throttle."""
    row = session.get(LoginThrottle, throttle_id)
    if row is None:
        return None
    known = _account_name(session, row.username) if row.username else None
    session.add(
        AuthEvent(
            at=now,
            action="throttle_lifted",
            actor=actor,
            username=known or "",
            address=row.address,
            detail={"scope": row.scope, "failures": row.failures, "throttle_id": row.id},
        )
    )
    session.delete(row)
    log.warning(
        "login throttle lifted: %s after %d failed logins",
        row.scope,
        row.failures,
        extra={"by": actor, "user": known, "address": row.address or None, "scope": row.scope},
    )
    return row


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
