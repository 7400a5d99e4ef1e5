"""Appliance fault rule: a washer, dryer, dispenser or hair dryer reports faults.

One alert per appliance: a new set of faults re-raises it (the most severe fault decides the
severity, see RulesConfig.fault_severity), no faults clear it. ``offline`` is reported as
device_offline (AvailabilityRules), not as a fault.
"""

from __future__ import annotations

from datetime import datetime

from contracts.models import DeviceState
from gateway.alerts.originators import device_originator
from gateway.alerts.rules.report import Reporter
from gateway.alerts.types import AlertType, Signal


class ApplianceRules:
    """appliance_fault from each device state the bridges publish."""

    def __init__(self, reporter: Reporter) -> None:
        self._report = reporter
        self.config = reporter.config

    def on_device_state(self, ev: DeviceState, now: datetime) -> list[Signal]:
        """Raise, re-raise or clear the appliance's fault alert."""
        at = min(ev.ts, now)
        device = device_originator(ev.site, ev.building, ev.room, ev.device_id)
        name = f"{ev.kind} {ev.device_id} in room {ev.room}"
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
            return self._report.condition(
                AlertType.APPLIANCE_FAULT,
                device,
                None,
                ev.site,
                ev.building,
                f"{name}: faults cleared",
                detail,
                at,
            )
        severity = max(self.config.severity_of_fault(f) for f in faults)
        return self._report.condition(
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
