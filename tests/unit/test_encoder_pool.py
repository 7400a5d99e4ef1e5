"""The encoder pool's pure parts: face crops, the workers setting, when the pool is bypassed."""

from __future__ import annotations

import numpy as np
import pytest

from faces.box import Box
from faces.pool import EncoderPool, face_crop, resolve_workers


class CountingEngine:
    """Stands in for the dlib engine: one fixed encoding per box, calls counted."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def detect(self, frame_bgr: np.ndarray):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def encode(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        self.calls.append(len(boxes))
        return [np.full(128, float(b.left), np.float32) for b in boxes]

    def landmarks(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        return []


@pytest.mark.parametrize(
    "box",
    [Box(100, 300, 300, 100), Box(0, 90, 80, 0), Box(400, 640, 480, 560)],
    ids=["middle", "top-left corner", "bottom-right corner"],
)
def test_face_crop_holds_the_face_and_a_face_width_around_it(box: Box) -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    crop, inner = face_crop(rgb, box)
    assert crop.flags.c_contiguous
    face = rgb[box.top : box.bottom, box.left : box.right]
    assert np.array_equal(crop[inner.top : inner.bottom, inner.left : inner.right], face)
    margin = max(box.width, box.height)
    assert inner.left == min(box.left, margin) and inner.top == min(box.top, margin)


def test_workers_setting_auto_is_one_to_four_cpus() -> None:
    assert 1 <= resolve_workers("auto") <= 4
    assert resolve_workers(3) == 3


@pytest.mark.parametrize("faces", [0, 1])
def test_fewer_than_two_faces_never_use_the_pool(faces: int) -> None:
    engine = CountingEngine()
    pool = EncoderPool(engine, 2)  # not started: would fall back anyway; min_faces decides
    boxes = [Box(10, 50, 50, 10)] * faces
    assert len(pool.encode(np.zeros((60, 60, 3), np.uint8), boxes)) == faces
    assert engine.calls == [faces] and pool.pooled_frames == 0


def test_one_worker_means_no_pool() -> None:
    engine = CountingEngine()
    pool = EncoderPool(engine, 1)
    pool.start()
    assert not pool.running
    out = pool.encode(np.zeros((60, 60, 3), np.uint8), [Box(1, 20, 20, 1), Box(1, 40, 20, 21)])
    assert engine.calls == [2] and [float(e[0]) for e in out] == [1.0, 21.0]
    pool.stop()
