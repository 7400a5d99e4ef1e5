"""What the gateway's parts share at run time, built once by the composition root (gateway.app).

The API (gateway.api.create_app) and the MQTT ingest (gateway.ingest) both receive a
``Services``; tests build one over a real SQLite file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerts.bus import AlertBus
from gateway.config import GatewayConfig
from gateway.ports import Clock, Counters, Publisher

if TYPE_CHECKING:
    from gateway.alerts.service import AlertService
    from gateway.commands import CommandService
    from gateway.enrolment.service import EnrolmentService
    from gateway.enrolment.wrong_match import WrongMatchService
    from gateway.timeseries.base import TimeSeriesReader, TimeSeriesWriter


@dataclass
class Services:
    config: GatewayConfig
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Clock
    alerts: AlertService
    series_writer: TimeSeriesWriter
    series_reader: TimeSeriesReader
    # This gateway's own embedded store, for points no other writer should get twice: the
    # appliance states another replica stored (None: series_writer only).
    local_series: TimeSeriesWriter | None = None
    publisher: Publisher | None = None
    enrolment: EnrolmentService | None = None
    commands: CommandService | None = None
    wrong_match: WrongMatchService | None = None  # with enrolment (docs/decisions/0014)
    counters: Counters = field(default_factory=Counters)
    ingest_connected: Callable[[], bool] = lambda: False
    metrics_token: str | None = None  # Prometheus' scrape token (api.metrics_token)
    # The student pages' live feed: appliance changes and fired watches, after each commit.
    student_bus: AlertBus = field(default_factory=lambda: AlertBus(queue_size=4096))
