"""Offline enrolment: build a gallery from a people file and photo folders.

Used by `dormguard gallery build` (sites without a gateway yet, demos, tests). Each photo must
show exactly one large enough, sharp enough face (faces/quality.py, the gateway's checks too).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
from pydantic import Field

from contracts.access import Person, PersonKind, PersonStatus, TimeWindow
from contracts.gallery import Gallery
from contracts.settings import StrictModel
from contracts.yamlconfig import load_yaml_model
from edge.gate.config import _parse_hhmm
from faces.engine import photo_engine
from faces.images import read_image
from faces.quality import photo_quality_problem

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
        engine = photo_engine()
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
