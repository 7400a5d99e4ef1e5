"""The shift hand-over and the console's order of alerts (pure).

A guard coming on shift gets every open alert by severity, the alerts that cleared before
anyone acknowledged them (``needs_review``) and the alerts cleared since the shift began.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from contracts.access import require_aware
from gateway.alerts.lifecycle import AlertRecord, AlertState
from gateway.alerts.types import AlertType, Severity


@dataclass(frozen=True, slots=True)
class HandoverSummary:
    """What a guard coming on shift needs to know."""

    generated_at: datetime
    since: datetime
    open_by_severity: dict[Severity, tuple[AlertRecord, ...]]  # most severe first, console order
    open_count: int
    unacknowledged_count: int
    silenced_count: int
    escalated_count: int
    unassigned_count: int
    needs_review: tuple[AlertRecord, ...]  # cleared automatically, never acknowledged
    cleared_since: tuple[AlertRecord, ...]  # cleared at or after ``since``
    oldest_open_age_s: float | None
    by_type: dict[AlertType, int] = field(default_factory=dict)  # open alerts per type


def sort_key(rec: AlertRecord) -> tuple[int, int, float, int]:
    """Console order: unacknowledged first, then most severe, then most recent."""
    if rec.state is AlertState.ACTIVE:
        group = 1 if rec.silenced else 0
    elif rec.needs_review:
        group = 2
    elif rec.state is AlertState.ACKNOWLEDGED:
        group = 3
    else:
        group = 4
    return (group, -int(rec.severity), -rec.last_at.timestamp(), -(rec.id or 0))


def handover(alerts: Iterable[AlertRecord], since: datetime, now: datetime) -> HandoverSummary:
    """Summarise open, unreviewed and recently cleared alerts for a shift hand-over."""
    require_aware(since, "since")
    require_aware(now, "now")
    records = sorted(alerts, key=sort_key)
    open_alerts = [r for r in records if r.is_open]
    by_severity: dict[Severity, tuple[AlertRecord, ...]] = {}
    for severity in sorted(Severity, reverse=True):
        group = tuple(r for r in open_alerts if r.severity is severity)
        if group:
            by_severity[severity] = group
    by_type: dict[AlertType, int] = {}
    for r in open_alerts:
        by_type[r.type] = by_type.get(r.type, 0) + 1
    oldest = min((r.first_at for r in open_alerts), default=None)
    return HandoverSummary(
        generated_at=now,
        since=since,
        open_by_severity=by_severity,
        open_count=len(open_alerts),
        unacknowledged_count=sum(r.state is AlertState.ACTIVE for r in open_alerts),
        silenced_count=sum(r.silenced for r in open_alerts),
        escalated_count=sum(r.escalation_level > 0 for r in open_alerts),
        unassigned_count=sum(r.assignee is None for r in open_alerts),
        needs_review=tuple(r for r in records if r.needs_review),
        cleared_since=tuple(
            r
            for r in records
            if r.state is AlertState.CLEARED and r.cleared_at is not None and r.cleared_at >= since
        ),
        oldest_open_age_s=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
        by_type=by_type,
    )
