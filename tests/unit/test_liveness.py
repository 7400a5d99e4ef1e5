"""The liveness measures on plain numbers: eye aspect ratio, blinks, homography residuals."""

from __future__ import annotations

import numpy as np
import pytest

from edge.gate.liveness import (
    LandmarkFrame,
    LivenessRule,
    assess,
    blinked,
    eye_aspect_ratio,
    fit_homography,
    homography_residual,
    mouth_motion,
    nonrigid_motion,
)


def face(eye_open: float = 1.0, depth_shift: float = 0.0) -> np.ndarray:
    """68 landmark-like points of a frontal face ~100 px between the eyes.

    ``eye_open`` scales the eyelids' opening (0: shut); ``depth_shift`` moves the nose and
    mouth sideways against the outline, as a head turning does (parallax: not a plane).
    """
    rng = np.random.default_rng(3)
    points = rng.uniform(100, 400, size=(68, 2))
    for start, cx in ((36, 200.0), (42, 300.0)):
        half = 10.0 * eye_open
        points[start : start + 6] = [
            (cx - 30, 200),
            (cx - 10, 200 - half),
            (cx + 10, 200 - half),
            (cx + 30, 200),
            (cx + 10, 200 + half),
            (cx - 10, 200 + half),
        ]
    points[27:36, 0] += depth_shift  # nose
    return points


def warp(points: np.ndarray, h: np.ndarray) -> np.ndarray:
    mapped = np.c_[points, np.ones(len(points))] @ h.T
    return mapped[:, :2] / mapped[:, 2:3]


PERSPECTIVE = np.array([[0.9, 0.1, 30.0], [-0.08, 1.05, -12.0], [1e-4, -2e-4, 1.0]])


def test_eye_aspect_ratio_is_about_a_third_open_and_zero_shut() -> None:
    open_eye, shut_eye = face()[36:42], face(eye_open=0.0)[36:42]
    assert eye_aspect_ratio(open_eye) == pytest.approx(20 / 60)
    assert eye_aspect_ratio(shut_eye) == 0.0
    with pytest.raises(ValueError, match="6 landmarks"):
        eye_aspect_ratio(open_eye[:5])


def test_a_plane_seen_through_a_homography_leaves_no_residual() -> None:
    src = face()
    dst = warp(src, PERSPECTIVE)
    assert homography_residual(src, dst) == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(fit_homography(src, dst), PERSPECTIVE, atol=1e-6)


def test_a_moved_photo_is_rigid_and_a_turning_head_is_not() -> None:
    first = face()
    photo = [LandmarkFrame(0.1 * i, warp(first, PERSPECTIVE * (1 + 0.01 * i))) for i in range(9)]
    assert nonrigid_motion([LandmarkFrame(0.0, first), *photo]) < 0.001
    head = [LandmarkFrame(0.1 * i, face(depth_shift=6.0 * i)) for i in range(10)]
    assert nonrigid_motion(head) > 2 * LivenessRule().nonrigid_min


def test_a_blink_is_eyes_shut_between_open_frames() -> None:
    levels = [1.0, 1.0, 0.9, 0.2, 0.1, 0.8, 1.0]
    frames = [LandmarkFrame(0.05 * i, face(eye_open=x)) for i, x in enumerate(levels)]
    assert blinked(frames)
    closing = [LandmarkFrame(0.05 * i, face(eye_open=x)) for i, x in enumerate([1.0, 1.0, 0.1])]
    assert not blinked(closing)  # shut at the end, never seen open again
    assert not blinked([LandmarkFrame(0.05 * i, face()) for i in range(10)])


def test_a_mouth_that_opens_and_closes_is_evidence_and_a_still_one_is_not() -> None:
    rule = LivenessRule()
    speaking = []
    for i in range(10):
        points = face()
        opening = 3 * (i % 3)  # opens, closes, opens...
        points[62], points[66] = (250, 300 - opening), (250, 300 + opening)
        points[60], points[64] = (230, 300), (270, 300)
        speaking.append(LandmarkFrame(0.1 * i, points))
    verdict = assess(speaking, first_seen=0.0, now=0.9, rule=rule)
    assert verdict.state == "live" and verdict.mouth >= rule.mouth_min
    assert mouth_motion([LandmarkFrame(0.1 * i, face()) for i in range(10)]) == 0.0


def test_a_screen_around_the_face_refuses_it_even_when_it_moves_like_a_face() -> None:
    """A video replayed on a phone blinks and talks: the phone's outline decides."""
    rule = LivenessRule(screen_frames=2)
    head = [LandmarkFrame(0.1 * i, face(depth_shift=6.0 * i)) for i in range(10)]
    assert assess(head, 0.0, 0.9, rule, screens=1).state == "live"  # one frame: a glimpse
    refused = assess(head, 0.0, 0.9, rule, screens=2)
    assert refused.state == "attack" and refused.screens == 2
    assert assess(head, 0.0, 0.9, LivenessRule(screen_frames=0), screens=9).state == "live"


def test_assess_grants_on_evidence_waits_without_it_and_refuses_after_the_wait() -> None:
    rule = LivenessRule(max_wait_s=2.0)
    still = [LandmarkFrame(0.1 * i, face()) for i in range(10)]
    assert assess(still, first_seen=0.0, now=0.5, rule=rule).state == "pending"
    assert assess(still, first_seen=0.0, now=2.0, rule=rule).state == "attack"
    head = [LandmarkFrame(0.1 * i, face(depth_shift=6.0 * i)) for i in range(10)]
    verdict = assess(head, first_seen=0.0, now=0.9, rule=rule)
    assert verdict.state == "live" and verdict.nonrigid > rule.nonrigid_min
    too_few = head[: rule.min_frames - 1]  # moving, but too few frames to judge yet
    assert assess(too_few, first_seen=0.0, now=0.2, rule=rule).state == "pending"
