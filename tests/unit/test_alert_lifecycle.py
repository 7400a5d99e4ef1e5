"""Alert lifecycle rules: one open alert per (type, originator), operator actions, silences,
escalation, console order and shift hand-over."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.alerts.handover import handover, sort_key
from gateway.alerts.lifecycle import (
    COMMENT_MAX_CHARS,
    AlertChange,
    AlertRecord,
    AlertState,
    EscalationPolicy,
    InvalidTransition,
    Silence,
    acknowledge,
    apply_signal,
    assign,
    clear,
    escalate,
    make_comment,
    refresh_silence,
    signal_change,
)
from gateway.alerts.types import AlertType, Severity, Signal

T0 = datetime(2024, 3, 6, 4, 0, tzinfo=UTC)
GATE = "gate:campus/B1/main"


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sig(
    action: str = "raise",
    alert_type: AlertType = AlertType.DOOR_HELD_OPEN,
    at: float = 0.0,
    severity: Severity | None = None,
    originator: str = GATE,
    **detail: Any,
) -> Signal:
    return Signal(
        action,  # type: ignore[arg-type]
        alert_type,
        originator,
        "campus",
        "B1",
        severity or Severity.WARNING,
        f"{alert_type} at {originator}",
        detail or {"n": 1},
        s(at),
    )


def raise_(
    current: AlertRecord | None = None,
    silences: tuple[Silence, ...] = (),
    now: float = 0.0,
    **kw: Any,
) -> AlertRecord:
    rec = apply_signal(current, sig("raise", **kw), silences, s(now))
    assert rec is not None
    return rec


def stored(rec: AlertRecord, alert_id: int = 7) -> AlertRecord:
    """The record as the store returns it, with an id."""
    return replace(rec, id=alert_id)


def silence(
    originator: str = GATE,
    start: float = -60,
    end: float = 3600,
    types: frozenset[AlertType] = frozenset(),
) -> Silence:
    return Silence(
        originator=originator,
        starts_at=s(start),
        ends_at=s(end),
        reason="door repair",
        created_by="admin",
        types=types,
    )


# --- raise / repeat / clear -------------------------------------------------------------------


def test_a_raise_with_no_open_alert_makes_a_new_active_alert() -> None:
    rec = raise_(at=-5, now=0)
    assert rec.id is None
    assert rec.state is AlertState.ACTIVE
    assert rec.condition_active is True
    assert rec.count == 1
    assert (rec.first_at, rec.last_at) == (s(-5), s(-5))  # when it happened
    assert rec.annunciated_at == s(0)  # when it started sounding
    assert rec.escalation_level == 0
    assert rec.silenced is False


def test_a_raise_on_an_open_alert_counts_on_it_instead_of_a_second_alert() -> None:
    first = stored(raise_(at=0, severity=Severity.MAJOR))
    again = apply_signal(first, sig(at=30, severity=Severity.WARNING, n=2), (), s(30))
    assert again is not None
    assert again.id == first.id
    assert again.count == 2
    assert again.first_at == s(0)
    assert again.last_at == s(30)
    assert again.severity is Severity.MAJOR  # the higher of the two
    assert again.detail == {"n": 2}  # latest detail
    assert signal_change(first, again) is AlertChange.REPEATED


def test_a_late_repeat_does_not_move_last_at_backwards() -> None:
    first = stored(raise_(at=100))
    again = apply_signal(first, sig(at=50), (), s(200))
    assert again is not None and again.last_at == s(100)


def test_a_repeat_on_an_acknowledged_alert_keeps_it_acknowledged() -> None:
    acked = acknowledge(stored(raise_()), "alice", s(10))
    again = apply_signal(acked, sig(at=20), (), s(20))
    assert again is not None
    assert again.state is AlertState.ACKNOWLEDGED
    assert again.acked_by == "alice"


def test_a_higher_severity_re_annunciates_an_acknowledged_alert() -> None:
    acked = acknowledge(stored(raise_(severity=Severity.MAJOR)), "alice", s(10))
    worse = apply_signal(acked, sig(at=20, severity=Severity.CRITICAL), (), s(25))
    assert worse is not None
    assert worse.state is AlertState.ACTIVE
    assert worse.acked_by is None and worse.acked_at is None
    assert worse.annunciated_at == s(25)
    assert worse.severity is Severity.CRITICAL
    assert signal_change(acked, worse) is AlertChange.REANNUNCIATED


def test_a_clear_ends_the_condition_and_clears_the_alert_automatically() -> None:
    rec = stored(raise_())
    done = apply_signal(rec, sig("clear", at=40), (), s(41))
    assert done is not None
    assert done.state is AlertState.CLEARED
    assert done.condition_active is False
    assert done.cleared_by is None
    assert done.cleared_at == s(40)
    assert signal_change(rec, done) is AlertChange.AUTO_CLEARED


def test_a_condition_that_ends_before_anyone_acknowledged_needs_review() -> None:
    done = apply_signal(stored(raise_()), sig("clear", at=40), (), s(41))
    assert done is not None and done.needs_review
    reviewed = acknowledge(done, "bob", s(100))
    assert reviewed.state is AlertState.CLEARED
    assert reviewed.acked_by == "bob"
    assert not reviewed.needs_review


def test_an_acknowledged_alert_that_clears_needs_no_review() -> None:
    acked = acknowledge(stored(raise_()), "alice", s(10))
    done = apply_signal(acked, sig("clear", at=40), (), s(41))
    assert done is not None and not done.needs_review


@pytest.mark.parametrize("current", [None, "cleared"])
def test_a_clear_with_no_open_alert_changes_nothing(current: str | None) -> None:
    rec = None if current is None else clear(stored(raise_()), "bob", s(5))
    assert apply_signal(rec, sig("clear", at=10), (), s(10)) is None


def test_a_raise_after_the_alert_was_cleared_makes_a_new_alert() -> None:
    old = clear(stored(raise_()), "bob", s(5))
    new = apply_signal(old, sig(at=60), (), s(60))
    assert new is not None
    assert new.id is None
    assert new.count == 1
    assert new.state is AlertState.ACTIVE
    assert signal_change(old, new) is AlertChange.RAISED


@pytest.mark.parametrize(
    "alert_type",
    [
        AlertType.DOOR_FORCED_OPEN,
        AlertType.TAILGATING,
        AlertType.UNKNOWN_FACE,
        AlertType.REPEATED_DENIAL,
        AlertType.AFTER_CURFEW,
    ],
)
def test_momentary_incidents_have_no_lasting_condition(alert_type: AlertType) -> None:
    rec = raise_(alert_type=alert_type)
    assert rec.condition_active is False
    assert rec.state is AlertState.ACTIVE


def test_a_signal_for_another_alert_is_refused() -> None:
    rec = stored(raise_())
    with pytest.raises(ValueError, match="applied to alert 7"):
        apply_signal(rec, sig(originator="gate:campus/B1/side"), (), s(1))


def test_records_read_back_with_plain_strings_hold_enums() -> None:
    rec = replace(raise_(), type="tailgating", state="acknowledged", severity=3)  # type: ignore[arg-type]
    assert rec.type is AlertType.TAILGATING
    assert rec.state is AlertState.ACKNOWLEDGED
    assert rec.severity is Severity.MAJOR


# --- silences ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sil", "at", "expected"),
    [
        (silence(), 0, True),
        (silence(start=0), 0, True),  # starts inclusive
        (silence(end=0), 0, False),  # ends exclusive
        (silence(start=10), 0, False),  # not yet
        (silence(originator="gate:campus/B1"), 0, True),  # building prefix
        (silence(originator="gate:campus/B"), 0, False),  # not a whole segment
        (silence(originator="gate:campus/B1/side"), 0, False),
        (silence(types=frozenset({AlertType.DOOR_HELD_OPEN})), 0, True),
        (silence(types=frozenset({AlertType.EDGE_OFFLINE})), 0, False),
    ],
)
def test_a_raise_inside_an_active_silence_is_recorded_silenced(
    sil: Silence, at: float, expected: bool
) -> None:
    rec = raise_(silences=(sil,), at=at, now=at)
    assert rec.silenced is expected
    assert rec.state is AlertState.ACTIVE  # recorded, not suppressed


def test_a_silence_is_judged_at_the_time_the_event_happened() -> None:
    maintenance = silence(start=0, end=600)
    replayed = raise_(silences=(maintenance,), at=300, now=5000)
    assert replayed.silenced is True


def test_a_raise_outside_the_silence_unsilences_the_open_alert() -> None:
    quiet = stored(raise_(silences=(silence(end=60),), at=0))
    loud = apply_signal(quiet, sig(at=120), (silence(end=60),), s(120))
    assert loud is not None
    assert loud.silenced is False
    assert loud.annunciated_at == s(120)
    assert signal_change(quiet, loud) is AlertChange.UNSILENCED


def test_a_silenced_repeat_does_not_hush_an_alert_that_already_sounds() -> None:
    loud = stored(raise_(at=0))
    again = apply_signal(loud, sig(at=10), (silence(start=5),), s(10))
    assert again is not None and again.silenced is False


def test_a_new_silence_hushes_an_open_alert() -> None:
    loud = stored(raise_(at=0))
    quiet = refresh_silence(loud, (silence(start=30),), s(40))
    assert quiet is not None and quiet.silenced is True
    assert refresh_silence(quiet, (silence(start=30),), s(50)) is None  # no change


def test_when_the_silence_ends_a_still_active_condition_starts_sounding() -> None:
    quiet = stored(raise_(silences=(silence(end=60),), at=0))
    assert refresh_silence(quiet, (silence(end=60),), s(59)) is None
    loud = refresh_silence(quiet, (silence(end=60),), s(60))
    assert loud is not None
    assert loud.silenced is False
    assert loud.annunciated_at == s(60)


def test_a_momentary_incident_from_the_silence_stays_silenced_after_it_ends() -> None:
    quiet = stored(raise_(silences=(silence(end=60),), alert_type=AlertType.DOOR_FORCED_OPEN))
    assert refresh_silence(quiet, (), s(120)) is None


def test_silences_do_not_touch_cleared_alerts() -> None:
    done = clear(stored(raise_()), "bob", s(5))
    assert refresh_silence(done, (silence(),), s(10)) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ends_at": T0}, "must end after it starts"),
        ({"ends_at": T0 - timedelta(seconds=1)}, "must end after it starts"),
        ({"starts_at": datetime(2024, 3, 6)}, "timezone-aware"),
        ({"originator": " "}, "originator"),
        ({"reason": ""}, "reason"),
        ({"created_by": ""}, "user"),
    ],
)
def test_an_invalid_silence_is_rejected(fields: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {
        "originator": GATE,
        "starts_at": T0,
        "ends_at": T0 + timedelta(hours=1),
        "reason": "repair",
        "created_by": "admin",
    }
    values.update(fields)
    with pytest.raises(ValueError, match=message):
        Silence(**values)


# --- operator actions -------------------------------------------------------------------------


def test_acknowledge_takes_an_active_alert() -> None:
    acked = acknowledge(stored(raise_()), " alice ", s(10))
    assert acked.state is AlertState.ACKNOWLEDGED
    assert (acked.acked_by, acked.acked_at) == ("alice", s(10))


def test_acknowledging_twice_is_an_invalid_transition() -> None:
    acked = acknowledge(stored(raise_()), "alice", s(10))
    with pytest.raises(InvalidTransition, match="already acknowledged by alice"):
        acknowledge(acked, "bob", s(11))


def test_acknowledging_a_manually_cleared_alert_is_an_invalid_transition() -> None:
    done = clear(stored(raise_()), "bob", s(5))
    with pytest.raises(InvalidTransition, match="cleared"):
        acknowledge(done, "alice", s(6))


def test_an_invalid_transition_is_a_value_error() -> None:
    assert issubclass(InvalidTransition, ValueError)


@pytest.mark.parametrize("state", ["active", "acknowledged"])
def test_a_guard_clears_an_open_alert(state: str) -> None:
    rec = stored(raise_())
    if state == "acknowledged":
        rec = acknowledge(rec, "alice", s(5))
    done = clear(rec, "carol", s(30))
    assert done.state is AlertState.CLEARED
    assert (done.cleared_by, done.cleared_at) == ("carol", s(30))
    assert not done.needs_review


def test_clearing_a_cleared_alert_is_an_invalid_transition() -> None:
    done = apply_signal(stored(raise_()), sig("clear", at=3), (), s(3))
    assert done is not None
    with pytest.raises(InvalidTransition, match="already cleared \\(automatically"):
        clear(done, "carol", s(30))


def test_assign_gives_an_open_alert_to_a_guard_and_none_unassigns() -> None:
    rec = assign(stored(raise_()), "alice", "dave", s(5))
    assert rec.assignee == "dave"
    assert rec.state is AlertState.ACTIVE  # assigning is not acknowledging
    assert assign(rec, "alice", None, s(6)).assignee is None


def test_a_cleared_alert_cannot_be_assigned() -> None:
    done = clear(stored(raise_()), "bob", s(5))
    with pytest.raises(InvalidTransition, match="cannot be assigned"):
        assign(done, "alice", "dave", s(6))


@pytest.mark.parametrize("user", ["", "   ", "x" * 65])
def test_actions_need_a_named_user(user: str) -> None:
    with pytest.raises(ValueError, match="user"):
        acknowledge(stored(raise_()), user, s(1))


def test_actions_need_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        clear(stored(raise_()), "bob", datetime(2024, 3, 6))


@pytest.mark.parametrize(
    ("text", "stored_text"),
    [
        ("checked the camera", "checked the camera"),
        ("  trimmed  ", "trimmed"),
        ("x", "x"),
        ("y" * COMMENT_MAX_CHARS, "y" * COMMENT_MAX_CHARS),
    ],
)
def test_a_comment_keeps_1_to_2000_characters(text: str, stored_text: str) -> None:
    comment = make_comment(7, "alice", text, s(1))
    assert (comment.alert_id, comment.author, comment.text, comment.at) == (
        7,
        "alice",
        stored_text,
        s(1),
    )


@pytest.mark.parametrize(
    ("author", "text", "message"),
    [
        ("alice", "", "empty"),
        ("alice", "   \n", "empty"),
        ("alice", "z" * (COMMENT_MAX_CHARS + 1), "limited to 2000"),
        ("", "hello", "author"),
    ],
)
def test_an_invalid_comment_is_rejected(author: str, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_comment(7, author, text, s(1))


# --- escalation -------------------------------------------------------------------------------

POLICY = EscalationPolicy()


@pytest.mark.parametrize(
    ("severity", "after_s"),
    [(Severity.CRITICAL, 60), (Severity.MAJOR, 300), (Severity.WARNING, 900)],
)
def test_an_unacknowledged_alert_escalates_after_the_time_for_its_severity(
    severity: Severity, after_s: float
) -> None:
    rec = stored(raise_(severity=severity))
    assert escalate(rec, POLICY, s(after_s - 1)) is None
    up = escalate(rec, POLICY, s(after_s))
    assert up is not None
    assert (up.escalation_level, up.escalated_at) == (1, s(after_s))


def test_escalation_climbs_one_level_per_period_up_to_the_maximum() -> None:
    policy = EscalationPolicy(critical_after_s=60, max_level=2)
    rec = stored(raise_(severity=Severity.CRITICAL))
    rec1 = escalate(rec, policy, s(60))
    assert rec1 is not None
    assert escalate(rec1, policy, s(119)) is None
    rec2 = escalate(rec1, policy, s(120))
    assert rec2 is not None and rec2.escalation_level == 2
    assert escalate(rec2, policy, s(10_000)) is None


def test_a_gateway_that_was_down_escalates_one_level_per_call() -> None:
    rec = stored(raise_(severity=Severity.CRITICAL))
    up = escalate(rec, POLICY, s(3600))
    assert up is not None and up.escalation_level == 1


def test_the_escalation_clock_starts_when_the_alert_sounds_not_when_the_event_happened() -> None:
    replayed = stored(raise_(severity=Severity.CRITICAL, at=-7200, now=0))
    assert escalate(replayed, POLICY, s(30)) is None


@pytest.mark.parametrize("what", ["acknowledged", "silenced", "cleared"])
def test_acknowledged_silenced_or_cleared_alerts_do_not_escalate(what: str) -> None:
    rec = stored(raise_(severity=Severity.CRITICAL))
    if what == "acknowledged":
        rec = acknowledge(rec, "alice", s(1))
    elif what == "silenced":
        rec = replace(rec, silenced=True)
    else:
        rec = clear(rec, "alice", s(1))
    assert escalate(rec, POLICY, s(10_000)) is None


def test_info_alerts_never_escalate_by_default_and_escalation_can_be_off() -> None:
    assert escalate(stored(raise_(severity=Severity.INFO)), POLICY, s(10**6)) is None
    off = EscalationPolicy(enabled=False)
    assert escalate(stored(raise_(severity=Severity.CRITICAL)), off, s(10**6)) is None


def test_re_annunciation_restarts_the_escalation_clock() -> None:
    acked = acknowledge(stored(raise_(severity=Severity.MAJOR)), "alice", s(10))
    worse = apply_signal(acked, sig(at=500, severity=Severity.CRITICAL), (), s(500))
    assert worse is not None
    assert escalate(worse, POLICY, s(559)) is None
    assert escalate(worse, POLICY, s(560)) is not None


def test_escalation_policy_rejects_nonsense() -> None:
    with pytest.raises(ValidationError):
        EscalationPolicy(critical_after_s=0)
    with pytest.raises(ValidationError):
        EscalationPolicy.model_validate({"max_level": 3, "page_everyone": True})


# --- console order and hand-over --------------------------------------------------------------


def record(alert_id: int, severity: Severity, last: float, state: str = "active") -> AlertRecord:
    rec = replace(
        raise_(severity=severity, at=last, originator=f"gate:campus/B1/g{alert_id}"),
        id=alert_id,
    )
    if state == "acknowledged":
        rec = acknowledge(rec, "alice", s(last + 1))
    elif state == "silenced":
        rec = replace(rec, silenced=True)
    elif state == "review":
        rec = replace(rec, state=AlertState.CLEARED, cleared_at=s(last + 1))
    elif state == "cleared":
        rec = clear(rec, "alice", s(last + 1))
    return rec


def test_console_order_is_unacknowledged_first_then_severity_then_newest() -> None:
    alerts = [
        record(1, Severity.CRITICAL, 0, "acknowledged"),
        record(2, Severity.WARNING, 50),
        record(3, Severity.CRITICAL, 10),
        record(4, Severity.CRITICAL, 20),
        record(5, Severity.MAJOR, 99, "cleared"),
        record(6, Severity.CRITICAL, 99, "silenced"),
        record(7, Severity.MAJOR, 30, "review"),
    ]
    ordered = [r.id for r in sorted(alerts, key=sort_key)]
    assert ordered == [4, 3, 2, 6, 7, 1, 5]


def test_handover_lists_what_the_next_shift_must_know() -> None:
    since = s(100)
    alerts = [
        record(1, Severity.CRITICAL, 0),
        record(2, Severity.WARNING, 50, "acknowledged"),
        record(3, Severity.CRITICAL, 80, "silenced"),
        record(4, Severity.MAJOR, 30, "review"),  # cleared at 31, before `since`
        record(5, Severity.MAJOR, 150, "cleared"),  # cleared at 151
        record(6, Severity.MAJOR, 98, "cleared"),  # cleared at 99: before the shift
        record(7, Severity.INFO, 99, "cleared"),  # cleared at exactly `since`
    ]
    alerts[0] = replace(alerts[0], escalation_level=2)
    summary = handover(alerts, since, s(400))
    assert {sev: [r.id for r in group] for sev, group in summary.open_by_severity.items()} == {
        Severity.CRITICAL: [1, 3],
        Severity.WARNING: [2],
    }
    assert list(summary.open_by_severity) == [Severity.CRITICAL, Severity.WARNING]
    assert summary.open_count == 3
    assert summary.unacknowledged_count == 2
    assert summary.silenced_count == 1
    assert summary.escalated_count == 1
    assert summary.unassigned_count == 3
    assert [r.id for r in summary.needs_review] == [4]  # listed whatever `since` is
    assert sorted(r.id or 0 for r in summary.cleared_since) == [5, 7]
    assert summary.oldest_open_age_s == 400.0
    assert summary.by_type == {AlertType.DOOR_HELD_OPEN: 3}


def test_handover_of_a_quiet_shift() -> None:
    summary = handover([], s(0), s(100))
    assert summary.open_count == 0
    assert summary.open_by_severity == {}
    assert summary.oldest_open_age_s is None
    assert summary.needs_review == ()
