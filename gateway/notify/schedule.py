"""Time-driven notices, run from the gateway's maintenance loop: escalations and digests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerts.lifecycle import AlertState
from gateway.alerts.repository import record_of
from gateway.db.schema import AlertRow
from gateway.notify.config import NotificationsConfig
from gateway.notify.messages import alert_message, digest_message
from gateway.notify.outbox import add_notice
from gateway.notify.routing import PlannedNotice, digest_window, plan_escalations


class NoticeScheduler:
    """Enqueues escalation notices for unacknowledged alerts and the daily digests."""

    def __init__(self, sessions: sessionmaker[Session], config: NotificationsConfig) -> None:
        self._sessions = sessions
        self._config = config

    def tick(self, now: datetime) -> int:
        """Enqueue what is due by ``now``; the number of notices written."""
        if not any(r.escalate_to for r in self._config.routes) and not self._config.digests:
            return 0
        with self._sessions.begin() as session:
            return self._escalations(session, now) + self._digests(session, now)

    def _escalations(self, session: Session, now: datetime) -> int:
        routes = [r for r in self._config.routes if r.escalate_to]
        if not routes:
            return 0
        written = 0
        rows = session.scalars(
            select(AlertRow).where(
                AlertRow.state == AlertState.ACTIVE.value, AlertRow.silenced.is_(False)
            )
        )
        for row in rows:
            rec = record_of(row)
            for plan in plan_escalations(routes, rec, now, self._config.zone):
                message = alert_message("escalation", rec, self._config.zone)
                written += add_notice(session, rec.id, plan, message, now)
        return written

    def _digests(self, session: Session, now: datetime) -> int:
        written = 0
        zone = self._config.zone
        for digest in self._config.digests:
            window = digest_window(now, digest.at_time, zone)
            if window is None:
                continue
            day, start, end = window
            query = select(AlertRow).where(
                AlertRow.type.in_([t.value for t in digest.types]),
                AlertRow.first_at >= start,
                AlertRow.first_at < end,
            )
            if digest.buildings:
                query = query.where(AlertRow.building.in_(digest.buildings))
            records = [record_of(r) for r in session.scalars(query.order_by(AlertRow.first_at))]
            if not records and not digest.send_empty:
                continue
            message = digest_message(digest.name, day, records, zone)
            for channel in digest.channels:
                plan = PlannedNotice(
                    digest.name, channel, "digest", now, f"digest:{digest.name}:{channel}:{day}"
                )
                written += add_notice(session, None, plan, message, now)
        return written
