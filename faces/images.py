"""Photos from bytes or files, decoded to BGR arrays (OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np


def decode_image(data: bytes, *, where: str) -> np.ndarray:
    """Decode JPEG/PNG bytes to BGR; ValueError names the source when it is not an image."""
    array = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(array, cv2.IMREAD_COLOR) if array.size else None
    if image is None:
        raise ValueError(f"{where}: not a decodable image ({len(data)} bytes)")
    return np.asarray(image)


def read_image(path: str) -> np.ndarray:
    """Read an image file as BGR; ValueError names the file when it is missing or corrupt."""
    try:
        with open(path, "rb") as fh:  # noqa: PTH123 - str path from callers
            data = fh.read()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read image: {exc.strerror}") from exc
    return decode_image(data, where=path)
