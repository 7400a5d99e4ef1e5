"""Vendor payloads to canonical readings: Tasmota, ESPHome, Shelly Gen2 (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edge.devices.model import Firmware
from edge.devices.normalize import normalize
from edge.devices.vendors import DeviceSource, subscriptions

AT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
TASMOTA = DeviceSource("washer-1", Firmware.TASMOTA, "washer-r101-1")
ESPHOME = DeviceSource("water-1", Firmware.ESPHOME, "dorm-dev/water-r101-1")
SHELLY = DeviceSource("hd-1", Firmware.SHELLY, "shelly-hairdryer-r101-1")


def test_each_firmware_subscribes_to_its_telemetry_and_availability_topics() -> None:
    assert subscriptions(TASMOTA) == ["tele/washer-r101-1/SENSOR", "tele/washer-r101-1/LWT"]
    assert subscriptions(ESPHOME) == [
        "dorm-dev/water-r101-1/sensor/+/state",
        "dorm-dev/water-r101-1/binary_sensor/+/state",
        "dorm-dev/water-r101-1/status",
    ]
    assert subscriptions(SHELLY) == [
        "shelly-hairdryer-r101-1/status/+",
        "shelly-hairdryer-r101-1/online",
    ]


def test_tasmota_sensor_energy_and_ds18b20_become_one_reading() -> None:
    payload = (
        b'{"Time":"2026-11-29T10:00:00","ENERGY":{"Total":12.345,"Power":523,'
        b'"Voltage":229,"Current":2.356},"DS18B20":{"Id":"01","Temperature":87.5},"TempUnit":"C"}'
    )
    reading = normalize(TASMOTA, "tele/washer-r101-1/SENSOR", payload, AT)
    assert reading is not None
    assert (reading.power_w, reading.energy_kwh, reading.voltage_v, reading.current_a) == (
        523.0,
        12.345,
        229.0,
        2.356,
    )
    assert reading.temperature_c == 87.5
    assert reading.at == AT and reading.device_id == "washer-1"


def test_tasmota_fahrenheit_is_converted_and_multi_channel_power_summed() -> None:
    payload = b'{"ENERGY":{"Power":[100,50]},"SI7021":{"Temperature":212},"TempUnit":"F"}'
    reading = normalize(TASMOTA, "tele/washer-r101-1/SENSOR", payload, AT)
    assert reading is not None
    assert reading.power_w == 150.0
    assert reading.temperature_c == pytest.approx(100.0)


@pytest.mark.parametrize(("word", "online"), [(b"Online", True), (b"Offline", False)])
def test_tasmota_last_will_sets_online(word: bytes, online: bool) -> None:
    reading = normalize(TASMOTA, "tele/washer-r101-1/LWT", word, AT)
    assert reading is not None and reading.online is online


@pytest.mark.parametrize(
    ("topic", "payload", "field", "value"),
    [
        ("dorm-dev/water-r101-1/sensor/power/state", b"2004.5", "power_w", 2004.5),
        ("dorm-dev/water-r101-1/sensor/energy/state", b"3.2", "energy_kwh", 3.2),
        ("dorm-dev/water-r101-1/sensor/boiler_temperature/state", b"91.2", "temperature_c", 91.2),
        ("dorm-dev/water-r101-1/sensor/water_total/state", b"1520.5", "water_l", 1520.5),
        ("dorm-dev/water-r101-1/binary_sensor/leak/state", b"ON", "leak", True),
        ("dorm-dev/water-r101-1/binary_sensor/door/state", b"OFF", "door_open", False),
        ("dorm-dev/water-r101-1/status", b"offline", "online", False),
    ],
)
def test_esphome_state_topics_fill_one_field_each(
    topic: str, payload: bytes, field: str, value: object
) -> None:
    reading = normalize(ESPHOME, topic, payload, AT)
    assert reading is not None
    assert getattr(reading, field) == value


def test_shelly_switch_status_gives_power_energy_in_kwh_and_temperature() -> None:
    payload = (
        b'{"id":0,"source":"timer","output":true,"apower":1523.4,"voltage":229.1,"freq":50.0,'
        b'"current":6.61,"aenergy":{"total":12345.678,"by_minute":[1,2,3],"minute_ts":1764410400},'
        b'"temperature":{"tC":41.2,"tF":106.2}}'
    )
    reading = normalize(SHELLY, "shelly-hairdryer-r101-1/status/switch:0", payload, AT)
    assert reading is not None
    assert reading.power_w == 1523.4
    assert reading.energy_kwh == pytest.approx(12.345678)
    assert reading.temperature_c == 41.2
    assert reading.current_a == 6.61


@pytest.mark.parametrize(
    ("source", "topic", "payload"),
    [
        (TASMOTA, "tele/washer-r101-1/STATE", b'{"POWER":"ON"}'),
        (TASMOTA, "tele/washer-r101-1/SENSOR", b'{"Time":"2026-11-29T10:00:00"}'),
        (ESPHOME, "dorm-dev/water-r101-1/sensor/wifi_signal/state", b"-60"),
        (ESPHOME, "dorm-dev/water-r101-1/sensor/power/state", b"nan"),
        (SHELLY, "shelly-hairdryer-r101-1/status/sys", b'{"uptime":5}'),
    ],
)
def test_known_messages_without_useful_values_are_ignored_not_rejected(
    source: DeviceSource, topic: str, payload: bytes
) -> None:
    assert normalize(source, topic, payload, AT) is None


@pytest.mark.parametrize(
    ("source", "topic", "payload", "reason"),
    [
        (TASMOTA, "tele/washer-r101-1/SENSOR", b"{not json", "not valid JSON"),
        (TASMOTA, "tele/washer-r101-1/SENSOR", b"[1,2]", "expected a JSON object"),
        (TASMOTA, "tele/washer-r101-1/SENSOR", b'{"ENERGY":{"Power":"lots"}}', "ENERGY.Power"),
        (TASMOTA, "tele/washer-r101-1/SENSOR", b'{"ENERGY":{"Power":1e12}}', "outside"),
        (TASMOTA, "tele/washer-r101-1/SENSOR", b'{"ENERGY":{"Power":NaN}}', "ENERGY.Power"),
        (
            TASMOTA,
            "tele/washer-r101-1/SENSOR",
            b'{"ENERGY":{"Total":1%s}}' % (b"0" * 400),
            "outside",
        ),
        (TASMOTA, "tele/washer-r101-1/SENSOR", b'{"ENERGY":5}', "ENERGY must be an object"),
        (TASMOTA, "tele/washer-r101-1/LWT", b"Maybe", "expected 'online' or 'offline'"),
        (TASMOTA, "tele/washer-r101-1/SENSOR", b"\xff\xfe", "not valid JSON"),
        (ESPHOME, "dorm-dev/water-r101-1/sensor/power/state", b"abc", "expected a number"),
        (ESPHOME, "dorm-dev/water-r101-1/sensor/power/state", b"\xff", "not UTF-8"),
        (ESPHOME, "dorm-dev/water-r101-1/binary_sensor/leak/state", b"WET", "expected 'on'"),
        (SHELLY, "shelly-hairdryer-r101-1/status/switch:0", b'{"apower":true}', "apower"),
        (SHELLY, "shelly-hairdryer-r101-1/status/switch:0", b'{"aenergy":7}', "aenergy"),
        (SHELLY, "shelly-hairdryer-r101-1/online", b"yes", "expected 'true' or 'false'"),
    ],
)
def test_malformed_payloads_raise_value_error_naming_topic_and_problem(
    source: DeviceSource, topic: str, payload: bytes, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason) as info:
        normalize(source, topic, payload, AT)
    assert topic.split("/")[0] in str(info.value)


@pytest.mark.parametrize(
    "payload",
    [
        b'\xef\xbb\xbf{"ENERGY":{"Power":523}}',  # UTF-8 byte order mark
        '{"ENERGY":{"Power":523}}'.encode("utf-16"),
    ],
)
def test_json_the_fast_parser_refuses_is_read_as_the_standard_library_reads_it(
    payload: bytes,
) -> None:
    """orjson only speeds up the common case; what it refuses falls back, same verdict."""
    reading = normalize(TASMOTA, "tele/washer-r101-1/SENSOR", payload, AT)
    assert reading is not None and reading.power_w == 523.0
