"""Which notices an alert change makes, and when they are due (pure: time is an argument).

Routes match alert types, a minimum severity and buildings. A raise goes to the route's
``channels``; while the alert stays active and unacknowledged, every ``escalate_after_min`` one
more of ``escalate_to`` is told. In a route's quiet hours a notice waits until they end (a
critical alert goes at once when ``critical_overrides``). Failed sends back off exponentially.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Literal

from gateway.alerts.lifecycle import AlertRecord
from gateway.alerts.types import Severity
from gateway.notify.config import QuietHours, RetryPolicy, RouteConfig

NoticeKind = Literal["raise", "escalation", "clear", "digest", "watch"]

# The lifecycle's change names (gateway.alerts.lifecycle.AlertChange, operator actions) that
# start an alert sounding, and those that end it.
SOUNDING_CHANGES = frozenset({"raised", "reannunciated", "unsilenced"})
CLEARING_CHANGES = frozenset({"auto_cleared", "cleared"})


@dataclass(frozen=True, slots=True)
class PlannedNotice:
    """A notice to write into the outbox."""

    route: str
    channel: str
    kind: NoticeKind
    due_at: datetime
    dedup_key: str | None = None


def route_matches(route: RouteConfig, rec: AlertRecord) -> bool:
    """Whether an alert falls under a route (type, minimum severity, building)."""
    return (
        (not route.types or rec.type in route.types)
        and rec.severity >= route.min_severity
        and (not route.buildings or rec.building in route.buildings)
    )


def quiet_until(now: datetime, quiet: QuietHours | None, zone: tzinfo) -> datetime | None:
    """The end of the quiet window ``now`` falls in (UTC), or None outside one."""
    if quiet is None:
        return None
    local = now.astimezone(zone)
    start, end, at = quiet.start_time, quiet.end_time, local.time()
    if start == end:
        return None
    if start < end:
        inside, end_day = start <= at < end, local.date()
    else:  # over midnight, e.g. 23:00-07:00
        inside = at >= start or at < end
        end_day = local.date() + timedelta(days=1) if at >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(UTC)


def due_at(
    route: RouteConfig, severity: Severity, kind: NoticeKind, now: datetime, zone: tzinfo
) -> datetime:
    """When a notice of this route may go out: now, or the end of its quiet hours."""
    quiet = route.quiet_hours
    if (
        quiet is not None
        and quiet.critical_overrides
        and severity >= Severity.CRITICAL
        and kind != "clear"
    ):
        return now
    return quiet_until(now, quiet, zone) or now


def plan_sounding(
    routes: Sequence[RouteConfig], rec: AlertRecord, now: datetime, zone: tzinfo
) -> list[PlannedNotice]:
    """The raise notices for an alert that started sounding (none when it is silenced)."""
    if rec.silenced:
        return []
    return [
        PlannedNotice(route.name, channel, "raise", due_at(route, rec.severity, "raise", now, zone))
        for route in routes
        if route_matches(route, rec)
        for channel in route.channels
    ]


def plan_clear(
    routes: Sequence[RouteConfig],
    rec: AlertRecord,
    told: Sequence[tuple[str, str]],
    now: datetime,
    zone: tzinfo,
) -> list[PlannedNotice]:
    """Clear notices to the (route, channel) pairs that were told about the alert."""
    by_name = {route.name: route for route in routes}
    planned: list[PlannedNotice] = []
    for route_name, channel in dict.fromkeys(told):
        route = by_name.get(route_name)
        if route is None or not route.notify_clear:
            continue
        planned.append(
            PlannedNotice(
                route.name, channel, "clear", due_at(route, rec.severity, "clear", now, zone)
            )
        )
    return planned


def escalation_steps_due(route: RouteConfig, annunciated_at: datetime, now: datetime) -> int:
    """How many of the route's escalation channels should have been told by ``now``."""
    if route.escalate_after_min is None or not route.escalate_to:
        return 0
    elapsed_min = (now - annunciated_at).total_seconds() / 60.0
    return max(0, min(len(route.escalate_to), int(elapsed_min // route.escalate_after_min)))


def plan_escalations(
    routes: Sequence[RouteConfig], rec: AlertRecord, now: datetime, zone: tzinfo
) -> list[PlannedNotice]:
    """Every escalation notice an active, unsilenced, unacknowledged alert is due by now.

    Each carries a dedup key (alert, route, step): the outbox keeps only the first of each.
    """
    if rec.id is None or rec.silenced or rec.state.value != "active":
        return []
    planned = []
    for route in routes:
        if not route_matches(route, rec):
            continue
        for step in range(1, escalation_steps_due(route, rec.annunciated_at, now) + 1):
            planned.append(
                PlannedNotice(
                    route.name,
                    route.escalate_to[step - 1],
                    "escalation",
                    due_at(route, rec.severity, "escalation", now, zone),
                    dedup_key=f"escalation:{rec.id}:{route.name}:{step}",
                )
            )
    return planned


def retry_delay_s(attempts: int, policy: RetryPolicy) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1 = the first)."""
    exponent = max(0, attempts - 1)
    return min(policy.max_delay_s, policy.first_delay_s * policy.factor**exponent)


def digest_window(now: datetime, at: time, zone: tzinfo) -> tuple[str, datetime, datetime] | None:
    """(local date, start, end) of today's digest once its time has come, else None.

    The digest of a day covers the 24 hours up to its sending time.
    """
    local = now.astimezone(zone)
    if local.time() < at:
        return None
    end = datetime.combine(local.date(), at, tzinfo=zone).astimezone(UTC)
    return local.date().isoformat(), end - timedelta(days=1), end
