"""Vendor telemetry -> canonical `Reading`: Tasmota, ESPHome and Shelly Gen2 (pure, no I/O).

`normalize` returns a Reading, None for a message that is known but carries nothing the bridge
uses (e.g. Shelly `status/sys`), and raises ValueError saying what is wrong with a malformed one.

It runs in two steps so the bridge can do the first one once per topic: `parser_for` works out
from the topic alone what a message means (a Tasmota SENSOR, an ESPHome power sensor, a last
will ...), and the parser it returns reads one payload. Payload checks are plain type and range
tests; the detailed error message is only built for a payload that fails them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

import orjson

from edge.devices import vendors
from edge.devices.model import Firmware, Reading
from edge.devices.vendors import DeviceSource

# ESPHome object ids the firmware_configs use, and the canonical field each one fills.
ESPHOME_SENSORS = {
    "power": "power_w",
    "energy": "energy_kwh",
    "voltage": "voltage_v",
    "current": "current_a",
    "temperature": "temperature_c",
    "boiler_temperature": "temperature_c",
    "drum_temperature": "temperature_c",
    "water_total": "water_l",
}
ESPHOME_BINARY = {"leak": "leak", "door": "door_open"}
SHELLY_METERS = ("switch:0", "pm1:0")
_MAX_POWER_W = 50_000.0
_LIMITS: dict[str, tuple[float, float]] = {
    "power_w": (-1, _MAX_POWER_W),
    "temperature_c": (-60, 400),
}
_DEFAULT_LIMITS = (0.0, 1e9)

Parser = Callable[[bytes, datetime], Reading | None]
"""Reads one payload of a known topic: (payload, at) -> Reading, None, or ValueError."""


def parser_for(source: DeviceSource, topic: str) -> Parser | None:
    """The parser for one of this device's topics; None when the topic carries nothing useful."""
    return _TOPIC_PARSERS[source.firmware](source, topic)


def normalize(source: DeviceSource, topic: str, payload: bytes, at: datetime) -> Reading | None:
    """One vendor message as a canonical reading (None: nothing to use; ValueError: malformed)."""
    parser = parser_for(source, topic)
    return None if parser is None else parser(payload, at)


# ----------------------------------------------------------------------------- checks


def _text(payload: bytes, topic: str) -> str:
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{topic}: payload is not UTF-8 text") from None


def _json_object(payload: bytes, topic: str) -> dict[str, Any]:
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        # orjson only speeds up the common case: whatever it refuses (NaN, huge integers,
        # UTF-16 ...) gets the standard library's reading, so the verdict and the reason do
        # not depend on which parser ran.
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError):
            raise ValueError(f"{topic}: payload is not valid JSON: {_preview(payload)}") from None
    if type(data) is not dict:
        raise ValueError(f"{topic}: expected a JSON object, got {type(data).__name__}")
    return data


def _preview(payload: bytes) -> str:
    text = payload[:64].decode("utf-8", errors="replace")
    return repr(text + ("..." if len(payload) > 64 else ""))


def _number(value: object, topic: str, label: str, low: float, high: float) -> float:
    """`value` as a float within [low, high]; ValueError naming topic and label otherwise."""
    kind = type(value)
    if (kind is float or kind is int) and low <= value <= high:  # type: ignore[operator]
        return float(value)  # type: ignore[arg-type]
    return _checked_number(value, f"{topic}: {label}" if label else topic, low, high)


def _checked_number(value: object, where: str, low: float, high: float) -> float:
    """The slow path of `_number`: int/float subclasses, and the reason for a bad value."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a number, got {value!r}"[:160])
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        raise ValueError(f"{where}: an integer beyond any float is outside {low}..{high}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise ValueError(f"{where}: {number} is outside {low}..{high}")
    return number


def _optional_number(
    data: dict[str, Any], key: str, topic: str, low: float, high: float
) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    return _number(value, topic, key, low, high)


def _online_word(text: str, topic: str, online: str, offline: str) -> bool:
    word = text.lower()
    if word == online:
        return True
    if word == offline:
        return False
    raise ValueError(f"{topic}: expected {online!r} or {offline!r}, got {text[:32]!r}")


def _availability(
    device_id: str, topic: str, online: str, offline: str, payload: bytes, at: datetime
) -> Reading:
    return Reading(
        device_id, at, online=_online_word(_text(payload, topic), topic, online, offline)
    )


def _availability_parser(source: DeviceSource, topic: str) -> Parser | None:
    """The parser of the device's last-will topic (words compared lower-cased); None if not it."""
    words = vendors.availability(source.firmware, source.topic)
    if topic != words.topic:
        return None
    return partial(
        _availability, source.device_id, topic, words.online.lower(), words.offline.lower()
    )


def _meter_reading(
    device_id: str,
    at: datetime,
    power: float | None,
    energy_kwh: float | None,
    voltage: float | None,
    current: float | None,
    temperature: float | None,
) -> Reading | None:
    """A reading of a meter's figures; None when the message carried none of them."""
    if (
        power is None
        and energy_kwh is None
        and voltage is None
        and current is None
        and temperature is None
    ):
        return None
    return Reading(device_id, at, power, energy_kwh, voltage, current, temperature)


# ----------------------------------------------------------------------------- Tasmota


def _tasmota_topic(source: DeviceSource, topic: str) -> Parser | None:
    if vendors.tasmota_name(source.topic, topic) == vendors.TASMOTA_SENSOR:
        return partial(_tasmota_sensor, source.device_id, topic)
    return _availability_parser(source, topic)


def _tasmota_sensor(device_id: str, topic: str, payload: bytes, at: datetime) -> Reading | None:
    data = _json_object(payload, topic)
    power = energy_kwh = voltage = current = temperature = None
    energy = data.get("ENERGY")
    if energy is not None:
        if type(energy) is not dict:
            raise ValueError(f"{topic}: ENERGY must be an object")
        raw = energy.get("Power")
        if raw is not None:
            if type(raw) is list:  # multi-channel plugs report one value per relay
                raw = sum(_number(p, topic, "ENERGY.Power", -1, _MAX_POWER_W) for p in raw)
            power = _number(raw, topic, "ENERGY.Power", -1, _MAX_POWER_W)
        raw = energy.get("Total")
        if raw is not None:
            energy_kwh = _number(raw, topic, "ENERGY.Total", 0, 1e9)
        raw = energy.get("Voltage")
        if raw is not None:
            voltage = _number(raw, topic, "ENERGY.Voltage", 0, 1000)
        raw = energy.get("Current")
        if raw is not None:
            if type(raw) is list:
                raw = sum(_number(c, topic, "ENERGY.Current", 0, 200) for c in raw)
            current = _number(raw, topic, "ENERGY.Current", 0, 200)
    for key, value in data.items():
        if isinstance(value, dict) and "Temperature" in value:
            temp = _number(value["Temperature"], topic, f"{key}.Temperature", -60, 400)
            temperature = (temp - 32) * 5 / 9 if data.get("TempUnit") == "F" else temp
            break
    return _meter_reading(device_id, at, power, energy_kwh, voltage, current, temperature)


# ----------------------------------------------------------------------------- ESPHome


def _esphome_topic(source: DeviceSource, topic: str) -> Parser | None:
    entity = vendors.esphome_entity(source.topic, topic)
    if entity is None:
        return _availability_parser(source, topic)
    component, object_id = entity
    if component == vendors.ESPHOME_SENSOR and object_id in ESPHOME_SENSORS:
        field_name = ESPHOME_SENSORS[object_id]
        low, high = _LIMITS.get(field_name, _DEFAULT_LIMITS)
        return partial(_esphome_sensor, source.device_id, topic, field_name, low, high)
    if component == vendors.ESPHOME_BINARY_SENSOR and object_id in ESPHOME_BINARY:
        return partial(_esphome_binary, source.device_id, topic, ESPHOME_BINARY[object_id])
    return None


def _esphome_sensor(
    device_id: str,
    topic: str,
    field_name: str,
    low: float,
    high: float,
    payload: bytes,
    at: datetime,
) -> Reading | None:
    text = _text(payload, topic)
    if text.lower() in ("nan", ""):  # ESPHome publishes NaN while a sensor has no value
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{topic}: expected a number, got {text[:32]!r}") from None
    number: dict[str, Any] = {field_name: _number(value, topic, "", low, high)}
    return Reading(device_id, at, **number)


def _esphome_binary(
    device_id: str, topic: str, field_name: str, payload: bytes, at: datetime
) -> Reading:
    state = _online_word(_text(payload, topic), topic, "on", "off")
    flag: dict[str, Any] = {field_name: state}
    return Reading(device_id, at, **flag)


# ----------------------------------------------------------------------------- Shelly Gen2


def _shelly_topic(source: DeviceSource, topic: str) -> Parser | None:
    component = vendors.shelly_component(source.topic, topic)
    if component is None:
        return _availability_parser(source, topic)
    if component not in SHELLY_METERS:
        return None
    return partial(_shelly_meter, source.device_id, topic)


def _shelly_meter(device_id: str, topic: str, payload: bytes, at: datetime) -> Reading | None:
    data = _json_object(payload, topic)
    power = _optional_number(data, "apower", topic, -1, _MAX_POWER_W)
    voltage = _optional_number(data, "voltage", topic, 0, 1000)
    current = _optional_number(data, "current", topic, 0, 200)
    energy_kwh = temperature = None
    aenergy = data.get("aenergy")
    if isinstance(aenergy, dict) and "total" in aenergy:
        energy_kwh = _number(aenergy["total"], topic, "aenergy.total", 0, 1e12) / 1000.0
    elif aenergy is not None:
        raise ValueError(f"{topic}: aenergy must be an object with 'total'")
    reported = data.get("temperature")
    if isinstance(reported, dict) and reported.get("tC") is not None:
        temperature = _number(reported["tC"], topic, "temperature.tC", -60, 400)
    return _meter_reading(device_id, at, power, energy_kwh, voltage, current, temperature)


_TOPIC_PARSERS: dict[Firmware, Callable[[DeviceSource, str], Parser | None]] = {
    Firmware.TASMOTA: _tasmota_topic,
    Firmware.ESPHOME: _esphome_topic,
    Firmware.SHELLY: _shelly_topic,
}
