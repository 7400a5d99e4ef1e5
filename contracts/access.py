"""Who may pass where: the access vocabulary gates and gateway share, and gallery eligibility.

The gateway builds each gate's gallery from these values and the gate decides on them, so the
types, the reason codes on the wire (`AccessEvent.reason`, `AccessEvent.flags`) and the rules
both apply live here once. Pure: no I/O imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum


class PersonStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    GRADUATED = "graduated"


class PersonKind(StrEnum):
    STUDENT = "student"
    STAFF = "staff"
    VISITOR = "visitor"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class Method(StrEnum):
    FACE = "face"
    CARD = "card"
    PIN = "pin"


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Local-time window on some weekdays (0 = Monday). end <= start wraps past midnight."""

    days: frozenset[int]
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class Person:
    """What the gate knows of one person for access decisions."""

    person_id: str
    status: PersonStatus = PersonStatus.ACTIVE
    kind: PersonKind = PersonKind.STUDENT
    buildings: frozenset[str] = frozenset()  # empty: no building allowed
    gates: frozenset[str] = frozenset()  # empty: every gate of an allowed building
    windows: tuple[TimeWindow, ...] = ()  # empty: any time
    valid_from: datetime | None = None
    valid_until: datetime | None = None  # visitor pass expiry
    card_uids: frozenset[str] = frozenset()
    pin_hash: str | None = None


@dataclass(frozen=True, slots=True)
class GateInfo:
    site: str
    building: str
    gate_id: str
    direction: Direction = Direction.IN


class Reason(StrEnum):
    GRANTED = "granted"
    UNKNOWN_FACE = "unknown_face"
    AMBIGUOUS_MATCH = "ambiguous_match"
    UNKNOWN_CARD = "unknown_card"
    WRONG_PIN = "wrong_pin"
    SUSPENDED = "suspended"
    GRADUATED = "graduated"
    NOT_YET_VALID = "not_yet_valid"
    PASS_EXPIRED = "pass_expired"  # noqa: S105 - a reason code, not a secret
    WRONG_BUILDING = "wrong_building"
    WRONG_GATE = "wrong_gate"
    OUTSIDE_SCHEDULE = "outside_schedule"
    ANTI_PASSBACK = "anti_passback"
    FACE_PATH_DISABLED = "face_path_disabled"
    PRESENTATION_ATTACK = "presentation_attack"  # a photo or a screen, not a living face
    WRONG_MATCH = "wrong_match"  # matched a person, but close to a probe reported as not them


class Flag(StrEnum):
    AFTER_CURFEW = "after_curfew"


def require_aware(moment: datetime, name: str) -> datetime:
    """``moment`` itself; ValueError when it carries no timezone."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {moment!r}")
    return moment


def pass_ended(person: Person, now: datetime) -> bool:
    """Whether the person's pass is over for good: past valid_until, or a visitor without one
    (every visitor pass must carry an expiry)."""
    if person.valid_until is None:
        return person.kind is PersonKind.VISITOR
    return now >= require_aware(person.valid_until, "valid_until")


def scope_denial(person: Person, gate: GateInfo) -> Reason | None:
    """WRONG_BUILDING or WRONG_GATE when the gate is outside the person's scope, else None."""
    if gate.building not in person.buildings:
        return Reason.WRONG_BUILDING
    if person.gates and gate.gate_id not in person.gates:
        return Reason.WRONG_GATE
    return None


def may_use_gate(person: Person, gate: GateInfo, now: datetime) -> bool:
    """Whether a person belongs in a gate's gallery: the gate could ever let them through.

    Building and gate scope always apply. Exits admit every known person whatever their status
    or pass (fire safety), so an exit gate keeps them all. An entry gate leaves out who it would
    refuse whatever the time: graduated people and passes that have ended. Suspension,
    not-yet-valid passes and schedules change with time or are reversed, so those people stay
    and the gate itself decides (edge/gate/policy.py, with the same helpers) and names the
    reason in its event.
    """
    if scope_denial(person, gate) is not None:
        return False
    if gate.direction is Direction.OUT:
        return True
    return person.status is not PersonStatus.GRADUATED and not pass_ended(person, now)
