"""Gates: online state, health and gallery version; commands to one gate."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import Field
from sqlalchemy import select

from gateway.api.common import In, Out, not_found, unavailable
from gateway.api.deps import ServicesDep, SessionDep, require
from gateway.attributes import from_attributes
from gateway.auth.roles import CurrentUser, Role
from gateway.commands import (
    BrokerUnavailableError,
    CommandName,
    CommandService,
    CommandView,
    UnknownGateError,
)
from gateway.db.schema import Gate

router = APIRouter(prefix="/api/gates", tags=["gates"])

Reader = Annotated[CurrentUser, require(Role.GUARD, Role.AUDITOR)]
Commander = Annotated[CurrentUser, require(Role.GUARD)]

_HEARTBEAT_FIELDS = (
    "fps",
    "last_frame_age_s",
    "source_healthy",
    "outbox_depth",
    "face_path",
    "uptime_s",
    "alarms",
    "rejected_messages",
)


class GateOut(Out):
    gate_key: str = Field(description="site/building/gate_id")
    site: str
    building: str
    gate_id: str
    direction: str
    name: str
    online: bool | None = Field(description="null until the gate's availability was seen")
    availability_at: datetime | None
    last_heartbeat_at: datetime | None
    heartbeat: dict[str, Any] | None = Field(description="health figures of the last heartbeat")
    gallery_version: int | None
    last_seq: int | None


class CommandIn(In):
    command: CommandName
    duration_s: float | None = Field(default=None, gt=0, le=24 * 3600)
    reason: str = Field(default="", max_length=200)


def _out(gate: Gate) -> GateOut:
    beat = gate.heartbeat or {}
    return from_attributes(
        GateOut,
        gate,
        heartbeat={k: beat[k] for k in _HEARTBEAT_FIELDS if k in beat} if beat else None,
    )


def command_service(services: ServicesDep) -> CommandService:
    """The command service, or 503 when the gateway runs without a broker link."""
    if services.commands is None:
        unavailable("gate commands are not available: the gateway has no MQTT link")
    return services.commands


@router.get("", response_model=list[GateOut])
def list_gates(
    _user: Reader,
    session: SessionDep,
    building: Annotated[str | None, Query(max_length=64)] = None,
) -> list[GateOut]:
    """Every known gate, by key."""
    query = select(Gate).order_by(Gate.gate_key)
    if building is not None:
        query = query.where(Gate.building == building)
    return [_out(g) for g in session.scalars(query)]


@router.get("/{gate_key:path}/commands", response_model=list[CommandView])
def gate_commands(
    gate_key: str,
    _user: Reader,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[CommandView]:
    """The newest commands sent to a gate, with the gate's answers."""
    return command_service(services).recent(gate_key, limit)


@router.post(
    "/{gate_key:path}/command",
    response_model=CommandView,
    status_code=status.HTTP_202_ACCEPTED,
    responses={503: {"description": "the MQTT broker is not reachable"}},
)
def send_command(
    gate_key: str, body: CommandIn, user: Commander, services: ServicesDep
) -> CommandView:
    """Send a command to one gate; the gate's answer shows up in .../commands."""
    commands = command_service(services)
    try:
        return commands.issue(gate_key, body.command, body.duration_s, body.reason, user.username)
    except UnknownGateError as exc:
        not_found(str(exc))
    except BrokerUnavailableError as exc:
        unavailable(str(exc))
