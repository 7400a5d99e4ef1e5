"""Composition root of the device bridge."""

from __future__ import annotations

import logging

from contracts.topics import BridgeChannel, bridge_topic
from edge.devices.bridge import DeviceBridge
from edge.devices.config import DevicesConfig
from edge.mqtt import availability_link
from edge.runtime import stop_on_signals

log = logging.getLogger(__name__)


def build_bridge(config: DevicesConfig) -> DeviceBridge:
    """Wire a DeviceBridge to a real MQTT link with the bridge's retained last will."""
    link = availability_link(
        config.mqtt,
        default_client_id=f"bridge-{config.site}-{config.bridge_id}",
        topic=bridge_topic(config.site, config.bridge_id, BridgeChannel.AVAILABILITY),
        producer=config.producer_id,
    )
    return DeviceBridge(config, link)


def run_bridge(config: DevicesConfig) -> int:
    """Run the bridge until SIGINT/SIGTERM."""
    bridge = build_bridge(config)

    stop_on_signals(bridge.request_stop)
    bridge.start()
    log.info("device bridge %s watching %s devices", config.bridge_id, len(config.devices))
    try:
        bridge.wait()
    finally:
        bridge.stop()
    return 0
