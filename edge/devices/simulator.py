"""Simulated service-room appliances that speak MQTT as their real firmware does.

Three layers, for demos, tests and benchmarks of the device bridge:

* **Trace generators** (pure): `new_trace` and `step` move one appliance's physical state
  (washer programme, dryer thermostat, dispenser boiler, hair-dryer sessions) forward in
  simulated time, drawing every random choice from the `random.Random` they are given.
* **Encoders** (pure): `encode` turns a trace into the messages its meter publishes: Tasmota
  `tele/<topic>/SENSOR`, ESPHome `<prefix>/sensor/<id>/state`, Shelly Gen2
  `<prefix>/status/<component>`, with each firmware's number formats.
* **`DeviceSimulator`**: one MQTT connection per device, each with the device's own last will,
  publishing every device's readings on a paced clock; faults can be injected while it runs.

What each (appliance, firmware) fitting measures follows `firmware_configs/` (see `HARDWARE`):
a Tasmota plug has no temperature probe, ESPHome boxes add door / leak / boiler temperature /
water meter where their YAML has them, Shelly PM Minis report `pm1:0` and the hair dryer's
Shelly Plus Plug S `switch:0` with the plug's own temperature. The hair dryer's Tasmota plug
switches its load off after 30 minutes of continuous use, as its `Rule2` does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from contracts.models import utc_now
from contracts.settings import MqttSettings, Secret
from edge.devices.model import ApplianceType, Firmware
from edge.mqtt import MqttLink, Will

log = logging.getLogger(__name__)

AMBIENT_C = 24.0
_SAG_V_PER_KW = 0.8


class SimFault(StrEnum):
    """Faults the simulator can give a device."""

    LEAK = "leak"  # leak probe wet
    STUCK = "stuck"  # washer / dryer cycle that never leaves its main phase
    HEATER_FAILURE = "heater_failure"  # dispenser draws heater power, boiler stays flat
    OFFLINE = "offline"  # MQTT connection lost without DISCONNECT: the broker sends the will
    OVERRUN = "overrun"  # hair dryer left running


_ALL_KINDS = frozenset(ApplianceType)
FAULT_KINDS: Mapping[SimFault, frozenset[ApplianceType]] = {
    SimFault.LEAK: _ALL_KINDS,
    SimFault.STUCK: frozenset({ApplianceType.WASHER, ApplianceType.DRYER}),
    SimFault.HEATER_FAILURE: frozenset({ApplianceType.WATER_DISPENSER}),
    SimFault.OFFLINE: _ALL_KINDS,
    SimFault.OVERRUN: frozenset({ApplianceType.HAIR_DRYER}),
}


def check_fault(kind: ApplianceType, fault: str | None) -> SimFault | None:
    """The fault as a SimFault; ValueError when unknown or meaningless for this appliance."""
    if fault is None:
        return None
    try:
        parsed = SimFault(fault)
    except ValueError:
        known = ", ".join(f.value for f in SimFault)
        raise ValueError(f"unknown fault {fault!r} (known: {known})") from None
    if kind not in FAULT_KINDS[parsed]:
        kinds = ", ".join(sorted(k.value for k in FAULT_KINDS[parsed]))
        raise ValueError(f"fault {parsed.value!r} applies to {kinds}, not to a {kind.value}")
    return parsed


# ----------------------------------------------------------------------------- devices

_NAME_PREFIX: Mapping[ApplianceType, str] = {
    ApplianceType.WASHER: "washer",
    ApplianceType.DRYER: "dryer",
    ApplianceType.WATER_DISPENSER: "water",
    ApplianceType.HAIR_DRYER: "hairdryer",
}
ROOM_LAYOUT: tuple[tuple[ApplianceType, int], ...] = (
    (ApplianceType.WASHER, 1),
    (ApplianceType.WASHER, 2),
    (ApplianceType.DRYER, 1),
    (ApplianceType.WATER_DISPENSER, 1),
    (ApplianceType.HAIR_DRYER, 1),
)


@dataclass(frozen=True)
class SimDevice:
    """One simulated appliance and the meter fitted to it."""

    device_id: str
    kind: ApplianceType
    firmware: Firmware
    building: str
    room: str
    topic: str  # Tasmota %topic%, or the ESPHome / Shelly topic prefix
    fault: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ApplianceType(self.kind))
        object.__setattr__(self, "firmware", Firmware(self.firmware))
        object.__setattr__(self, "fault", check_fault(self.kind, self.fault))


def device_name(kind: ApplianceType, room: str, number: int) -> str:
    """`<type>-<room>-<n>`: the device id, and the Tasmota topic (firmware_configs/README.md)."""
    return f"{_NAME_PREFIX[kind]}-{room}-{number}"


def firmware_topic(firmware: Firmware, name: str) -> str:
    """The topic the bridge config names: Tasmota %topic%, ESPHome or Shelly prefix."""
    if firmware is Firmware.TASMOTA:
        return name
    if firmware is Firmware.ESPHOME:
        return f"dorm-dev/{name}"
    return f"shelly-{name}"


def availability_will(firmware: Firmware, topic: str) -> Will:
    """The device's retained birth / last-will pair, as each firmware configures it."""
    if firmware is Firmware.TASMOTA:
        return Will(f"tele/{topic}/LWT", b"Offline", b"Online")
    if firmware is Firmware.ESPHOME:
        return Will(f"{topic}/status", b"offline", b"online")
    return Will(f"{topic}/online", b"false", b"true")


def plan_rooms(
    rooms: int,
    *,
    building: str = "b1",
    firmware_mix: Sequence[str | Firmware] = ("tasmota", "esphome", "shelly"),
    faults: Mapping[str, str] | None = None,
    first_room: int = 101,
) -> list[SimDevice]:
    """Rooms r101.. with 2 washers, a dryer, a dispenser and a hair dryer; firmware round-robin."""
    if rooms < 1 or first_room < 0:
        raise ValueError("rooms must be at least 1 and first_room not negative")
    mix = [Firmware(f) for f in firmware_mix]
    if not mix:
        raise ValueError("firmware_mix must name at least one firmware")
    wanted = dict(faults or {})
    devices: list[SimDevice] = []
    for r in range(rooms):
        room = f"r{first_room + r}"
        for kind, number in ROOM_LAYOUT:
            name = device_name(kind, room, number)
            firmware = mix[len(devices) % len(mix)]
            fault = wanted.pop(name, None)
            try:
                devices.append(
                    SimDevice(
                        name, kind, firmware, building, room, firmware_topic(firmware, name), fault
                    )
                )
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
    if wanted:
        raise ValueError(f"faults name unknown devices: {', '.join(sorted(wanted))}")
    return devices


def bridge_device_entries(devices: Iterable[SimDevice]) -> list[dict[str, str]]:
    """The `devices:` list of a bridge config (edge.devices.config.DeviceEntry) for these."""
    return [
        {
            "id": d.device_id,
            "kind": d.kind.value,
            "building": d.building,
            "room": d.room,
            "firmware": d.firmware.value,
            "topic": d.topic,
        }
        for d in devices
    ]


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


# ----------------------------------------------------------------------------- hardware


@dataclass(frozen=True, slots=True)
class Hardware:
    """What one (appliance, firmware) fitting measures, as configured in firmware_configs/."""

    probe: str | None = None  # appliance temperature: ESPHome object id (Tasmota: DS18B20)
    water_meter: bool = False  # ESPHome water_total
    door: bool = False  # ESPHome binary_sensor door
    leak: bool = False  # ESPHome binary_sensor leak
    shelly_component: str = "pm1:0"  # Plus PM Mini; "switch:0" for the Plus Plug S
    auto_off_s: float | None = None  # the plug itself cuts a load running this long


_PLAIN = Hardware()
HARDWARE: Mapping[tuple[ApplianceType, Firmware], Hardware] = {
    (ApplianceType.WASHER, Firmware.TASMOTA): _PLAIN,
    (ApplianceType.WASHER, Firmware.ESPHOME): Hardware(door=True, leak=True),
    (ApplianceType.WASHER, Firmware.SHELLY): _PLAIN,
    (ApplianceType.DRYER, Firmware.TASMOTA): _PLAIN,
    # dryer/esphome.yaml has no drum probe: add probe="drum_temperature" to publish one.
    (ApplianceType.DRYER, Firmware.ESPHOME): Hardware(door=True),
    (ApplianceType.DRYER, Firmware.SHELLY): _PLAIN,
    # The Athom plug has no GPIO for a DS18B20 (water_dispenser/tasmota.txt).
    (ApplianceType.WATER_DISPENSER, Firmware.TASMOTA): _PLAIN,
    (ApplianceType.WATER_DISPENSER, Firmware.ESPHOME): Hardware(
        probe="boiler_temperature", water_meter=True, leak=True
    ),
    (ApplianceType.WATER_DISPENSER, Firmware.SHELLY): _PLAIN,
    (ApplianceType.HAIR_DRYER, Firmware.TASMOTA): Hardware(auto_off_s=1800.0),
    (ApplianceType.HAIR_DRYER, Firmware.ESPHOME): _PLAIN,
    (ApplianceType.HAIR_DRYER, Firmware.SHELLY): Hardware(shelly_component="switch:0"),
}


def hardware_for(device: SimDevice) -> Hardware:
    """The meter fitted to this device."""
    return HARDWARE[(device.kind, device.firmware)]


def fault_visibility(device: SimDevice, fault: SimFault | None) -> str | None:
    """Why the bridge cannot see this fault on this device's hardware (None: it can)."""
    hw = hardware_for(device)
    if fault is SimFault.LEAK and not hw.leak:
        return f"{device.firmware.value} {device.kind.value} meter has no leak probe"
    if fault is SimFault.HEATER_FAILURE and hw.probe is None:
        return f"{device.firmware.value} {device.kind.value} meter reports no boiler temperature"
    return None


# ----------------------------------------------------------------------------- traces


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of a washer / dryer programme drawing a power within [low_w, high_w]."""

    phase: str
    duration_s: float
    low_w: float
    high_w: float
    power_factor: float


@dataclass(frozen=True, slots=True)
class LaundryState:
    """A washer or dryer between and during cycles."""

    next_start_s: float
    program: tuple[Segment, ...] = ()  # the running cycle; empty when idle
    cycle_start_s: float | None = None
    door_events: tuple[tuple[float, bool], ...] = ()  # (at_s, open) still to come, in order
    cycles: int = 0
    heater_w: float = 0.0  # dryer element rating
    heater_on: bool = False


@dataclass(frozen=True, slots=True)
class DispenserState:
    """A boiling-water dispenser's boiler, thermostat and tap."""

    heater_w: float
    next_draw_s: float
    heater_on: bool = False
    draw_left_l: float = 0.0


@dataclass(frozen=True, slots=True)
class HairDryerState:
    """A hair dryer on its plug: sessions of use, and the plug's relay."""

    next_session_s: float
    session_end_s: float | None = None  # None: off; inf: left running
    on_since_s: float | None = None
    level_w: float = 0.0
    sessions: int = 0


Machine = LaundryState | DispenserState | HairDryerState


@dataclass(frozen=True, slots=True)
class ApplianceTrace:
    """One appliance at `at_s` simulated seconds: its state and what a meter reads now."""

    kind: ApplianceType
    machine: Machine
    at_s: float = 0.0
    fault: SimFault | None = None
    auto_off_s: float | None = None
    phase: str = "idle"
    power_w: float = 0.0
    power_factor: float = 1.0
    voltage_v: float = 230.0
    energy_kwh: float = 0.0  # cumulative meter
    temperature_c: float | None = None  # dispenser boiler / dryer drum
    water_l: float | None = None  # dispenser: cumulative litres drawn
    door_open: bool | None = None  # washer / dryer
    board_temp_c: float = 26.0  # the meter's own temperature (Shelly Plus Plug S reports it)

    @property
    def current_a(self) -> float:
        if self.power_w <= 0.05 or self.power_factor <= 0:
            return 0.0
        return self.power_w / (self.voltage_v * self.power_factor)

    @property
    def leak(self) -> bool:
        return self.fault is SimFault.LEAK


def new_trace(
    kind: ApplianceType,
    rng: random.Random,
    *,
    fault: SimFault | None = None,
    auto_off_s: float | None = None,
    first_use_s: float | None = None,
) -> ApplianceTrace:
    """A trace at time 0: a meter with some history; first use after `first_use_s` (random)."""
    first = rng.uniform(0.0, 600.0) if first_use_s is None else first_use_s
    voltage = rng.uniform(227.0, 233.0)
    if kind in (ApplianceType.WASHER, ApplianceType.DRYER):
        dryer = kind is ApplianceType.DRYER
        return ApplianceTrace(
            kind,
            LaundryState(
                next_start_s=first,
                door_events=_loading_events(first, rng),
                heater_w=rng.uniform(1800.0, 2600.0) if dryer else 0.0,
            ),
            fault=fault,
            voltage_v=voltage,
            energy_kwh=rng.uniform(50.0, 900.0) if dryer else rng.uniform(20.0, 400.0),
            temperature_c=AMBIENT_C if dryer else None,
            door_open=False,
            power_factor=0.2,
        )
    if kind is ApplianceType.WATER_DISPENSER:
        return ApplianceTrace(
            kind,
            DispenserState(heater_w=rng.uniform(1960.0, 2040.0), next_draw_s=first),
            fault=fault,
            phase="ready",
            voltage_v=voltage,
            energy_kwh=rng.uniform(100.0, 2000.0),
            temperature_c=rng.uniform(86.0, 92.0),
            water_l=rng.uniform(0.0, 3000.0),
            power_factor=0.5,
        )
    return ApplianceTrace(
        kind,
        HairDryerState(next_session_s=first),
        fault=fault,
        auto_off_s=auto_off_s,
        phase="off",
        voltage_v=voltage,
        energy_kwh=rng.uniform(1.0, 60.0),
        power_factor=0.0,
    )


def with_fault(trace: ApplianceTrace, fault: SimFault | None) -> ApplianceTrace:
    """The same appliance with a different fault (None clears it), effective from the next step.

    A hair dryer given "overrun" while off is switched on at once and left running; a washer or
    dryer given "stuck" while idle starts a cycle at once.
    """
    machine = trace.machine
    if (
        fault is SimFault.OVERRUN
        and isinstance(machine, HairDryerState)
        and machine.session_end_s is None
    ):
        machine = replace(machine, next_session_s=trace.at_s)
    return replace(trace, fault=fault, machine=machine)


def step(trace: ApplianceTrace, dt_s: float, rng: random.Random) -> ApplianceTrace:
    """The appliance dt_s simulated seconds later."""
    if dt_s <= 0:
        raise ValueError("dt_s must be positive")
    t = trace.at_s + dt_s
    machine = trace.machine
    if isinstance(machine, LaundryState):
        if trace.kind is ApplianceType.WASHER:
            changes = _washer_step(trace, machine, t, dt_s, rng)
        else:
            changes = _dryer_step(trace, machine, t, dt_s, rng)
    elif isinstance(machine, DispenserState):
        changes = _dispenser_step(trace, machine, t, dt_s, rng)
    else:
        changes = _hair_dryer_step(trace, machine, t, rng)
    power = float(changes["power_w"])
    # Mains wanders slowly; a heavy load pulls the socket voltage down a little.
    mains = trace.voltage_v + trace.power_w / 1000 * _SAG_V_PER_KW + rng.gauss(0.0, 0.3)
    mains = min(236.0, max(224.0, mains))
    board_target = 26.0 + power * 0.011
    return replace(
        trace,
        at_s=t,
        voltage_v=mains - power / 1000 * _SAG_V_PER_KW,
        energy_kwh=trace.energy_kwh + power * dt_s / 3.6e6,
        board_temp_c=_approach(trace.board_temp_c, board_target, dt_s, 600.0),
        **changes,
    )


def generate(
    kind: ApplianceType,
    rng: random.Random,
    *,
    duration_s: float,
    step_s: float = 10.0,
    fault: SimFault | None = None,
    auto_off_s: float | None = None,
    first_use_s: float | None = None,
) -> list[ApplianceTrace]:
    """Samples every step_s over duration_s of a new appliance (first sample at step_s)."""
    trace = new_trace(kind, rng, fault=fault, auto_off_s=auto_off_s, first_use_s=first_use_s)
    samples: list[ApplianceTrace] = []
    while trace.at_s + step_s <= duration_s + 1e-9:
        trace = step(trace, step_s, rng)
        samples.append(trace)
    return samples


def _approach(value: float, target: float, dt_s: float, tau_s: float) -> float:
    """First-order lag: a temperature moving toward its target."""
    return target + (value - target) * math.exp(-dt_s / tau_s)


def _segment_at(program: Sequence[Segment], elapsed_s: float) -> int | None:
    end = 0.0
    for index, segment in enumerate(program):
        end += segment.duration_s
        if elapsed_s < end:
            return index
    return None


def _loading_events(start_s: float, rng: random.Random) -> tuple[tuple[float, bool], ...]:
    """Door opened to load the drum, closed just before the start."""
    return ((start_s - rng.uniform(90.0, 240.0), True), (start_s - rng.uniform(10.0, 30.0), False))


def _agitation(rng: random.Random) -> Segment:
    return Segment("wash", rng.uniform(60.0, 180.0), 150.0, 450.0, 0.7)


def _pause(rng: random.Random) -> Segment:
    # Pauses stay under 4 minutes: the bridge holds "running" through 5 quiet minutes.
    return Segment("pause", rng.uniform(60.0, 240.0), 0.0, 2.0, 0.3)


def washer_program(rng: random.Random) -> tuple[Segment, ...]:
    """A ~60 min programme: fill, heat, wash with pauses, two rinses, spin."""
    heater = rng.uniform(1800.0, 2200.0)
    head = (
        Segment("fill", 180.0, 3.0, 8.0, 0.4),
        Segment("heat", rng.uniform(600.0, 840.0), heater * 0.99, heater * 1.01, 0.99),
    )
    tail: list[Segment] = []
    for _ in range(2):
        tail += [
            Segment("drain", rng.uniform(60.0, 90.0), 30.0, 60.0, 0.6),
            Segment("rinse_fill", 120.0, 3.0, 8.0, 0.4),
            Segment("rinse", rng.uniform(180.0, 300.0), 150.0, 350.0, 0.7),
        ]
    tail += [
        Segment("drain", rng.uniform(60.0, 90.0), 30.0, 60.0, 0.6),
        Segment("spin", rng.uniform(360.0, 480.0), 300.0, 650.0, 0.75),
    ]
    fixed = sum(s.duration_s for s in head) + sum(s.duration_s for s in tail)
    wash_target = max(600.0, rng.uniform(55.0, 65.0) * 60 - fixed)
    wash = [_agitation(rng)]
    while sum(s.duration_s for s in wash) < wash_target:
        wash += [_pause(rng), _agitation(rng)]
    return (*head, *wash, *tail)


def dryer_program(rng: random.Random) -> tuple[Segment, ...]:
    """45-70 min: tumble with the heater under thermostat control, then cool down."""
    total = rng.uniform(45.0, 70.0) * 60
    cool = rng.uniform(300.0, 480.0)
    return (
        Segment("dry", total - cool, 150.0, 250.0, 0.75),
        Segment("cooldown", cool, 150.0, 250.0, 0.75),
    )


_STICKY: Mapping[ApplianceType, frozenset[str]] = {
    ApplianceType.WASHER: frozenset({"wash", "pause"}),
    ApplianceType.DRYER: frozenset({"dry"}),
}


def _hold_in_main_phase(
    kind: ApplianceType, program: tuple[Segment, ...], elapsed_s: float, rng: random.Random
) -> tuple[Segment, ...]:
    """Stuck: the programme never leaves its main phase (washer agitation, dryer heating)."""
    sticky = _STICKY[kind]
    last = max(i for i, s in enumerate(program) if s.phase in sticky)
    index = _segment_at(program, elapsed_s)
    if index is not None and index < last:
        return program
    if kind is ApplianceType.WASHER:
        more: tuple[Segment, ...] = (_pause(rng), _agitation(rng))
    else:
        more = (Segment("dry", 600.0, 150.0, 250.0, 0.75),)
    if index == last:
        return (*program[: last + 1], *more, *program[last + 1 :])
    # Already past it (rinsing, spinning, cooling down): back into it from now on.
    done: list[Segment] = []
    start = 0.0
    for segment in program:
        if start + segment.duration_s <= elapsed_s:
            done.append(segment)
            start += segment.duration_s
        else:
            done.append(replace(segment, duration_s=elapsed_s - start))
            break
    return (*done, *more, *program[last + 1 :])


def _laundry_cycle(
    trace: ApplianceTrace,
    m: LaundryState,
    t: float,
    rng: random.Random,
    make_program: Callable[[random.Random], tuple[Segment, ...]],
) -> tuple[LaundryState, Segment | None, bool]:
    """Door events, cycle start and finish; the segment running now (None: idle)."""
    door = bool(trace.door_open)
    events = m.door_events
    while events and events[0][0] <= t:
        door = events[0][1]
        events = events[1:]
    m = replace(m, door_events=events)
    stuck = trace.fault is SimFault.STUCK
    if m.cycle_start_s is None and (stuck or t >= m.next_start_s):
        m = replace(m, program=make_program(rng), cycle_start_s=t, door_events=())
        door = False
    if m.cycle_start_s is None:
        return m, None, door
    elapsed = t - m.cycle_start_s
    if stuck:
        m = replace(m, program=_hold_in_main_phase(trace.kind, m.program, elapsed, rng))
    index = _segment_at(m.program, elapsed)
    if index is not None:
        return m, m.program[index], door
    # Finished: someone takes the laundry out some minutes later, the next user loads later on.
    opened = t + rng.uniform(120.0, 1200.0)
    closed = opened + rng.uniform(45.0, 180.0)
    next_start = closed + rng.uniform(600.0, 5400.0)
    m = replace(
        m,
        program=(),
        cycle_start_s=None,
        next_start_s=next_start,
        door_events=((opened, True), (closed, False), *_loading_events(next_start, rng)),
        cycles=m.cycles + 1,
        heater_on=False,
    )
    return m, None, door


def _washer_step(
    trace: ApplianceTrace, m: LaundryState, t: float, dt_s: float, rng: random.Random
) -> dict[str, Any]:
    m, segment, door = _laundry_cycle(trace, m, t, rng, washer_program)
    if segment is None:
        return {
            "machine": m,
            "phase": "idle",
            "power_w": rng.uniform(0.0, 1.0),
            "power_factor": 0.2,
            "door_open": door,
        }
    return {
        "machine": m,
        "phase": segment.phase,
        "power_w": rng.uniform(segment.low_w, segment.high_w),
        "power_factor": segment.power_factor,
        "door_open": door,
    }


_DRYER_ON_BELOW_C = 45.0
_DRYER_OFF_ABOVE_C = 64.0


def _dryer_step(
    trace: ApplianceTrace, m: LaundryState, t: float, dt_s: float, rng: random.Random
) -> dict[str, Any]:
    m, segment, door = _laundry_cycle(trace, m, t, rng, dryer_program)
    drum = trace.temperature_c if trace.temperature_c is not None else AMBIENT_C
    if segment is None:
        return {
            "machine": m,
            "phase": "idle",
            "power_w": rng.uniform(0.0, 1.0),
            "power_factor": 0.2,
            "door_open": door,
            "temperature_c": _approach(drum, AMBIENT_C, dt_s, 900.0),
        }
    heater_on = m.heater_on
    if segment.phase == "dry":
        if drum < _DRYER_ON_BELOW_C:
            heater_on = True
        elif drum > _DRYER_OFF_ABOVE_C:
            heater_on = False
    else:
        heater_on = False
    m = replace(m, heater_on=heater_on)
    motor = rng.uniform(segment.low_w, segment.high_w)
    heater = m.heater_w * rng.uniform(0.99, 1.01) if heater_on else 0.0
    apparent = motor / segment.power_factor + heater
    # Heater on: the drum air heads for ~75 °C; off, the tumbling load cools toward ~32 °C.
    target, tau = (75.0, 360.0) if heater_on else (32.0, 480.0)
    drum = _approach(drum, target, dt_s, tau)
    return {
        "machine": m,
        "phase": "heating" if heater_on else segment.phase,
        "power_w": motor + heater,
        "power_factor": (motor + heater) / apparent,
        "door_open": door,
        "temperature_c": drum,
    }


_BOILER_L = 6.0
_INLET_C = 15.0
_REHEAT_AT_C = 85.0
_HEAT_TO_C = 92.0
_LOSS_C_PER_S = 0.3 / 60
_TAP_L_PER_S = 0.04
_MEAN_DRAW_GAP_S = 900.0


def _dispenser_step(
    trace: ApplianceTrace, m: DispenserState, t: float, dt_s: float, rng: random.Random
) -> dict[str, Any]:
    temp = trace.temperature_c if trace.temperature_c is not None else AMBIENT_C
    water = trace.water_l or 0.0
    draw_left, next_draw = m.draw_left_l, m.next_draw_s
    if draw_left <= 0 and t >= next_draw:
        draw_left = rng.uniform(0.25, 1.5)
        next_draw = t + 60.0 + rng.expovariate(1 / _MEAN_DRAW_GAP_S)
    drawn = min(draw_left, _TAP_L_PER_S * dt_s)
    water += drawn
    draw_left -= drawn
    if trace.fault is SimFault.HEATER_FAILURE:
        # The element draws its power but the probe sees no rise (detached probe, scaled
        # element): the boiler reading sits still while the heater stays on.
        heater_on = True
    else:
        temp = (temp * (_BOILER_L - drawn) + _INLET_C * drawn) / _BOILER_L
        heater_on = m.heater_on
        if temp <= _REHEAT_AT_C:
            heater_on = True
        elif temp >= _HEAT_TO_C:
            heater_on = False
        gain = m.heater_w * dt_s / (_BOILER_L * 4186.0) if heater_on else 0.0
        temp = temp + gain - _LOSS_C_PER_S * dt_s
    standby = rng.uniform(1.5, 2.5)
    heater = m.heater_w * rng.uniform(0.99, 1.01) if heater_on else 0.0
    phase = "heating" if heater_on else ("ready" if temp >= _REHEAT_AT_C else "standby")
    return {
        "machine": replace(m, heater_on=heater_on, draw_left_l=draw_left, next_draw_s=next_draw),
        "phase": phase,
        "power_w": heater + standby,
        "power_factor": 0.99 if heater_on else 0.5,
        "temperature_c": temp,
        "water_l": water,
    }


def _hair_dryer_step(
    trace: ApplianceTrace, m: HairDryerState, t: float, rng: random.Random
) -> dict[str, Any]:
    overrun = trace.fault is SimFault.OVERRUN
    if m.session_end_s is None and t >= m.next_session_s:
        m = replace(
            m,
            session_end_s=t + rng.uniform(180.0, 600.0),
            on_since_s=t,
            level_w=rng.uniform(1200.0, 1800.0),
            sessions=m.sessions + 1,
        )
    if m.session_end_s is not None:
        end = m.session_end_s
        if overrun:
            end = math.inf
        elif math.isinf(end):  # overrun cleared: someone switches it off soon
            end = t + rng.uniform(60.0, 300.0)
        cut = (
            trace.auto_off_s is not None
            and m.on_since_s is not None
            and t - m.on_since_s >= trace.auto_off_s
        )
        if cut or t >= end:
            # After an auto-off the relay stays open until the next user presses the button.
            gap = max(120.0, rng.expovariate(1 / 1800.0))
            m = replace(m, session_end_s=None, on_since_s=None, next_session_s=t + gap)
        else:
            m = replace(m, session_end_s=end)
    if m.session_end_s is None:
        return {"machine": m, "phase": "off", "power_w": 0.0, "power_factor": 0.0}
    return {
        "machine": m,
        "phase": "on",
        "power_w": m.level_w * rng.uniform(0.985, 1.015),
        "power_factor": 0.99,
    }


# ----------------------------------------------------------------------------- meter ledger


@dataclass(frozen=True, slots=True)
class MeterLedger:
    """The figures a plug keeps besides its total: today, yesterday, per report, per minute."""

    total_start: datetime
    day: date
    day_start_kwh: float
    yesterday_kwh: float
    reported_kwh: float  # total at the previous report
    period_wh: float  # energy since the previous report
    minute: int  # unix minute now open
    minute_start_kwh: float
    by_minute_mwh: tuple[float, float, float]  # last three complete minutes, newest first


def new_ledger(total_kwh: float, wall: datetime, rng: random.Random) -> MeterLedger:
    """A meter installed some months ago, with a plausible yesterday."""
    start = (wall - timedelta(days=rng.randint(30, 400))).replace(microsecond=0)
    return MeterLedger(
        total_start=start,
        day=wall.date(),
        day_start_kwh=total_kwh,
        yesterday_kwh=round(rng.uniform(0.2, 6.0), 3),
        reported_kwh=total_kwh,
        period_wh=0.0,
        minute=int(wall.timestamp() // 60),
        minute_start_kwh=total_kwh,
        by_minute_mwh=(0.0, 0.0, 0.0),
    )


def advance_ledger(ledger: MeterLedger, total_kwh: float, wall: datetime) -> MeterLedger:
    """The ledger at a new report of `total_kwh` (call once per report)."""
    day_start, yesterday = ledger.day_start_kwh, ledger.yesterday_kwh
    if wall.date() != ledger.day:
        yesterday = ledger.reported_kwh - ledger.day_start_kwh
        day_start = ledger.reported_kwh
    minute, minute_start, by_minute = ledger.minute, ledger.minute_start_kwh, ledger.by_minute_mwh
    now_minute = int(wall.timestamp() // 60)
    if now_minute != minute:
        closed = (ledger.reported_kwh - minute_start) * 1e6
        skipped = min(3, max(0, now_minute - minute - 1))
        history = (closed, *(0.0 for _ in range(skipped)), *by_minute)
        by_minute = (history[0], history[1], history[2])
        minute, minute_start = now_minute, ledger.reported_kwh
    return replace(
        ledger,
        day=wall.date(),
        day_start_kwh=day_start,
        yesterday_kwh=yesterday,
        reported_kwh=total_kwh,
        period_wh=(total_kwh - ledger.reported_kwh) * 1000,
        minute=minute,
        minute_start_kwh=minute_start,
        by_minute_mwh=by_minute,
    )


# ----------------------------------------------------------------------------- encoders


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message a device publishes."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True, slots=True)
class _Fixed:
    """A JSON number printed with a fixed number of decimals, as firmware prints it."""

    value: float
    decimals: int


def _fixed(value: float, decimals: int) -> str:
    return f"{round(value, decimals) + 0.0:.{decimals}f}"  # + 0.0: never "-0.0"


def _json(value: object) -> str:
    """Compact JSON like the firmware's own (no spaces, fixed decimals)."""
    if isinstance(value, _Fixed):
        return _fixed(value.value, value.decimals)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json(v) for v in value) + "]"
    return json.dumps(value)


def _hex_id(device_id: str, length: int) -> str:
    return hashlib.sha256(device_id.encode()).hexdigest()[:length].upper()


def tasmota_sensor(
    device: SimDevice, trace: ApplianceTrace, ledger: MeterLedger, wall: datetime, hw: Hardware
) -> Message:
    """`tele/<topic>/SENSOR` as Tasmota's energy driver (and DS18x20 driver) print it."""
    power, volts, amps = trace.power_w, trace.voltage_v, trace.current_a
    apparent = volts * amps
    reactive = math.sqrt(max(apparent * apparent - power * power, 0.0))
    data: dict[str, object] = {
        "Time": wall.strftime("%Y-%m-%dT%H:%M:%S"),
        "ENERGY": {
            "TotalStartTime": ledger.total_start.strftime("%Y-%m-%dT%H:%M:%S"),
            "Total": _Fixed(trace.energy_kwh, 3),
            "Yesterday": _Fixed(ledger.yesterday_kwh, 3),
            "Today": _Fixed(trace.energy_kwh - ledger.day_start_kwh, 3),
            "Period": round(ledger.period_wh),
            "Power": round(power),
            "ApparentPower": round(apparent),
            "ReactivePower": round(reactive),
            "Factor": _Fixed(power / apparent if apparent > 0 else 0.0, 2),
            "Voltage": round(volts),
            "Current": _Fixed(amps, 3),
        },
    }
    if hw.probe is not None and trace.temperature_c is not None:
        probe_id = _hex_id(device.device_id, 12)
        data["DS18B20"] = {"Id": probe_id, "Temperature": _Fixed(trace.temperature_c, 1)}
        data["TempUnit"] = "C"
    return Message(f"tele/{device.topic}/SENSOR", _json(data).encode())


def esphome_states(prefix: str, trace: ApplianceTrace, hw: Hardware) -> list[Message]:
    """Every `<prefix>/sensor|binary_sensor/<id>/state` value (ESPHome retains states)."""
    values = [
        ("power", _fixed(trace.power_w, 1)),
        ("voltage", _fixed(trace.voltage_v, 1)),
        ("current", _fixed(trace.current_a, 2)),
        ("energy", _fixed(trace.energy_kwh, 3)),
    ]
    if hw.probe is not None:
        temp = trace.temperature_c
        values.append((hw.probe, "nan" if temp is None else _fixed(temp, 1)))
    if hw.water_meter and trace.water_l is not None:
        values.append(("water_total", _fixed(trace.water_l, 2)))
    messages = [Message(f"{prefix}/sensor/{k}/state", v.encode(), retain=True) for k, v in values]
    binary: list[tuple[str, bool]] = []
    if hw.door:
        binary.append(("door", bool(trace.door_open)))
    if hw.leak:
        binary.append(("leak", trace.leak))
    for object_id, on in binary:
        payload = b"ON" if on else b"OFF"
        messages.append(Message(f"{prefix}/binary_sensor/{object_id}/state", payload, retain=True))
    return messages


def shelly_status(prefix: str, trace: ApplianceTrace, ledger: MeterLedger, hw: Hardware) -> Message:
    """`<prefix>/status/pm1:0` (Plus PM Mini) or `status/switch:0` (Plus Plug S)."""
    aenergy = {
        "total": _Fixed(trace.energy_kwh * 1000, 3),
        "by_minute": [_Fixed(v, 3) for v in ledger.by_minute_mwh],
        "minute_ts": ledger.minute * 60,
    }
    apower, volts = _Fixed(trace.power_w, 1), _Fixed(trace.voltage_v, 1)
    amps, freq = _Fixed(trace.current_a, 3), _Fixed(50.0, 1)
    data: dict[str, object]
    if hw.shelly_component == "switch:0":
        board = trace.board_temp_c
        data = {
            "id": 0,
            "source": "init",
            "output": True,
            "apower": apower,
            "voltage": volts,
            "freq": freq,
            "current": amps,
            "aenergy": aenergy,
            "temperature": {"tC": _Fixed(board, 1), "tF": _Fixed(board * 9 / 5 + 32, 1)},
        }
    else:
        returned = {
            "total": _Fixed(0.0, 3),
            "by_minute": [_Fixed(0.0, 3)] * 3,
            "minute_ts": ledger.minute * 60,
        }
        data = {
            "id": 0,
            "voltage": volts,
            "current": amps,
            "apower": apower,
            "freq": freq,
            "aenergy": aenergy,
            "ret_aenergy": returned,
        }
    return Message(f"{prefix}/status/{hw.shelly_component}", _json(data).encode())


def encode(
    device: SimDevice,
    trace: ApplianceTrace,
    ledger: MeterLedger,
    wall: datetime,
    hardware: Hardware | None = None,
) -> list[Message]:
    """The telemetry one report of this device consists of (ledger already advanced)."""
    hw = hardware or hardware_for(device)
    if device.firmware is Firmware.TASMOTA:
        return [tasmota_sensor(device, trace, ledger, wall, hw)]
    if device.firmware is Firmware.ESPHOME:
        return esphome_states(device.topic, trace, hw)
    return [shelly_status(device.topic, trace, ledger, hw)]


def client_id_for(device: SimDevice) -> str:
    """The MQTT client id the firmware uses by default (Shelly: as shelly.json sets it)."""
    if device.firmware is Firmware.TASMOTA:
        return f"DVES_{_hex_id(device.device_id, 6)}"
    if device.firmware is Firmware.ESPHOME:
        return f"{device.device_id}-{_hex_id(device.device_id, 12).lower()}"
    return device.topic


# ----------------------------------------------------------------------------- simulator


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
            hidden = fault_visibility(device, fault)
            if hidden:
                log.warning(
                    "fault %s on %s will not reach the bridge: %s", fault, device.device_id, hidden
                )
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
        hidden = fault_visibility(run.device, parsed)
        if hidden:
            log.warning("fault %s on %s will not reach the bridge: %s", parsed, device_id, hidden)
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
            if "/binary_sensor/" in message.topic:
                if not resend and run.binary_sent.get(message.topic) == message.payload:
                    continue
                run.binary_sent[message.topic] = message.payload
            out.append(message)
        return out


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
