"""One colour frame's face against the NIR frame taken with it: the ``passive+nir`` frame check.

The cues and the decision are the pure functions of nir.py; this module picks the NIR frame
nearest in time, maps the face box into it, and runs the gate's own face detector on the NIR
crop (as a 3-channel image, enlarged so the face is a size the detector finds).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import cv2
import numpy as np

from edge.gate.frames import Frame
from edge.gate.nir import (
    NirCues,
    NirRule,
    alignment_matrix,
    as_gray,
    default_alignment,
    expanded,
    map_box,
    nearest_in_time,
    nir_cues,
    shows_skin,
)
from faces.box import Box
from faces.engine import FaceEngine

CROP_MARGIN = 0.5  # of the mapped box's side, on each side, in the crop given to the detector
CROP_FACE_PX = 160  # the mapped face is resized to at least this width for detection
HOG_FACE_PX = 100  # dlib's HOG finds faces from ~80 px wide in the image it is given


def crop_face_px(scale: float, min_face_px: int) -> int:
    """How wide the NIR face is made for the detector: large enough for HOG after the
    engine's downscale, and above the engine's smallest face."""
    return max(CROP_FACE_PX, round(HOG_FACE_PX / scale), round(1.5 * min_face_px))


RECENT_NIR_FRAMES = 4


class NirCheck:
    """Keeps the latest NIR frames and tells, per face box, whether the NIR view shows skin."""

    def __init__(
        self,
        engine: FaceEngine,
        rule: NirRule,
        alignment: Sequence[Sequence[float]] | None = None,
        face_px: int = CROP_FACE_PX,
    ) -> None:
        self.engine = engine
        self.rule = rule
        self.face_px = face_px
        self.alignment = None if alignment is None else alignment_matrix(alignment)
        self._recent: deque[Frame] = deque(maxlen=RECENT_NIR_FRAMES)

    def add(self, frame: Frame | None) -> None:
        """Keep an NIR frame from the source (None: nothing new)."""
        if frame is not None:
            self._recent.append(frame)

    def partner(self, captured_at: float) -> Frame | None:
        """The kept NIR frame nearest ``captured_at`` within ``max_dt_s``, or None."""
        frames = list(self._recent)
        index = nearest_in_time([f.captured_at for f in frames], captured_at, self.rule.max_dt_s)
        return None if index is None else frames[index]

    def cues(self, colour_shape: Sequence[int], nir_image: np.ndarray, box: Box) -> NirCues | None:
        """The NIR cues of a colour face box; None when the box maps outside the NIR frame."""
        gray = as_gray(nir_image)
        matrix = self.alignment
        if matrix is None:
            matrix = default_alignment(colour_shape, gray.shape)
        mapped = map_box(box, matrix, gray.shape)
        if mapped is None or mapped.width < 4 or mapped.height < 4:
            return None
        return nir_cues(gray, mapped, self._faces_around(gray, mapped))

    def skin(self, colour: Frame, box: Box) -> bool | None:
        """Whether the NIR frame taken with ``colour`` shows skin in ``box``; None when there is
        no NIR frame close enough in time. A box the NIR camera does not see shows no skin."""
        nir = self.partner(colour.captured_at)
        if nir is None:
            return None
        found = self.cues(colour.image.shape, nir.image, box)
        return found is not None and shows_skin(found, self.rule)

    def _faces_around(self, gray: np.ndarray, box: Box) -> list[Box]:
        """Faces the detector finds in the NIR crop around ``box``, in NIR frame pixels."""
        crop_box = expanded(box, CROP_MARGIN, gray.shape)
        crop = np.clip(gray[crop_box.top : crop_box.bottom, crop_box.left : crop_box.right], 0, 255)
        factor = self.face_px / max(1, box.width)
        resized = cv2.resize(
            crop.astype(np.uint8),
            None,
            fx=factor,
            fy=factor,
            interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR,
        )
        three = np.ascontiguousarray(np.repeat(resized[:, :, None], 3, axis=2))
        detection = self.engine.detect(three)
        return [
            Box(
                top=crop_box.top + int(b.top / factor),
                right=crop_box.left + int(b.right / factor),
                bottom=crop_box.top + int(b.bottom / factor),
                left=crop_box.left + int(b.left / factor),
            )
            for b in detection.boxes
        ]
