"""The notices table: written inside the alert's transaction, claimed and marked by the sender.

:class:`Outbox` is the hook ``AlertService`` calls with each transaction's alert changes; it
adds rows only for alerts that match a route, so ingest without routes pays one ``if``.
Claiming is optimistic (``attempts`` must still be what we read), so replicas sharing one
database never send the same attempt twice; a claimed notice is leased (``next_attempt_at``
moves ``lease_s`` ahead) so one whose sender died is retried once the lease runs out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerts.lifecycle import AlertRecord, AlertState
from gateway.db.schema import AlertRow, NoticeRow
from gateway.notify.config import NotificationsConfig
from gateway.notify.messages import Message, alert_message
from gateway.notify.routing import (
    CLEARING_CHANGES,
    SOUNDING_CHANGES,
    PlannedNotice,
    plan_clear,
    plan_sounding,
    route_matches,
)

QUEUED, RETRYING, SENT, FAILED = "queued", "retrying", "sent", "failed"
CANCELLED = "cancelled"  # an escalation whose alert was acknowledged or cleared before it was due
PENDING = (QUEUED, RETRYING)


@dataclass(frozen=True, slots=True)
class ClaimedNotice:
    """A notice the sender holds for one attempt."""

    id: int
    alert_id: int | None
    channel: str
    kind: str
    attempts: int  # including this attempt
    message: Message


def add_notice(
    session: Session,
    alert_id: int | None,
    plan: PlannedNotice,
    message: Message,
    now: datetime,
) -> bool:
    """Write one notice; False when its dedup key is already there (nothing written)."""
    row = NoticeRow(
        alert_id=alert_id,
        route=plan.route,
        channel=plan.channel,
        kind=plan.kind,
        dedup_key=plan.dedup_key,
        payload=message.to_payload(),
        status=QUEUED,
        attempts=0,
        next_attempt_at=plan.due_at,
        created_at=now,
    )
    if plan.dedup_key is None:
        session.add(row)
        return True
    if session.scalar(select(NoticeRow.id).where(NoticeRow.dedup_key == plan.dedup_key)):
        return False
    try:
        with session.begin_nested():  # another replica may have written it meanwhile
            session.add(row)
    except IntegrityError:
        return False
    return True


class Outbox:
    """The in-transaction hook: alert changes in, notice rows out."""

    def __init__(self, config: NotificationsConfig) -> None:
        self._config = config
        self._zone = config.zone

    def __call__(
        self, session: Session, changes: Sequence[tuple[str, AlertRecord]], now: datetime
    ) -> None:
        """Add the notices these changes make (called before the caller's commit)."""
        routes = self._config.routes
        if not routes:
            return
        for change, rec in changes:
            if rec.id is None or not any(route_matches(r, rec) for r in routes):
                continue
            if change in SOUNDING_CHANGES:
                plans = plan_sounding(routes, rec, now, self._zone)
            elif change in CLEARING_CHANGES:
                plans = plan_clear(routes, rec, told_about(session, rec.id), now, self._zone)
            else:
                continue
            for plan in plans:
                add_notice(session, rec.id, plan, alert_message(plan.kind, rec, self._zone), now)


def told_about(session: Session, alert_id: int) -> list[tuple[str, str]]:
    """(route, channel) of the raise and escalation notices of an alert that did not fail."""
    rows = session.execute(
        select(NoticeRow.route, NoticeRow.channel)
        .where(
            NoticeRow.alert_id == alert_id,
            NoticeRow.kind.in_(("raise", "escalation")),
            NoticeRow.status != FAILED,
        )
        .order_by(NoticeRow.id)
    )
    return [(route, channel) for route, channel in rows]


def claim_due(
    sessions: sessionmaker[Session], now: datetime, lease_s: float, limit: int
) -> list[ClaimedNotice]:
    """Take up to ``limit`` due notices for one attempt each (committed before sending).

    An escalation whose alert is no longer active (a guard acknowledged it while the notice
    waited out quiet hours or a retry) is cancelled instead: nobody needs waking any more.
    """
    claimed: list[ClaimedNotice] = []
    with sessions.begin() as session:
        rows = session.execute(
            select(NoticeRow.id, NoticeRow.attempts, NoticeRow.kind, AlertRow.state)
            .outerjoin(AlertRow, AlertRow.id == NoticeRow.alert_id)
            .where(NoticeRow.status.in_(PENDING), NoticeRow.next_attempt_at <= now)
            .order_by(NoticeRow.next_attempt_at, NoticeRow.id)
            .limit(limit)
        ).all()
        for notice_id, attempts, kind, alert_state in rows:
            stale = kind == "escalation" and alert_state != AlertState.ACTIVE.value
            values: dict[str, Any] = (
                {"status": CANCELLED, "last_error": "the alert was acknowledged or cleared"}
                if stale
                else {"attempts": attempts + 1, "next_attempt_at": now + timedelta(seconds=lease_s)}
            )
            result: Any = session.execute(
                update(NoticeRow)
                .where(NoticeRow.id == notice_id, NoticeRow.attempts == attempts)
                .values(**values)
            )
            if stale:
                continue
            if result.rowcount != 1:
                continue  # another replica took it
            row = session.get(NoticeRow, notice_id)
            assert row is not None
            claimed.append(
                ClaimedNotice(
                    id=row.id,
                    alert_id=row.alert_id,
                    channel=row.channel,
                    kind=row.kind,
                    attempts=attempts + 1,
                    message=Message.of_payload(row.payload),
                )
            )
    return claimed


def mark(
    sessions: sessionmaker[Session],
    notice: ClaimedNotice,
    status: str,
    now: datetime,
    *,
    error: str | None = None,
    retry_at: datetime | None = None,
) -> None:
    """Record an attempt's outcome (sent, retrying at ``retry_at``, failed)."""
    values: dict[str, Any] = {"status": status, "last_error": error}
    if status == SENT:
        values["sent_at"] = now
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    with sessions.begin() as session:
        session.execute(
            update(NoticeRow)
            .where(NoticeRow.id == notice.id, NoticeRow.attempts == notice.attempts)
            .values(**values)
        )
