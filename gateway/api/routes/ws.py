"""Live alerts over a WebSocket: a snapshot of open alerts, then every change as it happens.

Protocol (server -> client, JSON text frames)::

    {"type": "snapshot", "alerts": [AlertView, ...]}      once, right after connecting
    {"type": "alert", "alert": AlertView}                 every change the caller may see
    {"type": "ping", "at": "<ISO time>"}                  every ping interval

Browsers cannot set headers on a WebSocket, so the token comes as ``?token=`` (an
``Authorization: Bearer`` header works too). A bad token closes with 4401, a role that may not
read alerts with 4403, a client too slow to keep up with 4408 (reconnect: the snapshot catches
up). The client may send anything (e.g. pongs); it is read and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from gateway.alerting import AlertScope, Overflow
from gateway.api.auth import authenticate
from gateway.api.deps import CurrentUser, Role
from gateway.api.routes.alerts import scope_for
from gateway.db.schema import Person
from gateway.domain.alerts import AlertType
from gateway.services import Services

log = logging.getLogger(__name__)

router = APIRouter(tags=["alerts"])

READ_ROLES = frozenset({Role.ADMIN, Role.GUARD, Role.FACILITIES, Role.COUNSELLOR, Role.AUDITOR})
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4408


class _Visibility:
    """Whether a change message is in the caller's scope (counsellors: their students)."""

    def __init__(self, services: Services, scope: AlertScope) -> None:
        self._services = services
        self._scope = scope
        self._students: frozenset[str] = frozenset()

    def refresh(self) -> None:
        """Reload the counsellor's students (blocking: run in a worker thread)."""
        if self._scope.counsellor is None:
            return
        with self._services.sessions() as session:
            self._students = frozenset(
                session.scalars(
                    select(Person.person_id).where(Person.counsellor == self._scope.counsellor)
                )
            )

    def admits(self, alert: dict[str, Any]) -> bool:
        try:
            alert_type = AlertType(str(alert.get("type")))
        except ValueError:
            return False
        if not self._scope.admits_type(alert_type):
            return False
        if self._scope.counsellor is not None:
            return (alert.get("detail") or {}).get("person_id") in self._students
        return True


def _token(websocket: WebSocket) -> str | None:
    token = websocket.query_params.get("token")
    if token:
        return token
    header = websocket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


@router.websocket("/api/ws/alerts")
async def alerts_ws(websocket: WebSocket) -> None:
    """Live alert feed (see the module docstring for the protocol)."""
    services: Services = websocket.app.state.services
    ping_s: float = websocket.app.state.ws_ping_interval_s
    token = _token(websocket)
    user: CurrentUser | None = (
        await run_in_threadpool(authenticate, services, token) if token else None
    )
    await websocket.accept()
    if user is None:
        await websocket.close(CLOSE_UNAUTHORIZED, "invalid or expired token: log in again")
        return
    if user.role not in READ_ROLES:
        await websocket.close(CLOSE_FORBIDDEN, f"role {user.role.value!r} may not read alerts")
        return
    scope = scope_for(user)
    visibility = _Visibility(services, scope)
    bus = services.alerts.bus
    queue = bus.subscribe()  # before the snapshot, so no change falls between the two
    try:
        await run_in_threadpool(visibility.refresh)
        snapshot = await run_in_threadpool(services.alerts.list, state="open", scope=scope)
        await websocket.send_json(
            {"type": "snapshot", "alerts": [v.model_dump(mode="json") for v in snapshot]}
        )
        log.info("alert feed opened for %s (%s)", user.username, user.role.value)
        reader = asyncio.create_task(_drain(websocket))
        try:
            await _send_changes(websocket, services, queue, visibility, ping_s, reader)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
    except WebSocketDisconnect:
        pass
    finally:
        bus.unsubscribe(queue)
        log.info("alert feed closed for %s", user.username)


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, so a disconnect is noticed at once."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()


async def _send_changes(
    websocket: WebSocket,
    services: Services,
    queue: asyncio.Queue[dict[str, Any] | Overflow],
    visibility: _Visibility,
    ping_s: float,
    reader: asyncio.Task[None],
) -> None:
    while not reader.done():
        getter = asyncio.ensure_future(queue.get())
        done, _ = await asyncio.wait(
            {getter, reader}, timeout=ping_s, return_when="FIRST_COMPLETED"
        )
        if getter not in done:
            getter.cancel()
            if reader in done:
                return
            await run_in_threadpool(visibility.refresh)
            await websocket.send_json({"type": "ping", "at": services.clock().isoformat()})
            continue
        message = getter.result()
        if isinstance(message, Overflow):
            await websocket.close(CLOSE_TOO_SLOW, message.reason)
            return
        if visibility.admits(message["alert"]):
            await websocket.send_json(message)
