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

from contracts.models import AccessEvent, DeviceState
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
    twice with the same number is harmless). What only one family reads goes straight to it.
    """

    def __init__(self, config: RulesConfig) -> None:
        self.config = config
        reporter = Reporter(config)
        self._doors = DoorRules(reporter)
        self._access = AccessRules(reporter)
        self._availability = AvailabilityRules(reporter)
        self._appliances = ApplianceRules(reporter)
        alarms = AlarmRules(reporter)
        sequence = SequenceRules(reporter)
        self._sequence = sequence
        self.on_door = self._doors.on_door
        self.on_security = self._doors.on_security
        self.on_availability = self._availability.on_availability
        self.on_heartbeat = alarms.on_heartbeat
        self.restore_seq = sequence.restore_seq
        self.on_seq = sequence.on_seq

    def on_access(self, ev: AccessEvent, now: datetime) -> list[Signal]:
        """Unknown faces, repeated denials, late entries and tailgating from one access event."""
        return self._doors.on_access(ev, now) + self._access.on_access(ev, now)

    def on_device_state(self, ev: DeviceState, now: datetime) -> list[Signal]:
        """Appliance faults (severity by fault) and device offline/online from its state."""
        return self._availability.on_device_state(ev, now) + self._appliances.on_device_state(
            ev, now
        )

    def tick(self, now: datetime) -> list[Signal]:
        """Time-driven work: offline after grace, stale door cycles, gaps after their grace,
        forgetting idle windows."""
        signals = self._availability.tick(now) + self._doors.tick(now) + self._sequence.tick(now)
        self._access.tick(now)
        return signals
