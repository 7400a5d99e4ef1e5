"""Vendor MQTT topic layouts: the one place Tasmota, ESPHome and Shelly Gen2 topics are spelled.

A device's `topic` is what the bridge config names it: the Tasmota %topic%, or the ESPHome /
Shelly topic prefix. With it, each firmware publishes (firmware_configs/README.md):

* Tasmota (FullTopic left at ``%prefix%/%topic%/``): ``tele/<topic>/SENSOR``, the retained last
  will ``tele/<topic>/LWT`` (``Online`` / ``Offline``), and ``stat/<topic>/...``.
* ESPHome: ``<prefix>/<component>/<object_id>/state`` for each sensor and binary sensor, and the
  retained birth / will ``<prefix>/status`` (``online`` / ``offline``).
* Shelly Gen2: ``<prefix>/status/<component>`` (``switch:0``, ``pm1:0`` ...) and the retained
  ``<prefix>/online`` (``true`` / ``false``).

The bridge's optional Home Assistant discovery configs go to
``<discovery_prefix>/<component>/<node_id>/<object_id>/config``.

Builders and parsers here are pure; the dormguard topics (``dorm/<site>/...``) are
contracts/topics.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.devices.model import Firmware

TASMOTA_TELEMETRY = "tele"
TASMOTA_STATUS = "stat"
TASMOTA_SENSOR = "SENSOR"
TASMOTA_LWT = "LWT"
ESPHOME_SENSOR = "sensor"
ESPHOME_BINARY_SENSOR = "binary_sensor"
# A device's vendor topics are its route prefix (below) and at most this many segments more:
# ESPHome's `<component>/<object_id>/state`.
SEGMENTS_AFTER_PREFIX = 3


@dataclass(frozen=True, slots=True)
class DeviceSource:
    """Where a device speaks: its firmware and its topic (Tasmota %topic%, or the prefix)."""

    device_id: str
    firmware: Firmware
    topic: str


@dataclass(frozen=True, slots=True)
class AvailabilityTopic:
    """Where a device says it is up or down (retained), and the words it says it with."""

    topic: str
    online: str
    offline: str


def configured_topic(firmware: Firmware, name: str) -> str:
    """The topic firmware_configs/ gives the device `name`: Tasmota %topic%, or the prefix."""
    if firmware is Firmware.TASMOTA:
        return name
    if firmware is Firmware.ESPHOME:
        return f"dorm-dev/{name}"
    return f"shelly-{name}"


def availability(firmware: Firmware, topic: str) -> AvailabilityTopic:
    """The device's retained birth / last-will topic and payloads, as each firmware sends them."""
    if firmware is Firmware.TASMOTA:
        return AvailabilityTopic(tasmota_topic(topic, TASMOTA_LWT), "Online", "Offline")
    if firmware is Firmware.ESPHOME:
        return AvailabilityTopic(f"{topic}/status", "online", "offline")
    return AvailabilityTopic(f"{topic}/online", "true", "false")


def subscriptions(source: DeviceSource) -> list[str]:
    """The MQTT filters that carry this device's telemetry and availability."""
    t = source.topic
    if source.firmware is Firmware.TASMOTA:
        return [tasmota_topic(t, TASMOTA_SENSOR), tasmota_topic(t, TASMOTA_LWT)]
    if source.firmware is Firmware.ESPHOME:
        return [
            esphome_state_topic(t, ESPHOME_SENSOR, "+"),
            esphome_state_topic(t, ESPHOME_BINARY_SENSOR, "+"),
            availability(Firmware.ESPHOME, t).topic,
        ]
    return [shelly_status_topic(t, "+"), availability(Firmware.SHELLY, t).topic]


def route_prefix(source: DeviceSource) -> str:
    """What every topic the bridge subscribes to for this device starts with (before a '/')."""
    if source.firmware is Firmware.TASMOTA:
        return f"{TASMOTA_TELEMETRY}/{source.topic}"
    return source.topic


# ----------------------------------------------------------------------------- Tasmota


def tasmota_topic(topic: str, name: str, prefix: str = TASMOTA_TELEMETRY) -> str:
    """`<prefix>/<topic>/<name>`, e.g. `tele/<topic>/SENSOR` or `stat/<topic>/POWER`."""
    return f"{prefix}/{topic}/{name}"


def tasmota_name(topic: str, message_topic: str, prefix: str = TASMOTA_TELEMETRY) -> str | None:
    """`SENSOR` of `tele/<topic>/SENSOR`; None for a topic outside `<prefix>/<topic>/`."""
    base = f"{prefix}/{topic}/"
    if not message_topic.startswith(base):
        return None
    name = message_topic[len(base) :]
    return name if name and "/" not in name else None


# ----------------------------------------------------------------------------- ESPHome


def esphome_state_topic(prefix: str, component: str, object_id: str) -> str:
    """`<prefix>/<component>/<object_id>/state`: one entity's state."""
    return f"{prefix}/{component}/{object_id}/state"


def esphome_entity(prefix: str, message_topic: str) -> tuple[str, str] | None:
    """(component, object id) of an entity's state topic under `prefix`; None otherwise."""
    start = prefix + "/"
    if not message_topic.startswith(start):
        return None
    rest = message_topic[len(start) :].split("/")
    if len(rest) != 3 or rest[2] != "state":
        return None
    return rest[0], rest[1]


# ----------------------------------------------------------------------------- Shelly Gen2


def shelly_status_topic(prefix: str, component: str) -> str:
    """`<prefix>/status/<component>`: the status notification of one component."""
    return f"{prefix}/status/{component}"


def shelly_component(prefix: str, message_topic: str) -> str | None:
    """`pm1:0` of `<prefix>/status/pm1:0`; None for a topic that is no status notification."""
    start = shelly_status_topic(prefix, "")
    return message_topic[len(start) :] if message_topic.startswith(start) else None


# ----------------------------------------------------------------------------- Home Assistant


def home_assistant_config_topic(
    discovery_prefix: str, component: str, node_id: str, object_id: str
) -> str:
    """`<discovery_prefix>/<component>/<node_id>/<object_id>/config`: one discovery config."""
    return f"{discovery_prefix}/{component}/{node_id}/{object_id}/config"
