"""The site CA, the broker's server certificate and client certificates, made with openssl."""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
from pathlib import Path

from .site_model import Site

RENEW_BEFORE_S = 30 * 24 * 3600

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


def server_san(site: Site) -> str:
    """The server certificate's subjectAltName: every host name and address of the broker."""
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
    san = server_san(site)
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
