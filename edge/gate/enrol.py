"""Offline enrolment: build a gallery from a people file and photo folders.

Used by `dormguard gallery build` (sites without a gateway yet, demos, tests). Each photo must
show exactly one large enough, sharp enough face.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from pydantic import Field

from contracts.access import Person, PersonKind, PersonStatus, TimeWindow
from contracts.gallery import Gallery
from contracts.settings import StrictModel
from contracts.yamlconfig import load_yaml_model
from edge.gate.config import _parse_hhmm
from edge.gate.faces import Detection, DlibFaceEngine, read_image

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


class WindowEntry(StrictModel):
    days: list[int] = Field(default_factory=lambda: list(range(7)))
    start: str
    end: str


class PersonEntry(StrictModel):
    id: str = Field(min_length=1, max_length=64)
    status: PersonStatus = PersonStatus.ACTIVE
    kind: PersonKind = PersonKind.STUDENT
    buildings: list[str] = Field(default_factory=list)
    gates: list[str] = Field(default_factory=list)
    windows: list[WindowEntry] = Field(default_factory=list)
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    cards: list[str] = Field(default_factory=list)
    pin_hash: str | None = None


class PeopleFile(StrictModel):
    people: list[PersonEntry]


def to_person(entry: PersonEntry) -> Person:
    """The policy view of one people-file entry."""
    from contracts.credentials import normalize_card_uid

    return Person(
        person_id=entry.id,
        status=entry.status,
        kind=entry.kind,
        buildings=frozenset(entry.buildings),
        gates=frozenset(entry.gates),
        windows=tuple(
            TimeWindow(frozenset(w.days), _parse_hhmm(w.start), _parse_hhmm(w.end))
            for w in entry.windows
        ),
        valid_from=entry.valid_from,
        valid_until=entry.valid_until,
        card_uids=frozenset(normalize_card_uid(c) for c in entry.cards),
        pin_hash=entry.pin_hash,
    )


MIN_FACE_PX = 80
MIN_SHARPNESS = 20.0


@dataclass(frozen=True, slots=True)
class PhotoQuality:
    """What an enrolment photo shows: how many faces, and the size and sharpness of the face."""

    faces: int
    face_px: int | None = None  # shorter side of the face box, when there is exactly one face
    sharpness: float | None = None  # variance of the Laplacian over the face, likewise


def measure_photo(image: np.ndarray, detection: Detection) -> PhotoQuality:
    """Measure the face of a photo (size and sharpness are only measured for a single face)."""
    if len(detection.boxes) != 1:
        return PhotoQuality(faces=len(detection.boxes))
    box = detection.boxes[0]
    gray = cv2.cvtColor(image[box.top : box.bottom, box.left : box.right], cv2.COLOR_BGR2GRAY)
    sharpness = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    return PhotoQuality(faces=1, face_px=min(box.width, box.height), sharpness=sharpness)


def quality_problem(
    quality: PhotoQuality,
    *,
    min_face_px: int = MIN_FACE_PX,
    min_sharpness: float = MIN_SHARPNESS,
) -> str | None:
    """Why a measured photo cannot be enrolled, or None when it can."""
    if quality.faces != 1 or quality.face_px is None or quality.sharpness is None:
        return f"{quality.faces} faces found, exactly one needed"
    if quality.face_px < min_face_px:
        return f"face too small ({quality.face_px} px, at least {min_face_px} px needed)"
    if quality.sharpness < min_sharpness:
        return f"face too blurred (sharpness {quality.sharpness:.0f} < {min_sharpness:g})"
    return None


def photo_quality_problem(
    image: np.ndarray,
    detection: Detection,
    *,
    min_face_px: int = MIN_FACE_PX,
    min_sharpness: float = MIN_SHARPNESS,
) -> str | None:
    """Why a photo cannot be enrolled, or None when it can (one face, size, sharpness)."""
    return quality_problem(
        measure_photo(image, detection), min_face_px=min_face_px, min_sharpness=min_sharpness
    )


def build_gallery_from_files(
    people_file: Path, photos_dir: Path | None, *, version: int
) -> tuple[Gallery, list[str]]:
    """Read people and their photos into a gallery; returns it and the skipped photos."""
    people = {e.id: to_person(e) for e in load_yaml_model(people_file, PeopleFile).people}
    owners: list[str] = []
    encodings: list[np.ndarray] = []
    problems: list[str] = []
    if photos_dir is not None:
        if not photos_dir.is_dir():
            raise ValueError(f"photo folder {photos_dir} does not exist")
        engine = DlibFaceEngine(scale=1.0, upsample=1, min_face_px=40, max_faces=4)
        engine.start()
        for person_dir in sorted(p for p in photos_dir.iterdir() if p.is_dir()):
            if person_dir.name not in people:
                problems.append(f"{person_dir}: no person {person_dir.name!r} in {people_file}")
                continue
            for photo in sorted(person_dir.iterdir()):
                if photo.suffix.lower() not in PHOTO_SUFFIXES:
                    continue
                try:
                    image = read_image(str(photo))
                except ValueError as exc:
                    problems.append(str(exc))
                    continue
                detection = engine.detect(image)
                problem = photo_quality_problem(image, detection)
                if problem:
                    problems.append(f"{photo}: {problem}")
                    continue
                owners.append(person_dir.name)
                encodings.append(engine.encode(detection.rgb, detection.boxes[:1])[0])
    matrix = np.stack(encodings).astype(np.float32) if encodings else np.zeros((0, 128), np.float32)
    return Gallery(version, people, tuple(owners), matrix), problems
