"""Rules of decide_access: check order, schedules, curfew, anti-passback and exits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from contracts.access import (
    Direction,
    Flag,
    GateInfo,
    Person,
    PersonKind,
    PersonStatus,
    Reason,
    TimeWindow,
)
from edge.gate.model import AccessDecision, AccessPolicy, Curfew, Passage
from edge.gate.policy import decide_access, decide_face, deny
from edge.gate.voting import Verdict

SHANGHAI = ZoneInfo("Asia/Shanghai")
# One calendar week, Monday 2024-03-04 to Monday 2024-03-11 (China has no DST).
DAYS = {
    "mon": date(2024, 3, 4),
    "tue": date(2024, 3, 5),
    "wed": date(2024, 3, 6),
    "thu": date(2024, 3, 7),
    "fri": date(2024, 3, 8),
    "sat": date(2024, 3, 9),
    "sun": date(2024, 3, 10),
    "next_mon": date(2024, 3, 11),
}
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
WEEKDAYS = frozenset({MON, TUE, WED, THU, FRI})

ENTRY = GateInfo(site="campus", building="B1", gate_id="B1-main", direction=Direction.IN)
EXIT = replace(ENTRY, direction=Direction.OUT)
POLICY = AccessPolicy()
STUDENT = Person(person_id="S001", buildings=frozenset({"B1"}))
NOW = datetime(2024, 3, 6, 4, 0, tzinfo=UTC)  # Wednesday 12:00 in Shanghai


def local(
    day: str, hour: int, minute: int = 0, second: int = 0, tz: str = "Asia/Shanghai"
) -> datetime:
    """A UTC instant given as wall-clock time on a named day of the test week in `tz`."""
    wall = datetime.combine(DAYS[day], time(hour, minute, second), tzinfo=ZoneInfo(tz))
    return wall.astimezone(UTC)


def granted(person_id: str = "S001", flags: frozenset[Flag] = frozenset()) -> AccessDecision:
    return AccessDecision(granted=True, reason=Reason.GRANTED, person_id=person_id, flags=flags)


def denied(reason: Reason, person_id: str = "S001") -> AccessDecision:
    return AccessDecision(granted=False, reason=reason, person_id=person_id)


# --- basics -------------------------------------------------------------------------------------


def test_active_person_allowed_in_building_is_granted_without_flags() -> None:
    assert decide_access(STUDENT, ENTRY, POLICY, NOW) == granted()


@pytest.mark.parametrize("gate", [ENTRY, EXIT], ids=["entry", "exit"])
def test_naive_now_is_rejected(gate: GateInfo) -> None:
    with pytest.raises(ValueError, match="now must be a timezone-aware"):
        decide_access(STUDENT, gate, POLICY, datetime(2024, 3, 6, 4, 0))


def test_aware_non_utc_now_is_the_same_instant_as_utc() -> None:
    window = TimeWindow(days=frozenset({WED}), start=time(11, 0), end=time(13, 0))
    person = replace(STUDENT, windows=(window,))
    shanghai_noon = datetime(2024, 3, 6, 12, 0, tzinfo=SHANGHAI)
    assert decide_access(person, ENTRY, POLICY, shanghai_noon) == granted()


def test_unknown_person_is_not_decided_here_but_by_deny() -> None:
    with pytest.raises(ValueError, match="use deny"):
        decide_access(None, ENTRY, POLICY, NOW)


@pytest.mark.parametrize(
    ("person", "field"),
    [
        (replace(STUDENT, valid_from=datetime(2024, 3, 6, 0, 0)), "valid_from"),
        (replace(STUDENT, valid_until=datetime(2024, 3, 7, 0, 0)), "valid_until"),
    ],
)
def test_naive_validity_bound_is_rejected(person: Person, field: str) -> None:
    with pytest.raises(ValueError, match=f"{field} must be a timezone-aware"):
        decide_access(person, ENTRY, POLICY, NOW)


def test_naive_last_passage_time_is_rejected() -> None:
    passage = Passage("B1-main", "B1", Direction.IN, datetime(2024, 3, 6, 3, 0))
    with pytest.raises(ValueError, match=r"last_passage\.at must be a timezone-aware"):
        decide_access(STUDENT, ENTRY, AccessPolicy(anti_passback=True), NOW, last_passage=passage)


# --- deny helper --------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [r for r in Reason if r is not Reason.GRANTED])
@pytest.mark.parametrize("person_id", [None, "S001"])
def test_deny_builds_a_denial_with_reason_and_person(reason: Reason, person_id: str | None) -> None:
    decision = deny(reason, person_id)
    assert decision == AccessDecision(granted=False, reason=reason, person_id=person_id)
    assert decision.flags == frozenset()


def test_deny_refuses_granted_as_a_reason() -> None:
    with pytest.raises(ValueError, match="GRANTED"):
        deny(Reason.GRANTED)


# --- status and validity ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [(PersonStatus.SUSPENDED, Reason.SUSPENDED), (PersonStatus.GRADUATED, Reason.GRADUATED)],
)
def test_inactive_status_denies_entry_with_that_status(
    status: PersonStatus, reason: Reason
) -> None:
    person = replace(STUDENT, status=status)
    assert decide_access(person, ENTRY, POLICY, NOW) == denied(reason)


@pytest.mark.parametrize(
    ("offset_s", "expected"),
    [
        (-3600, denied(Reason.NOT_YET_VALID)),
        (-1, denied(Reason.NOT_YET_VALID)),
        (0, granted()),
        (1, granted()),
    ],
)
def test_entry_before_valid_from_is_not_yet_valid(offset_s: int, expected: AccessDecision) -> None:
    person = replace(STUDENT, valid_from=NOW)
    assert decide_access(person, ENTRY, POLICY, NOW + timedelta(seconds=offset_s)) == expected


@pytest.mark.parametrize("kind", list(PersonKind))
@pytest.mark.parametrize(
    ("offset_s", "expected"),
    [
        (-3600, granted()),
        (-1, granted()),
        (0, denied(Reason.PASS_EXPIRED)),
        (1, denied(Reason.PASS_EXPIRED)),
        (86400 * 30, denied(Reason.PASS_EXPIRED)),
    ],
)
def test_entry_at_or_after_valid_until_is_pass_expired(
    kind: PersonKind, offset_s: int, expected: AccessDecision
) -> None:
    person = replace(STUDENT, kind=kind, valid_until=NOW)
    assert decide_access(person, ENTRY, POLICY, NOW + timedelta(seconds=offset_s)) == expected


def test_visitor_without_expiry_is_denied_as_pass_expired() -> None:
    visitor = replace(STUDENT, kind=PersonKind.VISITOR, valid_until=None)
    assert decide_access(visitor, ENTRY, POLICY, NOW) == denied(Reason.PASS_EXPIRED)


@pytest.mark.parametrize("kind", [PersonKind.STUDENT, PersonKind.STAFF])
def test_residents_and_staff_need_no_expiry(kind: PersonKind) -> None:
    person = replace(STUDENT, kind=kind, valid_until=None)
    assert decide_access(person, ENTRY, POLICY, NOW) == granted()


def test_visitor_within_pass_validity_is_granted() -> None:
    visitor = replace(
        STUDENT,
        kind=PersonKind.VISITOR,
        valid_from=NOW - timedelta(hours=1),
        valid_until=NOW + timedelta(hours=2),
    )
    assert decide_access(visitor, ENTRY, POLICY, NOW) == granted()


# --- building and gate --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "buildings", [frozenset(), frozenset({"B2"}), frozenset({"B2", "B3"}), frozenset({"b1"})]
)
def test_gate_building_outside_persons_buildings_is_wrong_building(
    buildings: frozenset[str],
) -> None:
    person = replace(STUDENT, buildings=buildings)
    assert decide_access(person, ENTRY, POLICY, NOW) == denied(Reason.WRONG_BUILDING)


@pytest.mark.parametrize(
    ("gates", "expected"),
    [
        (frozenset(), granted()),
        (frozenset({"B1-main"}), granted()),
        (frozenset({"B1-side", "B1-main"}), granted()),
        (frozenset({"B1-side"}), denied(Reason.WRONG_GATE)),
    ],
    ids=["no-gate-list-means-every-gate", "listed", "listed-among-others", "not-listed"],
)
def test_non_empty_gate_list_must_contain_the_gate(
    gates: frozenset[str], expected: AccessDecision
) -> None:
    person = replace(STUDENT, gates=gates)
    assert decide_access(person, ENTRY, POLICY, NOW) == expected


# --- schedule windows ---------------------------------------------------------------------------

DAYTIME = TimeWindow(days=WEEKDAYS, start=time(6, 0), end=time(23, 0))
# Friday night out: Friday 22:00 until Saturday 02:00.
FRIDAY_NIGHT = TimeWindow(days=frozenset({FRI}), start=time(22, 0), end=time(2, 0))
SUNDAY_NIGHT = TimeWindow(days=frozenset({SUN}), start=time(23, 0), end=time(1, 0))


@pytest.mark.parametrize(
    ("day", "hour", "minute"), [("mon", 3, 0), ("sat", 12, 0), ("sun", 23, 59)]
)
def test_no_windows_means_any_time(day: str, hour: int, minute: int) -> None:
    assert decide_access(STUDENT, ENTRY, POLICY, local(day, hour, minute)) == granted()


@pytest.mark.parametrize(
    ("day", "hour", "minute", "allowed"),
    [
        ("mon", 6, 0, True),  # start is inclusive
        ("wed", 12, 0, True),
        ("fri", 22, 59, True),
        ("fri", 23, 0, False),  # end is exclusive
        ("tue", 5, 59, False),
        ("sat", 12, 0, False),  # day not listed
        ("sun", 12, 0, False),
    ],
)
def test_entry_must_fall_in_a_daytime_window_on_a_listed_day(
    day: str, hour: int, minute: int, allowed: bool
) -> None:
    person = replace(STUDENT, windows=(DAYTIME,))
    expected = granted() if allowed else denied(Reason.OUTSIDE_SCHEDULE)
    assert decide_access(person, ENTRY, POLICY, local(day, hour, minute)) == expected


@pytest.mark.parametrize(
    ("day", "hour", "minute", "allowed"),
    [
        ("fri", 21, 59, False),
        ("fri", 22, 0, True),
        ("fri", 23, 30, True),
        ("sat", 0, 0, True),
        ("sat", 1, 59, True),  # after midnight: still Friday's window
        ("sat", 2, 0, False),
        ("fri", 1, 0, False),  # early Friday belongs to Thursday's night, which is not listed
        ("sat", 22, 30, False),  # Saturday evening is not a listed start day
        ("sun", 0, 30, False),
    ],
)
def test_window_wrapping_midnight_belongs_to_its_start_day(
    day: str, hour: int, minute: int, allowed: bool
) -> None:
    person = replace(STUDENT, windows=(FRIDAY_NIGHT,))
    expected = granted() if allowed else denied(Reason.OUTSIDE_SCHEDULE)
    assert decide_access(person, ENTRY, POLICY, local(day, hour, minute)) == expected


@pytest.mark.parametrize(
    ("day", "hour", "allowed"),
    [
        ("sun", 23, True),
        ("next_mon", 0, True),  # Monday 00:30 is Sunday's window: weekday 0 follows 6
        ("next_mon", 1, False),
        ("sat", 23, False),
        ("tue", 0, False),
    ],
)
def test_wrapping_window_on_sunday_continues_into_monday(
    day: str, hour: int, allowed: bool
) -> None:
    person = replace(STUDENT, windows=(SUNDAY_NIGHT,))
    expected = granted() if allowed else denied(Reason.OUTSIDE_SCHEDULE)
    assert decide_access(person, ENTRY, POLICY, local(day, hour, 30)) == expected


@pytest.mark.parametrize(
    ("day", "hour", "allowed"),
    [("wed", 3, True), ("wed", 12, True), ("thu", 2, True), ("thu", 3, False)],
)
def test_window_with_equal_start_and_end_lasts_a_full_day(
    day: str, hour: int, allowed: bool
) -> None:
    whole_day = TimeWindow(days=frozenset({WED}), start=time(3, 0), end=time(3, 0))
    person = replace(STUDENT, windows=(whole_day,))
    expected = granted() if allowed else denied(Reason.OUTSIDE_SCHEDULE)
    assert decide_access(person, ENTRY, POLICY, local(day, hour)) == expected


@pytest.mark.parametrize(
    ("day", "hour", "allowed"),
    [
        ("wed", 12, True),  # daytime window
        ("sat", 1, True),  # Friday-night window
        ("fri", 22, True),  # both
        ("sat", 12, False),
        ("sun", 12, False),
    ],
)
def test_any_matching_window_is_enough(day: str, hour: int, allowed: bool) -> None:
    person = replace(STUDENT, windows=(DAYTIME, FRIDAY_NIGHT))
    expected = granted() if allowed else denied(Reason.OUTSIDE_SCHEDULE)
    assert decide_access(person, ENTRY, POLICY, local(day, hour, 30)) == expected


def test_schedule_uses_default_shanghai_time_not_utc() -> None:
    morning = TimeWindow(days=frozenset({MON}), start=time(8, 0), end=time(9, 0))
    person = replace(STUDENT, windows=(morning,))
    monday_0830_shanghai = datetime(2024, 3, 4, 0, 30, tzinfo=UTC)
    assert decide_access(person, ENTRY, AccessPolicy(), monday_0830_shanghai) == granted()
    assert decide_access(
        person, ENTRY, AccessPolicy(timezone="UTC"), monday_0830_shanghai
    ) == denied(Reason.OUTSIDE_SCHEDULE)


def test_schedule_weekday_is_the_local_weekday() -> None:
    # Sunday 20:00 UTC is already Monday 04:00 in Shanghai.
    early_monday = TimeWindow(days=frozenset({MON}), start=time(3, 0), end=time(5, 0))
    person = replace(STUDENT, windows=(early_monday,))
    sunday_evening_utc = datetime(2024, 3, 10, 20, 0, tzinfo=UTC)
    assert decide_access(person, ENTRY, POLICY, sunday_evening_utc) == granted()


@pytest.mark.parametrize(
    ("utc_hour", "allowed"),
    [(7, True), (8, False)],  # Berlin is UTC+1 on 2024-03-04 (winter time)
)
def test_schedule_follows_the_configured_timezone(utc_hour: int, allowed: bool) -> None:
    person = replace(
        STUDENT, windows=(TimeWindow(days=frozenset({MON}), start=time(8), end=time(9)),)
    )
    policy = AccessPolicy(timezone="Europe/Berlin")
    now = datetime(2024, 3, 4, utc_hour, 30, tzinfo=UTC)
    expected = granted() if allowed else denied(Reason.OUTSIDE_SCHEDULE)
    assert decide_access(person, ENTRY, policy, now) == expected


# --- anti-passback ------------------------------------------------------------------------------

PASSBACK = AccessPolicy(anti_passback=True, anti_passback_window_s=600.0)


def entered(seconds_ago: float, building: str = "B1", gate_id: str = "B1-main") -> Passage:
    return Passage(gate_id, building, Direction.IN, NOW - timedelta(seconds=seconds_ago))


@pytest.mark.parametrize(
    ("seconds_ago", "expected"),
    [
        (-5, denied(Reason.ANTI_PASSBACK)),  # stamped in the future: clock skew, stay strict
        (0, denied(Reason.ANTI_PASSBACK)),
        (1, denied(Reason.ANTI_PASSBACK)),
        (599.999, denied(Reason.ANTI_PASSBACK)),
        (600, granted()),  # the window has just elapsed
        (601, granted()),
        (86400, granted()),
    ],
)
def test_second_entry_within_window_is_anti_passback(
    seconds_ago: float, expected: AccessDecision
) -> None:
    assert decide_access(STUDENT, ENTRY, PASSBACK, NOW, last_passage=entered(seconds_ago)) == (
        expected
    )


def test_anti_passback_applies_across_gates_of_the_same_building() -> None:
    passage = entered(30, gate_id="B1-side")
    assert decide_access(STUDENT, ENTRY, PASSBACK, NOW, last_passage=passage) == denied(
        Reason.ANTI_PASSBACK
    )


@pytest.mark.parametrize(
    ("policy", "passage"),
    [
        (AccessPolicy(anti_passback=False, anti_passback_window_s=600.0), entered(30)),
        (PASSBACK, None),
        (PASSBACK, entered(30, building="B2", gate_id="B2-main")),
        (PASSBACK, replace(entered(30), direction=Direction.OUT)),
    ],
    ids=["disabled", "no-last-passage", "other-building", "last-passage-was-an-exit"],
)
def test_entry_after_no_recent_entry_in_building_passes_anti_passback(
    policy: AccessPolicy, passage: Passage | None
) -> None:
    assert decide_access(STUDENT, ENTRY, policy, NOW, last_passage=passage) == granted()


# --- check order --------------------------------------------------------------------------------

NOT_WEDNESDAY = TimeWindow(days=frozenset({SUN}), start=time(0, 0), end=time(1, 0))
# Each step breaks one more rule; the earliest broken rule must be the reported reason.
FAILURES: list[tuple[Reason, Callable[[Person], Person]]] = [
    (Reason.SUSPENDED, lambda p: replace(p, status=PersonStatus.SUSPENDED)),
    (Reason.NOT_YET_VALID, lambda p: replace(p, valid_from=NOW + timedelta(days=1))),
    (Reason.PASS_EXPIRED, lambda p: replace(p, valid_until=NOW - timedelta(days=1))),
    (Reason.WRONG_BUILDING, lambda p: replace(p, buildings=frozenset({"B2"}))),
    (Reason.WRONG_GATE, lambda p: replace(p, gates=frozenset({"B1-side"}))),
    (Reason.OUTSIDE_SCHEDULE, lambda p: replace(p, windows=(NOT_WEDNESDAY,))),
    (Reason.ANTI_PASSBACK, lambda p: p),  # broken through last_passage below
]


@pytest.mark.parametrize(
    "first", range(len(FAILURES)), ids=[reason.value for reason, _ in FAILURES]
)
def test_first_failing_check_in_documented_order_wins(first: int) -> None:
    person = STUDENT
    for _, break_rule in FAILURES[first:]:
        person = break_rule(person)
    decision = decide_access(person, ENTRY, PASSBACK, NOW, last_passage=entered(30))
    assert decision == denied(FAILURES[first][0])


def test_graduated_is_reported_before_validity_and_building() -> None:
    person = replace(
        STUDENT,
        status=PersonStatus.GRADUATED,
        valid_until=NOW - timedelta(days=1),
        buildings=frozenset(),
    )
    assert decide_access(person, ENTRY, POLICY, NOW) == denied(Reason.GRADUATED)


def test_visitor_without_expiry_is_reported_before_wrong_building() -> None:
    visitor = replace(STUDENT, kind=PersonKind.VISITOR, buildings=frozenset({"B2"}))
    assert decide_access(visitor, ENTRY, POLICY, NOW) == denied(Reason.PASS_EXPIRED)


# --- curfew -------------------------------------------------------------------------------------

NIGHT_CURFEW = AccessPolicy(curfew=Curfew(start=time(23, 0), end=time(6, 0)))
AFTER_CURFEW = frozenset({Flag.AFTER_CURFEW})


@pytest.mark.parametrize(
    ("day", "hour", "minute", "flagged"),
    [
        ("wed", 22, 59, False),
        ("wed", 23, 0, True),  # start inclusive
        ("wed", 23, 30, True),
        ("thu", 0, 0, True),
        ("thu", 3, 0, True),
        ("thu", 5, 59, True),
        ("thu", 6, 0, False),  # end exclusive
        ("thu", 12, 0, False),
    ],
)
def test_entry_during_curfew_wrapping_midnight_is_granted_but_flagged(
    day: str, hour: int, minute: int, flagged: bool
) -> None:
    decision = decide_access(STUDENT, ENTRY, NIGHT_CURFEW, local(day, hour, minute))
    assert decision == granted(flags=AFTER_CURFEW if flagged else frozenset())


@pytest.mark.parametrize(("hour", "flagged"), [(0, False), (1, True), (4, True), (5, False)])
def test_curfew_not_wrapping_midnight_flags_only_inside_it(hour: int, flagged: bool) -> None:
    policy = AccessPolicy(curfew=Curfew(start=time(1, 0), end=time(5, 0)))
    decision = decide_access(STUDENT, ENTRY, policy, local("wed", hour, 30))
    assert decision == granted(flags=AFTER_CURFEW if flagged else frozenset())


def test_curfew_is_judged_in_local_time() -> None:
    # 15:30 UTC is 23:30 in Shanghai: flagged; the same instant in a UTC policy is not.
    afternoon_utc = datetime(2024, 3, 6, 15, 30, tzinfo=UTC)
    assert decide_access(STUDENT, ENTRY, NIGHT_CURFEW, afternoon_utc).flags == AFTER_CURFEW
    utc_policy = replace(NIGHT_CURFEW, timezone="UTC")
    assert decide_access(STUDENT, ENTRY, utc_policy, afternoon_utc).flags == frozenset()


def test_no_curfew_means_no_flag_at_night() -> None:
    assert decide_access(STUDENT, ENTRY, POLICY, local("thu", 3)) == granted()


def test_denied_entry_during_curfew_carries_no_flag() -> None:
    person = replace(STUDENT, buildings=frozenset({"B2"}))
    decision = decide_access(person, ENTRY, NIGHT_CURFEW, local("thu", 3))
    assert decision == denied(Reason.WRONG_BUILDING)


# --- exits --------------------------------------------------------------------------------------

LOCKED_OUT_EVERY_WAY: list[Person] = [
    replace(STUDENT, status=PersonStatus.SUSPENDED),
    replace(STUDENT, status=PersonStatus.GRADUATED),
    replace(STUDENT, valid_from=NOW + timedelta(days=1)),
    replace(STUDENT, valid_until=NOW - timedelta(days=1)),
    replace(STUDENT, kind=PersonKind.VISITOR),
    replace(STUDENT, buildings=frozenset()),
    replace(STUDENT, gates=frozenset({"B1-side"})),
    replace(STUDENT, windows=(NOT_WEDNESDAY,)),
]


@pytest.mark.parametrize(
    "person",
    LOCKED_OUT_EVERY_WAY,
    ids=[
        "suspended",
        "graduated",
        "not-yet-valid",
        "expired",
        "visitor-without-expiry",
        "no-building",
        "other-gate",
        "outside-schedule",
    ],
)
def test_known_person_may_always_exit_for_fire_safety(person: Person) -> None:
    assert decide_access(person, EXIT, POLICY, NOW) == granted()


def test_exit_is_not_subject_to_anti_passback() -> None:
    left = Passage("B1-main", "B1", Direction.OUT, NOW - timedelta(seconds=10))
    assert decide_access(STUDENT, EXIT, PASSBACK, NOW, last_passage=left) == granted()


def test_exit_during_curfew_is_not_flagged() -> None:
    assert decide_access(STUDENT, EXIT, NIGHT_CURFEW, local("thu", 3)) == granted()


# --- faces: the verdict of the vote ---------------------------------------------------------

CONFIRMED = Verdict("confirmed", "S001", 2, 0.35, 0.2)
REJECTED = Verdict("rejected", None, 3, 0.7, 0.01)
PENDING = Verdict("pending", None, 0, None, None)


def test_confirmed_face_goes_through_the_same_policy_as_everyone() -> None:
    assert decide_face(CONFIRMED, STUDENT, ENTRY, POLICY, NOW) == granted()
    suspended = replace(STUDENT, status=PersonStatus.SUSPENDED)
    assert decide_face(CONFIRMED, suspended, ENTRY, POLICY, NOW) == denied(Reason.SUSPENDED)


def test_confirmed_face_is_subject_to_anti_passback() -> None:
    entered = Passage("B1-main", "B1", Direction.IN, NOW - timedelta(seconds=10))
    decision = decide_face(CONFIRMED, STUDENT, ENTRY, PASSBACK, NOW, last_passage=entered)
    assert decision == denied(Reason.ANTI_PASSBACK)


def test_confirmed_face_no_longer_in_the_gallery_is_an_unknown_face() -> None:
    decision = decide_face(CONFIRMED, None, ENTRY, POLICY, NOW, last_match="match")
    assert decision == AccessDecision(granted=False, reason=Reason.UNKNOWN_FACE)


@pytest.mark.parametrize(
    ("verdict", "last_match", "reason"),
    [
        (REJECTED, "ambiguous", Reason.AMBIGUOUS_MATCH),
        (REJECTED, "no_match", Reason.UNKNOWN_FACE),
        (REJECTED, "empty_gallery", Reason.UNKNOWN_FACE),
        (REJECTED, None, Reason.UNKNOWN_FACE),
        (PENDING, "ambiguous", Reason.AMBIGUOUS_MATCH),
        (PENDING, "no_match", Reason.UNKNOWN_FACE),
    ],
)
def test_a_face_nobody_was_confirmed_for_is_denied_by_its_latest_match(
    verdict: Verdict, last_match: str | None, reason: Reason
) -> None:
    """Ambiguous when the latest 1:N match was ambiguous, otherwise unknown; never a person."""
    decision = decide_face(verdict, None, ENTRY, POLICY, NOW, last_match=last_match)
    assert decision == AccessDecision(granted=False, reason=reason)
