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

from collections.abc import Mapping
from dataclasses import dataclass

from edge.devices.model import Firmware


@dataclass(frozen=True, slots=True)
class Layout:
    """One firmware's fixed topics for a device; `{t}` in them stands for the device's topic."""

    named: str  # the topic firmware_configs/ gives the device named `{t}`
    route_prefix: str  # what each of the device's subscribed topics starts with, before a '/'
    telemetry: tuple[str, ...]  # filters of the topics that carry readings
    availability: str  # retained birth and last will, with these two words
    online: str
    offline: str


LAYOUTS: Mapping[Firmware, Layout] = {
    Firmware.TASMOTA: Layout(
        "{t}", "tele/{t}", ("tele/{t}/SENSOR",), "tele/{t}/LWT", "Online", "Offline"
    ),
    Firmware.ESPHOME: Layout(
        "dorm-dev/{t}",
        "{t}",
        ("{t}/sensor/+/state", "{t}/binary_sensor/+/state"),
        "{t}/status",
        "online",
        "offline",
    ),
    Firmware.SHELLY: Layout("shelly-{t}", "{t}", ("{t}/status/+",), "{t}/online", "true", "false"),
}
# A device's vendor topics are its route prefix and at most this many segments more: ESPHome's
# `<component>/<object_id>/state`.
SEGMENTS_AFTER_PREFIX = 3


def configured_topic(firmware: Firmware, name: str) -> str:
    """The topic firmware_configs/ gives the device `name`: Tasmota %topic%, or the prefix."""
    return LAYOUTS[firmware].named.format(t=name)


@dataclass(frozen=True, slots=True)
class DeviceSource:
    """Where a device speaks: its firmware and its topic (Tasmota %topic%, or the prefix)."""

    device_id: str
    firmware: Firmware
    topic: str


def subscriptions(source: DeviceSource) -> list[str]:
    """The MQTT filters that carry this device's telemetry and availability."""
    layout = LAYOUTS[source.firmware]
    return [f.format(t=source.topic) for f in (*layout.telemetry, layout.availability)]


def route_prefix(source: DeviceSource) -> str:
    """What every topic the bridge subscribes to for this device starts with (before a '/')."""
    return LAYOUTS[source.firmware].route_prefix.format(t=source.topic)


@dataclass(frozen=True, slots=True)
class AvailabilityTopic:
    """Where a device says it is up or down (retained), and the words it says it with."""

    topic: str
    online: str
    offline: str


def availability(firmware: Firmware, topic: str) -> AvailabilityTopic:
    """The device's retained birth / last-will topic and payloads, as each firmware sends them."""
    layout = LAYOUTS[firmware]
    return AvailabilityTopic(layout.availability.format(t=topic), layout.online, layout.offline)


# ----------------------------------------------------------------------------- Tasmota

TASMOTA_TELEMETRY = "tele"
TASMOTA_STATUS = "stat"
TASMOTA_SENSOR = "SENSOR"
TASMOTA_LWT = "LWT"


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

ESPHOME_SENSOR = "sensor"
ESPHOME_BINARY_SENSOR = "binary_sensor"


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
