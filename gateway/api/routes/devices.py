"""The facilities board: every appliance's status, its state history and its time series."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field, TypeAdapter
from sqlalchemy import Select, select

from gateway.api.board import BoardCache
from gateway.api.common import Out, UtcDatetime, not_found, unavailable, where_equal
from gateway.api.deps import ServicesDep, SessionDep, require
from gateway.auth.roles import CurrentUser, Role
from gateway.db.schema import Device, DeviceStateRecord
from gateway.domain.appliances import BoardStatus, device_fields
from gateway.timeseries.mapping import APPLIANCE, APPLIANCE_STATE

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/devices", tags=["devices"])

Reader = Annotated[CurrentUser, require(Role.FACILITIES, Role.GUARD, Role.AUDITOR)]

_FIELD_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
DEFAULT_SERIES_SPAN = timedelta(hours=24)
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _default_start(end: datetime) -> datetime:
    """A day before ``end``, or the first day of the calendar when ``end`` is within it."""
    # end - span would overflow (a 500) for an `until` in year 1.
    return end - DEFAULT_SERIES_SPAN if end - _EARLIEST > DEFAULT_SERIES_SPAN else _EARLIEST


class DeviceOut(Out):
    device_key: str = Field(description="site/building/room/device_id")
    site: str
    building: str
    room: str
    device_id: str
    kind: str
    board_status: BoardStatus
    status: str = Field(description="the appliance's own status (idle, running, heating, ...)")
    faults: list[str]
    online: bool
    since: datetime | None
    updated_at: datetime
    remaining_s: float | None = None
    power_w: float | None = None
    energy_kwh: float | None = None
    temperature_c: float | None = None
    sessions: int | None = None
    filter_life_pct: float | None = None


class StateOut(Out):
    ts: datetime
    status: str
    faults: list[str]
    online: bool
    energy_kwh: float | None


class DeviceDetailOut(DeviceOut):
    history: list[StateOut] = Field(description="recent state changes, newest first")


class SampleOut(Out):
    ts: datetime
    value: float


class SeriesOut(Out):
    device_key: str
    measurement: str
    field: str
    samples: list[SampleOut] = Field(description="oldest first")


_CACHE = BoardCache(TypeAdapter(DeviceOut))


@router.get("", response_model=list[DeviceOut])
def list_devices(
    _user: Reader,
    session: SessionDep,
    building: Annotated[str | None, Query(max_length=64)] = None,
    room: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[
        str | None,
        Query(
            max_length=16,
            description="board status (free, running, finished, fault, offline, unknown) "
            "or the appliance's own status (idle, heating, ...)",
        ),
    ] = None,
) -> Response:
    """The status board, ordered by building, room and device.

    A campus board is thousands of rows: each is encoded once per change of its database row
    and served from the cache until it changes (gateway/api/board.py; the response model
    documents the rows, FastAPI would validate the list a second time).
    """

    def narrow(query: Select[Any]) -> Select[Any]:
        query = where_equal(
            query, (Device.building, building), (Device.room, room), (Device.kind, kind)
        )
        return query.order_by(Device.building, Device.room, Device.device_id)

    return Response(_CACHE.board(session, narrow, status), media_type="application/json")


# Registered before the detail route: "{device_key:path}" would otherwise swallow "/series".
@router.get("/{device_key:path}/series", response_model=SeriesOut)
def device_series(
    device_key: str,
    _user: Reader,
    services: ServicesDep,
    session: SessionDep,
    field: Annotated[
        str, Query(pattern=_FIELD_PATTERN, description="e.g. power_w, energy_kwh, remaining_s")
    ] = "power_w",
    measurement: Literal["appliance", "appliance_state"] = "appliance",
    since: Annotated[UtcDatetime | None, Query(description="default: 24 h ago")] = None,
    until: Annotated[UtcDatetime | None, Query(description="default: now")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> SeriesOut:
    """One field of one appliance over time, from the embedded time-series store."""
    if session.get(Device, device_key) is None:
        not_found(f"no device {device_key!r}")
    end = until or services.clock()
    start = since or _default_start(end)
    try:
        samples = services.series_reader.query(
            APPLIANCE if measurement == "appliance" else APPLIANCE_STATE,
            field,
            {},
            start,
            end,
            limit,
            series_key=device_key,
        )
    except Exception:  # the reader is an adapter: any failure is "store unavailable" here
        log.exception("time-series query for %s failed", device_key)
        unavailable("the time-series store is not available now; try again shortly")
    return SeriesOut(
        device_key=device_key,
        measurement=measurement,
        field=field,
        samples=[SampleOut(ts=ts, value=v) for ts, v in samples],
    )


@router.get("/{device_key:path}", response_model=DeviceDetailOut)
def get_device(
    device_key: str,
    _user: Reader,
    session: SessionDep,
    history: Annotated[int, Query(ge=0, le=1000, description="state changes to include")] = 50,
) -> DeviceDetailOut:
    """One appliance with its recent state history."""
    device = session.get(Device, device_key)
    if device is None:
        not_found(f"no device {device_key!r}")
    rows = session.scalars(
        select(DeviceStateRecord)
        .where(DeviceStateRecord.device_key == device_key)
        .order_by(DeviceStateRecord.ts.desc())
        .limit(history)
    )
    return DeviceDetailOut(
        **device_fields(device), history=[StateOut.model_validate(r) for r in rows]
    )
