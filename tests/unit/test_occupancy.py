"""Presence rules: granted passages move people, irregular passages are followed and marked,
late or repeated events change nothing; roll calls list who is inside."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.models import AccessEvent
from gateway.domain.occupancy import (
    Presence,
    RollCallEntry,
    headcount,
    next_presence,
    roll_call,
    vacate_elsewhere,
)

T0 = datetime(2024, 3, 6, 4, 0, tzinfo=UTC)
_ids = itertools.count(1)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def passage(direction: str, at: float, **fields: Any) -> AccessEvent:
    values: dict[str, Any] = {
        "event_id": f"ev-{next(_ids):06d}",
        "ts": s(at),
        "producer": "gate:campus/B1/main",
        "site": "campus",
        "building": "B1",
        "gate_id": f"main-{direction}",
        "direction": direction,
        "decision": "granted",
        "method": "face",
        "person_id": "S001",
        "reason": "granted",
    }
    values.update(fields)
    return AccessEvent(**values)


def presence(inside: bool, at: float, **fields: Any) -> Presence:
    values: dict[str, Any] = {
        "person_id": "S001",
        "building": "B1",
        "inside": inside,
        "since": s(at),
        "gate_id": "main-in" if inside else "main-out",
    }
    values.update(fields)
    return Presence(**values)


def test_an_entry_puts_a_person_inside_since_the_event() -> None:
    assert next_presence(None, passage("in", 10)) == Presence(
        "S001", "B1", inside=True, since=s(10), gate_id="main-in", irregular=False
    )


def test_an_exit_after_an_entry_puts_them_outside() -> None:
    moved = next_presence(presence(True, 0), passage("out", 10))
    assert moved == presence(False, 10)


@pytest.mark.parametrize(
    ("current", "direction", "irregular"),
    [
        (None, "out", True),  # out without a known in: a lost passback
        ("outside", "out", True),  # out twice
        ("inside", "in", True),  # in twice
        ("outside", "in", False),
        ("inside", "out", False),
        (None, "in", False),  # first sighting on the way in
    ],
)
def test_a_passage_that_does_not_follow_is_still_followed_but_marked_irregular(
    current: str | None, direction: str, irregular: bool
) -> None:
    before = None if current is None else presence(current == "inside", 0)
    moved = next_presence(before, passage(direction, 10))
    assert moved is not None
    assert moved.inside is (direction == "in")
    assert moved.irregular is irregular


def test_the_next_regular_passage_clears_the_irregular_mark() -> None:
    moved = next_presence(presence(True, 0, irregular=True), passage("out", 10))
    assert moved is not None and moved.irregular is False


@pytest.mark.parametrize(
    "fields",
    [
        {"decision": "denied", "reason": "outside_schedule"},
        {"decision": "denied", "reason": "unknown_face", "person_id": None},
        {"person_id": None},
    ],
)
def test_only_granted_events_with_a_person_move_presence(fields: dict[str, Any]) -> None:
    assert next_presence(presence(True, 0), passage("out", 10, **fields)) is None
    assert next_presence(None, passage("in", 10, **fields)) is None


def test_an_event_older_than_the_current_presence_is_ignored() -> None:
    """After an edge outage the older passage arrives late: the newer one already decided."""
    assert next_presence(presence(False, 100), passage("in", 50)) is None


def test_a_redelivered_event_changes_nothing() -> None:
    ev = passage("in", 10)
    current = next_presence(None, ev)
    assert next_presence(current, ev) is None


def test_an_opposite_passage_at_the_same_instant_is_applied() -> None:
    moved = next_presence(presence(True, 10), passage("out", 10))
    assert moved is not None and moved.inside is False


def test_presence_of_another_person_or_building_is_refused() -> None:
    with pytest.raises(ValueError, match="S002"):
        next_presence(presence(True, 0, person_id="S002"), passage("out", 10))
    with pytest.raises(ValueError, match="B2"):
        next_presence(presence(True, 0), passage("out", 10, building="B2"))


def test_an_entry_elsewhere_marks_a_stale_inside_presence_as_left() -> None:
    presences = [
        presence(True, 0, building="B2", gate_id="b2-in"),
        presence(True, 0, building="B3", person_id="S002"),  # someone else
        presence(False, 0, building="B4"),  # already outside
        presence(True, 500, building="B5"),  # newer than the event
        presence(True, 0),  # the building entered now
    ]
    moved = vacate_elsewhere(presences, passage("in", 100))
    assert moved == [presence(False, 100, building="B2", gate_id="b2-in", irregular=True)]
    assert vacate_elsewhere(presences, passage("out", 100)) == []


# --- roll call --------------------------------------------------------------------------------


def test_roll_call_lists_everyone_inside_the_building_sorted_by_person() -> None:
    presences = [
        presence(True, 0, person_id="S3"),
        presence(True, 1800, person_id="S1", irregular=True),
        presence(False, 0, person_id="S2"),
        presence(True, 0, person_id="S4", building="B2"),
    ]
    entries = roll_call(presences, "B1", s(7200))
    assert entries == [
        RollCallEntry("S1", "B1", s(1800), 1.5, "main-in", irregular=True),
        RollCallEntry("S3", "B1", s(0), 2.0, "main-in", irregular=False),
    ]


def test_roll_call_of_an_empty_building_is_empty() -> None:
    assert roll_call([presence(False, 0)], "B1", s(10)) == []


def test_hours_inside_never_go_negative_for_a_future_stamped_entry() -> None:
    [entry] = roll_call([presence(True, 100)], "B1", s(0))
    assert entry.hours_inside == 0.0


def test_headcount_counts_people_inside_per_building() -> None:
    presences = [
        presence(True, 0, person_id="S1"),
        presence(True, 0, person_id="S2"),
        presence(False, 0, person_id="S3"),
        presence(True, 0, person_id="S1", building="B2"),
        presence(False, 0, person_id="S4", building="B3"),
    ]
    assert headcount(presences) == {"B1": 2, "B2": 1}
