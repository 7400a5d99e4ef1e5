"""Who is inside each building, the roll call, and the fire alarm that opens a building's gates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import Field
from sqlalchemy import func, select

from gateway.api.common import Out, not_found, unavailable
from gateway.api.deps import ServicesDep, SessionDep, require
from gateway.api.routes.gates import command_service
from gateway.attributes import from_attributes
from gateway.auth.roles import CurrentUser, Role
from gateway.commands import BrokerUnavailableError, GateDispatch, UnknownGateError
from gateway.db.schema import Gate, Person
from gateway.db.schema import Presence as PresenceRow
from gateway.domain.occupancy import Presence, roll_call

router = APIRouter(tags=["occupancy"])

Reader = Annotated[CurrentUser, require(Role.GUARD, Role.AUDITOR)]
Guard = Annotated[CurrentUser, require(Role.GUARD)]


class BuildingCount(Out):
    building: str
    inside: int


class RollCallPerson(Out):
    person_id: str
    name: str
    since: datetime
    hours_inside: float
    gate_id: str = Field(description="the gate of the last entry")
    irregular: bool = Field(description="entry not matching the last exit: double-check")


class RollCallOut(Out):
    building: str
    generated_at: datetime
    count: int
    people: list[RollCallPerson]


class FireAlarmOut(Out):
    building: str
    gates: list[GateDispatch] = Field(description="every gate of the building and its status")
    roll_call: RollCallOut


def _roll_call(services: ServicesDep, building: str) -> RollCallOut:
    now = services.clock()
    with services.sessions() as session:
        rows = session.scalars(
            select(PresenceRow).where(
                PresenceRow.building == building, PresenceRow.inside.is_(True)
            )
        )
        presences = [Presence.of(r) for r in rows]
        ids = [p.person_id for p in presences]
        names = dict(
            session.execute(
                select(Person.person_id, Person.name).where(Person.person_id.in_(ids))
            ).all()
        )
    entries = roll_call(presences, building, now)
    return RollCallOut(
        building=building,
        generated_at=now,
        count=len(entries),
        people=[
            from_attributes(
                RollCallPerson,
                e,
                name=names.get(e.person_id, ""),
                hours_inside=round(e.hours_inside, 2),
            )
            for e in entries
        ],
    )


def _known_building(services: ServicesDep, session: SessionDep, building: str) -> bool:
    if any(b.id == building for b in services.config.buildings):
        return True
    return (
        session.scalar(select(Gate.gate_key).where(Gate.building == building).limit(1)) is not None
        or session.scalar(
            select(PresenceRow.person_id).where(PresenceRow.building == building).limit(1)
        )
        is not None
    )


@router.get("/api/occupancy", response_model=list[BuildingCount])
def occupancy(_user: Reader, services: ServicesDep, session: SessionDep) -> list[BuildingCount]:
    """How many people are inside each building (configured buildings listed even when empty)."""
    counts = {b.id: 0 for b in services.config.buildings}
    for building, n in session.execute(
        select(PresenceRow.building, func.count())
        .where(PresenceRow.inside.is_(True))
        .group_by(PresenceRow.building)
    ).all():
        counts[building] = int(n)
    return [BuildingCount(building=b, inside=n) for b, n in sorted(counts.items())]


@router.get("/api/occupancy/{building}/roll-call", response_model=RollCallOut)
def building_roll_call(
    building: str, _user: Reader, services: ServicesDep, session: SessionDep
) -> RollCallOut:
    """Everyone inside a building now, by person id, with how long they have been inside."""
    if not _known_building(services, session, building):
        not_found(f"no building {building!r}")
    return _roll_call(services, building)


@router.post("/api/buildings/{building}/fire-alarm", response_model=FireAlarmOut)
def fire_alarm(building: str, user: Guard, services: ServicesDep) -> FireAlarmOut:
    """Hold every gate of the building open for an evacuation; returns the roll call too.

    Gates stay open until a guard sends them 'release' (or after 12 hours).
    """
    commands = command_service(services)
    try:
        gates = commands.fire_alarm(building, user.username)
    except UnknownGateError as exc:
        not_found(str(exc))
    except BrokerUnavailableError as exc:
        unavailable(str(exc))
    return FireAlarmOut(building=building, gates=gates, roll_call=_roll_call(services, building))
