"""Multi-frame confirmation of face matches for one tracked face (pure, no I/O).

A single frame can match the wrong person (blur, a turned head, a look-alike), and each extra
frame costs one encoding (~80 ms on the target box). The rule therefore adapts to the evidence:

* A *strong* vote (distance <= ``strong_distance`` and margin >= ``strong_margin``) confirms at
  once. At 0.40 a dlib match is well inside the usual 0.6 tolerance, and a 0.12 gap to every
  other enrolled identity means no neighbour is close, so one frame is enough and the door can
  open within one encode of the face appearing.
* A borderline vote needs ``k`` = 2 votes for the same person within ``window_s`` = 1.5 s, i.e.
  about 200 ms more at the gate. Two independent frames agreeing removes most single-frame
  errors; the 1.5 s window keeps stale evidence from an earlier face out of the decision.
* Any vote for another identity in the window is a conflict (possibly a tracker swap between
  two people, or a look-alike pair). Then neither the strong shortcut nor a majority counts:
  only ``k`` consecutive latest votes for one person confirm.
* ``reject_after`` = 3 consecutive latest unknown votes reject the face as unknown. It is
  checked first, so a face that is currently unrecognised is not let in on older evidence.

Unknown votes (``person_id`` None) never conflict with a known one: frames where the face was
not recognised are common and do not point at anybody else.

Once a track is decided, `TrackOutcome` remembers the decision: `reverify_due` says when the face
is checked again (the next person may step into the same spot), and `next_outcome` suppresses
the same outcome for the same track within a cooldown, so one face standing at the gate is not
reported over and over.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from edge.gate.model import AccessDecision, MatchResult

VerdictState = Literal["pending", "confirmed", "rejected"]


@dataclass(frozen=True, slots=True)
class Vote:
    """The match outcome of one frame of a tracked face, stamped with monotonic seconds."""

    at: float
    person_id: str | None
    distance: float
    margin: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.at):
            raise ValueError(f"vote time must be finite, got {self.at!r}")
        if math.isnan(self.distance) or math.isnan(self.margin):
            raise ValueError("vote distance and margin must not be NaN")

    @classmethod
    def from_match(cls, result: MatchResult, at: float) -> Vote:
        """Turn a 1:N match result into a vote (ambiguous and no-match count as unknown)."""
        return cls(
            at=at, person_id=result.person_id, distance=result.distance, margin=result.margin
        )


@dataclass(frozen=True, slots=True)
class ConfirmRule:
    """How much agreeing evidence confirms an identity, and how much rejects a face."""

    k: int = 2
    window_s: float = 1.5
    strong_distance: float = 0.40
    strong_margin: float = 0.12
    reject_after: int = 3

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.reject_after < 1:
            raise ValueError(f"reject_after must be >= 1, got {self.reject_after}")
        if not (math.isfinite(self.window_s) and self.window_s > 0.0):
            raise ValueError(f"window_s must be a finite number > 0, got {self.window_s!r}")
        if not (math.isfinite(self.strong_distance) and self.strong_distance >= 0.0):
            raise ValueError(
                f"strong_distance must be a finite number >= 0, got {self.strong_distance!r}"
            )
        if not (math.isfinite(self.strong_margin) and self.strong_margin >= 0.0):
            raise ValueError(
                f"strong_margin must be a finite number >= 0, got {self.strong_margin!r}"
            )


@dataclass(frozen=True, slots=True)
class Verdict:
    """Result of `confirm`: distance and margin are means over the votes used (None if none)."""

    state: VerdictState
    person_id: str | None
    votes_used: int
    distance: float | None
    margin: float | None


def confirm(votes: Sequence[Vote], now: float, rule: ConfirmRule) -> Verdict:
    """Decide from the votes within the rule's window whether a face is confirmed or rejected."""
    # A vote stamped after `now` is fresh, not stale, so only age beyond the window excludes it.
    recent = sorted((v for v in votes if now - v.at <= rule.window_s), key=lambda v: v.at)

    unknown_run = _latest_unknown_run(recent)
    if len(unknown_run) >= rule.reject_after:
        return _verdict("rejected", None, unknown_run)

    identities = {v.person_id for v in recent if v.person_id is not None}
    if len(identities) == 1:
        (person_id,) = identities
        for_person = [v for v in recent if v.person_id == person_id]
        if len(for_person) >= rule.k:
            return _verdict("confirmed", person_id, for_person)
        strong = [v for v in for_person if _is_strong(v, rule)]
        if strong:
            return _verdict("confirmed", person_id, strong)
    elif len(identities) > 1:
        latest = recent[-rule.k :]
        latest_ids = {v.person_id for v in latest}
        if len(latest) == rule.k and len(latest_ids) == 1 and None not in latest_ids:
            return _verdict("confirmed", latest[0].person_id, latest)

    return Verdict("pending", None, 0, None, None)


def _is_strong(vote: Vote, rule: ConfirmRule) -> bool:
    return vote.distance <= rule.strong_distance and vote.margin >= rule.strong_margin


def _latest_unknown_run(votes: Sequence[Vote]) -> list[Vote]:
    run: list[Vote] = []
    for vote in reversed(votes):
        if vote.person_id is not None:
            break
        run.append(vote)
    run.reverse()
    return run


def _verdict(state: VerdictState, person_id: str | None, used: Sequence[Vote]) -> Verdict:
    count = len(used)
    return Verdict(
        state=state,
        person_id=person_id,
        votes_used=count,
        distance=math.fsum(v.distance for v in used) / count,
        margin=math.fsum(v.margin for v in used) / count,
    )


@dataclass(frozen=True, slots=True)
class TrackOutcome:
    """The last face decision on a track, for re-verification and repeat suppression."""

    decided_at: float
    person_id: str | None
    granted: bool
    reported_at: float

    def same_outcome(self, decision: AccessDecision) -> bool:
        return self.person_id == decision.person_id and self.granted == decision.granted


def reverify_due(outcome: TrackOutcome, now: float, reverify_s: float) -> bool:
    """Whether a decided track has waited long enough to be checked again."""
    return now - outcome.decided_at >= reverify_s


def next_outcome(
    previous: TrackOutcome | None, decision: AccessDecision, now: float, cooldown_s: float
) -> tuple[TrackOutcome, bool]:
    """The track's outcome after deciding at `now`, and whether the decision is to be reported.

    The same person and result as the last report, less than `cooldown_s` after it, is a repeat:
    not reported, and the cooldown keeps counting from that last report.
    """
    if (
        previous is not None
        and previous.same_outcome(decision)
        and now - previous.reported_at < cooldown_s
    ):
        return TrackOutcome(now, decision.person_id, decision.granted, previous.reported_at), False
    return TrackOutcome(now, decision.person_id, decision.granted, now), True
