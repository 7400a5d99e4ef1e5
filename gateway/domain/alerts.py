"""Alert rules: validated edge events in, raise/clear signals out (pure; in-memory state only).

:class:`AlertRules` keeps only what the rules need between events (sliding windows, door
cycles, last sequence numbers, the last condition it reported); the alert records themselves
live in the lifecycle (gateway.domain.lifecycle) and in SQL. A restart forgets a half-full
window, which at worst delays one alert.

Two kinds of alert type (see :data:`MOMENTARY_TYPES`):

* **Momentary incidents** (unknown_face, repeated_denial, door_forced_open, tailgating,
  after_curfew) are raised and never cleared by a rule: the moment is over, but a guard has to
  look at it, so it stays open until a guard clears it. A repeat while it is open counts on the
  same alert. unknown_face is deliberately *not* cleared when the window passes without more
  unknown faces: quiet afterwards does not mean the person went away (they may have followed
  someone in), and a second burst should count on the open alert, not make a new one.
* **Conditions** (door_held_open, edge_offline, device_offline, appliance_fault, edge_alarm,
  event_gap, welfare) are raised when they start and cleared when they end. The rules report
  a condition only when it changes (a heartbeat every 30 s without alarms sends no clear each
  time; a new fault set re-raises); the first observation of an originator after a start is
  always reported, so an alert left open by a previous run is cleared if its condition ended.

Times: window and incident times are the event's own ``ts`` (never later than ``now``), so a
burst replayed from an edge outbox after an outage is judged by when it happened; ``tick(now)``
drives what depends on the gateway's clock (offline grace, door cycles that never closed,
forgetting idle windows).

Tailgating works from what a gate sends: a grant unlocks the door, the contact sensor (if the
gate has one) reports ``opened``/``closed``, and each face decision carries ``faces_in_view``.
A door cycle starts at the first grant (or an ``unlocked`` door event) and ends at ``closed``
(or ``locked`` while the door is shut); when more faces were in view than grants were given
during the cycle, tailgating is raised. A gate that never sent a contact event has no sensor:
its cycle ends ``tailgating_cycle_s`` after its last access event. On a gate with a sensor a
cycle whose door never opened is dropped (nobody went through). Card and PIN events carry no
face count, so tailgating is only seen where a camera decides.

Sequence gaps: ``on_seq`` remembers the last ``seq`` per gate; a jump raises event_gap with the
missing ranges, a late (older) ``seq`` is not a gap and fills a missing range; when every
missing event has arrived the alert is cleared.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from contracts.access import Flag
from contracts.models import (
    AccessEvent,
    ApplianceFault,
    DeviceState,
    DoorEvent,
    Heartbeat,
    SecurityEvent,
)

JsonDict = dict[str, Any]  # plain JSON values only (str, int, float, bool, None, list, dict)


class AlertType(StrEnum):
    """What an alert is about."""

    UNKNOWN_FACE = "unknown_face"
    REPEATED_DENIAL = "repeated_denial"
    DOOR_HELD_OPEN = "door_held_open"
    DOOR_FORCED_OPEN = "door_forced_open"
    TAILGATING = "tailgating"
    AFTER_CURFEW = "after_curfew"
    EDGE_OFFLINE = "edge_offline"
    DEVICE_OFFLINE = "device_offline"
    APPLIANCE_FAULT = "appliance_fault"
    EDGE_ALARM = "edge_alarm"
    EVENT_GAP = "event_gap"
    WELFARE = "welfare"
    COMMAND_ATTACK = "command_attack"


class Severity(IntEnum):
    """How urgent an alert is; higher is more urgent."""

    INFO = 1
    WARNING = 2
    MAJOR = 3
    CRITICAL = 4


MOMENTARY_TYPES: frozenset[AlertType] = frozenset(
    {
        AlertType.UNKNOWN_FACE,
        AlertType.REPEATED_DENIAL,
        AlertType.DOOR_FORCED_OPEN,
        AlertType.TAILGATING,
        AlertType.AFTER_CURFEW,
        AlertType.COMMAND_ATTACK,
    }
)

DEFAULT_SEVERITY: dict[AlertType, Severity] = {
    AlertType.UNKNOWN_FACE: Severity.WARNING,
    AlertType.REPEATED_DENIAL: Severity.WARNING,
    AlertType.DOOR_HELD_OPEN: Severity.WARNING,
    AlertType.DOOR_FORCED_OPEN: Severity.CRITICAL,
    AlertType.TAILGATING: Severity.MAJOR,
    AlertType.AFTER_CURFEW: Severity.INFO,
    AlertType.EDGE_OFFLINE: Severity.MAJOR,
    AlertType.DEVICE_OFFLINE: Severity.WARNING,
    AlertType.APPLIANCE_FAULT: Severity.MAJOR,  # the fault decides: see DEFAULT_FAULT_SEVERITY
    AlertType.EDGE_ALARM: Severity.MAJOR,
    AlertType.EVENT_GAP: Severity.MAJOR,
    AlertType.WELFARE: Severity.WARNING,
    AlertType.COMMAND_ATTACK: Severity.CRITICAL,
}

DEFAULT_FAULT_SEVERITY: dict[str, Severity] = {
    "leak": Severity.CRITICAL,
    "over_temperature": Severity.CRITICAL,
    "over_current": Severity.MAJOR,
    "overrun": Severity.MAJOR,  # a hair dryer left on: fire risk
    "heater_fault": Severity.MAJOR,
    "stuck": Severity.WARNING,
    "filter_exhausted": Severity.INFO,
}
# "offline" is a fault in DeviceState too, but it is reported as device_offline.
_APPLIANCE_FAULTS = frozenset(get_args(ApplianceFault)) - {"offline"}


def _parse_severity(value: object) -> object:
    if isinstance(value, str) and not value.strip().isdigit():
        try:
            return Severity[value.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown severity {value!r}: use info, warning, major or critical (or 1-4)"
            ) from None
    return value


SeverityValue = Annotated[Severity, BeforeValidator(_parse_severity)]
"""A severity in config: a name (info, warning, major, critical) or its number 1-4."""


# ------------------------------------------------------------------------------- originators


def gate_originator(site: str, building: str, gate_id: str) -> str:
    """The originator of alerts about one gate (same as the gate's producer id)."""
    return f"gate:{site}/{building}/{gate_id}"


def device_originator(site: str, building: str, room: str, device_id: str) -> str:
    """The originator of alerts about one appliance."""
    return f"device:{site}/{building}/{room}/{device_id}"


def bridge_originator(site: str, bridge_id: str) -> str:
    """The originator of alerts about one device bridge (same as its producer id)."""
    return f"bridge:{site}/{bridge_id}"


def person_originator(person_id: str) -> str:
    """The originator of alerts about one person."""
    return f"person:{person_id}"


def originator_matches(pattern: str, originator: str) -> bool:
    """Whether ``pattern`` names ``originator`` exactly or a whole path segment above it."""
    if originator == pattern:
        return True
    if pattern.endswith(("/", ":")):
        return originator.startswith(pattern)
    return originator.startswith(pattern + "/")


# ------------------------------------------------------------------------------- signal, config


@dataclass(frozen=True, slots=True)
class Signal:
    """A rule's verdict: raise or clear the alert of (type, originator)."""

    action: Literal["raise", "clear"]
    type: AlertType
    originator: str
    site: str
    building: str
    severity: Severity
    title: str
    detail: JsonDict
    at: datetime


class RulesConfig(BaseModel):
    """Thresholds, switches and severities of the alert rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unknown_face_count: int = Field(
        default=3, ge=1, description="unknown faces at one gate within the window to raise"
    )
    unknown_face_window_s: float = Field(
        default=300.0, gt=0, description="sliding window for unknown faces, seconds"
    )
    unknown_face_reasons: tuple[str, ...] = Field(
        default=("unknown_face",),
        description="denial reasons (without a person id) that count as an unknown face",
    )
    repeated_denial_count: int = Field(
        default=3, ge=1, description="denials of one known person within the window to raise"
    )
    repeated_denial_window_s: float = Field(
        default=600.0, gt=0, description="sliding window for denials of one person, seconds"
    )
    tailgating_cycle_s: float = Field(
        default=20.0,
        gt=0,
        description="a door cycle ends this long after its last access event when the door "
        "did not open (or the gate has no contact sensor)",
    )
    offline_grace_s: float = Field(
        default=60.0,
        ge=0,
        description="an edge or device must stay offline this long before an alert "
        "(rides out broker restarts and reconnects); 0 raises at once",
    )
    enabled: dict[AlertType, bool] = Field(
        default_factory=dict,
        description="switch alert types off (e.g. {tailgating: false, after_curfew: false}); "
        "types not listed are on",
    )
    severity: dict[AlertType, SeverityValue] = Field(
        default_factory=dict,
        description="severity per alert type, overriding the defaults "
        "(appliance_fault: use fault_severity)",
    )
    fault_severity: dict[str, SeverityValue] = Field(
        default_factory=dict,
        description="severity per appliance fault, overriding the defaults "
        "(leak and over_temperature critical, over_current major, ...)",
    )

    @model_validator(mode="after")
    def _check(self) -> RulesConfig:
        if AlertType.APPLIANCE_FAULT in self.severity:
            raise ValueError(
                "severity.appliance_fault: the severity of an appliance alert comes from its "
                "faults; set fault_severity instead"
            )
        unknown = sorted(set(self.fault_severity) - _APPLIANCE_FAULTS)
        if unknown:
            raise ValueError(
                f"fault_severity: unknown fault(s) {unknown}; known: {sorted(_APPLIANCE_FAULTS)}"
            )
        if not self.unknown_face_reasons:
            raise ValueError("unknown_face_reasons must list at least one denial reason")
        return self

    def is_enabled(self, alert_type: AlertType) -> bool:
        """Whether alerts of this type are raised at all."""
        return self.enabled.get(alert_type, True)

    def severity_of(self, alert_type: AlertType) -> Severity:
        """The configured severity of an alert type."""
        return self.severity.get(alert_type, DEFAULT_SEVERITY[alert_type])

    def severity_of_fault(self, fault: str) -> Severity:
        """The configured severity of one appliance fault (unknown faults: major)."""
        return self.fault_severity.get(fault, DEFAULT_FAULT_SEVERITY.get(fault, Severity.MAJOR))


# ------------------------------------------------------------------------------- internal state


class _SlidingWindow:
    """Event times of one key; says how many fall in any span-long window around a new one."""

    def __init__(self, span: timedelta) -> None:
        self.span = span
        self.entries: list[tuple[datetime, str]] = []  # sorted by time
        self.ids: set[str] = set()
        self.touched: datetime | None = None  # gateway time of the last add

    def add(self, at: datetime, event_id: str, now: datetime) -> int:
        """Add one event; return the most events in a window containing it (0: duplicate)."""
        self.touched = now
        if event_id in self.ids:
            return 0
        self.ids.add(event_id)
        bisect.insort(self.entries, (at, event_id))
        times = [t for t, _ in self.entries]
        k = bisect.bisect_left(times, at)
        best = 0
        for i in range(bisect.bisect_left(times, at - self.span), k + 1):
            j = bisect.bisect_right(times, times[i] + self.span) - 1
            if j >= k:
                best = max(best, j - i + 1)
        self._forget_before(times[-1] - self.span)
        return best

    def idle_since(self, before: datetime) -> bool:
        """Whether nothing was added since ``before`` (gateway time)."""
        return self.touched is None or self.touched < before

    def _forget_before(self, cutoff: datetime) -> None:
        while self.entries and self.entries[0][0] < cutoff:
            _, old_id = self.entries.pop(0)
            self.ids.discard(old_id)


@dataclass(slots=True)
class _DoorCycle:
    """Grants and faces seen at one gate between unlock/open and close."""

    site: str
    building: str
    gate_id: str
    last_event_at: datetime  # event time
    touched: datetime  # gateway time
    grants: dict[str, str | None] = field(default_factory=dict)  # event id -> person id
    max_faces: int = 0
    door_open: bool = False


@dataclass(slots=True)
class _PendingOffline:
    alert_type: AlertType
    site: str
    building: str
    since: datetime


_OPEN_CYCLE_LIMIT = timedelta(hours=1)  # a door reported open and never closed: give up
_MAX_MISSING_RANGES = 200
TITLE_MAX_CHARS = 200
_DIGITS = re.compile(r"\d+")


class AlertRules:
    """The rule engine: feed it every validated event; it returns the signals to apply.

    ``on_access`` and ``on_door`` do not look at ``seq``: pass it to ``on_seq`` (calling that
    twice with the same number is harmless).
    """

    def __init__(self, config: RulesConfig) -> None:
        self.config = config
        self._unknown: dict[str, _SlidingWindow] = {}  # gate originator -> unknown faces
        self._denials: dict[str, _SlidingWindow] = {}  # person id -> denials
        self._cycles: dict[str, _DoorCycle] = {}  # gate originator -> open door cycle
        self._door_sensor: set[str] = set()  # gates that have sent contact events
        self._conditions: dict[tuple[AlertType, str], Hashable] = {}  # last reported; None=off
        self._pending_offline: dict[str, _PendingOffline] = {}
        self._last_seq: dict[str, int] = {}
        self._missing: dict[str, list[tuple[int, int]]] = {}  # gate -> missing seq ranges

    # --------------------------------------------------------------------------- access

    def on_access(self, ev: AccessEvent, now: datetime) -> list[Signal]:
        """Unknown faces, repeated denials, late entries and tailgating from one access event."""
        at = min(ev.ts, now)
        gate = gate_originator(ev.site, ev.building, ev.gate_id)
        signals = self._expire_cycle(gate, now, at=at)
        if ev.decision == "denied":
            if ev.person_id is None and ev.reason in self.config.unknown_face_reasons:
                signals += self._unknown_face(ev, gate, at, now)
            elif ev.person_id is not None:
                signals += self._repeated_denial(ev, ev.person_id, at, now)
        elif Flag.AFTER_CURFEW in ev.flags and ev.person_id is not None:
            signals += self._incident(
                AlertType.AFTER_CURFEW,
                person_originator(ev.person_id),
                ev.site,
                ev.building,
                f"Late entry after curfew: {ev.person_id} at gate {ev.gate_id}",
                {
                    "person_id": ev.person_id,
                    "gate_id": ev.gate_id,
                    "method": ev.method,
                    "event_id": ev.event_id,
                },
                at,
            )
        self._track_cycle(ev, gate, at, now)
        return signals

    def _unknown_face(
        self, ev: AccessEvent, gate: str, at: datetime, now: datetime
    ) -> list[Signal]:
        span = timedelta(seconds=self.config.unknown_face_window_s)
        window = self._unknown.setdefault(gate, _SlidingWindow(span))
        count = window.add(at, ev.event_id, now)
        if count < self.config.unknown_face_count:
            return []
        if self.config.unknown_face_count == 1:
            title = f"Unknown face at gate {ev.gate_id}"
        else:
            title = f"{count} unknown faces within {_minutes(span)} at gate {ev.gate_id}"
        detail = {
            "gate_id": ev.gate_id,
            "direction": ev.direction,
            "count": count,
            "window_s": self.config.unknown_face_window_s,
            "reason": ev.reason,
            "faces_in_view": ev.faces_in_view,
            "event_id": ev.event_id,
        }
        return self._incident(AlertType.UNKNOWN_FACE, gate, ev.site, ev.building, title, detail, at)

    def _repeated_denial(
        self, ev: AccessEvent, person_id: str, at: datetime, now: datetime
    ) -> list[Signal]:
        span = timedelta(seconds=self.config.repeated_denial_window_s)
        window = self._denials.setdefault(person_id, _SlidingWindow(span))
        count = window.add(at, ev.event_id, now)
        if count < self.config.repeated_denial_count:
            return []
        detail = {
            "person_id": person_id,
            "count": count,
            "window_s": self.config.repeated_denial_window_s,
            "last_reason": ev.reason,
            "method": ev.method,
            "gate_id": ev.gate_id,
            "event_id": ev.event_id,
        }
        title = f"{person_id} denied {count} times within {_minutes(span)} ({ev.reason})"
        return self._incident(
            AlertType.REPEATED_DENIAL,
            person_originator(person_id),
            ev.site,
            ev.building,
            title,
            detail,
            at,
        )

    # --------------------------------------------------------------------------- door

    def on_security(self, ev: SecurityEvent, now: datetime) -> list[Signal]:
        """A gate refused a forged or replayed command or gallery: an attack on the door."""
        what = f"{ev.command} command" if ev.command else ev.target
        return self._incident(
            AlertType.COMMAND_ATTACK,
            gate_originator(ev.site, ev.building, ev.gate_id),
            ev.site,
            ev.building,
            f"Forged or replayed {what} refused at gate {ev.gate_id} ({ev.kind})",
            {
                "gate_id": ev.gate_id,
                "event_id": ev.event_id,
                "kind": ev.kind,
                "target": ev.target,
                "command": ev.command,
                "detail": ev.detail,
            },
            min(ev.ts, now),
        )

    def on_door(self, ev: DoorEvent, now: datetime) -> list[Signal]:
        """Held-open and forced-open doors, and the end of a door cycle (tailgating)."""
        at = min(ev.ts, now)
        gate = gate_originator(ev.site, ev.building, ev.gate_id)
        if ev.kind in ("opened", "closed", "held_open", "forced_open"):
            self._door_sensor.add(gate)
        signals = self._expire_cycle(gate, now, at=at)
        cycle = self._cycles.get(gate)
        base = {"gate_id": ev.gate_id, "event_id": ev.event_id}
        if ev.kind == "held_open":
            open_for = "" if ev.open_for_s is None else f" for {ev.open_for_s:.0f} s"
            signals += self._condition(
                AlertType.DOOR_HELD_OPEN,
                gate,
                True,
                ev.site,
                ev.building,
                f"Door held open{open_for} at gate {ev.gate_id}",
                {**base, "open_for_s": ev.open_for_s},
                at,
            )
        elif ev.kind == "forced_open":
            signals += self._incident(
                AlertType.DOOR_FORCED_OPEN,
                gate,
                ev.site,
                ev.building,
                f"Door forced open at gate {ev.gate_id}",
                base,
                at,
            )
        elif ev.kind == "closed":
            signals += self._condition(
                AlertType.DOOR_HELD_OPEN,
                gate,
                None,
                ev.site,
                ev.building,
                f"Door closed at gate {ev.gate_id}",
                {**base, "open_for_s": ev.open_for_s},
                at,
            )
            if cycle is not None:
                signals += self._finish_cycle(gate, evaluate=True)
        elif ev.kind == "opened":
            if cycle is not None:
                cycle.door_open = True
                cycle.last_event_at, cycle.touched = max(cycle.last_event_at, at), now
        elif ev.kind == "unlocked":
            if cycle is None:
                self._cycles[gate] = _DoorCycle(ev.site, ev.building, ev.gate_id, at, now)
        elif ev.kind == "locked" and cycle is not None and not cycle.door_open:
            signals += self._finish_cycle(gate, evaluate=gate not in self._door_sensor)
        return signals

    def _track_cycle(self, ev: AccessEvent, gate: str, at: datetime, now: datetime) -> None:
        if not self.config.is_enabled(AlertType.TAILGATING):
            return
        cycle = self._cycles.get(gate)
        if ev.decision == "granted":
            if cycle is None:
                cycle = _DoorCycle(ev.site, ev.building, ev.gate_id, at, now)
                self._cycles[gate] = cycle
            cycle.grants[ev.event_id] = ev.person_id
        elif cycle is None:
            return
        cycle.max_faces = max(cycle.max_faces, ev.faces_in_view)
        cycle.last_event_at, cycle.touched = max(cycle.last_event_at, at), now

    def _expire_cycle(
        self, gate: str, now: datetime, *, at: datetime | None = None
    ) -> list[Signal]:
        """End a cycle gone stale: by gateway time, or by the time of a new event ``at``."""
        cycle = self._cycles.get(gate)
        if cycle is None:
            return []
        limit = (
            _OPEN_CYCLE_LIMIT
            if cycle.door_open
            else timedelta(seconds=self.config.tailgating_cycle_s)
        )
        stale_by_event = at is not None and at - cycle.last_event_at > limit
        if not stale_by_event and now - cycle.touched <= limit:
            return []
        # A gate with a contact sensor that never reported the door open: nobody went through.
        evaluate = cycle.door_open or gate not in self._door_sensor
        return self._finish_cycle(gate, evaluate=evaluate)

    def _finish_cycle(self, gate: str, *, evaluate: bool) -> list[Signal]:
        cycle = self._cycles.pop(gate)
        grants = len(cycle.grants)
        if not evaluate or grants == 0 or cycle.max_faces <= grants:
            return []
        persons = sorted(p for p in cycle.grants.values() if p is not None)
        detail = {
            "gate_id": cycle.gate_id,
            "faces_in_view": cycle.max_faces,
            "grants": grants,
            "person_ids": persons,
            "event_ids": sorted(cycle.grants),
            "door_sensor": gate in self._door_sensor,
        }
        title = (
            f"Possible tailgating at gate {cycle.gate_id}: "
            f"{cycle.max_faces} faces, {grants} granted"
        )
        return self._incident(
            AlertType.TAILGATING,
            gate,
            cycle.site,
            cycle.building,
            title,
            detail,
            cycle.last_event_at,
        )

    # --------------------------------------------------------------------------- health

    def on_availability(
        self,
        originator: str,
        site: str,
        building: str,
        state: Literal["online", "offline"],
        now: datetime,
    ) -> list[Signal]:
        """Offline (after the grace period, see tick) and back-online of an edge or device."""
        alert_type = (
            AlertType.DEVICE_OFFLINE if originator.startswith("device:") else AlertType.EDGE_OFFLINE
        )
        if state == "online":
            self._pending_offline.pop(originator, None)
            return self._condition(
                alert_type,
                originator,
                None,
                site,
                building,
                f"{_describe(originator)} back online",
                {"originator": originator},
                now,
            )
        if self._conditions.get((alert_type, originator)) is not None:
            return []  # already reported offline
        if self.config.offline_grace_s == 0:
            return self._offline(originator, _PendingOffline(alert_type, site, building, now))
        self._pending_offline.setdefault(
            originator, _PendingOffline(alert_type, site, building, now)
        )
        return []

    def _offline(self, originator: str, pending: _PendingOffline) -> list[Signal]:
        self._pending_offline.pop(originator, None)
        return self._condition(
            pending.alert_type,
            originator,
            True,
            pending.site,
            pending.building,
            f"{_describe(originator)} offline",
            {"originator": originator, "offline_since": pending.since.isoformat()},
            pending.since,
        )

    def on_heartbeat(
        self,
        ev: Heartbeat,
        site: str,
        building: str,
        now: datetime,
        *,
        originator: str | None = None,
    ) -> list[Signal]:
        """Raise edge_alarm while a gate reports alarms (incl. face path or camera down)."""
        who = ev.producer if originator is None else originator
        alarms = list(ev.alarms)
        if ev.face_path == "disabled":
            alarms.append(f"face recognition disabled: {ev.face_path_detail or 'no detail'}")
        if not ev.source_healthy:
            alarms.append(f"camera unhealthy: {ev.source_detail or 'no detail'}")
        at = min(ev.ts, now)
        if not alarms:
            return self._condition(
                AlertType.EDGE_ALARM,
                who,
                None,
                site,
                building,
                f"{_describe(who)}: alarms cleared",
                {"alarms": []},
                at,
            )
        # Alarm texts carry changing numbers ("outbox full: 812 message(s) ..."): re-raise only
        # when the kinds of alarm change, not on every heartbeat.
        key = frozenset(_DIGITS.sub("#", a.split(":", 1)[0]) for a in alarms)
        return self._condition(
            AlertType.EDGE_ALARM,
            who,
            key,
            site,
            building,
            f"{_describe(who)}: {alarms[0]}"
            + (f" (+{len(alarms) - 1} more)" if len(alarms) > 1 else ""),
            {
                "alarms": alarms,
                "outbox_depth": ev.outbox_depth,
                "face_path": ev.face_path,
                "source_healthy": ev.source_healthy,
            },
            at,
        )

    def on_device_state(self, ev: DeviceState, now: datetime) -> list[Signal]:
        """Appliance faults (severity by fault) and device offline/online from its state."""
        at = min(ev.ts, now)
        device = device_originator(ev.site, ev.building, ev.room, ev.device_id)
        name = f"{ev.kind} {ev.device_id} in room {ev.room}"
        signals: list[Signal]
        if ev.online:
            self._pending_offline.pop(device, None)
            signals = self._condition(
                AlertType.DEVICE_OFFLINE,
                device,
                None,
                ev.site,
                ev.building,
                f"{name} back online",
                {"device_id": ev.device_id, "room": ev.room, "kind": ev.kind},
                at,
            )
        else:
            # The bridge has already waited out its own timeout: no further grace here.
            signals = self._offline(
                device,
                _PendingOffline(AlertType.DEVICE_OFFLINE, ev.site, ev.building, at),
            )
        faults = sorted(set(ev.faults) - {"offline"})
        detail = {
            "device_id": ev.device_id,
            "room": ev.room,
            "kind": ev.kind,
            "faults": faults,
            "status": ev.status,
            "temperature_c": ev.temperature_c,
            "power_w": ev.power_w,
        }
        if not faults:
            signals += self._condition(
                AlertType.APPLIANCE_FAULT,
                device,
                None,
                ev.site,
                ev.building,
                f"{name}: faults cleared",
                detail,
                at,
            )
            return signals
        severity = max(self.config.severity_of_fault(f) for f in faults)
        signals += self._condition(
            AlertType.APPLIANCE_FAULT,
            device,
            frozenset(faults),
            ev.site,
            ev.building,
            f"{name}: {', '.join(f.replace('_', ' ') for f in faults)}",
            detail,
            at,
            severity=severity,
        )
        return signals

    # --------------------------------------------------------------------------- sequence

    def restore_seq(self, originator: str, last_seq: int) -> None:
        """Seed a gate's last sequence number (from SQL at start): gaps across restarts show."""
        self._last_seq[originator] = last_seq

    def on_seq(self, originator: str, seq: int | None, now: datetime) -> list[Signal]:
        """Gap detection on a gate's outbox sequence (every message from its outbox carries it)."""
        if seq is None:
            return []
        last = self._last_seq.get(originator)
        if last is None:
            self._last_seq[originator] = seq
            return []
        missing = self._missing.get(originator, [])
        if seq <= last:
            if not _fill(missing, seq):
                return []  # a duplicate or an event we were not missing
            if missing:
                return []
            del self._missing[originator]
            return self._gap_signal("clear", originator, [], now)
        self._last_seq[originator] = seq
        if seq == last + 1:
            return []
        missing.append((last + 1, seq - 1))
        del missing[:-_MAX_MISSING_RANGES]
        self._missing[originator] = missing
        return self._gap_signal("raise", originator, missing, now)

    def _gap_signal(
        self,
        action: Literal["raise", "clear"],
        originator: str,
        missing: list[tuple[int, int]],
        now: datetime,
    ) -> list[Signal]:
        if not self.config.is_enabled(AlertType.EVENT_GAP):
            return []
        site, building, gate_id = _location(originator)
        count = sum(hi - lo + 1 for lo, hi in missing)
        if action == "clear":
            title = f"Missing events from gate {gate_id} have arrived"
        else:
            title = f"{count} event(s) missing from gate {gate_id}"
        detail: JsonDict = {
            "gate_id": gate_id,
            "missing": [[lo, hi] for lo, hi in missing],
            "missing_count": count,
        }
        self._conditions[(AlertType.EVENT_GAP, originator)] = action == "raise" or None
        return [
            Signal(
                action,
                AlertType.EVENT_GAP,
                originator,
                site,
                building,
                self.config.severity_of(AlertType.EVENT_GAP),
                title,
                detail,
                now,
            )
        ]

    # --------------------------------------------------------------------------- time

    def tick(self, now: datetime) -> list[Signal]:
        """Time-driven work: offline after grace, stale door cycles, forgetting idle windows."""
        signals: list[Signal] = []
        grace = timedelta(seconds=self.config.offline_grace_s)
        for originator, pending in list(self._pending_offline.items()):
            if now - pending.since >= grace:
                signals += self._offline(originator, pending)
        for gate in list(self._cycles):
            signals += self._expire_cycle(gate, now)
        for windows in (self._unknown, self._denials):
            for key, window in list(windows.items()):
                if window.idle_since(now - window.span):
                    del windows[key]
        return signals

    # --------------------------------------------------------------------------- helpers

    def _incident(
        self,
        alert_type: AlertType,
        originator: str,
        site: str,
        building: str,
        title: str,
        detail: JsonDict,
        at: datetime,
    ) -> list[Signal]:
        if not self.config.is_enabled(alert_type):
            return []
        severity = self.config.severity_of(alert_type)
        return [
            Signal(
                "raise", alert_type, originator, site, building, severity, _short(title), detail, at
            )
        ]

    def _condition(
        self,
        alert_type: AlertType,
        originator: str,
        key: Hashable,
        site: str,
        building: str,
        title: str,
        detail: JsonDict,
        at: datetime,
        *,
        severity: Severity | None = None,
    ) -> list[Signal]:
        """Report a condition (key None: absent) only when it differs from the last report."""
        if not self.config.is_enabled(alert_type):
            return []
        marker = (alert_type, originator)
        if marker in self._conditions and self._conditions[marker] == key:
            return []
        self._conditions[marker] = key
        action: Literal["raise", "clear"] = "clear" if key is None else "raise"
        level = self.config.severity_of(alert_type) if severity is None else severity
        return [
            Signal(action, alert_type, originator, site, building, level, _short(title), detail, at)
        ]


def _fill(missing: list[tuple[int, int]], seq: int) -> bool:
    """Remove seq from the missing ranges; whether it was missing."""
    for i, (lo, hi) in enumerate(missing):
        if lo <= seq <= hi:
            rest = [(a, b) for a, b in ((lo, seq - 1), (seq + 1, hi)) if a <= b]
            missing[i : i + 1] = rest
            return True
    return False


def _location(originator: str) -> tuple[str, str, str]:
    """(site, building, last id) of a gate/device/bridge originator, '' where it has none."""
    _, _, path = originator.partition(":")
    parts = path.split("/")
    if len(parts) >= 3:
        return parts[0], parts[1], parts[-1]
    if len(parts) == 2:
        return parts[0], "", parts[1]
    return "", "", path


def _describe(originator: str) -> str:
    kind, _, _ = originator.partition(":")
    _, _, name = _location(originator)
    return f"{kind.capitalize()} {name}" if kind else originator


def _short(title: str) -> str:
    return title if len(title) <= TITLE_MAX_CHARS else title[: TITLE_MAX_CHARS - 1] + "…"


def _minutes(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds % 60 == 0:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
