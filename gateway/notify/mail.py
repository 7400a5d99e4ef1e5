"""SMTP e-mail channel (the only module that imports smtplib)."""

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

    def send(self, message: Message) -> None:
        """One e-mail; refused login or addresses ValueError, anything else ConnectionError."""
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = ", ".join(self._to)
        mail["Subject"] = message.title
        mail.set_content(message.text)
        try:
            with self._connect() as smtp:
                if self._username is not None and self._password is not None:
                    smtp.login(self._username, self._password)
                smtp.send_message(mail)
        except (
            smtplib.SMTPAuthenticationError,
            smtplib.SMTPRecipientsRefused,
            smtplib.SMTPSenderRefused,
        ) as exc:
            raise ValueError(f"{type(exc).__name__}: {exc}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from None

    def _connect(self) -> smtplib.SMTP:
        if self._security == "ssl":
            return smtplib.SMTP_SSL(
                self._host,
                self._port,
                timeout=self._timeout_s,
                context=ssl.create_default_context(),
            )
        smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)
        if self._security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        return smtp
