"""One issuing run: every file under --out, from the inventory and the command line."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from .acl import load_template, render_acl
from .certs import ensure_ca, ensure_client_cert, ensure_server_cert, server_san
from .inventory import InventoryError, load_inventory_file
from .owners import chown_tree, parse_owner, resolve_broker_owner
from .passwords import client_password, write_password_file
from .site_model import clients_of, parse_site

ROTATABLE = ("passwords", "server-cert", "client-certs", "ca", "all")


def issue(args: argparse.Namespace) -> int:
    """Issue everything the inventory names under args.out, printing a line per file; 0."""
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

    broker_owner = resolve_broker_owner(args.broker_owner)
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
    what = f"server certificate for {server_san(site)}"
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
