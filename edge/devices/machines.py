"""State machines of service-room appliances: pure functions from readings to ApplianceState.

Time comes only from ``Reading.at`` and the ``now`` argument of :func:`tick` (timezone-aware UTC);
nothing here reads a clock or does I/O.

Timing rules, so that the outcome does not depend on how often the bridge ticks:

* A device's last values hold until its next reading (zero-order hold). A hold timer therefore
  expires at a definite instant (e.g. ``below_since + stop_hold_s``); :func:`tick` and the next
  reading both apply the transition at that instant, and ``since`` is that instant.
* :func:`next_state` first advances the state to the reading's time on the *old* values, then
  applies the reading.
* Values of an offline device are not trusted: value-based timers (start/stop holds, stuck,
  overrun, heater fault) stop at the moment it went offline (``last_seen + offline_after_s``
  for silence, ``last_seen`` after a last will). The finished timeout keeps running.
* A reading older than the last one seen is ignored: the state is returned unchanged.
"""

from __future__ import annotations

import statistics
from dataclasses import fields
from datetime import datetime, timedelta

from edge.devices.model import ApplianceState, ApplianceType, Fault, MachineParams, Reading, Status
from edge.devices.steady import steady_reading

_CYCLE_KINDS = frozenset({ApplianceType.WASHER, ApplianceType.DRYER})
_STATE_FIELDS = tuple(f.name for f in fields(ApplianceState))


def replace(s: ApplianceState, **changes: object) -> ApplianceState:
    """A copy of `s` with `changes`; `s` itself when nothing changes.

    The bridge runs this several times per reading for thousands of devices: building the frozen
    copy directly is several times faster than dataclasses.replace (no __init__ round trip).
    """
    if all(getattr(s, name) == value for name, value in changes.items()):
        return s
    new = object.__new__(ApplianceState)
    for name in _STATE_FIELDS:
        object.__setattr__(new, name, changes[name] if name in changes else getattr(s, name))
    return new


def initial_state(device_id: str, kind: ApplianceType) -> ApplianceState:
    """Return the state of an appliance nothing has been heard from yet (status UNKNOWN)."""
    return ApplianceState(device_id=device_id, kind=kind, status=Status.UNKNOWN)


def next_state(state: ApplianceState, reading: Reading, params: MachineParams) -> ApplianceState:
    """Apply one reading; a reading older than the last one seen is ignored (state unchanged)."""
    if reading.device_id != state.device_id:
        raise ValueError(f"reading of {reading.device_id!r} applied to {state.device_id!r}")
    if reading.at.utcoffset() is None:
        raise ValueError("Reading.at must be timezone-aware")
    if state.last_seen is not None and reading.at < state.last_seen:
        return state
    steady = steady_reading(state, reading, params)
    if steady is not None:
        return steady
    return _full_next_state(state, reading, params)


def _full_next_state(
    state: ApplianceState, reading: Reading, params: MachineParams
) -> ApplianceState:
    """`next_state` by the complete rules, for a reading that is not older than the state."""
    at = reading.at
    s = _advance(state, at, params)
    s = _apply_reading(s, reading, params)
    s = _apply_instant_transitions(s, reading, params)
    s = _advance(s, at, params)
    return _apply_reading_faults(s, reading, params)


def tick(state: ApplianceState, now: datetime, params: MachineParams) -> ApplianceState:
    """Apply the time-based transitions and faults due by `now` without a new reading."""
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if state.last_seen is None or now < state.last_seen:
        return state
    return _advance(state, now, params)


def publishable_change(old: ApplianceState, new: ApplianceState) -> bool:
    """Tell whether the retained state must be republished: status, faults or online changed."""
    return old.status != new.status or old.faults != new.faults or old.online != new.online


def filter_life_pct(state: ApplianceState, params: MachineParams) -> float:
    """Return the dispenser filter life left, 100 (new) to 0 (exhausted)."""
    if params.filter_capacity_l <= 0:
        return 0.0
    left = 100.0 * (1.0 - state.filter_used_l / params.filter_capacity_l)
    return min(100.0, max(0.0, left))


def replace_filter(state: ApplianceState, params: MachineParams) -> ApplianceState:
    """Return the state after a new filter was fitted: usage zero, FILTER_EXHAUSTED cleared."""
    return _apply_filter_fault(replace(state, filter_used_l=0.0), params)


# --- advancing in time ------------------------------------------------------------------------


def _advance(state: ApplianceState, now: datetime, params: MachineParams) -> ApplianceState:
    values_until = _values_trusted_until(state, params)
    values_now = now if values_until is None else min(now, values_until)
    s = state
    while (event := _next_timed_transition(s, values_now, now, params)) is not None:
        at, status = event
        s = _transition(s, status, at, params)
    s = _apply_duration_faults(s, values_now, params)
    s = _apply_silence(s, now, params)
    return _with_remaining(s, now, params)


def _values_trusted_until(state: ApplianceState, params: MachineParams) -> datetime | None:
    if state.last_seen is None:
        return None
    if state.online:
        return state.last_seen + _seconds(params.offline_after_s)
    return state.last_seen


def _next_timed_transition(
    s: ApplianceState, values_now: datetime, now: datetime, params: MachineParams
) -> tuple[datetime, Status] | None:
    """Earliest transition due by now; each one changes status, so the caller's loop ends."""
    due: list[tuple[datetime, Status]] = []

    def consider(at: datetime | None, status: Status, limit: datetime) -> None:
        if at is None:
            return
        if s.since is not None:
            at = max(at, s.since)
        if at <= limit:
            due.append((at, status))

    if s.kind in _CYCLE_KINDS:
        if s.status in (Status.IDLE, Status.FINISHED):
            consider(_after(s.above_since, params.start_hold_s), Status.RUNNING, values_now)
        if s.status is Status.RUNNING:
            consider(_after(s.below_since, params.stop_hold_s), Status.FINISHED, values_now)
        if s.status is Status.FINISHED:
            consider(_after(s.since, params.finished_timeout_s), Status.IDLE, now)
    elif s.kind is ApplianceType.HAIR_DRYER:
        if s.status is Status.IDLE:
            consider(_after(s.above_since, params.on_hold_s), Status.IN_USE, values_now)
        if s.status is Status.IN_USE:
            consider(_after(s.below_since, params.on_hold_s), Status.IDLE, values_now)
    return min(due) if due else None


def _transition(
    s: ApplianceState, status: Status, at: datetime, params: MachineParams
) -> ApplianceState:
    """Enter `status` at `at`, with the bookkeeping of the cycle or session that starts or ends."""
    if status is s.status:
        return s
    old = s.status
    s = replace(s, status=status, since=at)
    if status is Status.RUNNING:
        # a cycle joined from UNKNOWN has no observed start: cycle_started stays None
        started = s.above_since if old is not Status.UNKNOWN else None
        return replace(s, cycle_started=started, faults=s.faults - {Fault.STUCK})
    if old is Status.RUNNING and status is Status.FINISHED:
        history = s.cycle_history
        if s.cycle_started is not None and s.below_since is not None:
            duration = (s.below_since - s.cycle_started).total_seconds()
            history = _bounded((*history, duration), params.history_size)
        return replace(
            s,
            cycle_history=history,
            sessions=s.sessions + 1,
            cycle_started=None,
            remaining_s=None,
            faults=s.faults - {Fault.STUCK},
        )
    if status is Status.IN_USE:
        started = s.above_since if old is not Status.UNKNOWN else None
        return replace(s, cycle_started=started, sessions=s.sessions + 1)
    if old is Status.IN_USE:
        return replace(s, cycle_started=None, faults=s.faults - {Fault.OVERRUN})
    return s


def _apply_duration_faults(
    s: ApplianceState, values_now: datetime, params: MachineParams
) -> ApplianceState:
    """Set STUCK, OVERRUN and HEATER_FAULT once their time is up; the first two clear on exit."""
    faults = set(s.faults)
    running_for = _elapsed(s.cycle_started or s.since, values_now)
    if s.kind in _CYCLE_KINDS and s.status is Status.RUNNING and running_for is not None:
        longest = max(s.cycle_history) if s.cycle_history else params.default_cycle_s
        if running_for > params.stuck_factor * longest:
            faults.add(Fault.STUCK)
    in_use = s.kind is ApplianceType.HAIR_DRYER and s.status is Status.IN_USE
    if in_use and running_for is not None and running_for > params.overrun_s:
        faults.add(Fault.OVERRUN)
    if s.kind is ApplianceType.WATER_DISPENSER:
        rise = _heating_rise(s)
        heating_for = _elapsed(s.heating_since, values_now)
        if heating_for is None or (rise is not None and rise >= params.min_temp_rise_c):
            faults.discard(Fault.HEATER_FAULT)
        elif rise is not None and heating_for >= params.heater_fault_after_s:
            faults.add(Fault.HEATER_FAULT)
    return _with_faults(s, faults)


def _apply_silence(s: ApplianceState, now: datetime, params: MachineParams) -> ApplianceState:
    silent_for = _elapsed(s.last_seen, now)
    if s.online and silent_for is not None and silent_for > params.offline_after_s:
        return replace(s, online=False, faults=s.faults | {Fault.OFFLINE})
    return s


def _with_remaining(s: ApplianceState, now: datetime, params: MachineParams) -> ApplianceState:
    remaining: float | None = None
    if s.kind in _CYCLE_KINDS and s.status is Status.RUNNING and s.cycle_started is not None:
        expected = statistics.median(s.cycle_history) if s.cycle_history else params.default_cycle_s
        remaining = max(0.0, expected - (now - s.cycle_started).total_seconds())
    return s if remaining == s.remaining_s else replace(s, remaining_s=remaining)


# --- applying a reading -----------------------------------------------------------------------


def _apply_reading(s: ApplianceState, reading: Reading, params: MachineParams) -> ApplianceState:
    """Presence and values of one reading, as a single copy of the state."""
    at = reading.at
    changes: dict[str, object] = {"last_seen": at}
    if reading.online is False:
        changes["online"] = False
        changes["faults"] = s.faults | {Fault.OFFLINE}
    else:
        changes["online"] = True
        if Fault.OFFLINE in s.faults:
            changes["faults"] = s.faults - {Fault.OFFLINE}
    if reading.energy_kwh is not None:
        changes["energy_kwh"] = reading.energy_kwh
    temperature = s.temperature_c
    if reading.temperature_c is not None:
        temperature = changes["temperature_c"] = reading.temperature_c
    heating_since = s.heating_since
    heating_start = s.heating_start_temp_c
    if reading.power_w is not None:
        changes["power_w"] = reading.power_w
        power_changes = _power_changes(s, reading.power_w, at, params)
        changes.update(power_changes)
        heating_since = power_changes.get("heating_since", heating_since)  # type: ignore[assignment]
        heating_start = power_changes.get("heating_start_temp_c", heating_start)  # type: ignore[assignment]
    if heating_since is not None and heating_start is None:
        changes["heating_start_temp_c"] = temperature
    if s.kind is ApplianceType.WATER_DISPENSER:
        changes.update(_heating_window(s, reading, heating_since, temperature, params))
    if reading.water_l is not None:
        changes.update(_water_changes(s, reading.water_l))
    return replace(s, **changes)


def _power_changes(
    s: ApplianceState, power_w: float, at: datetime, params: MachineParams
) -> dict[str, object]:
    if s.kind is ApplianceType.WATER_DISPENSER:
        if power_w >= params.heating_w:
            return {"heating_since": s.heating_since or at}
        return {"heating_since": None, "heating_start_temp_c": None}
    if s.kind is ApplianceType.HAIR_DRYER:
        above = power_w >= params.on_w
        below = not above
    else:
        # exclusive even if misconfigured with start_w <= stop_w, so transitions cannot ping-pong
        above = power_w >= params.start_w
        below = not above and power_w < params.stop_w
    return {
        "above_since": (s.above_since or at) if above else None,
        "below_since": (s.below_since or at) if below else None,
    }


def _heating_window(
    s: ApplianceState,
    reading: Reading,
    heating_since: datetime | None,
    temperature: float | None,
    params: MachineParams,
) -> dict[str, object]:
    """Where the heater check counts from: the meter reading when heating began, and again
    from now once ``heater_draw_restart_l`` has been drawn since (the rise is judged on a
    boiler nobody drew from). Without a water meter the check runs from the start of heating."""
    if heating_since is None:
        return {"heating_start_water_l": None} if s.heating_start_water_l is not None else {}
    water = reading.water_l if reading.water_l is not None else s.water_l
    start = s.heating_start_water_l if s.heating_since is not None else None
    if water is None:
        return {}
    if start is None or water < start:  # heating just began, or the meter was reset
        return {"heating_start_water_l": water}
    if water - start >= params.heater_draw_restart_l:
        return {
            "heating_since": reading.at,
            "heating_start_temp_c": temperature,
            "heating_start_water_l": water,
        }
    return {}


def _water_changes(s: ApplianceState, water_l: float) -> dict[str, object]:
    used = s.filter_used_l
    if s.water_baseline_l is not None and water_l >= s.water_baseline_l:
        used += water_l - s.water_baseline_l
    # a first value or a drop (meter reset) only sets the baseline
    return {"water_l": water_l, "water_baseline_l": water_l, "filter_used_l": used}


def _apply_instant_transitions(
    s: ApplianceState, reading: Reading, params: MachineParams
) -> ApplianceState:
    at = reading.at
    if s.kind is ApplianceType.WATER_DISPENSER:
        status = _dispenser_status(s, params)
        return s if status is None else _transition(s, status, at, params)
    if s.status is Status.UNKNOWN and s.power_w is not None:
        if s.kind is ApplianceType.HAIR_DRYER:
            on = s.power_w >= params.on_w
            return _transition(s, Status.IN_USE if on else Status.IDLE, at, params)
        running = s.power_w >= params.start_w
        return _transition(s, Status.RUNNING if running else Status.IDLE, at, params)
    if s.kind in _CYCLE_KINDS and s.status is Status.FINISHED and reading.door_open is True:
        return _transition(s, Status.IDLE, at, params)
    return s


def _dispenser_status(s: ApplianceState, params: MachineParams) -> Status | None:
    if s.power_w is None and s.temperature_c is None:
        return None
    if s.power_w is not None and s.power_w >= params.heating_w:
        return Status.HEATING
    if s.temperature_c is not None and s.temperature_c >= params.ready_temp_c:
        return Status.READY
    return Status.STANDBY


def _apply_reading_faults(
    s: ApplianceState, reading: Reading, params: MachineParams
) -> ApplianceState:
    faults = set(s.faults)
    if reading.leak is not None:
        _set(faults, Fault.LEAK, reading.leak)
    if s.temperature_c is not None:
        _set(faults, Fault.OVER_TEMPERATURE, s.temperature_c >= params.over_temp_c)
    if reading.current_a is not None:
        _set(faults, Fault.OVER_CURRENT, reading.current_a >= params.over_current_a)
    return _apply_filter_fault(_with_faults(s, faults), params)


def _apply_filter_fault(s: ApplianceState, params: MachineParams) -> ApplianceState:
    if s.kind is not ApplianceType.WATER_DISPENSER:
        return s
    faults = set(s.faults)
    _set(faults, Fault.FILTER_EXHAUSTED, s.filter_used_l >= params.filter_capacity_l)
    return _with_faults(s, faults)


# --- small helpers ----------------------------------------------------------------------------


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _after(start: datetime | None, hold_s: float) -> datetime | None:
    return None if start is None else start + _seconds(hold_s)


def _elapsed(start: datetime | None, now: datetime) -> float | None:
    return None if start is None else (now - start).total_seconds()


def _heating_rise(s: ApplianceState) -> float | None:
    if s.heating_start_temp_c is None or s.temperature_c is None:
        return None
    return s.temperature_c - s.heating_start_temp_c


def _bounded(history: tuple[float, ...], size: int) -> tuple[float, ...]:
    return history[-size:] if size > 0 else ()


def _set(faults: set[Fault], fault: Fault, present: bool) -> None:
    if present:
        faults.add(fault)
    else:
        faults.discard(fault)


def _with_faults(s: ApplianceState, faults: set[Fault]) -> ApplianceState:
    frozen = frozenset(faults)
    return s if frozen == s.faults else replace(s, faults=frozen)
