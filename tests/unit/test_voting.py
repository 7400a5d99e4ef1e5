"""Rules of multi-frame confirmation, driven with plain votes and times."""

from __future__ import annotations

import math

import pytest

from contracts.access import Reason
from edge.gate.model import AccessDecision, MatchResult
from edge.gate.voting import (
    ConfirmRule,
    TrackOutcome,
    Verdict,
    Vote,
    confirm,
    next_outcome,
    reverify_due,
)

RULE = ConfirmRule()  # k=2, window 1.5 s, strong <= 0.40 with margin >= 0.12, reject after 3


def weak(at: float, person: str | None = "alice") -> Vote:
    """A borderline vote: inside a usual tolerance but not strong."""
    return Vote(at=at, person_id=person, distance=0.52, margin=0.08)


def strong(at: float, person: str = "alice") -> Vote:
    return Vote(at=at, person_id=person, distance=0.30, margin=0.25)


def unknown(at: float) -> Vote:
    return Vote(at=at, person_id=None, distance=0.75, margin=0.02)


def test_no_votes_is_pending() -> None:
    assert confirm([], now=10.0, rule=RULE) == Verdict("pending", None, 0, None, None)


def test_single_strong_vote_confirms_at_once() -> None:
    verdict = confirm([strong(10.0)], now=10.0, rule=RULE)
    assert (verdict.state, verdict.person_id, verdict.votes_used) == ("confirmed", "alice", 1)
    assert verdict.distance == pytest.approx(0.30)
    assert verdict.margin == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("distance", "margin"),
    [(0.41, 0.25), (0.30, 0.11), (0.52, 0.08)],
    ids=["distance-too-far", "margin-too-narrow", "borderline"],
)
def test_single_vote_that_is_not_strong_stays_pending(distance: float, margin: float) -> None:
    vote = Vote(at=10.0, person_id="alice", distance=distance, margin=margin)
    assert confirm([vote], now=10.0, rule=RULE).state == "pending"


@pytest.mark.parametrize(("distance", "margin"), [(0.40, 0.12)])
def test_strong_thresholds_are_inclusive(distance: float, margin: float) -> None:
    vote = Vote(at=10.0, person_id="alice", distance=distance, margin=margin)
    assert confirm([vote], now=10.0, rule=RULE).state == "confirmed"


def test_k_borderline_votes_for_one_person_confirm_with_mean_distance_and_margin() -> None:
    votes = [
        Vote(at=9.0, person_id="alice", distance=0.50, margin=0.06),
        Vote(at=9.5, person_id="alice", distance=0.56, margin=0.10),
    ]
    verdict = confirm(votes, now=9.6, rule=RULE)
    assert (verdict.state, verdict.person_id, verdict.votes_used) == ("confirmed", "alice", 2)
    assert verdict.distance == pytest.approx(0.53)
    assert verdict.margin == pytest.approx(0.08)


@pytest.mark.parametrize(
    ("k", "count", "expected"),
    [(3, 2, "pending"), (3, 3, "confirmed"), (1, 1, "confirmed"), (4, 3, "pending")],
)
def test_borderline_votes_confirm_only_once_k_are_reached(
    k: int, count: int, expected: str
) -> None:
    votes = [weak(10.0 + 0.1 * i) for i in range(count)]
    assert confirm(votes, now=10.5, rule=ConfirmRule(k=k)).state == expected


@pytest.mark.parametrize(
    ("first_at", "expected"), [(8.0, "pending"), (8.5, "confirmed"), (8.49, "pending")]
)
def test_only_votes_within_the_window_count(first_at: float, expected: str) -> None:
    votes = [weak(first_at), weak(9.9)]
    assert confirm(votes, now=10.0, rule=RULE).state == expected


def test_strong_vote_outside_the_window_does_not_confirm() -> None:
    assert confirm([strong(5.0)], now=10.0, rule=RULE).state == "pending"


def test_unknown_votes_between_agreeing_votes_do_not_block_confirmation() -> None:
    votes = [weak(9.0), unknown(9.2), weak(9.4)]
    verdict = confirm(votes, now=9.5, rule=RULE)
    assert (verdict.state, verdict.person_id, verdict.votes_used) == ("confirmed", "alice", 2)


def test_vote_order_in_the_input_does_not_matter() -> None:
    votes = [weak(9.4), unknown(9.2), weak(9.0)]
    assert confirm(votes, now=9.5, rule=RULE).state == "confirmed"


@pytest.mark.parametrize(
    "votes",
    [
        [weak(9.0, "alice"), weak(9.1, "bob"), weak(9.2, "alice")],
        [weak(9.0, "alice"), weak(9.1, "alice"), weak(9.2, "bob")],
        [weak(9.0, "alice"), weak(9.1, "alice"), weak(9.2, "alice"), weak(9.3, "bob")],
        [strong(9.0, "alice"), weak(9.1, "bob")],
        [weak(9.0, "bob"), strong(9.1, "alice")],
        [weak(9.0, "bob"), weak(9.1, "alice"), unknown(9.2), weak(9.3, "alice")],
    ],
    ids=[
        "interleaved",
        "latest-disagrees",
        "majority-but-latest-disagrees",
        "strong-then-other",
        "other-then-strong",
        "unknown-breaks-consecutive",
    ],
)
def test_conflicting_identities_in_window_stay_pending(votes: list[Vote]) -> None:
    verdict = confirm(votes, now=9.5, rule=RULE)
    assert (verdict.state, verdict.person_id) == ("pending", None)


def test_conflict_resolves_when_k_consecutive_latest_votes_agree() -> None:
    votes = [weak(9.0, "bob"), weak(9.1, "alice"), weak(9.2, "alice")]
    verdict = confirm(votes, now=9.5, rule=RULE)
    assert (verdict.state, verdict.person_id, verdict.votes_used) == ("confirmed", "alice", 2)


def test_conflict_resolves_for_the_latest_run_not_the_more_frequent_identity() -> None:
    votes = [weak(9.0, "bob"), weak(9.1, "bob"), weak(9.2, "bob"), weak(9.3, "alice")]
    assert confirm(votes, now=9.4, rule=ConfirmRule(k=3)).state == "pending"
    votes += [weak(9.4, "alice"), weak(9.5, "alice")]
    verdict = confirm(votes, now=9.6, rule=ConfirmRule(k=3))
    assert (verdict.state, verdict.person_id) == ("confirmed", "alice")


def test_conflict_leaves_the_window_and_no_longer_blocks() -> None:
    votes = [weak(8.0, "bob"), weak(9.0, "alice"), unknown(9.1), weak(9.2, "alice")]
    assert confirm(votes, now=9.4, rule=RULE).state == "pending"  # bob still in the window
    verdict = confirm(votes, now=9.6, rule=RULE)
    assert (verdict.state, verdict.person_id, verdict.votes_used) == ("confirmed", "alice", 2)


def test_vote_stamped_after_now_counts_as_fresh() -> None:
    assert confirm([strong(10.2)], now=10.0, rule=RULE).state == "confirmed"


@pytest.mark.parametrize(
    ("reject_after", "unknown_count", "expected"),
    [(3, 2, "pending"), (3, 3, "rejected"), (3, 4, "rejected"), (1, 1, "rejected")],
)
def test_consecutive_latest_unknown_votes_reject_the_face(
    reject_after: int, unknown_count: int, expected: str
) -> None:
    votes = [unknown(9.0 + 0.1 * i) for i in range(unknown_count)]
    verdict = confirm(votes, now=9.5, rule=ConfirmRule(reject_after=reject_after))
    assert verdict.state == expected
    assert verdict.person_id is None
    if expected == "rejected":
        assert verdict.votes_used == unknown_count
        assert verdict.distance == pytest.approx(0.75)


def test_unknown_votes_that_are_not_latest_do_not_reject() -> None:
    votes = [unknown(9.0), unknown(9.1), unknown(9.2), weak(9.3)]
    assert confirm(votes, now=9.5, rule=RULE).state == "pending"


def test_latest_unknown_run_rejects_even_after_earlier_recognition() -> None:
    votes = [strong(9.0), unknown(9.1), unknown(9.2), unknown(9.3)]
    assert confirm(votes, now=9.5, rule=RULE).state == "rejected"


def test_stale_unknown_votes_outside_window_do_not_reject() -> None:
    votes = [unknown(5.0), unknown(5.1), unknown(9.9)]
    assert confirm(votes, now=10.0, rule=RULE).state == "pending"


def test_vote_from_match_result_carries_identity_distance_and_margin() -> None:
    vote = Vote.from_match(MatchResult("alice", 0.31, 0.2, "match"), at=4.0)
    assert vote == Vote(at=4.0, person_id="alice", distance=0.31, margin=0.2)
    ambiguous = Vote.from_match(MatchResult(None, 0.45, 0.01, "ambiguous"), at=4.0)
    assert ambiguous.person_id is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be"),
        ({"reject_after": 0}, "reject_after"),
        ({"window_s": 0.0}, "window_s"),
        ({"window_s": math.inf}, "window_s"),
        ({"strong_distance": -0.1}, "strong_distance"),
        ({"strong_distance": math.nan}, "strong_distance"),
        ({"strong_margin": -0.1}, "strong_margin"),
    ],
)
def test_confirm_rule_rejects_out_of_range_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConfirmRule(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("at", "distance", "margin"),
    [(math.nan, 0.3, 0.1), (math.inf, 0.3, 0.1), (1.0, math.nan, 0.1), (1.0, 0.3, math.nan)],
)
def test_vote_rejects_nan_values(at: float, distance: float, margin: float) -> None:
    with pytest.raises(ValueError, match="must"):
        Vote(at=at, person_id="alice", distance=distance, margin=margin)


# --- after a decision: re-verification and repeat suppression --------------------------------

GRANT_ALICE = AccessDecision(granted=True, reason=Reason.GRANTED, person_id="alice")
DENY_UNKNOWN = AccessDecision(granted=False, reason=Reason.UNKNOWN_FACE)
COOLDOWN_S = 10.0


def test_first_decision_on_a_track_is_reported() -> None:
    outcome, report = next_outcome(None, GRANT_ALICE, now=5.0, cooldown_s=COOLDOWN_S)
    assert report
    assert outcome == TrackOutcome(decided_at=5.0, person_id="alice", granted=True, reported_at=5.0)


def test_same_outcome_within_the_cooldown_is_not_reported_and_keeps_the_report_time() -> None:
    first, _ = next_outcome(None, GRANT_ALICE, now=5.0, cooldown_s=COOLDOWN_S)
    again, report = next_outcome(first, GRANT_ALICE, now=14.9, cooldown_s=COOLDOWN_S)
    assert not report
    assert (again.decided_at, again.reported_at) == (14.9, 5.0)


def test_same_outcome_once_the_cooldown_has_passed_is_reported_again() -> None:
    first, _ = next_outcome(None, GRANT_ALICE, now=5.0, cooldown_s=COOLDOWN_S)
    repeat, _ = next_outcome(first, GRANT_ALICE, now=9.0, cooldown_s=COOLDOWN_S)
    later, report = next_outcome(repeat, GRANT_ALICE, now=15.0, cooldown_s=COOLDOWN_S)
    assert report, "the cooldown counts from the last report, not from the last repeat"
    assert later.reported_at == 15.0


@pytest.mark.parametrize(
    "decision",
    [DENY_UNKNOWN, AccessDecision(False, Reason.OUTSIDE_SCHEDULE, person_id="alice")],
    ids=["another-person", "same-person-other-result"],
)
def test_a_different_outcome_is_reported_at_once(decision: AccessDecision) -> None:
    first, _ = next_outcome(None, GRANT_ALICE, now=5.0, cooldown_s=COOLDOWN_S)
    outcome, report = next_outcome(first, decision, now=5.5, cooldown_s=COOLDOWN_S)
    assert report
    assert outcome.reported_at == 5.5


def test_zero_cooldown_reports_every_decision() -> None:
    first, _ = next_outcome(None, GRANT_ALICE, now=5.0, cooldown_s=0.0)
    assert next_outcome(first, GRANT_ALICE, now=5.0, cooldown_s=0.0)[1]


@pytest.mark.parametrize(("now", "due"), [(5.99, False), (6.0, True), (9.0, True)])
def test_a_decided_track_is_due_for_reverification_after_reverify_s(now: float, due: bool) -> None:
    outcome = TrackOutcome(decided_at=5.0, person_id="alice", granted=True, reported_at=5.0)
    assert reverify_due(outcome, now, reverify_s=1.0) is due
