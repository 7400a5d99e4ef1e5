"""The student page's live feed: their building's appliances and their fired watches.

Protocol (JSON text frames), authenticated as /api/ws/alerts is (first frame
``{"type": "auth", "token": "..."}``), for the ``student`` role only::

    server: {"type": "snapshot", "devices": [DeviceOut, ...], "watches": [WatchOut, ...]}
    server: {"type": "device", "device": DeviceOut}        an appliance of their buildings changed
    server: {"type": "notice", "watch_id": 1, "watch_kind": "finished", "title": "...",
             "device": {...}, "at": "..."}                 one of their watches fired
    server: {"type": "ping", "at": "<ISO time>"}           every ping interval

Changes stored by this replica arrive at once; at every ping the feed also re-reads the
database, so what another replica stored (a watch it fired, a machine it saw change) reaches
the page within one ping interval, and a notice is never sent twice.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from gateway.api.routes.devices import DeviceOut
from gateway.api.routes.student import own_person, rooms_of, watch_list, watched
from gateway.api.routes.ws import authenticated, serve_feed
from gateway.auth.roles import CurrentUser, Role
from gateway.db.schema import Device
from gateway.notify.messages import watch_message
from gateway.services import Services
from gateway.students.watches import device_place

log = logging.getLogger(__name__)

router = APIRouter(tags=["student"])

STUDENT_ROLES = frozenset({Role.STUDENT})


class _Feed:
    """One student's view: their buildings, and the watches already told to the page."""

    def __init__(self, services: Services, user: CurrentUser, started: datetime) -> None:
        self._services = services
        self._user = user
        self.person_id = user.person_id or ""
        self.buildings: frozenset[str] = frozenset()
        self.told: set[int] = set()
        self._since = started

    def snapshot(self) -> dict[str, Any]:
        """Rooms and watches as they are (blocking: run in a worker thread)."""
        with self._services.sessions() as session:
            person = own_person(session, self._user)
            self.buildings = frozenset(person.buildings)
            devices = rooms_of(session, sorted(self.buildings))
            watches = watch_list(session, self.person_id, self._services.clock())
        return {
            "type": "snapshot",
            "devices": [d.model_dump(mode="json") for d in devices],
            "watches": [w.model_dump(mode="json") for w in watches],
        }

    def missed_notices(self) -> list[dict[str, Any]]:
        """Watches fired (by any replica) since the feed opened and not yet told."""
        out = []
        with self._services.sessions() as session:
            for watch in watched(session, self.person_id, self._since):
                if watch.id in self.told or watch.fired_at is None:
                    continue
                self.told.add(watch.id)
                device = session.get(Device, watch.fired_device_key or "")
                where = device_place(device) if device is not None else {}
                title = (
                    watch_message(watch.kind, self.person_id, watch.id, where, watch.fired_at).title
                    if where
                    else ""
                )
                out.append(
                    {
                        "type": "notice",
                        "watch_id": watch.id,
                        "watch_kind": watch.kind,
                        "title": title,
                        "device": where or {"device_key": watch.fired_device_key or ""},
                        "at": watch.fired_at.isoformat(),
                    }
                )
        return out

    def relevant(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """The message to send this student, or None when it is not theirs."""
        if message.get("type") == "device":
            device = message["device"]
            if device.get("building") not in self.buildings:
                return None
            return {"type": "device", "device": DeviceOut(**device).model_dump(mode="json")}
        if message.get("type") == "notice" and message.get("person_id") == self.person_id:
            if message["watch_id"] in self.told:
                return None
            self.told.add(message["watch_id"])
            return {k: v for k, v in message.items() if k != "person_id"}
        return None


@router.websocket("/api/ws/student")
async def student_ws(websocket: WebSocket) -> None:
    """Live feed of the student page (see the module docstring for the protocol)."""
    services: Services = websocket.app.state.services
    ping_s: float = websocket.app.state.ws_ping_interval_s
    try:
        user = await authenticated(
            websocket, services, STUDENT_ROLES, "open the student feed (students only)"
        )
    except WebSocketDisconnect:
        return
    if user is None:
        return
    feed = _Feed(services, user, services.clock())

    async def snapshot() -> None:
        await websocket.send_json(await run_in_threadpool(feed.snapshot))

    async def on_change(message: dict[str, Any]) -> None:
        out = feed.relevant(message)
        if out is not None:
            await websocket.send_json(out)

    async def on_idle() -> None:
        # Catch up with what other replicas stored, then ping.
        await snapshot()
        for notice in await run_in_threadpool(feed.missed_notices):
            await websocket.send_json(notice)
        await websocket.send_json({"type": "ping", "at": services.clock().isoformat()})

    await serve_feed(websocket, services.student_bus, ping_s, snapshot, on_change, on_idle)
