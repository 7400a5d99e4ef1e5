"""Originators: the string that names what an alert is about (a gate, a device, a person)."""

from __future__ import annotations


def gate_originator(site: str, building: str, gate_id: str) -> str:
    """The originator of alerts about one gate (same as the gate's producer id)."""
    return f"gate:{site}/{building}/{gate_id}"


def device_originator(site: str, building: str, room: str, device_id: str) -> str:
    """The originator of alerts about one appliance."""
    return f"device:{site}/{building}/{room}/{device_id}"


def bridge_originator(site: str, bridge_id: str) -> str:
    """The originator of alerts about one device bridge (same as its producer id)."""
    return f"bridge:{site}/{bridge_id}"


def person_originator(person_id: str) -> str:
    """The originator of alerts about one person."""
    return f"person:{person_id}"


def originator_matches(pattern: str, originator: str) -> bool:
    """Whether ``pattern`` names ``originator`` exactly or a whole path segment above it."""
    if originator == pattern:
        return True
    if pattern.endswith(("/", ":")):
        return originator.startswith(pattern)
    return originator.startswith(pattern + "/")


def location(originator: str) -> tuple[str, str, str]:
    """(site, building, last id) of a gate/device/bridge originator, '' where it has none."""
    _, _, path = originator.partition(":")
    parts = path.split("/")
    if len(parts) >= 3:
        return parts[0], parts[1], parts[-1]
    if len(parts) == 2:
        return parts[0], "", parts[1]
    return "", "", path


def describe(originator: str) -> str:
    """A short name for titles: 'Gate east', 'Bridge br1'."""
    kind, _, _ = originator.partition(":")
    _, _, name = location(originator)
    return f"{kind.capitalize()} {name}" if kind else originator
