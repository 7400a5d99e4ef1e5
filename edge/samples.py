"""Sample face photos for the demo and tests, and gate-camera frames made from them.

The photos come from the face-recognition 1.3.0 source distribution (its tests/test_images),
fetched once with pip (the package client) and cached; never from other hosts.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import cv2
import numpy as np

SDIST = "face-recognition==1.3.0"
NAMES = (
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
    "biden.jpg",
)
DEFAULT_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "test_images"


def sample_photos_dir(cache: Path = DEFAULT_CACHE) -> Path:
    """A folder holding the sample photos, downloading the sdist on first use."""
    if all((cache / name).is_file() for name in NAMES):
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
                tmp,
                SDIST,
            ],
            check=True,
        )
        (archive,) = Path(tmp).glob("face_recognition-1.3.0.tar.gz")
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if "/tests/test_images/" in member.name and name in NAMES:
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        (cache / name).write_bytes(extracted.read())
    missing = [n for n in NAMES if not (cache / n).is_file()]
    if missing:
        raise RuntimeError(f"sample photos missing from the {SDIST} sdist: {missing}")
    return cache


def gate_frame(
    path: Path, *, size: tuple[int, int] = (640, 480), face_share: float = 0.4
) -> np.ndarray:
    """A BGR frame of `size` as a gate camera sees the person in `path` (face centred)."""
    import face_recognition

    image = cv2.imread(str(path))
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    locations = face_recognition.face_locations(rgb, model="hog")
    if not locations:
        raise ValueError(f"{path}: no face found")
    top, right, bottom, left = locations[0]
    width, height = size
    crop_w = (right - left) / face_share
    crop_h = crop_w * height / width
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0, y0 = int(cx - crop_w / 2), int(cy - crop_h / 2)
    pad = int(max(crop_w, crop_h))
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(40, 40, 40))
    crop = padded[y0 + pad : y0 + pad + int(crop_h), x0 + pad : x0 + pad + int(crop_w)]
    return np.asarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA))


def noise_frame(seed: int, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A frame of random noise (an empty, grainy scene: no face)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
