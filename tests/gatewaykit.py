"""Builders for gateway tests: Services over a real SQLite file, users per role, test rows.

    services = make_services(tmp_path)           # migrated SQLite + started series store
    client = TestClient(create_app(services))
    headers = login(client, Role.GUARD)          # creates the user on first use
    ...
    close_services(services)

Everything is real (SQLite files, argon2, the SqliteSeriesStore); only the clock is a
``FakeClock`` that tests move by hand.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.alerts.service import AlertService
from gateway.alerts.types import AlertType, Severity, Signal
from gateway.audit import chain_head, seal
from gateway.auth.roles import Role
from gateway.auth.users import create_user
from gateway.commands import CommandService
from gateway.config import GatewayConfig
from gateway.db import migrate, open_engine, session_factory
from gateway.db.schema import (
    AccessRecord,
    DeadLetter,
    Device,
    DeviceStateRecord,
    Gate,
    Person,
    Presence,
    User,
)
from gateway.notify.outbox import Outbox
from gateway.ports import Publisher
from gateway.services import Services
from gateway.timeseries.sqlite_store import SqliteSeriesStore
from tests.keys import TEST_SIGNER, signing_config

SITE = "campus"
PASSWORD = "Tr0ub4dor&3-horse-staple"  # long enough and no placeholder, in every mode
ALL_ROLES: tuple[Role, ...] = tuple(Role)


class FakeClock:
    """A settable UTC clock: ``clock()`` is now, ``clock.advance(s)`` moves it on."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2025, 3, 1, 22, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def make_config(mode: str = "development", **overrides: Any) -> GatewayConfig:
    """A gateway config for site 'campus' with buildings b1, b2 and their gates."""
    data: dict[str, Any] = {
        "site": SITE,
        "mode": mode,
        "buildings": [{"id": "b1", "name": "North"}, {"id": "b2", "name": "South"}],
        "gates": [
            {"building": "b1", "id": "east", "direction": "in"},
            {"building": "b1", "id": "west", "direction": "out"},
            {"building": "b2", "id": "main", "direction": "in"},
        ],
        "command_signing": signing_config(),
    }
    data.update(overrides)
    return GatewayConfig.model_validate(data)


def make_services(
    tmp_path: Path,
    *,
    mode: str = "development",
    clock: FakeClock | None = None,
    publisher: Publisher | None = None,
    config: GatewayConfig | None = None,
) -> Services:
    """Services over tmp_path/gateway.db (migrated) and a started tmp_path/series.db store.

    The configured gates get rows; ``services.clock`` is a FakeClock; ``services.commands``
    publishes through ``publisher`` (None: commands answer 503).
    """
    config = config or make_config(mode)
    clock = clock or FakeClock()
    engine = open_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    migrate(engine)
    sessions = session_factory(engine)
    store = SqliteSeriesStore(tmp_path / "series.db", flush_interval_s=0.05, clock=clock)
    store.start()
    services = Services(
        config=config,
        engine=engine,
        sessions=sessions,
        clock=clock,
        alerts=AlertService(
            sessions, clock, config.escalation, in_transaction=Outbox(config.notifications)
        ),
        series_writer=store,
        series_reader=store,
        local_series=store,
        publisher=publisher,
    )
    services.commands = CommandService(sessions, clock, publisher, TEST_SIGNER)
    with sessions.begin() as session:
        for gate in config.gates:
            session.add(
                Gate(
                    gate_key=f"{SITE}/{gate.building}/{gate.id}",
                    site=SITE,
                    building=gate.building,
                    gate_id=gate.id,
                    direction=gate.direction,
                    name=gate.name,
                )
            )
    return services


def minimal_gateway_yaml(tmp_path: Path) -> Path:
    """A gateway config of site 'campus' over tmp_path/gateway.db (the CLI commands' target)."""
    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": "campus",
                "command_signing": signing_config(),
                "database": {"url": f"sqlite:///{tmp_path / 'gateway.db'}"},
            }
        )
    )
    return config


def close_services(services: Services) -> None:
    """Stop the series store and release the database."""
    services.series_writer.close()
    services.engine.dispose()


@contextmanager
def gateway_client(tmp_path: Path, **kwargs: Any) -> Iterator[tuple[TestClient, Services]]:
    """A TestClient over fresh services (closed afterwards); kwargs go to make_services."""
    from gateway.api import create_app

    ping = kwargs.pop("ws_ping_interval_s", 20.0)
    services = make_services(tmp_path, **kwargs)
    try:
        with TestClient(create_app(services, ws_ping_interval_s=ping)) as client:
            yield client, services
    finally:
        close_services(services)


def clock_of(services: Services) -> FakeClock:
    """The FakeClock make_services installed."""
    assert isinstance(services.clock, FakeClock)
    return services.clock


# --- users ------------------------------------------------------------------------------------


def ensure_user(services: Services, role: Role, username: str | None = None) -> str:
    """Create a user of that role (named after it) unless it exists; returns the username."""
    name = username or f"{role.value}-user"
    with services.sessions.begin() as session:
        if session.scalar(select(User.id).where(User.username == name)) is not None:
            return name
        person_id = None
        if role is Role.STUDENT:  # a student account is a person's own: make the person too
            person_id = name
            if session.get(Person, name) is None:
                session.add(student_person(name, services.clock()))
        create_user(
            session,
            name,
            PASSWORD,
            role.value,
            mode=services.config.mode,
            now=services.clock(),
            person_id=person_id,
        )
    return name


def student_person(person_id: str, now: datetime, buildings: tuple[str, ...] = ("b1",)) -> Person:
    """A people row for a student of ``buildings`` (no face, no card)."""
    return Person.new(person_id, now, name=f"Student {person_id}", buildings=list(buildings))


def token(client: TestClient, role: Role, username: str | None = None) -> str:
    """A fresh login token for a user of that role (created on first use)."""
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    name = ensure_user(services, role, username)
    response = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    value: str = response.json()["token"]
    return value


def login(client: TestClient, role: Role, username: str | None = None) -> dict[str, str]:
    """Authorization headers of a logged-in user of that role."""
    return {"Authorization": f"Bearer {token(client, role, username)}"}


# --- rows and signals ---------------------------------------------------------------------------


def signal(
    alert_type: AlertType = AlertType.DOOR_FORCED_OPEN,
    originator: str = f"gate:{SITE}/b1/east",
    *,
    action: str = "raise",
    building: str = "b1",
    severity: Severity | None = None,
    title: str = "door forced open at b1/east",
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Signal:
    """A rule signal with sensible defaults (at defaults to 2025-03-01 22:00 UTC)."""
    return Signal(
        action,  # type: ignore[arg-type]
        alert_type,
        originator,
        SITE,
        building,
        severity or Severity.CRITICAL,
        title,
        detail or {},
        at or datetime(2025, 3, 1, 22, 0, tzinfo=UTC),
    )


def add_person(services: Services, person_id: str, **fields: Any) -> None:
    """A row in people (active student of b1 unless fields say otherwise)."""
    values: dict[str, Any] = {"name": person_id.title(), "buildings": ["b1"], **fields}
    with services.sessions.begin() as session:
        session.add(Person.new(person_id, services.clock(), **values))


def add_access(
    services: Services,
    *,
    ts: datetime,
    person_id: str | None = "s1",
    building: str = "b1",
    gate_id: str = "east",
    direction: str = "in",
    decision: str = "granted",
    method: str = "face",
    reason: str = "granted",
) -> None:
    """One access-log row, sealed into the hash chain like the ingest does."""
    with services.sessions.begin() as session:
        row = AccessRecord(
            event_id=uuid.uuid4().hex,
            ts=ts,
            received_at=ts,
            site=SITE,
            building=building,
            gate_id=gate_id,
            direction=direction,
            decision=decision,
            method=method,
            person_id=person_id,
            reason=reason,
            flags=[],
            faces_in_view=1 if method == "face" else 0,
        )
        seal(row, chain_head(session))
        session.add(row)


def add_presence(
    services: Services,
    person_id: str,
    building: str = "b1",
    *,
    inside: bool = True,
    since: datetime,
    gate_id: str = "east",
    irregular: bool = False,
) -> None:
    """Where one person is."""
    with services.sessions.begin() as session:
        session.merge(
            Presence(
                person_id=person_id,
                building=building,
                inside=inside,
                since=since,
                gate_id=gate_id,
                irregular=irregular,
            )
        )


def add_device(
    services: Services,
    room: str,
    device_id: str,
    *,
    building: str = "b1",
    kind: str = "washer",
    status: str = "idle",
    faults: list[str] | None = None,
    online: bool = True,
    state: dict[str, Any] | None = None,
    history: Sequence[tuple[datetime, str]] = (),
) -> str:
    """A devices row with optional state history; returns the device key."""
    key = f"{SITE}/{building}/{room}/{device_id}"
    now = services.clock()
    with services.sessions.begin() as session:
        session.add(
            Device(
                device_key=key,
                site=SITE,
                building=building,
                room=room,
                device_id=device_id,
                kind=kind,
                status=status,
                faults=faults or [],
                online=online,
                since=now,
                updated_at=now,
                state=state or {},
            )
        )
        for ts, hist_status in history:
            session.add(
                DeviceStateRecord(
                    event_id=uuid.uuid4().hex,
                    device_key=key,
                    ts=ts,
                    status=hist_status,
                    faults=[],
                    online=True,
                )
            )
    return key


def add_dead_letter(services: Services, topic: str, payload: bytes, reason: str) -> None:
    """A refused message as the ingest keeps it."""
    with services.sessions.begin() as session:
        session.add(
            DeadLetter(
                received_at=services.clock(),
                topic=topic,
                payload=payload[: 64 * 1024],
                payload_size=len(payload),
                reason=reason,
            )
        )
