"""The fast path of `machines.next_state`: a reading that changes no status, timer or fault."""

from __future__ import annotations

import statistics
from datetime import datetime

from edge.devices.model import ApplianceState, ApplianceType, Fault, MachineParams, Reading, Status

# A reading this close to a hold, timeout or silence limit takes the full rules, so that the
# float arithmetic of the fast path never has to agree with datetime arithmetic at the boundary.
_MARGIN_S = 0.001


def steady_reading(s: ApplianceState, r: Reading, params: MachineParams) -> ApplianceState | None:
    """The state after a reading that changes no status, hold timer or fault; None if it might.

    Most readings are like this (the next power sample of a running washer or an idle hair
    dryer): they move last_seen, the measured values and the remaining-time estimate, nothing
    else. Anything more, and water dispensers (their status follows every reading), take the
    full rules. The result equals `_full_next_state`'s: tests/unit/test_machines.py replays
    traces and random readings through both.
    """
    kind = s.kind
    last_seen = s.last_seen
    faults = s.faults
    if (
        last_seen is None
        or not s.online
        or r.online is not None
        or r.water_l is not None
        or kind is ApplianceType.WATER_DISPENSER
        or s.heating_since is not None
        or Fault.OFFLINE in faults
    ):
        return None
    at = r.at
    if (at - last_seen).total_seconds() >= params.offline_after_s - _MARGIN_S:
        return None
    status = s.status
    power = r.power_w
    above_since, below_since = s.above_since, s.below_since
    remaining: float | None = None
    if kind is ApplianceType.HAIR_DRYER:
        if power is not None:
            above = power >= params.on_w
            if (above_since is not None) is not above or (below_since is not None) is above:
                return None  # a hold timer starts or stops
        if status is Status.IDLE:
            timer = above_since
        elif status is Status.IN_USE:
            timer = below_since
            start = s.cycle_started or s.since
            if (
                start is not None
                and Fault.OVERRUN not in faults
                and (at - start).total_seconds() > params.overrun_s
            ):
                return None
        else:
            return None
        if timer is not None and (at - timer).total_seconds() >= params.on_hold_s - _MARGIN_S:
            return None
    else:  # washer, dryer
        if power is not None:
            above = power >= params.start_w
            below = not above and power < params.stop_w
            if (above_since is not None) is not above or (below_since is not None) is not below:
                return None
        if status is Status.RUNNING:
            if (
                below_since is not None
                and (at - below_since).total_seconds() >= params.stop_hold_s - _MARGIN_S
            ):
                return None
            history = s.cycle_history
            start = s.cycle_started or s.since
            if start is not None and Fault.STUCK not in faults:
                longest = max(history) if history else params.default_cycle_s
                if (at - start).total_seconds() > params.stuck_factor * longest:
                    return None
            if s.cycle_started is not None:
                expected = statistics.median(history) if history else params.default_cycle_s
                remaining = max(0.0, expected - (at - s.cycle_started).total_seconds())
        elif status is Status.IDLE or status is Status.FINISHED:
            if (
                above_since is not None
                and (at - above_since).total_seconds() >= params.start_hold_s - _MARGIN_S
            ):
                return None
            if status is Status.FINISHED and (
                r.door_open is True
                or (
                    s.since is not None
                    and (at - s.since).total_seconds() >= params.finished_timeout_s - _MARGIN_S
                )
            ):
                return None
        else:
            return None
    temperature = s.temperature_c if r.temperature_c is None else r.temperature_c
    if r.leak is not None and r.leak is not (Fault.LEAK in faults):
        return None
    if temperature is not None and (temperature >= params.over_temp_c) is not (
        Fault.OVER_TEMPERATURE in faults
    ):
        return None
    current = r.current_a
    if current is not None and (current >= params.over_current_a) is not (
        Fault.OVER_CURRENT in faults
    ):
        return None
    power_w = s.power_w if power is None else power
    energy = s.energy_kwh if r.energy_kwh is None else r.energy_kwh
    if (
        at == last_seen
        and power_w == s.power_w
        and energy == s.energy_kwh
        and temperature == s.temperature_c
        and remaining == s.remaining_s
    ):
        return s
    return _moved(s, at, power_w, energy, temperature, remaining)


def _moved(
    s: ApplianceState,
    last_seen: datetime,
    power_w: float | None,
    energy_kwh: float | None,
    temperature_c: float | None,
    remaining_s: float | None,
) -> ApplianceState:
    """`s` seen again at `last_seen` with new values (positional: the cheapest copy there is)."""
    return ApplianceState(
        s.device_id,
        s.kind,
        s.status,
        s.since,
        s.faults,
        s.online,
        last_seen,
        power_w,
        energy_kwh,
        temperature_c,
        s.water_l,
        s.cycle_started,
        remaining_s,
        s.cycle_history,
        s.sessions,
        s.filter_used_l,
        s.above_since,
        s.below_since,
        s.heating_since,
        s.heating_start_temp_c,
        s.heating_start_water_l,
        s.water_baseline_l,
        s.extra,
    )
