"""Near-infrared evidence that a face is skin, not a screen or a print (``passive+nir``, pure).

A face terminal with a second, near-infrared (NIR) camera beside the colour one sees a
presentation attack differently from a living face:

- a **phone or tablet screen** emits almost no NIR: the face's box is dark against the NIR
  frame around it (``brightness``: the box's mean intensity over its surround's), and nothing
  in it looks like a face to the detector;
- a **printed photo** reflects NIR flatly: the face's box has little spread of intensities
  (``spread``: standard deviation over mean) and little gradient energy (``texture``: mean
  gradient magnitude over mean), where skin under NIR keeps the shading of a 3D face;
- a **living face** is a face in the NIR frame too: the detector, run on the NIR crop around
  the face box mapped from the colour frame, finds a face overlapping it (``face_overlap``).

The colour frame's face box is mapped into the NIR frame by a calibrated 2x3 affine or 3x3
homography (``alignment_matrix``), or, uncalibrated, by the two resolutions' ratio
(``default_alignment``). A rigid pair of cameras side by side is only exactly aligned at one
distance (parallax): the overlap test is loose on purpose. What the thresholds were set on
(simulated NIR frames, not a real NIR camera) is written in docs/liveness.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from faces.box import Box

SURROUND = 0.5  # the surround ring reaches this many box sides beyond the box on each side


def alignment_matrix(values: Sequence[Sequence[float]]) -> np.ndarray:
    """The 3x3 colour-to-NIR pixel mapping from a 2x3 affine or a 3x3 homography (rows)."""
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.shape == (2, 3):
        matrix = np.vstack([matrix, [0.0, 0.0, 1.0]])
    if matrix.shape != (3, 3):
        raise ValueError(f"alignment must be 2x3 (affine) or 3x3 (homography), got {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("alignment must hold finite numbers")
    if abs(float(np.linalg.det(matrix))) < 1e-9:
        raise ValueError("alignment is singular: it maps the colour image onto a line or point")
    return matrix / matrix[2, 2] if abs(matrix[2, 2]) > 1e-12 else matrix


def default_alignment(colour_shape: Sequence[int], nir_shape: Sequence[int]) -> np.ndarray:
    """The identity scaled from the colour frame's resolution to the NIR frame's."""
    sx = nir_shape[1] / colour_shape[1]
    sy = nir_shape[0] / colour_shape[0]
    return np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def map_box(box: Box, alignment: np.ndarray, nir_shape: Sequence[int]) -> Box | None:
    """The box around the mapped corners of ``box``, clipped to the NIR frame; None when less
    than half of it lies inside the frame (the NIR camera does not see that face)."""
    corners = np.array(
        [
            [box.left, box.top, 1.0],
            [box.right, box.top, 1.0],
            [box.right, box.bottom, 1.0],
            [box.left, box.bottom, 1.0],
        ]
    )
    mapped = corners @ alignment.T
    if np.any(mapped[:, 2] <= 1e-9):
        return None  # behind the homography's horizon
    xy = mapped[:, :2] / mapped[:, 2:3]
    left, top = xy.min(axis=0)
    right, bottom = xy.max(axis=0)
    full = max(0.0, right - left) * max(0.0, bottom - top)
    height, width = nir_shape[0], nir_shape[1]
    clipped = Box(
        top=round(max(0.0, float(top))),
        right=round(min(float(width), float(right))),
        bottom=round(min(float(height), float(bottom))),
        left=round(max(0.0, float(left))),
    )
    if clipped.width <= 0 or clipped.height <= 0 or full <= 0:
        return None
    if clipped.width * clipped.height < 0.5 * full:
        return None
    return clipped


def expanded(box: Box, share: float, shape: Sequence[int]) -> Box:
    """``box`` grown by ``share`` of its width and height on each side, clipped to ``shape``."""
    dx, dy = round(box.width * share), round(box.height * share)
    return Box(
        top=max(0, box.top - dy),
        right=min(int(shape[1]), box.right + dx),
        bottom=min(int(shape[0]), box.bottom + dy),
        left=max(0, box.left - dx),
    )


def as_gray(image: np.ndarray) -> np.ndarray:
    """A 2-D float32 intensity image from an NIR frame given as grayscale or 3-channel."""
    if image.ndim == 2:
        return image.astype(np.float32)
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        return np.asarray(image[:, :, :3].mean(axis=2), dtype=np.float32)
    raise ValueError(f"an NIR frame is grayscale or 3-channel, got shape {image.shape}")


def box_overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    w = min(a.right, b.right) - max(a.left, b.left)
    h = min(a.bottom, b.bottom) - max(a.top, b.top)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True, slots=True)
class NirCues:
    """What the NIR frame shows in one face box (docs/liveness.md defines each)."""

    face_overlap: float  # best IoU of an NIR face detection with the mapped box (0: none)
    brightness: float  # box mean / surround mean
    spread: float  # box standard deviation / box mean
    texture: float  # box mean gradient magnitude / box mean


def skin_cues(gray: np.ndarray, box: Box) -> tuple[float, float, float]:
    """(brightness, spread, texture) of the box in a 2-D NIR intensity image."""
    if box.width < 4 or box.height < 4:
        raise ValueError(f"face box too small for the NIR cues: {box.width}x{box.height}")
    face = gray[box.top : box.bottom, box.left : box.right].astype(np.float64)
    outer = expanded(box, SURROUND, gray.shape)
    ring = gray[outer.top : outer.bottom, outer.left : outer.right].astype(np.float64)
    ring_area = ring.size - face.size
    mean = float(face.mean())
    surround = (float(ring.sum()) - float(face.sum())) / ring_area if ring_area > 0 else mean
    brightness = mean / max(surround, 1.0)
    level = max(mean, 1.0)
    spread = float(face.std()) / level
    gy, gx = np.gradient(face)
    texture = float(np.mean(np.hypot(gx, gy))) / level
    return brightness, spread, texture


def nir_cues(gray: np.ndarray, box: Box, nir_faces: Sequence[Box]) -> NirCues:
    """The cues of the mapped face ``box`` given the faces the detector found in the NIR frame."""
    brightness, spread, texture = skin_cues(gray, box)
    overlap = max((box_overlap(box, found) for found in nir_faces), default=0.0)
    return NirCues(overlap, brightness, spread, texture)


@dataclass(frozen=True, slots=True)
class NirRule:
    """When one NIR frame shows skin, and how many frames decide (docs/liveness.md)."""

    min_face_overlap: float = 0.3
    min_brightness: float = 0.5  # simulated set: live >= 0.77, phone screens <= 0.72
    min_spread: float = 0.15  # simulated set: live >= 0.25, prints <= 0.09
    min_texture: float = 0.03  # simulated set: live >= 0.042, prints <= 0.018
    pass_frames: int = 3  # frames that must show skin before a grant
    fail_frames: int = 3  # frames that show no skin: a presentation attack
    max_dt_s: float = 0.1  # colour and NIR frames further apart are not compared


def shows_skin(cues: NirCues, rule: NirRule) -> bool:
    """Whether one NIR frame shows a living face: a face there, bright and textured as skin."""
    return (
        cues.face_overlap >= rule.min_face_overlap
        and cues.brightness >= rule.min_brightness
        and cues.spread >= rule.min_spread
        and cues.texture >= rule.min_texture
    )


@dataclass(frozen=True, slots=True)
class NirTally:
    """A look's NIR frames so far: showing skin, not showing it, and without an NIR frame."""

    passes: int = 0
    fails: int = 0
    missing: int = 0

    def add(self, skin: bool | None) -> NirTally:
        """One more frame: True skin, False no skin, None no NIR frame near it in time."""
        if skin is None:
            return replace(self, missing=self.missing + 1)
        if skin:
            return replace(self, passes=self.passes + 1)
        return replace(self, fails=self.fails + 1)


CombinedState = Literal["live", "pending", "attack", "unavailable"]


def combine(
    passive: Literal["live", "pending", "attack"],
    tally: NirTally,
    rule: NirRule,
    waited_out: bool,
) -> CombinedState:
    """The passive verdict and the NIR frames together (``passive+nir``).

    An attack as soon as ``fail_frames`` frames showed no skin, or the passive check says so;
    live when the passive check is satisfied and ``pass_frames`` frames showed skin; pending
    until the wait is over; then ``unavailable`` when too few NIR frames could be judged at all
    (the NIR camera is dead or out of step: not the person's fault, and never a grant),
    otherwise an attack.
    """
    if tally.fails >= rule.fail_frames or passive == "attack":
        return "attack"
    if passive == "live" and tally.passes >= rule.pass_frames:
        return "live"
    if not waited_out:
        return "pending"
    judged = tally.passes + tally.fails
    return "unavailable" if judged < rule.pass_frames else "attack"


def nearest_in_time(times: Sequence[float], at: float, max_dt_s: float) -> int | None:
    """The index of the time nearest ``at`` within ``max_dt_s``, or None."""
    best: int | None = None
    for i, t in enumerate(times):
        dt = abs(t - at)
        if dt <= max_dt_s and (best is None or dt < abs(times[best] - at)):
            best = i
    return best


def fit_alignment(colour_points: np.ndarray, nir_points: np.ndarray) -> list[list[float]]:
    """The 2x3 affine (rows) that maps landmark points of faces in the colour frames onto the
    same landmarks in the NIR frames, in least squares: a calibration from recorded pairs."""
    if colour_points.shape != nir_points.shape or colour_points.ndim != 2:
        raise ValueError("need the same (N, 2) landmarks in both cameras to fit an alignment")
    if len(colour_points) < 3:
        raise ValueError("need at least 3 landmark points seen by both cameras")
    design = np.c_[colour_points.astype(np.float64), np.ones(len(colour_points))]
    solution, *_ = np.linalg.lstsq(design, nir_points.astype(np.float64), rcond=None)
    return [[float(v) for v in row] for row in solution.T]
