#!/usr/bin/env python3
"""Issue the broker's credentials for one site: CA, server certificate, passwords and ACL.

Reads a site inventory (see site.example.yaml) and writes, under --out:

    ca/ca.crt, ca/ca.key            the site's MQTT CA (created once, kept)
    broker/ca.crt                   what mosquitto.conf points at (/etc/mosquitto/dormguard/):
    broker/server.crt, server.key     the broker's certificate (SANs from the inventory)
    broker/passwd                     mosquitto password file (PBKDF2-SHA512 hashes)
    broker/acl                        per-user ACL blocks rendered from acl.template
    clients/<user>.password         one random password per client, mode 0600, for the
                                    daemons' `password: {file: ...}` setting
    clients/<user>.crt, <user>.key  with --client-certs: a client certificate (CN = the broker
                                    user, extendedKeyUsage clientAuth, signed by the site CA)
                                    and its key (mode 0600), for the daemons' mqtt.tls.cert_file
                                    and key_file when mosquitto.conf requires certificates
    clients/ca.crt                  the CA certificate clients verify the broker with

Idempotent: an existing CA, server certificate, passwords and client certificates are kept
(certificates are renewed when they expire within 30 days or were signed by an older CA); the
password file and the ACL are rebuilt from the inventory every run. --rotate replaces what it
names.
Standard library only; certificates are made with the `openssl` command and passwords hashed
with `mosquitto_passwd -U` (or, when it is missing, the same PBKDF2-SHA512 format in Python).
"""

from __future__ import annotations

import argparse
import base64
import grp
import hashlib
import ipaddress
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FIRMWARES = ("tasmota", "esphome", "shelly")
ROTATABLE = ("passwords", "server-cert", "client-certs", "ca", "all")
RENEW_BEFORE_S = 30 * 24 * 3600


class InventoryError(ValueError):
    """The inventory (or the ACL template) is not usable; the message says where and why."""


# ----------------------------------------------------------------------------- inventory reader


def _strip_comment(line: str) -> str:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _scalar(text: str, lineno: int) -> Any:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [] if not inner else [_scalar(part, lineno) for part in inner.split(",")]
    if text[:1] in "'\"":
        if len(text) < 2 or text[-1] != text[0]:
            raise InventoryError(f"line {lineno}: unterminated quoted string {text!r}")
        return text[1:-1]
    if text[:1] in "{&*!|>":
        raise InventoryError(
            f"line {lineno}: {text!r}: this YAML feature needs PyYAML (pip install pyyaml); "
            "the built-in reader knows block mappings and lists, [a, b] lists and comments"
        )
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("", "null", "~"):
        return None
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    return text


def _split_key(content: str, lineno: int) -> tuple[str, str] | None:
    """('key', 'rest') for a 'key: rest' line, None when the line is not a mapping entry."""
    match = re.match(r"^([A-Za-z0-9_.-]+):(?:\s+(.*))?$", content)
    if not match:
        return None
    return match.group(1), (match.group(2) or "").strip()


def parse_simple_yaml(text: str) -> Any:
    """Read the YAML subset the inventory uses; InventoryError names the line of a problem."""
    lines: list[tuple[int, str, int]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise InventoryError(f"line {lineno}: indent with spaces, not tabs")
        content = _strip_comment(raw)
        if content.strip() in ("", "---"):
            continue
        indent = len(content) - len(content.lstrip(" "))
        lines.append((indent, content.strip(), lineno))
    if not lines:
        return None
    value, end = _parse_block(lines, 0, lines[0][0])
    if end != len(lines):
        raise InventoryError(f"line {lines[end][2]}: unexpected indentation")
    return value


def _parse_block(lines: list[tuple[int, str, int]], i: int, indent: int) -> tuple[Any, int]:
    if lines[i][1] == "-" or lines[i][1].startswith("- "):
        return _parse_list(lines, i, indent)
    return _parse_mapping(lines, i, indent)


def _parse_list(lines: list[tuple[int, str, int]], i: int, indent: int) -> tuple[Any, int]:
    items: list[Any] = []
    while i < len(lines) and lines[i][0] == indent:
        _, content, lineno = lines[i]
        if not (content == "-" or content.startswith("- ")):
            raise InventoryError(f"line {lineno}: expected a list item ('- ...')")
        rest = content[1:].strip()
        if not rest:
            if i + 1 < len(lines) and lines[i + 1][0] > indent:
                value, i = _parse_block(lines, i + 1, lines[i + 1][0])
            else:
                value, i = None, i + 1
            items.append(value)
        elif _split_key(rest, lineno) is not None:
            # "- key: value" starts a mapping whose keys sit in the column after "- ".
            column = indent + len(content) - len(rest)
            lines[i] = (column, rest, lineno)
            value, i = _parse_mapping(lines, i, column)
            items.append(value)
        else:
            items.append(_scalar(rest, lineno))
            i += 1
    if i < len(lines) and lines[i][0] > indent:
        raise InventoryError(f"line {lines[i][2]}: unexpected indentation")
    return items, i


def _parse_mapping(lines: list[tuple[int, str, int]], i: int, indent: int) -> tuple[Any, int]:
    mapping: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent:
        _, content, lineno = lines[i]
        entry = _split_key(content, lineno)
        if entry is None:
            raise InventoryError(f"line {lineno}: expected 'key: value', got {content!r}")
        key, rest = entry
        if key in mapping:
            raise InventoryError(f"line {lineno}: duplicate key {key!r}")
        i += 1
        if rest:
            mapping[key] = _scalar(rest, lineno)
        elif i < len(lines) and (
            lines[i][0] > indent
            or (lines[i][0] == indent and (lines[i][1] == "-" or lines[i][1].startswith("- ")))
        ):
            mapping[key], i = _parse_block(lines, i, lines[i][0])
        else:
            mapping[key] = None
    if i < len(lines) and lines[i][0] > indent:
        raise InventoryError(f"line {lines[i][2]}: unexpected indentation")
    return mapping, i


def load_inventory_file(path: Path) -> Any:
    """The inventory as plain data: JSON, or YAML (PyYAML when installed, else the subset)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    try:
        import yaml
    except ImportError:
        return parse_simple_yaml(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InventoryError(f"YAML syntax error: {exc}") from exc


# ----------------------------------------------------------------------------- the site model


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


# ----------------------------------------------------------------------------- ACL


def load_template(path: Path) -> dict[str, list[str]]:
    """The template's '#@ section' blocks, notes removed."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.rstrip()
        if line.startswith("#@"):
            name = line[2:].strip()
            current = sections.setdefault(name, [])
        elif current is not None and line and not line.startswith("#"):
            current.append(line)
    return sections


def render_acl(site: Site, clients: list[Client], template: dict[str, list[str]]) -> str:
    """The acl_file text: one block per user, in inventory order."""
    out = [
        "# Generated by deploy/mosquitto/issue-credentials.py from acl.template: do not edit,",
        f"# edit the inventory and run the script again. Site: {site.site}.",
        "",
    ]
    for client in clients:
        for section, values in client.blocks:
            if section not in template:
                raise InventoryError(f"ACL template has no '#@ {section}' section")
            for line in template[section]:
                try:
                    out.append(line.format_map({**values, "user": client.user}))
                except KeyError as exc:
                    raise InventoryError(
                        f"ACL template section {section!r} uses unknown placeholder {exc}"
                    ) from None
        out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------- passwords


def mosquitto_hash(password: str, salt: bytes | None = None, iterations: int = 101) -> str:
    """A mosquitto 2.0 password hash ($7$: PBKDF2-SHA512), as mosquitto_passwd writes it."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def write_private(path: Path, text: str) -> None:
    """Write a file that only its owner can read (created 0600, never world-readable)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    tmp.chmod(0o600)
    tmp.replace(path)


def client_password(path: Path, rotate: bool) -> tuple[str, bool]:
    """(password, created): the stored password, or a new random one."""
    if path.exists() and not rotate:
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value, False
    value = secrets.token_urlsafe(24)
    write_private(path, value + "\n")
    return value, True


def write_password_file(path: Path, users: list[tuple[str, str]], passwd_tool: str | None) -> str:
    """Write the hashed mosquitto password file; returns how it was hashed."""
    plain = "".join(f"{user}:{password}\n" for user, password in users)
    tmp = path.with_name(path.name + ".new")
    write_private(tmp, plain)
    try:
        if passwd_tool:
            # -U hashes a plain file in place: passwords never appear on a command line.
            result = subprocess.run(
                [passwd_tool, "-U", str(tmp)], capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise RuntimeError(f"mosquitto_passwd -U failed: {result.stderr.strip()}")
            how = "mosquitto_passwd -U"
        else:
            write_private(tmp, "".join(f"{u}:{mosquitto_hash(p)}\n" for u, p in users))
            how = "built-in PBKDF2-SHA512 ($7$)"
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    path.chmod(0o600)
    return how


# ----------------------------------------------------------------------------- certificates

OPENSSL_CONF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
O = dormguard
CN = {cn}
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = {san}
[v3_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()[-400:]}")


def _new_key(path: Path, key_type: str) -> None:
    if key_type == "rsa":
        algo = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"]
    else:
        algo = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    old = os.umask(0o077)
    try:
        _openssl("genpkey", *algo, "-out", str(path))
    finally:
        os.umask(old)
    path.chmod(0o600)


def ensure_ca(ca_dir: Path, site: str, key_type: str, days: int, rotate: bool) -> bool:
    """Create the CA unless it exists; True when a new one was made."""
    crt, key = ca_dir / "ca.crt", ca_dir / "ca.key"
    if crt.exists() and key.exists() and not rotate:
        return False
    ca_dir.mkdir(parents=True, exist_ok=True)
    ca_dir.chmod(0o700)
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "openssl.cnf"
        conf.write_text(OPENSSL_CONF.format(cn=f"dormguard {site} MQTT CA", san="DNS:unused"))
        _new_key(key, key_type)
        _openssl(
            "req", "-x509", "-new", "-config", str(conf), "-extensions", "v3_ca",
            "-key", str(key), "-out", str(crt), "-days", str(days), "-sha256",
        )  # fmt: skip
    crt.chmod(0o644)
    return True


def _san(site: Site) -> str:
    return ", ".join([f"DNS:{h}" for h in site.hostnames] + [f"IP:{ip}" for ip in site.ips])


def _cert_is_fresh(crt: Path, ca_crt: Path) -> bool:
    """Signed by this CA and valid for at least another RENEW_BEFORE_S seconds."""
    for args in (
        ["verify", "-CAfile", str(ca_crt), str(crt)],
        ["x509", "-noout", "-checkend", str(RENEW_BEFORE_S), "-in", str(crt)],
    ):
        if subprocess.run(["openssl", *args], capture_output=True, check=False).returncode:
            return False
    return True


def _why_sign(
    crt: Path, key: Path, out: Path, rotate: bool, changed: str | None = None
) -> str | None:
    """Why a certificate must be (re)signed, or None while the one on disk is still good.

    ``changed`` names what makes the certificate on disk wrong (its host names, say), if anything.
    """
    if rotate:
        return "rotation asked"
    if not (crt.exists() and key.exists()):
        return "new"
    if changed:
        return changed
    if not _cert_is_fresh(crt, out / "ca" / "ca.crt"):
        return "expiring or signed by an older CA"
    return None


def _sign_cert(
    out: Path, crt: Path, key: Path, *, cn: str, san: str, extensions: str, key_type: str, days: int
) -> None:
    """A new key and a certificate for it signed by the site CA, put in place together.

    Both are made next to their final names first, so a failing openssl leaves the old pair.
    """
    ca_crt, ca_key = out / "ca" / "ca.crt", out / "ca" / "ca.key"
    new_crt, new_key = crt.with_name(crt.name + ".new"), key.with_name(key.name + ".new")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            conf = Path(tmp) / "openssl.cnf"
            conf.write_text(OPENSSL_CONF.format(cn=cn, san=san))
            csr = Path(tmp) / "request.csr"
            _new_key(new_key, key_type)
            _openssl("req", "-new", "-config", str(conf), "-key", str(new_key), "-out", str(csr))
            _openssl(
                "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
                "-set_serial", "0x" + secrets.token_hex(16), "-days", str(days), "-sha256",
                "-extfile", str(conf), "-extensions", extensions, "-out", str(new_crt),
            )  # fmt: skip
        new_crt.chmod(0o644)
        new_key.replace(key)
        new_crt.replace(crt)
    finally:
        new_key.unlink(missing_ok=True)
        new_crt.unlink(missing_ok=True)


def ensure_server_cert(out: Path, site: Site, key_type: str, days: int, rotate: bool) -> str | None:
    """Sign the broker certificate unless a valid one with the same SANs exists; the reason."""
    broker = out / "broker"
    crt, key, san_file = broker / "server.crt", broker / "server.key", broker / "server.san"
    san = _san(site)
    san_changed = not san_file.exists() or san_file.read_text().strip() != san
    reason = _why_sign(
        crt, key, out, rotate, "host names or addresses changed" if san_changed else None
    )
    if reason is None:
        return None
    _sign_cert(
        out, crt, key, cn=site.hostnames[0], san=san, extensions="v3_server",
        key_type=key_type, days=days,
    )  # fmt: skip
    san_file.write_text(san + "\n")
    return reason


def ensure_client_cert(out: Path, user: str, key_type: str, days: int, rotate: bool) -> str | None:
    """Sign a client certificate with CN = the broker user unless a valid one exists; the reason.

    mosquitto's use_identity_as_username makes that CN the account the ACL applies to.
    """
    crt, key = out / "clients" / f"{user}.crt", out / "clients" / f"{user}.key"
    reason = _why_sign(crt, key, out, rotate)
    if reason is None:
        return None
    # The SAN is not used by client authentication; v3_client does not include it.
    _sign_cert(
        out, crt, key, cn=user, san="DNS:unused", extensions="v3_client",
        key_type=key_type, days=days,
    )  # fmt: skip
    return reason


# ----------------------------------------------------------------------------- ownership


def parse_owner(spec: str) -> tuple[int, int]:
    """'uid[:gid]' or 'user[:group]' as numeric ids."""
    user, _, group = spec.partition(":")
    try:
        uid = int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
        if group:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        else:
            gid = uid if user.isdigit() else pwd.getpwnam(user).pw_gid
    except KeyError:
        raise InventoryError(f"unknown user or group in {spec!r}") from None
    return uid, gid


def chown_tree(path: Path, owner: tuple[int, int]) -> None:
    os.chown(path, *owner)
    for child in path.iterdir():
        os.chown(child, *owner)


# ----------------------------------------------------------------------------- main


def issue(args: argparse.Namespace) -> int:
    site = parse_site(load_inventory_file(Path(args.inventory)))
    clients = clients_of(site)
    template = load_template(Path(args.acl_template))
    acl_text = render_acl(site, clients, template)

    rotate = set(args.rotate or [])
    if "all" in rotate:
        rotate |= {"passwords", "server-cert", "ca"}
        if args.client_certs:
            rotate.add("client-certs")
    rotate_users = rotate - set(ROTATABLE)
    known = {c.user for c in clients}
    unknown = sorted(rotate_users - known)
    if unknown:
        raise InventoryError(f"--rotate: no such client {', '.join(unknown)}")
    if "client-certs" in rotate and not args.client_certs:
        raise InventoryError("--rotate client-certs needs --client-certs")
    if args.client_certs and "ca" in known:
        raise InventoryError("a client named 'ca' would overwrite clients/ca.crt; rename it")

    broker_owner = None
    if args.broker_owner == "auto":
        if os.geteuid() == 0:
            try:
                broker_owner = parse_owner("mosquitto")
            except InventoryError:
                broker_owner = None
    elif args.broker_owner not in (None, "none"):
        broker_owner = parse_owner(args.broker_owner)
    client_owner = parse_owner(args.client_owner) if args.client_owner else None

    out = Path(args.out)
    for sub in ("ca", "broker", "clients"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    (out / "clients").chmod(0o700)
    (out / "broker").chmod(0o700)

    new_ca = ensure_ca(out / "ca", site.site, args.key_type, args.ca_days, "ca" in rotate)
    print(("created" if new_ca else "kept") + f" CA {out / 'ca' / 'ca.crt'}")
    if new_ca and "ca" in rotate:
        rotate.add("server-cert")
        if args.client_certs:
            rotate.add("client-certs")
    reason = ensure_server_cert(out, site, args.key_type, args.cert_days, "server-cert" in rotate)
    what = f"server certificate for {_san(site)}"
    print(f"signed {what} ({reason})" if reason else f"kept {what}")
    for name in ("ca.crt",):
        shutil.copyfile(out / "ca" / name, out / "broker" / name)
        shutil.copyfile(out / "ca" / name, out / "clients" / name)
        (out / "clients" / name).chmod(0o644)

    users = []
    for client in clients:
        path = out / "clients" / f"{client.user}.password"
        password, created = client_password(
            path, "passwords" in rotate or client.user in rotate_users
        )
        users.append((client.user, password))
        if client_owner is not None:
            os.chown(path, *client_owner)
        print(f"{'new ' if created else 'kept'} password  {client.kind:8} {client.user:40} {path}")
        if args.client_certs:
            crt = out / "clients" / f"{client.user}.crt"
            reason = ensure_client_cert(
                out,
                client.user,
                args.key_type,
                args.cert_days,
                "client-certs" in rotate or client.user in rotate_users,
            )
            if client_owner is not None:
                os.chown(crt, *client_owner)
                os.chown(crt.with_suffix(".key"), *client_owner)
            done = f"new  cert      {client.kind:8} {client.user:40} {crt} ({reason})"
            print(done if reason else f"kept cert      {client.kind:8} {client.user:40} {crt}")
    issued = [p for p in (out / "clients").glob("*.crt") if p.name != "ca.crt"]
    if issued and not args.client_certs:
        print("client certificates in clients/ are not renewed without --client-certs")
    stale = sorted(
        p.name
        for p in (out / "clients").iterdir()
        if p.suffix in (".password", ".crt", ".key") and p.stem not in known and p.name != "ca.crt"
    )
    if stale:
        print("not in the inventory any more (no broker account): " + ", ".join(stale))

    passwd_tool = None if args.no_mosquitto_passwd else shutil.which(args.mosquitto_passwd)
    how = write_password_file(out / "broker" / "passwd", users, passwd_tool)
    print(f"wrote {out / 'broker' / 'passwd'} ({len(users)} users, {how})")
    acl_path = out / "broker" / "acl"
    acl_path.write_text(acl_text, encoding="utf-8")
    acl_path.chmod(0o644)
    print(f"wrote {acl_path}")

    if client_owner is not None:
        os.chown(out / "clients", *client_owner)
        os.chown(out / "clients" / "ca.crt", *client_owner)
    if broker_owner is not None:
        chown_tree(out / "broker", broker_owner)
        print(f"broker files owned by uid {broker_owner[0]} (the user mosquitto runs as)")
    print("reload the broker to apply: systemctl reload mosquitto (or send it SIGHUP)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inventory", required=True, help="site inventory (YAML or JSON)")
    parser.add_argument("--out", required=True, help="output folder (kept between runs)")
    parser.add_argument(
        "--rotate",
        action="append",
        metavar="WHAT",
        help="replace: passwords, server-cert, client-certs, ca (implies server-cert and, with "
        "--client-certs, client-certs), all, or one client's user name (its password and, with "
        "--client-certs, its certificate); may be repeated",
    )
    parser.add_argument(
        "--client-certs",
        action="store_true",
        help="also issue a client certificate and key per account (CN = the user name) for "
        "mutual TLS (require_certificate / use_identity_as_username in mosquitto.conf)",
    )
    parser.add_argument("--key-type", choices=("ec", "rsa"), default="ec", help="P-256 or RSA-3072")
    parser.add_argument("--ca-days", type=int, default=3650)
    parser.add_argument("--cert-days", type=int, default=825)
    parser.add_argument(
        "--broker-owner",
        default="auto",
        help="user[:group] or uid[:gid] that mosquitto runs as, to own broker/ (it reads its "
        "files after dropping root); 'auto': the mosquitto user when run as root; 'none'. "
        "The eclipse-mosquitto image runs as 1883:1883",
    )
    parser.add_argument(
        "--client-owner", help="user[:group] or uid[:gid] to own clients/ (e.g. 10001:10001)"
    )
    parser.add_argument("--acl-template", default=str(HERE / "acl.template"))
    parser.add_argument("--mosquitto-passwd", default="mosquitto_passwd")
    parser.add_argument(
        "--no-mosquitto-passwd",
        action="store_true",
        help="hash passwords in Python even if mosquitto_passwd is installed",
    )
    args = parser.parse_args(argv)
    try:
        return issue(args)
    except (InventoryError, RuntimeError, OSError) as exc:
        print(f"issue-credentials: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
