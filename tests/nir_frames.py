"""SIMULATED near-infrared frames beside the colour frames of tests/attacks.py and of live faces.

There is no NIR camera on this machine and no real NIR face image in any package the project
can install (docs/liveness.md), so the NIR camera's view is made from the real colour photos:

- **live**: the colour frame's red channel, which is the nearest a colour camera comes to a
  near-infrared view of skin (skin's reflectance rises towards the red end and stays high in
  NIR; the face keeps its 3D shading);
- **printed photo**: the print's luminance flattened (30 % of its contrast around a pale paper
  level, slightly blurred): ink on paper gives a flat NIR response, no specular;
- **phone screen**: the screen near-black (a screen emits almost no NIR) in a faint bezel.

Each NIR frame has the same geometry as its colour frame (the same seeds and random draws as
tests/attacks.py, so the colour frames are the very frames of that module), mapped into a
480x360 NIR camera by ``ALIGNMENT`` (a 0.75 scale and a shift, as a second camera beside the
first, calibrated, would be), with its own sensor noise and JPEG. Figures measured on these
frames are figures on a simulation: a site calibrates the thresholds on its real NIR camera.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.attacks import (
    BACKGROUND,
    FRAME_SIZE,
    _corners,
    _place,
    _print_look,
    _screen,
    camera,
    held_corners,
    waved_corners,
)
from tests.photos import gate_frame

NIR_SIZE = (480, 360)
ALIGNMENT = [[0.75, 0.0, 14.0], [0.0, 0.75, -8.0]]  # colour pixels -> NIR pixels
WALL_NIR = float(BACKGROUND[2])  # the wall's red channel: its NIR level in the simulation
PAPER_NIR, PRINT_CONTRAST = 150.0, 0.3
SCREEN_NIR, BEZEL_NIR = 8, 22

Pair = tuple[np.ndarray, np.ndarray]  # (colour BGR frame, NIR grayscale frame)


def nir_camera(scene: np.ndarray, rng: np.random.Generator, quality: int = 85) -> np.ndarray:
    """What the NIR camera makes of a grayscale ``scene`` laid out like the colour frame: the
    alignment's warp into its own resolution, sensor noise, JPEG."""
    warped = cv2.warpAffine(
        scene.astype(np.float32),
        np.float32(ALIGNMENT),
        NIR_SIZE,
        flags=cv2.INTER_LINEAR,
        borderValue=WALL_NIR,
    )
    noisy = warped + rng.normal(0, 3, warped.shape)
    ok, data = cv2.imencode(
        ".jpg", np.clip(noisy, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)


def skin_nir(colour: np.ndarray) -> np.ndarray:
    """The simulated NIR view of a live scene: its red channel."""
    return colour[:, :, 2].astype(np.float32)


def print_nir(sheet: np.ndarray) -> np.ndarray:
    """The simulated NIR view of a printed sheet: pale, flat, slightly blurred."""
    luminance = cv2.cvtColor(sheet, cv2.COLOR_BGR2GRAY).astype(np.float32)
    flat = PAPER_NIR + (luminance - luminance.mean()) * PRINT_CONTRAST
    return cv2.GaussianBlur(flat, (5, 5), 0)


def phone_nir(phone: np.ndarray) -> np.ndarray:
    """The simulated NIR view of a phone (same size as its colour picture): a black screen
    inside a faint bezel."""
    h, w = phone.shape[:2]
    nir = np.full((h, w), BEZEL_NIR, np.float32)
    nir[30 : h - 30, 12 : w - 12] = SCREEN_NIR
    return nir


def _place_gray(sheet: np.ndarray, corners: np.ndarray) -> np.ndarray:
    h, w = sheet.shape[:2]
    source = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    matrix = cv2.getPerspectiveTransform(source, corners.astype(np.float32))
    return cv2.warpPerspective(sheet, matrix, FRAME_SIZE, borderValue=WALL_NIR)


def live_pairs(photos: list[Path], frames: int, seed: int = 0) -> list[Pair]:
    """A live face: the photos' gate frames in turn, each with its simulated NIR frame."""
    rng = np.random.default_rng(seed + 1000)
    views = [gate_frame(p) for p in photos]
    out = []
    for i in range(frames):
        colour = views[i % len(views)]
        out.append((colour, nir_camera(skin_nir(colour), rng)))
    return out


def printed_pairs(photo: Path, frames: int, seed: int = 0) -> list[Pair]:
    """tests.attacks.printed_replay's frames, each with its simulated NIR frame."""
    rng, nir_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1000)
    sheet = _print_look(gate_frame(photo, size=(480, 360)))
    corners = _corners(480, 360, angle=0, scale=1.0, dx=0, dy=0, tilt=0)
    still, nir_still = _place(sheet, corners), _place_gray(print_nir(sheet), corners)
    return [(camera(still, rng), nir_camera(nir_still, nir_rng)) for _ in range(frames)]


def waved_pairs(photo: Path, frames: int, seed: int = 0) -> list[Pair]:
    """tests.attacks.waved_printout's frames, each with its simulated NIR frame."""
    rng, nir_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1000)
    sheet = _print_look(gate_frame(photo, size=(480, 360)))
    nir_sheet = print_nir(sheet)
    out = []
    for _ in range(frames):
        corners = waved_corners(rng)
        colour = camera(_place(sheet, corners), rng)
        out.append((colour, nir_camera(_place_gray(nir_sheet, corners), nir_rng)))
    return out


def phone_pairs(photo: Path, frames: int, seed: int = 0) -> list[Pair]:
    """tests.attacks.phone_replay's frames, each with its simulated NIR frame."""
    rng, nir_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1000)
    phone = _screen(photo)
    dark = phone_nir(phone)
    out = []
    for _ in range(frames):
        corners = held_corners(phone, rng)
        colour = camera(_place(phone, corners), rng)
        out.append((colour, nir_camera(_place_gray(dark, corners), nir_rng)))
    return out


NIR_ATTACKS = {
    "printed_replay": printed_pairs,
    "waved_printout": waved_pairs,
    "phone_replay": phone_pairs,
}
