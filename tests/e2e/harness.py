"""A real gateway for browser tests: ingest on a real mosquitto, the API under uvicorn in a thread.

    gw = start_gateway(tmp_path, broker.port)       # build_gateway + start, users created
    server = LiveServer(create_app(gw.services), free_port()).start()
    ...                                             # drive it with Chromium
    server.stop(); server.start()                   # a gateway restart, same port
    server.stop(); gw.stop()

Also the browser launch (Debian's Chromium through Playwright) and MQTT helpers that publish
the contract's models on the contract's topics.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from contracts.models import AccessEvent, DeviceState, DoorEvent
from contracts.topics import (
    DeviceAddress,
    DeviceChannel,
    GateAddress,
    GateChannel,
    device_topic,
    gate_topic,
)
from gateway.app import Gateway, build_gateway
from gateway.auth.roles import Role
from gateway.config import GatewayConfig
from tests.gatekit import write_key
from tests.gatewaykit import PASSWORD, ensure_user
from tests.gatewayproc import Publisher
from tests.keys import signing_config

SITE = "campus"
BUILDINGS = ("b1", "b2")
GATES = (("b1", "g1", "in"), ("b1", "g2", "out"), ("b2", "g1", "in"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=user-gesture-required",
]
VIEWPORT = {"width": 1280, "height": 800}
PHONE_VIEWPORT = {"width": 390, "height": 844}  # a common phone, in CSS pixels

USERS = {
    "guard": Role.GUARD,
    "admin": Role.ADMIN,
    "facilities": Role.FACILITIES,
}


def username(role: Role) -> str:
    """The test user of a role (ensure_user's naming)."""
    return f"{role.value}-user"


def start_gateway(tmp: Path, broker_port: int) -> Gateway:
    """The real gateway (development mode) over SQLite files in ``tmp``, ingest subscribed.

    Face enrolment is configured (a fresh gallery key), so the console's consent and photo
    upload run against the real enrolment service and face engine.
    """
    write_key(tmp / "gallery.key")
    config = GatewayConfig.model_validate(
        {
            "site": SITE,
            "mode": "development",
            "mqtt": {"host": "127.0.0.1", "port": broker_port, "client_id": "gw-e2e"},
            "database": {"url": f"sqlite:///{tmp / 'gateway.db'}"},
            "timeseries": {"sqlite": {"path": str(tmp / "series.db")}},
            "api": {"host": "127.0.0.1", "port": 0},
            "buildings": [{"id": b} for b in BUILDINGS],
            "gates": [{"building": b, "id": g, "direction": d} for b, g, d in GATES],
            "enrolment": {"gallery_key": {"file": str(tmp / "gallery.key")}},
            "command_signing": signing_config(),
        }
    )
    gw = build_gateway(config)
    gw.start(wait_broker_s=10)
    if not gw.ingest.wait_ready(10):
        gw.stop()
        raise RuntimeError("the gateway did not subscribe to the broker")
    for role in USERS.values():
        ensure_user(gw.services, role)
    return gw


class LiveServer:
    """uvicorn serving one app on a fixed port in a thread; stop() and start() again at will."""

    def __init__(self, app: FastAPI, port: int) -> None:
        self.app = app
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> LiveServer:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            ws_ping_interval=20,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name=f"uvicorn-{self.port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.02)
        self._server, self._thread = server, thread
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("uvicorn did not stop")
        self._server = self._thread = None


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless (Playwright's own browser downloads are not used)."""
    if shutil.which(CHROMIUM) is None:
        raise RuntimeError(
            f"{CHROMIUM} is missing: install the Debian packages chromium and chromium-driver"
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# --- MQTT: what gates and device bridges publish ------------------------------------------------


@dataclass
class EdgePublisher:
    """Publishes contract messages on the contract's topics, as a gate or a bridge would."""

    publisher: Publisher

    def door(self, kind: str, building: str = "b1", gate: str = "g1", **extra: Any) -> DoorEvent:
        event = DoorEvent(
            producer=f"gate-{building}-{gate}",
            site=SITE,
            building=building,
            gate_id=gate,
            kind=kind,  # type: ignore[arg-type]
            **extra,
        )
        topic = gate_topic(GateAddress(SITE, building, gate), GateChannel.DOOR)
        self.publisher.publish(topic, event.to_bytes())
        return event

    def access(
        self,
        person_id: str | None,
        *,
        building: str = "b1",
        gate: str = "g1",
        direction: str = "in",
        decision: str = "granted",
        method: str = "card",
        reason: str = "granted",
        **extra: Any,
    ) -> AccessEvent:
        event = AccessEvent(
            producer=f"gate-{building}-{gate}",
            site=SITE,
            building=building,
            gate_id=gate,
            direction=direction,  # type: ignore[arg-type]
            decision=decision,  # type: ignore[arg-type]
            method=method,  # type: ignore[arg-type]
            person_id=person_id,
            reason=reason,
            **extra,
        )
        topic = gate_topic(GateAddress(SITE, building, gate), GateChannel.EVENT)
        self.publisher.publish(topic, event.to_bytes())
        return event

    def device(
        self,
        room: str,
        device_id: str,
        *,
        building: str = "b1",
        kind: str = "washer",
        status: str = "idle",
        **extra: Any,
    ) -> DeviceState:
        state = DeviceState(
            producer="bridge-e2e",
            site=SITE,
            building=building,
            room=room,
            device_id=device_id,
            kind=kind,  # type: ignore[arg-type]
            status=status,  # type: ignore[arg-type]
            **extra,
        )
        address = DeviceAddress(SITE, building, room, device_id)
        self.publisher.publish(device_topic(address, DeviceChannel.STATE), state.to_bytes())
        return state


def log_in(page: Any, base_url: str, role: Role) -> None:
    """Open the console and log in as the test user of ``role``."""
    page.goto(base_url + "/")
    page.fill("#login-username", username(role))
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#topbar:not([hidden])")


def log_in_as(page: Any, base_url: str, name: str, password: str) -> None:
    """Open the console and log in with a username and password (a student's issued code)."""
    page.goto(base_url + "/")
    page.fill("#login-username", name)
    page.fill("#login-password", password)
    page.click("#login-submit")
    page.wait_for_selector("#topbar:not([hidden])")


# --- students: made by an admin through the API, as the dormitory office does ------------------


def bearer(client: httpx.Client, name: str, password: str) -> dict[str, str]:
    """The Authorization header of a fresh login."""
    answer = client.post("/api/auth/login", json={"username": name, "password": password})
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def issue_student(client: httpx.Client, person_id: str, name: str, buildings: list[str]) -> str:
    """Add the person (as admin) and give them a student account; returns the sign-in code."""
    admin = bearer(client, username(Role.ADMIN), PASSWORD)
    person = {"person_id": person_id, "name": name, "buildings": buildings}
    client.post("/api/people", json=person, headers=admin).raise_for_status()
    answer = client.post(f"/api/people/{person_id}/student-account", headers=admin)
    answer.raise_for_status()
    issued = answer.json()
    assert issued["username"] == person_id
    return str(issued["code"])


def enrol_face(client: httpx.Client, person_id: str, photo: Path) -> None:
    """Record the person's written consent and enrol their face from one photo (as admin)."""
    admin = bearer(client, username(Role.ADMIN), PASSWORD)
    consent = {"granted": True, "evidence": "signed form in the dorm office"}
    client.post(f"/api/people/{person_id}/consent", json=consent, headers=admin).raise_for_status()
    with photo.open("rb") as handle:
        answer = client.post(
            f"/api/people/{person_id}/photos",
            files=[("files", (photo.name, handle, "image/jpeg"))],
            headers=admin,
            timeout=60,
        )
    answer.raise_for_status()
