"""Presentation attacks made from real photos, as a gate camera would see them (frames, BGR).

- ``printed_replay``: the photo held still in front of the camera;
- ``waved_printout``: the same print moved, rotated, tilted and scaled between frames;
- ``phone_replay``: the photo on a phone screen (black bezel, screen moiré, glare), the phone
  moved a little between frames.

Every frame gets sensor noise and JPEG compression like a camera's. The attacks are planes, so
their landmarks move rigidly; that is what the gate's passive liveness check looks for.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.photos import gate_frame

FRAME_SIZE = (640, 480)
BACKGROUND = (96, 104, 110)  # a grey entrance wall, BGR


def camera(image: np.ndarray, rng: np.random.Generator, quality: int = 85) -> np.ndarray:
    """What a camera makes of ``image``: sensor noise, then JPEG."""
    noisy = image.astype(np.int16) + rng.normal(0, 4, image.shape).astype(np.int16)
    ok, data = cv2.imencode(
        ".jpg",
        np.clip(noisy, 0, 255).astype(np.uint8),
        [
            cv2.IMWRITE_JPEG_QUALITY,
            quality,
        ],
    )
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def _print_look(image: np.ndarray) -> np.ndarray:
    """Paper: less contrast and saturation than the screen the photo was taken from."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[:, :, 1] *= 0.8
    hsv[:, :, 2] = 40 + hsv[:, :, 2] * 0.8
    return cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)


def _place(sheet: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """``sheet`` warped onto ``corners`` (4x2, clockwise from top left) of a wall frame."""
    h, w = sheet.shape[:2]
    source = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    matrix = cv2.getPerspectiveTransform(source, corners.astype(np.float32))
    width, height = FRAME_SIZE
    return cv2.warpPerspective(sheet, matrix, (width, height), borderValue=BACKGROUND)


def _corners(
    w: int, h: int, *, angle: float, scale: float, dx: float, dy: float, tilt: float
) -> np.ndarray:
    """Where a w x h sheet's corners land: rotated, scaled, moved, one side nearer (tilt)."""
    width, height = FRAME_SIZE
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    corners = np.c_[np.float32([[0, 0], [w, 0], [w, h], [0, h]]), np.ones(4)] @ rotation.T
    corners += [width / 2 - w / 2 + dx, height / 2 - h / 2 + dy]
    corners[[1, 2], 1] += [-tilt, tilt]  # the right edge nearer the camera: taller
    return corners


def printed_replay(photo: Path, frames: int, seed: int = 0) -> list[np.ndarray]:
    """The photo printed and held still in front of the camera."""
    rng = np.random.default_rng(seed)
    sheet = _print_look(gate_frame(photo, size=(480, 360)))
    still = _place(sheet, _corners(480, 360, angle=0, scale=1.0, dx=0, dy=0, tilt=0))
    return [camera(still, rng) for _ in range(frames)]


def waved_printout(photo: Path, frames: int, seed: int = 0) -> list[np.ndarray]:
    """The printed photo moved, rotated, tilted and scaled a little more in each frame."""
    rng = np.random.default_rng(seed)
    sheet = _print_look(gate_frame(photo, size=(480, 360)))
    return [camera(_place(sheet, waved_corners(rng)), rng) for _ in range(frames)]


def waved_corners(rng: np.random.Generator) -> np.ndarray:
    """Where a hand waving a 480x360 print puts its corners in one frame."""
    return _corners(
        480,
        360,
        angle=rng.uniform(-12, 12),
        scale=rng.uniform(0.85, 1.15),
        dx=rng.uniform(-40, 40),
        dy=rng.uniform(-25, 25),
        tilt=rng.uniform(-25, 25),
    )


def _screen(photo: Path) -> np.ndarray:
    """The photo on a phone: bezel, a moiré of the pixel grid, a glare spot."""
    return _on_phone(gate_frame(photo, size=(300, 400), face_share=0.55))


def _on_phone(picture: np.ndarray) -> np.ndarray:
    """A 300x400 picture shown on a phone: bezel, a moiré of the pixel grid, a glare spot."""
    shown = picture.astype(np.float32)
    h, w = shown.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    moire = 1.0 + 0.08 * np.sin(2 * np.pi * (xx * 0.23 + yy * 0.07))
    glare = 70.0 * np.exp(
        -(((xx - 0.7 * w) / (0.25 * w)) ** 2 + ((yy - 0.25 * h) / (0.2 * h)) ** 2)
    )
    screen = np.clip(shown * moire[..., None] + glare[..., None], 0, 255).astype(np.uint8)
    phone = np.full((h + 60, w + 24, 3), 12, np.uint8)  # black bezel, thicker top and bottom
    phone[30 : 30 + h, 12 : 12 + w] = screen
    return phone


def phone_replay(photo: Path, frames: int, seed: int = 0) -> list[np.ndarray]:
    """The photo shown on a phone held up to the camera, the hand moving it a little."""
    rng = np.random.default_rng(seed)
    phone = _screen(photo)
    return [_held_up(phone, rng) for _ in range(frames)]


def _held_up(phone: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One camera frame of ``phone`` held in a hand: a little turned, tilted and moved."""
    return camera(_place(phone, held_corners(phone, rng)), rng)


def held_corners(phone: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Where a hand holding ``phone`` puts its corners in one frame."""
    h, w = phone.shape[:2]
    return _corners(
        w,
        h,
        angle=rng.uniform(-5, 5),
        scale=rng.uniform(0.95, 1.05),
        dx=rng.uniform(-15, 15),
        dy=rng.uniform(-10, 10),
        tilt=rng.uniform(-8, 8),
    )


def phone_video_replay(clip: Path, frames: int, seed: int = 0) -> list[np.ndarray]:
    """A video of the person (blinking, talking) played on a phone held up to the camera: the
    landmark cues see a living face; only the phone around it gives it away."""
    rng = np.random.default_rng(seed)
    capture = cv2.VideoCapture(str(clip))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    capture.set(cv2.CAP_PROP_POS_FRAMES, int(seed * 3 * fps))  # a different part per seed
    step = max(1, round(fps / 12))
    out: list[np.ndarray] = []
    index = 0
    while len(out) < frames:
        ok, video_frame = capture.read()
        if not ok:
            break
        index += 1
        if index % step:
            continue
        h, w = video_frame.shape[:2]
        side = min(w, int(h * 0.75))  # the middle of the video, portrait like a phone
        crop = video_frame[:, (w - side) // 2 : (w + side) // 2]
        phone = _on_phone(cv2.resize(crop, (300, 400), interpolation=cv2.INTER_AREA))
        out.append(_held_up(phone, rng))
    capture.release()
    return out


ATTACKS = {
    "printed_replay": printed_replay,
    "waved_printout": waved_printout,
    "phone_replay": phone_replay,
}
