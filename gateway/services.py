"""What the gateway's parts share at run time, built once by the composition root (gateway.app).

The API (gateway.api.create_app) and the MQTT ingest (gateway.ingest) both receive a
``Services``; tests build one over a real SQLite file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.config import GatewayConfig

if TYPE_CHECKING:
    from gateway.alerting import AlertService
    from gateway.commands import CommandService
    from gateway.enrolment.service import EnrolmentService
    from gateway.timeseries.base import TimeSeriesReader, TimeSeriesWriter

Clock = Callable[[], datetime]


class Publisher(Protocol):
    """Sends a message to the broker (gateway -> edge: commands, gallery updates).

    Raises ConnectionError when the broker cannot take it now; the caller reports that.
    """

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish one message and wait until the broker has it (QoS 1 PUBACK)."""
        ...


@dataclass
class Counters:
    """Monotonic counters for /metrics (thread-safe increments)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    alerts_raised: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        """Increase one counter by n."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)


@dataclass
class Services:
    config: GatewayConfig
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Clock
    alerts: AlertService
    series_writer: TimeSeriesWriter
    series_reader: TimeSeriesReader
    publisher: Publisher | None = None
    enrolment: EnrolmentService | None = None
    commands: CommandService | None = None
    counters: Counters = field(default_factory=Counters)
    ingest_connected: Callable[[], bool] = lambda: False
    metrics_token: str | None = None  # Prometheus' scrape token (api.metrics_token)
