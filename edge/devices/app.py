"""Composition root of the device bridge."""

from __future__ import annotations

import gc
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


def start_bridge(config: DevicesConfig) -> DeviceBridge:
    """Build and start the bridge of a `dormguard devices` process, then freeze its start-up heap.

    The config, device entries, parameters and topics live as long as the process. Each reading
    replaces a device's state, and states outlive the young collections, so CPython runs full
    collections several times a second under load; frozen, the start-up objects (tens of
    thousands for 2,000 devices) are no longer walked by each of them.
    """
    bridge = build_bridge(config)
    bridge.start()
    gc.collect()  # nothing that is already garbage gets frozen
    gc.freeze()
    return bridge


def run_bridge(config: DevicesConfig) -> int:
    """Run the bridge until SIGINT/SIGTERM."""
    bridge = start_bridge(config)
    stop_on_signals(bridge.request_stop)
    log.info("device bridge %s watching %s devices", config.bridge_id, len(config.devices))
    try:
        bridge.wait()
    finally:
        bridge.stop()
    return 0
