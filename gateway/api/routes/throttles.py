"""Login throttles (admin only): which addresses and accounts must wait after failed logins.

Lifting a throttle deletes its count, so the next try from there is free again; it is audited
(``auth_events``). See docs/decisions/0007-login-throttling.md for the three kinds of count.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import Field

from gateway.api.common import Out, PageLimit, RowIdPath, not_found
from gateway.api.deps import ServicesDep, require
from gateway.attributes import from_attributes
from gateway.auth import throttle_store
from gateway.auth.roles import CurrentUser
from gateway.auth.throttle import (
    FailureCount,
    ThrottlePolicy,
    ThrottleScope,
    throttle_delay_s,
    throttle_until,
)
from gateway.db.schema import LoginThrottle

router = APIRouter(prefix="/api/login-throttles", tags=["auth"])

Admin = Annotated[CurrentUser, require()]


class ThrottleOut(Out):
    id: int
    scope: ThrottleScope = Field(
        description="address: every failed login from one source; account_address: one user "
        "name from one source; account: one user name from every source"
    )
    username: str | None = Field(description="the user name tried (lowercased), or null")
    address: str | None = Field(description="the source (an IPv6 source as its /64), or null")
    failures: int
    first_failure_at: datetime
    last_failure_at: datetime
    delay_s: float = Field(description="the wait this count imposes after its last failure")
    until: datetime = Field(
        description="when that wait ends; an account count applies to each source that failed "
        "for the account, from that source's own last failure"
    )
    active: bool = Field(description="the wait has not ended yet")


def _out(row: LoginThrottle, now: datetime, policy: ThrottlePolicy) -> ThrottleOut:
    scope = ThrottleScope(row.scope)
    until = throttle_until(scope, FailureCount(row.failures, row.last_failure_at), policy)
    return from_attributes(
        ThrottleOut,
        row,
        scope=scope,
        username=row.username or None,
        address=row.address or None,
        delay_s=throttle_delay_s(row.failures, policy.cap_s(scope), policy),
        until=until,
        active=until > now,
    )


@router.get("", response_model=list[ThrottleOut])
def list_throttles(
    _admin: Admin,
    services: ServicesDep,
    username: Annotated[str | None, Query(max_length=64)] = None,
    address: Annotated[str | None, Query(max_length=64)] = None,
    limit: PageLimit = 200,
) -> list[ThrottleOut]:
    """Failed-login counts still in force, most recent failure first."""
    now = services.clock()
    policy = ThrottlePolicy.of(services.config.api)
    with services.sessions() as session:
        rows = throttle_store.list_throttles(
            session, now, policy, username=username, address=address, limit=limit
        )
        return [_out(row, now, policy) for row in rows]


@router.delete("/{throttle_id}", status_code=status.HTTP_204_NO_CONTENT)
def lift_throttle(throttle_id: RowIdPath, admin: Admin, services: ServicesDep) -> Response:
    """Lift a throttle: its count is deleted and the next try is free (audited)."""
    with services.sessions.begin() as session:
        now = services.clock()
        if throttle_store.lift_throttle(session, throttle_id, admin.username, now) is None:
            not_found(f"no login throttle with id {throttle_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
