"""Access decision for a known person at a gate: a pure function over plain values.

Entries (gate direction IN) are checked in this order; the first failing check decides:

1. status          SUSPENDED / GRADUATED people are denied with that reason.
2. valid_from      before it: NOT_YET_VALID.
3. valid_until     at or after it: PASS_EXPIRED. A visitor without valid_until is denied
                   PASS_EXPIRED as well, because every visitor pass must carry an expiry.
4. building        gate.building must be in person.buildings (empty set: none): WRONG_BUILDING.
5. gate            if person.gates is non-empty it must contain gate.gate_id: WRONG_GATE.
6. schedule        local time in policy.timezone must fall in one of person.windows (no windows:
                   any time). Windows are half-open [start, end). A window whose end <= start
                   wraps past midnight, and the part after midnight belongs to the start day:
                   a Friday 22:00-02:00 window admits Saturday 01:00, not Friday 01:00.
                   OUTSIDE_SCHEDULE otherwise.
7. anti-passback   with policy.anti_passback on, a last passage in the same building, in the same
                   direction, less than policy.anti_passback_window_s seconds ago (or stamped in
                   the future, i.e. clock skew) gives ANTI_PASSBACK.

A granted entry whose local time falls in policy.curfew (half-open, wrapping midnight when
end <= start) carries Flag.AFTER_CURFEW: late entry is allowed but reported.

Exits (direction OUT) are always granted to a known person, with no check and no flag: fire
safety requires that anyone inside can leave, whatever their status, pass, schedule or passage
history.

Unknown credentials are not decided by decide_access: the caller knows why nobody was identified
(unknown card, wrong PIN) and builds that denial with deny(). For faces, decide_face turns the
vote's verdict into a decision: a confirmed person goes through decide_access, anyone else is
denied AMBIGUOUS_MATCH when the track's latest match was ambiguous, otherwise UNKNOWN_FACE.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from contracts.access import (
    Direction,
    Flag,
    GateInfo,
    Person,
    PersonStatus,
    Reason,
    TimeWindow,
    pass_ended,
    require_aware,
    scope_denial,
)
from edge.gate.model import AccessDecision, AccessPolicy, Curfew, Passage
from edge.gate.voting import Verdict

_STATUS_REASONS: dict[PersonStatus, Reason] = {
    PersonStatus.SUSPENDED: Reason.SUSPENDED,
    PersonStatus.GRADUATED: Reason.GRADUATED,
}


def deny(reason: Reason, person_id: str | None = None) -> AccessDecision:
    """Build a denial with the given reason, optionally naming the person."""
    if reason is Reason.GRANTED:
        raise ValueError("deny() needs a denial reason, not GRANTED")
    return AccessDecision(granted=False, reason=reason, person_id=person_id)


def decide_access(
    person: Person | None,
    gate: GateInfo,
    policy: AccessPolicy,
    now: datetime,
    *,
    last_passage: Passage | None = None,
) -> AccessDecision:
    """Decide whether a known person may pass this gate at `now` (aware UTC)."""
    require_aware(now, "now")
    if person is None:
        # The reason for an unidentified person depends on the credential path, which only the
        # caller knows; guessing one here would mislabel events.
        raise ValueError("decide_access() needs a known person; use deny(reason) for unknowns")
    if gate.direction is Direction.OUT:
        return AccessDecision(granted=True, reason=Reason.GRANTED, person_id=person.person_id)

    denial = _first_denial(person, gate, policy, now, last_passage)
    if denial is not None:
        return deny(denial, person.person_id)

    flags: frozenset[Flag] = frozenset()
    if policy.curfew is not None and _in_curfew(policy.curfew, _local_time(now, policy).time()):
        flags = frozenset({Flag.AFTER_CURFEW})
    return AccessDecision(
        granted=True, reason=Reason.GRANTED, person_id=person.person_id, flags=flags
    )


def decide_face(
    verdict: Verdict,
    person: Person | None,
    gate: GateInfo,
    policy: AccessPolicy,
    now: datetime,
    *,
    last_passage: Passage | None = None,
    last_match: str | None = None,
) -> AccessDecision:
    """Decide on a face whose vote has ended; `person` is the confirmed one, looked up by id.

    `last_match` is the reason of the track's latest 1:N match ("ambiguous", "no_match", ...).
    """
    if verdict.state == "confirmed" and verdict.person_id is not None:
        if person is None:
            # Confirmed against a gallery that no longer lists them: nobody we know.
            return deny(Reason.UNKNOWN_FACE)
        return decide_access(person, gate, policy, now, last_passage=last_passage)
    if last_match == "wrong_match":
        # The face matched someone, but lies close to a probe reported as not them.
        return deny(Reason.WRONG_MATCH)
    return deny(Reason.AMBIGUOUS_MATCH if last_match == "ambiguous" else Reason.UNKNOWN_FACE)


def _first_denial(
    person: Person,
    gate: GateInfo,
    policy: AccessPolicy,
    now: datetime,
    last_passage: Passage | None,
) -> Reason | None:
    status_reason = _STATUS_REASONS.get(person.status)
    if status_reason is not None:
        return status_reason
    if person.valid_from is not None and now < require_aware(person.valid_from, "valid_from"):
        return Reason.NOT_YET_VALID
    if pass_ended(person, now):
        return Reason.PASS_EXPIRED
    scope = scope_denial(person, gate)
    if scope is not None:
        return scope
    if person.windows and not _in_any_window(person.windows, _local_time(now, policy)):
        return Reason.OUTSIDE_SCHEDULE
    if policy.anti_passback and _is_passback(last_passage, gate, policy, now):
        return Reason.ANTI_PASSBACK
    return None


def _local_time(now: datetime, policy: AccessPolicy) -> datetime:
    return now.astimezone(ZoneInfo(policy.timezone))


def _in_any_window(windows: tuple[TimeWindow, ...], local: datetime) -> bool:
    weekday = local.weekday()
    previous_day = (weekday - 1) % 7
    clock = local.time()
    for window in windows:
        if window.start < window.end:
            if weekday in window.days and window.start <= clock < window.end:
                return True
        else:
            # Wrapping window: the evening part is on a listed day, the early-morning part
            # belongs to the day the window started, i.e. yesterday.
            if weekday in window.days and clock >= window.start:
                return True
            if previous_day in window.days and clock < window.end:
                return True
    return False


def _in_curfew(curfew: Curfew, clock: time) -> bool:
    if curfew.start < curfew.end:
        return curfew.start <= clock < curfew.end
    return clock >= curfew.start or clock < curfew.end


def _is_passback(
    last_passage: Passage | None, gate: GateInfo, policy: AccessPolicy, now: datetime
) -> bool:
    if last_passage is None:
        return False
    if last_passage.building != gate.building or last_passage.direction != gate.direction:
        return False
    elapsed_s = (now - require_aware(last_passage.at, "last_passage.at")).total_seconds()
    return elapsed_s < policy.anti_passback_window_s
