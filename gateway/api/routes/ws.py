"""Live alerts over a WebSocket: a snapshot of open alerts, then every change as it happens.

Protocol (JSON text frames)::

    client: {"type": "auth", "token": "<login token>"}    first, within api.ws_auth_timeout_s
    server: {"type": "snapshot", "alerts": [AlertView, ...]}   once, right after that
    server: {"type": "alert", "alert": AlertView}          every change the caller may see
    server: {"type": "ping", "at": "<ISO time>"}           every ping interval

Browsers cannot set headers on a WebSocket and a token in the URL ends up in proxy and access
logs, so the client connects without one and sends it in its first frame. Non-browser clients
may send ``Authorization: Bearer <token>`` instead (then no auth frame). ``?token=`` is refused
unless ``api.ws_token_in_url`` turns it back on for old clients. No auth frame in time, a
malformed one or a bad token close with 4401, a role that may not read alerts with 4403, a
client too slow to keep up with 4408 (reconnect: the snapshot catches up). After the auth frame
the client may send anything (e.g. pongs); it is read and ignored. Tokens are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from gateway.alerts.bus import AlertBus, Overflow
from gateway.alerts.scope import AlertScope
from gateway.alerts.types import AlertType
from gateway.api.routes.alerts import scope_for
from gateway.auth.roles import CurrentUser, Role
from gateway.auth.tokens import authenticate
from gateway.db.schema import Person
from gateway.services import Services

log = logging.getLogger(__name__)

router = APIRouter(tags=["alerts"])

READ_ROLES = frozenset({Role.ADMIN, Role.GUARD, Role.FACILITIES, Role.COUNSELLOR, Role.AUDITOR})
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4408
MAX_TOKEN_LENGTH = 512  # login tokens are 43 characters; anything far longer is not one
AUTH_FRAME_EXPECTED = 'send {"type": "auth", "token": "..."} as the first message'


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


def parse_auth_message(raw: str | None) -> str | None:
    """The token of an auth frame ``{"type": "auth", "token": "..."}``; None if it is not one."""
    if raw is None:
        return None
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("type") != "auth":
        return None
    token = message.get("token")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return token


def _bearer_token(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def _first_frame_token(websocket: WebSocket, timeout_s: float) -> str | None:
    """The token of the client's first frame; None once the socket is closed (or gone)."""
    try:
        message = await asyncio.wait_for(websocket.receive(), timeout_s)
    except TimeoutError:
        await websocket.close(CLOSE_UNAUTHORIZED, f"no auth message within {timeout_s:g} s")
        return None
    if message["type"] == "websocket.disconnect":
        return None
    token = parse_auth_message(message.get("text"))
    if token is None:  # the frame is not echoed or logged: it may hold a token
        await websocket.close(CLOSE_UNAUTHORIZED, AUTH_FRAME_EXPECTED)
    return token


async def authenticated(
    websocket: WebSocket,
    services: Services,
    roles: frozenset[Role] = READ_ROLES,
    what: str = "read alerts",
) -> CurrentUser | None:
    """Accept the socket and find its caller (one of ``roles``); None once it is closed with
    the reason."""
    settings = services.config.api
    in_url = "token" in websocket.query_params
    peer = websocket.client.host if websocket.client else "?"
    await websocket.accept()
    if in_url and not settings.ws_token_in_url:
        log.info("alert feed refused: token in the URL from %s (api.ws_token_in_url is off)", peer)
        await websocket.close(
            CLOSE_UNAUTHORIZED, "token in the URL refused: " + AUTH_FRAME_EXPECTED
        )
        return None
    if in_url:
        log.info("alert feed: token in the URL from %s (api.ws_token_in_url is on)", peer)
        token = websocket.query_params["token"] or None
    else:
        token = _bearer_token(websocket)
        if token is None:
            token = await _first_frame_token(websocket, settings.ws_auth_timeout_s)
            if token is None:
                return None
    user = await run_in_threadpool(authenticate, services, token) if token else None
    if user is None:
        await websocket.close(CLOSE_UNAUTHORIZED, "invalid or expired token: log in again")
        return None
    if user.role not in roles:
        await websocket.close(CLOSE_FORBIDDEN, f"role {user.role.value!r} may not {what}")
        return None
    return user


@router.websocket("/api/ws/alerts")
async def alerts_ws(websocket: WebSocket) -> None:
    """Live alert feed (see the module docstring for the protocol)."""
    services: Services = websocket.app.state.services
    ping_s: float = websocket.app.state.ws_ping_interval_s
    try:
        user = await authenticated(websocket, services)
    except WebSocketDisconnect:
        return
    if user is None:
        return
    scope = scope_for(user)
    visibility = _Visibility(services, scope)

    async def snapshot() -> None:
        await run_in_threadpool(visibility.refresh)
        alerts = await run_in_threadpool(services.alerts.list, state="open", scope=scope)
        await websocket.send_json(
            {"type": "snapshot", "alerts": [v.model_dump(mode="json") for v in alerts]}
        )
        log.info("alert feed opened for %s (%s)", user.username, user.role.value)

    async def on_change(message: dict[str, Any]) -> None:
        if visibility.admits(message["alert"]):
            await websocket.send_json(message)

    async def on_idle() -> None:
        await run_in_threadpool(visibility.refresh)
        await websocket.send_json({"type": "ping", "at": services.clock().isoformat()})

    await serve_feed(websocket, services.alerts.bus, ping_s, snapshot, on_change, on_idle)
    log.info("alert feed closed for %s", user.username)


Handler = Callable[[], Awaitable[None]]


async def serve_feed(
    websocket: WebSocket,
    bus: AlertBus,
    ping_s: float,
    snapshot: Handler,
    on_change: Callable[[dict[str, Any]], Awaitable[None]],
    on_idle: Handler,
) -> None:
    """Run one live feed: subscribe, send the snapshot, then each change the bus carries and,
    every ``ping_s`` without one, whatever ``on_idle`` sends; until the client goes or falls
    too far behind (closed 4408)."""
    queue = bus.subscribe()  # before the snapshot, so no change falls between the two
    try:
        await snapshot()
        reader = asyncio.create_task(drain(websocket))
        try:
            while not reader.done():
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {getter, reader}, timeout=ping_s, return_when="FIRST_COMPLETED"
                )
                if getter not in done:
                    getter.cancel()
                    if reader not in done:
                        await on_idle()
                    continue
                message = getter.result()
                if isinstance(message, Overflow):
                    await websocket.close(CLOSE_TOO_SLOW, message.reason)
                    return
                await on_change(message)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
    except WebSocketDisconnect:
        pass
    finally:
        bus.unsubscribe(queue)


async def drain(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, so a disconnect is noticed at once."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()
