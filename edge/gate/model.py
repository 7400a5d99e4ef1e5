"""Plain value types shared by the gate's pure decision modules (no I/O imports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Box:
    """A face box in pixel coordinates of the full frame (face_recognition order)."""

    top: int
    right: int
    bottom: int
    left: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Outcome of a 1:N search: best identity, its distance and the margin to the runner-up."""

    person_id: str | None
    distance: float
    margin: float
    reason: str  # "match", "no_match", "ambiguous", "empty_gallery"

    @property
    def matched(self) -> bool:
        return self.person_id is not None


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


@dataclass(frozen=True, slots=True)
class Passage:
    """The last granted passage of a person, for anti-passback."""

    gate_id: str
    building: str
    direction: Direction
    at: datetime


@dataclass(frozen=True, slots=True)
class Curfew:
    """Entries between start and end (local time, wrapping midnight) are allowed but flagged."""

    start: time
    end: time


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    timezone: str = "Asia/Shanghai"
    curfew: Curfew | None = None
    anti_passback: bool = False
    anti_passback_window_s: float = 4 * 3600.0


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


class Flag(StrEnum):
    AFTER_CURFEW = "after_curfew"


@dataclass(frozen=True, slots=True)
class AccessDecision:
    granted: bool
    reason: Reason
    person_id: str | None = None
    flags: frozenset[Flag] = field(default_factory=frozenset)
