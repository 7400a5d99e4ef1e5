"""Prometheus metrics, read from the services at scrape time (admins and auditors).

Each app gets its own CollectorRegistry (never the process-global one), so several apps in one
process (tests, replicas) do not collide.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.api.deps import require_or_scrape_token
from gateway.api.routes.health import rules_health
from gateway.auth.roles import CurrentUser, Role
from gateway.services import Services

log = logging.getLogger(__name__)

router = APIRouter(tags=["metrics"])

Operator = Annotated[CurrentUser, require_or_scrape_token(Role.AUDITOR)]


class GatewayCollector(Collector):
    """Ingest counters, open alerts, time-series writer state and live subscribers."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        s = self._services
        c = s.counters
        for name, value, help_text in (
            ("received", c.received, "MQTT messages handed to the ingest pipeline"),
            ("stored", c.stored, "messages stored"),
            ("duplicates", c.duplicates, "redeliveries dropped by event id"),
            ("dead_letters", c.dead_letters, "messages refused and kept as dead letters"),
        ):
            yield CounterMetricFamily(f"dormguard_ingest_{name}", help_text, value=value)
        yield CounterMetricFamily(
            "dormguard_alerts_raised", "alerts raised by the rules", value=c.alerts_raised
        )
        yield GaugeMetricFamily(
            "dormguard_ingest_connected",
            "1 while the MQTT ingest is connected to the broker",
            value=1 if s.ingest_connected() else 0,
        )
        try:
            stats = s.alerts.stats()
        except Exception:  # a scrape must not fail because the database hiccups
            log.exception("metrics: reading alert counts failed")
        else:
            open_alerts = GaugeMetricFamily(
                "dormguard_alerts_open", "open alerts by severity", labels=["severity"]
            )
            for severity, n in sorted(stats.open_by_severity.items()):
                open_alerts.add_metric([severity.name.lower()], n)
            yield open_alerts
            yield GaugeMetricFamily(
                "dormguard_alerts_unacknowledged",
                "open alerts nobody acknowledged",
                value=stats.unacknowledged,
            )
        if s.config.elected_rules:
            rules = rules_health(s)
            yield GaugeMetricFamily(
                "dormguard_rule_evaluator",
                "1 while this replica evaluates the alert rules (elected)",
                value=int(rules.evaluating),
            )
            yield GaugeMetricFamily(
                "dormguard_rule_journal_backlog",
                "rule journal rows not evaluated yet",
                value=rules.backlog,
            )
            yield GaugeMetricFamily(
                "dormguard_rule_journal_behind_seconds",
                "age of the oldest rule journal row not evaluated yet",
                value=rules.behind_s,
            )
        w = s.series_writer.stats()
        yield GaugeMetricFamily(
            "dormguard_series_backlog", "points parked on disk until the sink is back", w.backlog
        )
        yield GaugeMetricFamily("dormguard_series_pending", "points queued in memory", w.pending)
        yield CounterMetricFamily("dormguard_series_written", "points stored", value=w.written)
        yield CounterMetricFamily(
            "dormguard_series_dropped", "points lost at a full queue or backlog", value=w.dropped
        )
        yield CounterMetricFamily(
            "dormguard_series_errors", "failed time-series write attempts", value=w.errors
        )
        yield GaugeMetricFamily(
            "dormguard_series_healthy", "1 while the time-series writer is healthy", int(w.healthy)
        )
        yield GaugeMetricFamily(
            "dormguard_alert_subscribers",
            "live alert WebSocket clients",
            value=s.alerts.bus.subscribers,
        )


def build_registry(services: Services) -> CollectorRegistry:
    """A registry of its own for one app."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(services))
    return registry


@router.get("/metrics", response_class=Response)
def metrics(_user: Operator, request: Request) -> Response:
    """Prometheus text exposition format (scrape with a bearer token)."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
