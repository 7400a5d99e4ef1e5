"""Welfare warnings for counsellors, from presence and late returns (pure).

Kinds, per person (all presences of the person are considered together, since a student inside
another campus building is not missing):

* ``not_back_by_curfew``: the person was outside when the most recent curfew began (their last
  exit was *before* the curfew instant) and is still outside at curfew + grace. A student who
  left after curfew began is not "not back by curfew" that night; if still out, the next
  night's curfew reports them. A student away for several nights is one warning for the whole
  absence (its instance is the exit time), not one per night; it ends when they come back.
  Curfew is a local wall-clock time in the configured zone: each day's curfew instant is
  computed for that local date, so DST days are handled (a curfew that falls into a DST gap
  takes the offset before the change, as zoneinfo does with fold=0).
* ``no_exit``: inside for more than ``no_exit_hours`` with no activity at any gate (the latest
  of the entry and ``last_seen``).
* ``repeated_late_returns``: at least ``late_returns_count`` late returns (granted entries
  flagged after curfew) within the last ``late_returns_days`` days; a new late return is a new
  instance.

Alerts: each kind is its own alert per person: originator ``person:<id>/<kind>`` with type
``welfare``, so the lifecycle's one-open-alert-per-(type, originator) rule keeps one alert per
person and kind. :func:`reconcile_welfare` turns the current warnings into signals given the
latest welfare alert per originator: it raises a warning whose instance has not been raised
before (so a counsellor who cleared one is not asked again for the same occurrence) and clears
open alerts whose warning no longer holds.

Pass only people who are expected to sleep in the dorm (active students, not on recorded leave).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.access import require_aware
from contracts.settings import TimeOfDayText, TimeZoneName
from gateway.alerts.lifecycle import AlertRecord
from gateway.alerts.originators import person_originator
from gateway.alerts.types import AlertType, JsonDict, Severity, SeverityValue, Signal
from gateway.domain.occupancy import Presence


class WelfareKind(StrEnum):
    """What a welfare warning is about."""

    NOT_BACK_BY_CURFEW = "not_back_by_curfew"
    NO_EXIT = "no_exit"
    REPEATED_LATE_RETURNS = "repeated_late_returns"


DEFAULT_WELFARE_SEVERITY: dict[WelfareKind, Severity] = {
    WelfareKind.NOT_BACK_BY_CURFEW: Severity.WARNING,
    WelfareKind.NO_EXIT: Severity.WARNING,
    WelfareKind.REPEATED_LATE_RETURNS: Severity.INFO,
}


def _parse_hhmm(value: str) -> time:
    hours, sep, minutes = value.strip().partition(":")
    if not sep or not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"time of day {value!r} must be HH:MM, e.g. '23:00'")
    hour, minute = int(hours), int(minutes)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f"time of day {value!r} is out of range (00:00 to 23:59)")
    return time(hour, minute)


class WelfareConfig(BaseModel):
    """Curfew and thresholds of the counsellors' welfare warnings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: TimeZoneName = Field(
        default="Asia/Shanghai", description="IANA zone of the curfew's wall-clock time"
    )
    curfew: TimeOfDayText = Field(
        default="23:00", description="curfew, HH:MM local time (quoted in YAML)"
    )
    grace_minutes: float = Field(
        default=30.0, ge=0, le=12 * 60, description="minutes after curfew before a warning"
    )
    no_exit_hours: float = Field(
        default=72.0, gt=0, description="inside with no gate activity for longer than this"
    )
    late_returns_count: int = Field(
        default=3, ge=1, description="late returns within late_returns_days to warn"
    )
    late_returns_days: float = Field(default=14.0, gt=0, description="window for late returns")
    enabled: dict[WelfareKind, bool] = Field(
        default_factory=dict, description="switch warning kinds off; kinds not listed are on"
    )
    severity: dict[WelfareKind, SeverityValue] = Field(
        default_factory=dict,
        description="severity per kind (defaults: warning, warning, info for late returns)",
    )

    @field_validator("curfew")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        _parse_hhmm(value)
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The curfew's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def curfew_time(self) -> time:
        """The curfew as a time of day."""
        return _parse_hhmm(self.curfew)

    def is_enabled(self, kind: WelfareKind) -> bool:
        """Whether warnings of this kind are given."""
        return self.enabled.get(kind, True)

    def severity_of(self, kind: WelfareKind) -> Severity:
        """The severity of alerts of this kind."""
        return self.severity.get(kind, DEFAULT_WELFARE_SEVERITY[kind])


def welfare_originator(person_id: str, kind: WelfareKind) -> str:
    """The originator of one person's welfare alert of one kind."""
    return f"{person_originator(person_id)}/{kind.value}"


@dataclass(frozen=True, slots=True)
class WelfareWarning:
    """One welfare concern about one person; ``instance`` names this occurrence."""

    person_id: str
    kind: WelfareKind
    since: datetime
    building: str
    severity: Severity
    title: str
    detail: JsonDict
    instance: str

    @property
    def originator(self) -> str:
        """The originator of the alert this warning raises."""
        return welfare_originator(self.person_id, self.kind)

    def to_signal(self, at: datetime, *, site: str = "") -> Signal:
        """The raise signal of this warning (type welfare)."""
        detail: JsonDict = {
            **self.detail,
            "person_id": self.person_id,
            "kind": self.kind.value,
            "since": self.since.isoformat(),
            "instance": self.instance,
        }
        return Signal(
            "raise",
            AlertType.WELFARE,
            self.originator,
            site,
            self.building,
            self.severity,
            self.title,
            detail,
            at,
        )


def last_curfew(config: WelfareConfig, now: datetime) -> datetime | None:
    """The most recent curfew instant (UTC) whose grace period has ended by ``now``."""
    grace = timedelta(minutes=config.grace_minutes)
    today = now.astimezone(config.zone).date()
    for days_back in range(3):
        local = datetime.combine(
            today - timedelta(days=days_back), config.curfew_time, tzinfo=config.zone
        )
        instant = local.astimezone(UTC)
        if instant + grace <= now:
            return instant
    return None


def evaluate_welfare(
    presences: Iterable[Presence],
    late_returns: Mapping[str, Sequence[datetime]],
    config: WelfareConfig,
    now: datetime,
    *,
    last_seen: Mapping[str, datetime] | None = None,
) -> list[WelfareWarning]:
    """The welfare warnings that hold at ``now``, sorted by person and kind."""
    require_aware(now, "now")
    seen = last_seen or {}
    by_person: dict[str, list[Presence]] = {}
    for p in presences:
        by_person.setdefault(p.person_id, []).append(p)
    curfew = last_curfew(config, now)
    warnings: list[WelfareWarning] = []
    for person_id in sorted(set(by_person) | set(late_returns)):
        mine = by_person.get(person_id, [])
        inside = [p for p in mine if p.inside]
        if inside and config.is_enabled(WelfareKind.NO_EXIT):
            warnings += _no_exit(person_id, inside, seen.get(person_id), config, now)
        if mine and not inside and config.is_enabled(WelfareKind.NOT_BACK_BY_CURFEW):
            warnings += _not_back(person_id, mine, seen.get(person_id), curfew, config)
        if config.is_enabled(WelfareKind.REPEATED_LATE_RETURNS):
            building = max(mine, key=lambda p: p.since).building if mine else ""
            warnings += _late_returns(
                person_id, late_returns.get(person_id, ()), building, config, now
            )
    return warnings


def _no_exit(
    person_id: str,
    inside: list[Presence],
    last_seen: datetime | None,
    config: WelfareConfig,
    now: datetime,
) -> list[WelfareWarning]:
    entry = max(inside, key=lambda p: p.since)
    quiet_since = entry.since if last_seen is None else max(entry.since, last_seen)
    hours = (now - quiet_since).total_seconds() / 3600
    if hours <= config.no_exit_hours:
        return []
    return [
        WelfareWarning(
            person_id=person_id,
            kind=WelfareKind.NO_EXIT,
            since=quiet_since,
            building=entry.building,
            severity=config.severity_of(WelfareKind.NO_EXIT),
            title=f"{person_id} has not left {entry.building} for {hours:.0f} h",
            detail={
                "entered_at": entry.since.isoformat(),
                "gate_id": entry.gate_id,
                "hours": round(hours, 1),
                "last_seen": None if last_seen is None else last_seen.isoformat(),
            },
            instance=quiet_since.isoformat(),
        )
    ]


def _not_back(
    person_id: str,
    mine: list[Presence],
    last_seen: datetime | None,
    curfew: datetime | None,
    config: WelfareConfig,
) -> list[WelfareWarning]:
    last_exit = max(mine, key=lambda p: p.since)
    if curfew is None or not last_exit.since < curfew:
        return []
    left_local = last_exit.since.astimezone(config.zone)
    return [
        WelfareWarning(
            person_id=person_id,
            kind=WelfareKind.NOT_BACK_BY_CURFEW,
            since=last_exit.since,
            building=last_exit.building,
            severity=config.severity_of(WelfareKind.NOT_BACK_BY_CURFEW),
            title=(
                f"{person_id} not back by curfew {config.curfew} "
                f"(left {last_exit.building} {left_local:%a %H:%M})"
            ),
            detail={
                "left_at": last_exit.since.isoformat(),
                "gate_id": last_exit.gate_id,
                "curfew_at": curfew.isoformat(),
                "deadline": (curfew + timedelta(minutes=config.grace_minutes)).isoformat(),
                "irregular": last_exit.irregular,
                "last_seen": None if last_seen is None else last_seen.isoformat(),
            },
            instance=last_exit.since.isoformat(),
        )
    ]


def _late_returns(
    person_id: str,
    returns: Sequence[datetime],
    building: str,
    config: WelfareConfig,
    now: datetime,
) -> list[WelfareWarning]:
    start = now - timedelta(days=config.late_returns_days)
    recent = sorted({t for t in returns if start < t <= now})
    if len(recent) < config.late_returns_count:
        return []
    return [
        WelfareWarning(
            person_id=person_id,
            kind=WelfareKind.REPEATED_LATE_RETURNS,
            since=recent[0],
            building=building,
            severity=config.severity_of(WelfareKind.REPEATED_LATE_RETURNS),
            title=(
                f"{person_id} returned after curfew {len(recent)} times "
                f"in {config.late_returns_days:g} days"
            ),
            detail={
                "count": len(recent),
                "days": config.late_returns_days,
                "returns": [t.isoformat() for t in recent],
            },
            instance=recent[-1].isoformat(),
        )
    ]


def reconcile_welfare(
    warnings: Iterable[WelfareWarning],
    latest: Mapping[str, AlertRecord],
    now: datetime,
    *,
    site: str = "",
) -> list[Signal]:
    """Signals that bring welfare alerts in line with the warnings that hold now.

    ``latest`` maps a welfare originator to its most recent alert (open or cleared).
    """
    signals: list[Signal] = []
    current: dict[str, WelfareWarning] = {}
    for warning in warnings:
        current[warning.originator] = warning
        record = latest.get(warning.originator)
        if record is None or record.detail.get("instance") != warning.instance:
            signals.append(warning.to_signal(now, site=site))
    for originator, record in sorted(latest.items()):
        if record.type == AlertType.WELFARE and record.is_open and originator not in current:
            signals.append(
                Signal(
                    "clear",
                    AlertType.WELFARE,
                    originator,
                    record.site,
                    record.building,
                    record.severity,
                    f"{record.title}: resolved",
                    dict(record.detail),
                    now,
                )
            )
    return signals
