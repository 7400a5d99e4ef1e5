"""Login throttle counts in the database (``login_throttles``), shared by every gateway on it.

A login locks its three counts for its transaction; idle counts are forgotten; admins list
them and lift one (audited in ``auth_events``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Executable

from gateway.auth.addresses import address_key
from gateway.auth.throttle import FailureCount, ThrottlePolicy, ThrottleScope
from gateway.auth.users import account_name
from gateway.db.bulk import conflict_insert
from gateway.db.schema import AuthEvent, LoginThrottle

log = logging.getLogger(__name__)


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


def count_of(row: LoginThrottle) -> FailureCount | None:
    """A row's count; None when it holds no failure."""
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
    stmt: Executable = (
        conflict_insert(session, LoginThrottle)
        .values(values)
        .on_conflict_do_nothing(index_elements=keys)
    )
    return stmt


def lock_throttle_rows(
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
            .where(_is_key(key))
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
    return rows


def forget_throttles(session: Session, keys: Iterable[ThrottleKey]) -> None:
    """Delete the counts of these keys (a login succeeded)."""
    session.execute(delete(LoginThrottle).where(or_(*(_is_key(key) for key in keys))))


def _is_key(key: ThrottleKey) -> ColumnElement[bool]:
    """Matches the row of one key."""
    return and_(
        LoginThrottle.scope == key.scope.value,
        LoginThrottle.username == key.username,
        LoginThrottle.address == key.address,
    )


def forget_idle_throttles(session: Session, now: datetime, policy: ThrottlePolicy) -> None:
    """Delete the counts with no failure for ``policy.forget_after_s`` (they start again)."""
    session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.last_failure_at <= now - timedelta(seconds=policy.forget_after_s)
        )
    )


def audit_throttle(
    session: Session,
    action: str,
    now: datetime,
    actor: str | None,
    username: str,
    address: str,
    detail: dict[str, Any],
) -> None:
    """Record a throttle starting or being lifted in the auth audit trail (``auth_events``)."""
    session.add(
        AuthEvent(
            at=now, action=action, actor=actor, username=username, address=address, detail=detail
        )
    )


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


def lift_throttle(
    session: Session, throttle_id: int, actor: str, now: datetime
) -> LoginThrottle | None:
    """Delete one throttle's count (audited); None when there is no such throttle."""
    row = session.get(LoginThrottle, throttle_id)
    if row is None:
        return None
    known = account_name(session, row.username) if row.username else None
    audit_throttle(
        session,
        "throttle_lifted",
        now,
        actor,
        known or "",
        row.address,
        {"scope": row.scope, "failures": row.failures, "throttle_id": row.id},
    )
    session.delete(row)
    log.warning(
        "login throttle lifted: %s after %d failed logins",
        row.scope,
        row.failures,
        extra={"by": actor, "user": known, "address": row.address or None, "scope": row.scope},
    )
    return row
