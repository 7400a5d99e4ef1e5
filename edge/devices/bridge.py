"""The device bridge: vendor telemetry in, canonical appliance states out.

Subscribes to the vendor topics of every configured device, normalises each message, runs the
appliance's pure state machine, and publishes canonical state changes (retained, QoS 1),
decimated telemetry (QoS 0) and per-device availability. Malformed or unknown payloads are
counted, logged with the reason and skipped: the bridge never stops on bad input.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.models import (
    Availability,
    BridgeHealth,
    DeviceState,
    DeviceTelemetry,
    utc_now,
)
from contracts.topics import BridgeChannel, DeviceAddress, DeviceChannel, bridge_topic, device_topic
from edge.devices.config import DeviceEntry, DevicesConfig
from edge.devices.machines import (
    filter_life_pct,
    initial_state,
    next_state,
    publishable_change,
    tick,
)
from edge.devices.model import ApplianceState, ApplianceType, MachineParams, Reading
from edge.devices.normalize import Parser, parser_for
from edge.devices.vendors import (
    SEGMENTS_AFTER_PREFIX,
    DeviceSource,
    home_assistant_config_topic,
    route_prefix,
    subscriptions,
)
from edge.mqtt import MqttLink, ReceivedMessage

log = logging.getLogger(__name__)

# Topics resolved to (device, parser) are remembered; a flood of distinct unknown topics only
# makes the cache start over.
_MAX_ROUTES = 100_000


@dataclass(slots=True)
class _Device:
    entry: DeviceEntry
    source: DeviceSource
    params: MachineParams
    address: DeviceAddress
    state: ApplianceState
    state_topic: str
    telemetry_topic: str
    availability_topic: str
    last_telemetry: float = float("-inf")
    rejected: int = 0


# What a topic means to the bridge: None, no configured device; (device, None), a topic of that
# device that carries nothing the bridge uses; (device, parser), telemetry or availability.
_Route = tuple[_Device, Parser | None] | None


@dataclass(slots=True)
class BridgeCounters:
    received: int = 0
    normalized: int = 0
    rejected: int = 0
    unknown_topic: int = 0
    ignored: int = 0
    published_states: int = 0
    last_rejection: str = ""


class DeviceBridge:
    """Runs every configured appliance's state machine from its vendor telemetry."""

    def __init__(
        self,
        config: DevicesConfig,
        link: MqttLink,
        *,
        wall: Callable[[], datetime] = utc_now,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.link = link
        self.wall = wall
        self.clock = clock
        self.counters = BridgeCounters()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._devices: dict[str, _Device] = {}
        self._by_prefix: dict[str, _Device] = {}
        self._routes: dict[str, _Route] = {}
        self._started_at = 0.0

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Build device states, subscribe to vendor topics, start the timer thread."""
        for entry in self.config.devices:
            source = DeviceSource(entry.id, entry.firmware, entry.topic)
            address = DeviceAddress(self.config.site, entry.building, entry.room, entry.id)
            device = _Device(
                entry=entry,
                source=source,
                params=self.config.params_for(entry),
                address=address,
                state=initial_state(entry.id, entry.kind),
                state_topic=device_topic(address, DeviceChannel.STATE),
                telemetry_topic=device_topic(address, DeviceChannel.TELEMETRY),
                availability_topic=device_topic(address, DeviceChannel.AVAILABILITY),
            )
            self._devices[entry.id] = device
            self._by_prefix[route_prefix(source)] = device
            for topic_filter in subscriptions(source):
                self.link.subscribe(topic_filter, self._on_message, qos=1)
        self._started_at = self.clock()
        self.link.on_connection_change = self._on_connection
        self.link.start()
        self._thread = threading.Thread(target=self._run, name="bridge-timers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop timers and disconnect (announcing the bridge offline)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.link.stop()

    def wait(self) -> None:
        """Block until stop() is called."""
        self._stop.wait()

    def request_stop(self) -> None:
        """Ask wait() to return (signal-safe)."""
        self._stop.set()

    def states(self) -> dict[str, ApplianceState]:
        """A copy of every device's current state."""
        with self._lock:
            return {k: d.state for k, d in self._devices.items()}

    # ----------------------------------------------------------------- messages

    def _route(self, topic: str) -> _Route:
        """What a topic means, worked out once per topic (paho's network thread only)."""
        try:
            return self._routes[topic]
        except KeyError:
            pass
        route: _Route = None
        parts = topic.split("/")
        for cut in range(1, SEGMENTS_AFTER_PREFIX + 1):
            if len(parts) > cut:
                device = self._by_prefix.get("/".join(parts[:-cut]))
                if device is not None:
                    route = (device, parser_for(device.source, topic))
                    break
        if len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
        self._routes[topic] = route
        return route

    def _on_message(self, msg: ReceivedMessage) -> None:
        counters = self.counters
        counters.received += 1
        route = self._route(msg.topic)
        if route is None:
            counters.unknown_topic += 1
            return
        device, parse = route
        if parse is None:
            counters.ignored += 1
            return
        try:
            reading = parse(msg.payload, self.wall())
        except ValueError as exc:
            self._rejected(device, str(exc))
            return
        if reading is None:
            counters.ignored += 1
            return
        counters.normalized += 1
        self._apply(device, reading)

    def _rejected(self, device: _Device, reason: str) -> None:
        self.counters.rejected += 1
        device.rejected += 1
        self.counters.last_rejection = f"{device.entry.id}: {reason}"[:300]
        # Log the first few per device, then every 100th, so a flood cannot drown the log.
        if device.rejected <= 5 or device.rejected % 100 == 0:
            log.warning(
                "device %s: message rejected (%s so far): %s",
                device.entry.id,
                device.rejected,
                reason,
            )

    def apply(self, device_id: str, reading: Reading) -> ApplianceState:
        """Feed one canonical reading to a device's state machine and publish what changed."""
        return self._apply(self._devices[device_id], reading)

    def _apply(self, device: _Device, reading: Reading) -> ApplianceState:
        with self._lock:
            old = device.state
            new = next_state(old, reading, device.params)
            device.state = new
            now = self.clock()
            send_telemetry = now - device.last_telemetry >= self.config.telemetry_interval_s
            if send_telemetry:
                device.last_telemetry = now
        if new is not old and publishable_change(old, new):
            self._publish_state(device, old, new)
        if send_telemetry and reading.online is None:
            self._publish_telemetry(device, reading)
        return new

    def run_timers(self) -> None:
        """Evaluate time-based transitions (silence, timeouts) for every device."""
        now = self.wall()
        changed: list[tuple[_Device, ApplianceState, ApplianceState]] = []
        with self._lock:
            for device in self._devices.values():
                old = device.state
                new = tick(old, now, device.params)
                if new is not old:
                    device.state = new
                    if publishable_change(old, new):
                        changed.append((device, old, new))
        for device, old, new in changed:
            self._publish_state(device, old, new)

    # ----------------------------------------------------------------- publishing

    def _identity(self, entry: DeviceEntry) -> dict[str, Any]:
        """The fields naming a device in every message about it."""
        return {
            "producer": self.config.producer_id,
            "site": self.config.site,
            "building": entry.building,
            "room": entry.room,
            "device_id": entry.id,
            "kind": entry.kind.value,
        }

    def state_payload(self, device: _Device, state: ApplianceState) -> DeviceState:
        """The canonical state message of a device."""
        entry = device.entry
        return DeviceState(
            **self._identity(entry),
            status=state.status.value,
            since=state.since,
            faults=sorted(f.value for f in state.faults),
            online=state.online,
            power_w=state.power_w,
            energy_kwh=state.energy_kwh,
            temperature_c=state.temperature_c,
            remaining_s=None if state.remaining_s is None else round(state.remaining_s, 1),
            cycle_started=state.cycle_started,
            sessions=state.sessions,
            filter_life_pct=round(filter_life_pct(state, device.params), 1)
            if entry.kind is ApplianceType.WATER_DISPENSER
            else None,
        )

    def _publish_state(self, device: _Device, old: ApplianceState, new: ApplianceState) -> None:
        payload = self.state_payload(device, new)
        self._send(device.state_topic, payload.to_bytes(), 1, True)
        self.counters.published_states += 1
        if old.online != new.online:
            availability = Availability(
                producer=self.config.producer_id,
                state="online" if new.online else "offline",
                ts=self.wall(),
            )
            self._send(
                device.availability_topic,
                availability.to_bytes(),
                1,
                True,
            )
        if new.faults - old.faults:
            log.warning(
                "device %s fault(s): %s",
                device.entry.id,
                ", ".join(sorted(new.faults - old.faults)),
            )

    def _publish_telemetry(self, device: _Device, reading: Reading) -> None:
        entry = device.entry
        telemetry = DeviceTelemetry(
            **self._identity(entry),
            power_w=device.state.power_w,
            energy_kwh=device.state.energy_kwh,
            voltage_v=reading.voltage_v,
            current_a=reading.current_a,
            temperature_c=device.state.temperature_c,
            water_l=device.state.water_l,
            leak=reading.leak,
            door_open=reading.door_open,
        )
        self._send(device.telemetry_topic, telemetry.to_bytes(), 0, False)

    def _send(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        try:
            self.link.publish(topic, payload, qos=qos, retain=retain)
        except ConnectionError as exc:
            # States are retained and re-sent in full on every reconnect (see _on_connection).
            log.warning("not published to %s: %s", topic, exc)

    def _on_connection(self, up: bool) -> None:
        if not up:
            return
        with self._lock:
            devices = [(d, d.state) for d in self._devices.values()]
        for device, state in devices:
            if state.last_seen is not None:
                payload = self.state_payload(device, state)
                self._send(device.state_topic, payload.to_bytes(), 1, True)
        if self.config.home_assistant_discovery:
            self.publish_discovery()

    def publish_discovery(self) -> None:
        """Home Assistant MQTT discovery: one status sensor and one power sensor per device."""
        prefix = self.config.discovery_prefix
        for device in self._devices.values():
            entry = device.entry
            state_topic = device.state_topic
            node = f"dormguard_{entry.id}".replace("-", "_").replace(".", "_")
            info = {
                "identifiers": [node],
                "name": f"{entry.kind.value.replace('_', ' ')} {entry.id}",
                "manufacturer": "dormguard",
                "suggested_area": f"{entry.building} {entry.room}",
            }
            availability = device.availability_topic
            status = {
                "name": "Status",
                "unique_id": f"{node}_status",
                "state_topic": state_topic,
                "value_template": "{{ value_json.status }}",
                "json_attributes_topic": state_topic,
                "availability_topic": availability,
                "availability_template": "{{ value_json.state }}",
                "payload_available": "online",
                "payload_not_available": "offline",
                "device": info,
            }
            power = {
                "name": "Power",
                "unique_id": f"{node}_power",
                "state_topic": device.telemetry_topic,
                "value_template": "{{ value_json.power_w }}",
                "unit_of_measurement": "W",
                "device_class": "power",
                "state_class": "measurement",
                "device": info,
            }
            for component, config in (("status", status), ("power", power)):
                self._send(
                    home_assistant_config_topic(prefix, "sensor", node, component),
                    json.dumps(config).encode(),
                    1,
                    True,
                )

    def health(self) -> BridgeHealth:
        """Counters and device summary."""
        with self._lock:
            states = [d.state for d in self._devices.values()]
        return BridgeHealth(
            producer=self.config.producer_id,
            received=self.counters.received,
            normalized=self.counters.normalized,
            rejected=self.counters.rejected,
            unknown_topic=self.counters.unknown_topic,
            devices=len(states),
            offline_devices=sum(1 for s in states if not s.online),
            faulty_devices=sum(1 for s in states if s.faults),
            uptime_s=round(self.clock() - self._started_at, 1),
            last_rejection=self.counters.last_rejection,
        )

    def _run(self) -> None:
        last_health = float("-inf")
        while not self._stop.wait(self.config.tick_s):
            try:
                self.run_timers()
                if self.clock() - last_health >= self.config.health_s and self.link.connected:
                    last_health = self.clock()
                    self._send(
                        bridge_topic(self.config.site, self.config.bridge_id, BridgeChannel.HEALTH),
                        self.health().to_bytes(),
                        0,
                        False,
                    )
            except Exception:
                log.exception("bridge timer error; continuing")
