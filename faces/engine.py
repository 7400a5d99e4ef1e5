"""Face detection and encoding through face_recognition (dlib): the only module importing it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from faces.box import Box


@dataclass(frozen=True, slots=True)
class Detection:
    """Faces found in one frame, and the frame converted to RGB for encoding."""

    boxes: list[Box]
    rgb: np.ndarray


class FaceEngine(Protocol):
    """Finds faces in a BGR frame and turns chosen faces into 128-d encodings."""

    def detect(self, frame_bgr: np.ndarray) -> Detection: ...

    def encode(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]: ...

    def landmarks(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]: ...


# face_recognition's "large" landmark model answers per feature; the 68 points of the iBUG
# scheme (dlib's order) are those features in order, with the lips' inner points interleaved.
_FEATURES_IN_ORDER = (
    "chin",  # 0-16
    "left_eyebrow",  # 17-21
    "right_eyebrow",  # 22-26
    "nose_bridge",  # 27-30
    "nose_tip",  # 31-35
    "left_eye",  # 36-41
    "right_eye",  # 42-47
)


def points_68(features: dict[str, list[tuple[int, int]]]) -> np.ndarray:
    """The 68 iBUG landmarks, shape (68, 2) float32, from face_recognition's feature dict."""
    points = [p for name in _FEATURES_IN_ORDER for p in features[name]]
    top, bottom = features["top_lip"], features["bottom_lip"]
    points += top[0:7]  # 48-54: outer lip, left corner over the top to the right corner
    points += bottom[1:6]  # 55-59: outer lip, back along the bottom
    points += [top[11], top[10], top[9], top[8], top[7]]  # 60-64: inner top
    points += [bottom[10], bottom[9], bottom[8]]  # 65-67: inner bottom
    if len(points) != 68:
        raise ValueError(f"expected 68 landmarks, got {len(points)}")
    return np.asarray(points, dtype=np.float32)


class DlibFaceEngine:
    """HOG detection on a downscaled frame, ResNet encodings on the full-resolution face."""

    def __init__(
        self, *, scale: float = 0.5, upsample: int = 0, min_face_px: int = 60, max_faces: int = 4
    ) -> None:
        self.scale = scale
        self.upsample = upsample
        self.min_face_px = min_face_px
        self.max_faces = max_faces
        self._fr: object | None = None

    def start(self) -> None:
        """Load the dlib models (a second or so)."""
        import face_recognition

        self._fr = face_recognition

    def _lib(self) -> object:
        if self._fr is None:
            self.start()
        assert self._fr is not None
        return self._fr

    def detect(self, frame_bgr: np.ndarray) -> Detection:
        """Detect faces; boxes are in full-frame pixels, largest first, small ones dropped."""
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 image, got shape {frame_bgr.shape}")
        fr = self._lib()
        rgb = np.ascontiguousarray(frame_bgr[:, :, ::-1])
        if self.scale < 1.0:
            small = cv2.resize(
                rgb, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA
            )
        else:
            small = rgb
        raw = fr.face_locations(  # type: ignore[attr-defined]
            small, number_of_times_to_upsample=self.upsample, model="hog"
        )
        height, width = rgb.shape[:2]
        inv = 1.0 / self.scale
        boxes = []
        for top, right, bottom, left in raw:
            box = Box(
                top=max(0, int(top * inv)),
                right=min(width, int(right * inv)),
                bottom=min(height, int(bottom * inv)),
                left=max(0, int(left * inv)),
            )
            if min(box.width, box.height) >= self.min_face_px:
                boxes.append(box)
        boxes.sort(key=lambda b: b.width * b.height, reverse=True)
        return Detection(boxes=boxes[: self.max_faces], rgb=rgb)

    def encode(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        """128-d float32 encodings of the given faces, in order."""
        if not boxes:
            return []
        fr = self._lib()
        locations = [(b.top, b.right, b.bottom, b.left) for b in boxes]
        encodings = fr.face_encodings(  # type: ignore[attr-defined]
            rgb, known_face_locations=locations, num_jitters=1, model="small"
        )
        return [np.asarray(e, dtype=np.float32) for e in encodings]

    def landmarks(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        """The 68 landmarks (iBUG order, full-frame pixels) of each given face, in order."""
        if not boxes:
            return []
        fr = self._lib()
        locations = [(b.top, b.right, b.bottom, b.left) for b in boxes]
        found = fr.face_landmarks(  # type: ignore[attr-defined]
            rgb, face_locations=locations, model="large"
        )
        return [points_68(features) for features in found]


def photo_engine() -> DlibFaceEngine:
    """The engine for enrolment photos: full resolution, upsampled once, faces from 40 px.

    The gateway's enrolment and the gate's offline gallery builder both use it, so they find
    the same faces in the same photo (the gate's camera frames use its detection settings).
    """
    return DlibFaceEngine(scale=1.0, upsample=1, min_face_px=40)
