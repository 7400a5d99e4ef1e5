"""What each gate's gallery holds: the people table as the gate reads it, and who may use a gate.

A gallery version is global; each gate gets its own gallery at that version holding only the
people who may use that gate (:func:`contracts.access.may_use_gate`) and the templates of those
among them with granted ``face_access`` consent who did not opt out of face recognition, with
the impostor examples (wrong-match feedback) of those whose templates it carries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt

from contracts.access import GateInfo, Person, may_use_gate
from contracts.credentials import normalize_card_uid
from contracts.gallery import EMBEDDING_DIM, Gallery, gallery_from_json
from gateway.db.schema import Person as PersonRow


def gate_gallery(
    version: int,
    people: Mapping[str, Person],
    templates: Sequence[tuple[str, npt.NDArray[np.float32]]],
    gate: GateInfo,
    now: datetime,
    impostors: Sequence[tuple[str, npt.NDArray[np.float32]]] = (),
) -> Gallery:
    """The gallery of one gate: the people who may use it, their templates and the impostor
    examples of those among them whose templates it carries."""
    allowed = {pid: p for pid, p in people.items() if may_use_gate(p, gate, now)}
    rows = [(pid, encoding) for pid, encoding in templates if pid in allowed]
    with_face = {pid for pid, _ in rows}
    examples = [(pid, encoding) for pid, encoding in impostors if pid in with_face]
    return Gallery(
        version=version,
        people=allowed,
        template_owners=tuple(pid for pid, _ in rows),
        encodings=_matrix(rows),
        impostor_owners=tuple(pid for pid, _ in examples),
        impostors=_matrix(examples),
    )


def _matrix(rows: Sequence[tuple[str, npt.NDArray[np.float32]]]) -> npt.NDArray[np.float32]:
    if rows:
        return np.stack([encoding for _, encoding in rows]).astype(np.float32)
    return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)


def person_from_row(row: PersonRow) -> Person:
    """The gate's view of a people-table row, validated as the gate will read it.

    ValueError names the person and the field. Windows may leave out ``days`` (every day).
    """
    try:
        obj = {
            "person_id": row.person_id,
            "status": row.status,
            "kind": row.kind,
            "buildings": sorted(set(_str_list(row.buildings, "buildings"))),
            "gates": sorted(set(_str_list(row.gates, "gates"))),
            "windows": [_window_obj(w) for w in row.windows or []],
            "valid_from": None if row.valid_from is None else row.valid_from.isoformat(),
            "valid_until": None if row.valid_until is None else row.valid_until.isoformat(),
            "card_uids": sorted({_card(c, i) for i, c in enumerate(_str_list(row.cards, "cards"))}),
            "pin_hash": row.pin_hash or None,
        }
        document = {"format": 1, "version": 0, "people": [obj], "templates": []}
        gallery = gallery_from_json(json.dumps(document).encode("utf-8"))
    except ValueError as exc:
        detail = str(exc).replace("people[0].", "").replace("people[0]: ", "")
        raise ValueError(f"person {row.person_id!r}: {detail}") from None
    return gallery.people[row.person_id]


def _str_list(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: expected a list of strings")
    return value


def _window_obj(value: object) -> object:
    if isinstance(value, dict) and "days" not in value:
        return {"days": list(range(7)), **value}
    return value


def _card(value: str, index: int) -> str:
    try:
        return normalize_card_uid(value)
    except ValueError as exc:
        raise ValueError(f"cards[{index}]: {exc}") from None
