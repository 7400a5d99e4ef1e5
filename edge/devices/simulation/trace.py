"""One simulated appliance at an instant: its physical state and what a meter reads now."""

from __future__ import annotations

from dataclasses import dataclass

from edge.devices.model import ApplianceType
from edge.devices.simulation.faults import SimFault


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
