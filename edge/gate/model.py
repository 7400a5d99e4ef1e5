"""Plain value types of the gate's pure decision modules (no I/O imports).

The access vocabulary the gateway shares (Person, GateInfo, Reason, ...) is contracts/access.py;
the face box (Box) is faces/box.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time

from contracts.access import Direction, Flag, Reason


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Outcome of a 1:N search: best identity, its distance and the margin to the runner-up."""

    person_id: str | None
    distance: float
    margin: float
    reason: str  # "match", "no_match", "ambiguous", "wrong_match", "empty_gallery"

    @property
    def matched(self) -> bool:
        return self.person_id is not None


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


@dataclass(frozen=True, slots=True)
class AccessDecision:
    granted: bool
    reason: Reason
    person_id: str | None = None
    flags: frozenset[Flag] = field(default_factory=frozenset)
