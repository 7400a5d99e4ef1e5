"""Appliance state machines, driven by recorded traces (tests/unit/traces) and plain values."""

from __future__ import annotations

import csv
import itertools
import json
import random
from collections.abc import Iterable
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.devices.machines import (
    _full_next_state,
    filter_life_pct,
    initial_state,
    next_state,
    publishable_change,
    replace_filter,
    tick,
)
from edge.devices.model import (
    ApplianceState,
    ApplianceType,
    Fault,
    MachineParams,
    Reading,
    Status,
)
from edge.devices.steady import _moved, steady_reading

TRACES = Path(__file__).parent / "traces"
T0 = datetime(2024, 6, 11, 8, 0, tzinfo=UTC)
DEFAULTS = MachineParams()
WASHER = ApplianceType.WASHER
DRYER = ApplianceType.DRYER
DISPENSER = ApplianceType.WATER_DISPENSER
HAIR_DRYER = ApplianceType.HAIR_DRYER

# what the traces contain (see traces/README.md)
WASH_START_S = 300.0  # first sample >= start_w
WASH_STOP_S = 3660.0  # first sample < stop_w after the spin
WASH_CYCLE_S = WASH_STOP_S - WASH_START_S
WASH_END_S = 4260.0  # last sample of the trace


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def reading(seconds: float, device_id: str = "dev-1", /, **values: float | bool | None) -> Reading:
    return Reading(device_id=device_id, at=at(seconds), **values)  # type: ignore[arg-type]


def load_csv(name: str, device_id: str = "dev-1", offset_s: float = 0.0) -> list[Reading]:
    with (TRACES / name).open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        reading(
            float(row.pop("t_s")) + offset_s,
            device_id,
            **{key: float(value) for key, value in row.items() if value != ""},
        )
        for row in rows
    ]


def replay(
    state: ApplianceState,
    readings: Iterable[Reading],
    params: MachineParams = DEFAULTS,
    tick_every_s: float | None = None,
) -> list[ApplianceState]:
    """States after each reading (and after each tick between readings, if ticking)."""
    states = [state]
    for r in readings:
        if tick_every_s is not None and state.last_seen is not None:
            t = state.last_seen + timedelta(seconds=tick_every_s)
            while t < r.at:
                state = tick(state, t, params)
                states.append(state)
                t += timedelta(seconds=tick_every_s)
        state = next_state(state, r, params)
        states.append(state)
    return states


def status_changes(states: list[ApplianceState]) -> list[tuple[Status, Status, datetime | None]]:
    return [
        (old.status, new.status, new.since)
        for old, new in itertools.pairwise(states)
        if old.status != new.status
    ]


def washer_after_trace(params: MachineParams = DEFAULTS) -> ApplianceState:
    return replay(initial_state("dev-1", WASHER), load_csv("washer_60min_cycle.csv"), params)[-1]


def run_synthetic_cycle(
    state: ApplianceState, start_s: float, run_s: float, params: MachineParams = DEFAULTS
) -> ApplianceState:
    """A cycle at 400 W reported every 60 s from start_s, 0 W at start_s + run_s, then the hold."""
    t = start_s
    while t < start_s + run_s:
        state = next_state(state, reading(t, power_w=400.0), params)
        t += 60.0
    state = next_state(state, reading(start_s + run_s, power_w=0.0), params)
    return tick(state, at(start_s + run_s + params.stop_hold_s), params)


# --- washer / dryer cycles from the recorded traces -----------------------------------------


def test_wash_trace_finishes_exactly_once_and_mid_cycle_pauses_do_not_end_it() -> None:
    states = replay(initial_state("dev-1", WASHER), load_csv("washer_60min_cycle.csv"))

    assert status_changes(states) == [
        (Status.UNKNOWN, Status.IDLE, at(0)),
        (Status.IDLE, Status.RUNNING, at(WASH_START_S + DEFAULTS.start_hold_s)),
        (Status.RUNNING, Status.FINISHED, at(WASH_STOP_S + DEFAULTS.stop_hold_s)),
    ]
    # the 1-4 minute pauses near 0 W (longest at 2040-2270 s) are all inside the running span
    running = [s for s in states if s.status is Status.RUNNING]
    assert running[0].last_seen == at(WASH_START_S + DEFAULTS.start_hold_s)
    assert running[-1].last_seen == at(WASH_STOP_S + DEFAULTS.stop_hold_s - 10)


def test_cycle_duration_runs_from_first_power_to_first_drop_below_stop_w_not_to_hold_end() -> None:
    state = washer_after_trace()

    assert state.cycle_history == (WASH_CYCLE_S,)
    assert state.sessions == 1
    assert state.cycle_started is None
    assert state.remaining_s is None
    assert state.faults == frozenset()


def test_dryer_trace_finishes_once_and_anti_crease_tumbles_do_not_restart_it() -> None:
    states = replay(initial_state("dry-1", DRYER), load_csv("dryer_cycle.csv", "dry-1"))

    assert status_changes(states) == [
        (Status.UNKNOWN, Status.IDLE, at(0)),
        (Status.IDLE, Status.RUNNING, at(40 + DEFAULTS.start_hold_s)),
        (Status.RUNNING, Status.FINISHED, at(3340 + DEFAULTS.stop_hold_s)),
    ]
    assert states[-1].cycle_history == (3300.0,)
    assert states[-1].sessions == 1
    assert states[-1].faults == frozenset()


def test_remaining_counts_down_from_the_default_then_from_this_machines_own_history() -> None:
    first = replay(initial_state("dev-1", WASHER), load_csv("washer_60min_cycle.csv"))
    door = next_state(first[-1], reading(WASH_END_S + 5, door_open=True), DEFAULTS)
    offset = WASH_END_S + 40
    second = replay(door, load_csv("washer_60min_cycle.csv", offset_s=offset))

    for states, expected_s, start_s in (
        (first, DEFAULTS.default_cycle_s, WASH_START_S),
        (second, WASH_CYCLE_S, offset + WASH_START_S),
    ):
        running = [s for s in states if s.status is Status.RUNNING]
        remaining = [s.remaining_s for s in running]
        assert all(r is not None for r in remaining)
        assert remaining == sorted(remaining, key=lambda r: -(r or 0.0))  # never goes up
        assert remaining[0] == expected_s - DEFAULTS.start_hold_s
        for s in running:
            assert s.last_seen is not None
            elapsed = (s.last_seen - at(start_s)).total_seconds()
            assert s.remaining_s == max(0.0, expected_s - elapsed)
    assert second[-1].cycle_history == (WASH_CYCLE_S, WASH_CYCLE_S)
    assert second[-1].sessions == 2


@pytest.mark.parametrize(
    ("history", "elapsed_s", "expected"),
    [
        ((), 600.0, 3000.0),  # default_cycle_s 3600 before any history
        ((2400.0,), 600.0, 1800.0),
        ((2400.0, 9000.0, 3000.0), 600.0, 2400.0),  # median, not mean: an outlier barely moves it
        ((2400.0, 3000.0), 600.0, 2100.0),
        ((2400.0,), 3000.0, 0.0),  # floored at 0 when the cycle overruns the estimate
    ],
)
def test_remaining_is_the_median_of_history_minus_elapsed_floored_at_zero(
    history: tuple[float, ...], elapsed_s: float, expected: float
) -> None:
    state = replace(initial_state("dev-1", WASHER), status=Status.IDLE, cycle_history=history)
    state = next_state(state, reading(0, power_w=400.0), DEFAULTS)
    state = next_state(state, reading(elapsed_s, power_w=400.0), DEFAULTS)

    assert state.status is Status.RUNNING
    assert state.remaining_s == expected


def test_opening_the_door_of_a_finished_machine_makes_it_idle() -> None:
    finished = washer_after_trace()
    opened = next_state(finished, reading(WASH_END_S + 5, door_open=True), DEFAULTS)

    assert finished.status is Status.FINISHED
    assert opened.status is Status.IDLE
    assert opened.since == at(WASH_END_S + 5)


@pytest.mark.parametrize("status_power", [(Status.IDLE, 0.0), (Status.RUNNING, 400.0)])
def test_opening_the_door_changes_nothing_unless_finished(
    status_power: tuple[Status, float],
) -> None:
    status, power = status_power
    state = replace(initial_state("dev-1", WASHER), status=status, since=at(0))
    state = next_state(state, reading(0, power_w=power), DEFAULTS)
    opened = next_state(state, reading(5, door_open=True), DEFAULTS)

    assert opened.status is status


@pytest.mark.parametrize(
    ("after_finish_s", "expected"),
    [
        (DEFAULTS.finished_timeout_s - 1, Status.FINISHED),
        (DEFAULTS.finished_timeout_s, Status.IDLE),
    ],
)
def test_finished_goes_idle_after_finished_timeout_without_a_door_opening(
    after_finish_s: float, expected: Status
) -> None:
    finished_at = WASH_STOP_S + DEFAULTS.stop_hold_s
    state = tick(washer_after_trace(), at(finished_at + after_finish_s), DEFAULTS)

    assert state.status is expected
    if expected is Status.IDLE:
        assert state.since == at(finished_at + DEFAULTS.finished_timeout_s)


@pytest.mark.parametrize(
    ("silence_s", "expected"),
    [(DEFAULTS.stop_hold_s - 1, Status.RUNNING), (DEFAULTS.stop_hold_s, Status.FINISHED)],
)
def test_stop_hold_expires_by_tick_when_no_further_reading_arrives(
    silence_s: float, expected: Status
) -> None:
    state = initial_state("dev-1", WASHER)
    for r in (reading(0, power_w=0.0), reading(60, power_w=400.0), reading(120, power_w=400.0)):
        state = next_state(state, r, DEFAULTS)
    state = next_state(state, reading(1000, power_w=0.0), DEFAULTS)
    state = tick(state, at(1000 + silence_s), DEFAULTS)

    assert state.status is expected
    if expected is Status.FINISHED:
        assert state.since == at(1000 + DEFAULTS.stop_hold_s)
        assert state.cycle_history == (1000.0 - 60.0,)


@pytest.mark.parametrize(
    ("samples", "expected", "since_s"),
    [
        ([(0, 400.0), (10, 400.0), (20, 400.0)], Status.RUNNING, 20),
        ([(0, 400.0), (10, 400.0), (15, 0.0)], Status.IDLE, 0),  # a short burst
        ([(0, 400.0), (10, 10.0), (20, 400.0), (30, 400.0)], Status.IDLE, 0),  # dip restarts hold
        ([(0, 400.0), (45, 400.0)], Status.RUNNING, 20),  # first reading counts from its time
        ([(0, 16.0), (10, 15.0), (20, 15.0)], Status.RUNNING, 20),  # start_w is inclusive
    ],
)
def test_idle_turns_running_only_after_power_stays_at_start_w_for_start_hold(
    samples: list[tuple[float, float]], expected: Status, since_s: float
) -> None:
    state = replace(initial_state("dev-1", WASHER), status=Status.IDLE, since=at(0))
    for t, power in samples:
        state = next_state(state, reading(t, power_w=power), DEFAULTS)

    assert state.status is expected
    assert state.since == at(since_s)
    if expected is Status.RUNNING:
        assert state.cycle_started == at(samples[0][0])


@pytest.mark.parametrize("power_w", [5.0, 10.0, 14.9])
def test_power_between_stop_w_and_start_w_keeps_a_cycle_running(power_w: float) -> None:
    state = next_state(initial_state("dev-1", WASHER), reading(0, power_w=400.0), DEFAULTS)
    for t in range(60, 3600, 60):
        state = next_state(state, reading(t, power_w=power_w), DEFAULTS)

    assert state.status is Status.RUNNING
    assert state.below_since is None


@pytest.mark.parametrize(
    ("kind", "power_w", "expected"),
    [
        (WASHER, 400.0, Status.RUNNING),
        (WASHER, 15.0, Status.RUNNING),  # start_w is inclusive
        (WASHER, 10.0, Status.IDLE),
        (WASHER, 0.0, Status.IDLE),
        (DRYER, 2400.0, Status.RUNNING),
        (DRYER, 0.5, Status.IDLE),
        (HAIR_DRYER, 1500.0, Status.IN_USE),
        (HAIR_DRYER, 100.0, Status.IN_USE),  # on_w is inclusive
        (HAIR_DRYER, 40.0, Status.IDLE),
        (DISPENSER, 1200.0, Status.HEATING),
        (DISPENSER, 2.0, Status.STANDBY),
    ],
)
def test_unknown_goes_straight_to_the_status_its_first_power_reading_shows(
    kind: ApplianceType, power_w: float, expected: Status
) -> None:
    state = next_state(initial_state("dev-1", kind), reading(7, power_w=power_w), DEFAULTS)

    assert state.status is expected
    assert state.since == at(7)


@pytest.mark.parametrize("kind", list(ApplianceType))
def test_a_reading_without_power_or_temperature_leaves_the_status_unknown(
    kind: ApplianceType,
) -> None:
    state = next_state(initial_state("dev-1", kind), reading(0, door_open=False), DEFAULTS)

    assert state.status is Status.UNKNOWN
    assert state.since is None
    assert state.online is True


def test_a_cycle_joined_midway_is_counted_but_not_recorded_in_history() -> None:
    state = replace(initial_state("dev-1", WASHER), cycle_history=(3000.0,))
    state = next_state(state, reading(0, power_w=400.0), DEFAULTS)
    joined = state
    state = run_synthetic_cycle(state, 60, 600)

    assert joined.status is Status.RUNNING
    assert joined.cycle_started is None
    assert joined.remaining_s is None  # start not seen: no honest estimate
    assert state.status is Status.FINISHED
    assert state.cycle_history == (3000.0,)
    assert state.sessions == 1


def test_history_is_bounded_to_history_size_keeping_the_latest_cycles() -> None:
    params = MachineParams(history_size=3)
    state = initial_state("dev-1", WASHER)
    state = next_state(state, reading(0, power_w=0.0), params)
    start = 100.0
    for run_s in (600.0, 1200.0, 1800.0, 2400.0, 3000.0):
        state = run_synthetic_cycle(state, start, run_s, params)
        state = next_state(state, reading(start + run_s + 400, door_open=True), params)
        start += run_s + 1000

    assert state.cycle_history == (1800.0, 2400.0, 3000.0)
    assert state.sessions == 5


def test_cycle_history_belongs_to_each_machine() -> None:
    washer_a = washer_after_trace()
    washer_b = next_state(
        initial_state("dev-2", WASHER), reading(0, "dev-2", power_w=0.0), DEFAULTS
    )

    assert washer_a.cycle_history == (WASH_CYCLE_S,)
    assert washer_b.cycle_history == ()


# --- stuck ------------------------------------------------------------------------------------


def test_very_long_cycle_is_stuck_until_it_ends() -> None:
    params = MachineParams(default_cycle_s=1200.0)  # no history: stuck after 2 x 1200 s
    states = replay(initial_state("dev-1", WASHER), load_csv("washer_60min_cycle.csv"), params)

    stuck = [s for s in states if Fault.STUCK in s.faults]
    assert stuck[0].last_seen == at(WASH_START_S + 2 * 1200 + 10)  # first sample past 2400 s
    assert all(s.status is Status.RUNNING for s in stuck)
    assert states[-1].status is Status.FINISHED
    assert Fault.STUCK not in states[-1].faults
    assert stuck[-1].remaining_s == 0.0


@pytest.mark.parametrize(
    ("history", "limit_s"),
    [
        ((), 2 * 3600.0),  # default_cycle_s without history
        ((1000.0, 3000.0, 2000.0), 2 * 3000.0),  # the longest past cycle, not the median
    ],
)
def test_stuck_after_stuck_factor_times_the_longest_past_cycle(
    history: tuple[float, ...], limit_s: float
) -> None:
    state = replace(initial_state("dev-1", WASHER), status=Status.IDLE, cycle_history=history)
    state = next_state(state, reading(0, power_w=400.0), DEFAULTS)
    state = next_state(state, reading(limit_s - 60, power_w=400.0), DEFAULTS)
    at_limit = tick(state, at(limit_s), DEFAULTS)
    past_limit = tick(state, at(limit_s + 1), DEFAULTS)

    assert Fault.STUCK not in at_limit.faults
    assert Fault.STUCK in past_limit.faults
    assert publishable_change(at_limit, past_limit)


# --- hair dryer -------------------------------------------------------------------------------


def test_hair_dryer_trace_counts_each_session_once_ignoring_spikes_and_cool_shot_dips() -> None:
    hold = DEFAULTS.on_hold_s
    states = replay(initial_state("hd-1", HAIR_DRYER), load_csv("hair_dryer_sessions.csv", "hd-1"))

    assert status_changes(states) == [
        (Status.UNKNOWN, Status.IDLE, at(0)),
        (Status.IDLE, Status.IN_USE, at(60 + hold)),
        (Status.IN_USE, Status.IDLE, at(360 + hold)),
        (Status.IDLE, Status.IN_USE, at(480 + hold)),
        (Status.IN_USE, Status.IDLE, at(600 + hold)),
    ]
    assert states[-1].sessions == 2
    assert all(not s.faults for s in states)


@pytest.mark.parametrize(("on_for_s", "expected"), [(4.0, 0), (6.0, 1)])
def test_hair_dryer_needs_power_for_on_hold_before_a_session_counts(
    on_for_s: float, expected: int
) -> None:
    state = next_state(initial_state("hd-1", HAIR_DRYER), reading(0, "hd-1", power_w=0.0), DEFAULTS)
    state = next_state(state, reading(10, "hd-1", power_w=1500.0), DEFAULTS)
    state = next_state(state, reading(10 + on_for_s, "hd-1", power_w=0.0), DEFAULTS)
    state = tick(state, at(60), DEFAULTS)

    assert state.sessions == expected
    assert state.status is Status.IDLE


def test_hair_dryer_left_on_past_overrun_is_flagged_and_cleared_when_it_goes_idle() -> None:
    on = [reading(t, "hd-1", power_w=1600.0) for t in range(0, 2400, 10)]
    off = [reading(t, "hd-1", power_w=0.0) for t in range(2400, 2460, 10)]
    states = replay(
        initial_state("hd-1", HAIR_DRYER), [reading(-10, "hd-1", power_w=0.0), *on, *off]
    )

    overrun = [s for s in states if Fault.OVERRUN in s.faults]
    assert overrun[0].last_seen == at(DEFAULTS.overrun_s + 10)  # first sample past 1800 s in use
    assert all(s.status is Status.IN_USE for s in overrun)
    assert states[-1].status is Status.IDLE
    assert Fault.OVERRUN not in states[-1].faults
    assert states[-1].sessions == 1


def test_hair_dryer_overrun_is_raised_by_tick_without_further_readings() -> None:
    params = MachineParams(overrun_s=120.0)
    state = initial_state("hd-1", HAIR_DRYER)
    for r in (reading(0, "hd-1", power_w=0.0), reading(10, "hd-1", power_w=1600.0)):
        state = next_state(state, r, params)

    assert Fault.OVERRUN not in tick(state, at(130), params).faults
    assert Fault.OVERRUN in tick(state, at(131), params).faults


# --- water dispenser --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("power_w", "temperature_c", "expected"),
    [
        (1200.0, 40.0, Status.HEATING),
        (1200.0, 90.0, Status.HEATING),  # heating wins over hot
        (300.0, 70.0, Status.HEATING),  # heating_w is inclusive
        (2.5, 85.0, Status.READY),  # ready_temp_c is inclusive
        (2.5, 84.9, Status.STANDBY),
        (None, 88.0, Status.READY),  # no power in the message yet
        (2.5, None, Status.STANDBY),
    ],
)
def test_dispenser_status_is_heating_by_power_else_ready_by_temperature_else_standby(
    power_w: float | None, temperature_c: float | None, expected: Status
) -> None:
    r = reading(0, "disp-1", power_w=power_w, temperature_c=temperature_c)
    state = next_state(initial_state("disp-1", DISPENSER), r, DEFAULTS)

    assert state.status is expected


def test_dispenser_heating_curve_goes_ready_standby_heating_ready_without_faults() -> None:
    states = replay(initial_state("disp-1", DISPENSER), load_csv("dispenser_heating.csv", "disp-1"))

    changes = status_changes(states)
    assert [new for _, new, _ in changes] == [
        Status.READY,
        Status.STANDBY,
        Status.HEATING,
        Status.READY,
    ]
    assert changes[2][2] == at(150)
    assert changes[3][2] == at(465)
    assert all(not s.faults for s in states)
    assert states[-1].filter_used_l == pytest.approx(1.5)


@pytest.mark.parametrize("fault_after_s", [DEFAULTS.heater_fault_after_s, 120.0])
def test_heater_fault_when_heating_without_temperature_rise_cleared_when_heating_stops(
    fault_after_s: float,
) -> None:
    params = MachineParams(heater_fault_after_s=fault_after_s)
    flat = replay(
        initial_state("disp-1", DISPENSER), load_csv("dispenser_heater_flat.csv", "disp-1"), params
    )
    healthy = replay(
        initial_state("disp-1", DISPENSER), load_csv("dispenser_heating.csv", "disp-1"), params
    )

    faulty = [s for s in flat if Fault.HEATER_FAULT in s.faults]
    assert faulty[0].last_seen == at(60 + fault_after_s)
    assert faulty[-1].last_seen == at(960)  # heater switched off at 975 clears it
    assert all(s.status is Status.HEATING for s in faulty)
    assert Fault.HEATER_FAULT not in flat[-1].faults
    assert all(Fault.HEATER_FAULT not in s.faults for s in healthy)


def test_heater_fault_clears_when_the_temperature_finally_rises_while_still_heating() -> None:
    state = initial_state("disp-1", DISPENSER)
    for t in range(0, 660, 15):
        state = next_state(
            state, reading(t, "disp-1", power_w=1180.0, temperature_c=60.0), DEFAULTS
        )
    faulty = state
    state = next_state(state, reading(660, "disp-1", power_w=1180.0, temperature_c=63.0), DEFAULTS)

    assert Fault.HEATER_FAULT in faulty.faults
    assert Fault.HEATER_FAULT not in state.faults
    assert state.status is Status.HEATING


def test_heater_fault_is_raised_by_tick_while_the_temperature_stays_flat() -> None:
    state = initial_state("disp-1", DISPENSER)
    state = next_state(state, reading(0, "disp-1", power_w=1180.0, temperature_c=60.0), DEFAULTS)
    state = next_state(state, reading(400, "disp-1", temperature_c=60.5), DEFAULTS)

    assert Fault.HEATER_FAULT not in tick(state, at(599), DEFAULTS).faults
    assert Fault.HEATER_FAULT in tick(state, at(600), DEFAULTS).faults


def _heating_with_draws(until_s: int, draw_until_s: int) -> list[ApplianceState]:
    """Heater on from 0, the boiler holding 60 °C; 0.6 L drawn every 100 s until draw_until_s."""
    state = initial_state("disp-1", DISPENSER)
    states = []
    water = 1000.0
    for t in range(0, until_s + 1, 20):
        if t and t % 100 == 0 and t <= draw_until_s:
            water += 0.6
        state = next_state(
            state,
            reading(t, "disp-1", power_w=1180.0, temperature_c=60.0, water_l=water),
            DEFAULTS,
        )
        states.append(state)
    return states


def test_water_drawn_while_heating_starts_the_heater_check_again() -> None:
    """A dispenser in heavy use keeps its heater on while the cold water coming in holds the
    boiler level: that is not a broken heater."""
    busy = _heating_with_draws(until_s=1500, draw_until_s=1500)
    assert all(Fault.HEATER_FAULT not in s.faults for s in busy)
    assert all(s.status is Status.HEATING for s in busy)


def test_a_flat_boiler_nobody_draws_from_is_a_heater_fault_counted_from_the_last_draw() -> None:
    states = _heating_with_draws(until_s=1500, draw_until_s=500)
    first = next(s for s in states if Fault.HEATER_FAULT in s.faults)
    assert first.last_seen == at(500 + DEFAULTS.heater_fault_after_s)


def test_without_a_water_meter_the_heater_check_runs_from_the_start_of_heating() -> None:
    state = initial_state("disp-1", DISPENSER)
    for t in range(0, 620, 20):
        state = next_state(
            state, reading(t, "disp-1", power_w=1180.0, temperature_c=60.0), DEFAULTS
        )
    assert Fault.HEATER_FAULT in state.faults and state.heating_start_water_l is None


def load_meter() -> list[Reading]:
    data = json.loads((TRACES / "dispenser_water_meter.json").read_text())
    return [reading(r["t_s"], data["device_id"], water_l=r["water_l"]) for r in data["readings"]]


@pytest.mark.parametrize(
    ("capacity_l", "exhausted", "life_pct"),
    [(20.0, False, 34.0), (13.2, True, 0.0), (12.0, True, 0.0)],
)
def test_filter_counts_positive_meter_deltas_and_a_meter_reset_starts_a_new_baseline(
    capacity_l: float, exhausted: bool, life_pct: float
) -> None:
    params = MachineParams(filter_capacity_l=capacity_l)
    states = replay(initial_state("disp-1", DISPENSER), load_meter(), params)
    used = [s.filter_used_l for s in states]

    assert states[-1].filter_used_l == pytest.approx(13.2)  # 4.2 L before the reset, 9.0 after
    assert used == sorted(used)  # never goes down, never negative
    assert (Fault.FILTER_EXHAUSTED in states[-1].faults) is exhausted
    assert Fault.FILTER_EXHAUSTED not in states[-2].faults  # 10.7 L used
    assert filter_life_pct(states[-1], params) == pytest.approx(life_pct)


@pytest.mark.parametrize(("used_l", "expected"), [(0.0, 100.0), (1000.0, 75.0), (5000.0, 0.0)])
def test_filter_life_pct_is_the_share_of_rated_volume_left(used_l: float, expected: float) -> None:
    state = replace(initial_state("disp-1", DISPENSER), filter_used_l=used_l)

    assert filter_life_pct(state, DEFAULTS) == expected


def test_replacing_the_filter_resets_usage_and_clears_filter_exhausted() -> None:
    params = MachineParams(filter_capacity_l=12.0)
    exhausted = replay(initial_state("disp-1", DISPENSER), load_meter(), params)[-1]
    fresh = replace_filter(exhausted, params)
    after = next_state(fresh, reading(1000, "disp-1", water_l=10.0), params)

    assert Fault.FILTER_EXHAUSTED in exhausted.faults
    assert Fault.FILTER_EXHAUSTED not in fresh.faults
    assert after.filter_used_l == pytest.approx(1.0)


# --- faults common to all types ---------------------------------------------------------------


@pytest.mark.parametrize("kind", list(ApplianceType))
@pytest.mark.parametrize(
    ("field", "bad", "good", "fault"),
    [
        ("leak", True, False, Fault.LEAK),
        ("temperature_c", 95.0, 90.0, Fault.OVER_TEMPERATURE),  # over_temp_c is inclusive
        ("temperature_c", 99.0, 40.0, Fault.OVER_TEMPERATURE),
        ("current_a", 15.0, 14.9, Fault.OVER_CURRENT),
        ("current_a", 22.0, 8.0, Fault.OVER_CURRENT),
    ],
)
def test_reading_faults_are_set_out_of_range_kept_while_unreported_cleared_back_in_range(
    kind: ApplianceType, field: str, bad: float | bool, good: float | bool, fault: Fault
) -> None:
    state = next_state(initial_state("dev-1", kind), reading(0, power_w=0.0), DEFAULTS)
    raised = next_state(state, reading(10, **{field: bad}), DEFAULTS)
    unreported = next_state(raised, reading(20, power_w=1.0), DEFAULTS)
    cleared = next_state(unreported, reading(30, **{field: good}), DEFAULTS)

    assert fault in raised.faults
    assert fault in unreported.faults
    assert fault not in cleared.faults
    assert publishable_change(state, raised)
    assert publishable_change(unreported, cleared)


# --- online / offline -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(ApplianceType))
def test_last_will_marks_offline_and_any_later_reading_brings_it_back(kind: ApplianceType) -> None:
    state = next_state(initial_state("dev-1", kind), reading(0, power_w=0.0), DEFAULTS)
    gone = next_state(state, reading(30, online=False), DEFAULTS)
    back = next_state(gone, reading(90, power_w=0.0), DEFAULTS)

    assert (gone.online, Fault.OFFLINE in gone.faults) == (False, True)
    assert (back.online, Fault.OFFLINE in back.faults) == (True, False)
    assert gone.status is state.status


@pytest.mark.parametrize(
    ("silence_s", "online"),
    [(DEFAULTS.offline_after_s, True), (DEFAULTS.offline_after_s + 1, False)],
)
def test_silence_longer_than_offline_after_marks_offline_on_tick(
    silence_s: float, online: bool
) -> None:
    state = next_state(initial_state("dev-1", WASHER), reading(0, power_w=0.0), DEFAULTS)
    state = tick(state, at(silence_s), DEFAULTS)

    assert state.online is online
    assert (Fault.OFFLINE in state.faults) is not online


def test_hold_timers_stop_while_the_device_is_offline() -> None:
    state = next_state(initial_state("dev-1", WASHER), reading(0, power_w=400.0), DEFAULTS)
    state = next_state(state, reading(600, power_w=0.0), DEFAULTS)
    state = next_state(state, reading(630, online=False), DEFAULTS)
    state = tick(state, at(5000), DEFAULTS)

    assert state.status is Status.RUNNING  # 0 W for 30 s before the last will proves nothing


def test_hold_timers_stop_when_silence_makes_the_device_offline() -> None:
    params = MachineParams(offline_after_s=120.0)  # shorter than the 300 s stop hold
    state = next_state(initial_state("dev-1", WASHER), reading(0, power_w=400.0), params)
    state = next_state(state, reading(600, power_w=0.0), params)
    state = tick(state, at(5000), params)

    assert state.status is Status.RUNNING
    assert Fault.OFFLINE in state.faults


def test_a_transition_is_never_dated_before_the_current_status_began() -> None:
    restored = replace(
        initial_state("dev-1", WASHER),
        status=Status.IDLE,
        since=at(100),
        power_w=400.0,
        above_since=at(0),
        last_seen=at(90),
    )
    state = next_state(restored, reading(110, power_w=400.0), DEFAULTS)

    assert state.status is Status.RUNNING
    assert state.since == at(100)


def test_tick_before_anything_was_heard_changes_nothing() -> None:
    state = initial_state("dev-1", WASHER)

    assert tick(state, at(10_000), DEFAULTS) is state


# --- reading handling -------------------------------------------------------------------------


def test_out_of_order_reading_is_ignored() -> None:
    state = next_state(initial_state("dev-1", WASHER), reading(100, power_w=400.0), DEFAULTS)
    late = next_state(state, reading(90, power_w=0.0, leak=True), DEFAULTS)
    later = next_state(late, reading(110, power_w=400.0), DEFAULTS)

    assert late is state
    assert later.last_seen == at(110)
    assert later.power_w == 400.0


def test_fields_missing_from_a_reading_keep_their_previous_value() -> None:
    r = reading(0, power_w=3.0, energy_kwh=12.5, temperature_c=88.0, water_l=100.0)
    state = next_state(initial_state("dev-1", DISPENSER), r, DEFAULTS)
    state = next_state(state, reading(15, power_w=2.0), DEFAULTS)

    assert (state.power_w, state.energy_kwh, state.temperature_c, state.water_l) == (
        2.0,
        12.5,
        88.0,
        100.0,
    )
    assert state.last_seen == at(15)


def test_since_changes_only_when_status_changes() -> None:
    states = replay(initial_state("dev-1", WASHER), load_csv("washer_60min_cycle.csv"))

    for old, new in itertools.pairwise(states):
        assert (old.since == new.since) is (old.status == new.status)


def test_outcome_does_not_depend_on_how_often_the_bridge_ticks() -> None:
    readings = load_csv("washer_60min_cycle.csv")
    untouched = replay(initial_state("dev-1", WASHER), readings)
    ticked = replay(initial_state("dev-1", WASHER), readings, tick_every_s=1.0)

    assert ticked[-1] == untouched[-1]
    assert status_changes(ticked) == status_changes(untouched)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (Reading(device_id="other", at=at(0), power_w=1.0), "other"),
        (Reading(device_id="dev-1", at=datetime(2024, 6, 11, 8, 0), power_w=1.0), "aware"),
    ],
)
def test_reading_of_another_device_or_without_timezone_is_rejected(
    bad: Reading, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        next_state(initial_state("dev-1", WASHER), bad, DEFAULTS)


# --- publishing -------------------------------------------------------------------------------

BASE = ApplianceState(device_id="dev-1", kind=WASHER, status=Status.RUNNING, since=at(0))


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (replace(BASE, status=Status.FINISHED, since=at(60)), True),
        (replace(BASE, faults=frozenset({Fault.LEAK})), True),
        (replace(BASE, online=False), True),
        (replace(BASE, power_w=420.0, last_seen=at(10), remaining_s=1200.0), False),
        (replace(BASE, temperature_c=41.0, energy_kwh=3.2, filter_used_l=1.0), False),
        (BASE, False),
    ],
)
def test_publishable_change_only_for_status_faults_or_online(
    new: ApplianceState, expected: bool
) -> None:
    assert publishable_change(BASE, new) is expected


# --- the steady-reading fast path -------------------------------------------------------------

TRACE_FILES = [
    ("washer_60min_cycle.csv", WASHER),
    ("dryer_cycle.csv", DRYER),
    ("hair_dryer_sessions.csv", HAIR_DRYER),
    ("dispenser_heating.csv", DISPENSER),
    ("dispenser_heater_flat.csv", DISPENSER),
]


def _step_both_ways(
    state: ApplianceState, r: Reading, params: MachineParams
) -> tuple[ApplianceState, bool]:
    """next_state's result (asserted equal to the full rules') and whether the fast path ran."""
    full = _full_next_state(state, r, params)
    fast = next_state(state, r, params)
    assert fast == full, (state, r)
    return full, steady_reading(state, r, params) is not None


@pytest.mark.parametrize(("name", "kind"), TRACE_FILES)
@pytest.mark.parametrize("params", [DEFAULTS, MachineParams(default_cycle_s=1200.0)])
def test_recorded_traces_give_the_same_states_with_and_without_the_steady_fast_path(
    name: str, kind: ApplianceType, params: MachineParams
) -> None:
    """The fast path is an optimisation only: every state equals the full rules' result."""
    state = initial_state("dev-1", kind)
    fast_steps = 0
    for r in load_csv(name):
        state, fast = _step_both_ways(state, r, params)
        fast_steps += fast
    if kind is not DISPENSER:  # dispensers always take the full rules
        assert fast_steps > 0.8 * len(load_csv(name))


def _random_reading(rng: random.Random, t: float, params: MachineParams) -> Reading:
    """A reading whose values sit on, just off and far from the thresholds."""

    def near(*edges: float) -> float:
        edge = rng.choice(edges)
        return max(0.0, edge + rng.choice([0.0, -0.01, 0.01, -50.0, 50.0, 400.0, 2000.0]))

    values: dict[str, float | bool | None] = {}
    if rng.random() < 0.8:
        values["power_w"] = near(0.0, params.stop_w, params.start_w, params.on_w, params.heating_w)
    if rng.random() < 0.3:
        values["energy_kwh"] = rng.uniform(0, 100)
    if rng.random() < 0.2:
        values["temperature_c"] = near(params.over_temp_c, params.ready_temp_c, 40.0)
    if rng.random() < 0.2:
        values["current_a"] = near(params.over_current_a, 2.0)
    if rng.random() < 0.05:
        values["leak"] = rng.random() < 0.5
    if rng.random() < 0.1:
        values["door_open"] = rng.random() < 0.5
    if rng.random() < 0.05:
        values["water_l"] = rng.uniform(0, 50)
    if rng.random() < 0.03:
        values["online"] = rng.random() < 0.5
    return reading(t, **values)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("kind", list(ApplianceType))
def test_random_readings_give_the_same_states_with_and_without_the_steady_fast_path(
    seed: int, kind: ApplianceType
) -> None:
    """Gaps that land exactly on hold, timeout and silence limits included."""
    rng = random.Random(f"{seed}:{kind}")
    params = MachineParams(
        start_hold_s=20.0,
        stop_hold_s=60.0,
        finished_timeout_s=120.0,
        default_cycle_s=200.0,
        on_hold_s=5.0,
        overrun_s=90.0,
        offline_after_s=100.0,
        history_size=3,
    )
    limits = [0.0, 5.0, 20.0, 60.0, 90.0, 100.0, 120.0, 200.0, 400.0]
    state = initial_state("dev-1", kind)
    t = 0.0
    fast_steps = 0
    for _ in range(600):
        t += rng.choice([0.0, 1.0, 4.999, 5.0, 10.0, 19.9995, 20.0, 30.0, 60.0])
        if rng.random() < 0.05:  # now and then a gap that ends on (or a hair off) a limit
            t += max(0.0, rng.choice(limits) + rng.choice([0.0, -0.0005, 0.0005]))
        if rng.random() < 0.1:
            state = tick(state, at(t), params)
            t += rng.choice([0.0, 0.5, 5.0])
        state, fast = _step_both_ways(state, _random_reading(rng, t, params), params)
        fast_steps += fast
    if kind is not DISPENSER:
        assert fast_steps > 50


def test_the_fast_copy_keeps_every_field_it_is_not_given() -> None:
    """_moved builds ApplianceState positionally; a new model field must not be lost."""
    sample: dict[str, object] = {}
    for index, f in enumerate(fields(ApplianceState)):
        sample[f.name] = f"value-{index}"
    state = ApplianceState(**sample)  # type: ignore[arg-type]
    moved = _moved(state, at(1), 1.0, 2.0, 3.0, 4.0)
    expected = replace(
        state, last_seen=at(1), power_w=1.0, energy_kwh=2.0, temperature_c=3.0, remaining_s=4.0
    )
    for f in fields(ApplianceState):
        assert getattr(moved, f.name) == getattr(expected, f.name), f.name
