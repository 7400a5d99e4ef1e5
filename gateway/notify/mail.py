"""SMTP e-mail channel (the only module that imports smtplib).

TLS always verifies the server's certificate and host name, against the system's CAs or, for
a campus mail server with a certificate from an internal CA, against the channel's ``ca_file``.
A certificate that does not verify is a ``ConnectionError`` like any refused connection: the
notice is retried with back-off (the server's certificate may be renewed, or the CA configured)
and fails after the last attempt; the login is never sent over such a connection.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from typing import Literal

from gateway.notify.messages import Message


class SmtpChannel:
    """Sends each notice as a plain-text e-mail to a fixed list of addresses."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        security: Literal["starttls", "ssl", "plain"],
        sender: str,
        to: list[str],
        timeout_s: float,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.name = name
        self._host = host
        self._port = port
        self._security = security
        self._sender = sender
        self._to = list(to)
        self._timeout_s = timeout_s
        self._username = username
        self._password = password
        self._ca_file = ca_file

    def send(self, message: Message) -> None:
        """One e-mail; refused login or addresses ValueError, anything else ConnectionError."""
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = ", ".join(self._to)
        mail["Subject"] = message.title
        mail.set_content(message.text)
        context = None if self._security == "plain" else self._tls_context()
        try:
            with self._connect(context) as smtp:
                if self._username is not None and self._password is not None:
                    smtp.login(self._username, self._password)
                smtp.send_message(mail)
        except (
            smtplib.SMTPAuthenticationError,
            smtplib.SMTPRecipientsRefused,
            smtplib.SMTPSenderRefused,
        ) as exc:
            raise ValueError(f"{type(exc).__name__}: {exc}") from None
        except ssl.SSLCertVerificationError as exc:
            raise ConnectionError(
                f"TLS certificate of {self._host}:{self._port} not trusted: "
                f"{exc.verify_message} (a private CA? give the channel's ca_file)"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from None

    def _tls_context(self) -> ssl.SSLContext:
        # Verifies the certificate and the host name; never turned off. Built per session, so
        # a replaced CA file is read without a restart.
        try:
            return ssl.create_default_context(cafile=self._ca_file)
        except OSError as exc:  # missing file, or not PEM (ssl.SSLError)
            raise ConnectionError(f"cannot load ca_file {self._ca_file}: {exc}") from None

    def _connect(self, context: ssl.SSLContext | None) -> smtplib.SMTP:
        if self._security == "ssl":
            return smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout_s, context=context
            )
        smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)
        if self._security == "starttls":
            try:
                smtp.starttls(context=context)
            except BaseException:
                smtp.close()  # the caller's ``with`` never got the connection
                raise
        return smtp
