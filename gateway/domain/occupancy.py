"""Who is inside each building, from granted passages (pure).

Rules of :func:`next_presence` (one presence per person and building):

* Only granted events with a person move presence; a denial moves nobody.
* ``in`` puts the person inside, ``out`` outside, since the event's time, at its gate.
* A passage that does not follow from what we knew is still followed, but marked
  ``irregular`` (a lost passback: someone held the door, or an event went missing): ``out``
  with no presence or while already outside, ``in`` while already inside. The next regular
  passage clears the mark.
* Events arrive at least once and, after an edge outage, possibly late: an event older than the
  current presence's ``since`` is ignored (the newer passage already says where the person is),
  and an event at exactly ``since`` in the direction already applied is a redelivery. Both
  return None ("no change").

A roll call lists everyone inside a building, sorted by person id, with how long they have been
inside; in a fire alarm, irregular entries are the ones to double-check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from contracts.models import AccessEvent
from gateway.attributes import from_attributes


@dataclass(frozen=True, slots=True)
class Presence:
    """Where one person is with respect to one building, and since when."""

    person_id: str
    building: str
    inside: bool
    since: datetime
    gate_id: str
    irregular: bool = False

    @classmethod
    def of(cls, row: Any) -> Presence:
        """The presence held by anything with these attributes (a stored row, say)."""
        return from_attributes(cls, row)

    def row(self) -> dict[str, Any]:
        """The columns of its presence row (shallow: ``dataclasses.asdict`` deep-copies each
        field, 50 µs a row on the ingest's hot path)."""
        return {
            "person_id": self.person_id,
            "building": self.building,
            "inside": self.inside,
            "since": self.since,
            "gate_id": self.gate_id,
            "irregular": self.irregular,
        }


@dataclass(frozen=True, slots=True)
class RollCallEntry:
    """One person inside a building at roll-call time."""

    person_id: str
    building: str
    since: datetime
    hours_inside: float
    gate_id: str
    irregular: bool


def next_presence(current: Presence | None, ev: AccessEvent) -> Presence | None:
    """The presence after an access event, or None when the event changes nothing."""
    if ev.decision != "granted" or ev.person_id is None:
        return None
    if current is not None and (current.person_id, current.building) != (
        ev.person_id,
        ev.building,
    ):
        raise ValueError(
            f"presence of {current.person_id} in {current.building} given an event of "
            f"{ev.person_id} in {ev.building}"
        )
    entering = ev.direction == "in"
    if current is not None:
        if ev.ts < current.since:
            return None
        if ev.ts == current.since and current.inside == entering:
            return None
    if entering:
        irregular = current is not None and current.inside
    else:
        irregular = current is None or not current.inside
    return Presence(
        person_id=ev.person_id,
        building=ev.building,
        inside=entering,
        since=ev.ts,
        gate_id=ev.gate_id,
        irregular=irregular,
    )


def vacate_elsewhere(presences: Iterable[Presence], ev: AccessEvent) -> list[Presence]:
    """Presences in other buildings that a granted entry here proves stale, marked left."""
    if ev.decision != "granted" or ev.direction != "in" or ev.person_id is None:
        return []
    return [
        replace(p, inside=False, since=ev.ts, irregular=True)
        for p in presences
        if p.person_id == ev.person_id
        and p.building != ev.building
        and p.inside
        and p.since < ev.ts
    ]


def roll_call(presences: Iterable[Presence], building: str, now: datetime) -> list[RollCallEntry]:
    """Everyone inside ``building`` at ``now``, sorted by person id."""
    entries = [
        from_attributes(
            RollCallEntry, p, hours_inside=max(0.0, (now - p.since).total_seconds() / 3600)
        )
        for p in presences
        if p.building == building and p.inside
    ]
    return sorted(entries, key=lambda e: (e.person_id, e.since))


def headcount(presences: Iterable[Presence]) -> dict[str, int]:
    """How many people are inside each building (buildings with nobody inside are left out)."""
    counts: dict[str, int] = {}
    for p in presences:
        if p.inside:
            counts[p.building] = counts.get(p.building, 0) + 1
    return dict(sorted(counts.items()))
