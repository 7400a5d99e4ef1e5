"""The device bridge's configuration: one pydantic tree, validated at start."""

from __future__ import annotations

from typing import Self

from pydantic import Field, field_validator, model_validator

from contracts.settings import BridgeMqttSettings, StrictModel
from contracts.topics import check_segment
from edge.devices.model import ApplianceType, Firmware, MachineParams

# Per-type defaults that differ from MachineParams' generic ones.
TYPE_DEFAULTS: dict[ApplianceType, dict[str, float]] = {
    ApplianceType.WASHER: {"offline_after_s": 300.0},
    ApplianceType.DRYER: {"stop_hold_s": 180.0, "default_cycle_s": 3300.0},
    ApplianceType.WATER_DISPENSER: {"over_temp_c": 99.0},
    ApplianceType.HAIR_DRYER: {"offline_after_s": 600.0},
}


class ParamsOverride(StrictModel):
    """Threshold overrides; any MachineParams field."""

    start_w: float | None = Field(default=None, ge=0)
    start_hold_s: float | None = Field(default=None, ge=0)
    stop_w: float | None = Field(default=None, ge=0)
    stop_hold_s: float | None = Field(default=None, ge=0)
    finished_timeout_s: float | None = Field(default=None, gt=0)
    default_cycle_s: float | None = Field(default=None, gt=0)
    stuck_factor: float | None = Field(default=None, gt=1)
    history_size: int | None = Field(default=None, ge=1, le=1000)
    on_w: float | None = Field(default=None, ge=0)
    on_hold_s: float | None = Field(default=None, ge=0)
    overrun_s: float | None = Field(default=None, gt=0)
    heating_w: float | None = Field(default=None, ge=0)
    ready_temp_c: float | None = None
    heater_fault_after_s: float | None = Field(default=None, gt=0)
    min_temp_rise_c: float | None = Field(default=None, ge=0)
    heater_draw_restart_l: float | None = Field(default=None, gt=0)
    filter_capacity_l: float | None = Field(default=None, gt=0)
    over_temp_c: float | None = None
    over_current_a: float | None = Field(default=None, gt=0)
    offline_after_s: float | None = Field(default=None, gt=0)

    def values(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class DeviceEntry(StrictModel):
    id: str = Field(description="device id, unique within the site")
    kind: ApplianceType
    building: str
    room: str
    firmware: Firmware
    topic: str = Field(description="Tasmota %topic%, or the ESPHome / Shelly topic prefix")
    params: ParamsOverride = Field(default_factory=ParamsOverride)

    @field_validator("id", "building", "room")
    @classmethod
    def _segment(cls, v: str) -> str:
        return check_segment(v, "device id/building/room")

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        if not v or any(c in v for c in "+#") or v.startswith("/") or v.endswith("/"):
            raise ValueError(f"{v!r} is not a usable topic (no wildcards, no leading/trailing /)")
        return v


class DevicesConfig(StrictModel):
    """Everything one device bridge needs."""

    site: str
    bridge_id: str
    mqtt: BridgeMqttSettings = Field(default_factory=BridgeMqttSettings)
    devices: list[DeviceEntry] = Field(min_length=1)
    types: dict[ApplianceType, ParamsOverride] = Field(default_factory=dict)
    telemetry_interval_s: float = Field(
        default=10.0, ge=0, description="at most one telemetry message per device this often"
    )
    tick_s: float = Field(default=5.0, gt=0, description="how often timers are evaluated")
    health_s: float = Field(default=30.0, gt=0)
    home_assistant_discovery: bool = False
    discovery_prefix: str = "homeassistant"

    @field_validator("site", "bridge_id")
    @classmethod
    def _segment(cls, v: str) -> str:
        return check_segment(v, "site/bridge id")

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        topics: set[tuple[str, str]] = set()
        for index, device in enumerate(self.devices):
            if device.id in seen:
                raise ValueError(f"devices[{index}]: duplicate device id {device.id!r}")
            key = (device.firmware.value, device.topic)
            if key in topics:
                raise ValueError(f"devices[{index}]: topic {device.topic!r} used twice")
            seen.add(device.id)
            topics.add(key)
        return self

    def params_for(self, device: DeviceEntry) -> MachineParams:
        """Thresholds for one device: generic, then type defaults, type and device overrides."""
        values: dict[str, float] = dict(TYPE_DEFAULTS.get(device.kind, {}))
        if device.kind in self.types:
            values.update(self.types[device.kind].values())
        values.update(device.params.values())
        return MachineParams(**values)  # type: ignore[arg-type]

    @property
    def producer_id(self) -> str:
        return f"bridge:{self.site}/{self.bridge_id}"
