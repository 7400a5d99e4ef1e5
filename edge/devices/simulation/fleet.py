"""The simulated rooms: which devices they hold, and what the meter fitted to each measures.

What each (appliance, firmware) fitting measures follows `firmware_configs/` (see `HARDWARE`):
a Tasmota plug has no temperature probe, ESPHome boxes add door / leak / boiler temperature /
water meter where their YAML has them, Shelly PM Minis report `pm1:0` and the hair dryer's
Shelly Plus Plug S `switch:0` with the plug's own temperature. The hair dryer's Tasmota plug
switches its load off after 30 minutes of continuous use, as its `Rule2` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from edge.devices.model import ApplianceType, Firmware
from edge.devices.simulation.faults import SimFault, check_fault
from edge.devices.vendors import configured_topic

_NAME_PREFIX: Mapping[ApplianceType, str] = {
    ApplianceType.WASHER: "washer",
    ApplianceType.DRYER: "dryer",
    ApplianceType.WATER_DISPENSER: "water",
    ApplianceType.HAIR_DRYER: "hairdryer",
}
ROOM_LAYOUT: tuple[tuple[ApplianceType, int], ...] = (
    (ApplianceType.WASHER, 1),
    (ApplianceType.WASHER, 2),
    (ApplianceType.DRYER, 1),
    (ApplianceType.WATER_DISPENSER, 1),
    (ApplianceType.HAIR_DRYER, 1),
)


@dataclass(frozen=True)
class SimDevice:
    """One simulated appliance and the meter fitted to it."""

    device_id: str
    kind: ApplianceType
    firmware: Firmware
    building: str
    room: str
    topic: str  # Tasmota %topic%, or the ESPHome / Shelly topic prefix
    fault: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ApplianceType(self.kind))
        object.__setattr__(self, "firmware", Firmware(self.firmware))
        object.__setattr__(self, "fault", check_fault(self.kind, self.fault))


def device_name(kind: ApplianceType, room: str, number: int) -> str:
    """`<type>-<room>-<n>`: the device id, and the Tasmota topic (firmware_configs/README.md)."""
    return f"{_NAME_PREFIX[kind]}-{room}-{number}"


def plan_rooms(
    rooms: int,
    *,
    building: str = "b1",
    firmware_mix: Sequence[str | Firmware] = ("tasmota", "esphome", "shelly"),
    faults: Mapping[str, str] | None = None,
    first_room: int = 101,
) -> list[SimDevice]:
    """Rooms r101.. with 2 washers, a dryer, a dispenser and a hair dryer; firmware round-robin."""
    if rooms < 1 or first_room < 0:
        raise ValueError("rooms must be at least 1 and first_room not negative")
    mix = [Firmware(f) for f in firmware_mix]
    if not mix:
        raise ValueError("firmware_mix must name at least one firmware")
    wanted = dict(faults or {})
    devices: list[SimDevice] = []
    for r in range(rooms):
        room = f"r{first_room + r}"
        for kind, number in ROOM_LAYOUT:
            name = device_name(kind, room, number)
            firmware = mix[len(devices) % len(mix)]
            fault = wanted.pop(name, None)
            topic = configured_topic(firmware, name)
            try:
                devices.append(SimDevice(name, kind, firmware, building, room, topic, fault))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
    if wanted:
        raise ValueError(f"faults name unknown devices: {', '.join(sorted(wanted))}")
    return devices


def bridge_device_entries(devices: Iterable[SimDevice]) -> list[dict[str, str]]:
    """The `devices:` list of a bridge config (edge.devices.config.DeviceEntry) for these."""
    return [
        {
            "id": d.device_id,
            "kind": d.kind.value,
            "building": d.building,
            "room": d.room,
            "firmware": d.firmware.value,
            "topic": d.topic,
        }
        for d in devices
    ]


# ----------------------------------------------------------------------------- hardware


@dataclass(frozen=True, slots=True)
class Hardware:
    """What one (appliance, firmware) fitting measures, as configured in firmware_configs/."""

    probe: str | None = None  # appliance temperature: ESPHome object id (Tasmota: DS18B20)
    water_meter: bool = False  # ESPHome water_total
    door: bool = False  # ESPHome binary_sensor door
    leak: bool = False  # ESPHome binary_sensor leak
    shelly_component: str = "pm1:0"  # Plus PM Mini; "switch:0" for the Plus Plug S
    auto_off_s: float | None = None  # the plug itself cuts a load running this long


_PLAIN = Hardware()
HARDWARE: Mapping[tuple[ApplianceType, Firmware], Hardware] = {
    (ApplianceType.WASHER, Firmware.TASMOTA): _PLAIN,
    (ApplianceType.WASHER, Firmware.ESPHOME): Hardware(door=True, leak=True),
    (ApplianceType.WASHER, Firmware.SHELLY): _PLAIN,
    (ApplianceType.DRYER, Firmware.TASMOTA): _PLAIN,
    # dryer/esphome.yaml has no drum probe: add probe="drum_temperature" to publish one.
    (ApplianceType.DRYER, Firmware.ESPHOME): Hardware(door=True),
    (ApplianceType.DRYER, Firmware.SHELLY): _PLAIN,
    # The Athom plug has no GPIO for a DS18B20 (water_dispenser/tasmota.txt).
    (ApplianceType.WATER_DISPENSER, Firmware.TASMOTA): _PLAIN,
    (ApplianceType.WATER_DISPENSER, Firmware.ESPHOME): Hardware(
        probe="boiler_temperature", water_meter=True, leak=True
    ),
    (ApplianceType.WATER_DISPENSER, Firmware.SHELLY): _PLAIN,
    (ApplianceType.HAIR_DRYER, Firmware.TASMOTA): Hardware(auto_off_s=1800.0),
    (ApplianceType.HAIR_DRYER, Firmware.ESPHOME): _PLAIN,
    (ApplianceType.HAIR_DRYER, Firmware.SHELLY): Hardware(shelly_component="switch:0"),
}


def hardware_for(device: SimDevice) -> Hardware:
    """The meter fitted to this device."""
    return HARDWARE[(device.kind, device.firmware)]


def fault_visibility(device: SimDevice, fault: SimFault | None) -> str | None:
    """Why the bridge cannot see this fault on this device's hardware (None: it can)."""
    hw = hardware_for(device)
    if fault is SimFault.LEAK and not hw.leak:
        return f"{device.firmware.value} {device.kind.value} meter has no leak probe"
    if fault is SimFault.HEATER_FAILURE and hw.probe is None:
        return f"{device.firmware.value} {device.kind.value} meter reports no boiler temperature"
    return None
