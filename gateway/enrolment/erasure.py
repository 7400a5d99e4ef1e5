"""Erasure of a person's face data, and its confirmation by every gate.

An erasure deletes the person's templates and photos in the same transaction that creates the
gallery version leaving them out and its delivery rows, so a crash or a broker outage can delay
but never lose it; it is complete once every gate has applied that version or a newer one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.db.schema import (
    EnrolmentPhoto,
    Erasure,
    FaceTemplate,
    ImpostorExample,
    WrongMatchReport,
)
from gateway.enrolment.deliveries import add_version, confirmed_versions
from gateway.enrolment.queries import count_rows, find_person, site_gates
from gateway.enrolment.reports import ErasureStatus, report_from_row

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Erased:
    """What one erasure transaction did: its row, the new version, how much it deleted."""

    erasure_id: int
    version: int
    templates: int
    photos: int


def erase_face_data(
    session: Session, site: str, person_id: str, actor: str, reason: str, now: datetime
) -> Erased:
    """Delete a person's templates, photos and impostor examples; record the erasure and a
    version without them. Their wrong-match reports stay (no face data) as ``erased``."""
    find_person(session, person_id)
    templates = count_rows(session, FaceTemplate, FaceTemplate.person_id == person_id)
    photos = count_rows(session, EnrolmentPhoto, EnrolmentPhoto.person_id == person_id)
    session.execute(delete(FaceTemplate).where(FaceTemplate.person_id == person_id))
    session.execute(delete(EnrolmentPhoto).where(EnrolmentPhoto.person_id == person_id))
    session.execute(delete(ImpostorExample).where(ImpostorExample.person_id == person_id))
    for report in session.scalars(
        select(WrongMatchReport).where(
            WrongMatchReport.person_id == person_id, WrongMatchReport.state != "erased"
        )
    ):
        report.state = "erased"
        report.detail = f"impostor example erased with the face data: {reason}"
        report.updated_at = now
    version = add_version(
        session, site, f"erasure of {person_id}: {reason}", actor, [person_id], now
    )
    # completed_at stays empty until every gate has applied this version (complete_erasures)
    erasure = Erasure(
        person_id=person_id, requested_by=actor, requested_at=now, gallery_version=version
    )
    session.add(erasure)
    session.flush()
    return Erased(erasure.id, version, templates, photos)


def complete_erasures(session: Session, site: str, now: datetime) -> None:
    """Mark complete the erasures whose version (or a newer one) every gate has applied."""
    pending = list(
        session.scalars(
            select(Erasure).where(
                Erasure.completed_at.is_(None), Erasure.gallery_version.is_not(None)
            )
        )
    )
    if not pending:
        return
    gate_keys = [g.gate_key for g in site_gates(session, site)]
    confirmed = confirmed_versions(session)
    for erasure in pending:
        version = erasure.gallery_version or 0
        if all(confirmed.get(key, 0) >= version for key in gate_keys):
            erasure.completed_at = now
            log.info(
                "erasure %s of person %s confirmed by all %d gate(s) (version %s or newer)",
                erasure.id,
                erasure.person_id,
                len(gate_keys),
                version,
            )


def erasure_status(session: Session, site: str, erasure: Erasure) -> ErasureStatus:
    """An erasure with the gates that have not confirmed it yet."""
    unconfirmed: tuple[str, ...] = ()
    if erasure.completed_at is None:
        confirmed = confirmed_versions(session)
        version = erasure.gallery_version or 0
        unconfirmed = tuple(
            g.gate_key for g in site_gates(session, site) if confirmed.get(g.gate_key, 0) < version
        )
    return report_from_row(ErasureStatus, erasure, unconfirmed_gates=unconfirmed)


def erasures_of(session: Session, site: str, person_id: str) -> tuple[ErasureStatus, ...]:
    """The erasures of a person, newest first."""
    rows = session.scalars(
        select(Erasure).where(Erasure.person_id == person_id).order_by(Erasure.id.desc())
    )
    return tuple(erasure_status(session, site, e) for e in rows)
