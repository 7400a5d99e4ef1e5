"""Silences: maintenance windows during which matching alerts are recorded without sound.

Facilities staff may silence appliance and device alerts only (their own maintenance); guards
and admins any alert. Nothing is suppressed: silenced alerts still appear, marked silenced.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Self

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import Field, model_validator

from gateway.alerts.repository import NotFoundError
from gateway.alerts.types import AlertType
from gateway.alerts.views import SilenceView
from gateway.api.common import In, RowIdPath, UtcDatetime, not_found
from gateway.api.deps import ServicesDep, require
from gateway.api.routes.alerts import FACILITIES_TYPES
from gateway.auth.roles import CurrentUser, Role

router = APIRouter(prefix="/api/silences", tags=["silences"])

Reader = Annotated[CurrentUser, require(Role.GUARD, Role.FACILITIES, Role.AUDITOR)]
Writer = Annotated[CurrentUser, require(Role.GUARD, Role.FACILITIES)]

MAX_SILENCE = timedelta(days=30)
# kind:site[/building[/...]] -- at least a site, so one silence cannot mute a whole kind by typo.
ORIGINATOR_PATTERN = r"^(gate|device|bridge|person):[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]*)*$"


class SilenceIn(In):
    originator: str = Field(
        max_length=300,
        pattern=ORIGINATOR_PATTERN,
        description="an originator or a path prefix: 'gate:campus/B1/east', 'device:campus/B2'",
    )
    types: list[AlertType] = Field(default_factory=list, description="[] = every type")
    starts_at: UtcDatetime | None = Field(default=None, description="default: now")
    ends_at: UtcDatetime | None = None
    duration_s: float | None = Field(
        default=None,
        gt=0,
        le=MAX_SILENCE.total_seconds(),
        description=f"instead of ends_at; at most {MAX_SILENCE.days} days",
    )
    reason: str = Field(min_length=1, max_length=300)

    @model_validator(mode="after")
    def _one_end(self) -> Self:
        if (self.ends_at is None) == (self.duration_s is None):
            raise ValueError("give exactly one of ends_at and duration_s")
        return self


def _facilities_may(user: CurrentUser, types: list[AlertType]) -> bool:
    return user.role is not Role.FACILITIES or (bool(types) and set(types) <= set(FACILITIES_TYPES))


@router.get("", response_model=list[SilenceView])
def list_silences(
    _user: Reader,
    services: ServicesDep,
    include_past: Annotated[bool, Query(description="also silences that ended")] = False,
) -> list[SilenceView]:
    """Current and upcoming silences."""
    return services.alerts.list_silences(include_past=include_past)


@router.post("", response_model=SilenceView, status_code=status.HTTP_201_CREATED)
def create_silence(body: SilenceIn, user: Writer, services: ServicesDep) -> SilenceView:
    """Start (or schedule) a silence of at most 30 days."""
    if not _facilities_may(user, body.types):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "facilities may only silence "
            + " and ".join(sorted(t.value for t in FACILITIES_TYPES))
            + " alerts: list them in 'types'",
        )
    starts_at: datetime = body.starts_at or services.clock()
    try:
        ends_at = body.ends_at or starts_at + timedelta(seconds=body.duration_s or 0)
    except OverflowError:  # starts_at near the end of the calendar (year 9999)
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "starts_at plus duration_s is past year 9999"
        ) from None
    if ends_at - starts_at > MAX_SILENCE:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"a silence may last at most {MAX_SILENCE.days} days; create a new one afterwards",
        )
    try:
        return services.alerts.create_silence(
            body.originator, body.types, starts_at, ends_at, body.reason, user.username
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


@router.delete("/{silence_id}", response_model=SilenceView)
def end_silence(silence_id: RowIdPath, user: Writer, services: ServicesDep) -> SilenceView:
    """End a silence now (a silence that has not started is removed)."""
    try:
        current = services.alerts.get_silence(silence_id)
        if not _facilities_may(user, current.types):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "facilities may only end their own kind of silence"
            )
        return services.alerts.end_silence(silence_id, user.username)
    except NotFoundError as exc:
        not_found(str(exc))
