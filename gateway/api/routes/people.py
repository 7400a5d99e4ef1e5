"""Students, staff and visitors: who may enter where and when (no face data ever leaves here).

Card UIDs are credentials: only admins see them in full. PINs are accepted on write, hashed
at once (the gate's PBKDF2 format) and never returned.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import Field, field_validator, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contracts.credentials import hash_pin, normalize_card_uid
from gateway.api.common import In, Out, PageLimit, PageOffset, UtcDatetime, conflict, not_found
from gateway.api.deps import ServicesDep, SessionDep, require
from gateway.attributes import from_attributes
from gateway.auth.roles import CurrentUser, Role
from gateway.auth.users import UsernameTakenError
from gateway.db.schema import FaceTemplate, Person
from gateway.enrolment.galleries import person_from_row
from gateway.students import accounts as students

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/people", tags=["people"])

Reader = Annotated[CurrentUser, require(Role.GUARD, Role.COUNSELLOR, Role.AUDITOR)]
Admin = Annotated[CurrentUser, require()]

PersonIdPattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
Kind = Literal["student", "staff", "visitor"]
Status = Literal["active", "suspended", "graduated"]


class WindowModel(In):
    """Local-time window on some weekdays (0 = Monday); end <= start wraps past midnight."""

    days: list[int] = Field(min_length=1, max_length=7)
    start: str = Field(pattern=_HHMM, description="HH:MM")
    end: str = Field(pattern=_HHMM, description="HH:MM")

    @field_validator("days")
    @classmethod
    def _weekdays(cls, v: list[int]) -> list[int]:
        bad = [d for d in v if not 0 <= d <= 6]
        if bad:
            raise ValueError(f"{bad[0]} is not a weekday 0..6 (0 = Monday)")
        return sorted(set(v))


class _PersonFields(In):
    name: str | None = Field(default=None, max_length=128)
    kind: Kind | None = None
    status: Status | None = None
    buildings: list[str] | None = Field(
        default=None, max_length=100, description="[] = no building allowed"
    )
    gates: list[str] | None = Field(
        default=None, max_length=500, description="[] = every gate of an allowed building"
    )
    windows: list[WindowModel] | None = Field(
        default=None, max_length=50, description="[] = any time"
    )
    valid_from: UtcDatetime | None = None
    valid_until: UtcDatetime | None = None
    cards: list[str] | None = Field(default=None, max_length=20, description="card UIDs")
    pin: str | None = Field(default=None, description="4-8 digits; stored only as a hash")
    counsellor: str | None = Field(default=None, max_length=64, description="counsellor username")
    face_opt_out: bool | None = None

    @field_validator("cards")
    @classmethod
    def _cards(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        cards = [normalize_card_uid(c) for c in v]
        if len(set(cards)) != len(cards):
            raise ValueError("the same card is listed twice")
        return cards

    @model_validator(mode="after")
    def _validity(self) -> Self:
        if (
            self.valid_from is not None
            and self.valid_until is not None
            and self.valid_from > self.valid_until
        ):
            raise ValueError("valid_from is after valid_until")
        return self


class PersonCreateIn(_PersonFields):
    person_id: str = Field(pattern=PersonIdPattern)


class PersonPatchIn(_PersonFields):
    """Only the fields given change; null clears valid_from, valid_until, counsellor and pin."""


class PersonOut(Out):
    person_id: str
    name: str
    kind: str
    status: str
    buildings: list[str]
    gates: list[str]
    windows: list[dict[str, Any]]
    valid_from: datetime | None
    valid_until: datetime | None
    cards: list[str] = Field(description="card UIDs, masked except for admins")
    has_pin: bool
    counsellor: str | None
    face_opt_out: bool
    face_enrolled: bool
    created_at: datetime
    updated_at: datetime
    gallery_version: int | None = Field(
        default=None, description="on writes: the gallery version sent to the gates"
    )
    gallery_pending: list[str] = Field(
        default_factory=list, description="on writes: gates the new gallery has not reached yet"
    )


def _mask(card: str) -> str:
    return "*" * max(0, len(card) - 4) + card[-4:]


def _out(person: Person, user: CurrentUser, enrolled: bool) -> PersonOut:
    cards = list(person.cards) if user.role is Role.ADMIN else [_mask(c) for c in person.cards]
    return from_attributes(
        PersonOut,
        person,
        buildings=list(person.buildings),
        gates=list(person.gates),
        windows=list(person.windows),
        cards=cards,
        has_pin=person.pin_hash is not None,
        face_enrolled=enrolled,
    )


def _enrolled(session: Session, person_ids: list[str]) -> set[str]:
    if not person_ids:
        return set()
    return set(
        session.scalars(
            select(FaceTemplate.person_id)
            .where(FaceTemplate.person_id.in_(person_ids))
            .group_by(FaceTemplate.person_id)
        )
    )


def _visible(person: Person, user: CurrentUser) -> bool:
    return user.role is not Role.COUNSELLOR or person.counsellor == user.username


def _check_cards_free(session: Session, person_id: str, cards: list[str]) -> None:
    """A card may belong to one person only (the gate refuses a card held by two)."""
    wanted = set(cards)
    if not wanted:
        return
    for other_id, other_cards in session.execute(
        select(Person.person_id, Person.cards).where(Person.person_id != person_id)
    ):
        clash = wanted.intersection(other_cards or [])
        if clash:
            conflict(f"card {_mask(sorted(clash)[0])} already belongs to {other_id!r}")


_NULLABLE = frozenset({"valid_from", "valid_until", "counsellor", "pin"})


def _unprocessable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


def _apply(person: Person, body: _PersonFields) -> None:
    """Copy the fields the request gave (null clears the nullable ones)."""
    for name in sorted(body.model_fields_set - {"person_id"}):
        value = getattr(body, name)
        if value is None and name not in _NULLABLE:
            raise _unprocessable(f"{name} cannot be null")
        if name in ("buildings", "gates"):
            value = sorted(set(value))
        elif name == "windows":
            value = [w.model_dump() for w in value]
        elif name == "pin":
            try:
                person.pin_hash = None if value is None else hash_pin(value)
            except ValueError as exc:
                raise _unprocessable(f"pin: {exc}") from None
            continue
        setattr(person, name, value)
    try:  # exactly what the gates will be sent, validated as a gate reads it
        person_from_row(person)
    except ValueError as exc:
        raise _unprocessable(str(exc)) from None


@router.get("", response_model=list[PersonOut])
def list_people(
    user: Reader,
    session: SessionDep,
    building: Annotated[str | None, Query(max_length=64)] = None,
    kind: Kind | None = None,
    person_status: Annotated[Status | None, Query(alias="status")] = None,
    q: Annotated[str | None, Query(max_length=64, description="id or name contains")] = None,
    limit: PageLimit = 200,
    offset: PageOffset = 0,
) -> list[PersonOut]:
    """People matching the filters, by id; counsellors see only their own students."""
    query = select(Person)
    if kind is not None:
        query = query.where(Person.kind == kind)
    if person_status is not None:
        query = query.where(Person.status == person_status)
    if q:
        pattern = f"%{q.lower()}%"
        query = query.where(
            func.lower(Person.person_id).like(pattern) | func.lower(Person.name).like(pattern)
        )
    if user.role is Role.COUNSELLOR:
        query = query.where(Person.counsellor == user.username)
    people = list(session.scalars(query.order_by(Person.person_id)))
    if building is not None:  # JSON list column: filtered here, portable across backends
        people = [p for p in people if building in (p.buildings or [])]
    people = people[offset : offset + limit]
    enrolled = _enrolled(session, [p.person_id for p in people])
    return [_out(p, user, p.person_id in enrolled) for p in people]


@router.get("/{person_id}", response_model=PersonOut)
def get_person(person_id: str, user: Reader, session: SessionDep) -> PersonOut:
    """One person."""
    person = session.get(Person, person_id)
    if person is None or not _visible(person, user):
        not_found(f"no person {person_id!r}")
    return _out(person, user, bool(_enrolled(session, [person_id])))


@router.post("", response_model=PersonOut, status_code=status.HTTP_201_CREATED)
def create_person(body: PersonCreateIn, user: Admin, services: ServicesDep) -> PersonOut:
    """Add a person (enrol their face separately, through the enrolment API)."""
    now = services.clock()
    with services.sessions.begin() as session:
        if session.get(Person, body.person_id) is not None:
            conflict(f"person {body.person_id!r} exists; use PATCH to change them")
        _check_cards_free(session, body.person_id, body.cards or [])
        person = Person.new(body.person_id, now)
        _apply(person, body)
        session.add(person)
        out = _out(person, user, enrolled=False)
    return _published(out, services, user, f"person {body.person_id} added")


@router.patch("/{person_id}", response_model=PersonOut)
def update_person(
    person_id: str, body: PersonPatchIn, user: Admin, services: ServicesDep
) -> PersonOut:
    """Change some of a person's fields."""
    with services.sessions.begin() as session:
        person = session.get(Person, person_id)
        if person is None:
            not_found(f"no person {person_id!r}")
        if body.cards is not None:
            _check_cards_free(session, person_id, body.cards)
        opting_out = body.face_opt_out is True and not person.face_opt_out
        _apply(person, body)
        person.updated_at = services.clock()
        out = _out(person, user, bool(_enrolled(session, [person_id])))
    if opting_out and services.enrolment is not None:
        # Choosing card/PIN instead of face: the templates go everywhere, confirmed per gate.
        services.enrolment.erase(person_id, user.username)
        return out.model_copy(update={"face_enrolled": False})
    return _published(out, services, user, f"person {person_id} changed")


class StudentAccountOut(Out):
    person_id: str
    username: str = Field(description="the student signs in with their student id")
    code: str = Field(description="the one-time sign-in code: shown only in this answer")
    created: bool = Field(description="false: the existing account got a new code")


@router.post(
    "/{person_id}/student-account",
    response_model=StudentAccountOut,
    responses={409: {"description": "a staff account has this name"}},
)
def issue_student_account(person_id: str, user: Admin, services: ServicesDep) -> StudentAccountOut:
    """Give a student a sign-in code for the student page (a new one replaces the old and
    signs them out everywhere); print it on the enrolment slip, it is not shown again."""
    with services.sessions.begin() as session:
        person = session.get(Person, person_id)
        if person is None:
            not_found(f"no person {person_id!r}")
        try:
            issued = students.issue_student_account(
                session, person, mode=services.config.mode, now=services.clock()
            )
        except UsernameTakenError:
            conflict(
                f"a staff account is called {person_id!r}: rename it before the student can "
                "have their account"
            )
        except ValueError as exc:
            raise _unprocessable(str(exc)) from None
    log.info(
        "student account %s for %s by %s",
        "created" if issued.created else "given a new code",
        person_id,
        user.username,
    )
    return StudentAccountOut(
        person_id=person_id, username=issued.username, code=issued.code, created=issued.created
    )


def _published(out: PersonOut, services: ServicesDep, user: CurrentUser, reason: str) -> PersonOut:
    """Send the gates a gallery with the change (when enrolment is configured)."""
    if services.enrolment is None:
        return out
    try:
        publication = services.enrolment.publish_galleries(reason, user.username)
    except Exception:  # the change is stored; the next publication carries it
        log.exception("publishing galleries after '%s' failed", reason)
        return out
    return out.model_copy(
        update={
            "gallery_version": publication.version,
            "gallery_pending": list(publication.pending),
        }
    )
