"""`DeviceSimulator`: simulated appliances on MQTT, one connection per device, on a paced clock."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from contracts.models import utc_now
from contracts.settings import MqttSettings, Secret
from edge.devices import vendors
from edge.devices.model import Firmware
from edge.devices.simulation.faults import SimFault, check_fault
from edge.devices.simulation.firmware import Message, availability_will, client_id_for, encode
from edge.devices.simulation.fleet import Hardware, SimDevice, fault_visibility, hardware_for
from edge.devices.simulation.ledger import MeterLedger, advance_ledger, new_ledger
from edge.devices.simulation.physics import new_trace, step, with_fault
from edge.devices.simulation.trace import ApplianceTrace
from edge.mqtt import MqttLink, Will

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SimCounters:
    ticks: int = 0
    published: int = 0
    not_connected: int = 0  # device reports skipped because its connection was down
    publish_errors: int = 0
    late_ticks: int = 0  # the host could not keep up with speed


@dataclass(slots=True)
class _Running:
    device: SimDevice
    hardware: Hardware
    will: Will
    rng: random.Random
    trace: ApplianceTrace
    ledger: MeterLedger
    link: MqttLink | None = None
    resend_binary: bool = True
    binary_sent: dict[str, bytes] = field(default_factory=dict)

    def connection_changed(self, up: bool) -> None:
        if up:  # ESPHome republishes every state on (re)connect
            self.resend_binary = True


def _stop_link(link: MqttLink) -> None:
    link.stop(announce_offline=True)


def _warn_if_invisible(device: SimDevice, fault: SimFault | None) -> None:
    """Log a fault this device's meter cannot report, so nobody waits for the bridge to see it."""
    hidden = fault_visibility(device, fault)
    if hidden:
        log.warning("fault %s on %s will not reach the bridge: %s", fault, device.device_id, hidden)


class DeviceSimulator:
    """Publishes simulated appliances' telemetry, one MQTT connection per device."""

    def __init__(
        self,
        devices: Sequence[SimDevice],
        settings: MqttSettings,
        *,
        speed: float = 60.0,
        period_s: float = 10.0,
        seed: int = 1,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
        password: str | None = None,
        credentials: Path | None = None,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if speed <= 0 or period_s <= 0:
            raise ValueError("speed and period_s must be positive")
        self.devices = list(devices)
        self.settings = settings
        self.speed = speed
        self.period_s = period_s
        self.seed = seed
        self.clock = clock
        self.wall = wall
        self.password = password
        self.credentials = credentials
        self.connect_timeout_s = connect_timeout_s
        self.counters = SimCounters()
        self._runs: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._sim_s = 0.0
        self._wall_start: datetime | None = None

    # --- lifecycle

    def start(self) -> None:
        """Connect every device (birth messages), then publish on the paced clock."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        self._wall_start = self.wall()
        for device in self.devices:
            hw = hardware_for(device)
            rng = random.Random(f"{self.seed}:{device.device_id}")
            fault = check_fault(device.kind, device.fault)
            _warn_if_invisible(device, fault)
            trace = new_trace(device.kind, rng, fault=fault, auto_off_s=hw.auto_off_s)
            run = _Running(
                device,
                hw,
                availability_will(device.firmware, device.topic),
                rng,
                trace,
                new_ledger(trace.energy_kwh, self._wall_start, rng),
            )
            self._runs[device.device_id] = run
            run.link = self._connect(run)
        deadline = self.clock() + self.connect_timeout_s
        for run in self._runs.values():
            if run.link is not None:
                run.link.wait_connected(max(0.0, deadline - self.clock()))
        missing = len(self._runs) - self.connected_count()
        if missing:
            log.warning("%s of %s simulated devices not connected yet", missing, len(self._runs))
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="device-simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing; every connected device announces offline and disconnects cleanly."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            links = [run.link for run in self._runs.values() if run.link is not None]
            for run in self._runs.values():
                run.link = None
        # Firmware restarting on purpose (Tasmota `Restart`, ESPHome shutdown) says so itself.
        if links:
            with ThreadPoolExecutor(min(32, len(links)), "sim-stop") as pool:
                list(pool.map(_stop_link, links))

    def inject(self, device_id: str, fault: str | None) -> None:
        """Give a running device a fault now (None clears it).

        "offline" drops the device's connection without DISCONNECT, so the broker publishes its
        last will; clearing it reconnects the device (birth message again).
        """
        to_drop: MqttLink | None = None
        with self._lock:
            run = self._runs.get(device_id)
            if run is None:
                raise ValueError(f"no running simulated device {device_id!r}")
            parsed = check_fault(run.device.kind, fault)
            run.device = replace(run.device, fault=parsed)
            run.trace = with_fault(run.trace, parsed)
            if parsed is SimFault.OFFLINE:
                to_drop, run.link = run.link, None
            elif run.link is None and self._thread is not None:
                run.link = self._connect(run)
        _warn_if_invisible(run.device, parsed)
        log.info("fault on %s now %s", device_id, parsed.value if parsed else "cleared")
        if to_drop is not None:
            to_drop.abort()

    # --- observation

    @property
    def simulated_s(self) -> float:
        """Simulated seconds since start."""
        return self._sim_s

    def trace(self, device_id: str) -> ApplianceTrace:
        """The latest state of one device."""
        with self._lock:
            return self._runs[device_id].trace

    def connected_count(self) -> int:
        """How many devices have a live MQTT connection now."""
        return sum(1 for r in self._runs.values() if r.link is not None and r.link.connected)

    # --- internals

    def _connect(self, run: _Running) -> MqttLink:
        # Tasmota, ESPHome and Shelly firmware all speak MQTT 3.1.1.
        settings = self.settings.model_copy(update={"protocol": "3.1.1"})
        password = self.password
        if self.credentials is not None:
            # Each device logs in as itself, as real firmware does (deploy/mosquitto).
            device_id = run.device.device_id
            settings = settings.model_copy(update={"username": device_id})
            password = Secret(file=self.credentials / f"{device_id}.password").read()
        link = MqttLink(
            settings, client_id=client_id_for(run.device), will=run.will, password=password
        )
        link.on_connection_change = run.connection_changed
        link.start()
        return link

    def _run(self) -> None:
        interval = self.period_s / self.speed
        next_at = self.clock()
        warned = False
        while not self._stopping.is_set():
            try:
                self._tick()
            except Exception:
                log.exception("simulation tick failed")
            next_at += interval
            now = self.clock()
            if next_at < now - interval:
                self.counters.late_ticks += 1
                next_at = now
                if not warned:
                    warned = True
                    log.warning(
                        "simulation cannot keep up with speed %s for %s devices; running slower",
                        self.speed,
                        len(self._runs),
                    )
            self._stopping.wait(max(0.0, next_at - now))

    def _tick(self) -> None:
        to_drop: list[MqttLink] = []
        with self._lock:
            self._sim_s += self.period_s
            assert self._wall_start is not None
            wall = self._wall_start + timedelta(seconds=self._sim_s)
            self.counters.ticks += 1
            for run in self._runs.values():
                run.trace = step(run.trace, self.period_s, run.rng)
                link = run.link
                if link is None:
                    continue
                if not link.connected:
                    self.counters.not_connected += 1
                    continue
                run.ledger = advance_ledger(run.ledger, run.trace.energy_kwh, wall)
                for message in self._to_send(run, encode(run.device, run.trace, run.ledger, wall)):
                    try:
                        link.publish(
                            message.topic, message.payload, qos=message.qos, retain=message.retain
                        )
                        self.counters.published += 1
                    except ConnectionError as exc:
                        self.counters.publish_errors += 1
                        log.warning("%s: %s", run.device.device_id, exc)
                if run.trace.fault is SimFault.OFFLINE:  # planned offline: drop after a report
                    to_drop.append(link)
                    run.link = None
        for link in to_drop:
            link.abort()

    @staticmethod
    def _to_send(run: _Running, messages: list[Message]) -> list[Message]:
        """ESPHome binary sensors publish on change (and on connect), everything else always."""
        if run.device.firmware is not Firmware.ESPHOME:
            return messages
        resend, run.resend_binary = run.resend_binary, False
        out: list[Message] = []
        for message in messages:
            entity = vendors.esphome_entity(run.device.topic, message.topic)
            if entity is not None and entity[0] == vendors.ESPHOME_BINARY_SENSOR:
                if not resend and run.binary_sent.get(message.topic) == message.payload:
                    continue
                run.binary_sent[message.topic] = message.payload
            out.append(message)
        return out
