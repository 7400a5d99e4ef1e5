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
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The jobs live in the sibling package issuing/; a script run by path already has its folder
# on sys.path, but the tests load this file as a module from elsewhere.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from issuing.acl import load_template, render_acl  # noqa: E402
from issuing.inventory import InventoryError, load_inventory_file, parse_simple_yaml  # noqa: E402
from issuing.passwords import mosquitto_hash  # noqa: E402
from issuing.run import issue  # noqa: E402
from issuing.site_model import FIRMWARES, clients_of, parse_site  # noqa: E402

# What the tests use of the script when they load it as a module.
__all__ = [
    "FIRMWARES",
    "InventoryError",
    "clients_of",
    "load_inventory_file",
    "load_template",
    "main",
    "mosquitto_hash",
    "parse_simple_yaml",
    "parse_site",
    "render_acl",
]


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
