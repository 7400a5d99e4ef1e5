"""AlertService: rule signals and operator actions applied to stored alerts, then announced.

Every decision is made by gateway.alerts.lifecycle; the service loads the records it needs
(gateway.alerts.repository, gateway.alerts.silences), stores what the lifecycle returns with a
history entry, and tells the live bus (gateway.alerts.bus) and its listeners after the
transaction committed.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Literal, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerts import lifecycle, repository, silences
from gateway.alerts.bus import AlertBus, alert_message
from gateway.alerts.handover import handover as summarise_shift
from gateway.alerts.lifecycle import AlertRecord, AlertState, EscalationPolicy, Silence
from gateway.alerts.repository import COMMENT_ACTION, view_of, view_of_record
from gateway.alerts.scope import EVERYTHING, AlertScope
from gateway.alerts.types import AlertType, Severity, Signal
from gateway.alerts.views import (
    AlertDetailView,
    AlertStats,
    AlertView,
    CommentView,
    HandoverView,
    HistoryEntry,
    SilenceView,
)
from gateway.attributes import from_attributes
from gateway.db.schema import AlertRow
from gateway.ports import Clock

log = logging.getLogger(__name__)


class ChangeHook(Protocol):
    """Called inside the transaction with each changed alert and the change's name (the
    lifecycle's ``AlertChange`` or the operator action), before the commit."""

    def __call__(
        self, session: Session, changes: Sequence[tuple[str, AlertRecord]], now: datetime
    ) -> None: ...


class AlertService:
    """Applies rule signals and operator actions to stored alerts, and tells subscribers."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        escalation: EscalationPolicy,
        *,
        bus: AlertBus | None = None,
        in_transaction: ChangeHook | None = None,
    ) -> None:
        self._sessions = sessions
        # Writes what must commit with the change (the notifications outbox: gateway.notify).
        self._in_transaction = in_transaction
        self._clock = clock
        self._escalation = escalation
        self.bus = bus if bus is not None else AlertBus()
        # Called with each committed batch of changed alerts (e.g. the time-series writer).
        self.listeners: list[Callable[[list[AlertView]], None]] = []

    # --- rule signals ---------------------------------------------------------------------

    def apply(self, signals: Sequence[Signal]) -> list[AlertView]:
        """Apply signals in one transaction, then broadcast the changes; the changed alerts."""
        if not signals:
            return []
        with self._sessions.begin() as session:
            views = self.apply_in(session, signals)
        self.broadcast(views)
        return views

    def apply_in(self, session: Session, signals: Sequence[Signal]) -> list[AlertView]:
        """Apply signals inside the caller's transaction; the caller broadcasts after commit."""
        if not signals:
            return []
        now = self._clock()
        earliest = min(s.at for s in signals)
        latest = max(s.at for s in signals)
        in_force = silences.silences_between(session, earliest, latest)
        changed: dict[int, AlertView] = {}
        changes: list[tuple[str, AlertRecord]] = []
        for signal in signals:
            row = repository.open_row(session, signal.type, signal.originator)
            before = repository.record_of(row) if row is not None else None
            after = lifecycle.apply_signal(before, signal, in_force, now)
            if after is None:
                continue
            if row is None or before is None or after.id != before.id:
                row = AlertRow()
                session.add(row)
            repository.store(row, after, now)
            session.flush()
            stored = replace(after, id=row.id)
            change = lifecycle.signal_change(before, stored)
            repository.add_history(session, row.id, change.value, None, signal.title, now)
            changes.append((change.value, stored))
            changed.pop(row.id, None)  # keep the order of the latest change
            changed[row.id] = view_of(row)
        if self._in_transaction is not None and changes:
            self._in_transaction(session, changes, now)
        return list(changed.values())

    def broadcast(self, views: Iterable[AlertView]) -> None:
        """Tell live subscribers and listeners about changed alerts (call after the commit)."""
        views = list(views)
        for view in views:
            self.bus.publish(alert_message(view))
        for listener in self.listeners:
            try:
                listener(views)
            except Exception:  # a listener (time series) must never break the alert path
                log.exception("alert listener failed")

    def latest_of_type(self, alert_type: AlertType) -> dict[str, AlertRecord]:
        """The most recent alert (open or cleared) of each originator of one type."""
        with self._sessions() as session:
            return repository.latest_of_type(session, alert_type)

    # --- operator actions -------------------------------------------------------------------

    def acknowledge(self, alert_id: int, user: str, *, scope: AlertScope = EVERYTHING) -> AlertView:
        """A guard takes an alert; InvalidTransition when it is not active (or unreviewed)."""

        def transition(rec: AlertRecord, now: datetime) -> AlertRecord:
            return lifecycle.acknowledge(rec, user, now)

        return self._act(alert_id, scope, user, "acknowledged", "", transition)

    def assign(
        self,
        alert_id: int,
        user: str,
        assignee: str | None,
        *,
        scope: AlertScope = EVERYTHING,
    ) -> AlertView:
        """Give an open alert to someone (None: unassign)."""

        def transition(rec: AlertRecord, now: datetime) -> AlertRecord:
            return lifecycle.assign(rec, user, assignee, now)

        text = f"assigned to {assignee}" if assignee else "unassigned"
        return self._act(alert_id, scope, user, "assigned", text, transition)

    def clear(self, alert_id: int, user: str, *, scope: AlertScope = EVERYTHING) -> AlertView:
        """A guard closes an open alert."""

        def transition(rec: AlertRecord, now: datetime) -> AlertRecord:
            return lifecycle.clear(rec, user, now)

        return self._act(alert_id, scope, user, "cleared", "", transition)

    def comment(
        self, alert_id: int, user: str, text: str, *, scope: AlertScope = EVERYTHING
    ) -> AlertView:
        """Add a note to an alert (open or cleared); ValueError for an empty or long one."""
        now = self._clock()
        with self._sessions.begin() as session:
            row = repository.row_in_scope(session, alert_id, scope, for_update=True)
            note = lifecycle.make_comment(alert_id, user, text, now)
            repository.add_history(session, row.id, COMMENT_ACTION, note.author, note.text, now)
            row.updated_at = now
            view = view_of(row)
        self.broadcast([view])
        return view

    # --- reading --------------------------------------------------------------------------

    def get(self, alert_id: int, *, scope: AlertScope = EVERYTHING) -> AlertDetailView:
        """One alert with its history and comments; NotFoundError when absent or out of scope."""
        with self._sessions() as session:
            row = repository.row_in_scope(session, alert_id, scope)
            entries = repository.history(session, alert_id)
            notices = repository.notifications(session, alert_id)
            view = view_of(row)
        return AlertDetailView(
            **view.model_dump(),
            history=[
                HistoryEntry(at=e.at, action=e.action, actor=e.actor, text=e.text) for e in entries
            ],
            comments=[
                CommentView(at=e.at, author=e.actor or "", text=e.text)
                for e in entries
                if e.action == COMMENT_ACTION
            ],
            notifications=notices,
        )

    def handover(self, since: datetime, *, scope: AlertScope = EVERYTHING) -> HandoverView:
        """Open alerts, alerts never reviewed, and alerts cleared since ``since``."""
        now = self._clock()
        with self._sessions() as session:
            rows = repository.handover_rows(session, since, scope)
        updated = {row.id: row.updated_at for row in rows}
        summary = summarise_shift([repository.record_of(r) for r in rows], since, now)

        def views(records: Iterable[AlertRecord]) -> list[AlertView]:
            return [view_of_record(r, updated[r.id or 0]) for r in records]

        return from_attributes(
            HandoverView,
            summary,
            open_by_severity={
                sev.name.lower(): views(recs) for sev, recs in summary.open_by_severity.items()
            },
            needs_review=views(summary.needs_review),
            cleared_since=views(summary.cleared_since),
            by_type={t.value: n for t, n in summary.by_type.items()},
        )

    def stats(self) -> AlertStats:
        """Open alerts per severity and how many nobody acknowledged (for /metrics)."""
        with self._sessions() as session:
            return repository.open_counts(session)

    def list(
        self,
        *,
        state: Literal["open", "active", "acknowledged", "cleared", "all"] = "open",
        building: str | None = None,
        alert_type: AlertType | None = None,
        min_severity: Severity | None = None,
        since: datetime | None = None,
        limit: int = 200,
        scope: AlertScope = EVERYTHING,
    ) -> builtins.list[AlertView]:
        """Alerts in console order (unacknowledged, most severe, most recent first).

        ``since`` keeps alerts changed (raised, repeated, acknowledged, ...) at or after it.
        """
        query = repository.list_query(
            state, building, alert_type, min_severity, since, limit, scope
        )
        with self._sessions() as session:
            return [view_of(row) for row in session.scalars(query)]

    # --- silences -------------------------------------------------------------------------

    def create_silence(
        self,
        originator: str,
        types: Iterable[AlertType],
        starts_at: datetime,
        ends_at: datetime,
        reason: str,
        user: str,
    ) -> SilenceView:
        """A maintenance window; open alerts it covers now are silenced at once.

        ValueError (from the domain) when the window or its fields make no sense.
        """
        now = self._clock()
        silence = Silence(
            originator=originator.strip(),
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason.strip(),
            created_by=user,
            types=frozenset(types),
        )
        if silence.ends_at <= now:
            raise ValueError("the silence would already be over: ends_at is in the past")
        with self._sessions.begin() as session:
            row = silences.add_silence(session, silence, now)
            view = silences.silence_view(row, now)
            changed = self._refresh_silences(session, now)
        log.info("silence %d on %s until %s by %s", view.id, originator, ends_at, user)
        self.broadcast(changed)
        return view

    def list_silences(self, *, include_past: bool = False) -> builtins.list[SilenceView]:
        """Current and future silences (and past ones when asked), newest end first."""
        now = self._clock()
        with self._sessions() as session:
            rows = silences.list_rows(session, now, include_past=include_past)
            return [silences.silence_view(row, now) for row in rows]

    def get_silence(self, silence_id: int) -> SilenceView:
        """One silence; NotFoundError when there is none."""
        with self._sessions() as session:
            return silences.silence_view(silences.silence_row(session, silence_id), self._clock())

    def end_silence(self, silence_id: int, user: str) -> SilenceView:
        """End a silence now (one that has not started yet is deleted); alerts re-sound."""
        now = self._clock()
        with self._sessions.begin() as session:
            row = silences.silence_row(session, silence_id)
            if row.starts_at > now:
                view = silences.silence_view(row, now)
                session.delete(row)
            else:
                row.ends_at = min(row.ends_at, now)
                view = silences.silence_view(row, now)
            session.flush()
            changed = self._refresh_silences(session, now)
        log.info("silence %d ended by %s", silence_id, user)
        self.broadcast(changed)
        return view

    # --- time -----------------------------------------------------------------------------

    def escalate_due(self) -> builtins.list[AlertView]:
        """Re-evaluate silences that ended and escalate alerts unacknowledged for too long."""
        now = self._clock()
        with self._sessions.begin() as session:
            changed = {v.id: v for v in self._refresh_silences(session, now)}
            rows = session.scalars(
                select(AlertRow).where(AlertRow.state == AlertState.ACTIVE.value).with_for_update()
            )
            for row in rows:
                after = lifecycle.escalate(repository.record_of(row), self._escalation, now)
                if after is None:
                    continue
                repository.store(row, after, now)
                repository.add_history(
                    session, row.id, "escalated", None, f"level {after.escalation_level}", now
                )
                changed[row.id] = view_of(row)
        views = list(changed.values())
        if views:
            log.warning("%d alert(s) escalated or re-sounding", len(views))
        self.broadcast(views)
        return views

    # --- internals ------------------------------------------------------------------------

    def _refresh_silences(self, session: Session, now: datetime) -> builtins.list[AlertView]:
        """Silences in force now applied to open alerts; an alert that sounds again notifies."""
        changes: builtins.list[tuple[str, AlertRecord]] = []
        views = silences.refresh_open_alerts(session, now, changes)
        if self._in_transaction is not None and changes:
            self._in_transaction(session, changes, now)
        return views

    def _act(
        self,
        alert_id: int,
        scope: AlertScope,
        user: str,
        action: str,
        text: str,
        transition: Callable[[AlertRecord, datetime], AlertRecord],
    ) -> AlertView:
        now = self._clock()
        with self._sessions.begin() as session:
            row = repository.row_in_scope(session, alert_id, scope, for_update=True)
            after: AlertRecord = transition(repository.record_of(row), now)
            repository.store(row, after, now)
            repository.add_history(session, row.id, action, user, text, now)
            if self._in_transaction is not None:
                self._in_transaction(session, [(action, after)], now)
            view = view_of(row)
        self.broadcast([view])
        return view
