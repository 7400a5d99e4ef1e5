"""Frame-to-frame face tracking by greedy IoU association (pure, stateful, no I/O).

Tracking lets the gate encode a face a few times while it stands in view instead of on every
frame (one encoding costs ~80 ms), and keeps the votes of one face together for `confirm`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge.gate.liveness import LandmarkFrame
from edge.gate.model import AccessDecision
from edge.gate.nir import NirTally
from edge.gate.voting import TrackOutcome, Verdict, Vote
from faces.box import Box

NEW_LOOK_MIN_ABSENT_FRAMES = 2  # a face HOG misses in one frame is not gone


@dataclass(slots=True)
class Track:
    """One face followed across frames, with its encoding budget and collected votes."""

    track_id: int
    box: Box
    first_seen: float
    last_seen: float
    encodes: int = 0
    last_encode_at: float | None = None
    votes: list[Vote] = field(default_factory=list)
    decided: bool = False
    last_match: str | None = None  # reason of the latest 1:N match ("ambiguous", ...)
    outcome: TrackOutcome | None = None  # the last decision, for re-verification and cooldown
    # Liveness (when on): the track's recent landmarks, and a grant held until they show life.
    landmarks: list[LandmarkFrame] = field(default_factory=list)
    screens: int = 0  # frames of this look with a screen's outline around the face
    held: tuple[AccessDecision, Verdict] | None = None  # waiting for the liveness evidence
    probe: npt.NDArray[np.float32] | None = None  # the latest encoding (kept for wrong matches)
    nir: NirTally = field(default_factory=NirTally)  # this look's NIR frames (passive+nir)
    absent: int = 0  # frames in a row without this face (since it was last seen)

    def new_look(self) -> None:
        """Judge the face in this track afresh (it may be someone else now); the last outcome
        is kept, so the same person is not reported twice within the cooldown."""
        self.decided = False
        self.encodes = 0
        self.votes.clear()
        self.last_encode_at = None
        self.last_match = None
        self.landmarks.clear()
        self.screens = 0
        self.held = None
        self.probe = None
        self.nir = NirTally()


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes; 0.0 when either has no area."""
    inter_w = min(a.right, b.right) - max(a.left, b.left)
    inter_h = min(a.bottom, b.bottom) - max(a.top, b.top)
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def _area(box: Box) -> int:
    return max(0, box.width) * max(0, box.height)


class FaceTracker:
    """Associates each frame's face boxes with live tracks by greedy highest-IoU matching."""

    def __init__(
        self,
        *,
        iou_threshold: float = 0.3,
        max_age_s: float = 1.0,
        max_encodes_per_track: int = 5,
        min_encode_interval_s: float = 0.0,
        new_look_after_s: float = math.inf,
    ) -> None:
        """Store the tracking parameters after checking they are in range.

        A track that comes back after `new_look_after_s` unseen, and missing from at least
        NEW_LOOK_MIN_ABSENT_FRAMES frames in between, is judged afresh (`Track.new_look`): in
        a queue, the next person steps into the spot the last one left, and must not inherit
        their decision. (A slow camera that sees the face in every frame is no new look.)
        """
        if not (0.0 < iou_threshold <= 1.0):
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
        if not (math.isfinite(max_age_s) and max_age_s >= 0.0):
            raise ValueError(f"max_age_s must be a finite number >= 0, got {max_age_s!r}")
        if max_encodes_per_track < 0:
            raise ValueError(f"max_encodes_per_track must be >= 0, got {max_encodes_per_track}")
        if not (math.isfinite(min_encode_interval_s) and min_encode_interval_s >= 0.0):
            raise ValueError(
                f"min_encode_interval_s must be a finite number >= 0, got {min_encode_interval_s!r}"
            )
        self.iou_threshold = iou_threshold
        self.max_age_s = max_age_s
        self.max_encodes_per_track = max_encodes_per_track
        if not new_look_after_s > 0.0:
            raise ValueError(f"new_look_after_s must be > 0, got {new_look_after_s!r}")
        self.min_encode_interval_s = min_encode_interval_s
        self.new_look_after_s = new_look_after_s
        self._tracks: list[Track] = []
        self._next_id = 1
        self._last_now: float | None = None

    @property
    def tracks(self) -> tuple[Track, ...]:
        """All live tracks, including those not seen in the latest frame but not yet expired."""
        return tuple(self._tracks)

    def update(self, boxes: Sequence[Box], now: float) -> list[Track]:
        """Associate this frame's boxes with tracks; returns one track per box, in box order."""
        if not math.isfinite(now):
            raise ValueError(f"now must be finite, got {now!r}")
        if self._last_now is not None and now < self._last_now:
            raise ValueError(f"now went backwards: {now} < {self._last_now}")
        self._last_now = now
        self._tracks = [t for t in self._tracks if now - t.last_seen <= self.max_age_s]

        # Greedy: best-overlapping pairs first; ties resolved by track age, then box order.
        pairs = sorted(
            (
                (overlap, t_index, b_index)
                for t_index, track in enumerate(self._tracks)
                for b_index, box in enumerate(boxes)
                if (overlap := iou(track.box, box)) >= self.iou_threshold
            ),
            key=lambda pair: (-pair[0], pair[1], pair[2]),
        )
        assigned: list[Track | None] = [None] * len(boxes)
        taken: set[int] = set()
        for _, t_index, b_index in pairs:
            if t_index in taken or assigned[b_index] is not None:
                continue
            taken.add(t_index)
            assigned[b_index] = self._tracks[t_index]

        for t_index, unseen in enumerate(self._tracks):
            if t_index not in taken:
                unseen.absent += 1
        result: list[Track] = []
        for box, track in zip(boxes, assigned, strict=True):
            if track is None:
                track = Track(track_id=self._next_id, box=box, first_seen=now, last_seen=now)
                self._next_id += 1
                self._tracks.append(track)
            else:
                gone = now - track.last_seen >= self.new_look_after_s
                if gone and track.absent >= NEW_LOOK_MIN_ABSENT_FRAMES:
                    track.new_look()
                track.absent = 0
                track.box = box
                track.last_seen = now
            result.append(track)
        return result

    def needs_encoding(self, track: Track, now: float) -> bool:
        """Whether the track is undecided, within its encode budget and due for an encoding."""
        if track.decided or track.encodes >= self.max_encodes_per_track:
            return False
        if track.last_encode_at is None:
            return True
        return now - track.last_encode_at >= self.min_encode_interval_s

    def mark_encoded(self, track: Track, now: float, vote: Vote) -> None:
        """Record that the track was encoded at `now` and keep the resulting vote."""
        track.encodes += 1
        track.last_encode_at = now
        track.votes.append(vote)

    def reset(self) -> None:
        """Forget all tracks and the last frame time; track ids keep increasing."""
        self._tracks = []
        self._last_now = None
