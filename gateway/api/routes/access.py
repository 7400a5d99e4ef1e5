"""Access-log search, newest first, paged by a cursor (or an offset); wrong-match reports."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import Field
from sqlalchemy import and_, or_, select

from gateway.api.common import (
    MAX_ROW_ID,
    In,
    Out,
    PageLimit,
    PageOffset,
    UtcDatetime,
    conflict,
    not_found,
    unavailable,
    where_equal,
)
from gateway.api.deps import ServicesDep, SessionDep, require
from gateway.auth.roles import CurrentUser, Role
from gateway.db.schema import AccessRecord, Person, WrongMatchReport
from gateway.enrolment.errors import PersonNotFoundError
from gateway.enrolment.reports import WrongMatchStatus
from gateway.enrolment.wrong_match import EventNotFoundError, NotReportableError

router = APIRouter(prefix="/api/access", tags=["access log"])

Reader = Annotated[CurrentUser, require(Role.GUARD, Role.AUDITOR, Role.COUNSELLOR)]
Reporter = Annotated[CurrentUser, require(Role.GUARD)]


class AccessOut(Out):
    id: int
    event_id: str
    ts: datetime
    received_at: datetime
    site: str
    building: str
    gate_id: str
    direction: str
    decision: str
    method: str
    person_id: str | None
    reason: str
    flags: list[str]
    distance: float | None
    margin: float | None
    faces_in_view: int
    seq: int | None
    wrong_match: str | None = Field(
        default=None,
        description="the state of a wrong-match report on this event (requested, stored, "
        "failed, erased), or null when none was made",
    )


class AccessPage(Out):
    items: list[AccessOut]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next (older) page; null on the last page"
    )


def encode_cursor(ts: datetime, row_id: int) -> str:
    """An opaque cursor pointing just after (older than) one row."""
    raw = f"{ts.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (ts, id) a cursor points after; ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts_text, id_text = raw.rsplit("|", 1)
        ts = datetime.fromisoformat(ts_text)
        row_id = int(id_text)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("cursor is not valid: use the next_cursor of a previous page") from exc
    # Also refused: an id no row can have (the driver could not bind it; that would be a 500).
    if ts.tzinfo is None or not 1 <= row_id <= MAX_ROW_ID:
        raise ValueError("cursor is not valid: use the next_cursor of a previous page")
    return ts, row_id


@router.get("", response_model=AccessPage)
def search_access(
    user: Reader,
    session: SessionDep,
    person: Annotated[str | None, Query(max_length=64, description="person id")] = None,
    building: Annotated[str | None, Query(max_length=64)] = None,
    gate: Annotated[str | None, Query(max_length=64, description="gate id")] = None,
    decision: Literal["granted", "denied"] | None = None,
    method: Literal["face", "card", "pin"] | None = None,
    since: Annotated[UtcDatetime | None, Query(description="inclusive, with UTC offset")] = None,
    until: Annotated[UtcDatetime | None, Query(description="exclusive, with UTC offset")] = None,
    limit: PageLimit = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    offset: PageOffset = 0,
) -> AccessPage:
    """Access records matching every filter given, newest first.

    Counsellors see only the records of the people assigned to them.
    """
    if cursor is not None and offset:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "give either cursor or offset, not both"
        )
    query = where_equal(
        select(AccessRecord),
        (AccessRecord.person_id, person),
        (AccessRecord.building, building),
        (AccessRecord.gate_id, gate),
        (AccessRecord.decision, decision),
        (AccessRecord.method, method),
    )
    if since is not None:
        query = query.where(AccessRecord.ts >= since)
    if until is not None:
        query = query.where(AccessRecord.ts < until)
    if user.role is Role.COUNSELLOR:
        mine = select(Person.person_id).where(Person.counsellor == user.username)
        query = query.where(AccessRecord.person_id.in_(mine))
    if cursor is not None:
        try:
            ts, row_id = decode_cursor(cursor)
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        query = query.where(
            or_(AccessRecord.ts < ts, and_(AccessRecord.ts == ts, AccessRecord.id < row_id))
        )
    query = query.order_by(AccessRecord.ts.desc(), AccessRecord.id.desc())
    rows = list(session.scalars(query.offset(offset).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].ts, rows[-1].id) if more and rows else None
    face_events = [r.event_id for r in rows if r.method == "face"]
    reported: dict[str, str] = {}
    if face_events:
        query_reports = select(WrongMatchReport.event_id, WrongMatchReport.state).where(
            WrongMatchReport.event_id.in_(face_events)
        )
        reported = {event_id: state for event_id, state in session.execute(query_reports)}
    items = [
        AccessOut.model_validate(r).model_copy(update={"wrong_match": reported.get(r.event_id)})
        for r in rows
    ]
    return AccessPage(items=items, next_cursor=next_cursor)


class WrongMatchIn(In):
    note: str = Field(default="", max_length=200, description="what the guard saw (audited)")


@router.post(
    "/{event_id}/wrong-match",
    response_model=WrongMatchStatus,
    status_code=status.HTTP_202_ACCEPTED,
)
def report_wrong_match(
    event_id: Annotated[str, Path(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
    user: Reporter,
    services: ServicesDep,
    body: WrongMatchIn | None = None,
) -> WrongMatchStatus:
    """Report a face-decided access event as "not this person" (docs/decisions/0014).

    The report is recorded and audited, and the gate is asked for the probe behind the event;
    202: once the gate hands it over (state ``stored``) the next gallery carries it to the gates
    as an impostor example of the person, and a probe close to it is no longer let in as them.
    404: no such event; 409: not decided by face to a person, or already reported.
    """
    if services.wrong_match is None:
        unavailable(
            "wrong-match feedback needs face enrolment: add an 'enrolment' section "
            "(gallery_key, ...) to the gateway configuration and restart"
        )
    try:
        return services.wrong_match.report(event_id, user.username, body.note if body else "")
    except (EventNotFoundError, PersonNotFoundError) as exc:
        not_found(str(exc))
    except NotReportableError as exc:
        conflict(str(exc))
