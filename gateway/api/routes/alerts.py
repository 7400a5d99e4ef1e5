"""Alerts: the guard console's list, one alert with its history, and operator actions.

Who sees what: guards, auditors and admins every alert; facilities staff appliance and device
alerts; counsellors the welfare alerts of the students assigned to them. Acting follows seeing,
except that auditors only read. An alert outside the caller's scope answers 404, as if absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import Field
from sqlalchemy import select

from gateway.alerts.lifecycle import InvalidTransition
from gateway.alerts.repository import NotFoundError
from gateway.alerts.scope import EVERYTHING, AlertScope
from gateway.alerts.types import AlertType, SeverityValue
from gateway.alerts.views import AlertDetailView, AlertView, HandoverView
from gateway.api.common import In, PageLimit, RowIdPath, UtcDatetime, conflict, not_found
from gateway.api.deps import ServicesDep, require
from gateway.auth.roles import CurrentUser, Role
from gateway.db.schema import User

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

Reader = Annotated[CurrentUser, require(Role.GUARD, Role.FACILITIES, Role.COUNSELLOR, Role.AUDITOR)]
Actor = Annotated[CurrentUser, require(Role.GUARD, Role.FACILITIES, Role.COUNSELLOR)]

FACILITIES_TYPES = frozenset({AlertType.APPLIANCE_FAULT, AlertType.DEVICE_OFFLINE})
COUNSELLOR_TYPES = frozenset({AlertType.WELFARE})


@contextmanager
def _refusals_answered() -> Iterator[None]:
    """The service's refusals as HTTP answers: 404 absent or out of scope, 409 not allowed now."""
    try:
        yield
    except NotFoundError as exc:
        not_found(str(exc))
    except InvalidTransition as exc:
        conflict(str(exc))


def scope_for(user: CurrentUser) -> AlertScope:
    """The alerts a user may see (and, unless an auditor, act on)."""
    if user.role is Role.FACILITIES:
        return AlertScope(types=FACILITIES_TYPES)
    if user.role is Role.COUNSELLOR:
        return AlertScope(types=COUNSELLOR_TYPES, counsellor=user.username)
    return EVERYTHING


class AssignIn(In):
    assignee: str | None = Field(
        max_length=64, description="username of an active user; null to unassign"
    )


class CommentIn(In):
    text: str = Field(min_length=1, max_length=2000)


@router.get("", response_model=list[AlertView])
def list_alerts(
    user: Reader,
    services: ServicesDep,
    state: Literal["open", "active", "acknowledged", "cleared", "all"] = "open",
    building: Annotated[str | None, Query(max_length=64)] = None,
    alert_type: Annotated[AlertType | None, Query(alias="type")] = None,
    min_severity: Annotated[
        SeverityValue | None, Query(description="info, warning, major, critical or 1-4")
    ] = None,
    since: Annotated[UtcDatetime | None, Query(description="changed at or after this time")] = None,
    limit: PageLimit = 200,
) -> list[AlertView]:
    """Alerts in console order: unacknowledged first, then most severe, then most recent."""
    return services.alerts.list(
        state=state,
        building=building,
        alert_type=alert_type,
        min_severity=min_severity,
        since=since,
        limit=limit,
        scope=scope_for(user),
    )


@router.get("/handover", response_model=HandoverView)
def handover(
    user: Reader,
    services: ServicesDep,
    since: Annotated[
        UtcDatetime | None, Query(description="start of the shift ending now; default 12 h ago")
    ] = None,
) -> HandoverView:
    """Open alerts, alerts nobody reviewed, and alerts cleared since the shift began."""
    start = since or services.clock() - timedelta(hours=12)
    return services.alerts.handover(start, scope=scope_for(user))


@router.get("/{alert_id}", response_model=AlertDetailView)
def get_alert(alert_id: RowIdPath, user: Reader, services: ServicesDep) -> AlertDetailView:
    """One alert with its history and comments."""
    with _refusals_answered():
        return services.alerts.get(alert_id, scope=scope_for(user))


@router.post("/{alert_id}/ack", response_model=AlertView)
def acknowledge(alert_id: RowIdPath, user: Actor, services: ServicesDep) -> AlertView:
    """Acknowledge an active alert (or review one that cleared before anyone saw it)."""
    with _refusals_answered():
        return services.alerts.acknowledge(alert_id, user.username, scope=scope_for(user))


@router.post("/{alert_id}/assign", response_model=AlertView)
def assign(alert_id: RowIdPath, body: AssignIn, user: Actor, services: ServicesDep) -> AlertView:
    """Give an open alert to a user (or to nobody)."""
    if body.assignee is not None:
        with services.sessions() as session:
            known = session.scalar(
                select(User.id).where(User.username == body.assignee, User.active.is_(True))
            )
        if known is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"assignee {body.assignee!r} is not an active user",
            )
    with _refusals_answered():
        return services.alerts.assign(alert_id, user.username, body.assignee, scope=scope_for(user))


@router.post("/{alert_id}/comment", response_model=AlertView)
def comment(alert_id: RowIdPath, body: CommentIn, user: Actor, services: ServicesDep) -> AlertView:
    """Add a note to an alert."""
    try:
        return services.alerts.comment(alert_id, user.username, body.text, scope=scope_for(user))
    except NotFoundError as exc:
        not_found(str(exc))
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


@router.post("/{alert_id}/clear", response_model=AlertView)
def clear(alert_id: RowIdPath, user: Actor, services: ServicesDep) -> AlertView:
    """Close an open alert."""
    with _refusals_answered():
        return services.alerts.clear(alert_id, user.username, scope=scope_for(user))
