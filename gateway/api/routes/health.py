"""Liveness for load balancers (public, says nothing) and a detailed report for operators."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from gateway.alerts.evaluator import evaluator_status
from gateway.api.common import Out
from gateway.api.deps import ServicesDep, require
from gateway.attributes import from_attributes
from gateway.auth.roles import CurrentUser, Role
from gateway.db import schema_is_current
from gateway.services import Services

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

Operator = Annotated[CurrentUser, require(Role.AUDITOR)]

HealthStatus = Literal["ok", "degraded"]


class PublicHealth(BaseModel):
    status: HealthStatus


class DatabaseHealth(Out):
    ok: bool
    schema_current: bool
    error: str = ""


class SeriesHealth(Out):
    healthy: bool
    written: int
    pending: int
    backlog: int
    dropped: int
    rejected: int
    errors: int
    last_error: str


class IngestHealth(Out):
    connected: bool
    received: int
    stored: int
    duplicates: int
    dead_letters: int
    alerts_raised: int


class RulesHealth(Out):
    evaluation: Literal["inline", "elected"]
    evaluating: bool  # whether this replica runs the rules now
    evaluator: str | None = None  # elected: the client id of the replica that does
    backlog: int = 0  # elected: journal rows not evaluated yet
    behind_s: float = 0.0  # elected: age of the oldest of them


class DetailedHealth(Out):
    status: HealthStatus
    mode: str
    site: str
    database: DatabaseHealth
    ingest: IngestHealth
    series: SeriesHealth
    rules: RulesHealth
    commands_available: bool


def rules_health(services: Services) -> RulesHealth:
    """Inline rules run here; elected ones wherever the database says (None: unreadable)."""
    config = services.config
    if not config.elected_rules:
        return RulesHealth(evaluation="inline", evaluating=True)
    try:
        with services.sessions() as session:
            status = evaluator_status(session, services.clock())
    except Exception as exc:  # the database section reports the outage itself
        log.warning("health check: rule journal not readable: %s", type(exc).__name__)
        return RulesHealth(evaluation="elected", evaluating=False)
    return RulesHealth(
        evaluation="elected",
        evaluating=status.holder == config.client_id,
        evaluator=status.holder,
        backlog=status.backlog,
        behind_s=round(status.behind_s, 3),
    )


def _database(services: Services) -> DatabaseHealth:
    try:
        with services.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return DatabaseHealth(ok=True, schema_current=schema_is_current(services.engine))
    except Exception as exc:  # any driver error means "database not usable"
        log.warning("health check: database not reachable: %s", type(exc).__name__)
        return DatabaseHealth(ok=False, schema_current=False, error=type(exc).__name__)


def _series(services: Services) -> SeriesHealth:
    return SeriesHealth(**asdict(services.series_writer.stats()))


def _overall(db: DatabaseHealth, connected: bool, series: SeriesHealth) -> HealthStatus:
    return "ok" if db.ok and db.schema_current and connected and series.healthy else "degraded"


@router.get("/healthz", response_model=PublicHealth)
def healthz(services: ServicesDep) -> PublicHealth:
    """'ok' or 'degraded' and nothing else (no login: for load balancers and probes)."""
    db = _database(services)
    return PublicHealth(status=_overall(db, services.ingest_connected(), _series(services)))


@router.get("/api/health", response_model=DetailedHealth)
def health(_user: Operator, services: ServicesDep) -> DetailedHealth:
    """Database, MQTT ingest and time-series writer state."""
    db = _database(services)
    series = _series(services)
    connected = services.ingest_connected()
    return DetailedHealth(
        status=_overall(db, connected, series),
        mode=services.config.mode,
        site=services.config.site,
        database=db,
        ingest=from_attributes(IngestHealth, services.counters, connected=connected),
        series=series,
        rules=rules_health(services),
        commands_available=services.commands is not None,
    )
