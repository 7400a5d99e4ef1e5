"""Photo checks for enrolment: exactly one face, large enough and sharp enough.

The gate's offline gallery builder (edge/gate/enrol.py) and the gateway's enrolment apply the
same checks, so a photo one accepts the other accepts too.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faces.engine import Detection

MIN_FACE_PX = 80
MIN_SHARPNESS = 20.0


@dataclass(frozen=True, slots=True)
class PhotoQuality:
    """What an enrolment photo shows: how many faces, and the size and sharpness of the face."""

    faces: int
    face_px: int | None = None  # shorter side of the face box, when there is exactly one face
    sharpness: float | None = None  # variance of the Laplacian over the face, likewise


def measure_photo(image: np.ndarray, detection: Detection) -> PhotoQuality:
    """Measure the face of a photo (size and sharpness are only measured for a single face)."""
    if len(detection.boxes) != 1:
        return PhotoQuality(faces=len(detection.boxes))
    box = detection.boxes[0]
    gray = cv2.cvtColor(image[box.top : box.bottom, box.left : box.right], cv2.COLOR_BGR2GRAY)
    sharpness = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    return PhotoQuality(faces=1, face_px=min(box.width, box.height), sharpness=sharpness)


def quality_problem(
    quality: PhotoQuality,
    *,
    min_face_px: int = MIN_FACE_PX,
    min_sharpness: float = MIN_SHARPNESS,
) -> str | None:
    """Why a measured photo cannot be enrolled, or None when it can."""
    if quality.faces != 1 or quality.face_px is None or quality.sharpness is None:
        return f"{quality.faces} faces found, exactly one needed"
    if quality.face_px < min_face_px:
        return f"face too small ({quality.face_px} px, at least {min_face_px} px needed)"
    if quality.sharpness < min_sharpness:
        return f"face too blurred (sharpness {quality.sharpness:.0f} < {min_sharpness:g})"
    return None


def photo_quality_problem(
    image: np.ndarray,
    detection: Detection,
    *,
    min_face_px: int = MIN_FACE_PX,
    min_sharpness: float = MIN_SHARPNESS,
) -> str | None:
    """Why a photo cannot be enrolled, or None when it can (one face, size, sharpness)."""
    return quality_problem(
        measure_photo(image, detection), min_face_px=min_face_px, min_sharpness=min_sharpness
    )
