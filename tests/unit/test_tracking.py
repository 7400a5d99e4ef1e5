"""Rules of frame-to-frame face tracking and the per-track encoding budget."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest

from edge.gate.tracking import FaceTracker, Track, iou
from edge.gate.voting import Vote
from faces.box import Box


def box(left: int, top: int, size: int = 100) -> Box:
    return Box(top=top, right=left + size, bottom=top + size, left=left)


def vote(at: float) -> Vote:
    return Vote(at=at, person_id="alice", distance=0.5, margin=0.1)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (box(0, 0), box(0, 0), 1.0),
        (box(0, 0), box(50, 0), 50 * 100 / (2 * 100 * 100 - 50 * 100)),
        (box(0, 0), box(100, 0), 0.0),  # touching edges share no area
        (box(0, 0), box(300, 300), 0.0),
        (box(0, 0, 100), box(25, 25, 50), 50 * 50 / (100 * 100)),  # contained
        (Box(top=0, right=0, bottom=0, left=0), Box(top=0, right=0, bottom=0, left=0), 0.0),
    ],
)
def test_iou_is_intersection_over_union(a: Box, b: Box, expected: float) -> None:
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)


def test_new_faces_get_new_tracks_with_increasing_ids() -> None:
    tracker = FaceTracker()
    tracks = tracker.update([box(0, 0), box(300, 0)], now=1.0)
    assert [t.track_id for t in tracks] == [1, 2]
    assert all(t.first_seen == t.last_seen == 1.0 for t in tracks)
    assert all(
        (t.encodes, t.last_encode_at, t.votes, t.decided) == (0, None, [], False) for t in tracks
    )


def test_overlapping_box_in_next_frame_continues_the_same_track() -> None:
    tracker = FaceTracker()
    (first,) = tracker.update([box(100, 100)], now=1.0)
    (second,) = tracker.update([box(110, 105)], now=1.1)
    assert second is first
    assert second.box == box(110, 105)
    assert (second.first_seen, second.last_seen) == (1.0, 1.1)


def test_tracks_are_returned_in_the_order_of_the_given_boxes() -> None:
    tracker = FaceTracker()
    left, right = tracker.update([box(0, 0), box(300, 0)], now=1.0)
    swapped = tracker.update([box(305, 0), box(5, 0)], now=1.1)
    assert [t.track_id for t in swapped] == [right.track_id, left.track_id]


@pytest.mark.parametrize(
    ("shift", "threshold", "same_track"),
    [(10, 0.3, True), (60, 0.3, False), (60, 0.2, True), (0, 1.0, True)],
)
def test_association_requires_iou_at_least_threshold(
    shift: int, threshold: float, same_track: bool
) -> None:
    tracker = FaceTracker(iou_threshold=threshold)
    (first,) = tracker.update([box(0, 0)], now=1.0)
    (second,) = tracker.update([box(shift, 0)], now=1.1)
    assert (second.track_id == first.track_id) is same_track


def test_greedy_association_gives_each_track_its_best_overlapping_box() -> None:
    tracker = FaceTracker(iou_threshold=0.1)
    a, b = tracker.update([box(0, 0), box(120, 0)], now=1.0)
    # The box at 70 overlaps both tracks; b overlaps it more, so a takes the box at 10.
    near_b, near_a = tracker.update([box(70, 0), box(10, 0)], now=1.1)
    assert (near_b.track_id, near_a.track_id) == (b.track_id, a.track_id)


def test_one_track_is_never_given_two_boxes_in_a_frame() -> None:
    tracker = FaceTracker()
    (first,) = tracker.update([box(0, 0)], now=1.0)
    tracks = tracker.update([box(0, 0), box(5, 0)], now=1.1)
    assert tracks[0] is first
    assert tracks[1].track_id != first.track_id


@pytest.mark.parametrize(("gap", "same_track"), [(0.5, True), (1.0, True), (1.01, False)])
def test_tracks_unseen_for_longer_than_max_age_are_dropped(gap: float, same_track: bool) -> None:
    tracker = FaceTracker(max_age_s=1.0)
    (first,) = tracker.update([box(0, 0)], now=10.0)
    tracker.update([], now=10.0 + gap / 2)
    (again,) = tracker.update([box(0, 0)], now=10.0 + gap)
    assert (again is first) is same_track
    assert len(tracker.tracks) == 1


def test_unmatched_track_stays_live_until_it_expires() -> None:
    tracker = FaceTracker(max_age_s=1.0)
    tracker.update([box(0, 0), box(300, 0)], now=1.0)
    (only,) = tracker.update([box(0, 0)], now=1.5)
    assert [t.track_id for t in tracker.tracks] == [1, 2]
    tracker.update([box(0, 0)], now=2.2)
    assert [t.track_id for t in tracker.tracks] == [only.track_id]


def test_update_rejects_time_going_backwards() -> None:
    tracker = FaceTracker()
    tracker.update([box(0, 0)], now=5.0)
    with pytest.raises(ValueError, match="backwards"):
        tracker.update([box(0, 0)], now=4.9)


def test_reset_forgets_tracks_but_never_reuses_ids() -> None:
    tracker = FaceTracker()
    (first,) = tracker.update([box(0, 0)], now=5.0)
    tracker.reset()
    assert tracker.tracks == ()
    (fresh,) = tracker.update([box(0, 0)], now=1.0)  # earlier time is allowed after reset
    assert fresh.track_id > first.track_id


def test_new_track_needs_encoding() -> None:
    tracker = FaceTracker()
    (track,) = tracker.update([box(0, 0)], now=1.0)
    assert tracker.needs_encoding(track, now=1.0)


def test_mark_encoded_counts_the_encode_and_keeps_the_vote() -> None:
    tracker = FaceTracker()
    (track,) = tracker.update([box(0, 0)], now=1.0)
    tracker.mark_encoded(track, now=1.08, vote=vote(1.0))
    assert (track.encodes, track.last_encode_at, track.votes) == (1, 1.08, [vote(1.0)])


@pytest.mark.parametrize(("budget", "encodes_done"), [(5, 5), (1, 1), (0, 0)])
def test_track_stops_needing_encoding_once_its_budget_is_spent(
    budget: int, encodes_done: int
) -> None:
    tracker = FaceTracker(max_encodes_per_track=budget)
    (track,) = tracker.update([box(0, 0)], now=1.0)
    for i in range(encodes_done):
        assert tracker.needs_encoding(track, now=1.0 + i)
        tracker.mark_encoded(track, now=1.0 + i, vote=vote(1.0 + i))
    assert not tracker.needs_encoding(track, now=100.0)


@pytest.mark.parametrize(("elapsed", "expected"), [(0.1, False), (0.25, True), (0.4, True)])
def test_track_is_not_encoded_again_before_min_interval(elapsed: float, expected: bool) -> None:
    tracker = FaceTracker(min_encode_interval_s=0.25)
    (track,) = tracker.update([box(0, 0)], now=1.0)
    tracker.mark_encoded(track, now=1.0, vote=vote(1.0))
    assert tracker.needs_encoding(track, now=1.0 + elapsed) is expected


def test_decided_track_never_needs_encoding() -> None:
    tracker = FaceTracker()
    (track,) = tracker.update([box(0, 0)], now=1.0)
    track.decided = True
    assert not tracker.needs_encoding(track, now=1.0)


def test_person_standing_at_the_gate_is_encoded_a_few_times_not_every_frame() -> None:
    tracker = FaceTracker(max_encodes_per_track=3, min_encode_interval_s=0.2)
    encoded_at: list[float] = []
    for frame in range(60):  # 2 s at 30 fps, the face jittering by a few pixels
        now = frame / 30
        (track,) = tracker.update([box(100 + frame % 3, 100)], now=now)
        if tracker.needs_encoding(track, now):
            tracker.mark_encoded(track, now, vote(now))
            encoded_at.append(now)
    assert len(tracker.tracks) == 1
    assert len(encoded_at) == 3
    assert all(b - a >= 0.2 for a, b in pairwise(encoded_at))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"iou_threshold": 0.0}, "iou_threshold"),
        ({"iou_threshold": 1.5}, "iou_threshold"),
        ({"max_age_s": -1.0}, "max_age_s"),
        ({"max_age_s": math.nan}, "max_age_s"),
        ({"max_encodes_per_track": -1}, "max_encodes_per_track"),
        ({"min_encode_interval_s": -0.1}, "min_encode_interval_s"),
        ({"new_look_after_s": 0.0}, "new_look_after_s"),
        ({"new_look_after_s": math.nan}, "new_look_after_s"),
    ],
)
def test_tracker_rejects_out_of_range_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaceTracker(**kwargs)  # type: ignore[arg-type]


def test_track_is_a_mutable_record() -> None:
    track = Track(track_id=1, box=box(0, 0), first_seen=0.0, last_seen=0.0)
    track.decided = True
    assert track.decided


@pytest.mark.parametrize(("gap", "afresh"), [(0.2, False), (0.3, True), (0.8, True)])
def test_a_face_back_after_new_look_after_s_unseen_is_judged_afresh(
    gap: float, afresh: bool
) -> None:
    """The next person in a queue steps into the spot the last one left: after a gap (empty
    frames) the track is undecided again and encoded, its last outcome kept (cooldown)."""
    tracker = FaceTracker(max_age_s=1.0, new_look_after_s=0.3)
    box = Box(100, 200, 200, 100)
    (track,) = tracker.update([box], 0.0)
    tracker.mark_encoded(track, 0.0, Vote(0.0, "s1", 0.3, 0.2))
    track.decided = True
    outcome = object()
    track.outcome = outcome  # type: ignore[assignment]
    for step in (1, 2):  # frames without the face in between
        tracker.update([], gap * step / 3)
    (again,) = tracker.update([box], gap)
    assert again is track
    assert tracker.needs_encoding(track, gap) is afresh
    assert (track.votes == []) is afresh
    assert track.outcome is outcome


def test_a_slow_camera_that_sees_the_face_every_frame_is_no_new_look() -> None:
    """At 2.5 fps every frame is 0.4 s after the last, but the face never left."""
    tracker = FaceTracker(new_look_after_s=0.3)
    box = Box(100, 200, 200, 100)
    (track,) = tracker.update([box], 0.0)
    track.decided = True
    for frame in range(1, 6):
        tracker.update([box], frame * 0.4)
    assert track.decided


def test_a_face_missing_for_a_frame_keeps_its_decision() -> None:
    tracker = FaceTracker(new_look_after_s=0.1)
    box = Box(100, 200, 200, 100)
    (track,) = tracker.update([box], 0.0)
    track.decided = True
    tracker.update([], 0.1)  # one frame without it (HOG missed it)
    tracker.update([box], 0.2)
    assert track.decided
