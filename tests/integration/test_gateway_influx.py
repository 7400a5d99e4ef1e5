"""The gateway's InfluxDB path end to end: MQTT events -> gateway -> a real line-protocol server.

Rules: access events and edge health reach InfluxDB with low-cardinality tags; while the server
is down ingest goes on (events are stored in SQL at once) and the points wait in the on-disk
backlog, then arrive when it is back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.app import Gateway, build_gateway
from gateway.config import GatewayConfig
from gateway.db.schema import AccessRecord
from tests.broker import Broker
from tests.gatewayproc import (
    BUILDING,
    GATE,
    Publisher,
    access_event,
    event_topic,
    gateway_config,
    wait_until,
)
from tests.victoria import Victoria


def _gateway(tmp_path: Path, broker: Broker, victoria: Victoria) -> Gateway:
    token = tmp_path / "influx-token"
    token.write_text("dev-token-for-tests\n")
    raw = gateway_config(tmp_path, broker.port)
    raw["timeseries"]["influx"] = {
        "url": victoria.url,
        "org": "campus",
        "bucket": "dormguard",
        "token": {"file": str(token)},
        "backlog_path": str(tmp_path / "backlog.db"),
        "flush_interval_s": 0.2,
    }
    gw = build_gateway(GatewayConfig.model_validate(raw))
    gw.start(wait_broker_s=10)
    assert gw.ingest.wait_ready(10)
    return gw


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[Victoria]:
    server = Victoria(tmp_path / "vm")
    yield server
    server.stop()


def _stored(gw: Gateway) -> int:
    with gw.services.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(AccessRecord)) or 0)


def _access_samples(victoria: Victoria) -> int:
    try:
        series = victoria.samples('{__name__="access_count"}')
    except Exception:  # not up yet
        return 0
    return sum(len(values) for values in series.values())


def _events(n: int) -> list[tuple[str, bytes]]:
    """n events one second apart (InfluxDB keeps one sample per series and timestamp)."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    return [
        (event_topic(), access_event(i, ts=start + timedelta(seconds=i)).to_bytes())
        for i in range(1, n + 1)
    ]


def test_access_events_reach_influx_with_low_cardinality_tags(
    broker: Broker, tmp_path: Path, victoria: Victoria
) -> None:
    victoria.start()
    gw = _gateway(tmp_path, broker, victoria)
    pub = Publisher(broker.port, client_id="influx-pub")
    try:
        pub.publish_many(_events(20))
        wait_until(lambda: _access_samples(victoria) >= 20, 20, "20 access points in InfluxDB")
    finally:
        pub.stop()
        gw.stop()
    series = victoria.export('{__name__="access_count"}')
    labels = series[0]["metric"]
    assert labels["gate"] == GATE and labels["building"] == BUILDING
    assert "person_id" not in labels and "event_id" not in labels


def test_an_influx_outage_never_blocks_ingest_and_the_backlog_replays(
    broker: Broker, tmp_path: Path, victoria: Victoria
) -> None:
    gw = _gateway(tmp_path, broker, victoria)  # the server is not running yet
    pub = Publisher(broker.port, client_id="influx-pub2")
    try:
        pub.publish_many(_events(30))
        wait_until(lambda: _stored(gw) == 30, 10, "ingest to go on during the outage")
        wait_until(
            lambda: gw.services.series_writer.stats().backlog > 0, 10, "points in the backlog"
        )
        victoria.start()
        wait_until(lambda: _access_samples(victoria) >= 30, 40, "the backlog to replay")
        assert gw.services.series_writer.stats().backlog == 0
    finally:
        pub.stop()
        gw.stop()


def test_alert_lifecycle_events_reach_influx_for_the_alerts_dashboard(
    broker: Broker, tmp_path: Path, victoria: Victoria
) -> None:
    from contracts.topics import GateChannel
    from gateway.alerts.types import AlertType
    from tests.gatewayproc import door_event

    victoria.start()
    gw = _gateway(tmp_path, broker, victoria)
    pub = Publisher(broker.port, client_id="influx-pub3")
    try:
        pub.publish(event_topic(channel=GateChannel.DOOR), door_event("forced_open").to_bytes())
        wait_until(lambda: bool(gw.services.alerts.list()), 10, "the alert")
        (alert,) = gw.services.alerts.list()
        gw.services.alerts.acknowledge(alert.id, "guard-1")
        gw.services.alerts.clear(alert.id, "guard-1")

        def events() -> set[str]:
            try:
                series = victoria.export('{__name__="alert_count"}')
            except Exception:
                return set()
            return {s["metric"].get("event", "") for s in series}

        wait_until(lambda: events() == {"raised", "acknowledged", "cleared"}, 20, "3 events")
        (ack,) = victoria.export('{__name__="alert_ack_seconds"}')
    finally:
        pub.stop()
        gw.stop()
    assert ack["metric"]["type"] == AlertType.DOOR_FORCED_OPEN.value
    assert ack["metric"]["severity"] == "critical"
    assert 0 <= ack["values"][0] < 30
