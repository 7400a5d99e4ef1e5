"""Vendor topic layouts (edge/devices/vendors.py): builders, parsers, subscriptions and last wills
agree with each other, with firmware_configs/README.md and with the broker ACL template."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from paho.mqtt.client import topic_matches_sub

from edge.devices import vendors
from edge.devices.model import Firmware
from edge.devices.vendors import DeviceSource

REPO = Path(__file__).resolve().parents[2]
FIRMWARE_README = REPO / "firmware_configs" / "README.md"
ACL_TEMPLATE = REPO / "deploy" / "mosquitto" / "acl.template"
NAME = "washer-r101-1"
README_FIRMWARE = {"Tasmota": Firmware.TASMOTA, "ESPHome": Firmware.ESPHOME}
README_FIRMWARE["Shelly Gen2"] = Firmware.SHELLY


def source_of(firmware: Firmware, name: str = NAME) -> DeviceSource:
    return DeviceSource(name, firmware, vendors.configured_topic(firmware, name))


def published_topics(source: DeviceSource) -> list[str]:
    """One topic of each kind the device publishes readings on (from the builders), then its
    last will."""
    t = source.topic
    if source.firmware is Firmware.TASMOTA:
        readings = [vendors.tasmota_topic(t, vendors.TASMOTA_SENSOR)]
    elif source.firmware is Firmware.ESPHOME:
        readings = [
            vendors.esphome_state_topic(t, vendors.ESPHOME_SENSOR, "power"),
            vendors.esphome_state_topic(t, vendors.ESPHOME_BINARY_SENSOR, "leak"),
        ]
    else:
        readings = [vendors.shelly_status_topic(t, c) for c in ("pm1:0", "switch:0")]
    return [*readings, vendors.availability(source.firmware, t).topic]


SOURCES = [source_of(f) for f in Firmware]
each_source = pytest.mark.parametrize("source", SOURCES, ids=[s.firmware.value for s in SOURCES])


def test_the_bridge_config_topics_are_the_firmware_configs_naming() -> None:
    assert [s.topic for s in SOURCES] == [
        "washer-r101-1",
        "dorm-dev/washer-r101-1",
        "shelly-washer-r101-1",
    ]


@each_source
def test_subscriptions_carry_every_built_topic_and_the_last_will_as_it_is(
    source: DeviceSource,
) -> None:
    filters = vendors.subscriptions(source)
    published = published_topics(source)
    for topic in published:
        assert any(topic_matches_sub(f, topic) for f in filters), topic
    assert filters[-1] == published[-1]


@each_source
def test_every_subscription_is_the_route_prefix_and_at_most_three_segments(
    source: DeviceSource,
) -> None:
    """The bridge finds a message's device by cutting 1 to 3 segments off its topic."""
    prefix = vendors.route_prefix(source)
    for topic_filter in vendors.subscriptions(source):
        assert topic_filter.startswith(prefix + "/"), topic_filter
        rest = topic_filter[len(prefix) + 1 :].split("/")
        assert 1 <= len(rest) <= vendors.SEGMENTS_AFTER_PREFIX, topic_filter


def test_parsers_read_back_what_the_builders_build() -> None:
    t, p = "washer-r101-1", "dorm-dev/washer-r101-1"
    assert vendors.tasmota_name(t, vendors.tasmota_topic(t, "SENSOR")) == "SENSOR"
    stat = vendors.tasmota_topic(t, "POWER", vendors.TASMOTA_STATUS)
    assert stat == "stat/washer-r101-1/POWER"
    assert vendors.tasmota_name(t, stat, vendors.TASMOTA_STATUS) == "POWER"
    assert vendors.esphome_entity(p, vendors.esphome_state_topic(p, "sensor", "power")) == (
        "sensor",
        "power",
    )
    assert vendors.shelly_component(p, vendors.shelly_status_topic(p, "pm1:0")) == "pm1:0"


@pytest.mark.parametrize(
    "topic",
    ["stat/washer-r101-1/POWER", "tele/washer-r101-10/SENSOR", "tele/washer-r101-1/a/b"],
)
def test_tasmota_parser_ignores_other_prefixes_devices_and_depths(topic: str) -> None:
    assert vendors.tasmota_name("washer-r101-1", topic) is None


@pytest.mark.parametrize(
    "topic",
    [
        "dorm-dev/washer-r101-1/status",
        "dorm-dev/washer-r101-1/sensor/power",
        "dorm-dev/washer-r101-1/sensor/power/state/x",
        "dorm-dev/washer-r101-10/sensor/power/state",
    ],
)
def test_esphome_parser_reads_only_entity_states_of_its_prefix(topic: str) -> None:
    assert vendors.esphome_entity("dorm-dev/washer-r101-1", topic) is None


@pytest.mark.parametrize("topic", ["shelly-x/online", "shelly-xy/status/pm1:0", "shelly-x/rpc"])
def test_shelly_parser_reads_only_status_notifications_of_its_prefix(topic: str) -> None:
    assert vendors.shelly_component("shelly-x", topic) is None


# ----------------------------------------------------------------------------- the docs


def readme_rows(header: str) -> list[list[str]]:
    """The body rows of the README table whose header row starts with `header`."""
    lines = FIRMWARE_README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def backticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_readme_topic_table_is_the_configured_naming() -> None:
    rows = readme_rows("| Type | Tasmota `topic` |")
    assert len(rows) == 4
    for row in rows:
        tasmota, esphome, shelly = (backticked(cell)[0] for cell in row[1:])
        assert [vendors.configured_topic(f, tasmota) for f in Firmware] == [
            tasmota,
            esphome,
            shelly,
        ]


def test_readme_subscription_table_is_the_layouts() -> None:
    rows = readme_rows("| Firmware | Subscriptions")
    assert [row[0] for row in rows] == list(README_FIRMWARE)
    for label, subscribed, payloads in rows:
        firmware = README_FIRMWARE[label]
        assert backticked(subscribed) == vendors.subscriptions(DeviceSource("d", firmware, "T"))
        words = vendors.availability(firmware, "T")
        assert f"`{words.online}` / `{words.offline}`" in payloads


# ----------------------------------------------------------------------------- the broker ACL


def acl_blocks() -> dict[str, list[str]]:
    """`#@ name` block -> its ACL lines (notes left out), from deploy/mosquitto/acl.template."""
    blocks: dict[str, list[str]] = {}
    lines: list[str] = []
    for raw in ACL_TEMPLATE.read_text(encoding="utf-8").splitlines():
        if raw.startswith("#@ "):
            lines = blocks.setdefault(raw[3:].strip(), [])
        elif raw.strip() and not raw.startswith("#"):
            lines.append(raw.strip())
    return blocks


def acl_allows(block: list[str], access: str, topic: str, device_topic: str) -> bool:
    """Whether a `topic read|write|readwrite <filter>` line of the block lets `topic` through."""
    rules = [line.replace("{topic}", device_topic).split() for line in block]
    return any(
        kind in (access, "readwrite") and topic_matches_sub(allowed, topic)
        for _, kind, allowed in (r for r in rules if r[0] == "topic")
    )


@each_source
def test_acl_lets_the_device_publish_and_the_bridge_read_its_layout(source: DeviceSource) -> None:
    blocks = acl_blocks()
    firmware = source.firmware.value
    for topic in published_topics(source):
        assert acl_allows(blocks[f"device.{firmware}"], "write", topic, source.topic), topic
        assert acl_allows(blocks[f"bridge.{firmware}"], "read", topic, source.topic), topic
