"""Faults the simulator can give a device, and the appliances each one applies to."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from edge.devices.model import ApplianceType


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
