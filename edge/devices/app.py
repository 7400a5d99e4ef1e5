"""Composition root of the device bridge."""

from __future__ import annotations

import logging
import signal
from types import FrameType

from contracts.models import Availability, utc_now
from contracts.topics import BridgeChannel, bridge_topic
from edge.devices.bridge import DeviceBridge
from edge.devices.config import DevicesConfig
from edge.mqtt import MqttLink, Will

log = logging.getLogger(__name__)


def build_bridge(config: DevicesConfig) -> DeviceBridge:
    """Wire a DeviceBridge to a real MQTT link with the bridge's retained last will."""
    producer = config.producer_id
    will = Will(
        bridge_topic(config.site, config.bridge_id, BridgeChannel.AVAILABILITY),
        Availability(producer=producer, state="offline").to_bytes(),
        Availability(producer=producer, state="online", ts=utc_now()).to_bytes(),
    )
    password = config.mqtt.password.read() if config.mqtt.password else None
    link = MqttLink(
        config.mqtt,
        client_id=config.mqtt.client_id or f"bridge-{config.site}-{config.bridge_id}",
        will=will,
        password=password,
    )
    return DeviceBridge(config, link)


def run_bridge(config: DevicesConfig) -> int:
    """Run the bridge until SIGINT/SIGTERM."""
    bridge = build_bridge(config)

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        bridge.request_stop()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    bridge.start()
    log.info("device bridge %s watching %s devices", config.bridge_id, len(config.devices))
    try:
        bridge.wait()
    finally:
        bridge.stop()
    return 0
