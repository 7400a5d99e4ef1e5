"""The gateway part of `dormguard demo`: embedded SQLite, the API and console, demo logins."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from gateway.app import Gateway, build_gateway
from gateway.config import GatewayConfig
from gateway.db.schema import AccessRecord, AlertRow, Device, Person
from gateway.students.accounts import issue_student_account

DEMO_ROLES = ("admin", "guard", "facilities")
"""The demo's logins, one per role and named after it; passwords are new on every run."""


@dataclass(frozen=True, slots=True)
class DemoLogin:
    username: str
    password: str
    role: str


def new_demo_logins(
    password: Callable[[], str] = lambda: secrets.token_urlsafe(12),
) -> tuple[DemoLogin, ...]:
    """One login per demo role, each with a fresh random password (16 URL-safe characters)."""
    return tuple(DemoLogin(role, password(), role) for role in DEMO_ROLES)


def _api_port(preferred: int = 8080) -> int:
    """The preferred port if it is free on loopback, else any free one."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free TCP port on 127.0.0.1")


@dataclass
class DemoGateway:
    gateway: Gateway
    url: str
    logins: tuple[DemoLogin, ...]
    student_logins: tuple[DemoLogin, ...]
    _server: object
    _thread: threading.Thread

    def counts(self) -> dict[str, int]:
        """What the gateway stored: access events, alerts raised, appliances known."""
        with self.gateway.services.sessions() as s:
            return {
                "stored_access_events": int(
                    s.scalar(select(func.count()).select_from(AccessRecord)) or 0
                ),
                "alerts": int(s.scalar(select(func.count()).select_from(AlertRow)) or 0),
                "devices_known": int(s.scalar(select(func.count()).select_from(Device)) or 0),
            }

    def alert_types(self) -> list[str]:
        """The distinct alert types raised so far."""
        with self.gateway.services.sessions() as s:
            return sorted(set(s.scalars(select(AlertRow.type))))

    def stop(self) -> None:
        """Stop the API, then ingest (acknowledging what is stored)."""
        self._server.should_exit = True  # type: ignore[attr-defined]
        self._thread.join(10)
        self.gateway.stop()


def start_demo_gateway(
    workdir: Path,
    mqtt: dict[str, Any],
    signing_key: Path,
    *,
    site: str,
    building: str,
    gate_id: str,
    students: Sequence[tuple[str, str]] = (),
) -> DemoGateway:
    """Start a development-mode gateway on SQLite files in ``workdir`` with its API and console.

    ``mqtt`` is its broker section (its own account), ``signing_key`` the key file its commands
    and galleries are signed with. ``students`` (student id, name) get a people row in
    ``building`` and a student-page account with a one-time code (``student_logins``).

    The logins (``DemoGateway.logins``) get new random passwords on every call: a demo left
    running on a shared machine cannot be opened with a password published anywhere.
    """
    import uvicorn

    from gateway.api import create_app
    from gateway.auth.users import create_user

    port = _api_port()
    config = GatewayConfig.model_validate(
        {
            "site": site,
            "mode": "development",
            "mqtt": {**mqtt, "client_id": "demo-gateway"},
            "command_signing": {"private_key": {"file": str(signing_key)}},
            "database": {"url": f"sqlite:///{workdir / 'gateway.db'}"},
            "timeseries": {"sqlite": {"path": str(workdir / "series.db")}},
            "api": {"host": "127.0.0.1", "port": port},
            "buildings": [{"id": building, "name": "Building 1 / 1号楼"}],
            "gates": [{"building": building, "id": gate_id, "direction": "in"}],
            # The stranger passes every ~10 s: two unknown faces within a minute is an alert.
            "rules": {"unknown_face_count": 2, "unknown_face_window_s": 60},
        }
    )
    gw = build_gateway(config)
    gw.start(wait_broker_s=10)
    logins = new_demo_logins()
    with gw.services.sessions.begin() as session:
        for login in logins:
            create_user(session, login.username, login.password, login.role, mode="development")
    student_logins = _demo_students(gw, students, building)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(gw.services),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            proxy_headers=False,  # the login throttle keys on the real client address
        )
    )
    thread = threading.Thread(target=server.run, name="demo-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        gw.stop()
        raise RuntimeError(f"the demo's API did not start on port {port}")
    return DemoGateway(gw, f"http://127.0.0.1:{port}/", logins, student_logins, server, thread)


def _demo_students(
    gw: Gateway, students: Sequence[tuple[str, str]], building: str
) -> tuple[DemoLogin, ...]:
    """People rows and student-page accounts for the demo's students."""
    issued = []
    now = gw.services.clock()
    with gw.services.sessions.begin() as session:
        for person_id, name in students:
            person = Person.new(person_id, now, name=name, buildings=[building])
            session.add(person)
            session.flush()
            account = issue_student_account(session, person, mode="development", now=now)
            issued.append(DemoLogin(account.username, account.code, "student"))
    return tuple(issued)
