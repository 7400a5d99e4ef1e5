"""Vendor telemetry -> canonical `Reading`: Tasmota, ESPHome and Shelly Gen2 (pure, no I/O).

`normalize` returns a Reading, None for a message that is known but carries nothing the bridge
uses (e.g. Shelly `status/sys`), and raises ValueError saying what is wrong with a malformed one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edge.devices.model import Firmware, Reading

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


@dataclass(frozen=True, slots=True)
class DeviceSource:
    """Where a device speaks: its firmware and its topic (Tasmota %topic%, or the prefix)."""

    device_id: str
    firmware: Firmware
    topic: str


def subscriptions(source: DeviceSource) -> list[str]:
    """The MQTT filters that carry this device's telemetry and availability."""
    t = source.topic
    if source.firmware is Firmware.TASMOTA:
        return [f"tele/{t}/SENSOR", f"tele/{t}/LWT"]
    if source.firmware is Firmware.ESPHOME:
        return [f"{t}/sensor/+/state", f"{t}/binary_sensor/+/state", f"{t}/status"]
    return [f"{t}/status/+", f"{t}/online"]


def normalize(source: DeviceSource, topic: str, payload: bytes, at: datetime) -> Reading | None:
    """One vendor message as a canonical reading (None: nothing to use; ValueError: malformed)."""
    handler = _HANDLERS[source.firmware]
    return handler(source, topic, payload, at)


def _text(payload: bytes, topic: str) -> str:
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{topic}: payload is not UTF-8 text") from None


def _json_object(payload: bytes, topic: str) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        raise ValueError(f"{topic}: payload is not valid JSON: {_preview(payload)}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{topic}: expected a JSON object, got {type(data).__name__}")
    return data


def _preview(payload: bytes) -> str:
    text = payload[:64].decode("utf-8", errors="replace")
    return repr(text + ("..." if len(payload) > 64 else ""))


def _number(value: object, where: str, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a number, got {value!r}"[:160])
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise ValueError(f"{where}: {number} is outside {low}..{high}")
    return number


def _optional_number(
    data: dict[str, Any], key: str, where: str, *, low: float, high: float
) -> float | None:
    if key not in data or data[key] is None:
        return None
    return _number(data[key], f"{where}.{key}", low=low, high=high)


def _online_word(text: str, topic: str, online: str, offline: str) -> bool:
    word = text.lower()
    if word == online:
        return True
    if word == offline:
        return False
    raise ValueError(f"{topic}: expected {online!r} or {offline!r}, got {text[:32]!r}")


# ----------------------------------------------------------------------------- Tasmota


def _tasmota(source: DeviceSource, topic: str, payload: bytes, at: datetime) -> Reading | None:
    base = f"tele/{source.topic}/"
    if topic == base + "LWT":
        return Reading(
            source.device_id,
            at,
            online=_online_word(_text(payload, topic), topic, "online", "offline"),
        )
    if topic != base + "SENSOR":
        return None
    data = _json_object(payload, topic)
    energy = data.get("ENERGY")
    fields: dict[str, Any] = {}
    if energy is not None:
        if not isinstance(energy, dict):
            raise ValueError(f"{topic}: ENERGY must be an object")
        where = f"{topic}: ENERGY"
        power = energy.get("Power")
        if isinstance(power, list):  # multi-channel plugs report one value per relay
            power = sum(_number(p, f"{where}.Power", low=-1, high=_MAX_POWER_W) for p in power)
        if power is not None:
            fields["power_w"] = _number(power, f"{where}.Power", low=-1, high=_MAX_POWER_W)
        fields["energy_kwh"] = _optional_number(energy, "Total", where, low=0, high=1e9)
        fields["voltage_v"] = _optional_number(energy, "Voltage", where, low=0, high=1000)
        current = energy.get("Current")
        if isinstance(current, list):
            current = sum(_number(c, f"{where}.Current", low=0, high=200) for c in current)
        if current is not None:
            fields["current_a"] = _number(current, f"{where}.Current", low=0, high=200)
    fahrenheit = data.get("TempUnit") == "F"
    for key, value in data.items():
        if isinstance(value, dict) and "Temperature" in value:
            temp = _number(value["Temperature"], f"{topic}: {key}.Temperature", low=-60, high=400)
            fields["temperature_c"] = (temp - 32) * 5 / 9 if fahrenheit else temp
            break
    fields = {k: v for k, v in fields.items() if v is not None}
    if not fields:
        return None
    return Reading(source.device_id, at, **fields)


# ----------------------------------------------------------------------------- ESPHome


def _esphome(source: DeviceSource, topic: str, payload: bytes, at: datetime) -> Reading | None:
    prefix = source.topic + "/"
    if topic == prefix + "status":
        return Reading(
            source.device_id,
            at,
            online=_online_word(_text(payload, topic), topic, "online", "offline"),
        )
    rest = topic[len(prefix) :].split("/") if topic.startswith(prefix) else []
    if len(rest) != 3 or rest[2] != "state":
        return None
    component, object_id = rest[0], rest[1]
    text = _text(payload, topic)
    if component == "sensor" and object_id in ESPHOME_SENSORS:
        if text.lower() in ("nan", ""):  # ESPHome publishes NaN while a sensor has no value
            return None
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{topic}: expected a number, got {text[:32]!r}") from None
        field_name = ESPHOME_SENSORS[object_id]
        limits = {"power_w": (-1, _MAX_POWER_W), "temperature_c": (-60, 400)}
        low, high = limits.get(field_name, (0, 1e9))
        number: dict[str, Any] = {field_name: _number(value, topic, low=low, high=high)}
        return Reading(source.device_id, at, **number)
    if component == "binary_sensor" and object_id in ESPHOME_BINARY:
        state = _online_word(text, topic, "on", "off")
        return Reading(source.device_id, at, **{ESPHOME_BINARY[object_id]: state})
    return None


# ----------------------------------------------------------------------------- Shelly Gen2


def _shelly(source: DeviceSource, topic: str, payload: bytes, at: datetime) -> Reading | None:
    prefix = source.topic + "/"
    if topic == prefix + "online":
        return Reading(
            source.device_id, at, online=_online_word(_text(payload, topic), topic, "true", "false")
        )
    if not topic.startswith(prefix + "status/"):
        return None
    component = topic[len(prefix + "status/") :]
    if component not in SHELLY_METERS:
        return None
    data = _json_object(payload, topic)
    where = f"{topic}:"
    fields: dict[str, Any] = {
        "power_w": _optional_number(data, "apower", where, low=-1, high=_MAX_POWER_W),
        "voltage_v": _optional_number(data, "voltage", where, low=0, high=1000),
        "current_a": _optional_number(data, "current", where, low=0, high=200),
    }
    aenergy = data.get("aenergy")
    if isinstance(aenergy, dict) and "total" in aenergy:
        wh = _number(aenergy["total"], f"{where} aenergy.total", low=0, high=1e12)
        fields["energy_kwh"] = wh / 1000.0
    elif aenergy is not None:
        raise ValueError(f"{where} aenergy must be an object with 'total'")
    temperature = data.get("temperature")
    if isinstance(temperature, dict) and temperature.get("tC") is not None:
        fields["temperature_c"] = _number(
            temperature["tC"], f"{where} temperature.tC", low=-60, high=400
        )
    fields = {k: v for k, v in fields.items() if v is not None}
    if not fields:
        return None
    return Reading(source.device_id, at, **fields)


_HANDLERS: dict[Firmware, Callable[[DeviceSource, str, bytes, datetime], Reading | None]] = {
    Firmware.TASMOTA: _tasmota,
    Firmware.ESPHOME: _esphome,
    Firmware.SHELLY: _shelly,
}
