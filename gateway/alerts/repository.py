"""Alerts in SQL: rows to domain records and views and back, history, and the queries.

The functions take the caller's session: the service decides where a transaction begins and
ends, and tells the live bus only after it committed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from gateway.alerts.lifecycle import AlertRecord, AlertState
from gateway.alerts.scope import AlertScope, scope_filter
from gateway.alerts.types import AlertType, Severity
from gateway.alerts.views import AlertStats, AlertView, NotificationView
from gateway.attributes import from_attributes
from gateway.db.schema import AlertHistory, AlertRow, NoticeRow

OPEN_STATES = (AlertState.ACTIVE.value, AlertState.ACKNOWLEDGED.value)
COMMENT_ACTION = "comment"

# What the row, the domain record and the view hold under the same name and in the same form;
# the mapping functions below copy these and convert the rest.
_SAME_FIELDS = (
    "originator",
    "site",
    "building",
    "condition_active",
    "count",
    "first_at",
    "last_at",
    "acked_by",
    "acked_at",
    "assignee",
    "cleared_by",
    "cleared_at",
    "escalation_level",
    "escalated_at",
    "silenced",
)


class NotFoundError(LookupError):
    """No such alert or silence (or the caller may not see it)."""


# --- mapping between rows, domain records and views ------------------------------------------


def record_of(row: AlertRow) -> AlertRecord:
    """The domain record of a stored alert."""
    annunciated = (row.extra or {}).get("annunciated_at")
    return AlertRecord(
        id=row.id,
        type=AlertType(row.type),
        severity=Severity(row.severity),
        title=row.title,
        detail=dict(row.detail or {}),
        state=AlertState(row.state),
        annunciated_at=datetime.fromisoformat(annunciated) if annunciated else row.first_at,
        **_same_fields(row),
    )


def store(row: AlertRow, rec: AlertRecord, now: datetime) -> None:
    """Write a domain record into its row (a new row: add it to the session first)."""
    for name, value in _same_fields(rec).items():
        setattr(row, name, value)
    row.type = rec.type.value
    row.severity = int(rec.severity)
    row.title = rec.title[:300]
    row.detail = dict(rec.detail)
    row.state = rec.state.value
    # The schema has no column for the escalation clock: it lives in ``extra``.
    row.extra = {**(row.extra or {}), "annunciated_at": rec.annunciated_at.isoformat()}
    row.updated_at = now


def view_of(row: AlertRow) -> AlertView:
    """The API view of a stored alert."""
    return view_of_record(record_of(row), row.updated_at)


def view_of_record(rec: AlertRecord, updated_at: datetime) -> AlertView:
    """The API view of a stored domain record (one with an id)."""
    assert rec.id is not None
    return from_attributes(
        AlertView,
        rec,
        severity=int(rec.severity),
        severity_name=rec.severity.name.lower(),
        updated_at=updated_at,
    )


def _same_fields(source: AlertRow | AlertRecord) -> dict[str, Any]:
    return {name: getattr(source, name) for name in _SAME_FIELDS}


# --- reads and writes -------------------------------------------------------------------------


def open_row(session: Session, alert_type: AlertType, originator: str) -> AlertRow | None:
    """The open alert of (type, originator), if there is one, locked for this transaction
    (PostgreSQL): a guard's acknowledgement on another replica waits instead of being lost."""
    return session.scalar(
        select(AlertRow)
        .where(
            AlertRow.type == alert_type.value,
            AlertRow.originator == originator,
            AlertRow.state.in_(OPEN_STATES),
        )
        .order_by(AlertRow.id.desc())
        .limit(1)
        .with_for_update()
    )


def row_in_scope(
    session: Session, alert_id: int, scope: AlertScope, *, for_update: bool = False
) -> AlertRow:
    """One alert; NotFoundError when absent or out of the caller's scope. ``for_update`` locks
    it for the transaction (PostgreSQL), so concurrent changes apply one after the other."""
    query = select(AlertRow).where(AlertRow.id == alert_id, scope_filter(scope))
    row = session.scalar(query.with_for_update() if for_update else query)
    if row is None:
        raise NotFoundError(f"no alert {alert_id}")
    return row


def add_history(
    session: Session, alert_id: int, action: str, actor: str | None, text: str, at: datetime
) -> None:
    """One entry in an alert's history (a change, or a comment)."""
    session.add(AlertHistory(alert_id=alert_id, at=at, action=action, actor=actor, text=text))


def notifications(session: Session, alert_id: int) -> list[NotificationView]:
    """An alert's notices (gateway.notify's outbox), oldest first."""
    rows = session.scalars(
        select(NoticeRow).where(NoticeRow.alert_id == alert_id).order_by(NoticeRow.id)
    )
    return [
        from_attributes(
            NotificationView,
            row,
            next_attempt_at=row.next_attempt_at if row.status in ("queued", "retrying") else None,
        )
        for row in rows
    ]


def history(session: Session, alert_id: int) -> list[AlertHistory]:
    """An alert's history, oldest first."""
    return list(
        session.scalars(
            select(AlertHistory)
            .where(AlertHistory.alert_id == alert_id)
            .order_by(AlertHistory.at, AlertHistory.id)
        )
    )


def latest_of_type(session: Session, alert_type: AlertType) -> dict[str, AlertRecord]:
    """The most recent alert (open or cleared) of each originator of one type."""
    newest = (
        select(func.max(AlertRow.id).label("id"))
        .where(AlertRow.type == alert_type.value)
        .group_by(AlertRow.originator)
        .subquery()
    )
    rows = session.scalars(select(AlertRow).join(newest, AlertRow.id == newest.c.id))
    return {row.originator: record_of(row) for row in rows}


def handover_rows(session: Session, since: datetime, scope: AlertScope) -> list[AlertRow]:
    """Open alerts, alerts never reviewed, and alerts cleared since ``since``."""
    needs_review = and_(
        AlertRow.state == AlertState.CLEARED.value,
        AlertRow.cleared_by.is_(None),
        AlertRow.acked_at.is_(None),
    )
    query = select(AlertRow).where(
        scope_filter(scope),
        or_(
            AlertRow.state.in_(OPEN_STATES),
            needs_review,
            and_(AlertRow.state == AlertState.CLEARED.value, AlertRow.cleared_at >= since),
        ),
    )
    return list(session.scalars(query))


def open_counts(session: Session) -> AlertStats:
    """Open alerts per severity and how many nobody acknowledged."""
    by_sev = session.execute(
        select(AlertRow.severity, func.count())
        .where(AlertRow.state.in_(OPEN_STATES))
        .group_by(AlertRow.severity)
    ).all()
    unacked = session.scalar(
        select(func.count()).select_from(AlertRow).where(AlertRow.state == AlertState.ACTIVE.value)
    )
    counts = {sev: 0 for sev in Severity}
    for severity, n in by_sev:
        counts[Severity(severity)] = int(n)
    return AlertStats(counts, int(unacked or 0))


def list_query(
    state: Literal["open", "active", "acknowledged", "cleared", "all"],
    building: str | None,
    alert_type: AlertType | None,
    min_severity: Severity | None,
    since: datetime | None,
    limit: int,
    scope: AlertScope,
) -> Select[AlertRow]:
    """Alerts in console order (unacknowledged, most severe, most recent first)."""
    query = select(AlertRow).where(scope_filter(scope))
    if state == "open":
        query = query.where(AlertRow.state.in_(OPEN_STATES))
    elif state != "all":
        query = query.where(AlertRow.state == state)
    if building is not None:
        query = query.where(AlertRow.building == building)
    if alert_type is not None:
        query = query.where(AlertRow.type == alert_type.value)
    if min_severity is not None:
        query = query.where(AlertRow.severity >= int(min_severity))
    if since is not None:
        query = query.where(AlertRow.updated_at >= since)
    return query.order_by(*_open_first_order()).limit(limit)


def _open_first_order() -> tuple[ColumnElement[Any], ...]:
    """SQL ordering matching handover.sort_key: unacknowledged, severity, most recent."""
    group = case(
        (and_(AlertRow.state == AlertState.ACTIVE.value, AlertRow.silenced.is_(False)), 0),
        (AlertRow.state == AlertState.ACTIVE.value, 1),
        (
            and_(
                AlertRow.state == AlertState.CLEARED.value,
                AlertRow.cleared_by.is_(None),
                AlertRow.acked_at.is_(None),
            ),
            2,
        ),
        (AlertRow.state == AlertState.ACKNOWLEDGED.value, 3),
        else_=4,
    )
    return (group, AlertRow.severity.desc(), AlertRow.last_at.desc(), AlertRow.id.desc())
