"""Gallery eligibility (contracts/access.py) agrees with the gate's decision (edge/gate/policy)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from contracts.access import (
    Direction,
    GateInfo,
    Person,
    PersonKind,
    PersonStatus,
    may_use_gate,
    pass_ended,
    scope_denial,
)
from edge.gate.model import AccessPolicy
from edge.gate.policy import decide_access

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)

PEOPLE = [
    Person(
        f"p{i}",
        status=status,
        kind=kind,
        buildings=buildings,
        gates=gates,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    for i, (status, kind, buildings, gates, valid_from, valid_until) in enumerate(
        itertools.product(
            tuple(PersonStatus),
            tuple(PersonKind),
            (frozenset(), frozenset({"b1"}), frozenset({"b2"})),
            (frozenset(), frozenset({"g1"}), frozenset({"g2"})),
            (None, NOW + DAY, NOW - DAY),
            (None, NOW + DAY, NOW - DAY),
        )
    )
]
GATES = [GateInfo("campus", "b1", "g1", direction) for direction in Direction]
MOMENTS = [NOW - 2 * DAY, NOW, NOW + 2 * DAY]


def test_a_person_the_gate_would_grant_at_any_time_is_in_its_gallery() -> None:
    """The gateway must never leave out someone the gate would let through (one rule, shared).

    An exit lets out whoever its gallery knows; the gallery's building and gate scope is what
    makes someone known there, so at exits the rule is checked for people in scope.
    """
    policy = AccessPolicy(timezone="UTC")
    missing = [
        (person, gate.direction, moment)
        for person, gate, moment in itertools.product(PEOPLE, GATES, MOMENTS)
        if (gate.direction is Direction.IN or scope_denial(person, gate) is None)
        and decide_access(person, gate, policy, moment).granted
        and not may_use_gate(person, gate, moment)
    ]
    assert missing == []


def test_an_exit_gallery_keeps_everyone_in_scope_whatever_their_status_or_pass() -> None:
    """Fire safety: nobody of the building may be unknown at its exit."""
    exit_gate = GATES[1]
    assert exit_gate.direction is Direction.OUT
    for person, moment in itertools.product(PEOPLE, MOMENTS):
        in_scope = scope_denial(person, exit_gate) is None
        assert may_use_gate(person, exit_gate, moment) is in_scope, person


def test_an_entry_gallery_leaves_out_only_who_the_gate_refuses_for_good() -> None:
    """Left out of an entry gate's gallery: out of scope, graduated, or a pass that has ended;
    never someone merely suspended or not yet valid (that can change)."""
    entry = GATES[0]
    assert entry.direction is Direction.IN
    for person in PEOPLE:
        if may_use_gate(person, entry, NOW):
            continue
        assert (
            scope_denial(person, entry) is not None
            or person.status is PersonStatus.GRADUATED
            or pass_ended(person, NOW)
        ), person


@pytest.mark.parametrize(
    ("kind", "valid_until", "ended"),
    [
        (PersonKind.STUDENT, None, False),
        (PersonKind.VISITOR, None, True),
        (PersonKind.VISITOR, NOW + DAY, False),
        (PersonKind.STAFF, NOW, True),
    ],
)
def test_pass_ended(kind: PersonKind, valid_until: datetime | None, ended: bool) -> None:
    assert pass_ended(Person("x", kind=kind, valid_until=valid_until), NOW) is ended


def test_a_naive_expiry_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        pass_ended(Person("x", valid_until=datetime(2026, 1, 1)), NOW)
