"""NirCheck with a stand-in detector: which NIR frame is used, where the crop's faces land,
and how the heartbeat reports the NIR camera. (The real detector on simulated NIR views of
real photos: tests/integration/test_nir_cues.py.)"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.gate.frames import Frame, SourceStatus
from edge.gate.health import HealthMeter
from edge.gate.nir import NirRule
from edge.gate.nir_check import NirCheck, crop_face_px
from faces.box import Box
from faces.engine import Detection

BOX = Box(top=100, right=300, bottom=300, left=100)


class CropDetector:
    """Finds one face in whatever crop it is given: the middle half of it."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def detect(self, frame_bgr: np.ndarray) -> Detection:
        self.shapes.append(frame_bgr.shape)
        h, w = frame_bgr.shape[:2]
        return Detection([Box(h // 4, 3 * w // 4, 3 * h // 4, w // 4)], frame_bgr[:, :, ::-1])

    def encode(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        return []

    def landmarks(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        return []


def skin_scene() -> np.ndarray:
    yy, xx = np.mgrid[0:400, 0:400].astype(np.float32)
    image = np.full((400, 400), 100.0, np.float32)
    face = 130 + 90 * np.cos((xx - 200) / 40) * np.cos((yy - 200) / 50)
    face += np.random.default_rng(0).normal(0, 12, face.shape)
    image[100:300, 100:300] = face[100:300, 100:300]
    return np.clip(image, 0, 255).astype(np.uint8)


def test_the_nir_frame_nearest_in_time_within_max_dt_is_used() -> None:
    check = NirCheck(CropDetector(), NirRule(max_dt_s=0.05))
    for seq, at in enumerate((10.00, 10.04, 10.10), start=1):
        check.add(Frame(np.zeros((4, 4), np.uint8), seq, at))
    check.add(None)  # nothing new from the source
    partner = check.partner(10.06)
    assert partner is not None and partner.seq == 2
    assert check.partner(10.30) is None


def test_no_nir_frame_near_in_time_is_no_evidence_either_way() -> None:
    check = NirCheck(CropDetector(), NirRule())
    colour = Frame(np.zeros((400, 400, 3), np.uint8), 1, 5.0)
    assert check.skin(colour, BOX) is None


def test_the_crop_face_comes_back_in_nir_frame_pixels_and_shows_skin() -> None:
    detector = CropDetector()
    check = NirCheck(detector, NirRule(), face_px=200)
    cues = check.cues((400, 400, 3), skin_scene(), BOX)
    assert cues is not None
    # The crop is the box grown by half a side each way (0..400 here), resized 1:1; the
    # stand-in finds its middle half, 100..300: the box itself.
    assert detector.shapes == [(400, 400, 3)]
    assert cues.face_overlap == 1.0
    colour = Frame(np.zeros((400, 400, 3), np.uint8), 1, 5.0)
    check.add(Frame(np.repeat(skin_scene()[:, :, None], 3, axis=2), 1, 5.02))
    assert check.skin(colour, BOX) is True


def test_a_face_outside_the_nir_view_shows_no_skin() -> None:
    check = NirCheck(CropDetector(), NirRule(), alignment=[[1, 0, 500], [0, 1, 0]])
    check.add(Frame(skin_scene(), 1, 5.0))
    assert check.skin(Frame(np.zeros((400, 400, 3), np.uint8), 1, 5.0), BOX) is False


def test_the_crop_is_large_enough_for_hog_after_the_downscale() -> None:
    assert crop_face_px(0.5, 60) == 200
    assert crop_face_px(1.0, 60) == 160
    assert crop_face_px(1.0, 200) == 300


class Status:
    def __init__(self, status: SourceStatus) -> None:
        self._status = status

    def status(self) -> SourceStatus:
        return self._status


def meter(nir: SourceStatus) -> HealthMeter:
    none: Any = None
    return HealthMeter(
        source=none,
        publisher=none,
        gallery_sync=none,
        reporter=none,
        started_at=0.0,
        nir_source=Status(nir),  # type: ignore[arg-type]
        nir_stale_after_s=2.0,
    )


def test_the_nir_camera_is_down_when_unhealthy_silent_or_stale() -> None:
    assert meter(SourceStatus(True, "camera 2: ok", 0, 10, 0, 0.1)).nir_problem() == ""
    down = meter(SourceStatus(False, "camera 2: cannot open", 3, 0, 0, None)).nir_problem()
    assert "NIR camera for liveness down (camera 2: cannot open)" in down
    assert "no frame yet" in meter(SourceStatus(True, "opening", 0, 0, 0, None)).nir_problem()
    stale = meter(SourceStatus(True, "camera 2: ok", 0, 10, 0, 7.5)).nir_problem()
    assert "no frame for 7.5 s" in stale
