"""The alert lifecycle (after ISA-18.2): raise, repeat, acknowledge, assign, clear, escalate.

States: ``active`` (nobody has acknowledged it), ``acknowledged`` (a guard has it), ``cleared``
(over). ``active`` and ``acknowledged`` are *open*. There is at most one open alert per
(type, originator): a raise while one is open counts on it (``count`` + 1, latest title and
detail, the higher severity), it does not make a second alert; a raise after it was cleared
starts a new alert. The caller passes the open alert of (type, originator), or None; a cleared
record passed in is treated as absent.

Rules that decide what guards see:

* **The condition ends before anyone acknowledged it** (a door held open, then closed; an edge
  back online): the alert is ``cleared`` with ``cleared_by`` None and ``acked_at`` None. That is
  :attr:`AlertRecord.needs_review` (ISA-18.2's "returned to normal, unacknowledged"): it no
  longer sounds or escalates, but the hand-over lists it until a guard acknowledges it, which
  :func:`acknowledge` allows on such a record (it stays ``cleared``). Nothing that happened on a
  shift disappears without a guard having seen it.
* **Momentary incidents** (forced door, tailgating, unknown faces, ... see
  ``types.MOMENTARY_TYPES``) have no lasting condition: ``condition_active`` is False from the
  start and only a guard clears them.
* **A guard may clear an alert** whose condition still holds (a device offline for days): the
  guard owns that decision. The rules report a condition only when it changes, so it is raised
  again when it ends and comes back, not on every message.
* **Re-annunciation:** a raise with a *higher* severity than an acknowledged alert had puts it
  back to ``active`` (e.g. an acknowledged over-current washer now leaks), so it sounds again.
* **Silences** (maintenance windows, a known broken camera): a raise that falls in an active
  silence (judged at the signal's own time, so events replayed after an outage are judged by
  when they happened) is recorded as usual, with ``silenced`` True: the console shows it
  without sound and it does not escalate. Nothing is suppressed. A raise outside every silence
  unsilences an open alert. :func:`refresh_silence` re-evaluates open alerts when a silence is
  created or ends: a condition still active when its silence ends starts sounding; a momentary
  incident that happened during the silence stays silenced.
* **Escalation:** an ``active``, unsilenced alert not acknowledged within the policy's time for
  its severity goes up one level, and again after the same time, up to ``max_level``. The clock
  starts when the alert began sounding (``annunciated_at``: creation, re-annunciation or
  unsilencing), not at the event time, which may be old after an edge outage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from contracts.access import require_aware
from gateway.alerts.originators import originator_matches
from gateway.alerts.types import MOMENTARY_TYPES, AlertType, JsonDict, Severity, Signal
from gateway.attributes import from_attributes

COMMENT_MAX_CHARS = 2000


class AlertState(StrEnum):
    """Where an alert is in its lifecycle."""

    ACTIVE = "active"  # open, unacknowledged
    ACKNOWLEDGED = "acknowledged"  # open, a guard has it
    CLEARED = "cleared"


class AlertChange(StrEnum):
    """What a signal did to an alert (for the alert's history)."""

    RAISED = "raised"
    REPEATED = "repeated"
    REANNUNCIATED = "reannunciated"
    UNSILENCED = "unsilenced"
    AUTO_CLEARED = "auto_cleared"


class InvalidTransition(ValueError):  # noqa: N818 - reads as the API's verdict
    """An operator action that the alert's current state does not allow."""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert as stored and shown; ``id`` is None until the store assigns one."""

    id: int | None
    type: AlertType
    originator: str
    site: str
    building: str
    severity: Severity
    title: str
    detail: JsonDict
    state: AlertState
    condition_active: bool
    count: int
    first_at: datetime  # time of the first occurrence (event time)
    last_at: datetime  # time of the latest occurrence (event time)
    annunciated_at: datetime  # gateway time it last started sounding: the escalation clock
    acked_by: str | None = None
    acked_at: datetime | None = None
    assignee: str | None = None
    cleared_by: str | None = None  # None on a cleared alert: cleared automatically
    cleared_at: datetime | None = None
    escalation_level: int = 0
    escalated_at: datetime | None = None
    silenced: bool = False

    def __post_init__(self) -> None:
        # Rows read back from SQL carry plain strings and ints: store the enums.
        object.__setattr__(self, "type", AlertType(self.type))
        object.__setattr__(self, "state", AlertState(self.state))
        object.__setattr__(self, "severity", Severity(self.severity))

    @property
    def is_open(self) -> bool:
        """Active or acknowledged."""
        return self.state is not AlertState.CLEARED

    @property
    def needs_review(self) -> bool:
        """Cleared automatically before anyone acknowledged it: the hand-over still lists it."""
        return (
            self.state is AlertState.CLEARED and self.cleared_by is None and self.acked_at is None
        )


@dataclass(frozen=True, slots=True)
class Silence:
    """A window in which matching alerts are recorded without sound or escalation."""

    originator: str  # exact originator or a path prefix ("gate:campus/B1", "device:campus/B2/")
    starts_at: datetime
    ends_at: datetime  # exclusive
    reason: str
    created_by: str
    types: frozenset[AlertType] = frozenset()  # empty: every type
    id: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "types", frozenset(AlertType(t) for t in self.types))
        require_aware(self.starts_at, "starts_at")
        require_aware(self.ends_at, "ends_at")
        if self.ends_at <= self.starts_at:
            raise ValueError(
                f"a silence must end after it starts (starts_at={self.starts_at.isoformat()}, "
                f"ends_at={self.ends_at.isoformat()})"
            )
        if not self.originator.strip():
            raise ValueError("a silence needs an originator (exact or prefix)")
        if not self.reason.strip():
            raise ValueError("a silence needs a reason")
        if not self.created_by.strip():
            raise ValueError("a silence needs the user who created it")

    def covers(self, alert_type: AlertType, originator: str, at: datetime) -> bool:
        """Whether this silence applies to an alert of that type and originator at ``at``."""
        return (
            self.starts_at <= at < self.ends_at
            and (not self.types or alert_type in self.types)
            and originator_matches(self.originator, originator)
        )


@dataclass(frozen=True, slots=True)
class Comment:
    """A guard's note on an alert."""

    alert_id: int
    author: str
    text: str
    at: datetime


class EscalationPolicy(BaseModel):
    """How long an unacknowledged alert may sound before it escalates, per severity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="escalate unacknowledged alerts at all")
    critical_after_s: float | None = Field(
        default=60.0, gt=0, description="critical alerts: seconds per level (null: never)"
    )
    major_after_s: float | None = Field(
        default=300.0, gt=0, description="major alerts: seconds per level (null: never)"
    )
    warning_after_s: float | None = Field(
        default=900.0, gt=0, description="warning alerts: seconds per level (null: never)"
    )
    info_after_s: float | None = Field(
        default=None, gt=0, description="info alerts: seconds per level (null: never)"
    )
    max_level: int = Field(default=3, ge=1, le=10, description="highest escalation level")

    def after_s(self, severity: Severity) -> float | None:
        """Seconds an alert of this severity may stay unacknowledged per level (None: never)."""
        return {
            Severity.CRITICAL: self.critical_after_s,
            Severity.MAJOR: self.major_after_s,
            Severity.WARNING: self.warning_after_s,
            Severity.INFO: self.info_after_s,
        }[severity]


# ------------------------------------------------------------------------------- signals


def apply_signal(
    current: AlertRecord | None,
    signal: Signal,
    silences: Sequence[Silence],
    now: datetime,
) -> AlertRecord | None:
    """The alert after a rule's signal, or None when nothing changes."""
    require_aware(now, "now")
    open_alert = current if current is not None and current.is_open else None
    if open_alert is not None and (open_alert.type, open_alert.originator) != (
        signal.type,
        signal.originator,
    ):
        raise ValueError(
            f"signal for {signal.type}/{signal.originator} applied to alert "
            f"{open_alert.id} of {open_alert.type}/{open_alert.originator}"
        )
    if signal.action == "clear":
        if open_alert is None:
            return None
        return replace(
            open_alert,
            state=AlertState.CLEARED,
            condition_active=False,
            cleared_by=None,
            cleared_at=max(signal.at, open_alert.first_at),
        )
    silenced = any(s.covers(signal.type, signal.originator, signal.at) for s in silences)
    condition = signal.type not in MOMENTARY_TYPES
    if open_alert is None:
        return from_attributes(
            AlertRecord,
            signal,
            id=None,
            detail=dict(signal.detail),
            state=AlertState.ACTIVE,
            condition_active=condition,
            count=1,
            first_at=signal.at,
            last_at=signal.at,
            annunciated_at=now,
            silenced=silenced,
        )
    repeated = replace(
        open_alert,
        severity=max(open_alert.severity, signal.severity),
        title=signal.title,
        detail=dict(signal.detail),
        condition_active=condition,
        count=open_alert.count + 1,
        last_at=max(open_alert.last_at, signal.at),
        silenced=open_alert.silenced and silenced,
    )
    if open_alert.state is AlertState.ACKNOWLEDGED and signal.severity > open_alert.severity:
        return replace(
            repeated,
            state=AlertState.ACTIVE,
            acked_by=None,
            acked_at=None,
            annunciated_at=now,
        )
    if open_alert.silenced and not repeated.silenced:
        return replace(repeated, annunciated_at=now)
    return repeated


def signal_change(before: AlertRecord | None, after: AlertRecord) -> AlertChange:
    """Name what :func:`apply_signal` did, for the alert's history."""
    if before is None or not before.is_open or after.id != before.id:
        return AlertChange.RAISED
    if after.state is AlertState.CLEARED:
        return AlertChange.AUTO_CLEARED
    if before.state is AlertState.ACKNOWLEDGED and after.state is AlertState.ACTIVE:
        return AlertChange.REANNUNCIATED
    if before.silenced and not after.silenced:
        return AlertChange.UNSILENCED
    return AlertChange.REPEATED


def refresh_silence(
    rec: AlertRecord, silences: Sequence[Silence], now: datetime
) -> AlertRecord | None:
    """Re-evaluate an open alert's silence at ``now``; None when nothing changes."""
    require_aware(now, "now")
    if not rec.is_open:
        return None
    covered = any(s.covers(rec.type, rec.originator, now) for s in silences)
    if covered and not rec.silenced:
        return replace(rec, silenced=True)
    if not covered and rec.silenced and rec.condition_active:
        return replace(rec, silenced=False, annunciated_at=now)
    return None


# ------------------------------------------------------------------------------- operators


def acknowledge(rec: AlertRecord, user: str, now: datetime) -> AlertRecord:
    """A guard takes an active alert (or reviews one that cleared before anyone saw it)."""
    user = _require_user(user)
    require_aware(now, "now")
    if rec.state is AlertState.ACTIVE:
        return replace(rec, state=AlertState.ACKNOWLEDGED, acked_by=user, acked_at=now)
    if rec.needs_review:
        return replace(rec, acked_by=user, acked_at=now)
    if rec.state is AlertState.ACKNOWLEDGED:
        raise InvalidTransition(
            f"alert {rec.id} is already acknowledged by {rec.acked_by} at {_when(rec.acked_at)}"
        )
    raise InvalidTransition(
        f"alert {rec.id} is cleared"
        + (f" and was acknowledged by {rec.acked_by}" if rec.acked_by else "")
        + ": nothing to acknowledge"
    )


def assign(rec: AlertRecord, user: str, assignee: str | None, now: datetime) -> AlertRecord:
    """Give an open alert to a guard (None: nobody); ``user`` is who assigns it."""
    _require_user(user)
    require_aware(now, "now")
    if not rec.is_open:
        raise InvalidTransition(f"alert {rec.id} is cleared: it cannot be assigned")
    if assignee is not None:
        assignee = _require_user(assignee, "assignee")
    return replace(rec, assignee=assignee)


def clear(rec: AlertRecord, user: str, now: datetime) -> AlertRecord:
    """A guard closes an open alert (active or acknowledged)."""
    user = _require_user(user)
    require_aware(now, "now")
    if not rec.is_open:
        who = rec.cleared_by or "automatically"
        raise InvalidTransition(
            f"alert {rec.id} is already cleared ({who}, at {_when(rec.cleared_at)})"
        )
    return replace(rec, state=AlertState.CLEARED, cleared_by=user, cleared_at=now)


def make_comment(alert_id: int, author: str, text: str, now: datetime) -> Comment:
    """A validated comment: 1 to 2000 characters after trimming, by a named author."""
    author = _require_user(author, "author")
    require_aware(now, "now")
    text = text.strip()
    if not text:
        raise ValueError("a comment cannot be empty")
    if len(text) > COMMENT_MAX_CHARS:
        raise ValueError(f"a comment is limited to {COMMENT_MAX_CHARS} characters, got {len(text)}")
    return Comment(alert_id=alert_id, author=author, text=text, at=now)


# ------------------------------------------------------------------------------- time


def escalate(rec: AlertRecord, policy: EscalationPolicy, now: datetime) -> AlertRecord | None:
    """One escalation level up when an active alert has sounded unacknowledged too long."""
    require_aware(now, "now")
    if not policy.enabled or rec.state is not AlertState.ACTIVE or rec.silenced:
        return None
    after_s = policy.after_s(rec.severity)
    if after_s is None or rec.escalation_level >= policy.max_level:
        return None
    clock = rec.annunciated_at
    if rec.escalated_at is not None and rec.escalated_at > clock:
        clock = rec.escalated_at
    if now - clock < timedelta(seconds=after_s):
        return None
    return replace(rec, escalation_level=rec.escalation_level + 1, escalated_at=now)


# ------------------------------------------------------------------------------- helpers


def _require_user(user: str, what: str = "user") -> str:
    name = user.strip()
    if not name:
        raise ValueError(f"{what} must be named")
    if len(name) > 64:
        raise ValueError(f"{what} name is longer than 64 characters")
    return name


def _when(moment: datetime | None) -> str:
    return "an unknown time" if moment is None else moment.isoformat()
