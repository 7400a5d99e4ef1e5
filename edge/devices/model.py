"""Plain value types of the service-room device bridge (no I/O imports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class ApplianceType(StrEnum):
    WASHER = "washer"
    DRYER = "dryer"
    WATER_DISPENSER = "water_dispenser"
    HAIR_DRYER = "hair_dryer"


class Firmware(StrEnum):
    TASMOTA = "tasmota"
    ESPHOME = "esphome"
    SHELLY = "shelly"


class Status(StrEnum):
    """The operating state a student or facilities worker cares about."""

    IDLE = "idle"  # free (washer, dryer, hair dryer)
    RUNNING = "running"  # washer/dryer cycle in progress
    FINISHED = "finished"  # cycle done, laundry not yet taken out
    IN_USE = "in_use"  # hair dryer on
    HEATING = "heating"  # water dispenser heating its boiler
    READY = "ready"  # water dispenser hot and idle
    STANDBY = "standby"  # water dispenser idle, not hot
    UNKNOWN = "unknown"  # nothing heard yet


class Fault(StrEnum):
    LEAK = "leak"
    OVER_TEMPERATURE = "over_temperature"
    OVER_CURRENT = "over_current"
    STUCK = "stuck"  # running far longer than any past cycle
    HEATER_FAULT = "heater_fault"  # heating but temperature not rising
    OVERRUN = "overrun"  # hair dryer on longer than allowed (fire risk)
    OFFLINE = "offline"  # last will, or silence beyond the type's timeout
    FILTER_EXHAUSTED = "filter_exhausted"  # dispenser filter past its rated volume


@dataclass(frozen=True, slots=True)
class Reading:
    """One normalised observation of a device; None means 'not in this message'."""

    device_id: str
    at: datetime  # timezone-aware UTC
    power_w: float | None = None
    energy_kwh: float | None = None  # cumulative meter
    voltage_v: float | None = None
    current_a: float | None = None
    temperature_c: float | None = None  # boiler / drum / device temperature
    water_l: float | None = None  # cumulative dispensed litres
    leak: bool | None = None
    door_open: bool | None = None
    online: bool | None = None  # from a last will / status topic


@dataclass(frozen=True, slots=True)
class MachineParams:
    """Thresholds of one appliance type (per device overridable in the bridge config)."""

    # washer / dryer cycles
    start_w: float = 15.0  # above this for start_hold_s -> running
    start_hold_s: float = 20.0
    stop_w: float = 5.0  # below this for stop_hold_s -> finished (tolerates mid-cycle pauses)
    stop_hold_s: float = 300.0
    finished_timeout_s: float = 1800.0  # finished -> idle without a door opening
    default_cycle_s: float = 3600.0  # remaining-time estimate before any history
    stuck_factor: float = 2.0  # running longer than factor * longest past cycle -> stuck
    history_size: int = 20
    # hair dryer
    on_w: float = 100.0
    on_hold_s: float = 5.0  # on the new side of on_w this long -> in use / idle (ignores spikes)
    overrun_s: float = 1800.0
    # water dispenser
    heating_w: float = 300.0
    ready_temp_c: float = 85.0
    heater_fault_after_s: float = 600.0  # heating this long ...
    min_temp_rise_c: float = 3.0  # ... with less rise than this -> heater fault
    # water drawn while heating that starts the check again: cold water coming in explains a flat
    # temperature (a dispenser in heavy use keeps its heater on with the boiler holding level)
    heater_draw_restart_l: float = 0.5
    filter_capacity_l: float = 4000.0
    # faults for all
    over_temp_c: float = 95.0
    over_current_a: float = 15.0
    offline_after_s: float = 300.0  # silence beyond this -> offline


@dataclass(frozen=True, slots=True)
class ApplianceState:
    """Everything the bridge knows of one appliance; replaced, never mutated."""

    device_id: str
    kind: ApplianceType
    status: Status = Status.UNKNOWN
    since: datetime | None = None  # when status last changed
    faults: frozenset[Fault] = frozenset()
    online: bool = True
    last_seen: datetime | None = None
    power_w: float | None = None
    energy_kwh: float | None = None
    temperature_c: float | None = None
    water_l: float | None = None
    cycle_started: datetime | None = None
    remaining_s: float | None = None  # washer/dryer estimate from this machine's history
    cycle_history: tuple[float, ...] = ()  # durations (s) of this machine's completed cycles
    sessions: int = 0  # hair dryer sessions / completed cycles count
    filter_used_l: float = 0.0
    # internal hold timers (monotonic decisions expressed in wall time of readings)
    above_since: datetime | None = None
    below_since: datetime | None = None
    heating_since: datetime | None = None
    heating_start_temp_c: float | None = None
    heating_start_water_l: float | None = None
    water_baseline_l: float | None = None
    extra: dict[str, float] = field(default_factory=dict, compare=False)
