"""The I/O side of the alert lifecycle: SQL persistence, history, silences, live fan-out.

Every decision is made by gateway.domain.lifecycle; this module loads the records it needs,
stores what the domain returns with a history entry, and tells live subscribers (the
WebSocket console) after the transaction committed. ``AlertBus.publish`` may be called from any
thread (the MQTT ingest thread, the maintenance thread, a request worker): it never blocks, and
a subscriber that cannot keep up is dropped with a reason instead of slowing the ingest.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, and_, case, func, or_, select, true
from sqlalchemy.orm import Session, sessionmaker

from gateway.db.schema import AlertHistory, AlertRow, Person, SilenceRow
from gateway.domain import lifecycle
from gateway.domain.alerts import AlertType, Severity, Signal, originator_matches
from gateway.domain.lifecycle import (
    AlertRecord,
    AlertState,
    EscalationPolicy,
    InvalidTransition,
    Silence,
)
from gateway.services import Clock

__all__ = [
    "AlertBus",
    "AlertDetailView",
    "AlertScope",
    "AlertService",
    "AlertView",
    "HandoverView",
    "InvalidTransition",
    "NotFoundError",
    "SilenceView",
]

log = logging.getLogger(__name__)

OPEN_STATES = (AlertState.ACTIVE.value, AlertState.ACKNOWLEDGED.value)
COMMENT_ACTION = "comment"


class NotFoundError(LookupError):
    """No such alert or silence (or the caller may not see it)."""


# --- views ------------------------------------------------------------------------------------


class AlertView(BaseModel):
    """One alert as the API and the WebSocket show it."""

    id: int
    type: AlertType
    originator: str
    site: str
    building: str
    severity: int = Field(description="1 info, 2 warning, 3 major, 4 critical")
    severity_name: str
    title: str
    detail: dict[str, Any]
    state: AlertState
    condition_active: bool = Field(description="the condition still holds (momentary: false)")
    count: int
    first_at: datetime
    last_at: datetime
    annunciated_at: datetime
    acked_by: str | None
    acked_at: datetime | None
    assignee: str | None
    cleared_by: str | None = Field(description="null on a cleared alert: cleared automatically")
    cleared_at: datetime | None
    escalation_level: int
    escalated_at: datetime | None
    silenced: bool
    needs_review: bool = Field(description="cleared before anyone acknowledged it")
    updated_at: datetime


class HistoryEntry(BaseModel):
    at: datetime
    action: str
    actor: str | None
    text: str


class CommentView(BaseModel):
    at: datetime
    author: str
    text: str


class AlertDetailView(AlertView):
    history: list[HistoryEntry] = Field(description="every change, oldest first")
    comments: list[CommentView] = Field(description="guards' notes, oldest first")


class SilenceView(BaseModel):
    id: int
    originator: str
    types: list[AlertType]
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime
    active: bool


class HandoverView(BaseModel):
    """What a guard coming on shift needs to know."""

    generated_at: datetime
    since: datetime
    open_count: int
    unacknowledged_count: int
    silenced_count: int
    escalated_count: int
    unassigned_count: int
    oldest_open_age_s: float | None
    open_by_severity: dict[str, list[AlertView]] = Field(description="most severe first")
    needs_review: list[AlertView]
    cleared_since: list[AlertView]
    by_type: dict[str, int]


@dataclass(frozen=True, slots=True)
class AlertScope:
    """Which alerts a caller may see and act on.

    ``types`` None means every type; ``counsellor`` limits welfare alerts to the people whose
    counsellor that username is.
    """

    types: frozenset[AlertType] | None = None
    counsellor: str | None = None

    def admits_type(self, alert_type: AlertType) -> bool:
        """Whether alerts of this type are in scope at all."""
        return self.types is None or alert_type in self.types


EVERYTHING = AlertScope()


@dataclass(frozen=True, slots=True)
class AlertStats:
    """Open alerts for /metrics."""

    open_by_severity: dict[Severity, int]
    unacknowledged: int


# --- live fan-out ----------------------------------------------------------------------------


class Overflow:
    """Put in a subscriber's queue when it fell too far behind; the reader closes with reason."""

    reason = "too slow: more than the queued alert changes were pending; reconnect"


OVERFLOW = Overflow()


@dataclass(eq=False, slots=True)
class _Subscriber:
    queue: asyncio.Queue[dict[str, Any] | Overflow]
    loop: asyncio.AbstractEventLoop
    dropped: bool = False


class AlertBus:
    """Thread-safe fan-out of alert changes to asyncio subscribers (one queue each)."""

    def __init__(self, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._subscribers: dict[int, _Subscriber] = {}
        self._lock = threading.Lock()

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | Overflow]:
        """A bounded queue of change messages, bound to the running event loop."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | Overflow] = asyncio.Queue(self._queue_size + 1)
        with self._lock:
            self._subscribers[id(queue)] = _Subscriber(queue, loop)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | Overflow]) -> None:
        """Stop delivering to this queue (idempotent)."""
        with self._lock:
            self._subscribers.pop(id(queue), None)

    @property
    def subscribers(self) -> int:
        """How many queues are subscribed."""
        with self._lock:
            return len(self._subscribers)

    def publish(self, message: dict[str, Any]) -> None:
        """Hand one message to every subscriber; callable from any thread, never blocks."""
        with self._lock:
            subscribers = list(self._subscribers.values())
        for sub in subscribers:
            try:
                sub.loop.call_soon_threadsafe(self._deliver, sub, message)
            except RuntimeError:  # the subscriber's loop is closed: it is gone
                self.unsubscribe(sub.queue)

    def _deliver(self, sub: _Subscriber, message: dict[str, Any]) -> None:
        """Runs in the subscriber's loop."""
        if sub.dropped:
            return
        if sub.queue.qsize() < self._queue_size:
            sub.queue.put_nowait(message)
            return
        # One slot is kept free for the overflow marker, so this never raises QueueFull.
        sub.dropped = True
        self.unsubscribe(sub.queue)
        sub.queue.put_nowait(OVERFLOW)
        log.warning("alert subscriber dropped: %d changes pending", self._queue_size)


def alert_message(view: AlertView) -> dict[str, Any]:
    """The WebSocket message of one alert change."""
    return {"type": "alert", "alert": view.model_dump(mode="json")}


# --- mapping between rows, domain records and views ------------------------------------------


def _record(row: AlertRow) -> AlertRecord:
    annunciated = (row.extra or {}).get("annunciated_at")
    return AlertRecord(
        id=row.id,
        type=AlertType(row.type),
        originator=row.originator,
        site=row.site,
        building=row.building,
        severity=Severity(row.severity),
        title=row.title,
        detail=dict(row.detail or {}),
        state=AlertState(row.state),
        condition_active=row.condition_active,
        count=row.count,
        first_at=row.first_at,
        last_at=row.last_at,
        annunciated_at=datetime.fromisoformat(annunciated) if annunciated else row.first_at,
        acked_by=row.acked_by,
        acked_at=row.acked_at,
        assignee=row.assignee,
        cleared_by=row.cleared_by,
        cleared_at=row.cleared_at,
        escalation_level=row.escalation_level,
        escalated_at=row.escalated_at,
        silenced=row.silenced,
    )


def _store(row: AlertRow, rec: AlertRecord, now: datetime) -> None:
    row.type = rec.type.value
    row.originator = rec.originator
    row.site = rec.site
    row.building = rec.building
    row.severity = int(rec.severity)
    row.title = rec.title[:300]
    row.detail = dict(rec.detail)
    row.state = rec.state.value
    row.condition_active = rec.condition_active
    row.count = rec.count
    row.first_at = rec.first_at
    row.last_at = rec.last_at
    # The schema has no column for the escalation clock: it lives in ``extra``.
    row.extra = {**(row.extra or {}), "annunciated_at": rec.annunciated_at.isoformat()}
    row.acked_by = rec.acked_by
    row.acked_at = rec.acked_at
    row.assignee = rec.assignee
    row.cleared_by = rec.cleared_by
    row.cleared_at = rec.cleared_at
    row.escalation_level = rec.escalation_level
    row.escalated_at = rec.escalated_at
    row.silenced = rec.silenced
    row.updated_at = now


def _view(row: AlertRow) -> AlertView:
    return _view_of_record(_record(row), row.updated_at)


def _view_of_record(rec: AlertRecord, updated_at: datetime) -> AlertView:
    assert rec.id is not None
    return AlertView(
        id=rec.id,
        type=rec.type,
        originator=rec.originator,
        site=rec.site,
        building=rec.building,
        severity=int(rec.severity),
        severity_name=rec.severity.name.lower(),
        title=rec.title,
        detail=rec.detail,
        state=rec.state,
        condition_active=rec.condition_active,
        count=rec.count,
        first_at=rec.first_at,
        last_at=rec.last_at,
        annunciated_at=rec.annunciated_at,
        acked_by=rec.acked_by,
        acked_at=rec.acked_at,
        assignee=rec.assignee,
        cleared_by=rec.cleared_by,
        cleared_at=rec.cleared_at,
        escalation_level=rec.escalation_level,
        escalated_at=rec.escalated_at,
        silenced=rec.silenced,
        needs_review=rec.needs_review,
        updated_at=updated_at,
    )


def _silence(row: SilenceRow) -> Silence:
    return Silence(
        originator=row.originator,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        reason=row.reason,
        created_by=row.created_by,
        types=frozenset(AlertType(t) for t in row.types or []),
        id=row.id,
    )


def _silence_view(row: SilenceRow, now: datetime) -> SilenceView:
    return SilenceView(
        id=row.id,
        originator=row.originator,
        types=[AlertType(t) for t in row.types or []],
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
        active=row.starts_at <= now < row.ends_at,
    )


def _open_first_order() -> tuple[ColumnElement[Any], ...]:
    """SQL ordering matching lifecycle.sort_key: unacknowledged, severity, most recent."""
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


def _scope_filter(scope: AlertScope) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    if scope.types is not None:
        clauses.append(AlertRow.type.in_(sorted(t.value for t in scope.types)))
    if scope.counsellor is not None:
        mine = select(Person.person_id).where(Person.counsellor == scope.counsellor)
        clauses.append(
            and_(
                AlertRow.type == AlertType.WELFARE.value,
                AlertRow.detail["person_id"].as_string().in_(mine),
            )
        )
    return and_(true(), *clauses)


# --- the service ---------------------------------------------------------------------------


class AlertService:
    """Applies rule signals and operator actions to stored alerts, and tells subscribers."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        escalation: EscalationPolicy,
        *,
        bus: AlertBus | None = None,
    ) -> None:
        self._sessions = sessions
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
        silences = self._silences_between(session, earliest, latest)
        changed: dict[int, AlertView] = {}
        for signal in signals:
            row = session.scalar(
                select(AlertRow)
                .where(
                    AlertRow.type == signal.type.value,
                    AlertRow.originator == signal.originator,
                    AlertRow.state.in_(OPEN_STATES),
                )
                .order_by(AlertRow.id.desc())
                .limit(1)
            )
            before = _record(row) if row is not None else None
            after = lifecycle.apply_signal(before, signal, silences, now)
            if after is None:
                continue
            if row is None or before is None or after.id != before.id:
                row = AlertRow()
                session.add(row)
            _store(row, after, now)
            session.flush()
            change = lifecycle.signal_change(before, replace(after, id=row.id))
            self._history(session, row.id, change.value, None, signal.title, now)
            changed.pop(row.id, None)  # keep the order of the latest change
            changed[row.id] = _view(row)
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
            newest = (
                select(func.max(AlertRow.id).label("id"))
                .where(AlertRow.type == alert_type.value)
                .group_by(AlertRow.originator)
                .subquery()
            )
            rows = session.scalars(select(AlertRow).join(newest, AlertRow.id == newest.c.id))
            return {row.originator: _record(row) for row in rows}

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
            row = self._row(session, alert_id, scope)
            note = lifecycle.make_comment(alert_id, user, text, now)
            self._history(session, row.id, COMMENT_ACTION, note.author, note.text, now)
            row.updated_at = now
            view = _view(row)
        self.broadcast([view])
        return view

    # --- reading --------------------------------------------------------------------------

    def get(self, alert_id: int, *, scope: AlertScope = EVERYTHING) -> AlertDetailView:
        """One alert with its history and comments; NotFoundError when absent or out of scope."""
        with self._sessions() as session:
            row = self._row(session, alert_id, scope)
            entries = list(
                session.scalars(
                    select(AlertHistory)
                    .where(AlertHistory.alert_id == alert_id)
                    .order_by(AlertHistory.at, AlertHistory.id)
                )
            )
            view = _view(row)
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
        )

    def handover(self, since: datetime, *, scope: AlertScope = EVERYTHING) -> HandoverView:
        """Open alerts, alerts never reviewed, and alerts cleared since ``since``."""
        now = self._clock()
        needs_review = and_(
            AlertRow.state == AlertState.CLEARED.value,
            AlertRow.cleared_by.is_(None),
            AlertRow.acked_at.is_(None),
        )
        query = select(AlertRow).where(
            _scope_filter(scope),
            or_(
                AlertRow.state.in_(OPEN_STATES),
                needs_review,
                and_(AlertRow.state == AlertState.CLEARED.value, AlertRow.cleared_at >= since),
            ),
        )
        with self._sessions() as session:
            rows = list(session.scalars(query))
        updated = {row.id: row.updated_at for row in rows}
        summary = lifecycle.handover([_record(r) for r in rows], since, now)

        def views(records: Iterable[AlertRecord]) -> list[AlertView]:
            return [_view_of_record(r, updated[r.id or 0]) for r in records]

        return HandoverView(
            generated_at=summary.generated_at,
            since=summary.since,
            open_count=summary.open_count,
            unacknowledged_count=summary.unacknowledged_count,
            silenced_count=summary.silenced_count,
            escalated_count=summary.escalated_count,
            unassigned_count=summary.unassigned_count,
            oldest_open_age_s=summary.oldest_open_age_s,
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
            by_sev = session.execute(
                select(AlertRow.severity, func.count())
                .where(AlertRow.state.in_(OPEN_STATES))
                .group_by(AlertRow.severity)
            ).all()
            unacked = session.scalar(
                select(func.count())
                .select_from(AlertRow)
                .where(AlertRow.state == AlertState.ACTIVE.value)
            )
        counts = {sev: 0 for sev in Severity}
        for severity, n in by_sev:
            counts[Severity(severity)] = int(n)
        return AlertStats(counts, int(unacked or 0))

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
            row = SilenceRow(
                originator=silence.originator,
                types=sorted(t.value for t in silence.types),
                starts_at=silence.starts_at,
                ends_at=silence.ends_at,
                reason=silence.reason[:300],
                created_by=user,
                created_at=now,
            )
            session.add(row)
            session.flush()
            view = _silence_view(row, now)
            changed = self._refresh_silences(session, now)
        log.info("silence %d on %s until %s by %s", view.id, originator, ends_at, user)
        self.broadcast(changed)
        return view

    def list_silences(self, *, include_past: bool = False) -> list[SilenceView]:
        """Current and future silences (and past ones when asked), newest end first."""
        now = self._clock()
        query = select(SilenceRow).order_by(SilenceRow.ends_at.desc(), SilenceRow.id.desc())
        if not include_past:
            query = query.where(SilenceRow.ends_at > now)
        with self._sessions() as session:
            return [_silence_view(row, now) for row in session.scalars(query)]

    def get_silence(self, silence_id: int) -> SilenceView:
        """One silence; NotFoundError when there is none."""
        with self._sessions() as session:
            row = session.get(SilenceRow, silence_id)
            if row is None:
                raise NotFoundError(f"no silence {silence_id}")
            return _silence_view(row, self._clock())

    def end_silence(self, silence_id: int, user: str) -> SilenceView:
        """End a silence now (one that has not started yet is deleted); alerts re-sound."""
        now = self._clock()
        with self._sessions.begin() as session:
            row = session.get(SilenceRow, silence_id)
            if row is None:
                raise NotFoundError(f"no silence {silence_id}")
            if row.starts_at > now:
                view = _silence_view(row, now)
                session.delete(row)
            else:
                row.ends_at = min(row.ends_at, now)
                view = _silence_view(row, now)
            session.flush()
            changed = self._refresh_silences(session, now)
        log.info("silence %d ended by %s", silence_id, user)
        self.broadcast(changed)
        return view

    # --- time -----------------------------------------------------------------------------

    def escalate_due(self) -> list[AlertView]:
        """Re-evaluate silences that ended and escalate alerts unacknowledged for too long."""
        now = self._clock()
        with self._sessions.begin() as session:
            changed = {v.id: v for v in self._refresh_silences(session, now)}
            rows = session.scalars(
                select(AlertRow).where(AlertRow.state == AlertState.ACTIVE.value)
            )
            for row in rows:
                after = lifecycle.escalate(_record(row), self._escalation, now)
                if after is None:
                    continue
                _store(row, after, now)
                self._history(
                    session, row.id, "escalated", None, f"level {after.escalation_level}", now
                )
                changed[row.id] = _view(row)
        views = list(changed.values())
        if views:
            log.warning("%d alert(s) escalated or re-sounding", len(views))
        self.broadcast(views)
        return views

    # --- internals ------------------------------------------------------------------------

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
            row = self._row(session, alert_id, scope)
            after: AlertRecord = transition(_record(row), now)
            _store(row, after, now)
            self._history(session, row.id, action, user, text, now)
            view = _view(row)
        self.broadcast([view])
        return view

    @staticmethod
    def _row(session: Session, alert_id: int, scope: AlertScope) -> AlertRow:
        row = session.scalar(select(AlertRow).where(AlertRow.id == alert_id, _scope_filter(scope)))
        if row is None:
            raise NotFoundError(f"no alert {alert_id}")
        return row

    @staticmethod
    def _history(
        session: Session, alert_id: int, action: str, actor: str | None, text: str, at: datetime
    ) -> None:
        session.add(AlertHistory(alert_id=alert_id, at=at, action=action, actor=actor, text=text))

    @staticmethod
    def _silences_between(session: Session, start: datetime, end: datetime) -> list[Silence]:
        rows = session.scalars(
            select(SilenceRow).where(SilenceRow.starts_at <= end, SilenceRow.ends_at > start)
        )
        return [_silence(r) for r in rows]

    def _refresh_silences(self, session: Session, now: datetime) -> list[AlertView]:
        """Silence or unsilence open alerts according to the silences in force now."""
        silences = self._silences_between(session, now, now)
        query = select(AlertRow).where(AlertRow.state.in_(OPEN_STATES))
        if not silences:
            query = query.where(AlertRow.silenced.is_(True))
        candidates = session.scalars(query)
        changed: list[AlertView] = []
        for row in candidates:
            rec = _record(row)
            if not row.silenced and not any(
                originator_matches(s.originator, rec.originator) for s in silences
            ):
                continue
            after = lifecycle.refresh_silence(rec, silences, now)
            if after is None:
                continue
            _store(row, after, now)
            action = "silenced" if after.silenced else "unsilenced"
            self._history(session, row.id, action, None, "", now)
            changed.append(_view(row))
        return changed

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
        query = select(AlertRow).where(_scope_filter(scope))
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
        query = query.order_by(*_open_first_order()).limit(limit)
        with self._sessions() as session:
            return [_view(row) for row in session.scalars(query)]
