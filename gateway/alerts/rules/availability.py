"""Availability rules: an edge, device bridge or appliance offline, and back online.

An availability ``offline`` (the MQTT last will) starts a grace period: the alert is raised by
``tick`` once the originator stayed offline ``offline_grace_s``, so broker restarts and quick
reconnects raise nothing. An appliance the bridge reports offline (its last will, or silence
beyond the bridge's timeout) waits out the same grace: a broker restart publishes every
device's last will at once, and 200 alerts that clear themselves a few seconds later are noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from contracts.models import DeviceState
from gateway.alerts.originators import describe, device_originator
from gateway.alerts.rules.report import Reporter
from gateway.alerts.types import AlertType, Signal


@dataclass(slots=True)
class _PendingOffline:
    alert_type: AlertType
    site: str
    building: str
    since: datetime


class AvailabilityRules:
    """edge_offline and device_offline, from availability messages and device states."""

    def __init__(self, reporter: Reporter) -> None:
        self._report = reporter
        self.config = reporter.config
        self._pending_offline: dict[str, _PendingOffline] = {}

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
            return self._report.condition(
                alert_type,
                originator,
                None,
                site,
                building,
                f"{describe(originator)} back online",
                {"originator": originator},
                now,
            )
        if self._report.last_reported(alert_type, originator) is not None:
            return []  # already reported offline
        if self.config.offline_grace_s == 0:
            return self._offline(originator, _PendingOffline(alert_type, site, building, now))
        self._pending_offline.setdefault(
            originator, _PendingOffline(alert_type, site, building, now)
        )
        return []

    def on_device_state(self, ev: DeviceState, now: datetime) -> list[Signal]:
        """Device offline or back online, as its bridge reports it."""
        at = min(ev.ts, now)
        device = device_originator(ev.site, ev.building, ev.room, ev.device_id)
        if not ev.online:
            # The bridge also reports a device's last will at once: a broker restart sends
            # every device's. The same grace as an edge's rides that out (tick raises it).
            pending = _PendingOffline(AlertType.DEVICE_OFFLINE, ev.site, ev.building, at)
            if self.config.offline_grace_s == 0:
                return self._offline(device, pending)
            if self._report.last_reported(AlertType.DEVICE_OFFLINE, device) is None:
                self._pending_offline.setdefault(device, pending)
            return []
        self._pending_offline.pop(device, None)
        return self._report.condition(
            AlertType.DEVICE_OFFLINE,
            device,
            None,
            ev.site,
            ev.building,
            f"{ev.kind} {ev.device_id} in room {ev.room} back online",
            {"device_id": ev.device_id, "room": ev.room, "kind": ev.kind},
            at,
        )

    def tick(self, now: datetime) -> list[Signal]:
        """Raise the offline alerts whose grace period has run out."""
        signals: list[Signal] = []
        grace = timedelta(seconds=self.config.offline_grace_s)
        for originator, pending in list(self._pending_offline.items()):
            if now - pending.since >= grace:
                signals += self._offline(originator, pending)
        return signals

    def _offline(self, originator: str, pending: _PendingOffline) -> list[Signal]:
        self._pending_offline.pop(originator, None)
        return self._report.condition(
            pending.alert_type,
            originator,
            True,
            pending.site,
            pending.building,
            f"{describe(originator)} offline",
            {"originator": originator, "offline_since": pending.since.isoformat()},
            pending.since,
        )
