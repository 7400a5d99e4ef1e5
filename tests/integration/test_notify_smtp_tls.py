"""The e-mail channel over TLS against a real SMTP server (aiosmtpd) with a certificate made here.

Rules: over STARTTLS (required by the server) and over implicit TLS the notice is delivered
with the login sent only on the encrypted connection, and the mail carries the notice's title,
text, sender and recipients; a certificate the channel does not trust (not from its CA, or for
another host name) is retried with a clear error and fails after the last attempt, without the
password ever reaching the server; ``security: plain`` with a password is refused by the config
unless the server is on this machine.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import ValidationError
from sqlalchemy import select

from gateway.db.schema import NoticeRow
from gateway.notify.config import NotificationsConfig
from gateway.notify.messages import Message
from gateway.notify.sender import NoticeSender, build_channels
from gateway.services import Services
from tests.gatewaykit import clock_of, close_services, make_config, make_services, signal

# aiosmtpd only counts STARTTLS as encryption for AUTH (aio-libs/aiosmtpd#281): behind implicit
# TLS it must be told not to insist, and warns. The authenticator below checks the transport.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

USER = "dormguard"
PASSWORD = "smtp-password-1234"
SENDER = "dormguard@campus.example"
RECIPIENTS = ["guards@campus.example", "duty@campus.example"]
TITLE = "b1 东门 door forced open"  # non-ASCII: the Subject is encoded and decoded intact


# --- certificates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """A campus CA, the mail server's certificate from it, and certificates it must not trust."""

    ca: Path
    server: Issued  # from the CA, for 127.0.0.1 and localhost
    other_host: Issued  # from the CA, for another host name
    other_ca: Path  # a CA that signed nothing here


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _make_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: list[x509.GeneralName],
    out: Path,
    stem: str,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(stem))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    issued = Issued(out / f"{stem}.crt", out / f"{stem}.key")
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    issued.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    out = tmp_path_factory.mktemp("pki")
    ca, ca_key = _make_ca("Campus Internal CA")
    other_ca, _ = _make_ca("Some Other CA")
    (out / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (out / "other-ca.crt").write_bytes(other_ca.public_bytes(serialization.Encoding.PEM))
    here = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    return Pki(
        ca=out / "ca.crt",
        server=_issue(ca, ca_key, here, out, "mail"),
        other_host=_issue(ca, ca_key, [x509.DNSName("mail.other.example")], out, "other"),
        other_ca=out / "other-ca.crt",
    )


# --- the SMTP server ------------------------------------------------------------------------


def _encrypted(server: Any) -> bool:
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


@dataclass
class MailServer:
    """What the server saw: logins (mechanism, user, over TLS) and messages (over TLS)."""

    port: int = 0
    logins: list[tuple[str, str, bool]] = field(default_factory=list)
    messages: list[tuple[str, list[str], bytes, bool]] = field(default_factory=list)

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        encrypted = _encrypted(server)
        self.logins.append((mechanism, auth_data.login.decode(), encrypted))
        given = (auth_data.login.decode(), auth_data.password.decode())
        # handled=False: aiosmtpd answers 535 itself on a refusal
        return AuthResult(success=encrypted and given == (USER, PASSWORD), handled=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.content, _encrypted(server))
        )
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:  # aiosmtpd's Controller cannot take port 0
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def smtp_server(security: str, issued: Issued) -> Iterator[MailServer]:
    """aiosmtpd requiring AUTH, behind STARTTLS (required) or implicit TLS with ``issued``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert, issued.key)
    box = MailServer(port=_free_port())
    common: dict[str, Any] = {
        "hostname": "127.0.0.1",
        "port": box.port,
        "authenticator": box.authenticate,
        "auth_required": True,
    }
    if security == "starttls":
        controller = Controller(box, tls_context=context, require_starttls=True, **common)
    else:
        controller = Controller(box, ssl_context=context, auth_require_tls=False, **common)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


# --- the gateway side -----------------------------------------------------------------------


def mail_channel(security: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "email",
        "name": "mail",
        "host": "127.0.0.1",
        "port": port,
        "security": security,
        "username": USER,
        "password": {"env": "SMTP_PASSWORD"},
        "sender": SENDER,
        "to": RECIPIENTS,
        **extra,
    }


@contextmanager
def mailing(tmp_path: Path, channel: dict[str, Any]) -> Iterator[Services]:
    """Services over a fresh SQLite file with one route to this e-mail channel, 3 attempts."""
    notify = {
        "channels": [channel],
        "routes": [{"name": "g", "channels": ["mail"]}],
        "retry": {"max_attempts": 3, "first_delay_s": 10, "max_delay_s": 60},
        "timeout_s": 5,
    }
    services = make_services(tmp_path, config=make_config(notifications=notify))
    try:
        yield services
    finally:
        close_services(services)


def sender_of(services: Services, password: str = PASSWORD) -> NoticeSender:
    config = services.config.notifications
    channels = build_channels(config, {"SMTP_PASSWORD": password})
    return NoticeSender(services.sessions, channels, services.clock, config)


def notice(services: Services) -> NoticeRow:
    with services.sessions() as session:
        (row,) = session.scalars(select(NoticeRow))
        return row


def raise_door(services: Services) -> None:
    services.alerts.apply([signal(title=TITLE)])


SECURITIES = ["starttls", "ssl"]


@pytest.mark.parametrize("security", SECURITIES)
def test_a_notice_is_mailed_over_tls_with_the_login_only_on_the_encrypted_connection(
    tmp_path: Path, pki: Pki, security: str
) -> None:
    with (
        smtp_server(security, pki.server) as server,
        mailing(tmp_path, mail_channel(security, server.port, ca_file=str(pki.ca))) as services,
    ):
        raise_door(services)
        assert sender_of(services).send_due() == 1
        row = notice(services)
        assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
        assert [(user, tls) for _, user, tls in server.logins] == [(USER, True)]

        ((mail_from, rcpt_tos, content, over_tls),) = server.messages
        assert (mail_from, rcpt_tos, over_tls) == (SENDER, RECIPIENTS, True)
        mail = message_from_bytes(content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        expected = Message.of_payload(row.payload)
        assert TITLE in expected.title
        assert mail["Subject"] == expected.title
        assert mail["From"] == SENDER
        assert mail["To"] == ", ".join(RECIPIENTS)
        assert mail.get_content_type() == "text/plain"
        assert mail.get_content().splitlines() == expected.text.splitlines()  # CRLF on the wire


@pytest.mark.parametrize("security", SECURITIES)
def test_a_wrong_password_over_tls_fails_at_once(tmp_path: Path, pki: Pki, security: str) -> None:
    with (
        smtp_server(security, pki.server) as server,
        mailing(tmp_path, mail_channel(security, server.port, ca_file=str(pki.ca))) as services,
    ):
        raise_door(services)
        assert sender_of(services, password="not-the-password").send_due() == 0
        row = notice(services)
        assert (row.status, row.attempts) == ("failed", 1)
        assert row.last_error is not None and row.last_error.startswith("SMTPAuthenticationError")
        assert "not-the-password" not in row.last_error
        assert server.messages == []


UNTRUSTED = {
    # the system's CAs only: the campus CA is not among them
    "no-ca-file": (lambda pki: None, lambda pki: pki.server, "unable to get local issuer"),
    "another-ca": (lambda pki: pki.other_ca, lambda pki: pki.server, "unable to get local issuer"),
    "other-host": (lambda pki: pki.ca, lambda pki: pki.other_host, "mismatch"),
}


@pytest.mark.parametrize("case", list(UNTRUSTED))
@pytest.mark.parametrize("security", SECURITIES)
def test_an_untrusted_certificate_is_retried_with_a_clear_error_then_fails_and_no_login_is_sent(
    tmp_path: Path, pki: Pki, security: str, case: str
) -> None:
    ca_of, cert_of, reason = UNTRUSTED[case]
    ca_file = ca_of(pki)
    extra = {} if ca_file is None else {"ca_file": str(ca_file)}
    with (
        smtp_server(security, cert_of(pki)) as server,
        mailing(tmp_path, mail_channel(security, server.port, **extra)) as services,
    ):
        raise_door(services)
        sender = sender_of(services)
        clock = clock_of(services)
        assert sender.send_due() == 0
        row = notice(services)
        assert (row.status, row.attempts) == ("retrying", 1)
        assert row.next_attempt_at == clock.now + timedelta(seconds=10)
        assert row.last_error is not None
        assert row.last_error.startswith(f"TLS certificate of 127.0.0.1:{server.port} not trusted")
        assert reason in row.last_error and "ca_file" in row.last_error

        clock.advance(10)
        sender.send_due()
        assert (notice(services).status, notice(services).attempts) == ("retrying", 2)
        clock.advance(20)
        sender.send_due()
        row = notice(services)
        assert (row.status, row.attempts) == ("failed", 3)
        assert row.last_error is not None and "not trusted" in row.last_error
        assert server.logins == [] and server.messages == []


def test_a_ca_file_that_cannot_be_read_is_named_and_retried(tmp_path: Path, pki: Pki) -> None:
    missing = tmp_path / "no-such-ca.crt"
    with (
        smtp_server("starttls", pki.server) as server,
        mailing(tmp_path, mail_channel("starttls", server.port, ca_file=str(missing))) as services,
    ):
        raise_door(services)
        assert sender_of(services).send_due() == 0
        row = notice(services)
        assert row.status == "retrying"
        assert row.last_error is not None
        assert row.last_error.startswith(f"cannot load ca_file {missing}")
        assert server.logins == []


# --- configuration --------------------------------------------------------------------------


def _validate(channel: dict[str, Any]) -> NotificationsConfig:
    return NotificationsConfig.model_validate({"channels": [channel]})


@pytest.mark.parametrize("host", ["smtp.campus.example", "10.20.0.5", "localhost.campus.example"])
def test_plain_smtp_with_a_password_to_another_host_is_refused(host: str) -> None:
    with pytest.raises(ValidationError, match=r"would send the SMTP password to .* in clear"):
        _validate(mail_channel("plain", 25) | {"host": host})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost", "LOCALHOST"])
def test_plain_smtp_with_a_password_to_this_machine_is_allowed(host: str) -> None:
    (channel,) = _validate(mail_channel("plain", 25) | {"host": host}).channels
    assert channel.type == "email" and channel.security == "plain"


def test_plain_smtp_without_a_password_and_tls_with_one_are_allowed_to_any_host() -> None:
    relay = mail_channel("plain", 25) | {"host": "relay.campus.example"}
    del relay["username"], relay["password"]
    _validate(relay)
    _validate(mail_channel("starttls", 587) | {"host": "smtp.campus.example"})
    _validate(mail_channel("ssl", 465) | {"host": "smtp.campus.example", "ca_file": "/etc/ca.crt"})


def test_a_ca_file_without_tls_is_refused() -> None:
    with pytest.raises(ValidationError, match="ca_file needs security: starttls or ssl"):
        _validate(mail_channel("plain", 25) | {"host": "127.0.0.1", "ca_file": "/etc/ca.crt"})
