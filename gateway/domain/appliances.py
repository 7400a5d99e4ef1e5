"""What a service-room board shows of an appliance, and when a student's watch fires (pure)."""

from __future__ import annotations

from typing import Any, Literal

BoardStatus = Literal["free", "running", "finished", "fault", "offline", "unknown"]
BUSY_STATUSES = frozenset({"running", "in_use", "heating"})
FREE_STATUSES = frozenset({"idle", "ready", "standby"})
WatchKind = Literal["finished", "free"]


def board_status(online: bool, faults: list[str], status: str) -> BoardStatus:
    """What the board shows: offline and fault win over the appliance's own status."""
    if not online:
        return "offline"
    if faults:
        return "fault"
    if status in BUSY_STATUSES:
        return "running"
    if status == "finished":
        return "finished"
    if status in FREE_STATUSES:
        return "free"
    return "unknown"


def watch_fires(kind: WatchKind, before: BoardStatus | None, after: BoardStatus) -> bool:
    """Whether a change of one appliance's board status from ``before`` to ``after`` fires a
    watch of this kind on it.

    "finished" fires when a cycle ends: the machine reports finished, or goes straight from
    running to free (a dispenser or a hair dryer has no finished state). "free" fires when the
    machine becomes free; a machine that is free already when the watch is made fires nothing
    (the page shows it free).
    """
    if before == after:
        return False
    if kind == "finished":
        return after == "finished" or (before == "running" and after == "free")
    return after == "free"


def _number(state: dict[str, Any], name: str) -> float | None:
    value = state.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def device_fields(device: Any) -> dict[str, Any]:
    """A devices-table row as the boards show it (the API's DeviceOut fields)."""
    state = device.state or {}
    sessions = state.get("sessions")
    return {
        "device_key": device.device_key,
        "site": device.site,
        "building": device.building,
        "room": device.room,
        "device_id": device.device_id,
        "kind": device.kind,
        "board_status": board_status(device.online, list(device.faults), device.status),
        "status": device.status,
        "faults": list(device.faults),
        "online": device.online,
        "since": device.since,
        "updated_at": device.updated_at,
        "remaining_s": _number(state, "remaining_s"),
        "power_w": _number(state, "power_w"),
        "energy_kwh": _number(state, "energy_kwh"),
        "temperature_c": _number(state, "temperature_c"),
        "sessions": sessions if isinstance(sessions, int) else None,
        "filter_life_pct": _number(state, "filter_life_pct"),
    }
