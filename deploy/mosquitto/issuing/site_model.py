"""The site model: the inventory validated into frozen dataclasses, and its broker accounts."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from .inventory import InventoryError

SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FIRMWARES = ("tasmota", "esphome", "shelly")


@dataclass(frozen=True)
class VendorDevice:
    id: str
    firmware: str
    topic: str


@dataclass(frozen=True)
class Gate:
    building: str
    gate_id: str
    card_reader: bool = False
    relay_topic: str | None = None
    contact_topic: str | None = None


@dataclass(frozen=True)
class Bridge:
    bridge_id: str
    discovery_prefix: str
    devices: tuple[VendorDevice, ...]


@dataclass(frozen=True)
class Site:
    site: str
    hostnames: tuple[str, ...]
    ips: tuple[str, ...]
    gateways: tuple[str, ...]
    gates: tuple[Gate, ...]
    bridges: tuple[Bridge, ...]
    devices: tuple[VendorDevice, ...]


@dataclass
class Client:
    """One broker account and the ACL blocks (section, values) that describe what it may do."""

    user: str
    kind: str
    blocks: list[tuple[str, dict[str, str]]] = field(default_factory=list)


def _segment(value: Any, where: str) -> str:
    if not isinstance(value, str) or not SEGMENT.fullmatch(value):
        raise InventoryError(
            f"{where}: {value!r} is not a valid name (1-64 letters, digits, '_', '-', '.', "
            "starting with a letter or digit)"
        )
    return value


def _topic(value: Any, where: str, *, allow_slash: bool = True) -> str:
    if (
        not isinstance(value, str)
        or not value
        or any(c in value for c in "+#\0 \t{}")
        or value.startswith(("/", "$"))
        or value.endswith("/")
        or (not allow_slash and "/" in value)
    ):
        raise InventoryError(
            f"{where}: {value!r} is not a usable topic (no wildcards, spaces or braces, "
            "no leading '/' or '$', no trailing '/')"
        )
    return value


def _mapping(value: Any, where: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InventoryError(f"{where}: expected a mapping")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise InventoryError(f"{where}: unknown key(s) {', '.join(unknown)}")
    missing = sorted(required - set(value))
    if missing:
        raise InventoryError(f"{where}: missing {', '.join(missing)}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InventoryError(f"{where}: expected a list")
    return value


def _vendor_device(raw: Any, where: str) -> VendorDevice:
    d = _mapping(raw, where, {"id", "firmware", "topic"}, {"id", "firmware", "topic"})
    if d["firmware"] not in FIRMWARES:
        raise InventoryError(f"{where}.firmware: {d['firmware']!r} is not one of {FIRMWARES}")
    return VendorDevice(
        _segment(d["id"], f"{where}.id"), d["firmware"], _topic(d["topic"], f"{where}.topic")
    )


def parse_site(data: Any) -> Site:
    """Validate the inventory; InventoryError names the offending entry."""
    top = _mapping(
        data,
        "inventory",
        {"site", "broker", "gateways", "gates", "bridges", "devices"},
        {"site", "broker"},
    )
    site = _segment(top["site"], "site")
    broker = _mapping(top["broker"], "broker", {"hostnames", "ips"}, {"hostnames"})
    hostnames = tuple(str(h) for h in _list(broker["hostnames"], "broker.hostnames"))
    if not hostnames:
        raise InventoryError("broker.hostnames: give at least one name clients connect to")
    for h in hostnames:
        if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9.*-]{0,252})", h):
            raise InventoryError(f"broker.hostnames: {h!r} is not a host name")
    ips = []
    for ip in _list(broker.get("ips"), "broker.ips"):
        try:
            ips.append(str(ipaddress.ip_address(str(ip))))
        except ValueError:
            raise InventoryError(f"broker.ips: {ip!r} is not an IP address") from None
    gateways = tuple(
        _segment(
            _mapping(g, f"gateways[{i}]", {"replica"}, {"replica"})["replica"],
            f"gateways[{i}].replica",
        )
        for i, g in enumerate(_list(top.get("gateways"), "gateways"))
    )
    gates = []
    for i, raw in enumerate(_list(top.get("gates"), "gates")):
        where = f"gates[{i}]"
        g = _mapping(
            raw,
            where,
            {"building", "gate_id", "card_reader", "relay_topic", "contact_topic"},
            {"building", "gate_id"},
        )
        gates.append(
            Gate(
                _segment(g["building"], f"{where}.building"),
                _segment(g["gate_id"], f"{where}.gate_id"),
                bool(g.get("card_reader", False)),
                _topic(g["relay_topic"], f"{where}.relay_topic") if g.get("relay_topic") else None,
                _topic(g["contact_topic"], f"{where}.contact_topic")
                if g.get("contact_topic")
                else None,
            )
        )
    bridges = []
    for i, raw in enumerate(_list(top.get("bridges"), "bridges")):
        where = f"bridges[{i}]"
        b = _mapping(raw, where, {"bridge_id", "discovery_prefix", "devices"}, {"bridge_id"})
        bridges.append(
            Bridge(
                _segment(b["bridge_id"], f"{where}.bridge_id"),
                _topic(b.get("discovery_prefix") or "homeassistant", f"{where}.discovery_prefix"),
                tuple(
                    _vendor_device(d, f"{where}.devices[{j}]")
                    for j, d in enumerate(_list(b.get("devices"), f"{where}.devices"))
                ),
            )
        )
    devices = tuple(
        _vendor_device(d, f"devices[{i}]")
        for i, d in enumerate(_list(top.get("devices"), "devices"))
    )
    return Site(site, hostnames, tuple(ips), gateways, tuple(gates), tuple(bridges), devices)


def clients_of(site: Site) -> list[Client]:
    """Every broker account of the site with its ACL blocks; ValueError on a duplicate user."""
    s = site.site
    clients = [
        Client(f"gateway-{s}-{r}", "gateway", [("gateway", {"site": s})]) for r in site.gateways
    ]
    for g in site.gates:
        values = {"site": s, "building": g.building, "gate_id": g.gate_id}
        gate = Client(f"gate-{s}-{g.building}-{g.gate_id}", "gate", [("gate", values)])
        if g.relay_topic:
            gate.blocks.append(("gate.relay", {"relay_topic": g.relay_topic}))
        if g.contact_topic:
            gate.blocks.append(("gate.contact", {"contact_topic": g.contact_topic}))
        clients.append(gate)
        if g.card_reader:
            clients.append(
                Client(f"reader-{s}-{g.building}-{g.gate_id}", "reader", [("reader", values)])
            )
    vendor: list[VendorDevice] = []
    for b in site.bridges:
        values = {"site": s, "bridge_id": b.bridge_id, "discovery_prefix": b.discovery_prefix}
        bridge = Client(f"bridge-{s}-{b.bridge_id}", "bridge", [("bridge", values)])
        for d in b.devices:
            bridge.blocks.append((f"bridge.{d.firmware}", {"topic": d.topic}))
            vendor.append(d)
        clients.append(bridge)
    vendor.extend(site.devices)
    clients.extend(
        Client(d.id, "device", [(f"device.{d.firmware}", {"topic": d.topic})]) for d in vendor
    )
    clients.append(Client(f"monitor-{s}", "monitor", [("monitor", {"site": s})]))
    seen: dict[str, str] = {}
    for c in clients:
        if c.user in seen:
            raise InventoryError(
                f"broker user {c.user!r} would be created twice ({seen[c.user]} and {c.kind}); "
                "rename a device, gate or building"
            )
        seen[c.user] = c.kind
    return clients
