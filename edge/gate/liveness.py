"""Passive, model-free presentation-attack evidence from a track's 68 landmarks (pure).

Three signs that a face in front of the camera is a living one, all computed from the
landmarks face_recognition already finds:

- **a blink**: the eye aspect ratio (Soukupová and Čech, 2016) of both eyes drops well below
  the track's own open-eye level and comes back;
- **non-rigid motion**: a flat photo or a phone screen moved, turned or tilted in front of the
  camera is a plane, so every view of its landmarks is the first view under one homography;
  a real head that turns, speaks or changes expression is not. ``nonrigid_motion`` fits that
  homography (least squares, normalised DLT) and measures what it leaves unexplained, as a
  fraction of the distance between the eyes;
- **the mouth opening and closing** (speaking, smiling): the inner lips' aspect ratio changes
  by more than a photo's tilt can make it change.

A still photo shows neither; a waved printout moves, but rigidly. What is beyond such a check
(a 3D mask, a good video replay of the person blinking) is written in docs/liveness.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
# Landmarks a homography is fitted to: brows, nose, eyes and the mouth corners. Not the jaw
# line, which dlib places unsteadily (on real photos of attacks it alone doubled the residual),
# nor the lips, whose opening alone would count as non-rigid on a screen replaying speech.
RIGID_FIT = np.r_[17:27, 27:36, 36:48, 48, 54]


@dataclass(frozen=True, slots=True)
class LandmarkFrame:
    """One frame's landmarks of a track: (68, 2) pixels, at a monotonic time."""

    at: float
    points: np.ndarray


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """(|p2-p6| + |p3-p5|) / (2 |p1-p4|) of the six points of one eye: ≈ 0.3 open, → 0 shut."""
    if eye.shape != (6, 2):
        raise ValueError(f"an eye has 6 landmarks, got shape {eye.shape}")
    vertical = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
    horizontal = float(np.linalg.norm(eye[0] - eye[3]))
    return float(vertical / (2.0 * horizontal)) if horizontal > 0 else 0.0


def both_eyes_ratio(points: np.ndarray) -> float:
    """The mean eye aspect ratio of the two eyes."""
    return (eye_aspect_ratio(points[LEFT_EYE]) + eye_aspect_ratio(points[RIGHT_EYE])) / 2.0


def interocular(points: np.ndarray) -> float:
    """Distance between the eye centres, in pixels: the face's own scale."""
    return float(np.linalg.norm(points[LEFT_EYE].mean(axis=0) - points[RIGHT_EYE].mean(axis=0)))


def blinked(frames: Sequence[LandmarkFrame], closed_ratio: float = 0.7) -> bool:
    """Whether the eyes shut and opened again: some frame's ratio is under ``closed_ratio`` of
    the open level (the track's upper quartile) with open frames before and after it."""
    if len(frames) < 3:
        return False
    ratios = np.array([both_eyes_ratio(f.points) for f in frames])
    open_level = float(np.percentile(ratios, 75))
    if open_level <= 0:
        return False
    shut = np.flatnonzero(ratios < closed_ratio * open_level)
    opened = ratios >= 0.9 * open_level
    return any(opened[:i].any() and opened[i + 1 :].any() for i in shut)


INNER_LIPS_TOP, INNER_LIPS_BOTTOM, INNER_LIPS_LEFT, INNER_LIPS_RIGHT = 62, 66, 60, 64


def mouth_ratio(points: np.ndarray) -> float:
    """The inner lips' opening over their width: ≈ 0 closed, larger open."""
    width = float(np.linalg.norm(points[INNER_LIPS_LEFT] - points[INNER_LIPS_RIGHT]))
    opening = float(np.linalg.norm(points[INNER_LIPS_TOP] - points[INNER_LIPS_BOTTOM]))
    return opening / width if width > 0 else 0.0


def mouth_motion(frames: Sequence[LandmarkFrame]) -> float:
    """How far the mouth opened and closed over the frames: the range of ``mouth_ratio``."""
    if not frames:
        return 0.0
    ratios = [mouth_ratio(f.points) for f in frames]
    return max(ratios) - min(ratios)


def _normalising(points: np.ndarray) -> np.ndarray:
    """Hartley's similarity: centroid to the origin, mean distance √2 (a stable DLT)."""
    centre = points.mean(axis=0)
    spread = float(np.mean(np.linalg.norm(points - centre, axis=1)))
    scale = np.sqrt(2.0) / spread if spread > 0 else 1.0
    return np.array(
        [[scale, 0.0, -scale * centre[0]], [0.0, scale, -scale * centre[1]], [0.0, 0.0, 1.0]]
    )


def fit_homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 homography mapping ``src`` onto ``dst`` (N ≥ 4 points) in least squares."""
    if src.shape != dst.shape or src.ndim != 2 or src.shape[0] < 4 or src.shape[1] != 2:
        raise ValueError(f"need two (N, 2) point sets with N >= 4, got {src.shape}, {dst.shape}")
    t_src, t_dst = _normalising(src), _normalising(dst)
    a = np.c_[src, np.ones(len(src))] @ t_src.T
    b = np.c_[dst, np.ones(len(dst))] @ t_dst.T
    rows = []
    for (x, y, w), (u, v, z) in zip(a, b, strict=True):
        rows.append([0, 0, 0, -z * x, -z * y, -z * w, v * x, v * y, v * w])
        rows.append([z * x, z * y, z * w, 0, 0, 0, -u * x, -u * y, -u * w])
    _, _, vt = np.linalg.svd(np.asarray(rows, dtype=np.float64))
    h = vt[-1].reshape(3, 3)
    h = np.linalg.inv(t_dst) @ h @ t_src
    return np.asarray(h / h[2, 2] if abs(h[2, 2]) > 1e-12 else h, dtype=np.float64)


def homography_residual(src: np.ndarray, dst: np.ndarray) -> float:
    """RMS distance between ``dst`` and ``src`` mapped by their best homography, in pixels."""
    h = fit_homography(src, dst)
    mapped = np.c_[src, np.ones(len(src))] @ h.T
    mapped = mapped[:, :2] / mapped[:, 2:3]
    return float(np.sqrt(np.mean(np.sum((mapped - dst) ** 2, axis=1))))


def nonrigid_motion(frames: Sequence[LandmarkFrame]) -> float:
    """The median, over the later frames, of each frame's homography residual against the
    first, as a fraction of the interocular distance: landmark noise for a plane (a photo, a
    screen), more for a head that moves or speaks.

    The median, not the largest: a plane's noise has single frames far out (a blurred or tilted
    frame), a living head keeps moving. On real video and the attack set the largest residual
    overlapped (most genuine 2 s windows below the attacks' worst), the median separates them
    (docs/liveness.md).
    """
    if len(frames) < 2:
        return 0.0
    first = frames[0].points[RIGID_FIT].astype(np.float64)
    scale = interocular(frames[0].points)
    if scale <= 0:
        return 0.0
    residuals = [
        homography_residual(first, frame.points[RIGID_FIT].astype(np.float64)) / scale
        for frame in frames[1:]
    ]
    return float(np.median(residuals))


@dataclass(frozen=True, slots=True)
class LivenessRule:
    """When a track counts as live (docs/liveness.md has the measured figures)."""

    nonrigid_min: float = 0.016  # median residual / interocular (measured: docs/liveness.md)
    closed_ratio: float = 0.7
    mouth_min: float = 0.2  # inner-lip ratio range; the attack set's tilts made ≤ 0.15
    screen_frames: int = 2  # frames with a screen's outline around the face: an attack (0: off)
    max_wait_s: float = 2.0  # no evidence by then: refused as a presentation attack
    min_frames: int = 8  # frames before a still face can be told from a moving one


LivenessState = Literal["live", "pending", "attack"]


@dataclass(frozen=True, slots=True)
class LivenessVerdict:
    state: LivenessState
    blink: bool
    nonrigid: float
    mouth: float
    screens: int
    frames: int


def assess(
    frames: Sequence[LandmarkFrame],
    first_seen: float,
    now: float,
    rule: LivenessRule,
    screens: int = 0,
) -> LivenessVerdict:
    """A presentation attack at once when a screen's outline was seen around the face in
    ``screens`` >= ``rule.screen_frames`` frames (a video replayed on a phone moves like a
    face); else live once a blink, non-rigid motion or a moving mouth is seen; pending until
    ``max_wait_s`` after the face was first seen; an attack when the wait ends without any."""
    blink = blinked(frames, rule.closed_ratio)
    motion = nonrigid_motion(frames)
    mouth = mouth_motion(frames)

    def verdict(state: LivenessState) -> LivenessVerdict:
        return LivenessVerdict(state, blink, motion, mouth, screens, len(frames))

    if rule.screen_frames and screens >= rule.screen_frames:
        return verdict("attack")
    enough = len(frames) >= rule.min_frames
    if enough and (blink or motion >= rule.nonrigid_min or mouth >= rule.mouth_min):
        return verdict("live")
    return verdict("attack" if now - first_seen >= rule.max_wait_s else "pending")
