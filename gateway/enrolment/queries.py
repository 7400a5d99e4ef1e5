"""Small reads the parts of enrolment share: row counts, a person by id, the site's gates, the
wrong-match reports of a person."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.db.schema import Gate, WrongMatchReport
from gateway.db.schema import Person as PersonRow
from gateway.enrolment.errors import PersonNotFoundError
from gateway.enrolment.reports import WrongMatchStatus, report_from_row


def count_rows(session: Session, table: type[Any], *where: Any) -> int:
    """How many rows of a table match the conditions."""
    return int(session.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def find_person(session: Session, person_id: str) -> PersonRow:
    """The people-table row of a person; PersonNotFoundError when there is none."""
    person = session.get(PersonRow, person_id)
    if person is None:
        raise PersonNotFoundError(f"no person {person_id!r}")
    return person


def site_gates(session: Session, site: str) -> list[Gate]:
    """The gates of a site, by gate key."""
    return list(session.scalars(select(Gate).where(Gate.site == site).order_by(Gate.gate_key)))


def reports_of(session: Session, person_id: str) -> tuple[WrongMatchStatus, ...]:
    """The wrong-match reports that named a person, newest first."""
    rows = session.scalars(
        select(WrongMatchReport)
        .where(WrongMatchReport.person_id == person_id)
        .order_by(WrongMatchReport.id.desc())
    )
    return tuple(report_from_row(WrongMatchStatus, r) for r in rows)
