"""One uploaded photo checked and its face encoded: size, decoding, the face checks, duplicates.

The face checks are those of the gate's gallery builder (faces/quality.py), with the thresholds
of the ``enrolment`` settings. Nothing here keeps the photo.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from contracts.gallery import EMBEDDING_DIM
from faces.engine import FaceEngine
from faces.images import decode_image
from faces.quality import measure_photo, quality_problem
from gateway.config import EnrolmentSettings
from gateway.enrolment.reports import PhotoResult


class EnrolmentEngine(FaceEngine, Protocol):
    """A face engine whose models load in start()."""

    def start(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Examined:
    """A photo that passed, with its face's encoding."""

    result: PhotoResult
    data: bytes
    sha256: str
    encoding: npt.NDArray[np.float32]


class PhotoExaminer:
    """Checks photos and encodes their faces, one photo at a time through the face engine."""

    def __init__(self, engine: EnrolmentEngine, settings: EnrolmentSettings) -> None:
        self._engine = engine
        self._settings = settings
        self._lock = threading.Lock()

    def start(self) -> None:
        """Load the face models."""
        self._engine.start()

    def examine(self, name: str, data: bytes, known: set[str]) -> Examined | PhotoResult:
        """Check one photo and encode its face; a PhotoResult alone means it was refused.

        known: SHA-256 digests of the photos already enrolled for this person.
        """
        size = len(data)
        limit = self._settings.max_photo_bytes
        if size == 0:
            return PhotoResult(name, False, f"{name}: empty file", size)
        if size > limit:
            return PhotoResult(
                name, False, f"{name}: larger than the limit of {limit} bytes per photo", size
            )
        try:
            image = decode_image(data, where=name)
        except ValueError as exc:
            return PhotoResult(name, False, str(exc), size)
        height, width = (int(n) for n in image.shape[:2])
        with self._lock:
            detection = self._engine.detect(image)
            quality = measure_photo(image, detection)
            problem = quality_problem(
                quality,
                min_face_px=self._settings.min_face_px,
                min_sharpness=self._settings.min_sharpness,
            )
            encodings: list[np.ndarray] = []
            if not problem:
                encodings = self._engine.encode(detection.rgb, detection.boxes[:1])
        figures: dict[str, Any] = {
            "width": width,
            "height": height,
            "faces": quality.faces,
            "face_px": quality.face_px,
            "sharpness": None if quality.sharpness is None else round(quality.sharpness, 1),
        }
        digest = hashlib.sha256(data).hexdigest()
        if not problem and not encodings:
            problem = "the face could not be encoded"
        if not problem and digest in known:
            problem = "this photo is already enrolled for this person"
        if problem:
            return PhotoResult(name, False, f"{name}: {problem}", size, **figures)
        encoding = np.asarray(encodings[0], dtype=np.float32)
        if encoding.shape != (EMBEDDING_DIM,) or not np.isfinite(encoding).all():
            return PhotoResult(
                name, False, f"{name}: the face encoding is invalid", size, **figures
            )
        return Examined(PhotoResult(name, True, None, size, **figures), data, digest, encoding)
