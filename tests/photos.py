"""Real face photos for tests: the face-recognition 1.3.0 source distribution's test images.

Fetched once with pip (the package client) and cached under .cache/; never from other hosts.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "test_images"
SDIST = "face-recognition==1.3.0"
NAMES = (
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
    "biden.jpg",
)


def sample_photos_dir() -> Path:
    """Return a folder holding the sample photos, downloading the sdist on first use."""
    if all((CACHE / name).is_file() for name in NAMES):
        return CACHE
    CACHE.mkdir(parents=True, exist_ok=True)
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
                    assert extracted is not None
                    (CACHE / name).write_bytes(extracted.read())
    missing = [n for n in NAMES if not (CACHE / n).is_file()]
    if missing:
        raise RuntimeError(f"sample photos missing from {SDIST} sdist: {missing}")
    return CACHE


if __name__ == "__main__":
    print(sample_photos_dir())


def gate_frame(path: Path, *, size: tuple[int, int] = (640, 480), face_share: float = 0.4):  # type: ignore[no-untyped-def]
    """A BGR frame of `size` as a gate camera would see the person in `path`.

    The photo is cropped around its face so the face spans `face_share` of the frame width.
    """
    import cv2
    import face_recognition
    import numpy as np

    image = cv2.imread(str(path))
    assert image is not None, path
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    (top, right, bottom, left), *_ = face_recognition.face_locations(rgb, model="hog")
    width, height = size
    crop_w = (right - left) / face_share
    crop_h = crop_w * height / width
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0, y0 = int(cx - crop_w / 2), int(cy - crop_h / 2)
    pad = int(max(crop_w, crop_h))
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(40, 40, 40))
    crop = padded[y0 + pad : y0 + pad + int(crop_h), x0 + pad : x0 + pad + int(crop_w)]
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA)


def noise_frame(seed: int, size: tuple[int, int] = (640, 480)):  # type: ignore[no-untyped-def]
    """A frame of random noise (no face)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
