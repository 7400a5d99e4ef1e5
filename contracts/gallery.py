"""The gallery document: a gate's access list (people) plus their face templates.

The gateway builds it and the gate installs it, so its format is part of the contract. It
travels and rests encrypted (contracts/gallery_crypto.py: the blob in ``GalleryUpdate.blob_b64``
and the gate's file on disk, stored by edge/gate/gallery.py). The plaintext is UTF-8 JSON
(``format: 2``; format 1 is the same without ``impostors``)::

    {
      "format": 2,
      "version": 42,                      # int >= 0, grows with every update
      "people": [                         # sorted by person_id, ids unique
        {
          "person_id": "s-2023-0001",     # non-empty string
          "status": "active",             # active | suspended | graduated
          "kind": "student",              # student | staff | visitor
          "buildings": ["B1"],            # sorted unique non-empty strings ([] = none allowed)
          "gates": [],                    # sorted unique non-empty strings ([] = every gate)
          "windows": [                    # [] = any time
            {"days": [0, 1, 2, 3, 4], "start": "07:00", "end": "23:00"}
          ],                              # days: non-empty unique 0..6 (0 = Monday), "HH:MM"
          "valid_from": null,             # ISO-8601 with UTC offset, or null
          "valid_until": "2025-06-30T18:00:00+08:00",
          "card_uids": ["04A1B2C3"],      # sorted unique non-empty strings
          "pin_hash": null                # non-empty string or null
        }
      ],
      "templates": [                      # order = row order of Gallery.encodings
        {"person_id": "s-2023-0001",      # must be one of people
         "encoding": "<base64 (standard alphabet) of 128 little-endian float32 = 512 bytes>"}
      ],
      "impostors": [                      # wrong-match examples (docs/decisions/0014)
        {"person_id": "s-2023-0001",      # must be one of people: whom this face is NOT
         "encoding": "<as in templates>"}
      ]
    }

Every field is required and unknown fields are rejected; values must be finite. An impostor
example is a probe a guard reported as wrongly matched to ``person_id``: a later probe closer to
it than allowed is not granted as that person (edge/gate/matching.py). A gallery without
impostor examples is written as format 1, so gates that only read format 1 keep installing it;
both formats are read.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from contracts.access import Person, PersonKind, PersonStatus, TimeWindow
from contracts.strict_json import (
    expect_enum,
    expect_int,
    expect_list,
    expect_object,
    expect_str,
    expect_str_set,
)

EMBEDDING_DIM = 128
FORMAT = 2  # written when the gallery carries impostor examples
FORMATS = (1, 2)  # read

_ENCODING_BYTES = EMBEDDING_DIM * 4
_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_PERSON_FIELDS = (
    "person_id",
    "status",
    "kind",
    "buildings",
    "gates",
    "windows",
    "valid_from",
    "valid_until",
    "card_uids",
    "pin_hash",
)


class GalleryError(Exception):
    """The gallery cannot be used: corrupt, truncated, invalid or stale."""


@dataclass(frozen=True, eq=False)
class Gallery:
    """One immutable gallery version: the access list and the face templates of its people."""

    version: int
    people: Mapping[str, Person]
    template_owners: tuple[str, ...]
    encodings: npt.NDArray[np.float32]
    # Wrong-match examples: row i is a probe reported as *not* impostor_owners[i].
    impostor_owners: tuple[str, ...] = ()
    impostors: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    )

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise ValueError(f"gallery version must be an int, got {type(self.version).__name__}")
        if self.version < 0:
            raise ValueError(f"gallery version must be >= 0, got {self.version}")
        for person_id, person in self.people.items():
            if person.person_id != person_id:
                raise ValueError(
                    f"people key {person_id!r} does not match its person_id {person.person_id!r}"
                )
        owners = _checked_rows(self.people, self.template_owners, self.encodings, "template")
        impostor_owners = _checked_rows(
            self.people, self.impostor_owners, self.impostors, "impostor"
        )
        object.__setattr__(self, "people", MappingProxyType(dict(self.people)))
        object.__setattr__(self, "template_owners", owners)
        object.__setattr__(self, "encodings", _read_only(self.encodings))
        object.__setattr__(self, "impostor_owners", impostor_owners)
        object.__setattr__(self, "impostors", _read_only(self.impostors))

    @classmethod
    def empty(cls) -> Gallery:
        """Return the version-0 gallery with nobody in it."""
        return cls(
            version=0,
            people={},
            template_owners=(),
            encodings=np.zeros((0, EMBEDDING_DIM), dtype=np.float32),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Gallery):
            return NotImplemented
        return (
            self.version == other.version
            and dict(self.people) == dict(other.people)
            and self.template_owners == other.template_owners
            and self.encodings.shape == other.encodings.shape
            and self.encodings.tobytes() == other.encodings.tobytes()
            and self.impostor_owners == other.impostor_owners
            and self.impostors.shape == other.impostors.shape
            and self.impostors.tobytes() == other.impostors.tobytes()
        )


def _checked_rows(
    people: Mapping[str, Person],
    owners_in: tuple[str, ...],
    encodings: object,
    what: str,
) -> tuple[str, ...]:
    """The owners as a tuple after checking the matrix holds one finite 128-d row per owner."""
    owners = tuple(owners_in)
    missing = sorted({owner for owner in owners if owner not in people})
    if missing:
        raise ValueError(f"{what} owners not in people: {', '.join(map(repr, missing))}")
    name = "encodings" if what == "template" else "impostors"
    if not isinstance(encodings, np.ndarray) or encodings.dtype != np.float32:
        raise ValueError(f"{name} must be a float32 numpy array")
    if encodings.ndim != 2 or encodings.shape[1] != EMBEDDING_DIM:
        raise ValueError(f"{name} must have shape (N, {EMBEDDING_DIM}), got {encodings.shape}")
    if encodings.shape[0] != len(owners):
        raise ValueError(
            f"{encodings.shape[0]} {name} but {len(owners)} {what} owners; "
            "they must match row for row"
        )
    if not np.isfinite(encodings).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return owners


def _read_only(encodings: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    if encodings.flags.writeable:
        encodings = encodings.view()
        encodings.flags.writeable = False
    return encodings


# --- JSON -------------------------------------------------------------------------------------


def gallery_to_json(g: Gallery) -> bytes:
    """Serialize a gallery to the documented UTF-8 JSON schema (deterministic output)."""
    people = []
    for index, person_id in enumerate(sorted(g.people)):
        person = g.people[person_id]
        _check_person(person, f"people[{index}]")
        people.append(_person_to_obj(person, f"people[{index}]"))
    document: dict[str, Any] = {
        "format": 1,
        "version": g.version,
        "people": people,
        "templates": _rows_to_obj(g.template_owners, g.encodings),
    }
    if g.impostor_owners:
        document["format"] = FORMAT
        document["impostors"] = _rows_to_obj(g.impostor_owners, g.impostors)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def gallery_from_json(data: bytes) -> Gallery:
    """Parse and strictly validate gallery JSON; ValueError says what is wrong and where."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"gallery: not UTF-8 text (byte {exc.start})") from None
    try:
        document = json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"gallery: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(document, dict) or "format" not in document:
        expect_object(document, "gallery", ("format",))  # raises: not an object, or no format
    fmt = expect_int(document["format"], "format")
    if fmt not in FORMATS:
        raise ValueError(
            f"format: unsupported gallery format {fmt!r}, expected one of "
            + ", ".join(map(str, FORMATS))
        )
    fields = ("format", "version", "people", "templates")
    root = expect_object(document, "gallery", (*fields, "impostors") if fmt == 2 else fields)
    version = expect_int(root["version"], "version")
    if version < 0:
        raise ValueError(f"version: must be >= 0, got {version}")

    people: dict[str, Person] = {}
    for index, item in enumerate(expect_list(root["people"], "people")):
        where = f"people[{index}]"
        person = _person_from_obj(item, where)
        if person.person_id in people:
            raise ValueError(f"{where}.person_id: duplicate person_id {person.person_id!r}")
        people[person.person_id] = person

    owners, encodings = _rows_from_obj(root["templates"], "templates", people)
    impostor_owners: tuple[str, ...] = ()
    impostors = np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    if "impostors" in root:
        impostor_owners, impostors = _rows_from_obj(root["impostors"], "impostors", people)
    return Gallery(
        version=version,
        people=people,
        template_owners=owners,
        encodings=encodings,
        impostor_owners=impostor_owners,
        impostors=impostors,
    )


def _rows_to_obj(owners: tuple[str, ...], encodings: npt.NDArray[np.float32]) -> list[Any]:
    little_endian = encodings.astype("<f4", copy=False)
    return [
        {
            "person_id": owner,
            "encoding": base64.b64encode(little_endian[row].tobytes()).decode("ascii"),
        }
        for row, owner in enumerate(owners)
    ]


def _rows_from_obj(
    value: object, where_list: str, people: Mapping[str, Person]
) -> tuple[tuple[str, ...], npt.NDArray[np.float32]]:
    """Owner ids and the (N, 128) matrix of a templates or impostors list."""
    items = expect_list(value, where_list)
    owners: list[str] = []
    encodings = np.empty((len(items), EMBEDDING_DIM), dtype=np.float32)
    for index, item in enumerate(items):
        where = f"{where_list}[{index}]"
        obj = expect_object(item, where, ("person_id", "encoding"))
        owner = expect_str(obj["person_id"], f"{where}.person_id")
        if owner not in people:
            raise ValueError(f"{where}.person_id: {owner!r} is not in people")
        owners.append(owner)
        encodings[index] = _decode_encoding(obj["encoding"], f"{where}.encoding")
    return tuple(owners), encodings


def _person_to_obj(person: Person, where: str) -> dict[str, Any]:
    return {
        "person_id": person.person_id,
        "status": person.status.value,
        "kind": person.kind.value,
        "buildings": sorted(person.buildings),
        "gates": sorted(person.gates),
        "windows": [
            {
                "days": sorted(window.days),
                "start": _format_hhmm(window.start, f"{where}.windows[{i}].start"),
                "end": _format_hhmm(window.end, f"{where}.windows[{i}].end"),
            }
            for i, window in enumerate(person.windows)
        ],
        "valid_from": _format_datetime(person.valid_from, f"{where}.valid_from"),
        "valid_until": _format_datetime(person.valid_until, f"{where}.valid_until"),
        "card_uids": sorted(person.card_uids),
        "pin_hash": person.pin_hash,
    }


def _person_from_obj(value: object, where: str) -> Person:
    obj = expect_object(value, where, _PERSON_FIELDS)
    windows = tuple(
        _window_from_obj(item, f"{where}.windows[{i}]")
        for i, item in enumerate(expect_list(obj["windows"], f"{where}.windows"))
    )
    pin_hash = obj["pin_hash"]
    person = Person(
        person_id=expect_str(obj["person_id"], f"{where}.person_id"),
        status=expect_enum(obj["status"], PersonStatus, f"{where}.status"),
        kind=expect_enum(obj["kind"], PersonKind, f"{where}.kind"),
        buildings=expect_str_set(obj["buildings"], f"{where}.buildings"),
        gates=expect_str_set(obj["gates"], f"{where}.gates"),
        windows=windows,
        valid_from=_parse_datetime(obj["valid_from"], f"{where}.valid_from"),
        valid_until=_parse_datetime(obj["valid_until"], f"{where}.valid_until"),
        card_uids=expect_str_set(obj["card_uids"], f"{where}.card_uids"),
        pin_hash=None if pin_hash is None else expect_str(pin_hash, f"{where}.pin_hash"),
    )
    _check_person(person, where)
    return person


def _window_from_obj(value: object, where: str) -> TimeWindow:
    obj = expect_object(value, where, ("days", "start", "end"))
    days: set[int] = set()
    for i, item in enumerate(expect_list(obj["days"], f"{where}.days")):
        day = expect_int(item, f"{where}.days[{i}]")
        if day in days:
            raise ValueError(f"{where}.days[{i}]: duplicate day {day}")
        days.add(day)
    return TimeWindow(
        days=frozenset(days),
        start=_parse_hhmm(obj["start"], f"{where}.start"),
        end=_parse_hhmm(obj["end"], f"{where}.end"),
    )


def _check_person(person: Person, where: str) -> None:
    """Semantic checks shared by both directions, so what we write we can also read."""
    if not person.person_id:
        raise ValueError(f"{where}.person_id: must not be empty")
    for name in ("buildings", "gates", "card_uids"):
        if any(not item for item in getattr(person, name)):
            raise ValueError(f"{where}.{name}: contains an empty string")
    if person.pin_hash is not None and not person.pin_hash:
        raise ValueError(f"{where}.pin_hash: must be null or a non-empty string")
    for i, window in enumerate(person.windows):
        if not window.days:
            raise ValueError(f"{where}.windows[{i}].days: must not be empty")
        bad = sorted(day for day in window.days if not 0 <= day <= 6)
        if bad:
            raise ValueError(f"{where}.windows[{i}].days: {bad[0]} is not a weekday 0..6")
    for name in ("valid_from", "valid_until"):
        moment: datetime | None = getattr(person, name)
        if moment is not None and moment.utcoffset() is None:
            raise ValueError(f"{where}.{name}: datetime has no UTC offset")
    if (
        person.valid_from is not None
        and person.valid_until is not None
        and person.valid_from > person.valid_until
    ):
        raise ValueError(
            f"{where}: valid_from {person.valid_from.isoformat()} is after "
            f"valid_until {person.valid_until.isoformat()}"
        )


def _format_hhmm(value: time, where: str) -> str:
    if value.second or value.microsecond or value.tzinfo is not None:
        raise ValueError(f"{where}: {value.isoformat()} cannot be stored as a naive HH:MM time")
    return f"{value.hour:02d}:{value.minute:02d}"


def _parse_hhmm(value: object, where: str) -> time:
    text = expect_str(value, where)
    if not _HHMM.fullmatch(text):
        raise ValueError(f"{where}: {text!r} is not a time HH:MM (00:00..23:59)")
    return time(int(text[:2]), int(text[3:]))


def _format_datetime(value: datetime | None, where: str) -> str | None:
    if value is None:
        return None
    if value.utcoffset() is None:
        raise ValueError(f"{where}: datetime has no UTC offset")
    return value.isoformat()


def _parse_datetime(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    text = expect_str(value, where)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not an ISO-8601 datetime") from None
    if moment.utcoffset() is None:
        raise ValueError(f"{where}: {text!r} has no UTC offset")
    return moment


def _decode_encoding(value: object, where: str) -> npt.NDArray[np.float32]:
    text = expect_str(value, where)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: not valid base64") from None
    if len(raw) != _ENCODING_BYTES:
        raise ValueError(
            f"{where}: decodes to {len(raw)} bytes, expected {_ENCODING_BYTES} "
            f"({EMBEDDING_DIM} little-endian float32)"
        )
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not np.isfinite(vector).all():
        raise ValueError(f"{where}: contains NaN or infinite values")
    return vector


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"gallery: duplicate JSON key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"gallery: {name} is not allowed in gallery JSON")
