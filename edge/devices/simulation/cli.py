"""`dormguard simulate devices`: plan the rooms, run the simulator, report what it sent."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from contracts.settings import MqttSettings
from edge.devices.model import Firmware
from edge.devices.simulation.faults import SimFault
from edge.devices.simulation.fleet import SimDevice, fault_visibility, plan_rooms
from edge.devices.simulation.runner import DeviceSimulator

log = logging.getLogger(__name__)


def parse_fault_args(values: Iterable[str]) -> dict[str, str]:
    """`device_id=fault` command-line values as a mapping; ValueError names a bad one."""
    faults: dict[str, str] = {}
    for value in values:
        device_id, sep, fault = value.partition("=")
        if not sep or not device_id.strip() or not fault.strip():
            raise ValueError(
                f"--fault {value!r}: expected DEVICE_ID=FAULT, e.g. washer-r101-1=leak"
            )
        faults[device_id.strip()] = fault.strip()
    return faults


def describe(device: SimDevice) -> str:
    """One line naming a simulated device, its firmware, topic and fault."""
    fault = ""
    if device.fault:
        hidden = fault_visibility(device, SimFault(device.fault))
        fault = f"  fault={device.fault}" + (f" (invisible: {hidden})" if hidden else "")
    return (
        f"{device.device_id:<20} {device.kind.value:<16} {device.firmware.value:<8} "
        f"{device.topic}{fault}"
    )


def run_simulation(
    settings: MqttSettings,
    rooms: int,
    *,
    speed: float = 60.0,
    duration_s: float | None = None,
    faults: Mapping[str, str] | None = None,
    building: str = "b1",
    firmware_mix: Sequence[str | Firmware] = ("tasmota", "esphome", "shelly"),
    period_s: float = 10.0,
    seed: int = 1,
    out: TextIO | None = None,
    credentials: Path | None = None,
) -> int:
    """`dormguard simulate devices`: run until SIGINT/SIGTERM or duration_s real seconds.

    Raises ValueError for a bad plan (rooms, faults) or an unreadable password secret.
    """
    stream = out if out is not None else sys.stdout
    devices = plan_rooms(rooms, building=building, firmware_mix=firmware_mix, faults=faults)
    password = settings.password.read() if settings.password else None
    for device in devices:
        print(describe(device), file=stream)
    simulator = DeviceSimulator(
        devices,
        settings,
        speed=speed,
        period_s=period_s,
        seed=seed,
        password=password,
        credentials=credentials,
    )
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping the simulation", signum)
        done.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _stop)
    try:
        simulator.start()
        if simulator.connected_count() == 0:
            print(
                f"dormguard simulate: no device could connect to {settings.host}:{settings.port}",
                file=sys.stderr,
            )
            return 2
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while not done.is_set():
            remaining = 1.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                break
            done.wait(min(1.0, remaining))
    finally:
        simulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    c = simulator.counters
    print(
        f"simulated {simulator.simulated_s / 60:.1f} min of {len(devices)} devices: "
        f"{c.published} messages published, {c.not_connected} reports skipped while "
        f"disconnected, {c.publish_errors} refused",
        file=stream,
    )
    return 0
