"""Appliance physics: `new_trace` and `step` move one appliance forward in simulated time.

Pure: every random choice is drawn from the `random.Random` given, so a seed replays a trace.
Washers run a programme with pauses, dryers a thermostat, dispensers a boiler with a tap, and
hair dryers sessions of use on a plug that may cut them off (`auto_off_s`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from edge.devices.model import ApplianceType
from edge.devices.simulation.faults import SimFault
from edge.devices.simulation.trace import (
    ApplianceTrace,
    DispenserState,
    HairDryerState,
    LaundryState,
    Segment,
)

AMBIENT_C = 24.0
_SAG_V_PER_KW = 0.8


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


def _laundry_idle(m: LaundryState, door: bool, rng: random.Random) -> dict[str, Any]:
    """A washer or dryer between cycles: the standby draw of its electronics."""
    return {
        "machine": m,
        "phase": "idle",
        "power_w": rng.uniform(0.0, 1.0),
        "power_factor": 0.2,
        "door_open": door,
    }


def _washer_step(
    trace: ApplianceTrace, m: LaundryState, t: float, dt_s: float, rng: random.Random
) -> dict[str, Any]:
    m, segment, door = _laundry_cycle(trace, m, t, rng, washer_program)
    if segment is None:
        return _laundry_idle(m, door, rng)
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
        idle = _laundry_idle(m, door, rng)
        return {**idle, "temperature_c": _approach(drum, AMBIENT_C, dt_s, 900.0)}
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
