"""The student page's API: a student's own record and their building's service rooms.

Every route here is for the ``student`` role only and reads the caller's own person (the
account's ``person_id``): there is no path parameter naming someone else to try. What the page
shows is what PIPL lets a person see of themselves: their enrolment and consents, which face
templates exist (id and date, never the template), their last 30 days at the gates.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Annotated, Literal, Self

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.credentials import hash_pin
from gateway.api.common import In, Out, RowIdPath, not_found, unavailable
from gateway.api.deps import ServicesDep, SessionDep, require_student
from gateway.api.routes.devices import DeviceOut
from gateway.auth.roles import CurrentUser
from gateway.db.schema import AccessRecord, Device, FaceTemplate, Person, Watch
from gateway.domain.appliances import device_fields
from gateway.enrolment.consent import FACE_ACCESS
from gateway.enrolment.reports import ConsentRecord, ErasureStatus
from gateway.students import watches

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/student", tags=["student"])

Student = Annotated[CurrentUser, require_student()]

ACCESS_HISTORY = timedelta(days=30)
MAX_ACCESS_ROWS = 500
RECENT_WATCHES = timedelta(days=1)  # fired or cancelled watches the page still lists


class PersonSummary(Out):
    person_id: str
    name: str
    status: str
    buildings: list[str]
    valid_from: datetime | None
    valid_until: datetime | None
    cards: int = Field(description="how many access cards are registered")
    has_pin: bool
    face_opt_out: bool = Field(description="true: the gates take card or PIN, never the face")


class TemplateSummary(Out):
    id: int
    created_at: datetime


class AccessRow(Out):
    ts: datetime
    building: str
    gate_id: str
    direction: str
    decision: str
    method: str
    reason: str


class RecordOut(Out):
    person: PersonSummary
    face_consent: bool
    templates: list[TemplateSummary] = Field(description="which templates exist, never the data")
    consents: list[ConsentRecord] = Field(description="newest first")
    erasures: list[ErasureStatus] = Field(
        description="newest first; complete once every gate confirmed"
    )
    access: list[AccessRow] = Field(description="the last 30 days, newest first")


class WithdrawOut(Out):
    face_opt_out: bool
    erasure: ErasureStatus | None = Field(
        description="the erasure at every gate (null when no face was ever enrolled)"
    )


class PinIn(In):
    pin: str = Field(min_length=4, max_length=8, description="4-8 digits; stored only as a hash")


class WatchIn(In):
    """Finished: ``device_key`` of a machine; free: ``device_kind`` (and ``room``, or any)."""

    kind: Literal["finished", "free"]
    device_key: str | None = Field(default=None, max_length=260)
    device_kind: Literal["washer", "dryer", "water_dispenser", "hair_dryer"] | None = None
    room: str | None = Field(default=None, max_length=64, description="free: this room only")
    building: str | None = Field(
        default=None, max_length=64, description="free: of your buildings, this one"
    )

    @model_validator(mode="after")
    def _target(self) -> Self:
        if self.kind == "finished" and self.device_key is None:
            raise ValueError("a 'finished' watch needs the device_key of the machine")
        if self.kind == "free" and self.device_kind is None:
            raise ValueError("a 'free' watch needs a device_kind (washer, dryer, ...)")
        return self


class WatchOut(Out):
    id: int
    kind: str
    device_key: str | None
    building: str
    room: str | None
    device_kind: str | None
    created_at: datetime
    fired_at: datetime | None
    fired_device_key: str | None
    cancelled_at: datetime | None


def own_person(session: Session, user: CurrentUser) -> Person:
    """The caller's person; 404 when it is gone (e.g. removed after the account was made)."""
    person = session.get(Person, user.person_id) if user.person_id else None
    if person is None:
        not_found("your student record is not on this gateway; ask the dormitory office")
    return person


def rooms_of(session: Session, buildings: list[str]) -> list[DeviceOut]:
    """Every appliance of these buildings, by building, room and device."""
    if not buildings:
        return []
    query = (
        select(Device)
        .where(Device.building.in_(buildings))
        .order_by(Device.building, Device.room, Device.device_id)
    )
    return [DeviceOut(**device_fields(d)) for d in session.scalars(query)]


def watch_list(session: Session, person_id: str, now: datetime) -> list[WatchOut]:
    """The student's open watches and those fired or cancelled in the last day."""
    rows = watches.watches_of(session, person_id, fired_since=now - RECENT_WATCHES)
    return [WatchOut.model_validate(w) for w in rows]


@router.get("/record", response_model=RecordOut)
def my_record(user: Student, services: ServicesDep, session: SessionDep) -> RecordOut:
    """What the system holds about the caller (templates as ids and dates only)."""
    person = own_person(session, user)
    templates = session.scalars(
        select(FaceTemplate).where(FaceTemplate.person_id == person.person_id)
    )
    since = services.clock() - ACCESS_HISTORY
    access = session.scalars(
        select(AccessRecord)
        .where(AccessRecord.person_id == person.person_id, AccessRecord.ts >= since)
        .order_by(AccessRecord.ts.desc())
        .limit(MAX_ACCESS_ROWS)
    )
    consents: list[ConsentRecord] = []
    erasures: list[ErasureStatus] = []
    face_consent = False
    if services.enrolment is not None:
        state = services.enrolment.status(person.person_id)
        consents = list(reversed(state.consents))  # newest first, like the erasures
        erasures = list(state.erasures)
        face_consent = state.face_consent
    return RecordOut(
        person=PersonSummary(
            person_id=person.person_id,
            name=person.name,
            status=person.status,
            buildings=list(person.buildings),
            valid_from=person.valid_from,
            valid_until=person.valid_until,
            cards=len(person.cards or []),
            has_pin=person.pin_hash is not None,
            face_opt_out=person.face_opt_out,
        ),
        face_consent=face_consent,
        templates=[TemplateSummary(id=t.id, created_at=t.created_at) for t in templates],
        consents=consents,
        erasures=erasures,
        access=[AccessRow.model_validate(r) for r in access],
    )


@router.post("/face/withdraw", response_model=WithdrawOut)
def withdraw_face_consent(user: Student, services: ServicesDep) -> WithdrawOut:
    """Withdraw face consent: card/PIN from now on, the templates erased here and at every
    gate (the erasure is complete once each gate confirmed it; the record shows it)."""
    enrolment = services.enrolment
    if enrolment is None:
        unavailable("face enrolment is not configured on this gateway; ask the dormitory office")
    with services.sessions.begin() as session:
        person = own_person(session, user)
        already = person.face_opt_out
        person.face_opt_out = True  # in the gallery the erasure publishes next
        person.updated_at = services.clock()
    state = enrolment.status(person.person_id)
    if already and not state.face_consent and state.templates == 0:
        # Pressed again (a second tap, a reload): nothing new to record or erase.
        return WithdrawOut(face_opt_out=True, erasure=next(iter(state.erasures), None))
    result = enrolment.record_consent(
        person.person_id,
        FACE_ACCESS,
        False,
        "withdrawn by the student on the student page",
        f"student:{user.username}",
    )
    erasure = result.erasure.erasure if result.erasure is not None else None
    if erasure is None:  # nothing was enrolled: the opt-out still reaches the gates
        enrolment.publish_galleries("face opt-out on the student page", user.username)
    log.info("face consent withdrawn by student %s on the student page", person.person_id)
    return WithdrawOut(face_opt_out=True, erasure=erasure)


@router.post("/pin", status_code=status.HTTP_204_NO_CONTENT)
def set_my_pin(body: PinIn, user: Student, services: ServicesDep) -> Response:
    """Set the PIN the gates take with a card (or alone, where the gate allows it)."""
    try:
        pin_hash = hash_pin(body.pin)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"pin: {exc}") from None
    with services.sessions.begin() as session:
        person = own_person(session, user)
        person.pin_hash = pin_hash
        person.updated_at = services.clock()
    if services.enrolment is not None:
        services.enrolment.publish_galleries("PIN set on the student page", user.username)
    log.info("PIN set by student %s", user.person_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/rooms", response_model=list[DeviceOut])
def my_rooms(user: Student, session: SessionDep) -> list[DeviceOut]:
    """The service rooms of the caller's buildings: every appliance and its board status."""
    return rooms_of(session, list(own_person(session, user).buildings))


@router.get("/watches", response_model=list[WatchOut])
def my_watches(user: Student, services: ServicesDep, session: SessionDep) -> list[WatchOut]:
    """The caller's open watches and those fired or cancelled in the last day, newest first."""
    return watch_list(session, own_person(session, user).person_id, services.clock())


@router.post("/watches", response_model=WatchOut, status_code=status.HTTP_201_CREATED)
def add_watch(body: WatchIn, user: Student, services: ServicesDep) -> WatchOut:
    """Ask to be told when a machine finishes, or when a kind of machine is free."""
    with services.sessions.begin() as session:
        person = own_person(session, user)
        buildings = list(person.buildings)
        target = _target(session, body, buildings)
        try:
            watch = watches.add_watch(session, person.person_id, target, services.clock())
        except watches.WatchError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        return WatchOut.model_validate(watch)


def _target(session: Session, body: WatchIn, buildings: list[str]) -> watches.WatchTarget:
    """What the watch waits for, checked against the student's own buildings."""
    if body.kind == "finished":
        device = session.get(Device, body.device_key)
        if device is None or device.building not in buildings:
            not_found(f"no appliance {body.device_key!r} in your building")
        return watches.WatchTarget(
            "finished", device.building, device_key=device.device_key, device_kind=device.kind
        )
    query = select(Device.building).where(
        Device.building.in_(buildings), Device.kind == body.device_kind
    )
    if body.room is not None:
        query = query.where(Device.room == body.room)
    if body.building is not None:
        query = query.where(Device.building == body.building)
    building = session.scalar(query.order_by(Device.building).limit(1))
    if building is None:
        where = f"room {body.room!r} of your building" if body.room else "your building"
        not_found(f"no {body.device_kind} in {where}")
    return watches.WatchTarget("free", building, room=body.room, device_kind=body.device_kind)


@router.delete("/watches/{watch_id}", status_code=status.HTTP_204_NO_CONTENT)
def cancel_watch(watch_id: RowIdPath, user: Student, services: ServicesDep) -> Response:
    """Cancel one of the caller's open watches."""
    with services.sessions.begin() as session:
        person_id = own_person(session, user).person_id
        if not watches.cancel_watch(session, person_id, watch_id, services.clock()):
            not_found(f"you have no open watch {watch_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def watched(session: Session, person_id: str, since: datetime) -> list[Watch]:
    """The student's watches fired since ``since`` (the live page's catch-up)."""
    return list(
        session.scalars(
            select(Watch)
            .where(Watch.person_id == person_id, Watch.fired_at >= since)
            .order_by(Watch.fired_at)
        )
    )
