"""AlertRules: validated edge events in, raise/clear signals out (pure; in-memory state only).

The engine hands each event to the rule families that read it (gateway.alerts.rules.access,
doors, availability, alarms, appliances, sequence) and returns their signals in that order.
The families keep only what they need between events (sliding windows, door cycles, last
sequence numbers, the last condition reported); the alert records themselves live in the
lifecycle (gateway.alerts.lifecycle) and in SQL. A restart forgets a half-full window, which at
worst delays one alert.

Momentary incidents are raised and never cleared by a rule; conditions are reported only when
they change (a heartbeat every 30 s without alarms sends no clear each time; a new fault set
re-raises). See gateway.alerts.types and gateway.alerts.rules.report.

Times: window and incident times are the event's own ``ts`` (never later than ``now``), so a
burst replayed from an edge outbox after an outage is judged by when it happened; ``tick(now)``
drives what depends on the gateway's clock (offline grace, door cycles that never closed,
forgetting idle windows).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from contracts.models import AccessEvent, DeviceState, DoorEvent, Heartbeat, SecurityEvent
from gateway.alerts.rules.access import AccessRules
from gateway.alerts.rules.alarms import AlarmRules
from gateway.alerts.rules.appliances import ApplianceRules
from gateway.alerts.rules.availability import AvailabilityRules
from gateway.alerts.rules.config import RulesConfig
from gateway.alerts.rules.doors import DoorRules
from gateway.alerts.rules.report import Reporter
from gateway.alerts.rules.sequence import SequenceRules
from gateway.alerts.types import Signal


class AlertRules:
    """The rule engine: feed it every validated event; it returns the signals to apply.

    ``on_access`` and ``on_door`` do not look at ``seq``: pass it to ``on_seq`` (calling that
    twice with the same number is harmless).
    """

    def __init__(self, config: RulesConfig) -> None:
        self.config = config
        reporter = Reporter(config)
        self._doors = DoorRules(reporter)
        self._access = AccessRules(reporter)
        self._availability = AvailabilityRules(reporter)
        self._alarms = AlarmRules(reporter)
        self._appliances = ApplianceRules(reporter)
        self._sequence = SequenceRules(reporter)

    def on_access(self, ev: AccessEvent, now: datetime) -> list[Signal]:
        """Unknown faces, repeated denials, late entries and tailgating from one access event."""
        return self._doors.on_access(ev, now) + self._access.on_access(ev, now)

    def on_security(self, ev: SecurityEvent, now: datetime) -> list[Signal]:
        """A gate refused a forged or replayed command or gallery: an attack on the door."""
        return self._doors.on_security(ev, now)

    def on_door(self, ev: DoorEvent, now: datetime) -> list[Signal]:
        """Held-open and forced-open doors, and the end of a door cycle (tailgating)."""
        return self._doors.on_door(ev, now)

    def on_availability(
        self,
        originator: str,
        site: str,
        building: str,
        state: Literal["online", "offline"],
        now: datetime,
    ) -> list[Signal]:
        """Offline (after the grace period, see tick) and back-online of an edge or device."""
        return self._availability.on_availability(originator, site, building, state, now)

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
        return self._alarms.on_heartbeat(ev, site, building, now, originator=originator)

    def on_device_state(self, ev: DeviceState, now: datetime) -> list[Signal]:
        """Appliance faults (severity by fault) and device offline/online from its state."""
        return self._availability.on_device_state(ev, now) + self._appliances.on_device_state(
            ev, now
        )

    def restore_seq(self, originator: str, last_seq: int) -> None:
        """Seed a gate's last sequence number (from SQL at start): gaps across restarts show."""
        self._sequence.restore_seq(originator, last_seq)

    def on_seq(self, originator: str, seq: int | None, now: datetime) -> list[Signal]:
        """Gap detection on a gate's outbox sequence (every message from its outbox carries it)."""
        return self._sequence.on_seq(originator, seq, now)

    def tick(self, now: datetime) -> list[Signal]:
        """Time-driven work: offline after grace, stale door cycles, forgetting idle windows."""
        signals = self._availability.tick(now) + self._doors.tick(now)
        self._access.tick(now)
        return signals
