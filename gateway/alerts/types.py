"""The words every part of the alert package shares: alert types, severities, signals.

Two kinds of alert type (see :data:`MOMENTARY_TYPES`):

* **Momentary incidents** (unknown_face, repeated_denial, door_forced_open, tailgating,
  after_curfew, command_attack) are raised and never cleared by a rule: the moment is over, but
  a guard has to look at it, so it stays open until a guard clears it. A repeat while it is open
  counts on the same alert.
* **Conditions** (door_held_open, edge_offline, device_offline, appliance_fault, edge_alarm,
  event_gap, welfare) are raised when they start and cleared when they end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

JsonDict = dict[str, Any]  # plain JSON values only (str, int, float, bool, None, list, dict)


class AlertType(StrEnum):
    """What an alert is about."""

    UNKNOWN_FACE = "unknown_face"
    REPEATED_DENIAL = "repeated_denial"
    DOOR_HELD_OPEN = "door_held_open"
    DOOR_FORCED_OPEN = "door_forced_open"
    TAILGATING = "tailgating"
    AFTER_CURFEW = "after_curfew"
    EDGE_OFFLINE = "edge_offline"
    DEVICE_OFFLINE = "device_offline"
    APPLIANCE_FAULT = "appliance_fault"
    EDGE_ALARM = "edge_alarm"
    EVENT_GAP = "event_gap"
    WELFARE = "welfare"
    COMMAND_ATTACK = "command_attack"
    PRESENTATION_ATTACK = "presentation_attack"  # photos or screens held up to a gate camera


class Severity(IntEnum):
    """How urgent an alert is; higher is more urgent."""

    INFO = 1
    WARNING = 2
    MAJOR = 3
    CRITICAL = 4


MOMENTARY_TYPES: frozenset[AlertType] = frozenset(
    {
        AlertType.UNKNOWN_FACE,
        AlertType.REPEATED_DENIAL,
        AlertType.DOOR_FORCED_OPEN,
        AlertType.TAILGATING,
        AlertType.AFTER_CURFEW,
        AlertType.COMMAND_ATTACK,
        AlertType.PRESENTATION_ATTACK,
    }
)

DEFAULT_SEVERITY: dict[AlertType, Severity] = {
    AlertType.UNKNOWN_FACE: Severity.WARNING,
    AlertType.REPEATED_DENIAL: Severity.WARNING,
    AlertType.DOOR_HELD_OPEN: Severity.WARNING,
    AlertType.DOOR_FORCED_OPEN: Severity.CRITICAL,
    AlertType.TAILGATING: Severity.MAJOR,
    AlertType.AFTER_CURFEW: Severity.INFO,
    AlertType.EDGE_OFFLINE: Severity.MAJOR,
    AlertType.DEVICE_OFFLINE: Severity.WARNING,
    AlertType.APPLIANCE_FAULT: Severity.MAJOR,  # the fault decides: see DEFAULT_FAULT_SEVERITY
    AlertType.EDGE_ALARM: Severity.MAJOR,
    AlertType.EVENT_GAP: Severity.MAJOR,
    AlertType.WELFARE: Severity.WARNING,
    AlertType.COMMAND_ATTACK: Severity.CRITICAL,
    AlertType.PRESENTATION_ATTACK: Severity.MAJOR,
}


def _parse_severity(value: object) -> object:
    if isinstance(value, str) and not value.strip().isdigit():
        try:
            return Severity[value.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown severity {value!r}: use info, warning, major or critical (or 1-4)"
            ) from None
    return value


SeverityValue = Annotated[Severity, BeforeValidator(_parse_severity)]
"""A severity in config: a name (info, warning, major, critical) or its number 1-4."""


@dataclass(frozen=True, slots=True)
class Signal:
    """A rule's verdict: raise or clear the alert of (type, originator)."""

    action: Literal["raise", "clear"]
    type: AlertType
    originator: str
    site: str
    building: str
    severity: Severity
    title: str
    detail: JsonDict
    at: datetime
