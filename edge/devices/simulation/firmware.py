"""What a simulated meter publishes: each firmware's topics, number formats and client ids.

Tasmota `tele/<topic>/SENSOR`, ESPHome `<prefix>/sensor/<id>/state`, Shelly Gen2
`<prefix>/status/<component>` (layouts in edge/devices/vendors.py), printed as the firmware
prints them; and each device's retained birth / last will.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime

from edge.devices import vendors
from edge.devices.model import Firmware
from edge.devices.simulation.fleet import Hardware, SimDevice, hardware_for
from edge.devices.simulation.ledger import MeterLedger
from edge.devices.simulation.trace import ApplianceTrace
from edge.mqtt import Will


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message a device publishes."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True, slots=True)
class _Fixed:
    """A JSON number printed with a fixed number of decimals, as firmware prints it."""

    value: float
    decimals: int


def _fixed(value: float, decimals: int) -> str:
    return f"{round(value, decimals) + 0.0:.{decimals}f}"  # + 0.0: never "-0.0"


def _json(value: object) -> str:
    """Compact JSON like the firmware's own (no spaces, fixed decimals)."""
    if isinstance(value, _Fixed):
        return _fixed(value.value, value.decimals)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json(v) for v in value) + "]"
    return json.dumps(value)


def _hex_id(device_id: str, length: int) -> str:
    return hashlib.sha256(device_id.encode()).hexdigest()[:length].upper()


def tasmota_sensor(
    device: SimDevice, trace: ApplianceTrace, ledger: MeterLedger, wall: datetime, hw: Hardware
) -> Message:
    """`tele/<topic>/SENSOR` as Tasmota's energy driver (and DS18x20 driver) print it."""
    power, volts, amps = trace.power_w, trace.voltage_v, trace.current_a
    apparent = volts * amps
    reactive = math.sqrt(max(apparent * apparent - power * power, 0.0))
    data: dict[str, object] = {
        "Time": wall.strftime("%Y-%m-%dT%H:%M:%S"),
        "ENERGY": {
            "TotalStartTime": ledger.total_start.strftime("%Y-%m-%dT%H:%M:%S"),
            "Total": _Fixed(trace.energy_kwh, 3),
            "Yesterday": _Fixed(ledger.yesterday_kwh, 3),
            "Today": _Fixed(trace.energy_kwh - ledger.day_start_kwh, 3),
            "Period": round(ledger.period_wh),
            "Power": round(power),
            "ApparentPower": round(apparent),
            "ReactivePower": round(reactive),
            "Factor": _Fixed(power / apparent if apparent > 0 else 0.0, 2),
            "Voltage": round(volts),
            "Current": _Fixed(amps, 3),
        },
    }
    if hw.probe is not None and trace.temperature_c is not None:
        probe_id = _hex_id(device.device_id, 12)
        data["DS18B20"] = {"Id": probe_id, "Temperature": _Fixed(trace.temperature_c, 1)}
        data["TempUnit"] = "C"
    topic = vendors.tasmota_topic(device.topic, vendors.TASMOTA_SENSOR)
    return Message(topic, _json(data).encode())


def esphome_states(prefix: str, trace: ApplianceTrace, hw: Hardware) -> list[Message]:
    """Every `<prefix>/sensor|binary_sensor/<id>/state` value (ESPHome retains states)."""
    values = [
        ("power", _fixed(trace.power_w, 1)),
        ("voltage", _fixed(trace.voltage_v, 1)),
        ("current", _fixed(trace.current_a, 2)),
        ("energy", _fixed(trace.energy_kwh, 3)),
    ]
    if hw.probe is not None:
        temp = trace.temperature_c
        values.append((hw.probe, "nan" if temp is None else _fixed(temp, 1)))
    if hw.water_meter and trace.water_l is not None:
        values.append(("water_total", _fixed(trace.water_l, 2)))
    messages = [
        Message(
            vendors.esphome_state_topic(prefix, vendors.ESPHOME_SENSOR, object_id),
            value.encode(),
            retain=True,
        )
        for object_id, value in values
    ]
    binary: list[tuple[str, bool]] = []
    if hw.door:
        binary.append(("door", bool(trace.door_open)))
    if hw.leak:
        binary.append(("leak", trace.leak))
    for object_id, on in binary:
        topic = vendors.esphome_state_topic(prefix, vendors.ESPHOME_BINARY_SENSOR, object_id)
        messages.append(Message(topic, b"ON" if on else b"OFF", retain=True))
    return messages


def shelly_status(prefix: str, trace: ApplianceTrace, ledger: MeterLedger, hw: Hardware) -> Message:
    """`<prefix>/status/pm1:0` (Plus PM Mini) or `status/switch:0` (Plus Plug S)."""
    aenergy = {
        "total": _Fixed(trace.energy_kwh * 1000, 3),
        "by_minute": [_Fixed(v, 3) for v in ledger.by_minute_mwh],
        "minute_ts": ledger.minute * 60,
    }
    apower, volts = _Fixed(trace.power_w, 1), _Fixed(trace.voltage_v, 1)
    amps, freq = _Fixed(trace.current_a, 3), _Fixed(50.0, 1)
    data: dict[str, object]
    if hw.shelly_component == "switch:0":
        board = trace.board_temp_c
        data = {
            "id": 0,
            "source": "init",
            "output": True,
            "apower": apower,
            "voltage": volts,
            "freq": freq,
            "current": amps,
            "aenergy": aenergy,
            "temperature": {"tC": _Fixed(board, 1), "tF": _Fixed(board * 9 / 5 + 32, 1)},
        }
    else:
        returned = {
            "total": _Fixed(0.0, 3),
            "by_minute": [_Fixed(0.0, 3)] * 3,
            "minute_ts": ledger.minute * 60,
        }
        data = {
            "id": 0,
            "voltage": volts,
            "current": amps,
            "apower": apower,
            "freq": freq,
            "aenergy": aenergy,
            "ret_aenergy": returned,
        }
    return Message(vendors.shelly_status_topic(prefix, hw.shelly_component), _json(data).encode())


def encode(
    device: SimDevice,
    trace: ApplianceTrace,
    ledger: MeterLedger,
    wall: datetime,
    hardware: Hardware | None = None,
) -> list[Message]:
    """The telemetry one report of this device consists of (ledger already advanced)."""
    hw = hardware or hardware_for(device)
    if device.firmware is Firmware.TASMOTA:
        return [tasmota_sensor(device, trace, ledger, wall, hw)]
    if device.firmware is Firmware.ESPHOME:
        return esphome_states(device.topic, trace, hw)
    return [shelly_status(device.topic, trace, ledger, hw)]


def client_id_for(device: SimDevice) -> str:
    """The MQTT client id the firmware uses by default (Shelly: as shelly.json sets it)."""
    if device.firmware is Firmware.TASMOTA:
        return f"DVES_{_hex_id(device.device_id, 6)}"
    if device.firmware is Firmware.ESPHOME:
        return f"{device.device_id}-{_hex_id(device.device_id, 12).lower()}"
    return device.topic


def availability_will(firmware: Firmware, topic: str) -> Will:
    """The device's retained birth / last-will pair, as each firmware configures it."""
    words = vendors.availability(firmware, topic)
    return Will(words.topic, words.offline.encode(), words.online.encode())
