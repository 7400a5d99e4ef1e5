"""Consent decisions and what they allow: enrolling a face, and templates in the galleries.

Consents are kept after an erasure, as the record of what was agreed and withdrawn.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.db.schema import Consent
from gateway.db.schema import Person as PersonRow
from gateway.enrolment.errors import ConsentRequiredError, FaceOptedOutError
from gateway.enrolment.queries import find_person
from gateway.enrolment.reports import ConsentRecord, report_from_row

FACE_ACCESS = "face_access"


def add_consent(
    session: Session,
    person_id: str,
    purpose: str,
    granted: bool,
    evidence: str,
    actor: str,
    now: datetime,
) -> tuple[ConsentRecord, bool]:
    """Record a decision (a refusal withdraws the active grants of that purpose).

    Returns the record and whether face_access had ever been granted before.
    """
    find_person(session, person_id)
    had_face_consent = purpose == FACE_ACCESS and bool(
        session.scalar(
            select(func.count())
            .select_from(Consent)
            .where(Consent.person_id == person_id, Consent.purpose == FACE_ACCESS)
            .where(Consent.granted.is_(True))
        )
    )
    if not granted:
        for active in session.scalars(
            select(Consent).where(
                Consent.person_id == person_id,
                Consent.purpose == purpose,
                Consent.granted.is_(True),
                Consent.withdrawn_at.is_(None),
            )
        ):
            active.withdrawn_at = now
    row = Consent(
        person_id=person_id,
        purpose=purpose,
        granted=granted,
        recorded_by=actor,
        recorded_at=now,
        evidence=evidence,
        withdrawn_at=None,
    )
    session.add(row)
    session.flush()
    return report_from_row(ConsentRecord, row), had_face_consent


def check_may_enrol(session: Session, person_id: str) -> None:
    """Raise unless the person exists, did not opt out and granted face_access consent."""
    person = find_person(session, person_id)
    if person.face_opt_out:
        raise FaceOptedOutError(
            f"person {person_id!r} opted out of face recognition and uses card or PIN; "
            "no face is enrolled"
        )
    consent = current_consent(session, person_id, FACE_ACCESS)
    if consent is None or not consent.granted:
        state = "was withdrawn" if consent is not None else "has not been recorded"
        raise ConsentRequiredError(
            f"consent to face recognition ({FACE_ACCESS!r}) for person {person_id!r} "
            f"{state}; record it first (POST /api/people/{person_id}/consent)"
        )


def current_consent(session: Session, person_id: str, purpose: str) -> Consent | None:
    """The newest decision of a person for a purpose."""
    return session.scalar(
        select(Consent)
        .where(Consent.person_id == person_id, Consent.purpose == purpose)
        .order_by(Consent.id.desc())
        .limit(1)
    )


def face_eligible(session: Session) -> set[str]:
    """People whose newest face_access decision is a grant and who did not opt out."""
    newest: dict[str, Consent] = {}
    for consent in session.scalars(
        select(Consent).where(Consent.purpose == FACE_ACCESS).order_by(Consent.id)
    ):
        newest[consent.person_id] = consent
    granted = {pid for pid, c in newest.items() if c.granted and c.withdrawn_at is None}
    opted_out = set(
        session.scalars(select(PersonRow.person_id).where(PersonRow.face_opt_out.is_(True)))
    )
    return granted - opted_out


def consent_history(session: Session, person_id: str) -> tuple[ConsentRecord, ...]:
    """Every consent decision of a person, oldest first."""
    return tuple(
        report_from_row(ConsentRecord, c)
        for c in session.scalars(
            select(Consent).where(Consent.person_id == person_id).order_by(Consent.id)
        )
    )
