"""Door rules: held-open and forced-open doors, tailgating, forged commands refused by a gate.

Tailgating works from what a gate sends: a grant unlocks the door, the contact sensor (if the
gate has one) reports ``opened``/``closed``, and each face decision carries ``faces_in_view``.
A door cycle starts at the first grant (or an ``unlocked`` door event) and ends at ``closed``
(or ``locked`` while the door is shut); when more faces were in view than grants were given
during the cycle, tailgating is raised. A gate that never sent a contact event has no sensor:
its cycle ends ``tailgating_cycle_s`` after its last access event. On a gate with a sensor a
cycle whose door never opened is dropped (nobody went through). Card and PIN events carry no
face count, so tailgating is only seen where a camera decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contracts.models import AccessEvent, DoorEvent, SecurityEvent
from gateway.alerts.originators import gate_originator
from gateway.alerts.rules.report import Reporter
from gateway.alerts.types import AlertType, Signal

_OPEN_CYCLE_LIMIT = timedelta(hours=1)  # a door reported open and never closed: give up


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


class DoorRules:
    """What happens at each gate's door, from door, access and security events."""

    def __init__(self, reporter: Reporter) -> None:
        self._report = reporter
        self.config = reporter.config
        self._cycles: dict[str, _DoorCycle] = {}  # gate originator -> open door cycle
        self._door_sensor: set[str] = set()  # gates that have sent contact events

    def on_access(self, ev: AccessEvent, now: datetime) -> list[Signal]:
        """Count an access event into the gate's door cycle (ending a stale one first)."""
        at = min(ev.ts, now)
        gate = gate_originator(ev.site, ev.building, ev.gate_id)
        signals = self._expire_cycle(gate, now, at=at)
        self._track_cycle(ev, gate, at, now)
        return signals

    def on_security(self, ev: SecurityEvent, now: datetime) -> list[Signal]:
        """A gate refused a forged or replayed command or gallery: an attack on the door."""
        what = f"{ev.command} command" if ev.command else ev.target
        return self._report.incident(
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
            signals += self._report.condition(
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
            signals += self._report.incident(
                AlertType.DOOR_FORCED_OPEN,
                gate,
                ev.site,
                ev.building,
                f"Door forced open at gate {ev.gate_id}",
                base,
                at,
            )
        elif ev.kind == "closed":
            signals += self._report.condition(
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

    def tick(self, now: datetime) -> list[Signal]:
        """End the door cycles gone stale by gateway time (door never closed, no sensor)."""
        signals: list[Signal] = []
        for gate in list(self._cycles):
            signals += self._expire_cycle(gate, now)
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
        return self._report.incident(
            AlertType.TAILGATING,
            gate,
            cycle.site,
            cycle.building,
            title,
            detail,
            cycle.last_event_at,
        )
